"""The Dash app's callbacks, one module per part of the page."""
from __future__ import annotations

from dash import Dash

from exporters.queries import TraceQueries

from ..group_actions import GroupActions
from typing import Any, Callable, Sequence

from dash.development.base_component import Component

from . import drilldown, errors, graph, ribbon, slos, table, url


def register(app: Dash, queries: TraceQueries, *, actions: GroupActions,
             token: str | None = None,
             slo_source: Callable[[], Sequence[Any]] | None = None,
             calls_grid: Component | None = None,
             errors_grid: Component | None = None) -> None:
    """``actions``: the error groups' status changes (the Errors tab's buttons);
    ``token``: the access token they need, None for none; ``slo_source``: the SLOs the
    SLOs tab shows (None: those registered in this process); ``calls_grid``: the calls
    view's grid (layout.calls_grid), mounted when that view is first shown; ``errors_grid``:
    the Errors tab's (layout.errors_grid), mounted when that tab is first shown."""
    ribbon.register(app, queries)
    table.register(app, queries, calls_grid)
    graph.register(app, queries)
    drilldown.register(app, queries)
    url.register(app, queries)
    errors.register(app, queries, actions, token, errors_grid)
    if slo_source is None:
        from otel_monitor.slo import registered_slos as slo_source
    slos.register(app, queries, slo_source)
