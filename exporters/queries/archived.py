"""The trace table's rows of a time range older than the hot store, read from the cold
archive (``exporters.archive``): the same columns as ``pages``' rows, plus
``archived: True``; the same filters and sorts, applied to the hours asked (only their
files are opened)."""
from __future__ import annotations

import time
from typing import Any

from ..archive.layout import ArchiveLayout
from ..archive.reader import read_calls
from .filters import RowFilter
from .summary import exception_summary

_KEYS = {
    "timestamp": lambda r: (r["start_ns"], r["span_id"]),
    "duration_ms": lambda r: (r["duration_ms"], r["start_ns"], r["span_id"]),
    "process": lambda r: (r["process"],),
    "status": lambda r: (r["status"],),
}


def iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + \
        f".{ns // 1000 % 1_000_000:06d}Z"


def earliest_ns(root: str) -> int | None:
    """The earliest start in the archive's manifest, None for an empty archive."""
    entries = ArchiveLayout(root).manifest()  # type: ignore[arg-type]
    return min((e["min_start_ns"] for e in entries), default=None)


def archived_rows(root: str, f: RowFilter, until_ns: int) -> list[dict[str, Any]]:
    """Every row of ``f`` in [since, until_ns) from the archive, in the archive's order."""
    since = f.since_ns if f.since_ns is not None else earliest_ns(root)
    if since is None:
        return []
    out = []
    for r in read_calls(root, since, until_ns, process=f.process):
        if r["seq"] is None and r["status"] != "ERR":
            continue  # an OK call with no variable makes no row (HAS_ROW)
        if f.errors_only and r["status"] != "ERR":
            continue
        if f.service is not None and r["service"] != f.service:
            continue
        if f.data is not None and r["data"] != f.data:
            continue
        out.append(r)
    return out


def archived_page(root: str, f: RowFilter, until_ns: int, *, sort: str, offset: int,
                  limit: int) -> tuple[list[dict[str, Any]], int]:
    """(one page of rows in ``sort`` order, rows matching)."""
    rows = archived_rows(root, f, until_ns)
    name = sort.lstrip("-")
    descending = sort.startswith("-")
    if name in ("process", "status"):
        # by the column, then newest first (as SORTS), each call's rows by seq
        rows.sort(key=lambda r: (-r["start_ns"], r["span_id"], _seq(r)))
        rows.sort(key=_KEYS[name], reverse=descending)
    else:
        rows.sort(key=lambda r: _seq(r))
        rows.sort(key=_KEYS[name], reverse=descending)
    return [_shape(r) for r in rows[offset:offset + limit]], len(rows)


def _seq(r: dict[str, Any]) -> int:
    return -1 if r["seq"] is None else r["seq"]


def _shape(r: dict[str, Any]) -> dict[str, Any]:
    return {"Process": r["process"], "Data": r["data"] or "", "Data Type": r["data_type"] or "",
            "Data Value": r["data_value"] or "", "Timestamp": iso(r["start_ns"]),
            "Status": r["status"], "Exception": r["exception"] or "",
            "span_id": r["span_id"], "trace_id": r["trace_id"], "start_ns": r["start_ns"],
            "duration_ms": r["duration_ms"], "seq": r["seq"],
            "exception_summary": exception_summary(r["exception"] or "", r["exception_type"]),
            "archived": True}


def archived_call(root: str, span_id: str, host_of: Any) -> dict[str, Any] | None:
    """One archived call in the drill-down's shape (``calls.call``), or None."""
    from ..archive.reader import find_call

    rows = find_call(root, span_id.lower())
    if not rows:
        return None
    r = rows[0]
    values = [{"seq": x["seq"], "data": x["data"], "data_type": x["data_type"],
               "data_value": x["data_value"]} for x in rows if x["seq"] is not None]
    return {"span_id": r["span_id"], "trace_id": r["trace_id"],
            "parent_span_id": r["parent_span_id"], "process": r["process"],
            "process_group": r["process_group"], "service_name": r["service"],
            "status": r["status"], "outcome": r["outcome"],
            "exception_type": r["exception_type"], "exception": r["exception"],
            "duration_ms": r["duration_ms"], "start_ns": r["start_ns"],
            "timestamp": iso(r["start_ns"]), "pid": r["pid"], "error_group": r["error_group"],
            "values": values, "host": host_of(values), "parent": None, "children": [],
            "archived": True}
