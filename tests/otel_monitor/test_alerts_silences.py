"""Maintenance windows and silences (issue 15): an alert they cover is recorded in the
store with the outcome ``suppressed`` and the rule that held it, and posted nowhere;
the rest go out as usual. Real webhooks (a receiver on 127.0.0.1), real time."""
from __future__ import annotations

import datetime as dt

import pytest

import otel_monitor
from alert_helpers import PD, SLACK, wait_alerts
from exporters.errors import ConfigError
from monitor_helpers import process_name
from otel_monitor import feed, tick
from exporters.error_groups import RESOLVED
from otel_monitor.pipeline import PIPELINE
from test_alerts_groups import black_scholes, convert, groups, set_status, var


def _raise(fn, *args) -> None:
    with pytest.raises(Exception):
        fn(*args)


def _in(hours: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=hours)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _window_now(tz: str = "Europe/London") -> str:
    """A window of today (in ``tz``) holding now."""
    from zoneinfo import ZoneInfo

    day = dt.datetime.now(ZoneInfo(tz)).strftime("%a")
    return f"{day} 00:00-24:00 {tz}"


def _window_tomorrow() -> str:
    day = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).strftime("%a")
    return f"{day} 00:00-24:00 UTC"


def _three_new_groups() -> None:
    """Failures of three kinds: the writer makes three new groups, three NEW events."""
    for fn, args in ((black_scholes, (1.0, 0.0)), (convert, ("EURUSD",)), (var, (3,))):
        _raise(fn, *args)
    otel_monitor.force_flush()


def test_a_maintenance_window_covering_now_records_alerts_suppressed_and_posts_none(
        alerting, receiver):
    window = _window_now()
    store = alerting(alert_maintenance_windows=(window,))
    engine = PIPELINE.alerts
    _three_new_groups()
    rows = wait_alerts(store.path, lambda r: len(r) == 3)
    otel_monitor.shutdown()
    assert receiver.posts == []
    assert {(r["status"], r["error"], r["target"]) for r in rows} == {
        ("suppressed", f"maintenance window {window}", "none (suppressed)")}
    assert sorted(r["process"] for r in rows) == sorted(
        process_name(f) for f in (black_scholes, convert, var))
    assert all(r["summary"].startswith("New error: ") for r in rows)
    assert engine.alerts_suppressed == 3 and engine.alerts_raised == 0


def test_a_window_that_does_not_cover_now_suppresses_nothing(alerting, receiver):
    store = alerting(alert_maintenance_windows=(_window_tomorrow(),))
    _raise(black_scholes, 1.0, 0.0)
    receiver.wait(lambda p: len(p) == 1, path=PD)
    rows = wait_alerts(store.path, lambda r: len(r) == 2)
    assert {r["status"] for r in rows} == {"sent"}


def test_a_per_call_alert_is_suppressed_by_a_window_too(alerting, receiver):
    store = alerting(alert_maintenance_windows=("daily 00:00-24:00",))
    PIPELINE.exporter.on_group_events = None  # a writer that reports no group events
    PIPELINE.alerts.group_events = False
    _raise(black_scholes, 1.0, 0.0)
    [row] = wait_alerts(store.path, lambda r: len(r) == 1)
    assert (row["rule"], row["status"]) == ("exception", "suppressed")
    assert row["key"].startswith("otel-monitor/exception/")  # the per-call alert
    otel_monitor.shutdown()
    assert receiver.posts == []


def test_a_silence_by_process_holds_that_process_only(alerting, receiver):
    silence = f'process={process_name(convert)} until={_in(1)} reason="known bug, fix Monday"'
    store = alerting(alert_silences=(silence,))
    _three_new_groups()
    rows = wait_alerts(store.path, lambda r: len(r) == 5)  # 2 alerts x 2 webhooks + 1
    held = [r for r in rows if r["status"] == "suppressed"]
    assert [(r["process"], r["error"]) for r in held] == [
        (process_name(convert), f"silence {silence}")]
    posts = receiver.wait(lambda p: len(p) == 2, path=PD)
    assert "KeyError" not in " ".join(p.json["payload"]["summary"] for p in posts)


