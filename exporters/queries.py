"""TraceQueries: every read the UI makes, on a store opened read-only.

The web layer asks this class for data and never builds SQL: each filter value is a
SQL parameter; the only text put into a statement is chosen from fixed tables here
(the sort orders, the WHERE clauses of the filters that are set). Each query reads
through an index (``spans_by_time``, ``spans_by_process``, ``spans_errors_by_time``,
``data_values_by_name``, the primary keys): ``explain_*`` return the plans.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from .store import SpanStore

_NS = 1_000_000_000

# Badge levels of the status ribbon: (amber from, red from).
QUEUE_DEPTH_LEVELS = (1_000, 5_000)            # spans waiting (5,000: backpressure)
WRITE_LAG_MS_LEVELS = (500.0, 2_000.0)         # oldest queued span -> written
FEED_AGE_FACTORS = (1.0, 2.0)                  # x the feed's interval (else its threshold)

COUNT_CAP = 10_000          # row counts stop here (the total is then "at least")
MAX_DURATION_POINTS = 600   # a duration series is bucketed to at most this many points

# Sort keys -> ORDER BY of the page query (ties broken by call then argument order).
SORTS: dict[str, str] = {
    "-timestamp": "s.start_ns DESC, s.id DESC, d.seq",
    "timestamp": "s.start_ns, s.id, d.seq",
    "-duration_ms": "s.duration_ms DESC, s.id DESC, d.seq",
    "duration_ms": "s.duration_ms, s.id, d.seq",
    "process": "p.name, s.start_ns DESC, s.id DESC, d.seq",
    "-process": "p.name DESC, s.start_ns DESC, s.id DESC, d.seq",
    "status": "s.status, s.start_ns DESC, s.id DESC, d.seq",
    "-status": "s.status DESC, s.start_ns DESC, s.id DESC, d.seq",
}

_ISO = ("strftime('%Y-%m-%dT%H:%M:%S', {c} / 1000000000, 'unixepoch')"
        " || printf('.%06dZ', {c} / 1000 % 1000000)")

_ROW_COLUMNS = f"""
    p.name AS "Process", d.data AS "Data", d.data_type AS "Data Type",
    d.data_value AS "Data Value", {_ISO.format(c="s.start_ns")} AS "Timestamp",
    s.status AS "Status", coalesce(s.exception, '') AS "Exception",
    printf('%016x', s.span_id) AS span_id, s.trace_id, s.start_ns, s.duration_ms, d.seq"""


class NotFound(LookupError):
    """No such call or process."""


@dataclass(frozen=True)
class RowFilter:
    """The trace table's filters; None (or False) leaves a filter off."""

    since_ns: int | None = None
    until_ns: int | None = None
    process: str | None = None
    data: str | None = None
    errors_only: bool = False
    service: str | None = None

    def where(self, *, in_time_order: bool = True) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if self.since_ns is not None:
            clauses.append("s.start_ns >= ?")
            params.append(self.since_ns)
        if self.until_ns is not None:
            clauses.append("s.start_ns < ?")
            params.append(self.until_ns)
        if self.process is not None:
            clauses.append("s.process_id = (SELECT id FROM processes WHERE name = ?)")
            params.append(self.process)
        if self.errors_only:
            clauses.append("s.status = 'ERR'")
        if self.service is not None:
            clauses.append("s.service_name = ?")
            params.append(self.service)
        if self.data is not None:
            # For a page, "+" walks calls in time order and tests each call's rows, rather
            # than sorting every row of the name (hundreds of thousands in a full store);
            # a count needs no order and reads data_values_by_name.
            clauses.append("+d.data = ?" if in_time_order else "d.data = ?")
            params.append(self.data)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _span_id_int(span_id: str) -> int:
    """16 hex digits -> the signed 64-bit integer the store keeps."""
    if len(span_id) != 16:
        raise ValueError("span id must be 16 hex digits")
    value = int(span_id, 16)
    return value - (1 << 64) if value >= 1 << 63 else value


