"""Feeds with a calendar (issue 15): outside its hours a feed is never stale (the store
says closed), at the opening it has one interval of grace; ``failures_before_alert``
and ``recoveries_before_resolve`` ride out a late tick.

End to end through the pipeline in real time (short thresholds), and the rule itself
on an engine driven at chosen instants (``_check_feeds(now)``): real webhooks (a
receiver on 127.0.0.1) and a real store either way."""
from __future__ import annotations

import datetime as dt
import time

import pytest

import otel_monitor
from alert_helpers import PD, ROUTING_KEY, SLACK, texts, wait_rows
from exporters.errors import ConfigError
from otel_monitor import feed, tick
from otel_monitor._feeds import FeedRegistry
from otel_monitor.alerts.engine import AlertEngine
from otel_monitor.settings import load_settings

THRESHOLD_S = 0.3


def _today(tz: str = "Europe/London") -> str:
    from zoneinfo import ZoneInfo

    return dt.datetime.now(ZoneInfo(tz)).strftime("%a") + " 00:00-24:00"


def _tomorrow(tz: str = "Europe/London") -> str:
    from zoneinfo import ZoneInfo

    day = dt.datetime.now(ZoneInfo(tz)) + dt.timedelta(days=1)
    return day.strftime("%a") + " 00:00-24:00"


# -- end to end, real time -----------------------------------------------------------------

def test_a_feed_outside_its_hours_never_alerts_and_the_store_says_closed(alerting,
                                                                        receiver):
    store = alerting()
    feed("lse.px", stale_after_s=THRESHOLD_S, hours=_tomorrow(), tz="Europe/London")
    tick("lse.px")
    rows = wait_rows(store.path, "SELECT stale FROM feeds WHERE name = 'lse.px'",
                     lambda r: r == [{"stale": 2}], timeout=3)  # 2: closed
    time.sleep(4 * THRESHOLD_S)  # four thresholds of silence
    otel_monitor.shutdown()
    assert receiver.posts == []
    assert rows == [{"stale": 2}]


def test_a_feed_inside_its_hours_alerts_past_its_threshold(alerting, receiver):
    store = alerting()
    feed("lse.px", stale_after_s=THRESHOLD_S, hours=_today(), tz="Europe/London",
         holidays=("2020-12-25",))
    tick("lse.px")
    ticked_ns = time.time_ns()
    [post] = receiver.wait(lambda p: len(p) == 1, path=PD, timeout=THRESHOLD_S + 3)
    assert post.received_ns >= ticked_ns + THRESHOLD_S * 1e9  # never before its threshold
    assert post.json["payload"]["custom_details"]["hours"] == _today()
    [row] = wait_rows(store.path, "SELECT stale FROM feeds WHERE name = 'lse.px'",
                      lambda r: r == [{"stale": 1}])
    assert row == {"stale": 1}


def test_tick_takes_the_same_calendar(alerting, receiver):
    store = alerting()
    tick("lse.px", stale_after_s=THRESHOLD_S, hours=_tomorrow("UTC"))
    wait_rows(store.path, "SELECT stale FROM feeds WHERE name = 'lse.px'",
              lambda r: r == [{"stale": 2}], timeout=3)
    time.sleep(3 * THRESHOLD_S)
    otel_monitor.shutdown()
    assert receiver.posts == []


@pytest.mark.parametrize("kwargs,part", [
    (dict(hours="Mon-Fry 07:00-22:00"), "'Fry' is not a day"),
    (dict(hours="Mon-Fri 7-22"), "'7' is not a time"),
    (dict(hours="Mon-Fri 07:00-22:00", tz="Europe/Londres"), "unknown time zone"),
    (dict(tz="Europe/London"), "need hours="),
    (dict(hours="Mon 07:00-08:00", holidays=("25/12/2026",)), "is not a date"),
    (dict(failures_before_alert=0), "failures_before_alert must be a whole number >= 1"),
    (dict(recoveries_before_resolve=1.5), "recoveries_before_resolve must be"),
])
def test_bad_calendars_are_refused_at_decoration(kwargs, part):
    with pytest.raises(ConfigError) as info:
        @feed("bad.feed", **kwargs)
        def on_tick():
            pass
    assert part in str(info.value)


# -- the rule at chosen instants -------------------------------------------------------------

NS = 1_000_000_000
MONDAY = dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc)  # a Monday


def at(hh: int, mm: int, ss: float = 0.0, day: dt.datetime = MONDAY) -> int:
    return int((day + dt.timedelta(hours=hh, minutes=mm, seconds=ss)).timestamp() * NS)


@pytest.fixture
def engine_for(tmp_path, receiver):
    """An engine on a registry of its own, not started: the test drives its checks."""
    made = []

    def make(**feed_kwargs):
        settings = load_settings(dict(
            db_path=str(tmp_path / "feeds.db"),
            alert_webhooks=[receiver.url(SLACK),
                            f"pagerduty+{receiver.url(PD)}#routing_key={ROUTING_KEY}"],
            alert_backoff_s=0.05))
        registry = FeedRegistry({})
        f = registry.declare("bbg.fx", **feed_kwargs)
        engine = AlertEngine(settings, registry)
        made.append(engine)
        return engine, f

    yield make
    for engine in made:
        engine.shutdown()


def tick_at(f, ns: int) -> None:
    f.last_ns = ns
    f.ticks += 1


