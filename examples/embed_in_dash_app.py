"""The otel-monitor UI as one tab of an existing Dash app.

    .venv/bin/python examples/embed_in_dash_app.py logs/core_logs.db
    # then open http://127.0.0.1:8051/
"""
from __future__ import annotations

import sys

import dash
from dash import dcc, html

from dash_ui.app import embed_ui


def build(db_path: str) -> dash.Dash:
    app = dash.Dash(__name__, serve_locally=True)
    monitor = embed_ui(app, db_path)  # registers the UI's callbacks on this app
    app.layout = html.Div([
        html.H3("My trading desk"),
        dcc.Tabs([
            dcc.Tab(label="Positions", children=html.P("the host app's own page")),
            dcc.Tab(label="Monitoring", children=monitor),
        ]),
    ])
    return app


if __name__ == "__main__":
    build(sys.argv[1] if len(sys.argv) > 1 else "logs/core_logs.db").run(
        host="127.0.0.1", port=8051)
