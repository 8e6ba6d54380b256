"""Bad parameters on every endpoint are a 4xx with a message naming the problem, never a
500 and never the UI's page. The table below must name every parameter of every
endpoint in the OpenAPI spec: an endpoint added without a case here fails."""
from __future__ import annotations

import pytest

# endpoint -> parameter -> bad values (each must be refused)
BAD = {
    "/api/rows": {
        "from": ["yesterday", "2026-13-01"], "to": ["nan", "2026-01-01T25:00"],
        "process": ["x" * 1001], "data": ["y" * 1001], "service": ["z" * 1001],
        "errors_only": ["maybe", "2"], "sort": ["ts; DROP TABLE spans", "Process"],
        "offset": ["-1", "1e400", "ten", "10000001"], "limit": ["0", "1001", "nan"],
    },
    "/api/processes": {"window_s": ["abc", "0", "-5", "nan", "inf", "1e12"]},
    "/api/calls/{span_id}": {"span_id": ["zz", "g" * 16, "0" * 17, "0" * 15]},
    "/api/calls/{span_id}/reproduce": {"span_id": ["zz", "g" * 16, "0" * 17]},
    "/api/calls/{span_id}/last-good": {"span_id": ["zz", "g" * 16, "0" * 15]},
    "/api/traces/{trace_id}": {"trace_id": ["zz", "g" * 32, "0" * 33, "0" * 31]},
    "/api/processes/{name}/source": {"name": ["n" * 1001]},
    "/api/processes/{name}/durations": {"name": ["n" * 1001],
                                        "minutes": ["0", "-5", "nan", "inf", "100000"],
                                        "points": ["0", "601", "1.5", "x"]},
    "/api/graph": {"window_s": ["0", "nan", "inf", "86401", "x"]},
    "/api/alerts": {"limit": ["0", "-1", "1001", "x"]},
    "/api/banners": {"fresh_within_s": ["0", "nan", "-inf", "x"]},
    "/api/errors": {"status": ["closed", "OPEN"], "process": ["x" * 1001],
                    "service": ["z" * 1001], "since": ["yesterday", "2026-13-01", "12345"],
                    "sort": ["title", "count; --"], "limit": ["0", "501", "x"],
                    "offset": ["-1", "x", "1000001"]},
    "/api/errors/{fingerprint}": {"fingerprint": ["zz", "g" * 32, "0" * 31, "0" * 33]},
    "/api/errors/{fingerprint}/resolve": {"fingerprint": ["zz", "g" * 32, "0" * 33]},
    "/api/errors/{fingerprint}/ignore": {"fingerprint": ["zz", "g" * 32, "0" * 31]},
    "/api/errors/{fingerprint}/snooze": {"fingerprint": ["zz", "g" * 32, "0" * 31]},
}
PATH_DEFAULTS = {"span_id": "00000000000000aa", "name": "ui_workload.price",
                 "trace_id": "0" * 32, "fingerprint": "0" * 32}
# Endpoints taking another method than GET
METHODS = {"/api/errors/{fingerprint}/resolve": "POST",
           "/api/errors/{fingerprint}/ignore": "POST",
           "/api/errors/{fingerprint}/snooze": "POST"}


def _cases():
    for endpoint, params in BAD.items():
        for name, values in params.items():
            for value in values:
                yield pytest.param(endpoint, name, value, id=f"{endpoint}?{name}={value[:12]}")


def _url(endpoint: str, name: str, value: str) -> tuple[str, dict]:
    path = endpoint
    for param, default in PATH_DEFAULTS.items():
        path = path.replace("{" + param + "}", value if param == name else default)
    return path, ({} if "{" + name + "}" in endpoint else {name: value})


@pytest.mark.parametrize("endpoint,name,value", list(_cases()))
def test_a_bad_parameter_is_a_4xx_naming_it(client, endpoint, name, value):
    path, params = _url(endpoint, name, value)
    r = client.request(METHODS.get(endpoint, "GET"), path, params=params)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])
    assert r.headers["content-type"].startswith("application/json")
    assert name in r.text or (name == "from" and "'from'" in r.text), r.text


def test_every_parameter_of_every_endpoint_has_a_bad_value_case(client):
    spec = client.get("/openapi.json").json()
    named = {(path, p["name"]) for path, ops in spec["paths"].items()
             for op in ops.values() for p in op.get("parameters", [])}
    covered = {(path, name) for path, params in BAD.items() for name in params}
    assert named == covered


@pytest.mark.parametrize("path", ["/api/processes/no.such/source",
                                  "/api/processes/no.such/durations",
                                  "/api/calls/00000000000000aa"])
def test_unknown_process_or_call_is_a_json_404(client, path):
    r = client.get(path)
    assert r.status_code == 404 and "no " in r.json()["detail"]


@pytest.mark.parametrize("path", ["/api/nope", "/api/rows/extra", "/api/calls/",
                                  "/api/processes/a/b/c"])
def test_an_unknown_api_path_is_a_json_404_not_the_ui_page(client, path):
    r = client.get(path)
    assert r.status_code == 404 and r.json()["detail"], r.text[:100]


def test_endpoints_without_parameters_ignore_unknown_ones(client):
    for path in ("/api/health", "/api/feeds"):
        assert client.get(path, params={"x": "'; DROP TABLE spans"}).status_code == 200
