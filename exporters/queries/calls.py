"""Processes and single calls: the catalog, a process's source and its durations over
time, and one call with its values, parent and children (the drill-down)."""
from __future__ import annotations

import time
from typing import Any

from ..columns import DATA_RESOURCE_HOST
from ..database import Database
from ..errors import NotFound
from ..literals import literal_eval
from ..schema import OUTCOME, TRACE_KEY
from .filters import ISO, NS, SERVICE_NAME, TRACE_ID, dicts, plan

MAX_DURATION_POINTS = 600   # a duration series is bucketed to at most this many points


def processes(db: Database, *, window_s: float, now_ns: int | None) -> list[dict[str, Any]]:
    """Every process in the catalog with its group and its calls and errors in the
    window (one index range per process)."""
    since = (now_ns or time.time_ns()) - int(window_s * NS)
    return dicts(db, """SELECT p.name, p.process_group,
                          (SELECT count(*) FROM spans s WHERE s.process_id = p.id
                              AND s.start_ns >= ?) AS calls,
                          (SELECT count(*) FROM spans s WHERE s.process_id = p.id
                              AND s.start_ns >= ? AND s.status = 'ERR') AS errors
                   FROM processes p ORDER BY p.name""", (since, since))


MINUTE_NS = 60 * NS
MAX_MINUTE = 2**62 // MINUTE_NS  # the range's upper bound: rollup minutes are read as a
                                 # range on the table's key (minute, ...), not a scan

# The window's whole minutes from the per-minute rollups (written in the calls'
# transaction: exporters.rollups), the part of a minute at its start from the calls
# (an index range on time), and the exporting processes' health rows.
_SERVICES_SQL = """SELECT v.name FROM services v WHERE v.id IN (SELECT service_id FROM spans
                       WHERE start_ns >= ? AND start_ns < ? AND service_id IS NOT NULL)
                   UNION SELECT service_name FROM call_rollups
                       WHERE minute >= ? AND minute < ? AND service_name != ''
                   UNION SELECT service_name FROM health WHERE service_name IS NOT NULL
                   ORDER BY 1"""


