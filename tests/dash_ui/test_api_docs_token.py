"""With an access token set, the OpenAPI docs (/docs, /redoc, /openapi.json) and their
script and style files need it as the API does; without one they stay open. The docs
name no other host: their files are served locally. Over real HTTP, on the whole
served app."""
from __future__ import annotations

import re
from urllib.parse import urljoin, urlparse

import httpx
import pytest

from api_server import ServedApp

DOCS = ("/docs", "/redoc", "/openapi.json")


@pytest.fixture(scope="module")
def guarded(recorded):
    from dash_ui.server import create_server_app

    with ServedApp(create_server_app(recorded, token="s3cret")) as served:
        yield served


def test_docs_and_openapi_need_the_token_when_one_is_set(guarded):
    with httpx.Client(base_url=guarded.url, timeout=10) as c:
        for path in DOCS:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                r = c.get(path, headers=headers)
                assert r.status_code == 401, (path, headers, r.text)
                assert "openapi" not in r.text.lower() and "/api/rows" not in r.text
        ok = {path: c.get(path, headers={"Authorization": "Bearer s3cret"}) for path in DOCS}
    assert all(r.status_code == 200 for r in ok.values())
    assert "/api/rows" in ok["/openapi.json"].json()["paths"]
    assert "swagger-ui" in ok["/docs"].text and "/openapi.json" in ok["/docs"].text
    assert "redoc" in ok["/redoc"].text.lower()


def test_a_browser_that_opened_the_ui_with_the_token_reads_the_docs_by_its_cookie(guarded):
    with httpx.Client(base_url=guarded.url, timeout=10, follow_redirects=True) as browser:
        assert browser.get("/docs").status_code == 401
        assert browser.get("/", params={"token": "s3cret"}).status_code == 200  # sets it
        assert browser.get("/docs").status_code == 200
        assert "/api/rows" in browser.get("/openapi.json").json()["paths"]


def test_docs_stay_open_without_a_token(client):
    for path in DOCS:
        assert client.get(path).status_code == 200, path


def _page_assets(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def _local_docs_pages(c: httpx.Client, headers: dict[str, str]) -> dict[str, list[str]]:
    """Each docs page's script, style and icon URLs, after checking that the page names
    no host at all (so nothing it loads comes from elsewhere)."""
    assets = {}
    for path in ("/docs", "/redoc"):
        r = c.get(path, headers=headers)
        assert r.status_code == 200, path
        assert not re.search(r"https?://|//[a-z]", r.text, re.I), (path, r.text)
        # and the browser is told to load from this server only (ReDoc's bundle would
        # fetch its maker's logo from a CDN)
        policy = dict(d.strip().split(" ", 1) for d in
                      r.headers["content-security-policy"].split(";"))
        assert policy["default-src"] == policy["connect-src"] == "'self'"
        assert policy["img-src"] == "'self' data:" and "http" not in str(policy)
        assets[path] = _page_assets(r.text)
    assert {u.rsplit("/", 1)[1] for u in assets["/docs"]} == {
        "swagger-ui.css", "swagger-ui-bundle.js", "favicon.png"}
    assert {u.rsplit("/", 1)[1] for u in assets["/redoc"]} == {
        "redoc.standalone.js", "favicon.png"}
    return assets


def test_docs_load_their_files_from_the_server_without_a_token(client):
    for path, urls in _local_docs_pages(client, {}).items():
        for url in urls:
            full = urljoin(str(client.base_url) + path, url)
            assert urlparse(full).hostname == "127.0.0.1"
            r = client.get(full)
            assert r.status_code == 200 and r.content, url
    js = client.get("/docs-assets/swagger-ui-bundle.js")
    assert "javascript" in js.headers["content-type"] and "SwaggerUIBundle" in js.text
    assert "text/css" in client.get("/docs-assets/swagger-ui.css").headers["content-type"]
    assert "Redoc" in client.get("/docs-assets/redoc.standalone.js").text
    for missing in ("/docs-assets/nope.js", "/docs-assets/..%2fcore.py"):
        assert client.get(missing).status_code == 404, missing


def test_docs_files_need_the_token_when_one_is_set(guarded):
    auth = {"Authorization": "Bearer s3cret"}
    with httpx.Client(base_url=guarded.url, timeout=10) as c:
        for path, urls in _local_docs_pages(c, auth).items():
            for url in urls:
                full = urljoin(guarded.url + path, url)
                assert c.get(full).status_code == 401, url
                assert c.get(full, headers={"Authorization": "Bearer wrong"}
                             ).status_code == 401, url
                assert c.get(full, headers=auth).status_code == 200, url
