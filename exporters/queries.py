"""TraceQueries: every read the UI makes, on a store opened read-only.

The web layer asks this class for data and never builds SQL: each filter value is a
SQL parameter; the only text put into a statement is chosen from fixed tables here
(the sort orders, the WHERE clauses of the filters that are set). Each query reads
through an index (``spans_by_time``, ``spans_by_process``, ``spans_errors_by_time``,
``data_values_by_name``, ``spans_by_duration``, the primary keys):
``explain_*`` return the plans. A trace-table page is an index walk that yields its
rows already in the sort's order; where a filter makes that walk's length unbounded,
the page is bounded and says so (``Page``, and the comment on SORT_WINDOW_CALLS).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from .errors import NotFound, StepBudgetExceeded
from .schema import DURATION_BUCKET_NS
from .store import SpanStore

_NS = 1_000_000_000

# Badge levels of the status ribbon: (amber from, red from).
QUEUE_DEPTH_LEVELS = (1_000, 5_000)            # spans waiting (5,000: backpressure)
WRITE_LAG_MS_LEVELS = (500.0, 2_000.0)         # oldest queued span -> written
FEED_AGE_FACTORS = (1.0, 2.0)                  # x the feed's interval (else its threshold)

COUNT_CAP = 10_000          # row counts stop here (the total is then "at least")
MAX_DURATION_POINTS = 600   # a duration series is bucketed to at most this many points

# Sort keys -> ORDER BY of the page query (ties broken by call then argument order).
# Each is read in that order from an index walk (see _walk_sql), never sorted whole.
SORTS: dict[str, str] = {
    "-timestamp": "s.start_ns DESC, s.id DESC, d.seq",
    "timestamp": "s.start_ns, s.id, d.seq",
    "-duration_ms": "s.duration_ms DESC, s.start_ns DESC, s.id DESC, d.seq",
    "duration_ms": "s.duration_ms, s.start_ns, s.id, d.seq",
    "process": "p.name, s.start_ns DESC, s.id DESC, d.seq",
    "-process": "p.name DESC, s.start_ns DESC, s.id DESC, d.seq",
    "status": "s.status, s.start_ns DESC, s.id DESC, d.seq",
    "-status": "s.status DESC, s.start_ns DESC, s.id DESC, d.seq",
}
# Status pages merge two time-ordered walks (failed calls, OK calls), duration pages one
# walk per DURATION_BUCKET_NS: the ORDER BY of a compound SELECT names result columns.
_MERGED_ORDER = {"status": '"Status", start_ns DESC, row_id DESC, seq',
                 "-status": '"Status" DESC, start_ns DESC, row_id DESC, seq',
                 "duration_ms": "duration_ms, start_ns, row_id, seq",
                 "-duration_ms": "duration_ms DESC, start_ns DESC, row_id DESC, seq"}
MAX_DURATION_BUCKETS = 300  # a duration page over a longer span (25 h) is windowed

# A duration page of one process's calls or of the failed calls (and a date range) is an
# exact top-N over the calls of those filters, read from an index that holds duration_ms
# (spans_by_process, spans_errors_by_*: no row is read until the page's calls are known),
# as long as they are at most TOP_CALLS_MAX calls (a 40,000-call process of the benchmark
# store sorts in about 7 ms); more take the bounded strategy below.
TOP_CALLS_MAX = 100_000

# Pages whose walk must test a filter its index does not hold (a variable name, a
# service; the OK calls of a status sort) read as many calls as the filter is rare, so
# they are bounded (TraceQueries.page):
# - a walk gets a budget of SQLite steps, WALK_FIRST_STEPS and WALK_STEPS_PER_ROW per
#   row up to the page's end, at most WALK_MAX_STEPS (a page of dense matches takes
#   10-45 a row, 100 in a merge of 73 duration walks; a filter matching 1 call in 5,
#   about 200). Steps are counted, not time, so the choice does not depend on load;
# - past that budget, and at once for a duration sort with a variable name or with a
#   service and a process or errors filter, or a status sort with a variable name (a
#   test there reads each call's pages in random order: 180 ms for a 1,100-row page of
#   a name in 1 call in 5, on the 10M-row benchmark store), a candidate set of at most
#   SORT_WINDOW_CALLS calls (the calls of that variable name, or of the date
#   range/process/errors filters) is read whole and sorted: exact;
# - else the page is sorted within the newest SORT_WINDOW_CALLS calls of the date
#   range/process/errors filters, and says so (Page.note).
SORT_WINDOW_CALLS = 5_000
WALK_FIRST_STEPS = 20_000  # a duration walk starts one walk per 5-minute bucket (~200 each)
WALK_STEPS_PER_ROW = {"timestamp": 250, "process": 100, "status": 150, "duration_ms": 120}
WALK_MAX_STEPS = {"timestamp": 300_000, "process": 100_000, "status": 150_000,
                  "duration_ms": 130_000}

_ISO = ("strftime('%Y-%m-%dT%H:%M:%S', {c} / 1000000000, 'unixepoch')"
        " || printf('.%06dZ', {c} / 1000 % 1000000)")

# A call with no variable joins no data row (LEFT JOIN). A failed one is still a row,
# with empty Data cells, so no failure is missing from the table; an OK one (a plain
# OTel span, say) has nothing to show in the seven columns and makes no row.
_HAS_ROW = "(d.span IS NOT NULL OR s.status = 'ERR')"

_ROW_COLUMNS = f"""
    p.name AS "Process", coalesce(d.data, '') AS "Data", coalesce(d.data_type, '') AS "Data Type",
    coalesce(d.data_value, '') AS "Data Value", {_ISO.format(c="s.start_ns")} AS "Timestamp",
    s.status AS "Status", coalesce(s.exception, '') AS "Exception",
    printf('%016x', s.span_id) AS span_id, s.trace_id, s.start_ns, s.duration_ms, d.seq,
    s.id AS row_id"""


@dataclass(frozen=True)
class RowFilter:
    """The trace table's filters; None (or False) leaves a filter off."""

    since_ns: int | None = None
    until_ns: int | None = None
    process: str | None = None
    data: str | None = None
    errors_only: bool = False
    service: str | None = None

    def where(self, *, in_time_order: bool = True, range_in_walk: bool = True,
              rows: bool = True) -> tuple[str, list[Any]]:
        """The WHERE clause and its parameters, for a query joining ``d`` (the call's
        variables, LEFT JOIN) unless ``rows=False``. ``range_in_walk=False`` marks the
        date range "+" so a duration walk is not traded for a time-index range and a sort."""
        clauses: list[str] = [_HAS_ROW] if rows else []
        params: list[Any] = []
        col = "s.start_ns" if range_in_walk else "+s.start_ns"
        if self.since_ns is not None:
            clauses.append(f"{col} >= ?")
            params.append(self.since_ns)
        if self.until_ns is not None:
            clauses.append(f"{col} < ?")
            params.append(self.until_ns)
        if self.process is not None:
            clauses.append("s.process_id = (SELECT id FROM processes WHERE name = ?)")
            params.append(self.process)
        if self.errors_only:
            clauses.append("s.status = 'ERR'")
        if self.service is not None:
            clauses.append("s.service_name = ?")
            params.append(self.service)
        if self.data is not None and rows:
            # For a page, "+" walks calls in the page's order and tests each call's rows,
            # rather than sorting every row of the name (hundreds of thousands in a full
            # store); a count needs no order and reads data_values_by_name.
            clauses.append("+d.data = ?" if in_time_order else "d.data = ?")
            params.append(self.data)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    def indexed_only(self) -> RowFilter:
        """The filters an index walk holds (date range, process, errors only)."""
        return RowFilter(since_ns=self.since_ns, until_ns=self.until_ns,
                         process=self.process, errors_only=self.errors_only)


