"""The API keeps its documented contract at the edges: a date that cannot be stored is a
422 in FastAPI's standard shape, as is a 'from' after 'to' or a number given as a date;
a wrong method on a route is a 405 naming the allowed ones; the OpenAPI document lists
every route that answers (/v1/traces and /metrics too) with every status it can give."""
from __future__ import annotations

import httpx
import pytest

from api_server import ServedApp
from exporters.store import ProcessEntry, SpanStore

LAST_NS = (1 << 63) - 1  # the latest instant the store can hold


def _standard_422(r: httpx.Response, name: str) -> None:
    """FastAPI's validation shape: detail is a list of {loc, msg, type}, naming ``name``."""
    assert r.status_code == 422, r.text[:300]
    detail = r.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    assert all({"loc", "msg", "type"} <= set(d) for d in detail), detail
    assert ["query", name] in [list(d["loc"]) for d in detail], detail


@pytest.mark.parametrize("name, value", [
    ("to", "2262-04-11T23:47:17Z"), ("from", "1600-01-01T00:00:00Z"),
    ("from", "9999-12-31T23:59:59+00:00"), ("to", "0001-01-01T00:00:00-05:00"),
    ("to", "1677-09-21T00:12:43Z"),
])
def test_a_date_the_store_cannot_hold_is_a_standard_422(client, name, value):
    _standard_422(client.get("/api/rows", params={name: value}), name)


@pytest.mark.parametrize("value", ["0.5", "0", "1700000000", "-1"])
def test_a_number_is_not_a_date(client, value):
    _standard_422(client.get("/api/rows", params={"to": value}), "to")


def test_the_edges_of_the_range_are_accepted(client):
    r = client.get("/api/rows", params={"from": "1677-09-21T00:12:44Z",
                                        "to": "2262-04-11T23:47:16Z"})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["rows"]


def test_from_after_to_is_a_standard_422(client):
    _standard_422(client.get("/api/rows", params={"from": "2026-01-02T00:00:00Z",
                                                  "to": "2026-01-01T00:00:00Z"}), "from")


@pytest.fixture(scope="module")
def far_future(tmp_path_factory):
    """A store whose one call ends at the last instant the store can hold."""
    path = tmp_path_factory.mktemp("far") / "far.db"
    store = SpanStore(path)
    ids = store.process_ids([ProcessEntry("far.future")])
    store.insert_calls([0, 0x1234, "ab" * 16, None, LAST_NS - 5_000_000, 5.0,
                        ids["far.future"], None, "svc", "OK", "ok", None, None, 1, None],
                       [0, 0, "x", "INPUT", "1"])
    store.close()
    from dash_ui.server import create_server_app

    with ServedApp(create_server_app(path)) as served:
        yield served


def test_a_call_at_the_end_of_time_is_listed(far_future):
    r = httpx.get(far_future.url + "/api/rows", timeout=10)
    assert r.status_code == 200 and r.json()["rows"][0]["span_id"] == "0000000000001234"


def test_a_call_at_the_end_of_time_opens(far_future):
    r = httpx.get(far_future.url + "/api/calls/0000000000001234", timeout=10)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["process"] == "far.future"


@pytest.mark.parametrize("method, path, allowed", [
    ("PUT", "/api/rows", "GET"), ("DELETE", "/api/calls/00000000000000aa", "GET"),
    ("POST", "/api/health", "GET"), ("POST", "/metrics", "GET"),
    ("GET", "/v1/traces", "POST"), ("PATCH", "/api/processes/a.b/source", "GET"),
])
def test_a_wrong_method_is_a_405_naming_the_allowed_ones(client, method, path, allowed):
    r = client.request(method, path)
    assert r.status_code == 405, (r.status_code, r.text[:200])
    assert {m.strip() for m in r.headers["allow"].split(",")} >= {allowed}
    assert r.headers["content-type"].startswith("application/json"), r.headers


@pytest.mark.parametrize("method", ["GET", "PUT", "POST", "DELETE"])
def test_an_unknown_api_path_is_a_json_404_whatever_the_method(client, method):
    r = client.request(method, "/api/no/such/thing")
    assert r.status_code == 404 and r.json()["detail"]


