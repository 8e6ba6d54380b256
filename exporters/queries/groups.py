"""Error groups: the list (filters, sorts, pages) and one group with its sparkline.

A group's shown status is its stored one, except that a snooze whose until time has
passed reads ``open`` (the writer re-arms it at its next failure). The count in the
last hour and the sparkline read the minute buckets (``error_group_minutes``).
"""
from __future__ import annotations

import json
import time
from typing import Any

from ..database import Database
from ..error_groups import OPEN, SNOOZED, STATUSES
from ..errors import NotFound
from ..groups import GROUP_COLUMNS, MINUTE_NS, group_dict
from .filters import NS, SERVICE_NAME, TRACE_ID

SORTS = ("last_seen", "count")
MAX_LIMIT = 500
SPARK_BUCKETS = 72           # 6 hours ...
SPARK_BUCKET_MIN = 5         # ... of 5-minute buckets

_STATUS = (f"CASE WHEN g.status = '{SNOOZED}' AND g.snooze_until_ns IS NOT NULL "
           f"AND g.snooze_until_ns <= :now THEN '{OPEN}' ELSE g.status END")
_LAST_HOUR = ("(SELECT coalesce(sum(m.count), 0) FROM error_group_minutes m "
              "WHERE m.fingerprint = g.fingerprint AND m.minute > :minute - 60 "
              "AND m.minute <= :minute)")
_COLUMNS = ", ".join(f"g.{c}" for c in GROUP_COLUMNS if c != "status")
_ORDER = {"last_seen": "g.last_seen_ns DESC, g.fingerprint",
          "count": "g.count DESC, g.last_seen_ns DESC, g.fingerprint"}


def _row(row: Any) -> dict[str, Any]:
    out = group_dict(row)
    for key in ("first_seen_ns", "last_seen_ns"):
        out[key.replace("_ns", "")] = _iso(out[key])
    return out


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    t = time.gmtime(ns // NS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%06dZ" % (ns // 1000 % 1_000_000)


def error_groups(db: Database, *, status: str | None = None, process: str | None = None,
                 service: str | None = None, since_ns: int | None = None,
                 sort: str = "last_seen", limit: int = 50, offset: int = 0,
                 now_ns: int | None = None) -> dict[str, Any]:
    """A page of groups, newest last failure (or highest count) first, with each one's
    failures in the last hour; ``total`` counts every group matching."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}; one of {', '.join(SORTS)}")
    if not 0 < limit <= MAX_LIMIT or offset < 0:
        raise ValueError(f"limit must be in 1..{MAX_LIMIT} and offset >= 0")
    now = time.time_ns() if now_ns is None else now_ns
    params: dict[str, Any] = {"now": now, "minute": now // MINUTE_NS}
    where = []
    if status is not None:
        where.append(f"{_STATUS} = :status")
        params["status"] = status
    if process:
        where.append("g.process = :process")
        params["process"] = process
    if service:
        where.append("EXISTS (SELECT 1 FROM json_each(g.services) WHERE value = :service)")
        params["service"] = service
    if since_ns is not None:
        where.append("g.last_seen_ns >= :since")
        params["since"] = since_ns
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    total = db.scalar(f"SELECT count(*) FROM error_groups g {clause}", params)
    rows = db.execute(
        f"""SELECT {_COLUMNS}, {_STATUS} AS status, {_LAST_HOUR} AS count_last_hour
            FROM error_groups g {clause} ORDER BY {_ORDER[sort]}
            LIMIT :limit OFFSET :offset""", {**params, "limit": limit, "offset": offset})
    return {"groups": [_row(r) for r in rows], "total": total, "limit": limit,
            "offset": offset, "sort": sort}


def error_group(db: Database, fingerprint: str, *, now_ns: int | None = None
                ) -> dict[str, Any]:
    """One group, with its count in the last hour, a 6-hour sparkline (72 five-minute
    buckets, oldest first, the last ending now) and its latest call still in the store
    (None once purged: ``last_span_id`` still names it)."""
    now = time.time_ns() if now_ns is None else now_ns
    minute = now // MINUTE_NS
    rows = db.execute(
        f"""SELECT {_COLUMNS}, {_STATUS} AS status, {_LAST_HOUR} AS count_last_hour
            FROM error_groups g WHERE g.fingerprint = :fp""",
        {"now": now, "minute": minute, "fp": fingerprint})
    if not rows:
        raise NotFound(f"no error group {fingerprint}")
    group = _row(rows[0])
    group["sparkline"] = sparklines(db, [fingerprint], now_ns=now)[fingerprint]
    latest = db.execute(
        f"""SELECT printf('%016x', s.span_id) AS span_id, {TRACE_ID}, s.start_ns,
                  {SERVICE_NAME} AS service_name, s.pid, s.exception FROM spans s
           WHERE s.error_group = ? ORDER BY s.start_ns DESC LIMIT 1""", (fingerprint,))
    group["latest_call"] = dict(latest[0]) if latest else None
    return group


def sparklines(db: Database, fingerprints: list[str], *, now_ns: int | None = None
               ) -> dict[str, dict[str, Any]]:
    """Each group's 6-hour count sparkline (72 five-minute buckets, oldest first, the
    last ending now), in one read: fingerprint -> ``{bucket_s, start_ns, counts}`` (a
    fingerprint with no failures in the 6 hours gets zeros)."""
    now = time.time_ns() if now_ns is None else now_ns
    minute = now // MINUTE_NS
    first = minute - SPARK_BUCKETS * SPARK_BUCKET_MIN + 1
    counts = {fp: [0] * SPARK_BUCKETS for fp in fingerprints}
    for fp, m, n in db.execute(
            "SELECT fingerprint, minute, count FROM error_group_minutes "
            "WHERE fingerprint IN (SELECT value FROM json_each(?)) "
            "AND minute >= ? AND minute <= ?", (json.dumps(list(counts)), first, minute)):
        counts[fp][(m - first) // SPARK_BUCKET_MIN] += n
    return {fp: {"bucket_s": SPARK_BUCKET_MIN * 60, "start_ns": first * MINUTE_NS,
                 "counts": c} for fp, c in counts.items()}