def test_a_silence_by_group_fingerprint_or_pattern(alerting, receiver, tmp_path):
    store = alerting()
    _three_new_groups()
    found = groups(store)
    receiver.wait(lambda p: len(p) == 3, path=PD)
    otel_monitor.shutdown()
    receiver.posts.clear()
    silences = (f"group={found[process_name(black_scholes)]['fingerprint']} until={_in(1)} "
                "reason=deploying",
                f"process=*.var until={_in(1)} reason='noisy'")
    store = alerting(alert_silences=silences)
    for g in found.values():  # all three resolved, then failing again: three regressions
        set_status(store.path, g["fingerprint"], RESOLVED)
    _three_new_groups()
    def regressions(rows):
        return [r for r in rows if r["summary"].startswith("Regression: ")]

    rows = regressions(wait_alerts(store.path, lambda r: len(regressions(r)) == 4))
    held = sorted(r["error"] for r in rows if r["status"] == "suppressed")
    assert held == sorted(f"silence {s}" for s in silences)
    [post] = receiver.wait(lambda p: len(p) == 1, path=PD)
    assert "KeyError" in post.json["payload"]["summary"]


def test_an_expired_silence_does_not_suppress(alerting, receiver):
    silence = f'process={process_name(black_scholes)} until={_in(-0.01)} reason="was known"'
    store = alerting(alert_silences=(silence,))
    _raise(black_scholes, 1.0, 0.0)
    receiver.wait(lambda p: len(p) == 1, path=SLACK)
    rows = wait_alerts(store.path, lambda r: len(r) == 2)
    assert {r["status"] for r in rows} == {"sent"}


def test_a_silence_by_feed_holds_its_trigger_and_its_resolve(alerting, receiver):
    silence = f"feed=bbg.* until={_in(1)} reason='vendor maintenance'"
    store = alerting(alert_silences=(silence,))
    feed("bbg.fx", stale_after_s=0.2)
    feed("ice.px", stale_after_s=0.2)
    tick("bbg.fx")
    tick("ice.px")
    receiver.wait(lambda p: len(p) == 1, path=PD)  # ice.px: stale, posted
    rows = wait_alerts(store.path, lambda r: any(x["status"] == "suppressed" for x in r))
    tick("bbg.fx")  # recovers: its resolve is held as well
    rows = wait_alerts(store.path, lambda r: sum(x["status"] == "suppressed" for x in r) == 2)
    held = [(r["feed"], r["action"], r["error"]) for r in rows if r["status"] == "suppressed"]
    assert held == [("bbg.fx", "trigger", f"silence {silence}"),
                    ("bbg.fx", "resolve", f"silence {silence}")]
    assert all(p.json["dedup_key"] == "otel-monitor/feed/ice.px" for p in receiver.to(PD))


@pytest.mark.parametrize("name,value,part", [
    ("alert_maintenance_windows", ("Sat 06:00-12:00 Europe/Lundun",), "Europe/Lundun"),
    ("alert_maintenance_windows", ("Sut 06:00-12:00",), "'Sut' is not a day"),
    ("alert_maintenance_windows", ("Sat 6am-noon",), "'6am' is not a time"),
    ("alert_silences", ("process=x until=2026-12-08T07:00 reason=r",), "has no time zone"),
    ("alert_silences", ("process=x until=2026-12-08T07:00Z",), "needs reason="),
    ("alert_silences", ("host=x until=2026-12-08T07:00Z reason=r",), "unknown key 'host'"),
    ("alert_silences", ("process=x feed=y until=2026-12-08T07:00Z reason=r",),
     "exactly one of"),
])
def test_bad_windows_and_silences_are_refused_naming_the_bad_part(tmp_path, name, value,
                                                                  part):
    with pytest.raises(ConfigError, match=f"setting {name}") as info:
        otel_monitor.configure(db_path=tmp_path / "x.db", **{name: value})
    assert part in str(info.value)


def test_windows_and_silences_come_from_the_environment_separated_by_semicolons(
        monkeypatch, tmp_path):
    from otel_monitor.settings import load_settings

    monkeypatch.setenv("OTEL_MONITOR_ALERT_MAINTENANCE_WINDOWS",
                       "Sat 06:00-12:00 Europe/London; Mon,Wed 22:00-02:00")
    monkeypatch.setenv("OTEL_MONITOR_ALERT_SILENCES",
                       'process=a.b until=2026-12-08T07:00Z reason="x, y"; feed=f '
                       "until=2026-12-09T00:00+01:00 reason=z")
    s = load_settings({"db_path": str(tmp_path / "x.db")})
    assert s.alert_maintenance_windows == ("Sat 06:00-12:00 Europe/London",
                                           "Mon,Wed 22:00-02:00")
    assert s.alert_silences[0] == 'process=a.b until=2026-12-08T07:00Z reason="x, y"'
    assert len(s.alert_silences) == 2
