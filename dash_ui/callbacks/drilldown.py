"""The drill-down modal on a row click: the process's source highlighted (Pygments tokens
turned into styled spans, so nothing is ever rendered as HTML), a sparkline of its
``duration_ms`` over the last 30 min, and the call's inputs/outputs and traceback."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html, no_update
from pygments import lex
from pygments.lexers import PythonLexer
from pygments.styles import get_style_by_name

from exporters.queries import NotFound, TraceQueries

from .._theme import PYGMENTS_STYLE, TOKENS
from ..reproduce import snippet

_STYLE = get_style_by_name(PYGMENTS_STYLE)
_SPAN_ID = re.compile("[0-9a-fA-F]{16}")


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


def values_table(values: list[dict[str, Any]]) -> dbc.Table:
    head = html.Thead(html.Tr([html.Th(h) for h in ("Data", "Data Type", "Data Value")]))
    body = html.Tbody([html.Tr([html.Td(v["data"]), html.Td(v["data_type"]),
                                html.Td(v["data_value"])]) for v in values])
    return dbc.Table([head, body], size="sm", bordered=False, className="small",
                     id="om-call-values")


def body(queries: TraceQueries, span_id: str) -> tuple[str, list[Any]]:
    call = queries.call(span_id)
    try:
        source = queries.source(call["process"]).get("source")
    except NotFound:
        source = None
    series = queries.durations(call["process"], minutes=30)
    parts: list[Any] = [
        dbc.Row([dbc.Col(highlighted(source), md=7),
                 dbc.Col(dcc.Graph(id="om-sparkline", figure=sparkline(series),
                                   config={"displayModeBar": False}), md=5)]),
        html.H6(f"{call['status']} · {call['duration_ms']:.3f} ms · {call['timestamp']}",
                className="mt-2"),
        values_table(call["values"]),
    ]
    if call.get("exception"):
        parts.append(html.Pre(call["exception"], id="om-traceback", className="small p-2",
                              style={"color": TOKENS["err"], "background": TOKENS["bg"]}))
    parts += [html.H6("Reproduce", className="mt-2"),
              html.Pre(snippet(call), id="om-reproduce", className="small p-2",
                       style={"background": _STYLE.background_color, "color": "#f8f8f2"})]
    return call["process"], parts


def register(app: Dash, queries: TraceQueries) -> None:
    @app.callback(Output("om-modal", "is_open"), Output("om-modal-title", "children"),
                  Output("om-modal-body", "children"), Input("om-grid", "cellClicked"),
                  prevent_initial_call=True)
    def open_call(cell):
        # The row id is "<span id>:<seq>"; a click of another shape opens nothing.
        row_id = cell.get("rowId") if isinstance(cell, dict) else None
        span_id = row_id.split(":", 1)[0] if isinstance(row_id, str) else ""
        if not _SPAN_ID.fullmatch(span_id):
            return no_update, no_update, no_update
        try:
            title, parts = body(queries, span_id)
        except NotFound:
            return True, "call not found", [html.P(f"no call with span id {span_id}")]
        return True, title, parts
