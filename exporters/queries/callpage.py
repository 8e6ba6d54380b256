"""The calls view: one row per call (process, inputs summary, output, duration, status,
exception summary), with the trace table's filters, sorts and paging, read from the same
indexes.

A page is an index walk of ``spans`` in the sort's order (``spans_by_time``,
``spans_by_process``, ``spans_errors_by_time``; for a status sort the failed and the OK
calls merged, for a duration sort one ``spans_by_duration`` walk per bucket of start time
merged), as the trace table's pages are; a duration page of one process's calls or of the
failed calls is the trace table's exact top-N, sorted from an index that holds duration
(``pages.top_calls_sql``, at most ``pages.TOP_CALLS_MAX`` calls). Only then are the
page's variables read, by their primary key. A walk that must test a filter its index
does not hold (a variable name, a service; the OK calls of a status sort) gets a budget
of SQLite steps; past it the page is sorted within the newest SORT_WINDOW_CALLS calls of
the indexed filters and says so (``Page.note``), as the trace table's pages do.
"""
from __future__ import annotations

from typing import Any

from ..database import Database
from ..errors import StepBudgetExceeded
from ..schema import DURATION_BUCKET_NS
from . import pages
from .filters import ISO, NAME_IDS, NAME_PROCESSES, SORTS, TRACE_ID, RowFilter, plan
from .pages import Page
from .summary import _bounded, exception_summary

INPUTS_CHARS = 160   # the inputs summary's bound
VALUE_CHARS = 40     # one input's value within it
OUTPUT_CHARS = 120

CALL_COLUMNS = f"""
    p.name AS process, {ISO.format(c="s.start_ns")} AS timestamp, s.status AS status,
    s.duration_ms AS duration_ms, s.exception_type AS exception_type,
    s.exception AS exception, printf('%016x', s.span_id) AS span_id, {TRACE_ID},
    s.start_ns, s.id AS row_id"""

# Sort key -> ORDER BY of a calls page (SORTS without the argument order).
CALL_SORTS = {k: v.removesuffix(", d.seq") for k, v in SORTS.items()}
# The same orders by result column (a compound SELECT's, a window's ORDER BY).
_MERGED = {"status": "status, start_ns DESC, row_id DESC",
           "-status": "status DESC, start_ns DESC, row_id DESC",
           "duration_ms": "duration_ms, start_ns, row_id",
           "-duration_ms": "duration_ms DESC, start_ns DESC, row_id DESC",
           "timestamp": "start_ns, row_id", "-timestamp": "start_ns DESC, row_id DESC",
           "process": "process, start_ns DESC, row_id DESC",
           "-process": "process DESC, start_ns DESC, row_id DESC"}


def _where(f: RowFilter, *, range_in_walk: bool = True) -> tuple[str, list[Any]]:
    """The filters on calls: those of RowFilter, a variable name as "the call has it"."""
    where, params = RowFilter(since_ns=f.since_ns, until_ns=f.until_ns, process=f.process,
                              errors_only=f.errors_only, service=f.service
                              ).where(rows=False, range_in_walk=range_in_walk)
    if f.data is not None:
        where += (" AND " if where else "WHERE ") + \
            f"+s.process_id IN {NAME_PROCESSES} AND EXISTS (SELECT 1 FROM data_values v " \
            f"WHERE v.span = s.id AND v.name_id IN {NAME_IDS})"
        params += [f.data, f.data]
    return where, params


def walk_sql(db: Database, f: RowFilter, sort: str) -> tuple[str, list[Any]]:
    """The calls page as one index walk in ``sort`` order (LIMIT ? OFFSET ? to bind)."""
    key = sort.lstrip("-")
    if key == "duration_ms" and pages.sorts_top_calls(f):
        return top_sql(f, sort)
    if key == "status":
        where, params = _where(f)
        glue = " AND " if where else "WHERE "
        sides = ["ERR"] if f.errors_only else ["ERR", "OK"]
        arms = [f"SELECT {CALL_COLUMNS} FROM spans s JOIN processes p ON p.id = s.process_id "
                f"{where}{glue}s.status = '{side}'" for side in sides]
        return (" UNION ALL ".join(arms) + f" ORDER BY {_MERGED[sort]} LIMIT ? OFFSET ?",
                params * len(sides))
    if key == "duration_ms":
        where, params = _where(f, range_in_walk=False)
        glue = " AND " if where else "WHERE "
        walks = pages.buckets(db, f) or range(1)
        arm = (f"SELECT {CALL_COLUMNS} FROM spans s JOIN processes p ON p.id = s.process_id "
               f"{where}{glue}s.start_ns / {DURATION_BUCKET_NS} = ?")
        return (" UNION ALL ".join([arm] * len(walks)) +
                f" ORDER BY {_MERGED[sort]} LIMIT ? OFFSET ?",
                [p for b in walks for p in (*params, b)])
    where, params = _where(f)
    if key == "process":
        source = "processes p CROSS JOIN spans s ON s.process_id = p.id"
    else:
        source = "spans s JOIN processes p ON p.id = s.process_id"
    return (f"SELECT {CALL_COLUMNS} FROM {source} {where} ORDER BY {CALL_SORTS[sort]} "
            "LIMIT ? OFFSET ?", params)