def _operations(spec: dict) -> dict[tuple[str, str], dict]:
    return {(path, method.upper()): op for path, ops in spec["paths"].items()
            for method, op in ops.items()}


def _answering_routes(app) -> set[tuple[str, str]]:
    """(path, method) of every route of the served app and of its mounted sub-apps, but
    the UI's, the docs' and the /api catch-all (which answers 404 or 405)."""
    from fastapi.routing import iter_route_contexts

    found = set()
    for route in iter_route_contexts(app.routes):
        if route.methods is None:  # a mount: the UI (WSGI) at "/", an ASGI app elsewhere
            if hasattr(route.route.app, "routes"):
                found |= {(route.route.path + p, m)
                          for p, m in _answering_routes(route.route.app)}
        elif route.path_format not in ("/api/{rest}", "/openapi.json", "/docs", "/redoc",
                                       "/docs-assets/{name}"):
            found |= {(route.path_format, m) for m in route.methods}
    return found


def test_the_openapi_document_lists_every_route_that_answers(recorded, client):
    from dash_ui.server import create_server_app

    spec = client.get("/openapi.json").json()
    documented = set(_operations(spec))
    assert {("/v1/traces", "POST"), ("/metrics", "GET")} <= documented
    assert documented == _answering_routes(create_server_app(recorded))
    for path, method in documented:  # and each of them answers, not the catch-all 404
        r = client.request(method, path.replace("{span_id}", "00000000000000aa")
                           .replace("{name}", "ui_workload.price"))
        assert "no API endpoint" not in r.text, (path, method)


def test_every_status_a_route_gives_is_declared(client):
    ops = _operations(client.get("/openapi.json").json())
    for (path, method), op in ops.items():
        declared = set(op["responses"])
        assert "200" in declared, (path, declared)
        if path.startswith("/api/") and op.get("parameters"):
            assert "422" in declared, (path, declared)
        assert "400" not in declared or path == "/v1/traces", (path, declared)
    for path in ("/api/calls/{span_id}", "/api/processes/{name}/source",
                 "/api/processes/{name}/durations"):
        assert "404" in ops[(path, "GET")]["responses"], path
    ingest = ops[("/v1/traces", "POST")]
    assert {"200", "400", "413", "415", "503"} <= set(ingest["responses"])
    assert {"application/x-protobuf", "application/json"} <= set(
        ingest["requestBody"]["content"])
    assert "partialSuccess" in str(ingest["responses"]["200"])
    assert "text/plain" in ops[("/metrics", "GET")]["responses"]["200"]["content"]


def test_with_a_token_every_route_declares_its_401(recorded):
    from dash_ui.server import create_server_app

    with ServedApp(create_server_app(recorded, token="s3cret")) as served:
        r = httpx.get(served.url + "/openapi.json", timeout=10,
                      headers={"Authorization": "Bearer s3cret"})
        for (path, method), op in _operations(r.json()).items():
            assert "401" in op["responses"], (path, method)
            answer = httpx.request(method, served.url + path.replace(
                "{span_id}", "00000000000000aa").replace("{name}", "x"), timeout=10)
            assert answer.status_code == 401, (path, method, answer.status_code)


@pytest.mark.parametrize("scope_spans", [
    {"spans": [[None, None]]}, {"spans": ["x"]}, {"spans": [5]}, {"scope": "AAA"},
    {"scope": ["name"]}, {"spans": [{"status": "x"}]}, {"spans": [{"events": "e"}]},
    {"spans": [{"attributes": [{"key": "k", "value": "v"}]}]}, {"spans": {}},
])
def test_an_otlp_json_message_field_that_is_not_an_object_is_a_400(client, scope_spans):
    """protobuf's JSON parser alone would read a string or list given for a message as
    an object of unknown fields and drop them (a 500 for a span that is not an object)."""
    r = client.post("/v1/traces", json={"resourceSpans": [{"scopeSpans": [scope_spans]}]})
    assert r.status_code == 400, r.text[:200]
    assert "must be a" in r.json()["message"], r.text[:200]


def test_an_otlp_json_resource_that_is_not_an_object_is_a_400(client):
    r = client.post("/v1/traces", json={"resourceSpans": [{"resource": "r"}]})
    assert r.status_code == 400 and "resource" in r.json()["message"], r.text[:200]
