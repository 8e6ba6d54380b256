"""/api/rows over real HTTP: filters, paging, sorting, injection strings, stored HTML."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from conftest import INJECTIONS, SCRIPT

SEVEN = ["Process", "Data", "Data Type", "Data Value", "Timestamp", "Status", "Exception"]


def rows(client, **params):
    r = client.get("/api/rows", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_rows_come_in_the_seven_columns_newest_first_with_ids_for_drill_down(client):
    page = rows(client, limit=50)
    assert page["total"] == len(rows(client, limit=1000)["rows"])
    first = page["rows"][0]
    assert set(SEVEN) <= set(first) and len(first["span_id"]) == 16
    assert len(first["trace_id"]) == 32
    stamps = [r["Timestamp"] for r in page["rows"]]
    assert stamps == sorted(stamps, reverse=True)


def test_errors_only_returns_only_err_rows(client):
    page = rows(client, errors_only=True, limit=1000)
    assert page["rows"] and {r["Status"] for r in page["rows"]} == {"ERR"}
    assert all("ValueError" in r["Exception"] for r in page["rows"])
    assert {r["Process"] for r in page["rows"]} == {"ui_workload.check_limit"}


def test_process_filter_is_exact(client):
    page = rows(client, process="ui_workload.fee", limit=1000)
    assert {r["Process"] for r in page["rows"]} == {"ui_workload.fee"}
    assert len({r["span_id"] for r in page["rows"]}) == 30
    assert rows(client, process="fee")["rows"] == []


def test_data_filter_keeps_rows_of_that_variable(client):
    page = rows(client, data="book", limit=1000)
    assert len(page["rows"]) == 6 and {r["Data"] for r in page["rows"]} == {"book"}


def test_service_filter(client):
    assert rows(client, service="no-such-service")["rows"] == []


def test_date_range_filter(client):
    now = datetime.now(timezone.utc)
    assert rows(client, **{"from": (now + timedelta(hours=1)).isoformat()})["rows"] == []
    every = rows(client, limit=1000)["rows"]
    inside = rows(client, limit=1000, **{"from": (now - timedelta(hours=1)).isoformat(),
                                        "to": (now + timedelta(minutes=1)).isoformat()})
    assert len(inside["rows"]) == len(every)
    assert rows(client, to=(now - timedelta(hours=1)).isoformat())["rows"] == []


def test_pages_are_stable_and_cover_every_row_once(client):
    every = rows(client, limit=1000)["rows"]
    paged = []
    for offset in range(0, len(every), 7):
        paged += rows(client, offset=offset, limit=7)["rows"]
    key = lambda r: (r["span_id"], r["seq"])  # noqa: E731
    assert [key(r) for r in paged] == [key(r) for r in every]


@pytest.mark.parametrize("sort", ["timestamp", "-duration_ms", "process", "status"])
def test_sorting(client, sort):
    got = rows(client, sort=sort, limit=1000)["rows"]
    field = {"timestamp": "start_ns", "-duration_ms": "duration_ms", "process": "Process",
             "status": "Status"}[sort]
    values = [r[field] for r in got]
    assert values == sorted(values, reverse=sort.startswith("-"))


def test_injection_strings_in_every_filter_are_data(client):
    total = rows(client, limit=1)["total"]
    for text in INJECTIONS:
        for name in ("process", "data", "service"):
            assert rows(client, **{name: text})["rows"] == []
    # Stored as values, they come back verbatim and only where they were stored.
    values = {r["Data Value"] for r in rows(client, process="ui_workload.render",
                                            limit=1000)["rows"]}
    assert {repr(t) for t in INJECTIONS} <= values
    assert rows(client, limit=1)["total"] == total  # the tables are all still there


def test_stored_script_comes_back_as_that_exact_string(client):
    r = client.get("/api/rows", params={"process": "ui_workload.render_markup"})
    assert r.headers["content-type"].startswith("application/json")
    output = [row for row in r.json()["rows"] if row["Data Type"] == "OUTPUT"]
    assert [row["Data Value"] for row in output] == [SCRIPT]
    assert "&lt;" not in r.text and "<script>" in r.text  # JSON text, not escaped HTML


@pytest.mark.parametrize("params, mentions", [
    ({"limit": 0}, "limit"), ({"limit": 100000}, "limit"), ({"offset": -1}, "offset"),
    ({"limit": "ten"}, "limit"), ({"from": "yesterday"}, "from"), ({"sort": "ts; DROP"}, "sort"),
    ({"errors_only": "maybe"}, "errors_only"), ({"process": "x" * 2000}, "process"),
])
def test_bad_parameters_are_4xx_with_a_message(client, params, mentions):
    r = client.get("/api/rows", params=params)
    assert 400 <= r.status_code < 500, r.text
    assert mentions in r.text


def test_from_after_to_is_4xx(client):
    r = client.get("/api/rows", params={"from": "2026-01-02T00:00:00",
                                        "to": "2026-01-01T00:00:00"})
    assert r.status_code == 422 and ["query", "from"] == r.json()["detail"][0]["loc"]


def test_a_failed_row_carries_its_exception_summary_beside_the_traceback(client):
    page = rows(client, errors_only=True, limit=50)
    for r in page["rows"]:
        assert r["Exception"].startswith("Traceback")  # the seven-column field, whole
        assert r["exception_summary"].startswith("ValueError: negative limit for ")
        assert "\n" not in r["exception_summary"]
    ok = rows(client, limit=1000)["rows"]
    assert all(r["exception_summary"] == "" for r in ok if r["Status"] == "OK")
