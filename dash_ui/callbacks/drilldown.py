"""The drill-down modal, opened by a row click (of the seven-column grid or of the calls
grid), a link (``?span_id=``, ``?trace_id=``: the
``om-open`` store, set by ``url``), the search box or a click in its own trace view: the
call's trace as a waterfall (``dash_ui.trace_view``; a click on a span switches the
drill-down to it, on its toggle collapses or expands its subtree), the process's source
highlighted (Pygments tokens turned into styled spans, so nothing is ever rendered as
HTML), a sparkline of its ``duration_ms`` over the last 30 min, the call's inputs/outputs
and traceback, each with a copy button, its inputs compared with a call picked before
("Pick to compare") or, for a failed call, with the last OK call's (``dash_ui.compare``),
and Reproduce (``dash_ui.reproduce``): the snippet
with a copy button, and a pytest file to download."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update
from pygments import lex
from pygments.lexers import PythonLexer
from pygments.styles import get_style_by_name

from exporters.queries import NotFound, TraceQueries

from .._theme import PYGMENTS_STYLE, TOKENS
from .. import compare, trace_view
from ..reproduce import build, reproduction

_STYLE = get_style_by_name(PYGMENTS_STYLE)
_SPAN_ID = re.compile("[0-9a-fA-F]{16}")
_FINGERPRINT = re.compile("[0-9a-f]{32}")


def highlighted(source: str | None) -> html.Pre:
    """Source as styled text spans (the style's own colours, its background)."""
    spans: list[Any] = []
    for ttype, value in lex(source or "# no source in the catalog", PythonLexer()):
        s = _STYLE.style_for_token(ttype)
        css = {}
        if s["color"]:
            css["color"] = "#" + s["color"]
        if s["bold"]:
            css["fontWeight"] = "bold"
        if s["italic"]:
            css["fontStyle"] = "italic"
        spans.append(html.Span(value, style=css) if css else value)
    return html.Pre(spans, id="om-source", className="p-2 small",
                    style={"background": _STYLE.background_color, "color": "#f8f8f2",
                           "maxHeight": "50vh", "overflow": "auto"})


def sparkline(series: dict[str, Any]) -> go.Figure:
    points = series["points"]
    x = [datetime.fromtimestamp(p["start_ns"] / 1e9, tz=timezone.utc) for p in points]
    fig = go.Figure(go.Scatter(x=x, y=[p["avg_ms"] for p in points], mode="lines+markers",
                               line={"color": TOKENS["accent"]}, name="avg ms"))
    fig.update_layout(template="plotly_dark", height=220, margin=dict(l=40, r=10, t=30, b=30),
                      yaxis={"rangemode": "tozero"},
                      paper_bgcolor=TOKENS["bg"], plot_bgcolor=TOKENS["bg"],
                      title={"text": "duration_ms, last 30 min", "font": {"size": 12}})
    if not points:  # an old call: say so rather than draw empty axes
        fig.update_layout(xaxis={"visible": False}, yaxis={"visible": False}, annotations=[
            {"text": "no calls in the last 30 min", "showarrow": False,
             "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}])
    return fig


def copy_button(**target: Any) -> dcc.Clipboard:
    """A copy button: of a component's text (``target_id``) or of ``content``."""
    return dcc.Clipboard(**target, title="copy", className="om-copy d-inline-block ms-1",
                         style={"cursor": "pointer"})


def values_table(values: list[dict[str, Any]]) -> dbc.Table:
    head = html.Thead(html.Tr([html.Th(h) for h in ("Data", "Data Type", "Data Value", "")]))
    body = html.Tbody([html.Tr([html.Td(v["data"]), html.Td(v["data_type"]),
                                html.Td(v["data_value"]),
                                html.Td(copy_button(content=v["data_value"]))])
                       for v in values])
    return dbc.Table([head, body], size="sm", bordered=False, className="small",
                     id="om-call-values")


def comparison(queries: TraceQueries, call: dict[str, Any], picked: Any) -> Any:
    """The call compared with the picked one, else (a failed call) with the last OK one."""
    if isinstance(picked, str) and _SPAN_ID.fullmatch(picked) and picked != call["span_id"]:
        try:
            return compare.table(call, queries.call(picked), "picked call")
        except NotFound:
            pass
    if call["status"] != "ERR":
        return None
    try:
        return compare.table(call, queries.last_good(call["span_id"]))
    except NotFound:
        return html.P("No OK call of this process before it to compare with.",
                      className="small text-muted")


def body(queries: TraceQueries, span_id: str, picked: Any = None
         ) -> tuple[str, list[Any], dict[str, Any]]:
    """(title, parts, the call) of the drill-down of ``span_id`` (``picked``: the span id
    of a call picked to compare it with)."""
    call = queries.call(span_id)
    try:
        catalog = queries.source(call["process"])
    except NotFound:
        catalog = {}
    source = catalog.get("source")
    series = queries.durations(call["process"], minutes=30)
    parts: list[Any] = [
        dbc.Row([dbc.Col(highlighted(source), md=7),
                 dbc.Col(dcc.Graph(id="om-sparkline", figure=sparkline(series),
                                   config={"displayModeBar": False}), md=5)]),
        html.H6(f"{call['status']} · {call['duration_ms']:.3f} ms · {call['timestamp']}",
                className="mt-2"),
        html.Div(" · ".join(f"{k} {v}" for k, v in (
            ("service", call.get("service_name")), ("host", call.get("host")),
            ("pid", call.get("pid"))) if v is not None), className="small text-muted",
            id="om-call-origin"),
        values_table(call["values"]),
    ]
    compared = comparison(queries, call, picked)
    if compared is not None:
        parts.append(compared)
    if call.get("exception"):
        parts += [html.Div(["Traceback", copy_button(target_id="om-traceback",
                                                     id="om-copy-traceback")],
                           className="small"),
                  html.Pre(call["exception"], id="om-traceback", className="small p-2",
                           style={"color": TOKENS["err"], "background": TOKENS["bg"]})]
    group = call.get("error_group")
    if isinstance(group, str) and _FINGERPRINT.fullmatch(group):
        # a page load of the Errors tab, on this call's group (callbacks/url.py)
        parts.append(html.Div(["Error group ", html.A(group, href=f"?error={group}",
                                                       id="om-call-group-link"),
                               ": every occurrence, resolve, ignore or snooze it in the "
                               "Errors tab"], className="small mb-2", id="om-call-group"))
    repro = build(call, catalog.get("file"))
    parts += [html.H6(["Reproduce", copy_button(target_id="om-reproduce",
                                                id="om-copy-reproduce"),
                       dbc.Button("Download as a pytest test", size="sm", color="secondary",
                                  outline=True, className="ms-2",
                                  id={"type": "om-download-test", "span": call["span_id"]})],
                      className="mt-2"),
              html.Pre(repro["snippet"], id="om-reproduce", className="small p-2",
                       style={"background": _STYLE.background_color, "color": "#f8f8f2"})]
    return call["process"], parts, call


def trace_rows(queries: TraceQueries, trace_id: str, selected: str,
               collapsed: list[str] | None = None) -> tuple[list[dict[str, Any]], str,
                                                            dict[str, Any]]:
    """(the trace view's rows, its note, its state) for ``selected`` in ``trace_id``."""
    try:
        trace = queries.trace(trace_id)
    except (NotFound, ValueError):
        return [], "no span of this trace in the store", {}
    spans = trace["spans"]
    if collapsed is None:
        collapsed = trace_view.initially_collapsed(spans, selected)
    rows = trace_view.rows(spans, selected, collapsed)
    note = (f"{len(spans)} spans in the store" + (" (the first only)" if trace["truncated"]
                                                  else "")
            + (f", {len(rows)} shown: click ▸ to expand" if len(rows) < len(spans) else ""))
    return rows, note, {"trace_id": trace_id, "selected": selected, "collapsed": collapsed}


def _trace_state(shown: Any) -> tuple[str, str, set[str]] | None:
    """(trace id, selected span, collapsed spans) of the trace view's state store; None
    for a state of another shape."""
    if not isinstance(shown, dict):
        return None
    trace_id, selected, collapsed = (shown.get("trace_id"), shown.get("selected"),
                                     shown.get("collapsed"))
    if not (isinstance(trace_id, str) and isinstance(selected, str)
            and isinstance(collapsed, list) and all(isinstance(c, str) for c in collapsed)):
        return None
    return trace_id, selected, set(collapsed)


def _span_of_cell(cell: Any, with_seq: bool) -> str:
    """The span id of a clicked cell's row ("<span id>:<seq>" in the table, the span id in
    the trace view and the calls view); "" for a click of another shape."""
    row_id = cell.get("rowId") if isinstance(cell, dict) else None
    span_id = (row_id.split(":", 1)[0] if with_seq else row_id) \
        if isinstance(row_id, str) else ""
    return span_id if _SPAN_ID.fullmatch(span_id) else ""


def register(app: Dash, queries: TraceQueries) -> None:
    @app.callback(Output("om-modal", "is_open"), Output("om-modal-title", "children"),
                  Output("om-modal-body", "children"), Output("om-trace", "rowData"),
                  Output("om-trace-note", "children"), Output("om-trace-state", "data"),
                  Output("om-trace", "scrollTo"),
                  Input("om-grid", "cellClicked"), Input("om-open", "data"),
                  Input("om-trace", "cellClicked"), Input("om-calls", "cellClicked", allow_optional=True),
                  State("om-trace-state", "data"), State("om-picked", "data"),
                  prevent_initial_call=True)
    def open_call(cell, opened, trace_cell, calls_cell, shown, picked):
        nothing = (no_update,) * 7
        if ctx.triggered_id == "om-calls":   # a row of the calls view: its id is the span id
            span_id = _span_of_cell(calls_cell, with_seq=False)
            if not span_id:
                return nothing
        elif ctx.triggered_id == "om-trace":
            span_id = _span_of_cell(trace_cell, with_seq=False)
            if not span_id:
                return nothing
            if trace_cell.get("colId") == "toggle":  # collapse or expand its subtree
                view = _trace_state(shown)
                if view is None:
                    return nothing
                trace_id, selected, collapsed = view
                rows, note, state = trace_rows(queries, trace_id, selected,
                                               sorted(collapsed ^ {span_id}))
                return no_update, no_update, no_update, rows, note, state, no_update
        elif ctx.triggered_id == "om-open":
            if isinstance(opened, dict) and opened.get("missing"):
                return (True, "not found", [html.P(str(opened["missing"]))], [], "", {},
                        no_update)
            span_id = opened.get("span_id") if isinstance(opened, dict) else None
            if not isinstance(span_id, str) or not _SPAN_ID.fullmatch(span_id):
                return nothing
        else:
            span_id = _span_of_cell(cell, with_seq=True)
            if not span_id:
                return nothing
        try:
            title, parts, call = body(queries, span_id, picked)
        except NotFound:
            return (True, "call not found", [html.P(f"no call with span id {span_id}")], [],
                    "", {}, no_update)
        rows, note, state = trace_rows(queries, call["trace_id"], call["span_id"])
        # the selected call in view, in a trace of thousands of spans
        return (True, title, parts, rows, note, state,
                {"rowId": call["span_id"], "rowPosition": "middle"})

    @app.callback(Output("om-picked", "data"), Output("om-picked-note", "children"),
                  Input("om-pick", "n_clicks"), State("om-trace-state", "data"),
                  prevent_initial_call=True)
    def pick(_clicks, shown):
        view = _trace_state(shown)
        if view is None or not _SPAN_ID.fullmatch(view[1]):
            return no_update, no_update
        return view[1], f"picked {view[1]}: open another call to compare with it"

    @app.callback(Output("om-download", "data"),
                  Input({"type": "om-download-test", "span": ALL}, "n_clicks"),
                  prevent_initial_call=True)
    def download_test(clicks):
        trigger = ctx.triggered_id
        if not any(clicks or []) or not isinstance(trigger, dict) or \
                not _SPAN_ID.fullmatch(str(trigger.get("span"))):
            return no_update
        try:
            repro = reproduction(queries, trigger["span"])
        except NotFound:
            return no_update
        return dcc.send_string(repro["test"], repro["test_filename"])
