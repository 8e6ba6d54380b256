"""The trace table's filters and sorts, and the SQL pieces every query module shares.

The only text put into a statement is chosen from fixed tables here (the sort
orders, the WHERE clauses of the filters that are set); each filter value is a SQL
parameter.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..database import Database

NS = 1_000_000_000

COUNT_CAP = 10_000          # row counts stop here (the total is then "at least")

# Sort keys -> ORDER BY of the page query (ties broken by call then argument order).
# Each is read in that order from an index walk (see pages.walk_sql), never sorted whole.
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

ISO = ("strftime('%Y-%m-%dT%H:%M:%S', {c} / 1000000000, 'unixepoch')"
       " || printf('.%06dZ', {c} / 1000 % 1000000)")

# A call with no variable joins no data row (LEFT JOIN). A failed one is still a row,
# with empty Data cells, so no failure is missing from the table; an OK one (a plain
# OTel span, say) has nothing to show in the seven columns and makes no row.
HAS_ROW = "(d.span IS NOT NULL OR s.status = 'ERR')"

ROW_COLUMNS = f"""
    p.name AS "Process", coalesce(d.data, '') AS "Data", coalesce(d.data_type, '') AS "Data Type",
    coalesce(d.data_value, '') AS "Data Value", {ISO.format(c="s.start_ns")} AS "Timestamp",
    s.status AS "Status", coalesce(s.exception, '') AS "Exception",
    printf('%016x', s.span_id) AS span_id, s.trace_id, s.start_ns, s.duration_ms, d.seq,
    s.exception_type AS row_exception_type, s.id AS row_id"""


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
        clauses: list[str] = [HAS_ROW] if rows else []
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


def dicts(db: Database, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The rows of a read as dicts (what the API serialises)."""
    return [dict(r) for r in db.execute(sql, params)]


def plan(db: Database, sql: str, params: Sequence[Any] = ()) -> str:
    """SQLite's query plan of ``sql``, one step a line."""
    return "\n".join(r["detail"] for r in db.execute("EXPLAIN QUERY PLAN " + sql, params))
