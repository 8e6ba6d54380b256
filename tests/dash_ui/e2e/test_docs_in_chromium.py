"""The OpenAPI docs in real Chromium with every request to another host blocked: Swagger
UI and ReDoc render the API's operations from the files ``otel-monitor serve`` serves
itself, behind its access token."""
from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from e2e_fixtures import (  # noqa: F401  (fixtures, used by name)
    browser,
    browser_context_args,
    browser_type_launch_args,
    playwright,
)
from e2e_support import serve
from playwright.sync_api import Page, Route, expect

from exporters.store import SpanStore

pytestmark = pytest.mark.timeout(120)

TOKEN = "docs-s3cret"


@pytest.fixture(scope="module")
def docs_url(tmp_path_factory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("docs") / "docs.db"
    SpanStore(db).close()  # the docs need a store to serve, not its rows
    with serve(db, token=TOKEN) as url:
        yield url


@pytest.fixture
def offline(browser, browser_context_args) -> Iterator[tuple[Page, list[str]]]:  # noqa: F811
    """A page that reaches 127.0.0.1 only (the other requests are aborted and listed),
    sending the token as a bearer header; and the list of blocked URLs."""
    context = browser.new_context(**browser_context_args,
                                  extra_http_headers={"Authorization": f"Bearer {TOKEN}"})
    blocked: list[str] = []

    def only_local(route: Route) -> None:
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    yield page, blocked
    context.close()
    # The docs' Content-Security-Policy refuses ReDoc's logo from its maker's CDN (so it
    # is never requested); nothing else may fail.
    assert [e for e in errors if "https://cdn.redoc.ly/" not in e] == [], errors


def test_swagger_ui_lists_the_operations_with_no_other_host(offline, docs_url):
    page, blocked = offline
    page.goto(docs_url + "/docs")
    paths = page.locator(".opblock-summary-path")
    expect(paths.first).to_be_visible()
    shown = set(paths.all_inner_texts())
    assert {"/api/rows", "/api/health", "/api/graph"} <= {p.replace("\u200b", "")
                                                          for p in shown}
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("otel-monitor API")
    page.wait_for_load_state("networkidle")  # whatever else it would load, tried
    assert blocked == []


def test_redoc_lists_the_operations_with_no_other_host(offline, docs_url):
    page, blocked = offline
    page.goto(docs_url + "/redoc")
    expect(page.get_by_text("A page of trace rows (seven columns), newest first").first
           ).to_be_visible()
    expect(page.get_by_text("API docs by Redocly")).to_be_attached()  # the logo's footer
    page.wait_for_load_state("networkidle")  # whatever else it would load, tried
    assert blocked == []


def test_without_the_token_the_docs_page_is_refused(browser, docs_url):  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    response = page.goto(docs_url + "/docs")
    assert response is not None and response.status == 401
    context.close()