def triggers(receiver) -> list[str]:
    return [p.json["event_action"] for p in receiver.to(PD)]


def settle(engine) -> None:
    engine.shutdown()


def test_at_the_opening_a_feed_gets_one_interval_of_grace(engine_for, receiver, tmp_path):
    engine, f = engine_for(interval_s=60.0, stale_after_s=120.0,
                           hours="Mon-Fri 07:00-22:00", tz="UTC")
    tick_at(f, at(21, 59, 30, MONDAY - dt.timedelta(days=3)))  # Friday's last tick
    engine._check_feeds(at(6, 59))           # closed: the weekend's silence is not stale
    assert engine.state.closed == {"bbg.fx"} and engine.state.stale == set()
    engine._check_feeds(at(7, 0))            # open, within the first interval
    engine._check_feeds(at(7, 2, 59))        # grace (to 07:01) + threshold (120 s) not over
    assert engine.state.closed == set() and engine.state.stale == set()
    assert receiver.posts == []
    engine._check_feeds(at(7, 3, 1))         # no tick since the opening: stale
    assert engine.state.stale == {"bbg.fx"}
    settle(engine)
    assert triggers(receiver) == ["trigger"]
    rows = wait_rows(tmp_path / "feeds.db", "SELECT stale FROM feeds", lambda r: bool(r))
    assert rows == [{"stale": 1}]


def test_a_feed_closed_on_a_holiday_does_not_alert(engine_for, receiver):
    engine, f = engine_for(interval_s=1.0, stale_after_s=5.0, hours="Mon-Fri 07:00-22:00",
                           tz="Europe/London", holidays=(MONDAY.date(),))
    tick_at(f, at(8, 0))
    for minute in range(1, 30):
        engine._check_feeds(at(8, minute))
    assert engine.state.closed == {"bbg.fx"}
    settle(engine)
    assert receiver.posts == []


def test_failures_before_alert_waits_for_that_many_missed_intervals(engine_for, receiver):
    engine, f = engine_for(interval_s=60.0, stale_after_s=120.0, failures_before_alert=3)
    tick_at(f, at(10, 0))
    engine._check_feeds(at(10, 2, 1))    # past the threshold: 1 missed
    engine._check_feeds(at(10, 3, 1))    # 2 missed
    assert engine.state.stale == {"bbg.fx"} and not engine._feeds["bbg.fx"].alerted
    engine._check_feeds(at(10, 4, 1))    # 3 missed: alerts
    assert engine._feeds["bbg.fx"].alerted
    engine._check_feeds(at(10, 9))       # one trigger for the whole outage
    settle(engine)
    assert triggers(receiver) == ["trigger"]
    slack = receiver.to(SLACK)[0].json
    assert "*Missed intervals*\n3 in a row" in texts(slack["blocks"])


def test_one_late_tick_under_failures_before_alert_never_alerts(engine_for, receiver):
    engine, f = engine_for(interval_s=60.0, stale_after_s=120.0, failures_before_alert=2)
    tick_at(f, at(10, 0))
    engine._check_feeds(at(10, 2, 30))   # late once
    tick_at(f, at(10, 2, 40))            # then back
    engine._check_feeds(at(10, 2, 41))
    assert engine.state.stale == set()
    settle(engine)
    assert receiver.posts == []


def test_recoveries_before_resolve_needs_that_many_ticks_in_a_row(engine_for, receiver):
    engine, f = engine_for(interval_s=10.0, stale_after_s=20.0, recoveries_before_resolve=3)
    tick_at(f, at(10, 0))
    engine._check_feeds(at(10, 0, 21))            # stale: trigger
    tick_at(f, at(10, 1))
    engine._check_feeds(at(10, 1, 1))             # 1 on time
    tick_at(f, at(10, 1, 10))
    engine._check_feeds(at(10, 1, 11))            # 2
    engine._check_feeds(at(10, 1, 31))            # stale again before the 3rd: count restarts
    tick_at(f, at(10, 1, 40))
    engine._check_feeds(at(10, 1, 41))            # 1
    tick_at(f, at(10, 1, 50))
    engine._check_feeds(at(10, 1, 51))            # 2
    assert engine._feeds["bbg.fx"].alerted
    tick_at(f, at(10, 2, 0))
    engine._check_feeds(at(10, 2, 1))             # 3 in a row: resolves
    assert not engine._feeds["bbg.fx"].alerted
    settle(engine)
    assert triggers(receiver) == ["trigger", "resolve"]
    resolve_text = receiver.to(SLACK)[1].json["text"]
    assert "updating again" in resolve_text


def test_a_stale_feed_whose_hours_end_resolves_as_closed(engine_for, receiver):
    engine, f = engine_for(interval_s=10.0, stale_after_s=20.0, hours="Mon-Fri 07:00-22:00",
                           tz="UTC")
    tick_at(f, at(21, 50))
    engine._check_feeds(at(21, 50, 21))   # stale: trigger
    engine._check_feeds(at(22, 0, 1))     # closed: the incident ends with its hours
    assert engine.state.closed == {"bbg.fx"} and engine.state.stale == set()
    engine._check_feeds(at(23, 0))        # and nothing more while closed
    settle(engine)
    assert triggers(receiver) == ["trigger", "resolve"]
    assert receiver.to(SLACK)[1].json["text"].startswith(
        ":white_check_mark: Feed bbg.fx is closed (outside its hours) after ")
