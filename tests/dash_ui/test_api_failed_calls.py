"""Over real HTTP: a failed call that recorded no variable is a row of /api/rows (and
under errors only), recorded through the real decorator; a process whose name has a
"/" (a plain OTel span such as "GET /health") has its source and durations endpoints."""
from __future__ import annotations

import pytest
from opentelemetry import trace

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
def recorded(tmp_path_factory):
    """This module's store, for conftest's ``server`` and ``client``."""
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
        yield path


def _rows(client, **params):
    r = client.get("/api/rows", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("sort", list(SORTS))
def test_failed_calls_without_variables_are_rows_with_empty_data(client, sort):
    for errors_only in (False, True):
        page = _rows(client, sort=sort, errors_only=errors_only)
        failed = [r for r in page["rows"] if r["Process"].endswith(("rotate_keys", "load_config"))]
        assert len(failed) == 4, (sort, errors_only)
        assert all(r["Data"] == "" and r["Data Type"] == "" and r["Data Value"] == ""
                   and r["Status"] == "ERR" for r in failed)
        assert {r["Exception"].strip().splitlines()[-1] for r in failed} == {
            "PermissionError: vault sealed", "FileNotFoundError: /etc/app.toml"}
        assert page["note"] is None and page["sorted_within_calls"] is None
    assert _rows(client, errors_only=True)["total"] == 4


def test_a_failed_call_without_variables_opens_in_the_drill_down(client):
    (row,) = _rows(client, process=f"{__name__}.load_config")["rows"]
    call = client.get(f"/api/calls/{row['span_id']}").json()
    assert call["values"] == [] and "FileNotFoundError" in call["exception"]


def test_a_process_named_with_a_slash_has_source_and_durations(client):
    names = [p["name"] for p in client.get("/api/processes").json()]
    assert "GET /health" in names
    for suffix in ("source", "durations"):
        r = client.get(f"/api/processes/GET%20%2Fhealth/{suffix}")
        assert r.status_code == 200 and r.json().get("name", r.json().get("process")) \
            == "GET /health", r.text[:200]
