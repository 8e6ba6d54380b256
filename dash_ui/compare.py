"""Compare two calls' inputs, the values that differ highlighted: in a drill-down, with
the call picked before ("Pick to compare"), else, for a failed call, with the most
recent OK call of the same process (``TraceQueries.last_good``)."""
from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import html

from ._theme import TOKENS


def diff(this: list[dict[str, Any]], other: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per input name of either call, in this call's order then the other's:
    ``{"data", "this", "other", "changed"}`` (a value missing from a call is None)."""
    mine = {v["data"]: v["data_value"] for v in this if v["data_type"] == "INPUT"}
    theirs = {v["data"]: v["data_value"] for v in other if v["data_type"] == "INPUT"}
    names = list(mine) + [n for n in theirs if n not in mine]
    return [{"data": n, "this": mine.get(n), "other": theirs.get(n),
             "changed": mine.get(n) != theirs.get(n)} for n in names]


def table(this: dict[str, Any], other: dict[str, Any], label: str = "last OK call"
          ) -> html.Div:
    """The comparison of call ``this`` with call ``other`` (changed rows highlighted)."""
    changed = {"background": TOKENS["stale"] + "33", "color": TOKENS["stale"]}
    rows = [html.Tr([html.Td(r["data"]),
                     html.Td("—" if r["this"] is None else r["this"]),
                     html.Td("—" if r["other"] is None else r["other"])],
                    className="om-changed" if r["changed"] else None,
                    style=changed if r["changed"] else None)
            for r in diff(this["values"], other["values"])]
    head = html.Thead(html.Tr([html.Th("Data"), html.Th("this call"),
                               html.Th(f"{label} ({other['timestamp']})")]))
    title = f"Compared with the {label}" + (f": {other['process']}"
                                             if other["process"] != this["process"] else "")
    return html.Div([html.H6(title, className="mt-2"),
                     dbc.Table([head, html.Tbody(rows)], size="sm", className="small",
                               id="om-compare")])