@dataclass(frozen=True)
class Page:
    """One page of the trace table. ``window_calls`` is None when the page is exact;
    else it was sorted within that many newest calls of the indexed filters (the
    bounded strategy) and ``note`` says so in words the UI shows."""

    rows: list[dict[str, Any]]
    window_calls: int | None = None
    strategy: str = "walk"          # "top": exact top-N; "window": the bounded strategy

    @property
    def note(self) -> str | None:
        if self.window_calls is None:
            return None
        return (f"Sorted within the newest {self.window_calls:,} calls of the date range, "
                "process and errors filters: the other filters match too rarely to sort "
                "the whole range quickly. Narrow the date range for an exact order.")


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

    def _walk_sql(self, f: RowFilter, sort: str) -> tuple[str, list[Any]]:
        """The page as one index walk in ``sort`` order (LIMIT ? OFFSET ? to bind)."""
        if sort.lstrip("-") == "status":
            return self._status_sql(f, sort)
        if sort.lstrip("-") == "duration_ms":
            if self._sorts_top_calls(f):
                return self._top_calls_sql(f, sort, 100)
            return self._duration_sql(f, sort)
        where, params = f.where()
        if sort.lstrip("-") == "process":
            # Processes by name outer, each one's calls through spans_by_process inner:
            # the nested loop yields the order. CROSS JOIN keeps SQLite to that nesting.
            source = "processes p CROSS JOIN spans s ON s.process_id = p.id"
        else:
            source = "spans s JOIN processes p ON p.id = s.process_id"
        sql = (f"SELECT {_ROW_COLUMNS} FROM {source} LEFT JOIN data_values d ON d.span = s.id "
               f"{where} ORDER BY {SORTS[sort]} LIMIT ? OFFSET ?")
        return sql, params

    def _buckets(self, f: RowFilter) -> range:
        """The DURATION_BUCKET_NS buckets of start time the filter's calls lie in."""
        first, last = self._store().query(
            "SELECT (SELECT min(start_ns) FROM spans), (SELECT max(start_ns) FROM spans)")[0]
        if first is None:
            return range(0)
        since = first if f.since_ns is None else max(f.since_ns, first)
        until = last + 1 if f.until_ns is None else min(f.until_ns, last + 1)
        if since >= until:
            return range(0)
        return range(since // DURATION_BUCKET_NS, (until - 1) // DURATION_BUCKET_NS + 1)

    def _duration_sql(self, f: RowFilter, sort: str) -> tuple[str, list[Any]]:
        """One walk per bucket of start time (spans_by_duration, spans_by_process_duration,
        spans_errors_by_duration: each in duration order), merged by SQLite's compound
        SELECT. Only the date range's first and last buckets hold calls outside it."""
        where, params = f.where(range_in_walk=False)
        glue = " AND " if where else "WHERE "
        buckets = self._buckets(f) or range(1)  # no call: one walk that finds none
        arm = (f"SELECT {_ROW_COLUMNS} FROM spans s JOIN processes p ON p.id = s.process_id "
               f"LEFT JOIN data_values d ON d.span = s.id {where}{glue}"
               f"s.start_ns / {DURATION_BUCKET_NS} = ?")
        sql = " UNION ALL ".join([arm] * len(buckets)) + \
            f" ORDER BY {_MERGED_ORDER[sort]} LIMIT ? OFFSET ?"
        return sql, [p for b in buckets for p in (*params, b)]

    @staticmethod
    def _sorts_top_calls(f: RowFilter) -> bool:
        """Whether a duration page is a top-N over the calls of its process/errors filters
        (every filter it has is in the index that holds duration_ms)."""
        return (f.process is not None or f.errors_only) and f.data is None and f.service is None

    @staticmethod
    def _top_calls_sql(f: RowFilter, sort: str, calls: int) -> tuple[str, list[Any]]:
        """The first ``calls`` calls of the process/errors/date filters in duration order,
        sorted from an index alone (spans_by_process, spans_errors_by_process,
        spans_errors_by_time hold duration_ms, and the row id), then the page's (call,
        argument) keys among their rows, then only the page's rows are rendered (LIMIT ?
        OFFSET ? to bind). Exact once those calls make at least the page's end in rows."""
        indexed, params = f.indexed_only().where(rows=False)
        call_order = SORTS[sort].removesuffix(", d.seq")
        sql = (f"WITH top AS (SELECT s.id, s.duration_ms, s.start_ns FROM spans s {indexed} "
               f"ORDER BY {call_order} LIMIT ?), "
               "keys AS (SELECT t.id, d.seq FROM top t JOIN spans s ON s.id = t.id "
               f"LEFT JOIN data_values d ON d.span = t.id WHERE {_HAS_ROW} "
               f"ORDER BY {SORTS[sort].replace('s.', 't.')} LIMIT ? OFFSET ?) "
               f"SELECT {_ROW_COLUMNS} FROM keys k JOIN spans s ON s.id = k.id "
               "JOIN processes p ON p.id = s.process_id "
               "LEFT JOIN data_values d ON d.span = k.id AND d.seq = k.seq "
               f"ORDER BY {SORTS[sort]}")
        return sql, [*params, calls]

    def _top_calls_page(self, f: RowFilter, sort: str, limit: int, offset: int) -> Page:
        indexed, params = f.indexed_only().where(rows=False)
        n = self._at_most(f"SELECT 1 FROM spans s {indexed}", params, TOP_CALLS_MAX)
        if n > TOP_CALLS_MAX:
            return self._window_page(f, sort, limit, offset)
        # A call makes at least one row unless it is an OK call without variables: the
        # first `end` calls nearly always hold the page; if they fall short, sort them all.
        calls = min(offset + limit, n)
        sql, sql_params = self._top_calls_sql(f, sort, calls)
        rows = self._page_rows(sql, [*sql_params, limit, offset])
        if len(rows) < limit and calls < n:
            sql, sql_params = self._top_calls_sql(f, sort, n)
            rows = self._page_rows(sql, [*sql_params, limit, offset])
        return Page(rows, None, "top")

    def _status_sql(self, f: RowFilter, sort: str) -> tuple[str, list[Any]]:
        """Failed calls (spans_errors_by_time/_by_process) and OK calls (spans_by_time/
        _by_process, testing status), each walked in time order, merged by SQLite's
        compound SELECT (status is OK or ERR)."""
        where, params = f.where()
        glue = " AND " if where else "WHERE "
        sides = ["ERR"] if f.errors_only else ["ERR", "OK"]
        parts = [f"SELECT {_ROW_COLUMNS} FROM spans s JOIN processes p ON p.id = s.process_id "
                 f"LEFT JOIN data_values d ON d.span = s.id {where}{glue}s.status = '{status}'"
                 for status in sides]
        sql = " UNION ALL ".join(parts) + f" ORDER BY {_MERGED_ORDER[sort]} LIMIT ? OFFSET ?"
        return sql, params * len(sides)

    def _window_sql(self, f: RowFilter, sort: str, end: int, by_name: bool = False
                    ) -> tuple[str, list[Any]]:
        """A page sorted within a window of candidate calls: the newest SORT_WINDOW_CALLS
        calls of the date range/process/errors filters, or (``by_name``) every call of
        the variable name. The other filters are tested on them. Calls are sorted before
        their rows are read: each call makes a row, so the first ``end`` calls hold the
        page (LIMIT ? OFFSET ? to bind)."""
        indexed, indexed_params = f.indexed_only().where(rows=False)
        tests: list[str] = []
        test_params: list[Any] = []
        if by_name:
            window = "SELECT span AS id FROM data_values WHERE data = ? LIMIT ?"
            window_params = [f.data, SORT_WINDOW_CALLS]
            if indexed:
                tests.append(indexed.removeprefix("WHERE "))
                test_params += indexed_params
        else:
            window = f"SELECT s.id FROM spans s {indexed} ORDER BY s.start_ns DESC LIMIT ?"
            window_params = [*indexed_params, SORT_WINDOW_CALLS]
            # Only calls that make a row.
            tests.append("(s.status = 'ERR' OR EXISTS (SELECT 1 FROM data_values v "
                         "WHERE v.span = s.id))")
            if f.data is not None:
                tests.append("EXISTS (SELECT 1 FROM data_values v WHERE v.span = s.id "
                             "AND v.data = ?)")
                test_params.append(f.data)
        if f.service is not None:
            tests.append("s.service_name = ?")
            test_params.append(f.service)
        where = ("WHERE " + " AND ".join(tests)) if tests else ""
        rows_where, rows_params = RowFilter(data=f.data).where()
        call_order = SORTS[sort].removesuffix(", d.seq")
        sql = (f"WITH candidates AS ({window}), "
               "top AS (SELECT s.id FROM candidates c JOIN spans s ON s.id = c.id "
               f"JOIN processes p ON p.id = s.process_id {where} ORDER BY {call_order} "
               "LIMIT ?) "
               f"SELECT {_ROW_COLUMNS} FROM top t JOIN spans s ON s.id = t.id "
               "JOIN processes p ON p.id = s.process_id "
               f"LEFT JOIN data_values d ON d.span = s.id {rows_where} "
               f"ORDER BY {SORTS[sort]} LIMIT ? OFFSET ?")
        return sql, [*window_params, *test_params, end, *rows_params]

    @staticmethod
    def _walk_is_bounded(f: RowFilter, sort: str) -> bool:
        """Whether every call the walk reads is a match (so its length is the page's
        end): the filters it tests besides its index make it unbounded."""
        key = sort.lstrip("-")
        return f.data is None and f.service is None and not (
            key == "status" and not f.errors_only)         # the OK walk tests status

    @staticmethod
    def _walk_budget(f: RowFilter, sort: str, end: int) -> int | None:
        """The steps a walk that tests filters may take, or None: straight to a window
        (a duration walk testing a name, a process or failures; a status walk testing a
        name)."""
        key = sort.lstrip("-")
        if key in ("duration_ms", "status") and f.data is not None:
            return None
        if key == "duration_ms" and (f.process is not None or f.errors_only):
            return None  # (with a service: the duration index holds neither)
        return min(WALK_FIRST_STEPS + WALK_STEPS_PER_ROW[key] * end, WALK_MAX_STEPS[key])

    def _at_most(self, sql: str, params: list[Any], cap: int) -> int:
        """count(*) of ``sql``'s rows, counting no further than ``cap`` + 1."""
        return self._store().query(f"SELECT count(*) FROM ({sql} LIMIT ?)",
                                   [*params, cap + 1])[0][0]

    def page(self, f: RowFilter, *, sort: str = "-timestamp", offset: int = 0,
             limit: int = 100) -> Page:
        """One page of rows in the seven columns, with span and trace id for drill-down,
        read by an index walk in the sort's order; a walk that must test filters is
        bounded as the comment on SORT_WINDOW_CALLS says (then Page.note says so)."""
        if sort not in SORTS:
            raise ValueError(f"unknown sort {sort!r}; one of {sorted(SORTS)}")
        end = offset + limit
        if sort.endswith("duration_ms") and self._sorts_top_calls(f):
            return self._top_calls_page(f, sort, limit, offset)
        if sort.endswith("duration_ms") and len(self._buckets(f)) > MAX_DURATION_BUCKETS:
            return self._window_page(f, sort, limit, offset)
        walk, params = self._walk_sql(f, sort)
        params = [*params, limit, offset]
        if self._walk_is_bounded(f, sort):
            return Page(self._page_rows(walk, params))
        steps = self._walk_budget(f, sort, end)
        if steps is not None:
            try:
                return Page(self._page_rows(walk, params, max_steps=steps))
            except StepBudgetExceeded:
                pass
        return self._window_page(f, sort, limit, offset)

    def _window_page(self, f: RowFilter, sort: str, limit: int, offset: int) -> Page:
        end = offset + limit
        # A small candidate set is sorted whole: exact.
        if f.data is not None and self._at_most(
                "SELECT 1 FROM data_values WHERE data = ?", [f.data], SORT_WINDOW_CALLS
        ) <= SORT_WINDOW_CALLS:
            sql, sql_params = self._window_sql(f, sort, end, by_name=True)
            return Page(self._page_rows(sql, [*sql_params, limit, offset]), None, "window")
        indexed, indexed_params = f.indexed_only().where(rows=False)
        # In time order, as the window reads them (and on the same time-ordered indexes).
        complete = self._at_most(f"SELECT 1 FROM spans s {indexed} ORDER BY s.start_ns DESC",
                                 indexed_params, SORT_WINDOW_CALLS) <= SORT_WINDOW_CALLS
        sql, sql_params = self._window_sql(f, sort, end)
        return Page(self._page_rows(sql, [*sql_params, limit, offset]),
                    None if complete else SORT_WINDOW_CALLS, "window")

    def _page_rows(self, sql: str, params: list[Any], max_steps: int | None = None
                   ) -> list[dict[str, Any]]:
        rows = [dict(r) for r in self._store().db.execute(sql, params, max_steps=max_steps)]
        for r in rows:
            r.pop("row_id")
        return rows

    def rows(self, f: RowFilter, *, sort: str = "-timestamp", offset: int = 0,
             limit: int = 100) -> list[dict[str, Any]]:
        """The rows of ``page``."""
        return self.page(f, sort=sort, offset=offset, limit=limit).rows

    def explain_rows(self, f: RowFilter, sort: str = "-timestamp") -> str:
        """The page's index walk."""
        sql, params = self._walk_sql(f, sort)
        return self._plan(sql, [*params, 100, 0])

    def explain_window(self, f: RowFilter, sort: str = "-timestamp", *,
                       by_name: bool = False) -> str:
        """The bounded strategy's plan (its sort is over at most SORT_WINDOW_CALLS calls)."""
        sql, params = self._window_sql(f, sort, 100, by_name=by_name)
        return self._plan(sql, [*params, 100, 0])

    def count_rows(self, f: RowFilter, cap: int = COUNT_CAP) -> tuple[int, bool]:
        """(rows matching, exact?): counting stops at ``cap``, so it stays fast."""
        sql, params = self._count_sql(f)
        n = self._store().query(sql, [*params, cap + 1])[0][0]
        return min(n, cap), n <= cap

    def explain_count(self, f: RowFilter) -> str:
        sql, params = self._count_sql(f)
        return self._plan(sql, [*params, 1])

    @staticmethod
    def _count_sql(f: RowFilter) -> tuple[str, list[Any]]:
        where, params = f.where(in_time_order=False)
        # Without a name (read through data_values_by_name), counting the newest rows
        # keeps SQLite on the time-ordered indexes (spans_errors_by_process for a
        # process's failures), not on a duration index of the same process.
        order = "" if f.data is not None else " ORDER BY s.start_ns DESC"
        return (f"SELECT count(*) FROM (SELECT 1 FROM spans s LEFT JOIN data_values d "
                f"ON d.span = s.id {where}{order} LIMIT ?)"), params

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
        # The window's children and their parents' ids come from spans_by_time alone;
        # each parent is one lookup by span id; names are joined to the grouped edges,
        # not to every call.
        return """SELECT pp.name AS source, pc.name AS target, e.calls
                  FROM (SELECT par.process_id AS parent, c.process_id AS child,
                               count(*) AS calls
                        FROM spans c JOIN spans par ON par.span_id = c.parent_span_id
                        WHERE c.start_ns >= ? AND c.parent_span_id IS NOT NULL
                        GROUP BY par.process_id, c.process_id) e
                  JOIN processes pp ON pp.id = e.parent JOIN processes pc ON pc.id = e.child"""

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