def top_sql(f: RowFilter, sort: str) -> tuple[str, list[Any]]:
    """A duration page of one process's calls or of the failed calls: the trace table's
    top-N (pages.top_calls_sql: sorted from an index alone); each call is a row, so the
    page is the top-N's LIMIT ? OFFSET ? (to bind), and only its calls are read."""
    top, params = pages.top_calls_sql(f, sort)
    return (f"WITH top AS ({top} LIMIT ? OFFSET ?) "
            f"SELECT {CALL_COLUMNS} FROM top t JOIN spans s ON s.id = t.id "
            "JOIN processes p ON p.id = s.process_id "
            f"ORDER BY {CALL_SORTS[sort].replace('s.', 't.')}", params)


def window_sql(f: RowFilter, sort: str) -> tuple[str, list[Any]]:
    """The page sorted within the newest SORT_WINDOW_CALLS calls of the date range/
    process/errors filters, the other filters tested on them (LIMIT ? OFFSET ? to bind)."""
    indexed, indexed_params = f.indexed_only().where(rows=False)
    rest = RowFilter(data=f.data, service=f.service)
    tests, test_params = _where(rest)
    order = _MERGED[sort]
    sql = (f"WITH w AS (SELECT s.id FROM spans s {indexed} ORDER BY s.start_ns DESC "
           "LIMIT ?) "
           f"SELECT * FROM (SELECT {CALL_COLUMNS} FROM w JOIN spans s ON s.id = w.id "
           f"JOIN processes p ON p.id = s.process_id {tests}) ORDER BY {order} "
           "LIMIT ? OFFSET ?")
    return sql, [*indexed_params, pages.SORT_WINDOW_CALLS, *test_params]


def _bounded_walk(f: RowFilter, sort: str) -> bool:
    """Whether every call the walk reads is a match (its length is the page's end)."""
    key = sort.lstrip("-")
    if f.data is not None or f.service is not None:
        return False
    if key == "status":
        return f.errors_only                    # else the OK walk tests status
    if key == "duration_ms":
        return f.process is None and not f.errors_only  # the duration index holds neither
    return True


def call_page(db: Database, f: RowFilter, *, sort: str = "-timestamp", offset: int = 0,
              limit: int = 100) -> Page:
    """One page of calls, one row each (see the module's docstring)."""
    if sort not in CALL_SORTS:
        raise ValueError(f"unknown sort {sort!r}; one of {sorted(CALL_SORTS)}")
    if sort.endswith("duration_ms") and pages.sorts_top_calls(f):
        if pages.top_calls_count(db, f) is None:
            return _window_page(db, f, sort, limit, offset)
        sql, params = top_sql(f, sort)
        return Page(_render(db, db.execute(sql, [*params, limit, offset])), None, "top")
    sql, params = walk_sql(db, f, sort)
    params = [*params, limit, offset]
    if _bounded_walk(f, sort):
        return Page(_render(db, db.execute(sql, params)))
    key = sort.lstrip("-")
    steps = min(pages.WALK_FIRST_STEPS + pages.WALK_STEPS_PER_ROW[key] * (offset + limit),
                pages.WALK_MAX_STEPS[key])
    try:
        return Page(_render(db, db.execute(sql, params, max_steps=steps)))
    except StepBudgetExceeded:
        return _window_page(db, f, sort, limit, offset)


def _window_page(db: Database, f: RowFilter, sort: str, limit: int, offset: int) -> Page:
    indexed, indexed_params = f.indexed_only().where(rows=False)
    complete = pages._at_most(db, f"SELECT 1 FROM spans s {indexed}", indexed_params,
                              pages.SORT_WINDOW_CALLS) <= pages.SORT_WINDOW_CALLS
    sql, params = window_sql(f, sort)
    rows = _render(db, db.execute(sql, [*params, limit, offset]))
    return Page(rows, None if complete else pages.SORT_WINDOW_CALLS, "window")


def _render(db: Database, found: list[Any]) -> list[dict[str, Any]]:
    """The page's calls with their inputs summary and output (their variables read by
    the primary key of data_values)."""
    calls = [dict(r) for r in found]
    if not calls:
        return calls
    ids = [c["row_id"] for c in calls]
    marks = ",".join("?" * len(ids))
    variables: dict[int, list[Any]] = {}
    for v in db.execute(f"SELECT v.span, n.name AS data, n.kind AS data_type, v.data_value "
                        f"FROM data_values v JOIN data_names n ON n.id = v.name_id "
                        f"WHERE v.span IN ({marks}) ORDER BY v.span, v.seq", ids):
        variables.setdefault(v["span"], []).append(v)
    for c in calls:
        mine = variables.get(c.pop("row_id"), [])
        inputs = [f"{v['data']}={_bounded(v['data_value'], VALUE_CHARS)}"
                  for v in mine if v["data_type"] == "INPUT"]
        outputs = [v["data_value"] for v in mine if v["data_type"] == "OUTPUT"]
        c["inputs"] = _bounded(", ".join(inputs), INPUTS_CHARS)
        c["output"] = _bounded(outputs[0], OUTPUT_CHARS) if outputs else ""
        c["exception_summary"] = exception_summary(c.pop("exception"),
                                                   c.pop("exception_type"))
    return calls


def count_calls(db: Database, f: RowFilter, cap: int) -> tuple[int, bool]:
    """(calls matching, exact?): counting stops at ``cap``."""
    where, params = _where(f)
    n = db.scalar(f"SELECT count(*) FROM (SELECT 1 FROM spans s {where} "
                  "ORDER BY s.start_ns DESC LIMIT ?)", [*params, cap + 1])
    return min(n, cap), n <= cap


def explain_calls(db: Database, f: RowFilter, sort: str) -> str:
    sql, params = walk_sql(db, f, sort)
    return plan(db, sql, [*params, 100, 0])
