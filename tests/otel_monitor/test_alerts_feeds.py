"""Rule "feed lag": a feed that stops ticking alerts once past its threshold, and
resolves when it ticks again. A real HTTP receiver on 127.0.0.1 is the webhook."""
from __future__ import annotations

import time

from alert_helpers import PD, ROUTING_KEY, SLACK, texts, wait_alerts, wait_rows
from monitor_helpers import process_name
from otel_monitor import feed, monitor, tick

THRESHOLD_S = 0.5


@monitor("pricing", feeds=("bbg.fx",))
def revalue(rate: float) -> float:
    return rate * 2


def test_a_feed_that_stops_ticking_alerts_within_its_threshold_plus_1s_and_resolves(
        alerting, receiver):
    store = alerting()

    @feed("bbg.fx", interval_s=0.1, stale_after_s=THRESHOLD_S)
    def on_fx(rate):
        return revalue(rate)

    for i in range(5):
        time.sleep(0.05)
        on_fx(1.0 + i / 100)
    last_tick = time.monotonic()  # then silence

    [trigger] = receiver.wait(lambda p: len(p) >= 1, path=PD, timeout=THRESHOLD_S + 3)
    assert THRESHOLD_S <= trigger.received - last_tick <= THRESHOLD_S + 1.0
    body = trigger.json
    assert (body["event_action"], body["dedup_key"], body["routing_key"]) == (
        "trigger", "otel-monitor/feed/bbg.fx", ROUTING_KEY)
    payload = body["payload"]
    assert payload["summary"].startswith("Feed bbg.fx is stale: no update for ")
    assert payload["severity"] == "critical" and payload["component"] == "bbg.fx"
    assert payload["custom_details"]["threshold"] == "0.5 s"
    assert process_name(revalue) in payload["custom_details"]["read_by"]
    [slack] = receiver.wait(lambda p: len(p) >= 1, path=SLACK)
    assert "Feed bbg.fx is stale" in slack.json["text"]
    assert "http://ui.test:8050/?feed=bbg.fx" in texts(slack.json["blocks"])
    [row] = wait_rows(store.path, "SELECT stale, ticks FROM feeds",  # written as it went stale
                      lambda r: r and r[0]["stale"] == 1, timeout=0.5)
    assert row == {"stale": 1, "ticks": 5}

    time.sleep(0.3)
    assert len(receiver.to(PD)) == 1  # one trigger for the whole silence, not one per check

    on_fx(1.1)  # it ticks again
    resolve = receiver.wait(lambda p: len(p) == 2, path=PD, timeout=3)[1].json
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve",
                       "dedup_key": "otel-monitor/feed/bbg.fx"}
    slack_resolve = receiver.wait(lambda p: len(p) == 2, path=SLACK)[1].json
    assert "Feed bbg.fx is updating again after" in slack_resolve["text"]

    logged = wait_alerts(store.path, lambda r: len(r) == 4)
    assert sorted((r["action"], r["target"].split()[0], r["status"]) for r in logged) == [
        ("resolve", "pagerduty", "sent"), ("resolve", "slack", "sent"),
        ("trigger", "pagerduty", "sent"), ("trigger", "slack", "sent")]
    assert {r["feed"] for r in logged} == {"bbg.fx"} and {r["rule"] for r in logged} == {
        "feed_lag"}


def test_a_feed_ticked_with_tick_alerts_too(alerting, receiver):
    alerting()
    feed("refinitiv.rates", stale_after_s=0.3)
    tick("refinitiv.rates")
    [post] = receiver.wait(lambda p: len(p) == 1, path=SLACK, timeout=3)
    assert "refinitiv.rates" in post.json["text"]


def test_a_feed_keeps_quiet_while_it_ticks_within_its_threshold(alerting, receiver):
    alerting()
    feed("bbg.fx", stale_after_s=0.4)
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        tick("bbg.fx")
        time.sleep(0.05)
    assert receiver.posts == []


def test_a_feed_never_ticked_in_this_process_does_not_alert(alerting, receiver):
    alerting()
    feed("bbg.fx", stale_after_s=0.2)  # declared (say, ticked by another worker)
    time.sleep(0.6)
    assert receiver.posts == []


def test_feed_lag_alerts_can_be_switched_off_and_the_store_still_says_stale(alerting,
                                                                         receiver):
    store = alerting(alert_feed_lag=False)
    feed("bbg.fx", stale_after_s=0.2)
    tick("bbg.fx")
    wait_rows(store.path, "SELECT stale FROM feeds", lambda r: r == [{"stale": 1}], timeout=3)
    assert receiver.posts == []


def test_the_default_threshold_comes_from_the_environment(alerting, receiver, monkeypatch):
    monkeypatch.setenv("OTEL_MONITOR_FEED_STALE_AFTER_S", "0.3")
    alerting()
    tick("bbg.fx")
    [post] = receiver.wait(lambda p: len(p) == 1, path=PD, timeout=3)
    assert post.json["payload"]["custom_details"]["threshold"] == "0.3 s"
