"""Over real HTTP: a failed call that recorded no variable is a row of /api/rows (and
under errors only), recorded through the real decorator; a process whose name has a
"/" (a plain OTel span such as "GET /health") has its source and durations endpoints."""
from __future__ import annotations

import httpx
import pytest
from opentelemetry import trace

from api_server import ServedApp
from exporters.queries import SORTS
from otel_monitor import monitor
from recording import recording_into, settings_env_cleared


@monitor("jobs")
def rotate_keys():
    raise PermissionError("vault sealed")


@monitor("jobs", log_inputs=False)
def load_config(path: str):
    raise FileNotFoundError(path)


@monitor("jobs")
def scale(x: float) -> float:
    return 2 * x


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    path = tmp_path_factory.mktemp("failed") / "f.db"
    with settings_env_cleared():
        with recording_into(path):
            for i in range(3):
                scale(i)
                with pytest.raises(PermissionError):
                    rotate_keys()
            with pytest.raises(FileNotFoundError):
                load_config("/etc/app.toml")
            with trace.get_tracer("test").start_as_current_span("GET /health"):
                pass
        from dash_ui.server import create_server_app

        with ServedApp(create_server_app(path)) as app:
            yield app


@pytest.fixture
def http(served):
    with httpx.Client(base_url=served.url, timeout=10) as c:
        yield c


def _rows(http, **params):
    r = http.get("/api/rows", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("sort", list(SORTS))
def test_failed_calls_without_variables_are_rows_with_empty_data(http, sort):
    for errors_only in (False, True):
        page = _rows(http, sort=sort, errors_only=errors_only)
        failed = [r for r in page["rows"] if r["Process"].endswith(("rotate_keys", "load_config"))]
        assert len(failed) == 4, (sort, errors_only)
        assert all(r["Data"] == "" and r["Data Type"] == "" and r["Data Value"] == ""
                   and r["Status"] == "ERR" for r in failed)
        assert {r["Exception"].strip().splitlines()[-1] for r in failed} == {
            "PermissionError: vault sealed", "FileNotFoundError: /etc/app.toml"}
        assert page["note"] is None and page["sorted_within_calls"] is None
    assert _rows(http, errors_only=True)["total"] == 4


def test_a_failed_call_without_variables_opens_in_the_drill_down(http):
    (row,) = _rows(http, process=f"{__name__}.load_config")["rows"]
    call = http.get(f"/api/calls/{row['span_id']}").json()
    assert call["values"] == [] and "FileNotFoundError" in call["exception"]


def test_a_process_named_with_a_slash_has_source_and_durations(http):
    names = [p["name"] for p in http.get("/api/processes").json()]
    assert "GET /health" in names
    for suffix in ("source", "durations"):
        r = http.get(f"/api/processes/GET%20%2Fhealth/{suffix}")
        assert r.status_code == 200 and r.json().get("name", r.json().get("process")) \
            == "GET /health", r.text[:200]
