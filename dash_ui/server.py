"""The one process that serves the UI and its API: ``create_server_app(db_path, ...)``.

Today it serves the JSON API (``dash_ui.api``) and a placeholder page at ``/``. The
Dash app will be mounted by ``mount_ui`` (the hook below), through a2wsgi, in place
of the placeholder.
"""
from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from .api import create_api

PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>otel-monitor</title>
<style>body{background:#0d1117;color:#c9d1d9;font-family:system-ui,sans-serif;margin:3em}
a{color:#3e8ef7}</style></head>
<body><h1>otel-monitor</h1>
<p>The UI is coming. The JSON API is live: see <a href="docs">/docs</a>.</p>
</body></html>"""


def mount_ui(app: FastAPI, db_path: str) -> None:
    """Hook for the Dash UI: it will be mounted here (``app.mount("/", WSGIMiddleware(
    dash_app.server))`` via a2wsgi). Until then, a placeholder page at ``/``."""

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def placeholder() -> str:
        return PLACEHOLDER


def create_server_app(db_path: str | os.PathLike[str], *, token: str | None = None
                      ) -> FastAPI:
    """The FastAPI app serving the API (and, later, the UI) for the store at ``db_path``."""
    app = create_api(db_path, token=token)
    mount_ui(app, os.fspath(db_path))
    return app

