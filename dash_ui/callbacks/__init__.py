"""The Dash app's callbacks, one module per part of the page."""
from __future__ import annotations

from dash import Dash

from exporters.queries import TraceQueries

from . import drilldown, graph, ribbon, table, url


def register(app: Dash, queries: TraceQueries) -> None:
    ribbon.register(app, queries)
    table.register(app, queries)
    graph.register(app, queries)
    drilldown.register(app, queries)
    url.register(app, queries)
