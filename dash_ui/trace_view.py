"""The drill-down's trace view: a trace's spans (``TraceQueries.trace``) as waterfall rows,
depth-first by parent, each with its bar's offset and width on the trace's shared time
axis (percent), its status colour, and whether it is the selected call. A collapsed span
hides its subtree; the grid renders only the rows in view, so a 10,000-span trace stays
usable. A span whose parent is not in the store is a root of its own."""
from __future__ import annotations

from typing import Any, Iterable

from ._theme import TOKENS

# Past this many spans, a trace opens with every subtree collapsed except those on the
# selected call's path.
OPEN_EXPANDED_MAX = 500
MIN_BAR_PCT = 0.3   # a bar is at least this wide, so an instant span is visible


def tree(spans: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, list[dict]]]:
    """(roots, children by parent id), each list in start order (``spans`` is)."""
    ids = {s["span_id"] for s in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    roots = []
    for s in spans:
        parent = s["parent_span_id"]
        if parent is None or parent not in ids or parent == s["span_id"]:
            roots.append(s)
        else:
            children.setdefault(parent, []).append(s)
    return roots, children


def ancestors(spans: list[dict[str, Any]], span_id: str) -> set[str]:
    parent_of = {s["span_id"]: s["parent_span_id"] for s in spans}
    seen: set[str] = set()
    node = parent_of.get(span_id)
    while node is not None and node in parent_of and node not in seen:
        seen.add(node)
        node = parent_of[node]
    return seen


def initially_collapsed(spans: list[dict[str, Any]], selected: str | None) -> list[str]:
    """None collapsed in a small trace; in a big one, every parent off the selected path."""
    if len(spans) <= OPEN_EXPANDED_MAX:
        return []
    _, children = tree(spans)
    keep = ancestors(spans, selected) if selected else set()
    return sorted(set(children) - keep)


def rows(spans: list[dict[str, Any]], selected: str | None,
         collapsed: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The visible rows, depth-first (an explicit stack: a 10,000-deep chain is fine)."""
    if not spans:
        return []
    closed = set(collapsed)
    roots, children = tree(spans)
    t0 = min(s["start_ns"] for s in spans)
    t1 = max(s["start_ns"] + int(s["duration_ms"] * 1e6) for s in spans)
    total = max(t1 - t0, 1)
    out: list[dict[str, Any]] = []
    stack = [(s, 0) for s in reversed(roots)]
    while stack:
        s, depth = stack.pop()
        sid = s["span_id"]
        kids = children.get(sid, [])
        left = (s["start_ns"] - t0) / total * 100
        width = max(s["duration_ms"] * 1e6 / total * 100, MIN_BAR_PCT)
        folded = sid in closed and bool(kids)
        out.append({"span_id": sid, "process": s["process"], "depth": depth,
                    "children": len(kids), "collapsed": folded,
                    # the toggle's text is a field of its own: the grid redraws a cell
                    # whose field changed
                    "toggle": (("▸ " if folded else "▾ ") + str(len(kids))) if kids else "",
                    "start_ms": round((s["start_ns"] - t0) / 1e6, 3),
                    "duration_ms": s["duration_ms"], "status": s["status"], "pid": s["pid"],
                    "left": round(min(left, 100 - MIN_BAR_PCT), 3),
                    "width": round(min(width, 100 - min(left, 100 - MIN_BAR_PCT)), 3),
                    "colour": TOKENS["err"] if s["status"] == "ERR" else TOKENS["ok"],
                    "selected": sid == selected})
        if sid not in closed:
            stack.extend((k, depth + 1) for k in reversed(kids))
    return out
