"""The trace table's pages: index walks in the sort's order, bounded where a filter
makes a walk's length unbounded, and row counts.

A trace-table page is an index walk that yields its rows already in the sort's
order (``spans_by_time``, ``spans_by_process``, ``spans_errors_by_time``,
``spans_by_duration``…); where a filter makes that walk's length unbounded, the page
is bounded and says so (``Page``, and the comment on SORT_WINDOW_CALLS).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..database import Database
from ..errors import StepBudgetExceeded
from ..schema import DURATION_BUCKET_NS
from .filters import HAS_ROW, NAME_IDS, NAME_PROCESSES, ROW_COLUMNS, SORTS, RowFilter, plan
from .summary import exception_summary

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
# they are bounded (page):
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


def page(db: Database, f: RowFilter, *, sort: str = "-timestamp", offset: int = 0,
         limit: int = 100) -> Page:
    """One page of rows in the seven columns, with span and trace id for drill-down,
    read by an index walk in the sort's order; a walk that must test filters is
    bounded as the comment on SORT_WINDOW_CALLS says (then Page.note says so)."""
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}; one of {sorted(SORTS)}")
    end = offset + limit
    if sort.endswith("duration_ms") and sorts_top_calls(f):
        return _top_calls_page(db, f, sort, limit, offset)
    if sort.endswith("duration_ms") and len(buckets(db, f)) > MAX_DURATION_BUCKETS:
        return _window_page(db, f, sort, limit, offset)
    walk, params = walk_sql(db, f, sort)
    params = [*params, limit, offset]
    if _walk_is_bounded(f, sort):
        return Page(_page_rows(db, walk, params))
    steps = _walk_budget(f, sort, end)
    if steps is not None:
        try:
            return Page(_page_rows(db, walk, params, max_steps=steps))
        except StepBudgetExceeded:
            pass
    return _window_page(db, f, sort, limit, offset)


def walk_sql(db: Database, f: RowFilter, sort: str) -> tuple[str, list[Any]]:
    """The page as one index walk in ``sort`` order (LIMIT ? OFFSET ? to bind)."""
    if sort.lstrip("-") == "status":
        return _status_sql(f, sort)
    if sort.lstrip("-") == "duration_ms":
        if sorts_top_calls(f):
            return _top_calls_sql(f, sort, 100)
        return _duration_sql(db, f, sort)
    where, params = f.where()
    if sort.lstrip("-") == "process":
        # Processes by name outer, each one's calls through spans_by_process inner:
        # the nested loop yields the order. CROSS JOIN keeps SQLite to that nesting.
        source = "processes p CROSS JOIN spans s ON s.process_id = p.id"
    else:
        source = "spans s JOIN processes p ON p.id = s.process_id"
    sql = (f"SELECT {ROW_COLUMNS} FROM {source} LEFT JOIN data_values d ON d.span = s.id "
           f"{where} ORDER BY {SORTS[sort]} LIMIT ? OFFSET ?")
    return sql, params


def buckets(db: Database, f: RowFilter) -> range:
    """The DURATION_BUCKET_NS buckets of start time the filter's calls lie in."""
    first, last = db.execute(
        "SELECT (SELECT min(start_ns) FROM spans), (SELECT max(start_ns) FROM spans)")[0]
    if first is None:
        return range(0)
    since = first if f.since_ns is None else max(f.since_ns, first)
    until = last + 1 if f.until_ns is None else min(f.until_ns, last + 1)
    if since >= until:
        return range(0)
    return range(since // DURATION_BUCKET_NS, (until - 1) // DURATION_BUCKET_NS + 1)


def _duration_sql(db: Database, f: RowFilter, sort: str) -> tuple[str, list[Any]]:
    """One walk per bucket of start time (spans_by_duration, spans_by_process_duration,
    spans_errors_by_duration: each in duration order), merged by SQLite's compound
    SELECT. Only the date range's first and last buckets hold calls outside it."""
    where, params = f.where(range_in_walk=False)
    glue = " AND " if where else "WHERE "
    walks = buckets(db, f) or range(1)  # no call: one walk that finds none
    arm = (f"SELECT {ROW_COLUMNS} FROM spans s JOIN processes p ON p.id = s.process_id "
           f"LEFT JOIN data_values d ON d.span = s.id {where}{glue}"
           f"s.start_ns / {DURATION_BUCKET_NS} = ?")
    sql = " UNION ALL ".join([arm] * len(walks)) + \
        f" ORDER BY {_MERGED_ORDER[sort]} LIMIT ? OFFSET ?"
    return sql, [p for b in walks for p in (*params, b)]


def sorts_top_calls(f: RowFilter) -> bool:
    """Whether a duration page is a top-N over the calls of its process/errors filters
    (every filter it has is in the index that holds duration_ms)."""
    return (f.process is not None or f.errors_only) and f.data is None and f.service is None


def top_calls_sql(f: RowFilter, sort: str) -> tuple[str, list[Any]]:
    """The calls of the process/errors/date filters in the duration ``sort``'s order, as
    (id, duration_ms, start_ns), sorted from an index alone (spans_by_process,
    spans_errors_by_process, spans_errors_by_time hold duration_ms and the row id): no
    row is read (a LIMIT to add). The top-N of the trace table and of the calls view."""
    indexed, params = f.indexed_only().where(rows=False)
    call_order = SORTS[sort].removesuffix(", d.seq")
    return (f"SELECT s.id, s.duration_ms, s.start_ns FROM spans s {indexed} "
            f"ORDER BY {call_order}"), params


def top_calls_count(db: Database, f: RowFilter) -> int | None:
    """How many calls a top-N page sorts (see TOP_CALLS_MAX), or None when they are more:
    then the page takes the bounded strategy."""
    indexed, params = f.indexed_only().where(rows=False)
    n = _at_most(db, f"SELECT 1 FROM spans s {indexed}", params, TOP_CALLS_MAX)
    return None if n > TOP_CALLS_MAX else n


def _top_calls_sql(f: RowFilter, sort: str, calls: int) -> tuple[str, list[Any]]:
    """The first ``calls`` calls of the process/errors/date filters in duration order
    (top_calls_sql), then the page's (call, argument) keys among their rows, then only
    the page's rows are rendered (LIMIT ? OFFSET ? to bind). Exact once those calls make
    at least the page's end in rows."""
    top, params = top_calls_sql(f, sort)
    sql = (f"WITH top AS ({top} LIMIT ?), "
           "keys AS (SELECT t.id, d.seq FROM top t JOIN spans s ON s.id = t.id "
           f"LEFT JOIN data_values d ON d.span = t.id WHERE {HAS_ROW} "
           f"ORDER BY {SORTS[sort].replace('s.', 't.')} LIMIT ? OFFSET ?) "
           f"SELECT {ROW_COLUMNS} FROM keys k JOIN spans s ON s.id = k.id "
           "JOIN processes p ON p.id = s.process_id "
           "LEFT JOIN data_values d ON d.span = k.id AND d.seq = k.seq "
           f"ORDER BY {SORTS[sort]}")
    return sql, [*params, calls]


def _top_calls_page(db: Database, f: RowFilter, sort: str, limit: int, offset: int) -> Page:
    n = top_calls_count(db, f)
    if n is None:
        return _window_page(db, f, sort, limit, offset)
    # A call makes at least one row unless it is an OK call without variables: the
    # first `end` calls nearly always hold the page; if they fall short, sort them all.
    calls = min(offset + limit, n)
    sql, sql_params = _top_calls_sql(f, sort, calls)
    rows = _page_rows(db, sql, [*sql_params, limit, offset])
    if len(rows) < limit and calls < n:
        sql, sql_params = _top_calls_sql(f, sort, n)
        rows = _page_rows(db, sql, [*sql_params, limit, offset])
    return Page(rows, None, "top")


def _status_sql(f: RowFilter, sort: str) -> tuple[str, list[Any]]:
    """Failed calls (spans_errors_by_time/_by_process) and OK calls (spans_by_time/
    _by_process, testing status), each walked in time order, merged by SQLite's
    compound SELECT (status is OK or ERR)."""
    where, params = f.where()
    glue = " AND " if where else "WHERE "
    sides = ["ERR"] if f.errors_only else ["ERR", "OK"]
    parts = [f"SELECT {ROW_COLUMNS} FROM spans s JOIN processes p ON p.id = s.process_id "
             f"LEFT JOIN data_values d ON d.span = s.id {where}{glue}s.status = '{status}'"
             for status in sides]
    sql = " UNION ALL ".join(parts) + f" ORDER BY {_MERGED_ORDER[sort]} LIMIT ? OFFSET ?"
    return sql, params * len(sides)


def window_sql(f: RowFilter, sort: str, end: int, by_name: bool = False
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
        window = f"{_NAME_CALLS} LIMIT ?"
        window_params = [f.data, f.data, SORT_WINDOW_CALLS]
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
                         f"AND v.name_id IN {NAME_IDS})")
            test_params.append(f.data)
    if f.service is not None:
        tests.append("s.service_id = (SELECT id FROM services WHERE name = ?)")
        test_params.append(f.service)
    where = ("WHERE " + " AND ".join(tests)) if tests else ""
    rows_where, rows_params = RowFilter(data=f.data).where()
    call_order = SORTS[sort].removesuffix(", d.seq")
    sql = (f"WITH candidates AS ({window}), "
           "top AS (SELECT s.id FROM candidates c JOIN spans s ON s.id = c.id "
           f"JOIN processes p ON p.id = s.process_id {where} ORDER BY {call_order} "
           "LIMIT ?) "
           f"SELECT {ROW_COLUMNS} FROM top t JOIN spans s ON s.id = t.id "
           "JOIN processes p ON p.id = s.process_id "
           f"LEFT JOIN data_values d ON d.span = s.id {rows_where} "
           f"ORDER BY {SORTS[sort]} LIMIT ? OFFSET ?")
    return sql, [*window_params, *test_params, end, *rows_params]


def _walk_is_bounded(f: RowFilter, sort: str) -> bool:
    """Whether every call the walk reads is a match (so its length is the page's
    end): the filters it tests besides its index make it unbounded."""
    key = sort.lstrip("-")
    return f.data is None and f.service is None and not (
        key == "status" and not f.errors_only)         # the OK walk tests status


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


def _at_most(db: Database, sql: str, params: list[Any], cap: int, *,
             max_steps: int | None = None) -> int:
    """count(*) of ``sql``'s rows, counting no further than ``cap`` + 1 (and, with
    ``max_steps``, taken as more than ``cap`` when counting takes more steps)."""
    if max_steps is None:
        return db.scalar(f"SELECT count(*) FROM ({sql} LIMIT ?)", [*params, cap + 1])
    try:
        return db.execute(f"SELECT count(*) FROM ({sql} LIMIT ?)", [*params, cap + 1],
                          max_steps=max_steps)[0][0]
    except StepBudgetExceeded:
        return cap + 1


# Every call of a variable name (schema 9 has no index on names): the calls of the
# processes that ever had it (process_names), each tested by its rows' keys.
_NAME_CALLS = (f"SELECT s.id FROM spans s WHERE s.process_id IN {NAME_PROCESSES} "
               "AND EXISTS (SELECT 1 FROM data_values v WHERE v.span = s.id "
               f"AND v.name_id IN {NAME_IDS})")
# Steps to find whether a name has few calls: past them it has many, or its processes
# have many calls without it; either way the newest calls' window serves the page.
NAME_CALLS_MAX_STEPS = 200_000


def _window_page(db: Database, f: RowFilter, sort: str, limit: int, offset: int) -> Page:
    end = offset + limit
    # A small candidate set is sorted whole: exact.
    if f.data is not None and _at_most(
            db, _NAME_CALLS, [f.data, f.data], SORT_WINDOW_CALLS,
            max_steps=NAME_CALLS_MAX_STEPS) <= SORT_WINDOW_CALLS:
        sql, sql_params = window_sql(f, sort, end, by_name=True)
        return Page(_page_rows(db, sql, [*sql_params, limit, offset]), None, "window")
    indexed, indexed_params = f.indexed_only().where(rows=False)
    # In time order, as the window reads them (and on the same time-ordered indexes).
    complete = _at_most(db, f"SELECT 1 FROM spans s {indexed} ORDER BY s.start_ns DESC",
                        indexed_params, SORT_WINDOW_CALLS) <= SORT_WINDOW_CALLS
    sql, sql_params = window_sql(f, sort, end)
    return Page(_page_rows(db, sql, [*sql_params, limit, offset]),
                None if complete else SORT_WINDOW_CALLS, "window")


def _page_rows(db: Database, sql: str, params: list[Any], max_steps: int | None = None
               ) -> list[dict[str, Any]]:
    rows = [dict(r) for r in db.execute(sql, params, max_steps=max_steps)]
    for r in rows:
        r.pop("row_id")
        # The Exception cell's one line; "Exception" keeps the traceback.
        r["exception_summary"] = exception_summary(r["Exception"],
                                                   r.pop("row_exception_type"))
    return rows


# A count whose walk tests a filter its index does not hold (a service; a variable name,
# read through its processes' calls, each tested) reads as many rows as the filter is
# rare: a service with few calls read the whole 2M-call benchmark store, 7.9M steps,
# 0.9 s. Such a count gets COUNT_MAX_STEPS (a dense count to the cap takes 120-130k),
# past which it counts the rows of the newest SORT_WINDOW_CALLS calls of the date
# range/process/errors filters, as the page does: at least that many (not exact, unless
# the window holds every one of those calls).
COUNT_MAX_STEPS = 300_000


def count_rows(db: Database, f: RowFilter, cap: int) -> tuple[int, bool]:
    """(rows matching, exact?): counting stops at ``cap``, and a count that tests a
    filter its index does not hold at COUNT_MAX_STEPS (then it counts within the newest
    calls, see above), so it stays fast."""
    sql, params = _count_sql(f)
    if _count_is_bounded(f):
        n = db.scalar(sql, [*params, cap + 1])
        return min(n, cap), n <= cap
    try:
        n = db.execute(sql, [*params, cap + 1], max_steps=COUNT_MAX_STEPS)[0][0]
        return min(n, cap), n <= cap
    except StepBudgetExceeded:
        pass
    indexed, indexed_params = f.indexed_only().where(rows=False)
    complete = _at_most(db, f"SELECT 1 FROM spans s {indexed} ORDER BY s.start_ns DESC",
                        indexed_params, SORT_WINDOW_CALLS) <= SORT_WINDOW_CALLS
    where, where_params = f.where()
    n = db.scalar(f"WITH candidates AS (SELECT s.id FROM spans s {indexed} "
                  "ORDER BY s.start_ns DESC LIMIT ?) "
                  "SELECT count(*) FROM (SELECT 1 FROM candidates c "
                  "JOIN spans s ON s.id = c.id LEFT JOIN data_values d ON d.span = s.id "
                  f"{where} LIMIT ?)",
                  [*indexed_params, SORT_WINDOW_CALLS, *where_params, cap + 1])
    return min(n, cap), complete and n <= cap


def _count_is_bounded(f: RowFilter) -> bool:
    """Whether every row the count's walk reads is counted (so it stops at the cap): its
    index holds every filter it has (the time and process indexes: date range, process,
    errors)."""
    return f.service is None and f.data is None


def _count_sql(f: RowFilter) -> tuple[str, list[Any]]:
    where, params = f.where(in_time_order=False)
    # Without a name (read through its processes' calls), counting the newest rows
    # keeps SQLite on the time-ordered indexes (spans_errors_by_process for a
    # process's failures), not on a duration index of the same process.
    order = "" if f.data is not None else " ORDER BY s.start_ns DESC"
    return (f"SELECT count(*) FROM (SELECT 1 FROM spans s LEFT JOIN data_values d "
            f"ON d.span = s.id {where}{order} LIMIT ?)"), params


def explain_rows(db: Database, f: RowFilter, sort: str) -> str:
    sql, params = walk_sql(db, f, sort)
    return plan(db, sql, [*params, 100, 0])


def explain_window(db: Database, f: RowFilter, sort: str, by_name: bool) -> str:
    sql, params = window_sql(f, sort, 100, by_name=by_name)
    return plan(db, sql, [*params, 100, 0])


def explain_count(db: Database, f: RowFilter) -> str:
    sql, params = _count_sql(f)
    return plan(db, sql, [*params, 1])


def latest_start_ns(db: Database) -> int | None:
    return db.scalar("SELECT max(start_ns) FROM spans")
