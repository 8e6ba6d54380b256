"""The Dash app: ``create_dash_app(db_path, *, requests_pathname_prefix="/")``.

Everything it serves is local: the vendored Darkly CSS and the app's own assets from
``dash_ui/assets``, the component bundles from the installed packages
(``serve_locally``), no external stylesheets or scripts.
"""
from __future__ import annotations

import os
from pathlib import Path

import dash
from dash import dcc, html

from exporters.queries import TraceQueries

from . import callbacks, layout

ASSETS = Path(__file__).with_name("assets")


class LocalDash(dash.Dash):
    """Dash whose front-end config names no other host: Dash always puts its
    version-check URL (dash-version.plotly.com, used only by the debug UI) in the page's
    config; it is dropped, and the check disabled."""

    def _config(self):  # noqa: ANN202 - Dash's own hook
        config = super()._config()
        config.pop("dash_version_url", None)
        config["disable_version_check"] = True
        return config


def create_dash_app(db_path: str | os.PathLike[str], *,
                    requests_pathname_prefix: str = "/") -> dash.Dash:
    queries = TraceQueries(db_path)
    app = LocalDash(
        __name__, title="otel-monitor", assets_folder=str(ASSETS),
        external_stylesheets=[], external_scripts=[], serve_locally=True,
        requests_pathname_prefix=requests_pathname_prefix,
        routes_pathname_prefix=requests_pathname_prefix,
        update_title=None,
    )
    app.layout = html.Div([dcc.Store(id="om-grid-purged"), dcc.Store(id="om-grid-refreshed"),
                           layout.page()])
    app.server.config["OTEL_MONITOR_QUERIES"] = queries
    callbacks.register(app, queries)
    return app
