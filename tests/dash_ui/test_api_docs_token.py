"""With an access token set, the OpenAPI docs (/docs, /redoc, /openapi.json) need it as
the API does; without one they stay open. Over real HTTP, on the whole served app."""
from __future__ import annotations

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
