"""Calendars: when alerts are silenced and when a feed is expected to tick.

Three texts, parsed strictly (a ``ConfigError`` names the part it could not read):

* a **window**, recurring every week: ``<days> <HH:MM>-<HH:MM> [<time zone>]``::

      Sat 06:00-12:00 Europe/London
      Mon-Fri 07:00-22:00                 (UTC, or the zone given beside it)
      Mon,Wed,Fri 22:00-02:00 UTC         (past midnight: into the next day)
      daily 00:00-24:00

  Days are ``Mon`` … ``Sun`` (or their full names), ranges ``Mon-Fri`` (wrapping,
  ``Fri-Mon``), lists joined by commas, or ``daily`` / ``*``. An occurrence belongs to
  the day it starts on. Time zones are IANA names read by ``zoneinfo``.
* a **silence**, one-off: ``key=value`` words, shell-quoted::

      process=pricing.black_scholes until=2026-12-08T07:00Z reason="known bug"
      group=3f2a9c… until=2026-12-08T07:00+01:00 reason="fix deploying"
      feed=bbg.* until=2026-12-25T00:00Z reason="vendor maintenance"
      slo=pricing-* until=2026-12-08T07:00Z reason="load test"

  Exactly one of ``process``, ``group`` (an error group's fingerprint), ``feed`` or
  ``slo`` (an SLO's burn-rate alerts; each a name or an ``fnmatch`` pattern), ``until`` an ISO-8601 time with its zone
  (``Z`` or an offset), and a ``reason``.
* a feed's **hours**: one or more windows (``;``-separated, or a sequence) in the
  feed's zone, and holidays (dates in that zone) on which it does not open.

The settings ``alert_maintenance_windows`` and ``alert_silences`` hold the first two,
``@feed(..., hours=, tz=, holidays=)`` the third. Nothing here imports more than the
standard library.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import shlex
from dataclasses import dataclass
from typing import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from exporters.errors import ConfigError

_NS = 1_000_000_000
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SILENCE_KEYS = ("process", "group", "feed", "slo")


def zone(name: str | None, what: str = "time zone") -> dt.tzinfo:
    """The IANA zone ``name`` (UTC for None); ``ConfigError`` naming it if unknown."""
    if name is None or name.upper() in ("UTC", "Z"):
        return dt.timezone.utc
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{what} {name!r}: not a time zone name")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{what} {name!r}: unknown time zone (an IANA name such as "
                          "Europe/London)") from None


def _day(word: str, text: str) -> int:
    low = word.strip().lower()
    if low in DAY_NAMES:
        return DAY_NAMES.index(low)
    if low in _FULL:
        return _FULL.index(low)
    raise ConfigError(f"window {text!r}: {word!r} is not a day (Mon … Sun)")


def _days(part: str, text: str) -> frozenset[int]:
    if part.lower() in ("daily", "*", "every"):
        return frozenset(range(7))
    days: set[int] = set()
    for item in part.split(","):
        if not item.strip():
            raise ConfigError(f"window {text!r}: an empty day in {part!r}")
        first, dash, last = item.partition("-")
        a = _day(first, text)
        if not dash:
            days.add(a)
            continue
        b = _day(last, text)
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(days)


def _clock(word: str, text: str) -> dt.time | None:
    """``HH:MM`` (``24:00`` as None: the end of the day)."""
    hh, colon, mm = word.partition(":")
    if not colon or not (hh.isdigit() and mm.isdigit()) or len(mm) != 2 or len(hh) > 2:
        raise ConfigError(f"window {text!r}: {word!r} is not a time HH:MM")
    h, m = int(hh), int(mm)
    if (h, m) == (24, 0):
        return None
    if h > 23 or m > 59:
        raise ConfigError(f"window {text!r}: {word!r} is not a time of day")
    return dt.time(h, m)


@dataclass(frozen=True)
class Window:
    """A weekly window: on ``days`` (0 = Monday), from ``start`` to ``end`` in ``tz``."""

    text: str
    days: frozenset[int]
    start: dt.time
    end: dt.time | None        # None: midnight at the end of the day
    tz: dt.tzinfo

    def occurrence(self, now_ns: int) -> tuple[int, int] | None:
        """(start_ns, end_ns) of the occurrence holding ``now_ns``, if one does."""
        return self._occurrence(now_ns, ())

    def _occurrence(self, now_ns: int, holidays: Iterable[dt.date]
                    ) -> tuple[int, int] | None:
        local = dt.datetime.fromtimestamp(now_ns / _NS, self.tz)
        for back in (0, 1):  # today's, or yesterday's running past midnight
            day = local.date() - dt.timedelta(days=back)
            if day.weekday() not in self.days or day in holidays:
                continue
            start = dt.datetime.combine(day, self.start, self.tz)
            if self.end is None:
                end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), self.tz)
            elif self.end > self.start:
                end = dt.datetime.combine(day, self.end, self.tz)
            else:  # past midnight
                end = dt.datetime.combine(day + dt.timedelta(days=1), self.end, self.tz)
            s, e = int(start.timestamp() * _NS), int(end.timestamp() * _NS)
            if s <= now_ns < e:
                return s, e
        return None


@functools.lru_cache(maxsize=256)
def parse_window(text: str, default_tz: str | None = None) -> Window:
    """A window (see the module's doc); ``default_tz`` when the text names none."""
    if not isinstance(text, str):
        raise ConfigError(f"window {text!r}: must be a text like 'Sat 06:00-12:00 Europe/London'")
    words = text.split()
    if len(words) not in (2, 3):
        raise ConfigError(f"window {text!r}: expected '<days> HH:MM-HH:MM [time zone]', "
                          "e.g. 'Mon-Fri 07:00-22:00 Europe/London'")
    days = _days(words[0], text)
    first, dash, last = words[1].partition("-")
    if not dash:
        raise ConfigError(f"window {text!r}: {words[1]!r} is not a span HH:MM-HH:MM")
    start = _clock(first, text)
    if start is None:
        raise ConfigError(f"window {text!r}: a window cannot start at 24:00")
    end = _clock(last, text)
    if end == start:
        raise ConfigError(f"window {text!r}: {words[1]!r} is empty (start equals end)")
    tz = zone(words[2] if len(words) == 3 else default_tz, f"window {text!r}: time zone")
    return Window(text.strip(), days, start, end, tz)


def _instant(value: str, what: str) -> int:
    """An ISO-8601 time with its zone, in ns."""
    try:
        when = dt.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ConfigError(f"{what}: {value!r} is not an ISO-8601 time "
                          "(e.g. 2026-12-08T07:00Z)") from None
    if when.tzinfo is None:
        raise ConfigError(f"{what}: {value!r} has no time zone (end it with Z or an offset "
                          "such as +01:00)")
    return int(when.timestamp() * _NS)


@dataclass(frozen=True)
class Silence:
    """A one-off silence: alerts on ``kind`` (process, group, feed or slo) matching
    ``pattern`` are suppressed until ``until_ns``."""

    text: str
    kind: str
    pattern: str
    until_ns: int
    reason: str

    def matches(self, *, process: str | None = None, group: str | None = None,
                feed: str | None = None, slo: str | None = None) -> bool:
        value = {"process": process, "group": group, "feed": feed, "slo": slo}[self.kind]
        return value is not None and fnmatch.fnmatchcase(value, self.pattern)


def parse_silence(text: str) -> Silence:
    """A silence (see the module's doc); ``ConfigError`` naming the bad part."""
    what = f"silence {text!r}"
    if not isinstance(text, str):
        raise ConfigError(f"{what}: must be a text like "
                          "'process=pricing.x until=2026-12-08T07:00Z reason=\"known bug\"'")
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"{what}: {exc}") from None
    found: dict[str, str] = {}
    for word in words:
        key, eq, value = word.partition("=")
        key = key.strip().lower()
        if not eq or not key:
            raise ConfigError(f"{what}: {word!r} is not key=value")
        if key not in (*SILENCE_KEYS, "until", "reason"):
            raise ConfigError(f"{what}: unknown key {key!r} (process, group, feed, slo, "
                              "until, reason)")
        if key in found:
            raise ConfigError(f"{what}: {key!r} given twice")
        if not value.strip():
            raise ConfigError(f"{what}: {key!r} is empty")
        found[key] = value.strip()
    kinds = [k for k in SILENCE_KEYS if k in found]
    if len(kinds) != 1:
        raise ConfigError(f"{what}: name exactly one of process=, group=, feed= or slo= "
                          f"(got {', '.join(kinds) or 'none'})")
    if "until" not in found:
        raise ConfigError(f"{what}: needs until=<ISO time> (e.g. until=2026-12-08T07:00Z)")
    if "reason" not in found:
        raise ConfigError(f"{what}: needs reason=\"…\" (why it is silenced)")
    return Silence(text.strip(), kinds[0], found[kinds[0]],
                   _instant(found["until"], f"{what}: until"), found["reason"])


