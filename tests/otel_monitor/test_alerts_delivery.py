"""Webhook delivery: retries with backoff, Retry-After, a webhook down or hanging, the
bounded queue of pending alerts. A real HTTP receiver on 127.0.0.1 plays each part."""
from __future__ import annotations

import time

import pytest

import json

from alert_helpers import PD, SLACK, wait_alerts
from otel_monitor import monitor
from otel_monitor.alerts.delivery import retry_after_s
from otel_monitor.alerts.selfmon import SELF_HEALTH
from webhook_receiver import HANG, closed_port_url


def _failing(name: str = "quote"):
    @monitor("marketdata")
    def fetch(symbol: str) -> float:
        raise ConnectionError(f"{name}: vendor unreachable for {symbol}")
    return fetch


def _call(fn, *args) -> BaseException:
    with pytest.raises(Exception) as info:
        fn(*args)
    return info.value


def test_a_500_is_retried_and_the_alert_recorded_sent_on_the_second_attempt(alerting, receiver):
    receiver.script(SLACK, 500)
    store = alerting(alert_webhooks=[receiver.url(SLACK)], alert_backoff_s=0.2)
    _call(_failing(), "AAPL")

    first, second = receiver.wait(lambda p: len(p) == 2, path=SLACK)
    assert first.raw == second.raw                     # the same alert, sent again
    assert second.received - first.received >= 0.18   # after the backoff
    [row] = wait_alerts(store.path, lambda r: len(r) == 1)
    assert (row["status"], row["attempts"], row["error"]) == ("sent", 2, None)


def test_retries_back_off_exponentially_and_give_up_after_max_attempts(alerting, receiver):
    receiver.script(SLACK, 503, 502, 500, 500)
    store = alerting(alert_webhooks=[receiver.url(SLACK)], alert_backoff_s=0.1,
                     alert_max_attempts=4)
    _call(_failing(), "AAPL")

    posts = receiver.wait(lambda p: len(p) == 4, path=SLACK)
    gaps = [b.received - a.received for a, b in zip(posts, posts[1:])]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.39   # 0.1, 0.2, 0.4 s
    [row] = wait_alerts(store.path, lambda r: len(r) == 1)
    assert (row["status"], row["attempts"]) == ("failed", 4)
    assert row["error"].startswith("HTTP 500")
    time.sleep(0.3)
    assert len(receiver.to(SLACK)) == 4                # and no fifth


def test_a_429_waits_what_retry_after_says(alerting, receiver):
    receiver.script(SLACK, (429, {"Retry-After": "1"}))
    store = alerting(alert_webhooks=[receiver.url(SLACK)], alert_backoff_s=0.01)
    _call(_failing(), "AAPL")

    first, second = receiver.wait(lambda p: len(p) == 2, path=SLACK, timeout=5)
    assert second.received - first.received >= 0.95    # not the 0.01 s backoff
    [row] = wait_alerts(store.path, lambda r: len(r) == 1)
    assert (row["status"], row["attempts"]) == ("sent", 2)


def test_retry_after_as_seconds_or_an_http_date():
    assert retry_after_s("3") == 3.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:05 GMT", now=1445412480.0) == 5.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:05 GMT", now=1445412490.0) == 0.0
    assert retry_after_s("soon") is None and retry_after_s(None) is None


def test_a_4xx_other_than_429_is_not_retried(alerting, receiver):
    receiver.script(SLACK, 404)
    store = alerting(alert_webhooks=[receiver.url(SLACK)])
    _call(_failing(), "AAPL")
    [row] = wait_alerts(store.path, lambda r: len(r) == 1)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert row["error"].startswith("HTTP 404")
    assert len(receiver.to(SLACK)) == 1


@pytest.mark.parametrize("how", ["down", "hanging"])
def test_a_webhook_down_or_hanging_leaves_the_app_unaffected_and_failures_recorded(
        alerting, receiver, how):
    if how == "down":
        url = closed_port_url()
    else:
        receiver.script(SLACK, *[HANG] * 50)
        url = receiver.url(SLACK)
    store = alerting(alert_webhooks=[url], alert_timeout_s=0.25, alert_max_attempts=2)

    @monitor("pricing")
    def price(spot: float) -> float:
        if spot < 0:
            raise ValueError("negative spot")
        return spot * 2

    kinds = [type(f"VendorError{i}", (RuntimeError,), {}) for i in range(3)]

    @monitor("marketdata")
    def fetch(i: int) -> None:
        raise kinds[i](f"vendor {i} failed")

    started = time.monotonic()
    for i in range(3):  # four distinct alerts, each one waits on the dead webhook
        with pytest.raises(kinds[i]):
            fetch(i)
        assert price(21.0) == 42.0
        with pytest.raises(ValueError, match="negative spot"):
            price(-1.0)
    # 9 calls; sending (4 distinct alerts x 2 attempts x 0.25 s) never ran on this thread
    assert time.monotonic() - started < 1.0

    # (otel-monitor's own "cannot deliver alerts", with no other webhook to tell, is
    # recorded suppressed: alerts.selfmon)
    def calls_alerts(rows):
        return [r for r in rows if r["rule"] != SELF_HEALTH]

    everything = wait_alerts(store.path, lambda r: len(calls_alerts(r)) == 4, timeout=15)
    rows = calls_alerts(everything)
    assert {r["status"] for r in everything if r["rule"] == SELF_HEALTH} <= {"suppressed"}
    assert {r["status"] for r in rows} == {"failed"}
    assert {r["attempts"] for r in rows} == {2}
    expected = "timed out after 0.25 s" if how == "hanging" else "ConnectError"
    assert all(expected in r["error"] for r in rows), rows
    assert len(store.calls(price)) == 6 and len(store.calls(fetch)) == 3