def _services_args(since: int) -> tuple[int, int, int, int]:
    first = -(-since // MINUTE_NS)  # the window's first whole minute
    return since, first * MINUTE_NS, first, MAX_MINUTE


def services(db: Database, *, window_s: float, now_ns: int | None) -> list[str]:
    """Service names for the UI's filter: those of the calls in the window and of the
    exporting processes' health rows. Read from the rollups for the window's whole
    minutes (a few rows a minute, where the calls are thousands: the 30-min window of
    the 2M-call store took ~50 ms from the calls, <1 ms this way)."""
    since = (now_ns or time.time_ns()) - int(window_s * NS)
    return [r[0] for r in db.execute(_SERVICES_SQL, _services_args(since))]


def explain_services(db: Database) -> str:
    return plan(db, _SERVICES_SQL, _services_args(0))


def source(db: Database, name: str) -> dict[str, Any]:
    rows = dicts(db, "SELECT name, process_group, file, line, source FROM processes "
                     "WHERE name = ?", (name,))
    if not rows:
        raise NotFound(f"no process named {name!r}")
    return rows[0]


_DURATIONS_SQL = """SELECT (s.start_ns - ?) / ? AS bucket, count(*) AS calls,
                         avg(s.duration_ms) AS avg_ms, max(s.duration_ms) AS max_ms,
                         sum(s.status = 'ERR') AS errors
                  FROM spans s WHERE s.process_id = (SELECT id FROM processes WHERE name = ?)
                      AND s.start_ns >= ? AND s.start_ns < ? GROUP BY bucket ORDER BY bucket"""


def durations(db: Database, name: str, *, minutes: float, now_ns: int | None,
              points: int) -> dict[str, Any]:
    """``duration_ms`` of a process over the last ``minutes``, in at most ``points``
    time buckets (avg, max, calls, errors per bucket)."""
    source(db, name)  # NotFound for an unknown process
    points = max(1, min(points, MAX_DURATION_POINTS))
    until = now_ns or time.time_ns()
    since = until - int(minutes * 60 * NS)
    width = max(1, (until - since) // points)
    rows = dicts(db, _DURATIONS_SQL, (since, width, name, since, until))
    for r in rows:
        r["start_ns"] = since + r.pop("bucket") * width
    return {"process": name, "since_ns": since, "until_ns": until, "bucket_ns": width,
            "points": rows}


def explain_durations(db: Database) -> str:
    return plan(db, _DURATIONS_SQL, (0, 1, "x", 0, 1))


def _span_id_int(span_id: str) -> int:
    """16 hex digits -> the signed 64-bit integer the store keeps."""
    if len(span_id) != 16:
        raise ValueError("span id must be 16 hex digits")
    value = int(span_id, 16)
    return value - (1 << 64) if value >= 1 << 63 else value


def call(db: Database, span_id: str) -> dict[str, Any]:
    """One call: its span, all its inputs/outputs, the traceback, parent and children;
    ``host``: a received span's resource ``host.name`` (None for a local call);
    ``error_group``: a failed call's group fingerprint (None for an OK call)."""
    sid = _span_id_int(span_id)
    spans = dicts(db,
        f"""SELECT s.id, printf('%016x', s.span_id) AS span_id, {TRACE_ID},
                   CASE WHEN s.parent_span_id IS NULL THEN NULL
                        ELSE printf('%016x', s.parent_span_id) END AS parent_span_id,
                   p.name AS process, p.process_group, {SERVICE_NAME} AS service_name,
                   s.status,
                   {OUTCOME.format(s="s")} AS outcome, s.exception_type, s.exception,
                   s.duration_ms, s.start_ns,
                   {ISO.format(c="s.start_ns")} AS timestamp, s.pid, s.error_group
            FROM spans s JOIN processes p ON p.id = s.process_id WHERE s.span_id = ?""",
        (sid,))
    if not spans:
        raise NotFound(f"no call with span id {span_id}")
    found = spans[0]
    row_id = found.pop("id")
    found["values"] = dicts(db, "SELECT v.seq, n.name AS data, n.kind AS data_type, "
                                "v.data_value FROM data_values v "
                                "JOIN data_names n ON n.id = v.name_id "
                                "WHERE v.span = ? ORDER BY v.seq", (row_id,))
    found["host"] = _host(found["values"])
    found["parent"] = None
    if found["parent_span_id"] is not None:
        parents = dicts(db,
            "SELECT printf('%016x', s.span_id) AS span_id, p.name AS process, s.status "
            "FROM spans s JOIN processes p ON p.id = s.process_id WHERE s.span_id = ?",
            (_span_id_int(found["parent_span_id"]),))
        found["parent"] = parents[0] if parents else None
    # Children by parent id (not a time window: async, late and skewed children stay).
    children = dicts(db, _CHILDREN_SQL, (bytes.fromhex(found["trace_id"]), sid))
    children.sort(key=lambda r: r.pop("start_ns"))
    found["children"] = children[:MAX_CHILDREN]
    return found


def host_of(values: list[dict[str, Any]]) -> str | None:
    """A received span's host (see ``_host``)."""
    return _host(values)


def _host(values: list[dict[str, Any]]) -> str | None:
    """A received span's host: its resource's ``host.name``, kept as a value's ``repr``."""
    for value in values:
        if value["data"] == DATA_RESOURCE_HOST:
            try:
                return str(literal_eval(value["data_value"]))
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return value["data_value"]  # cut to the value bound: as it is
    return None


_LAST_GOOD_SQL = """SELECT printf('%016x', s.span_id) AS span_id FROM spans s
                    WHERE s.process_id = (SELECT id FROM processes WHERE name = ?)
                        AND s.start_ns < ? AND s.status = 'OK'
                    ORDER BY s.start_ns DESC LIMIT 1"""


def last_good(db: Database, span_id: str) -> dict[str, Any]:
    """The most recent OK call of the same process that started before call ``span_id``
    (a walk back along ``spans_by_process``); NotFound when there is none."""
    found = call(db, span_id)
    rows = db.execute(_LAST_GOOD_SQL, (found["process"], found["start_ns"]))
    if not rows:
        raise NotFound(f"no OK call of {found['process']} before {span_id}")
    return call(db, rows[0][0])


def explain_last_good(db: Database) -> str:
    return plan(db, _LAST_GOOD_SQL, ("x", 0))


# One trace's spans: a range of spans_by_trace (the id's last 8 bytes), then the whole id.
_IN_TRACE = (f"{TRACE_KEY.format(col='s.trace_id')} = {TRACE_KEY.format(col='?1')} "
             "AND s.trace_id = ?1")
_CHILDREN_SQL = f"""SELECT printf('%016x', s.span_id) AS span_id, p.name AS process, s.status,
                          s.duration_ms, s.start_ns
                   FROM spans s JOIN processes p ON p.id = s.process_id
                   WHERE {_IN_TRACE} AND s.parent_span_id = ?2"""
MAX_CHILDREN = 1000  # the drill-down lists the first children, in start order

MAX_TRACE_SPANS = 50_000   # a trace view reads at most this many spans

_TRACE_SQL = f"""SELECT printf('%016x', s.span_id) AS span_id,
                       CASE WHEN s.parent_span_id IS NULL THEN NULL
                            ELSE printf('%016x', s.parent_span_id) END AS parent_span_id,
                       p.name AS process, s.start_ns, s.duration_ms, s.status, s.pid,
                       {SERVICE_NAME} AS service_name, s.exception_type
                FROM spans s JOIN processes p ON p.id = s.process_id
                WHERE {_IN_TRACE} LIMIT ?2"""


def trace(db: Database, trace_id: str) -> dict[str, Any]:
    """Every span of a trace in the store (one range of ``spans_by_trace``), in start
    order, with parent ids; ``truncated`` when the trace has more than MAX_TRACE_SPANS."""
    if len(trace_id) != 32:
        raise ValueError("trace id must be 32 hex digits")
    trace_id = trace_id.lower()
    int(trace_id, 16)  # ValueError for a non-hex id
    spans = dicts(db, _TRACE_SQL, (bytes.fromhex(trace_id), MAX_TRACE_SPANS + 1))
    if not spans:
        raise NotFound(f"no span of trace {trace_id} in the store")
    truncated = len(spans) > MAX_TRACE_SPANS
    spans = sorted(spans[:MAX_TRACE_SPANS], key=lambda r: (r["start_ns"], r["span_id"]))
    return {"trace_id": trace_id, "spans": spans, "truncated": truncated}


def explain_children(db: Database) -> str:
    return plan(db, _CHILDREN_SQL, (bytes(16), 0))


def explain_trace(db: Database) -> str:
    return plan(db, _TRACE_SQL, (bytes(16), 1))
