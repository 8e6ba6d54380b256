"""Instants as the store keeps them: nanoseconds since the epoch in a signed 64-bit
integer, i.e. from ``EARLIEST`` to ``LATEST`` (1677-09-21 to 2262-04-11, UTC). A time
outside that range cannot be compared with a stored one: the API refuses it, the UI's
date filter is held within it."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

MIN_NS, MAX_NS = -(1 << 63), (1 << 63) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
EARLIEST = _EPOCH + timedelta(microseconds=-(-MIN_NS // 1000))
LATEST = _EPOCH + timedelta(microseconds=MAX_NS // 1000)


def ns_of(moment: datetime) -> int:
    """``moment`` (UTC if it has no offset) in ns since the epoch; a ``ValueError`` if the
    store cannot hold it."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    ns = (moment - _EPOCH) // timedelta(microseconds=1) * 1000
    if not MIN_NS <= ns <= MAX_NS:
        raise ValueError(f"{moment.isoformat()} is outside the range the store can hold "
                         f"({EARLIEST.isoformat()} to {LATEST.isoformat()})")
    return ns


def clamped_ns(moment: datetime) -> int:
    """``moment`` in ns since the epoch, held within the range the store can hold (an
    earlier time is its first instant, a later one its last)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return min(max((moment - _EPOCH) // timedelta(microseconds=1) * 1000, MIN_NS), MAX_NS)


def parse_iso(text: str) -> int:
    """An ISO 8601 date or date-time (UTC if it has no offset) in ns since the epoch; a
    ``ValueError`` for anything else (a number is not a date) or outside the range."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not an ISO 8601 date-time") from None
    return ns_of(moment)


# An IANA time zone name as a browser reports it ("Asia/Kolkata", "America/Argentina/Salta").
ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+){0,2}")


def zone_of(name: Any) -> tzinfo:
    """The zone the time filter's times of day are read in (the ``om-zone`` store: "UTC"
    with the UTC switch on, else the browser's zone by its IANA name); UTC for none, or
    for a name this machine does not know."""
    if not isinstance(name, str) or name == "UTC" or len(name) > 64 \
            or not ZONE_NAME.fullmatch(name):
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):   # (ZoneInfoNotFoundError is a KeyError)
        return timezone.utc


def wall_clock(day: date, seconds: float, zone: tzinfo) -> datetime:
    """``day`` at ``seconds`` (less than a day) after its midnight on the clocks of
    ``zone``: an instant."""
    return (datetime(day.year, day.month, day.day) + timedelta(seconds=seconds)
            ).replace(tzinfo=zone)