def test_pending_alerts_are_bounded_the_oldest_dropped_and_counted(alerting, receiver):
    receiver.script(SLACK, HANG, HANG, HANG)
    store = alerting(alert_webhooks=[receiver.url(SLACK)], alert_queue_size=2,
                     alert_timeout_s=0.3, alert_max_attempts=1)
    kinds = [type(f"FeedError{i}", (RuntimeError,), {}) for i in range(5)]

    @monitor("marketdata")
    def fetch(i: int) -> None:
        raise kinds[i](f"feed {i}")

    _call(fetch, 0)
    receiver.wait(lambda p: len(p) == 1, path=SLACK)   # alert 0 is in flight, hanging
    for i in range(1, 5):                                  # 1..4 wait; the queue holds two
        _call(fetch, i)

    # the five exception alerts; otel-monitor's own "cannot deliver alerts" may be
    # recorded among them (self-health, judged every second), held: it has no other
    # webhook to go to
    rows = wait_alerts(store.path, lambda r: sum(x["rule"] == "exception" for x in r) == 5,
                       timeout=10)
    own = [r for r in rows if r["rule"] != "exception"]
    assert all((r["rule"], r["status"]) == ("self_health", "suppressed") for r in own), own
    rows = [r for r in rows if r["rule"] == "exception"]
    by_status: dict[str, list[str]] = {}
    for r in rows:
        # "New error: <type> in <process>: ..." (each its own new error group)
        by_status.setdefault(r["status"], []).append(
            r["summary"].removeprefix("New error: ").split()[0])
    # (exception types fully qualified, as OTel's exception.type)
    assert sorted(by_status["dropped"]) == [f"{__name__}.FeedError{i}" for i in (1, 2)]
    assert sorted(by_status["failed"]) == [f"{__name__}.FeedError{i}" for i in (0, 3, 4)]
    dropped = [r for r in rows if r["status"] == "dropped"]
    assert all("queue full" in r["error"] and r["attempts"] == 0 for r in dropped)
    from otel_monitor.pipeline import PIPELINE
    assert PIPELINE.alerts.senders[0].dropped == 2


# -- a refusal's reason, recorded -----------------------------------------------------------

@pytest.mark.parametrize("reason", ["invalid_blocks", "invalid_payload", "no_text"])
def test_a_slack_400_is_recorded_with_its_plain_text_reason(alerting, receiver, reason):
    receiver.script(SLACK, (400, {"Content-Type": "text/plain"}, reason.encode()))
    store = alerting(alert_webhooks=[receiver.url(SLACK)])
    _call(_failing(), "AAPL")
    [row] = wait_alerts(store.path, lambda r: len(r) == 1)
    assert (row["status"], row["attempts"], row["error"]) == \
        ("failed", 1, f"HTTP 400: {reason}")


def test_a_pagerduty_400_is_recorded_with_its_message_and_every_error(alerting, receiver):
    errors = ["Length of 'summary' is too long (" + "x" * 150 + ")",
              "'payload.severity' is missing", "'routing_key' is invalid"]
    answer = {"status": "invalid event", "message": "Event object is invalid",
              "errors": errors}
    receiver.script(PD, (400, {"Content-Type": "application/json"},
                         json.dumps(answer).encode()))
    store = alerting(alert_webhooks=[f"pagerduty+{receiver.url(PD)}#routing_key="
                                     "R0UT1NGKEY0000000000000000000000"])
    _call(_failing(), "AAPL")
    [row] = wait_alerts(store.path, lambda r: len(r) == 1)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert row["error"] == "HTTP 400: Event object is invalid: " + "; ".join(errors)


def test_a_huge_refusal_is_recorded_clipped(alerting, receiver):
    receiver.script(SLACK, (400, {}, b"invalid_blocks " + b"y" * 100_000))
    store = alerting(alert_webhooks=[receiver.url(SLACK)])
    _call(_failing(), "AAPL")
    [row] = wait_alerts(store.path, lambda r: len(r) == 1)
    assert row["error"].startswith("HTTP 400: invalid_blocks yyy")
    assert len(row["error"]) <= 1024 and row["error"].endswith("more chars]")
