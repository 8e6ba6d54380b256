"""The JSON API over the store: ``create_api(queries_or_db_path, token=None)``.

Every endpoint asks the app's query service (``exporters.queries.TraceQueries``, the one
the Dash callbacks use too when ``dash_ui.server`` builds both) for its data; parameters
are validated by the routes (a bad one is a 422 in FastAPI's standard shape, naming it;
never a 500) and passed on as values; every status a route can give is in the OpenAPI
document, and a wrong method on a route's path is a 405 with ``Allow``. Responses are
JSON: stored values come back as the strings they were stored as, never as HTML. With a
token (the parameter, else ``$OTEL_MONITOR_UI_TOKEN``) every ``/api`` request needs
``Authorization: Bearer <token>`` (or the UI's token cookie, set when a browser opens the
UI with ``?token=``), and so do the OpenAPI docs (``/docs``, ``/redoc``,
``/openapi.json``) and their script and style files (``api.docs``).

One router per part: ``rows`` (the trace table), ``calls`` (processes, a call, source,
durations), ``graph``, ``status`` (health, feeds, alerts, banners), ``errors`` (error
groups, and their resolve / ignore / snooze: the API's only writes), ``slos`` (SLIs,
budgets, burn rates), ``docs``; ``auth``
holds the token, ``deps`` what the routes receive.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from exporters.queries import NotFound

from ..group_actions import GroupActions, OnResolved
from ..service import QuerySource, query_service
from . import calls, docs, errors, graph, rows, status
from . import slos as slo_routes
from .auth import TOKEN_COOKIE, TOKEN_ENV, resolve_token, token_required
from .deps import answer

__all__ = ["TOKEN_COOKIE", "TOKEN_ENV", "allowed_methods", "create_api", "resolve_token"]

_unknown = APIRouter(include_in_schema=False)
_EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> list[str]:
    """The methods that the routes at the request's path take (none: no route there),
    for a 405's ``Allow``. Catch-alls (a route taking every method, a mount) do not
    count."""
    methods: set[str] = set()
    for route in routes:
        taken = {m for m in _EVERY_METHOD
                 if route.matches({**scope, "method": m})[0] is Match.FULL}
        if len(taken) < len(_EVERY_METHOD):
            methods |= taken
    return sorted(methods)


# Last: any other /api path is a JSON 404, not the UI's page (mounted at "/"); another
# method on a route's path is a 405 (this route would otherwise take it).
@_unknown.api_route("/api/{rest:path}", methods=_EVERY_METHOD)
def no_such_endpoint(request: Request, rest: str) -> None:
    allowed = allowed_methods(request.app.routes, request.scope)
    if allowed:
        raise HTTPException(405, "Method Not Allowed", headers={"Allow": ", ".join(allowed)})
    raise HTTPException(404, f"no API endpoint /api/{rest}; see /docs")


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


def create_api(queries: QuerySource, token: str | None = None, *,
               on_resolved: OnResolved | None = None,
               group_actions: GroupActions | None = None,
               slos: slo_routes.SloSource | None = None) -> FastAPI:
    """The API app over ``queries``: a query service, or the path of a store to build one
    over (opened read-only). ``on_resolved(group)``: called after an error group is
    resolved through the API (e.g. to resolve its alerts). ``group_actions``: the error
    groups' status changes to call (the server shares one with the UI), else a new one
    with ``on_resolved``. ``slos``: what ``/api/slos`` shows (a callable returning SLOs;
    by default the SLOs registered in this process)."""
    token = resolve_token(token)
    # Every route of the app needs the token (the API, the docs, and what other modules
    # add, e.g. /metrics). FastAPI's own docs routes load their scripts from a CDN, and
    # its /openapi.json skips app dependencies: the docs router serves them instead.
    guarded: dict[str, Any] = {} if token is None else {
        "dependencies": [token_required(token)], "openapi_url": None,
        "responses": {401: answer("No valid access token")}}
    api = FastAPI(title="otel-monitor API",
                  description="JSON over an otel-monitor store (read-only but for the "
                              "error groups' status changes).",
                  docs_url=None, redoc_url=None, **guarded)
    api.state.queries = query_service(queries)
    api.state.slos = slos
    api.state.group_actions = group_actions or GroupActions(api.state.queries.path,
                                                            on_resolved)
    api.add_exception_handler(NotFound, _not_found)
    api.include_router(docs.router)
    if token is not None:
        api.include_router(docs.openapi_router)
    for part in (rows, calls, graph, status, errors, slo_routes):
        api.include_router(part.router)
    api.include_router(_unknown)
    return api
