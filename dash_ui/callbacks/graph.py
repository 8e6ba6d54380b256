"""The dependency graph: processes (square) and feeds (ellipse); an edge from a stale feed
is red; a node carries its last latency and error count; clicking a process filters the
table."""
from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, no_update

from exporters.queries import TraceQueries
from otel_monitor.settings import read_setting


def rate_levels() -> tuple[float, float]:
    """A process node's colour thresholds from the settings (OTEL_MONITOR_GRAPH_*, .env):
    (amber above, red from) its share of failed calls in the window."""
    return read_setting("graph_error_rate_amber"), read_setting("graph_error_rate_red")


def rate_level(rate: Any, levels: tuple[float, float] | None = None) -> str:
    """A process node's level by its error rate in the window (``levels``: rate_levels()):
    `ok` at or below the amber threshold (with no failure, by default), `stale` above it,
    `err` from the red one on."""
    amber, red = rate_levels() if levels is None else levels
    rate = _number(rate)
    if rate is None:
        return "ok"
    return "err" if rate >= red else "stale" if rate > amber else "ok"


def elements(graph: dict[str, Any], levels: tuple[float, float] | None = None
             ) -> list[dict[str, Any]]:
    """The graph's cytoscape elements; a process node's ``level`` (its colour) by its
    error rate and ``levels`` (rate_levels() by default)."""
    levels = rate_levels() if levels is None else levels
    out: list[dict[str, Any]] = []
    for n in graph["nodes"]:
        label = short_label(n["name"]) if n["kind"] == "process" else n["name"]
        data = {"id": n["id"], "name": n["name"], "label": label, "kind": n["kind"],
                "stale": bool(n.get("stale")), "closed": bool(n.get("closed")),
                "errors": n.get("errors"),
                "calls": n.get("calls"), "error_rate": n.get("error_rate"),
                "level": rate_level(n.get("error_rate"), levels),
                "last_latency_ms": n.get("last_latency_ms"), "age_s": n.get("age_s")}
        out.append({"data": data, "classes": n["kind"]})
    for e in graph["edges"]:
        out.append({"data": {"id": f"{e['source']}->{e['target']}", "source": e["source"],
                             "target": e["target"], "kind": e["kind"],
                             "stale": bool(e.get("stale")), "closed": bool(e.get("closed")),
                             "calls": e.get("calls")}})
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


def latency(ms: Any) -> str:
    """A duration in ms with three significant digits, in the unit that fits it (µs below
    1 ms, s from 1,000 ms): 0.001 -> "1 µs", 1.5 -> "1.5 ms", 12345 -> "12.3 s"."""
    value = _number(ms)
    if value is None:
        return "—"
    for unit, scale, below in (("µs", 1e3, 1.0), ("ms", 1.0, 1e3), ("s", 1e-3, None)):
        shown = float(f"{value * scale:.3g}")
        # (rounding to 3 digits can carry past the unit: 999.96 µs is 1 ms)
        if below is None or float(f"{value:.3g}") < below:
            return f"{shown:.3g} {unit}"
    raise AssertionError("unreachable")


def describe(node: Any) -> str:
    """The hover line for a node (the hint for no node, or one of another shape)."""
    if not isinstance(node, dict) or _name(node) is None:
        return "Hover a node for its last latency and errors; click a process to filter."
    if node.get("kind") == "feed":
        age = _number(node.get("age_s"))
        return (f"feed {_name(node)}: last update "
                + ("never" if age is None else f"{age:.1f} s ago")
                + (" (stale)" if node.get("stale") else "")
                + (" (closed: outside its hours)" if node.get("closed") else ""))
    lat = _number(node.get("last_latency_ms"))
    rate = _number(node.get("error_rate"))
    calls = _number(node.get("calls"))
    return (f"{_name(node)}: last latency {latency(lat)}"
            + f", errors (30 min): {node.get('errors') or 0}"
            + (f" of {calls:g} calls ({rate:.1%})" if rate is not None and calls else ""))


def register(app: Dash, queries: TraceQueries) -> None:
    levels = rate_levels()   # read once, as the ribbon's thresholds are (dash_ui.service)

    @app.callback(Output("om-graph", "elements"), Input("om-tick", "n_intervals"))
    def refresh_graph(_n):
        return elements(queries.graph(), levels)

    # The layout, after each update or a change of view (assets/omGraph.js).
    app.clientside_callback(
        """function(elements, mode) {
            try { window.omGraphLayoutSoon(mode); } catch (err) { console.error(err); }
            return window.dash_clientside.no_update;
        }""",
        Output("om-graph-laid-out", "data"), Input("om-graph", "elements"),
        Input("om-graph-mode", "value"),
        # the layout's graph is empty: its first elements (refresh_graph) fire this
        prevent_initial_call=True)

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
