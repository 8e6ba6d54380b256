"""The OpenAPI docs: /docs and /redoc as FastAPI renders them, with their script and style
files served from here (``DOCS_ASSETS``, the swagger-ui and redoc bundles that the
``fastapi-offline`` package ships) rather than a CDN, so the docs work offline and name no
other host; and, for an app with a token, /openapi.json as a route (FastAPI's own skips
the app's dependencies). As routes, not a mount, so that the token guards them too.
``document_mounts`` adds the operations of mounted sub-apps (OTLP ingest at /v1) to the
app's document."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

DOCS_ASSETS = "/docs-assets"  # swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js
# The docs pages may load from this server only: ReDoc's bundle puts in an <img> of its
# maker's logo from their CDN, which this keeps the browser from requesting. (Inline: the
# page's own start-up script, and the styles the bundles inject; blob: ReDoc's worker.)
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
            "base-uri 'none'; form-action 'self'")

_files = StaticFiles(packages=[("fastapi_offline", "static")])

router = APIRouter(include_in_schema=False)
openapi_router = APIRouter(include_in_schema=False)


@router.get(DOCS_ASSETS + "/{name:path}")
async def docs_asset(name: str, request: Request) -> Response:
    return await _files.get_response(name, request.scope)


@openapi_router.get("/openapi.json")
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    page = get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json", title=f"{request.app.title} - docs",
        swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
        # no badge fetched from the public spec validator
        swagger_ui_parameters={"validatorUrl": None})
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    page = get_redoc_html(
        openapi_url=f"{root}/openapi.json", title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png", with_google_fonts=False)
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


def document_mounts(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document list the operations of the FastAPI apps mounted on
    it too (FastAPI leaves mounts out), each under its mount's path."""
    build = app.openapi
    merged: list[dict[str, Any]] = []  # the document last merged into (FastAPI caches it)

    def openapi() -> dict[str, Any]:
        document = build()
        if not merged or merged[0] is not document:
            merged[:] = [document]
            for route in app.routes:
                if isinstance(route, Mount) and isinstance(route.app, FastAPI):
                    sub = route.app.openapi()
                    for path, operations in sub.get("paths", {}).items():
                        document["paths"][route.path + path] = operations
                    for kind, items in sub.get("components", {}).items():
                        components = document.setdefault("components", {})
                        components.setdefault(kind, {}).update(items)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
