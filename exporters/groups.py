"""Error groups in the store: the writer's upkeep, status changes, and their retention.

``maintain`` runs inside ``SpanStore.insert_calls``'s transaction, for the failed calls
of the batch only (a batch of OK calls costs one scan of its status column): it names
each failed call's group (``spans.error_group``), upserts the groups (exact count, last
seen, ids, services and hosts), bumps their minute buckets, and works out the batch's
``GroupEvent``\\ s. The events are handed on only after the transaction commits
(``SpanStore.last_group_events``): a rolled-back batch changed no group and tells
nothing.

The events (``exporters.error_groups``):

- NEW: the group's first failure.
- REGRESSION: a resolved group failed again (it is open again). A failure that started
  before the group was resolved (written late: it was queued when the resolve came) is
  counted and reopens nothing.
- REARMED: a snoozed group's snooze ran out: a failure at or after its until time, or
  the failure that used up its remaining occurrences (it is open again).
- SPIKE: an open group's failures over the last 5 minutes (to its newest failure)
  reach ``spike_min_count``, and their rate per minute is at least ``spike_multiple``
  times its rate per minute over the hour before those 5 minutes. At most one an hour
  per group (``spike_alerted_ns``); a new group's first hour counts as alerted (its NEW
  event said it), and a batch that gave a group another event gives it no SPIKE too.

Ignored groups are counted and never give an event; snoozed ones are counted silently.

One bug is one group: an exception rising through several monitored calls fails each
of them, and the writer is told which of a batch's failed calls only passed it on, and
from which call (``propagated``: the innermost monitored call it rose out of; see
``records.ERR_PROPAGATED``). Such a call names that call's group in
``spans.error_group`` and is not counted again (the group's count is the bug's
occurrences), nor bumps its minutes, nor gives an event. The inner call ended first, so
it is earlier in the same batch or written already; when it is not found (lost, purged,
a span received alone over OTLP), the call is grouped on its own fingerprint like any.
"""
from __future__ import annotations

import json
import time
from typing import Any, Sequence

from .database import Database
from .error_groups import (
    IGNORED, NEW, OPEN, REARMED, REGRESSION, RESOLVED, SNOOZED, SPIKE, STATUSES, GroupEvent,
)
from .errors import ConfigError, NotFound
from .fingerprint import fingerprint, message_of, title

MAX_PLACES = 20                 # services / hosts kept per group
MINUTE_NS = 60 * 10**9
HOUR_NS = 3600 * 10**9
SPIKE_WINDOW_MIN = 5            # the spike rule's short window, in minutes
SPIKE_BASELINE_MIN = 60         # and the hour before it
DEFAULT_SPIKE_MULTIPLE = 10.0
DEFAULT_SPIKE_MIN_COUNT = 10
MINUTES_KEPT_NS = 24 * HOUR_NS  # minute buckets older than this are purged

GROUP_COLUMNS = ("fingerprint", "process", "exception_type", "title", "first_seen_ns",
                 "last_seen_ns", "count", "first_span_id", "first_trace_id", "last_span_id",
                 "last_trace_id", "services", "hosts", "status", "snooze_until_ns",
                 "snooze_remaining", "resolved_ns", "spike_alerted_ns", "updated_ns")

# Positions in the flat calls of SpanStore.insert_calls (store.SPAN_COLUMNS).
_ID, _SPAN_ID, _TRACE_ID, _START, _PROCESS_ID, _GROUP, _SERVICE, _STATUS, _TYPE, _TEXT, \
    _PID = 0, 1, 2, 4, 6, 7, 8, 9, 11, 12, 13
_MASK64 = (1 << 64) - 1


def span_hex(span_id: int) -> str:
    """A stored (signed) span id as 16 hex digits."""
    return "%016x" % (span_id & _MASK64)


def _merge_places(stored: str | None, new: set[str]) -> str:
    places = json.loads(stored) if stored else []
    for place in sorted(new):
        if len(places) >= MAX_PLACES:
            break
        if place not in places:
            places.append(place)
    return json.dumps(places)


