"""The JSON API over the store: ``create_api(db_path, token=None)``.

Every endpoint asks ``exporters.queries.TraceQueries`` for its data; parameters are
validated here (a bad one is a 422 naming it, never a 500) and passed on as values.
Responses are JSON: stored values come back as the strings they were stored as,
never as HTML. With a token (the parameter, else ``$OTEL_MONITOR_UI_TOKEN``) every
``/api`` request needs ``Authorization: Bearer <token>`` (or the UI's token cookie, set
when a browser opens the UI with ``?token=``), and so do the OpenAPI docs (``/docs``,
``/redoc``, ``/openapi.json``) and their script and style files. Those files are served
from here (the swagger-ui and redoc bundles that the ``fastapi-offline`` package ships),
not from a CDN: the docs work offline and name no other host.
"""
from __future__ import annotations

import hmac
import os
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.staticfiles import StaticFiles

from exporters.queries import COUNT_CAP, SORTS, NotFound, RowFilter, TraceQueries
from otel_monitor.settings import read_setting

TOKEN_ENV = "OTEL_MONITOR_UI_TOKEN"
TOKEN_COOKIE = "otel_monitor_token"  # set by the UI's guard (dash_ui.server) on ?token=
MAX_PAGE = 1_000
MAX_OFFSET = 1_000_000
MAX_TEXT = 1_000  # longest filter value accepted
DOCS_ASSETS = "/docs-assets"  # swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js
# The docs pages may load from this server only: ReDoc's bundle puts in an <img> of its
# maker's logo from their CDN, which this keeps the browser from requesting. (Inline: the
# page's own start-up script, and the styles the bundles inject; blob: ReDoc's worker.)
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
            "base-uri 'none'; form-action 'self'")

Text = Annotated[str | None, Query(max_length=MAX_TEXT)]
SortKey = Literal[tuple(SORTS)]  # type: ignore[valid-type]


def _ns(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp() * 1_000_000) * 1000


def resolve_token(token: str | None) -> str | None:
    return token if token is not None else read_setting("ui_token")


