"""The dependency graph: processes (square) and feeds (ellipse); an edge from a stale feed
is red; a node carries its last latency and error count; clicking a process filters the
table."""
from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, no_update

from exporters.queries import TraceQueries


def elements(graph: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n in graph["nodes"]:
        label = short_label(n["name"]) if n["kind"] == "process" else n["name"]
        data = {"id": n["id"], "name": n["name"], "label": label, "kind": n["kind"],
                "stale": bool(n.get("stale")), "errors": n.get("errors"),
                "last_latency_ms": n.get("last_latency_ms"), "age_s": n.get("age_s")}
        out.append({"data": data, "classes": n["kind"]})
    for e in graph["edges"]:
        out.append({"data": {"id": f"{e['source']}->{e['target']}", "source": e["source"],
                             "target": e["target"], "kind": e["kind"],
                             "stale": bool(e.get("stale")), "calls": e.get("calls")}})
    return out


def short_label(name: str) -> str:
    """What a process node shows: the function (with its class), not the whole dotted
    path, which overlaps its neighbours'. The full name is in hover and click."""
    parts = name.split(".")
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return ".".join(parts[-2:])
    return parts[-1]


def _number(value: Any) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _name(node: dict[str, Any]) -> Any:
    return node.get("name", node.get("label"))


def describe(node: Any) -> str:
    """The hover line for a node (the hint for no node, or one of another shape)."""
    if not isinstance(node, dict) or _name(node) is None:
        return "Hover a node for its last latency and errors; click a process to filter."
    if node.get("kind") == "feed":
        age = _number(node.get("age_s"))
        return (f"feed {_name(node)}: last update "
                + ("never" if age is None else f"{age:.1f} s ago")
                + (" (stale)" if node.get("stale") else ""))
    lat = _number(node.get("last_latency_ms"))
    return (f"{_name(node)}: last latency "
            + ("—" if lat is None else f"{lat:.1f} ms")
            + f", errors (30 min): {node.get('errors') or 0}")


def register(app: Dash, queries: TraceQueries) -> None:
    @app.callback(Output("om-graph", "elements"), Input("om-tick", "n_intervals"))
    def refresh_graph(_n):
        return elements(queries.graph())

    # The hint shown before any hover is in the layout: no request at page load.
    @app.callback(Output("om-graph-hover", "children"), Input("om-graph", "mouseoverNodeData"),
                  prevent_initial_call=True)
    def hover(node):
        return describe(node)

    @app.callback(Output("om-process", "value"), Input("om-graph", "tapNodeData"),
                  prevent_initial_call=True)
    def tap(node):
        if not isinstance(node, dict) or node.get("kind") != "process" or \
                not isinstance(_name(node), str):
            return no_update
        return _name(node)
