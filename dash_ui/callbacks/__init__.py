"""The Dash app's callbacks, one module per part of the page."""
from __future__ import annotations

from dash import Dash

from exporters.queries import TraceQueries

from ..group_actions import GroupActions
from . import drilldown, errors, graph, ribbon, table, url


def register(app: Dash, queries: TraceQueries, *, actions: GroupActions,
             token: str | None = None) -> None:
    """``actions``: the error groups' status changes (the Errors tab's buttons);
    ``token``: the access token they need, None for none."""
    ribbon.register(app, queries)
    table.register(app, queries)
    graph.register(app, queries)
    drilldown.register(app, queries)
    url.register(app, queries)
    errors.register(app, queries, actions, token)