def create_api(db_path: str | os.PathLike[str], token: str | None = None) -> FastAPI:
    """The API app for the store at ``db_path`` (opened read-only)."""
    queries = TraceQueries(db_path)
    token = resolve_token(token)

    bearer = HTTPBearer(auto_error=False, description=f"the access token (${TOKEN_ENV})")

    def valid(given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), token.encode())

    def refuse() -> HTTPException:
        return HTTPException(401, "a valid access token is required "
                                  "(Authorization: Bearer <token>)",
                             headers={"WWW-Authenticate": "Bearer"})

    def require_token(request: Request,  # Depends as a default: `bearer` is local
                      credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
                      ) -> None:
        if not (valid(credentials.credentials if credentials else None)
                or valid(request.cookies.get(TOKEN_COOKIE))):
            raise refuse()

    # Every route of the app needs the token (the API, the docs, and what other modules
    # add, e.g. /metrics). FastAPI's own docs routes load their scripts from a CDN, and
    # its /openapi.json skips app dependencies: _local_docs serves them instead.
    api = FastAPI(title="otel-monitor API",
                  description="Read-only JSON over an otel-monitor store.",
                  docs_url=None, redoc_url=None,
                  **({} if token is None else
                     {"dependencies": [Depends(require_token)], "openapi_url": None}))
    api.state.queries = queries
    _local_docs(api, openapi_route=token is not None)

    @api.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @api.exception_handler(ValueError)
    async def bad_value(_: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @api.get("/api/rows", summary="A page of trace rows (seven columns), newest first")
    def rows(
        from_: Annotated[datetime | None, Query(alias="from", description="ISO 8601; UTC "
                                                "if no offset")] = None,
        to: Annotated[datetime | None, Query(description="ISO 8601, exclusive")] = None,
        process: Text = None,
        data: Text = None,
        errors_only: bool = False,
        service: Text = None,
        sort: SortKey = "-timestamp",
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    ) -> dict[str, Any]:
        f = RowFilter(since_ns=_ns(from_), until_ns=_ns(to), process=process, data=data,
                      errors_only=errors_only, service=service)
        if f.since_ns is not None and f.until_ns is not None and f.since_ns > f.until_ns:
            raise HTTPException(422, "'from' must not be after 'to'")
        total, exact = queries.count_rows(f)
        page = queries.page(f, sort=sort, offset=offset, limit=limit)
        return {"rows": page.rows, "offset": offset, "limit": limit, "total": total,
                "total_exact": exact, "count_cap": COUNT_CAP,
                # Set when the page took the bounded strategy: the UI shows the note.
                "sorted_within_calls": page.window_calls, "note": page.note}

    @api.get("/api/processes", summary="Processes with group, calls and errors in a window")
    def processes(window_s: Annotated[float, Query(gt=0, le=7 * 86400)] = 1800
                  ) -> list[dict[str, Any]]:
        return queries.processes(window_s=window_s)

    @api.get("/api/calls/{span_id}", summary="One call: inputs/outputs, traceback, "
                                             "parent and children")
    def call(span_id: Annotated[str, Path(pattern="^[0-9a-fA-F]{16}$")]) -> dict[str, Any]:
        return queries.call(span_id)

    @api.get("/api/processes/{name:path}/source", summary="A process's source from the catalog")
    def source(name: Annotated[str, Path(max_length=MAX_TEXT)]) -> dict[str, Any]:
        return queries.source(name)

    @api.get("/api/processes/{name:path}/durations",
             summary="A process's duration_ms over the last N minutes, bucketed")
    def durations(name: Annotated[str, Path(max_length=MAX_TEXT)],
                  minutes: Annotated[float, Query(gt=0, le=24 * 60)] = 30,
                  points: Annotated[int, Query(ge=1, le=600)] = 120) -> dict[str, Any]:
        return queries.durations(name, minutes=minutes, points=points)

    @api.get("/api/graph", summary="Dependency graph: process and feed nodes and edges")
    def graph(window_s: Annotated[float, Query(gt=0, le=86400)] = 1800) -> dict[str, Any]:
        return queries.graph(window_s=window_s)

    @api.get("/api/health", summary="Status ribbon: badges with levels, per-process health")
    def health() -> dict[str, Any]:
        return queries.health()

    @api.get("/api/feeds", summary="Feeds with age, level and stale flag")
    def feeds() -> list[dict[str, Any]]:
        return queries.feeds()

    @api.get("/api/alerts", summary="The latest alerts, newest first")
    def alerts(limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict[str, Any]]:
        return queries.alerts(limit=limit)

    @api.get("/api/banners", summary="Raised banner flags (backpressure)")
    def banners(fresh_within_s: Annotated[float, Query(gt=0, le=86400)] = 10.0
                ) -> list[dict[str, Any]]:
        return queries.banners(fresh_within_s=fresh_within_s)

    # Last: any other /api path is a JSON 404, not the UI's page (mounted at "/").
    @api.api_route("/api/{rest:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH",
                                                "DELETE"], include_in_schema=False)
    def no_such_endpoint(rest: str) -> None:
        raise HTTPException(404, f"no API endpoint /api/{rest}; see /docs")

    return api


def _local_docs(api: FastAPI, *, openapi_route: bool) -> None:
    """/docs and /redoc as FastAPI renders them, with their files from DOCS_ASSETS, and
    (``openapi_route``) /openapi.json: all routes of ``api``, so behind its dependencies."""
    # A route, not a mount, so that the token dependency guards the files too.
    files = StaticFiles(packages=[("fastapi_offline", "static")])

    @api.get(DOCS_ASSETS + "/{name:path}", include_in_schema=False)
    async def docs_asset(name: str, request: Request) -> Response:
        return await files.get_response(name, request.scope)

    if openapi_route:
        @api.get("/openapi.json", include_in_schema=False)
        def openapi() -> JSONResponse:
            return JSONResponse(api.openapi())

    @api.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json", title=f"{api.title} - docs",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            # no badge fetched from the public spec validator
            swagger_ui_parameters={"validatorUrl": None})
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    @api.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}/openapi.json", title=f"{api.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png", with_google_fonts=False)
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page
