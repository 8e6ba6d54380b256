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


def archived_rows(root: str, f: RowFilter, until_ns: int, remote: Any = None
                  ) -> list[dict[str, Any]]:
    """Every row of ``f`` in [since, until_ns) from the archive, in the archive's order."""
    since = f.since_ns if f.since_ns is not None else earliest_ns(root)
    if since is None:
        return []
    out = []
    for r in read_calls(root, since, until_ns, process=f.process, remote=remote):
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
                  limit: int, remote: Any = None) -> tuple[list[dict[str, Any]], int]:
    """(one page of rows in ``sort`` order, rows matching)."""
    rows = archived_rows(root, f, until_ns, remote)
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


def archived_call(root: str, span_id: str, host_of: Any, remote: Any = None
                  ) -> dict[str, Any] | None:
    """One archived call in the drill-down's shape (``calls.call``), or None."""
    from ..archive.reader import find_call

    rows = find_call(root, span_id.lower(), remote=remote)
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


def archived_calls(root: str, f: RowFilter, until_ns: int, remote: Any = None
                   ) -> list[dict[str, Any]]:
    """The calls of ``f`` in [since, until_ns) from the archive, one entry (the call's
    rows) each; the data filter as "the call has that variable"."""
    since = f.since_ns if f.since_ns is not None else earliest_ns(root)
    if since is None:
        return []
    by_call: dict[str, list[dict[str, Any]]] = {}
    for r in read_calls(root, since, until_ns, process=f.process, remote=remote):
        by_call.setdefault(r["span_id"], []).append(r)
    out = []
    for rows in by_call.values():
        r = rows[0]
        if f.errors_only and r["status"] != "ERR":
            continue
        if f.service is not None and r["service"] != f.service:
            continue
        if f.data is not None and not any(x["data"] == f.data for x in rows):
            continue
        out.append(rows)
    return out


def archived_call_page(root: str, f: RowFilter, until_ns: int, *, sort: str, offset: int,
                       limit: int, remote: Any = None) -> tuple[list[dict[str, Any]], int]:
    """(one page of the calls view in ``sort`` order, calls matching)."""
    from .callpage import INPUTS_CHARS, OUTPUT_CHARS, VALUE_CHARS
    from .summary import _bounded

    calls = archived_calls(root, f, until_ns, remote)
    name = sort.lstrip("-")
    if name in ("process", "status"):
        calls.sort(key=lambda c: (-c[0]["start_ns"], c[0]["span_id"]))
    calls.sort(key=lambda c: _KEYS[name](c[0]), reverse=sort.startswith("-"))
    page = []
    for rows in calls[offset:offset + limit]:
        r = rows[0]
        mine = [x for x in rows if x["seq"] is not None]
        inputs = [f"{v['data']}={_bounded(v['data_value'] or '', VALUE_CHARS)}"
                  for v in mine if v["data_type"] == "INPUT"]
        outputs = [v["data_value"] or "" for v in mine if v["data_type"] == "OUTPUT"]
        page.append({"process": r["process"], "timestamp": iso(r["start_ns"]),
                     "status": r["status"], "duration_ms": r["duration_ms"],
                     "span_id": r["span_id"], "trace_id": r["trace_id"],
                     "start_ns": r["start_ns"],
                     "inputs": _bounded(", ".join(inputs), INPUTS_CHARS),
                     "output": _bounded(outputs[0], OUTPUT_CHARS) if outputs else "",
                     "exception_summary": exception_summary(r["exception"] or "",
                                                            r["exception_type"]),
                     "archived": True})
    return page, len(calls)