def _date(value: object, what: str) -> dt.date:
    if isinstance(value, dt.datetime):
        raise ConfigError(f"{what}: {value!r} is a time, not a date")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{what}: {value!r} is not a date (a datetime.date or 'YYYY-MM-DD')")


@dataclass(frozen=True)
class Hours:
    """When a feed is open: its windows (in its zone) minus its holidays."""

    windows: tuple[Window, ...]
    holidays: frozenset[dt.date]

    def occurrence(self, now_ns: int) -> tuple[int, int] | None:
        """(start_ns, end_ns) of the open period holding ``now_ns``; None when closed."""
        for w in self.windows:
            found = w._occurrence(now_ns, self.holidays)
            if found is not None:
                return found
        return None

    def is_open(self, now_ns: int) -> bool:
        return self.occurrence(now_ns) is not None


def parse_hours(hours: str | Iterable[str] | None, tz: str | None = None,
                holidays: Iterable[object] = (), *, what: str = "feed") -> Hours | None:
    """A feed's hours (None: always open); ``ConfigError`` naming the bad part."""
    if hours is None:
        if tz is not None or tuple(holidays or ()):
            raise ConfigError(f"{what}: tz= and holidays= need hours= (e.g. "
                              "hours='Mon-Fri 07:00-22:00')")
        return None
    texts = [h for h in hours.split(";")] if isinstance(hours, str) else list(hours)
    if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
        raise ConfigError(f"{what}: hours={hours!r}: give windows like 'Mon-Fri 07:00-22:00'")
    zone(tz, f"{what}: tz")  # checked even when every window names its own
    try:
        windows = tuple(parse_window(t.strip(), tz) for t in texts)
    except ConfigError as exc:
        raise ConfigError(f"{what}: hours: {exc}") from None
    if isinstance(holidays, (str, dt.date)):
        holidays = (holidays,)
    days = frozenset(_date(d, f"{what}: holidays") for d in (holidays or ()))
    return Hours(windows, days)