class TraceQueries:
    """The UI's reads of one store. Safe to share between threads: each thread gets
    its own read-only connection."""

    def __init__(self, db_path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(db_path)
        self._local = threading.local()
        self._store()  # fail now if the store cannot be opened

    def _store(self) -> SpanStore:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = SpanStore(self.path, readonly=True)
        return store

    def _q(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self._store().query(sql, params)]

    def _plan(self, sql: str, params: Any = ()) -> str:
        rows = self._store().query("EXPLAIN QUERY PLAN " + sql, params)
        return "\n".join(r["detail"] for r in rows)

    # -- the trace table --------------------------------------------------------

    def _rows_sql(self, f: RowFilter, sort: str) -> tuple[str, list[Any]]:
        where, params = f.where()
        sql = (f"SELECT {_ROW_COLUMNS} FROM spans s "
               "JOIN data_values d ON d.span = s.id JOIN processes p ON p.id = s.process_id "
               f"{where} ORDER BY {SORTS[sort]} LIMIT ? OFFSET ?")
        return sql, params

    def rows(self, f: RowFilter, *, sort: str = "-timestamp", offset: int = 0,
             limit: int = 100) -> list[dict[str, Any]]:
        """One page of rows in the seven columns, with span and trace id for drill-down."""
        if sort not in SORTS:
            raise ValueError(f"unknown sort {sort!r}; one of {sorted(SORTS)}")
        sql, params = self._rows_sql(f, sort)
        return self._q(sql, [*params, limit, offset])

    def explain_rows(self, f: RowFilter, sort: str = "-timestamp") -> str:
        sql, params = self._rows_sql(f, sort)
        return self._plan(sql, [*params, 100, 0])

    def count_rows(self, f: RowFilter, cap: int = COUNT_CAP) -> tuple[int, bool]:
        """(rows matching, exact?): counting stops at ``cap``, so it stays fast."""
        where, params = f.where(in_time_order=False)
        sql = (f"SELECT count(*) FROM (SELECT 1 FROM spans s JOIN data_values d ON d.span = s.id "
               f"{where} LIMIT ?)")
        n = self._store().query(sql, [*params, cap + 1])[0][0]
        return min(n, cap), n <= cap

    def explain_count(self, f: RowFilter) -> str:
        where, params = f.where(in_time_order=False)
        return self._plan(f"SELECT count(*) FROM (SELECT 1 FROM spans s JOIN data_values d "
                          f"ON d.span = s.id {where} LIMIT ?)", [*params, 1])

    # -- processes ----------------------------------------------------------------

    def processes(self, *, window_s: float = 1800, now_ns: int | None = None
                  ) -> list[dict[str, Any]]:
        """Every process in the catalog with its group and its calls and errors in the
        window (one index range per process)."""
        since = (now_ns or time.time_ns()) - int(window_s * _NS)
        return self._q(
            """SELECT p.name, p.process_group,
                      (SELECT count(*) FROM spans s WHERE s.process_id = p.id
                          AND s.start_ns >= ?) AS calls,
                      (SELECT count(*) FROM spans s WHERE s.process_id = p.id
                          AND s.start_ns >= ? AND s.status = 'ERR') AS errors
               FROM processes p ORDER BY p.name""", (since, since))

    def services(self, *, window_s: float = 1800, now_ns: int | None = None) -> list[str]:
        """Service names for the UI's filter: those of the calls in the window (an
        index range on time) and of the exporting processes' health rows."""
        since = (now_ns or time.time_ns()) - int(window_s * _NS)
        rows = self._store().query(
            """SELECT service_name FROM spans WHERE start_ns >= ? AND service_name IS NOT NULL
               UNION SELECT service_name FROM health WHERE service_name IS NOT NULL
               ORDER BY 1""", (since,))
        return [r[0] for r in rows]

    def source(self, name: str) -> dict[str, Any]:
        rows = self._q("SELECT name, process_group, file, line, source FROM processes "
                       "WHERE name = ?", (name,))
        if not rows:
            raise NotFound(f"no process named {name!r}")
        return rows[0]

    def _durations_sql(self, bucket: bool) -> str:
        if bucket:
            return """SELECT (s.start_ns - ?) / ? AS bucket, count(*) AS calls,
                             avg(s.duration_ms) AS avg_ms, max(s.duration_ms) AS max_ms,
                             sum(s.status = 'ERR') AS errors
                      FROM spans s WHERE s.process_id = (SELECT id FROM processes WHERE name = ?)
                          AND s.start_ns >= ? AND s.start_ns < ? GROUP BY bucket ORDER BY bucket"""
        return """SELECT s.start_ns, s.duration_ms, s.status FROM spans s
                  WHERE s.process_id = (SELECT id FROM processes WHERE name = ?)
                      AND s.start_ns >= ? AND s.start_ns < ? ORDER BY s.start_ns LIMIT ?"""

    def durations(self, name: str, *, minutes: float = 30, now_ns: int | None = None,
                  points: int = 120) -> dict[str, Any]:
        """``duration_ms`` of a process over the last ``minutes``, in at most ``points``
        time buckets (avg, max, calls, errors per bucket)."""
        self.source(name)  # NotFound for an unknown process
        points = max(1, min(points, MAX_DURATION_POINTS))
        until = now_ns or time.time_ns()
        since = until - int(minutes * 60 * _NS)
        width = max(1, (until - since) // points)
        rows = self._q(self._durations_sql(True), (since, width, name, since, until))
        for r in rows:
            r["start_ns"] = since + r.pop("bucket") * width
        return {"process": name, "since_ns": since, "until_ns": until, "bucket_ns": width,
                "points": rows}

    def explain_durations(self) -> str:
        return self._plan(self._durations_sql(True), (0, 1, "x", 0, 1))

    # -- one call -----------------------------------------------------------------

    def call(self, span_id: str) -> dict[str, Any]:
        """One call: its span, all its inputs/outputs, the traceback, parent and children."""
        sid = _span_id_int(span_id)
        spans = self._q(
            f"""SELECT s.id, printf('%016x', s.span_id) AS span_id, s.trace_id,
                       CASE WHEN s.parent_span_id IS NULL THEN NULL
                            ELSE printf('%016x', s.parent_span_id) END AS parent_span_id,
                       p.name AS process, s.process_group, s.service_name, s.status,
                       s.outcome, s.exception_type, s.exception, s.duration_ms, s.start_ns,
                       {_ISO.format(c="s.start_ns")} AS timestamp, s.pid
                FROM spans s JOIN processes p ON p.id = s.process_id WHERE s.span_id = ?""",
            (sid,))
        if not spans:
            raise NotFound(f"no call with span id {span_id}")
        call = spans[0]
        row_id = call.pop("id")
        call["values"] = self._q("SELECT seq, data, data_type, data_value FROM data_values "
                                 "WHERE span = ? ORDER BY seq", (row_id,))
        call["parent"] = None
        if call["parent_span_id"] is not None:
            parents = self._q(
                "SELECT printf('%016x', s.span_id) AS span_id, p.name AS process, s.status "
                "FROM spans s JOIN processes p ON p.id = s.process_id WHERE s.span_id = ?",
                (_span_id_int(call["parent_span_id"]),))
            call["parent"] = parents[0] if parents else None
        # Children share the trace and start inside the call: one index range on time.
        call["children"] = self._q(
            """SELECT printf('%016x', s.span_id) AS span_id, p.name AS process, s.status,
                      s.duration_ms
               FROM spans s JOIN processes p ON p.id = s.process_id
               WHERE s.start_ns >= ? AND s.start_ns <= ? AND s.parent_span_id = ?
               ORDER BY s.start_ns LIMIT 1000""",
            (call["start_ns"], call["start_ns"] + int(call["duration_ms"] * 1e6) + 1, sid))
        return call

    # -- dependency graph -------------------------------------------------------------

    def _graph_edges_sql(self) -> str:
        return """SELECT pp.name AS source, pc.name AS target, count(*) AS calls
                  FROM spans c JOIN spans par ON par.span_id = c.parent_span_id
                  JOIN processes pc ON pc.id = c.process_id
                  JOIN processes pp ON pp.id = par.process_id
                  WHERE c.start_ns >= ? AND c.parent_span_id IS NOT NULL
                  GROUP BY par.process_id, c.process_id"""

    def graph(self, *, window_s: float = 1800, now_ns: int | None = None) -> dict[str, Any]:
        """Nodes (processes with their last latency and errors in the window; feeds with
        their stale flag) and edges (process -> process from parent/child spans in the
        window; feed -> process from feed consumption)."""
        now = now_ns or time.time_ns()
        since = now - int(window_s * _NS)
        edges = [dict(e, kind="call") for e in self._q(self._graph_edges_sql(), (since,))]
        nodes = {}
        for p in self._q(
                """SELECT p.name, p.process_group,
                          (SELECT s.duration_ms FROM spans s WHERE s.process_id = p.id
                              AND s.start_ns >= ? ORDER BY s.start_ns DESC LIMIT 1)
                              AS last_latency_ms,
                          (SELECT count(*) FROM spans s WHERE s.process_id = p.id
                              AND s.start_ns >= ? AND s.status = 'ERR') AS errors
                   FROM processes p""", (since, since)):
            nodes[p["name"]] = dict(p, id=p["name"], kind="process")
        feeds = {f["name"]: f for f in self.feeds(now_ns=now)}
        for f in feeds.values():
            nodes["feed:" + f["name"]] = {"id": "feed:" + f["name"], "name": f["name"],
                                          "kind": "feed", "stale": f["stale"],
                                          "level": f["level"], "age_s": f["age_s"]}
        for e in self._q("SELECT feed, process, declared, called FROM feed_edges"):
            feed = feeds.get(e["feed"])
            edges.append({"source": "feed:" + e["feed"], "target": e["process"], "kind": "feed",
                          "declared": bool(e["declared"]), "called": bool(e["called"]),
                          "stale": bool(feed and feed["stale"])})
        active = {e["source"] for e in edges} | {e["target"] for e in edges}
        shown = [n for k, n in nodes.items()
                 if k in active or n["kind"] == "feed" or n.get("last_latency_ms") is not None]
        return {"since_ns": since, "until_ns": now, "nodes": shown, "edges": edges}

    def explain_graph(self) -> str:
        return self._plan(self._graph_edges_sql(), (0,))

    # -- status ribbon ----------------------------------------------------------------

    def health(self, *, now_ns: int | None = None) -> dict[str, Any]:
        """Each exporting process's health row and the ribbon's badges with their levels."""
        now = now_ns or time.time_ns()
        rows = self._q("SELECT * FROM health ORDER BY pid")
        for r in rows:
            r["age_s"] = (now - r["updated_ns"]) / _NS
        depth = max((r["queue_depth"] for r in rows), default=0)
        lag = max((r["write_lag_ms"] or 0.0 for r in rows), default=0.0)
        feeds = self.feeds(now_ns=now)
        worst_feed = max(feeds, key=lambda f: _LEVEL_ORDER[f["level"]], default=None)
        badges = {
            "QueueDepth": {"value": depth, "level": _level(depth, QUEUE_DEPTH_LEVELS),
                           "thresholds": QUEUE_DEPTH_LEVELS},
            "SQLiteWriteLag": {"value": lag, "level": _level(lag, WRITE_LAG_MS_LEVELS),
                               "thresholds": WRITE_LAG_MS_LEVELS, "unit": "ms"},
            "LastFeedUpdate": {
                "value": worst_feed["age_s"] if worst_feed else None,
                "feed": worst_feed["name"] if worst_feed else None,
                "level": worst_feed["level"] if worst_feed else "ok", "unit": "s",
                "thresholds": "amber past the feed's interval, red past 2x"},
        }
        since = now - 300 * _NS
        errors_5m = self._store().query(
            "SELECT count(*) FROM spans WHERE status = 'ERR' AND start_ns >= ?", (since,))[0][0]
        return {"badges": badges, "errors_last_5_min": errors_5m, "processes": rows}

    def feeds(self, *, now_ns: int | None = None) -> list[dict[str, Any]]:
        """Each feed with its age, ``stale`` (older than 2x its interval, or its threshold
        without one) and a badge level."""
        now = now_ns or time.time_ns()
        out = self._q("SELECT * FROM feed_status ORDER BY name")
        for f in out:
            limit = f["interval_s"] or f["stale_after_s"]
            age = None if f["last_update_ns"] is None else (now - f["last_update_ns"]) / _NS
            f["age_s"] = age
            if age is None:
                f["level"] = "amber"
            else:
                f["level"] = _level(age, (limit * FEED_AGE_FACTORS[0],
                                          limit * FEED_AGE_FACTORS[1]))
            f["stale"] = f["level"] == "red"
        return out

    def alerts(self, *, limit: int = 50) -> list[dict[str, Any]]:
        return self._q("SELECT * FROM alert_log LIMIT ?", (limit,))

    def banners(self, *, fresh_within_s: float = 10.0, now_ns: int | None = None
                ) -> list[dict[str, Any]]:
        since = (now_ns or time.time_ns()) - int(fresh_within_s * _NS)
        return self._q("SELECT * FROM banners WHERE updated_ns >= ? ORDER BY name, host, pid",
                       (since,))

    def latest_start_ns(self) -> int | None:
        return self._store().query("SELECT max(start_ns) FROM spans")[0][0]


_LEVEL_ORDER = {"ok": 0, "amber": 1, "red": 2}


def _level(value: float, levels: tuple[float, float]) -> str:
    if value >= levels[1]:
        return "red"
    if value >= levels[0]:
        return "amber"
    return "ok"
