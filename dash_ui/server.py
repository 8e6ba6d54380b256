"""The one process that serves the UI and its API: ``create_server_app(db_path, ...)``.

The JSON API (``dash_ui.api``) under ``/api`` with its OpenAPI docs at ``/docs``, and
the Dash app (``dash_ui.app``) mounted at ``/`` through a2wsgi by ``mount_ui``. Both read
through one query service, built here, so the table and the API always agree.
"""
from __future__ import annotations

import hmac
import os
from http.cookies import SimpleCookie
from typing import Any, Callable, Sequence
from urllib.parse import parse_qs

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse

from exporters.queries import TraceQueries

from .api import TOKEN_COOKIE, allowed_methods, create_api, resolve_token
from .api.docs import document_mounts
from .group_actions import GroupActions, OnResolved
from .ingest import create_ingest_app
from .metrics import mount_metrics
from .service import query_service


def _token_guard(inner: Any, token: str) -> Any:
    """ASGI wrapper: the UI needs the token too, as ``Authorization: Bearer <token>``, or
    the cookie set by opening any UI page once with ``?token=<token>``."""

    def ok(value: str) -> bool:
        return hmac.compare_digest(value.encode(), token.encode())

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await inner(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        scheme, _, value = headers.get("authorization", "").partition(" ")
        cookie = SimpleCookie()
        cookie.load(headers.get("cookie", ""))
        given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        if (scheme.lower() == "bearer" and ok(value)) or \
                (TOKEN_COOKIE in cookie and ok(cookie[TOKEN_COOKIE].value)):
            return await inner(scope, receive, send)
        if given and ok(given):
            response = RedirectResponse(scope.get("root_path", "") + scope["path"], 303)
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
            return await response(scope, receive, send)
        response = PlainTextResponse("a valid access token is required (Authorization: "
                                     "Bearer <token>, or open the page with ?token=<token>)",
                                     status_code=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        return await response(scope, receive, send)

    return guarded


def _wrong_method_guard(inner: Any, app: FastAPI) -> Any:
    """ASGI wrapper: a request that reaches the UI only because its method is not one of
    a route's at its path (e.g. ``POST /metrics``) is a 405, not the UI's answer."""

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            allowed = allowed_methods(app.routes, scope)
            if allowed:
                response = JSONResponse({"detail": "Method Not Allowed"}, status_code=405,
                                        headers={"Allow": ", ".join(allowed)})
                return await response(scope, receive, send)
        return await inner(scope, receive, send)

    return guarded


def mount_ui(app: FastAPI, queries: TraceQueries, token: str | None = None,
             group_actions: GroupActions | None = None,
             slos: Callable[[], Sequence[Any]] | None = None) -> None:
    """Mount the Dash UI over ``queries`` at ``/`` (its Flask server through a2wsgi);
    ``/api`` and ``/docs`` stay FastAPI routes, matched first. With a token the UI needs
    it too (its Errors tab's actions check it again). ``group_actions``: the error groups'
    status changes the Errors tab calls (the API's)."""
    from a2wsgi import WSGIMiddleware

    from .app import create_dash_app

    dash_app = create_dash_app(queries, token=token, group_actions=group_actions,
                               token_resolved=True, slos=slos)
    ui: Any = _wrong_method_guard(WSGIMiddleware(dash_app.server), app)
    if token is not None:
        ui = _token_guard(ui, token)
    app.mount("/", ui, name="ui")


def _archive(db_path: str | os.PathLike[str]) -> tuple[str | None, Any]:
    """The settings' archive: its local directory (the spool, with a bucket) and its
    S3-compatible destination (None: none)."""
    from exporters.archive.remote import target_from
    from otel_monitor.settings import load_settings

    s = load_settings({"db_path": os.fspath(db_path)})
    if s.archive_path is None:
        return None, None
    return s.archive_path, target_from(s.archive_url, s.archive_s3_endpoint, s.archive_s3_region)


def create_server_app(db_path: str | os.PathLike[str], *, token: str | None = None,
                      on_resolved: OnResolved | None = None,
                      slos: Sequence[Any] | None = None) -> FastAPI:
    """The FastAPI app serving the API and the UI for the store at ``db_path``; a path
    where nothing was recorded yet gets a new store (so a central OTLP receiver starts
    on a new path). ``on_resolved(group)``: called when an error group is resolved.
    ``slos``: the SLOs the API and the SLOs tab show (``otel-monitor serve``: those of
    the settings' ``slo_file``); None: those registered in this process."""
    token = resolve_token(token)
    # The ingest's writer opens the store first, as the decorator's writer does: on a new
    # path it makes the store at the current schema, folders and file alike.
    ingest = create_ingest_app(db_path, ui_token=token)  # OTLP in; its own token
    queries = query_service(db_path)  # the one the API's routes and the UI's callbacks call
    queries.ingest_stats = ingest.state.ingest_stats  # the ribbon's SelfHealth badge
    # older ranges answered from the archive
    queries.archive_dir, queries.archive_target = _archive(db_path)
    # one set of status changes (one read-write connection, one on_resolved hook) for the
    # API's POST routes and the UI's Errors tab
    actions = GroupActions(queries.path, on_resolved)
    slo_source = None if slos is None else (lambda: tuple(slos))
    app = create_api(queries, token=token, group_actions=actions, slos=slo_source)
    mount_metrics(app, db_path,  # before the UI's catch-all "/"; the API's token guards it
                  ingest_stats=ingest.state.ingest_stats)
    app.mount("/v1", ingest)
    mount_ui(app, queries, token, actions, slo_source)
    document_mounts(app)  # /v1/traces in the app's OpenAPI document
    return app

