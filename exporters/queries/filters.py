"""The trace table's filters and sorts, and the SQL pieces every query module shares.

The only text put into a statement is chosen from fixed tables here (the sort
orders, the WHERE clauses of the filters that are set); each filter value is a SQL
parameter.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..database import Database
from ..schema import TRACE_HEX

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

# Schema 9 keeps a variable's name and Data Type as one key (data_names), the trace id as
# its bytes and the service as a key (services): what readers show of them.
DATA_NAME = "(SELECT name FROM data_names WHERE id = {d}.name_id)"
DATA_KIND = "(SELECT kind FROM data_names WHERE id = {d}.name_id)"
TRACE_ID = TRACE_HEX.format(col="s.trace_id") + " AS trace_id"
SERVICE_NAME = "(SELECT name FROM services WHERE id = s.service_id)"
# The keys of a variable name (one per Data Type it was seen with).
NAME_IDS = "(SELECT id FROM data_names WHERE name = ?)"
# The processes that ever had a variable of that name (process_names): a name filter
# walks only their calls.
NAME_PROCESSES = f"(SELECT process_id FROM process_names WHERE name_id IN {NAME_IDS})"

ROW_COLUMNS = f"""
    p.name AS "Process", coalesce({DATA_NAME.format(d="d")}, '') AS "Data",
    coalesce({DATA_KIND.format(d="d")}, '') AS "Data Type",
    coalesce(d.data_value, '') AS "Data Value", {ISO.format(c="s.start_ns")} AS "Timestamp",
    s.status AS "Status", coalesce(s.exception, '') AS "Exception",
    printf('%016x', s.span_id) AS span_id, {TRACE_ID}, s.start_ns, s.duration_ms, d.seq,
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
            clauses.append("s.service_id = (SELECT id FROM services WHERE name = ?)")
            params.append(self.service)
        if self.data is not None and rows:
            # "+": the walk stays in the page's order (an index on time or process) and
            # tests each call's process, then its rows, rather than sorting every call of
            # the name's processes (hundreds of thousands in a full store).
            clauses.append(f"+s.process_id IN {NAME_PROCESSES}" if in_time_order
                           else f"s.process_id IN {NAME_PROCESSES}")
            clauses.append(f"+d.name_id IN {NAME_IDS}")
            params += [self.data, self.data]
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
