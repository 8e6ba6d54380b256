"""Burn-rate alerts of SLOs, in process (issue 16): an SLO with a 1-minute window (its
alert windows scaled from the 28-day ones) pages through the real webhooks after an
error spike, once, and resolves after; maintenance windows and ``slo=`` silences hold
the alerts back. Real writer, real rollups, real receiver on 127.0.0.1, real time
(short): the assertions are on order and state, not on durations."""
from __future__ import annotations

import datetime as dt

import pytest

import otel_monitor
from alert_helpers import PD, SLACK, wait_alerts
from monitor_helpers import process_name
from otel_monitor import monitor
from otel_monitor.pipeline import PIPELINE
from otel_monitor.slo import REGISTRY


@pytest.fixture(autouse=True)
def no_slos():
    REGISTRY.clear()
    yield
    REGISTRY.clear()


@monitor("pricing")
def quote(x: float) -> float:
    if x < 0:
        raise ValueError("negative quote")
    return x


NAME = "quote-availability"
PAGE_KEY = f"otel-monitor/slo/{NAME}/page"


def _ok(n: int) -> None:
    for _ in range(n):
        quote(1.0)


def _spike(n: int) -> None:
    for _ in range(n):
        with pytest.raises(ValueError):
            quote(-1.0)


def _pd(posts, action: str, key: str = PAGE_KEY) -> list:
    return [p for p in posts if p.json.get("dedup_key") == key
            and p.json.get("event_action") == action]


def _status(name: str = NAME) -> dict | None:
    return PIPELINE.alerts.burn.statuses.get(name)


def _wait_state(predicate, timeout: float = 30.0) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _status()
        if status is not None and predicate(status):
            return status
        time.sleep(0.02)
    raise AssertionError(f"SLO state not reached: {_status()}")


def _configure(alerting, **settings):
    settings.setdefault("slo_eval_interval_s", 0.1)
    return alerting(alert_exceptions=False, **settings)


def test_a_one_minute_slo_pages_after_an_error_spike_and_resolves(alerting, receiver):
    _configure(alerting)
    slo = otel_monitor.slo(NAME, process=process_name(quote), objective=99.0, window="1m")
    assert [r.long_s for r in slo.burn_rules][0] < 1.0  # 1 h scaled to a 1-minute window

    _ok(200)
    otel_monitor.force_flush()
    calm = _wait_state(lambda s: s["calls"] >= 200)
    assert calm["state"] == "ok" and receiver.posts == []

    spike_ns = __import__("time").time_ns()
    _spike(100)
    otel_monitor.force_flush()
    posts = receiver.wait(lambda p: _pd(p, "trigger"), path=PD, timeout=30)
    page = _pd(posts, "trigger")[0].json
    assert page["payload"]["severity"] == "critical"
    assert page["payload"]["component"] == NAME and page["payload"]["class"] == "slo_burn"
    details = page["payload"]["custom_details"]
    assert details["slo"] == NAME and "14.4x" in details["burn_rates"]
    # detected inside the SLO's short window: the alert is of a time after the spike and
    # before the window had passed
    alerted_ns = dt.datetime.fromisoformat(page["payload"]["timestamp"].replace("Z", "+00:00"))
    assert spike_ns // 10**6 <= alerted_ns.timestamp() * 1000 + 1
    assert alerted_ns.timestamp() - spike_ns / 1e9 < slo.window_s
    assert _status()["state"] == "page"
    slack = receiver.wait(lambda p: any(NAME in p_.raw.decode() for p_ in p), path=SLACK)
    assert "burning its error budget" in slack[0].json["blocks"][0]["text"]["text"]

    # Recovery: good calls dilute the minute's failures under both page factors (or the
    # minute turns): the page resolves, once.
    _ok(3000)
    otel_monitor.force_flush()
    posts = receiver.wait(lambda p: _pd(p, "resolve"), path=PD, timeout=90)
    assert len(_pd(posts, "trigger")) == 1 and len(_pd(posts, "resolve")) == 1
    triggered = posts.index(_pd(posts, "trigger")[0])
    assert posts.index(_pd(posts, "resolve")[0]) > triggered
    assert _status()["state"] in ("ok", "ticket")
    otel_monitor.shutdown()
    rows = wait_alerts(PIPELINE.settings.db_path,
                       lambda r: len([x for x in r if x["rule"] == "slo_burn"]) >= 4)
    assert {(r["action"], r["status"]) for r in rows if r["key"] == PAGE_KEY} \
        == {("trigger", "sent"), ("resolve", "sent")}


def _window_now() -> str:
    day = dt.datetime.now(dt.timezone.utc).strftime("%a")
    return f"{day} 00:00-24:00 UTC"


@pytest.mark.parametrize("hold", ["window", "silence"])
def test_a_maintenance_window_or_an_slo_silence_holds_the_page_back(alerting, receiver, hold):
    until = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    if hold == "window":
        settings = dict(alert_maintenance_windows=(_window_now(),))
    else:
        settings = dict(alert_silences=(f'slo=quote-* until={until} reason="load test"',))
    store = _configure(alerting, **settings)
    otel_monitor.slo(NAME, process=process_name(quote), objective=99.0, window="1m")
    _ok(50)
    _spike(50)
    otel_monitor.force_flush()
    rows = wait_alerts(store.path, lambda r: any(x["key"] == PAGE_KEY for x in r))
    page = [r for r in rows if r["key"] == PAGE_KEY][0]
    assert page["status"] == "suppressed"
    assert page["error"].startswith("maintenance window" if hold == "window" else "silence slo=")
    assert _status()["state"] == "page"
    assert receiver.posts == []


def test_a_forked_or_other_process_does_not_evaluate_slos_it_did_not_register(alerting):
    _configure(alerting)
    otel_monitor.slo(NAME, process=process_name(quote), objective=99.0, window="1m")
    burn = PIPELINE.alerts.burn
    assert burn.wanted()
    REGISTRY.owner_pid = -1  # as in a forked child: registered by its parent
    assert not burn.wanted()


def test_a_silence_can_name_an_slo_by_name_or_pattern():
    from otel_monitor.schedules import parse_silence

    s = parse_silence('slo=pricing-* until=2030-01-01T00:00Z reason="load test"')
    assert (s.kind, s.pattern) == ("slo", "pricing-*")
    assert s.matches(slo="pricing-latency") and not s.matches(slo="risk-latency")
    assert not s.matches(process="pricing-latency")
