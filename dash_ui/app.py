"""The Dash app: ``create_dash_app(queries, *, requests_pathname_prefix="/")``; or the
same UI as one component of an existing Dash app: ``embed_ui(app, queries)``. ``queries``
is the query service its callbacks call (the JSON API's, when ``dash_ui.server`` builds
both), or the path of a store to build one over.

Everything it serves is local: the vendored Darkly CSS and the app's own assets from
``dash_ui/assets``, the component bundles from the installed packages
(``serve_locally``), no external stylesheets or scripts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import dash
from dash import dcc, html
from dash.development.base_component import Component
from flask import abort, send_from_directory

from . import callbacks, layout
from .api.auth import resolve_token
from .group_actions import GroupActions
from .service import QuerySource, query_service

ASSETS = Path(__file__).with_name("assets")


# The components' lazily loaded chunks the first render needs (the dropdowns, the date
# picker, the grid), under _dash-component-suites/: loaded with the page's bundles as
# async scripts, each registering its modules in its package's webpack chunk list (in
# either order with the package's bundle), so that when React first renders those
# components their import() is already resolved: no script to run after the layout has
# arrived, among the callbacks' answers (on the first render's path: the grid was
# created ~0.5 s after the layout arrived).
FIRST_RENDER_CHUNKS = ("dash/dcc/async-dropdown.js", "dash/dcc/async-datepicker.js",
                       "dash_ag_grid/async-community.js")


def _installed_chunks() -> tuple[str, ...]:
    import dash_ag_grid

    where = {"dash": Path(dash.__file__).parent,
             "dash_ag_grid": Path(dash_ag_grid.__file__).parent}
    return tuple(c for c in FIRST_RENDER_CHUNKS
                 if where[c.split("/", 1)[0]].joinpath(c.split("/", 1)[1]).is_file())


class LocalDash(dash.Dash):
    """Dash whose front-end config names no other host: Dash always puts its
    version-check URL (dash-version.plotly.com, used only by the debug UI) in the page's
    config; it is dropped, and the check disabled. ``preload``: component chunks (paths
    under _dash-component-suites/) the page loads with its bundles (async scripts)."""

    preload: tuple[str, ...] = ()

    def _config(self):  # noqa: ANN202 - Dash's own hook
        config = super()._config()
        config.pop("dash_version_url", None)
        config["disable_version_check"] = True
        return config

    def interpolate_index(self, **kwargs: Any) -> str:
        suites = self.config.requests_pathname_prefix + "_dash-component-suites/"
        links = "".join(f'<script async src="{suites}{chunk}"></script>'
                        for chunk in self.preload)
        return super().interpolate_index(**{**kwargs, "css": links + kwargs["css"]})


def create_dash_app(queries: QuerySource, *, requests_pathname_prefix: str = "/",
                    token: str | None = None, group_actions: GroupActions | None = None,
                    token_resolved: bool = False,
                    slos: Callable[[], Sequence[Any]] | None = None) -> dash.Dash:
    """``token``: the access token the Errors tab's actions need (None: the setting,
    ``$OTEL_MONITOR_UI_TOKEN``, unless ``token_resolved``: then None is no token).
    ``group_actions``: the error groups' status changes to call (the server's, shared
    with its API), else one of its own over the store. ``slos``: what the SLOs tab shows
    (a callable returning SLOs; None: those registered in this process)."""
    app = LocalDash(
        __name__, title="otel-monitor", assets_folder=str(ASSETS),
        external_stylesheets=[], external_scripts=[], serve_locally=True,
        requests_pathname_prefix=requests_pathname_prefix,
        routes_pathname_prefix=requests_pathname_prefix,
        update_title=None,
    )
    app.preload = _installed_chunks()
    app.layout = _root()
    # What callbacks may name beyond the layout: the calls grid and the Errors tab's grid,
    # each mounted when first shown.
    app.validation_layout = html.Div([_root(), layout.calls_grid(), layout.errors_grid()])
    _register(app, queries, token, group_actions, token_resolved, slos)
    return app


def _register(app: dash.Dash, source: QuerySource, token: str | None,
              group_actions: GroupActions | None, token_resolved: bool,
              slos: Callable[[], Sequence[Any]] | None = None) -> None:
    queries = query_service(source)
    callbacks.register(app, queries, actions=group_actions or GroupActions(queries.path),
                       token=token if token_resolved else resolve_token(token),
                       slo_source=slos, calls_grid=layout.calls_grid(),
                       errors_grid=layout.errors_grid())


def _root() -> html.Div:
    return html.Div([dcc.Store(id="om-grid-purged"), dcc.Store(id="om-grid-refreshed"),
                     layout.page()])


EMBED_ROUTE = "_otel-monitor/assets/"
EMBED_ASSETS = ("bootstrap.min.css", "otel.css", "dashAgGridComponentFunctions.js",
                "omLiveRefresh.js", "omFormat.js", "omGraph.js")


def embed_ui(app: dash.Dash, queries: QuerySource, *, with_bootstrap: bool = True,
             token: str | None = None, group_actions: GroupActions | None = None
             ) -> Component:
    """The whole UI as a component to place in an existing Dash app's layout (a page, a
    tab). Registers its callbacks (ids start with ``om-``) on ``app``, and serves its
    assets from ``app``'s own server under ``<prefix>_otel-monitor/assets/``, adding them
    to the page (the Darkly CSS only if ``with_bootstrap``). ``token`` and
    ``group_actions`` as for ``create_dash_app``."""
    _register(app, queries, token, group_actions, False)
    route = app.config.routes_pathname_prefix + EMBED_ROUTE
    url = app.config.requests_pathname_prefix + EMBED_ROUTE

    def asset(name: str):
        if name not in EMBED_ASSETS:
            abort(404)
        return send_from_directory(ASSETS, name)

    app.server.add_url_rule(route + "<path:name>", "otel_monitor_asset", asset)
    for name in EMBED_ASSETS:
        if name.endswith(".js"):
            app.config.external_scripts.append(url + name)
        elif with_bootstrap or name != "bootstrap.min.css":
            app.config.external_stylesheets.append(url + name)
    return _root()