def maintain(db: Database, spans: list, width: int, base: int, *, host: str | None,
             spike_multiple: float = DEFAULT_SPIKE_MULTIPLE,
             spike_min_count: int = DEFAULT_SPIKE_MIN_COUNT,
             now_ns: int | None = None,
             propagated: dict[int, int] | None = None) -> list[GroupEvent]:
    """Keep the groups of the failed calls in ``spans`` (flat, ``width`` values a call,
    each call's first value its index in the batch, its row id ``base`` + that), inside
    the caller's transaction; returns the batch's events. ``propagated``: ``{index in
    the batch: span id}`` of the failed calls that only passed on the failure of the
    call with that (signed) span id (see the module's doc)."""
    statuses = spans[_STATUS::width]
    if "ERR" not in statuses:
        return []
    now_ns = time.time_ns() if now_ns is None else now_ns
    failed = [spans[i * width:(i + 1) * width] for i, s in enumerate(statuses) if s == "ERR"]
    process_ids = sorted({c[_PROCESS_ID] for c in failed})
    names = dict(db.execute("SELECT id, name FROM processes WHERE id IN "
                            "(SELECT value FROM json_each(?))", (json.dumps(process_ids),)))
    failed.sort(key=lambda c: c[_START])
    passed: list = []
    if propagated:
        passed = [c for c in failed if c[_ID] in propagated]
        failed = [c for c in failed if c[_ID] not in propagated]
    by_group: dict[str, list] = {}
    marks = []
    of_span: dict[int, str] = {}
    for call in failed:
        fp = _fingerprint(names.get(call[_PROCESS_ID], ""), call[_TYPE], call[_TEXT])
        by_group.setdefault(fp, []).append(call)
        marks.append((fp, base + call[_ID]))
        of_span[call[_SPAN_ID]] = fp
    if passed:
        inner_fps = _inner_groups(db, [propagated[c[_ID]] for c in passed], of_span)
        for call in passed:
            fp = inner_fps.get(propagated[call[_ID]])
            if fp is None:  # its inner call is not to be found: a failure of its own
                fp = _fingerprint(names.get(call[_PROCESS_ID], ""), call[_TYPE], call[_TEXT])
                by_group.setdefault(fp, []).append(call)
            marks.append((fp, base + call[_ID]))
    db.execute_write_many("UPDATE spans SET error_group = ? WHERE id = ?", marks)
    if not by_group:
        return []

    minutes: dict[tuple[str, int], int] = {}
    for fp, calls in by_group.items():
        for call in calls:
            key = (fp, call[_START] // MINUTE_NS)
            minutes[key] = minutes.get(key, 0) + 1
    db.execute_write_many(
        """INSERT INTO error_group_minutes(fingerprint, minute, count) VALUES (?, ?, ?)
           ON CONFLICT(fingerprint, minute) DO UPDATE SET count = count + excluded.count""",
        [(fp, minute, n) for (fp, minute), n in minutes.items()])

    stored = {r["fingerprint"]: dict(r) for r in db.execute(
        f"SELECT {', '.join(GROUP_COLUMNS)} FROM error_groups WHERE fingerprint IN "
        "(SELECT value FROM json_each(?))", (json.dumps(list(by_group)),))}

    events: list[GroupEvent] = []
    rows = []
    for fp, calls in by_group.items():
        group = stored.get(fp)
        first = calls[0]
        kinds: list[tuple[str, Any]] = []
        if group is None:
            process = names.get(first[_PROCESS_ID], "")
            group = {
                "fingerprint": fp, "process": process,
                "exception_type": first[_TYPE] or "Exception",
                "title": _title(first[_TYPE], first[_TEXT]),
                "first_seen_ns": first[_START], "last_seen_ns": first[_START], "count": 0,
                "first_span_id": span_hex(first[_SPAN_ID]), "first_trace_id": first[_TRACE_ID],
                "last_span_id": span_hex(first[_SPAN_ID]), "last_trace_id": first[_TRACE_ID],
                "services": "[]", "hosts": "[]", "status": OPEN, "snooze_until_ns": None,
                "snooze_remaining": None, "resolved_ns": None,
                "spike_alerted_ns": first[_START],  # NEW speaks for its first hour
                "updated_ns": now_ns}
            kinds.append((NEW, first))
        for call in calls:
            group["count"] += 1
            status = group["status"]
            if status == RESOLVED and call[_START] >= (group["resolved_ns"] or 0):
                group.update(status=OPEN, resolved_ns=None)
                kinds.append((REGRESSION, call))
            elif status == SNOOZED:
                until, remaining = group["snooze_until_ns"], group["snooze_remaining"]
                if until is not None and call[_START] >= until:
                    expired = True
                elif remaining is not None:
                    remaining -= 1
                    group["snooze_remaining"] = remaining
                    expired = remaining <= 0
                else:
                    expired = until is None  # a snooze with neither: not a snooze
                if expired:
                    group.update(status=OPEN, snooze_until_ns=None, snooze_remaining=None)
                    kinds.append((REARMED, call))
        last = calls[-1]
        if first[_START] < group["first_seen_ns"]:  # a late call older than the group
            group.update(first_seen_ns=first[_START], first_span_id=span_hex(first[_SPAN_ID]),
                         first_trace_id=first[_TRACE_ID])
        if last[_START] >= group["last_seen_ns"]:
            group.update(last_seen_ns=last[_START], last_span_id=span_hex(last[_SPAN_ID]),
                         last_trace_id=last[_TRACE_ID])
        group["services"] = _merge_places(group["services"],
                                          {c[_SERVICE] for c in calls if c[_SERVICE]})
        if host:
            group["hosts"] = _merge_places(group["hosts"], {host})
        group["updated_ns"] = now_ns
        rates = None
        if not kinds and group["status"] == OPEN:
            rates = _spike(db, group, last[_START], spike_multiple, spike_min_count)
            if rates is not None:
                group["spike_alerted_ns"] = last[_START]
                kinds.append((SPIKE, last))
        rows.append(tuple(group[c] for c in GROUP_COLUMNS))
        for kind, call in kinds:
            events.append(_event(kind, group, call, rates if kind == SPIKE else None))
    db.execute_write_many(
        f"INSERT OR REPLACE INTO error_groups({', '.join(GROUP_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(GROUP_COLUMNS))})", rows)
    return events


def replayed_new_events(db: Database, spans: list, width: int) -> list[GroupEvent]:
    """The NEW events of the failed calls in ``spans`` (flat, as ``maintain`` takes them)
    that are already stored as the first call of their group. A batch resent after the
    answer to its commit was lost (a writer process killed between the two) finds its
    calls stored and would make no event: its new groups would go untold. The writer
    drops what it told already (``error_groups.ToldEvents``)."""
    failed = {spans[o + _SPAN_ID]: spans[o:o + width]
              for o in range(0, len(spans), width) if spans[o + _STATUS] == "ERR"}
    if not failed:
        return []
    columns = ", ".join(f"g.{c}" for c in GROUP_COLUMNS)
    rows = db.execute(
        f"SELECT s.span_id, {columns} FROM spans s "
        "JOIN error_groups g ON g.fingerprint = s.error_group "
        "WHERE s.span_id IN (SELECT value FROM json_each(?))", (json.dumps(sorted(failed)),))
    events = []
    for span_id, *values in rows:
        group = dict(zip(GROUP_COLUMNS, values))
        if group["first_span_id"] == span_hex(span_id):
            events.append(_event(NEW, group, failed[span_id], None))
    return events


def _inner_groups(db: Database, span_ids: list[int], of_span: dict[int, str]
                  ) -> dict[int, str]:
    """The group of each inner call (signed span id) named by a call that passed its
    failure on: from this batch's failed calls (``of_span``), else from the store."""
    found = {sid: of_span[sid] for sid in span_ids if sid in of_span}
    missing = sorted({sid for sid in span_ids if sid not in found})
    if missing:
        found.update((sid, fp) for sid, fp in db.execute(
            "SELECT span_id, error_group FROM spans WHERE span_id IN "
            "(SELECT value FROM json_each(?)) AND error_group IS NOT NULL",
            (json.dumps(missing),)))
    return found


def _fingerprint(process: str, exception_type: Any, text: Any) -> str:
    """The call's fingerprint; a text that cannot be parsed (never expected) is keyed on
    process and type: a group's upkeep must never make a batch of calls fail."""
    try:
        return fingerprint(process, exception_type, text)
    except Exception:
        return fingerprint(process, str(exception_type or ""), None)


def _title(exception_type: Any, text: Any) -> str:
    try:
        return title(exception_type, message_of(exception_type, text))
    except Exception:
        return str(exception_type or "Exception")


def _spike(db: Database, group: dict[str, Any], at_ns: int, multiple: float,
           floor: int) -> tuple[float, float] | None:
    """(rate over 5 minutes, rate over the hour before), per minute, when the group
    spikes at ``at_ns``; else None."""
    alerted = group["spike_alerted_ns"]
    if alerted is not None and at_ns - alerted < HOUR_NS:
        return None
    minute = at_ns // MINUTE_NS
    window_start = minute - SPIKE_WINDOW_MIN + 1
    recent, before = db.execute(
        """SELECT coalesce(sum(CASE WHEN minute >= ? THEN count END), 0),
                  coalesce(sum(CASE WHEN minute < ? THEN count END), 0)
           FROM error_group_minutes WHERE fingerprint = ? AND minute >= ? AND minute <= ?""",
        (window_start, window_start, group["fingerprint"],
         window_start - SPIKE_BASELINE_MIN, minute))[0]
    if recent < floor:
        return None
    rate_5m, rate_1h = recent / SPIKE_WINDOW_MIN, before / SPIKE_BASELINE_MIN
    return (rate_5m, rate_1h) if rate_5m >= multiple * rate_1h else None


def _event(kind: str, group: dict[str, Any], call: Sequence[Any],
           rates: tuple[float, float] | None) -> GroupEvent:
    return GroupEvent(
        kind=kind, fingerprint=group["fingerprint"], process=group["process"],
        exception_type=group["exception_type"], title=group["title"], count=group["count"],
        first_seen_ns=group["first_seen_ns"], last_seen_ns=group["last_seen_ns"],
        span_id=span_hex(call[_SPAN_ID]), trace_id=call[_TRACE_ID],
        message=message_of(call[_TYPE], call[_TEXT]), traceback=call[_TEXT] or "",
        service=call[_SERVICE], process_group=call[_GROUP], pid=call[_PID],
        rate_5m=rates[0] if rates else None, rate_1h=rates[1] if rates else None)


# -- status changes --------------------------------------------------------------------

def set_status(db: Database, fp: str, status: str, *, until_ns: int | None = None,
               occurrences: int | None = None, now_ns: int | None = None) -> dict[str, Any]:
    """Set a group's status; returns the group as stored after. ``snoozed`` takes exactly
    one of ``until_ns`` (later than now) and ``occurrences`` (>= 1); the others take
    neither. ``ConfigError`` (a ValueError) for bad arguments, ``NotFound`` for an
    unknown fingerprint (checked before the until time)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    if status not in STATUSES:
        raise ConfigError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    if status == SNOOZED:
        if (until_ns is None) == (occurrences is None):
            raise ConfigError("a snooze takes exactly one of: until a time, for N occurrences")
        if occurrences is not None and (type(occurrences) is not int or occurrences < 1):
            raise ConfigError("a snooze's occurrences must be a whole number >= 1")
    elif until_ns is not None or occurrences is not None:
        raise ConfigError(f"status {status!r} takes no until time or occurrences")
    with db.transaction():
        if db.scalar("SELECT 1 FROM error_groups WHERE fingerprint = ?", (fp,)) is None:
            raise NotFound(f"no error group {fp}")
        if status == SNOOZED and until_ns is not None and until_ns <= now_ns:
            raise ConfigError("a snooze's until time must be in the future")
        db.execute_write(
            """UPDATE error_groups SET status = ?, snooze_until_ns = ?, snooze_remaining = ?,
                   resolved_ns = ?, updated_ns = ? WHERE fingerprint = ?""",
            (status, until_ns if status == SNOOZED else None,
             occurrences if status == SNOOZED else None,
             now_ns if status == RESOLVED else None, now_ns, fp))
        row = db.execute(f"SELECT {', '.join(GROUP_COLUMNS)} FROM error_groups "
                         "WHERE fingerprint = ?", (fp,))[0]
    return group_dict(row)


def group_dict(row: Any) -> dict[str, Any]:
    """A stored group row as a plain dict (services and hosts as lists)."""
    out = dict(row)
    for key in ("services", "hosts"):
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    return out


# -- retention -------------------------------------------------------------------------

def purge_chunk(db: Database, groups_before_ns: int, minutes_before_ns: int,
                limit: int) -> int:
    """One short transaction of the groups' retention: up to ``limit`` groups last seen
    before ``groups_before_ns`` go with their minute buckets, and up to ``limit``
    minute buckets older than ``minutes_before_ns``. Returns the rows deleted."""
    with db.transaction():
        fps = [r[0] for r in db.execute(
            "SELECT fingerprint FROM error_groups WHERE last_seen_ns < ? "
            "ORDER BY last_seen_ns LIMIT ?", (groups_before_ns, limit))]
        n = 0
        if fps:
            fp_json = json.dumps(fps)
            n += db.execute_write("DELETE FROM error_group_minutes WHERE fingerprint IN "
                                  "(SELECT value FROM json_each(?))", (fp_json,))
            n += db.execute_write("DELETE FROM error_groups WHERE fingerprint IN "
                                  "(SELECT value FROM json_each(?))", (fp_json,))
        n += db.execute_write(
            "DELETE FROM error_group_minutes WHERE (fingerprint, minute) IN ("
            "SELECT fingerprint, minute FROM error_group_minutes WHERE minute < ? "
            "ORDER BY minute LIMIT ?)", (minutes_before_ns // MINUTE_NS, limit))
        return n


__all__ = ["GROUP_COLUMNS", "IGNORED", "MAX_PLACES", "group_dict", "maintain", "purge_chunk",
           "set_status", "span_hex"]
