"""Calendars (issue 15): weekly windows, one-off silences and a feed's hours, read
strictly (``otel_monitor.schedules``), and when each holds."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from exporters.errors import ConfigError
from otel_monitor.schedules import parse_hours, parse_silence, parse_window

LONDON = ZoneInfo("Europe/London")


def ns(*args, tz=LONDON) -> int:
    return int(dt.datetime(*args, tzinfo=tz).timestamp() * 1e9)


def test_a_window_holds_on_its_days_between_its_times_in_its_zone():
    w = parse_window("Sat 06:00-12:00 Europe/London")
    assert w.occurrence(ns(2026, 12, 12, 6, 0))             # a Saturday, at the start
    assert w.occurrence(ns(2026, 12, 12, 11, 59, 59))
    assert not w.occurrence(ns(2026, 12, 12, 12, 0))        # the end is not in it
    assert not w.occurrence(ns(2026, 12, 13, 7, 0))         # Sunday
    # in summer London is UTC+1: 06:00 there is 05:00 UTC
    assert w.occurrence(ns(2026, 7, 4, 5, 0, tz=dt.timezone.utc))
    assert not w.occurrence(ns(2026, 7, 4, 11, 30, tz=dt.timezone.utc))


def test_day_ranges_lists_wrapping_and_past_midnight():
    assert parse_window("Mon-Fri 07:00-22:00").days == {0, 1, 2, 3, 4}
    assert parse_window("Fri-Mon 07:00-22:00").days == {4, 5, 6, 0}
    assert parse_window("Mon,Wed,Sunday 07:00-08:00").days == {0, 2, 6}
    assert parse_window("daily 00:00-24:00").days == set(range(7))
    night = parse_window("Fri 22:00-02:00 UTC")               # Friday night into Saturday
    utc = dt.timezone.utc
    start, end = night.occurrence(ns(2026, 12, 12, 1, 0, tz=utc))   # Saturday 01:00
    assert (start, end) == (ns(2026, 12, 11, 22, 0, tz=utc), ns(2026, 12, 12, 2, 0, tz=utc))
    assert not night.occurrence(ns(2026, 12, 13, 1, 0, tz=utc))      # Sunday 01:00


@pytest.mark.parametrize("text,part", [
    ("Sat 06:00-12:00 Europe/Lundun", "unknown time zone"),
    ("Sot 06:00-12:00", "'Sot' is not a day"),
    ("Sat 06:00", "is not a span"),
    ("Sat 25:00-26:00", "is not a time of day"),
    ("Sat 06:00-06:00", "is empty"),
    ("Sat", "expected '<days> HH:MM-HH:MM"),
    ("Mon,,Tue 06:00-07:00", "an empty day"),
])
def test_bad_windows_name_the_bad_part(text, part):
    with pytest.raises(ConfigError) as info:
        parse_window(text)
    assert part in str(info.value) and repr(text) in str(info.value)


def test_a_silence_reads_its_target_expiry_and_reason():
    s = parse_silence('feed=bbg.* until=2026-12-08T07:00+01:00 reason="vendor, again"')
    assert (s.kind, s.pattern, s.reason) == ("feed", "bbg.*", "vendor, again")
    assert s.until_ns == ns(2026, 12, 8, 6, 0, tz=dt.timezone.utc)
    assert s.matches(feed="bbg.fx") and not s.matches(feed="ice.px")
    assert not s.matches(process="bbg.fx")  # a feed silence holds feeds only


def test_a_feeds_hours_skip_its_holidays():
    hours = parse_hours("Mon-Fri 07:00-16:30; Sat 09:00-12:00", "Europe/London",
                        (dt.date(2026, 12, 25), "2026-12-28"))
    assert hours.is_open(ns(2026, 12, 24, 10, 0))
    assert not hours.is_open(ns(2026, 12, 25, 10, 0))   # Christmas, a Friday
    assert hours.is_open(ns(2026, 12, 26, 10, 0))       # the Saturday window
    assert not hours.is_open(ns(2026, 12, 28, 10, 0))   # a holiday Monday
    assert parse_hours(None) is None
