"""The error groups' API over real HTTP: ``GET /api/errors`` (filters, sorts, pages, 422s),
``GET /api/errors/{fingerprint}``, and ``POST …/resolve|ignore|snooze`` (validation, the
token, the on_resolved hook), on a store recorded through the real decorator."""
from __future__ import annotations

import sqlite3

import httpx
import pytest

from api_server import ServedApp
from otel_monitor import monitor
from recording import recording_into, settings_env_cleared

TOKEN = "groups-s3cret"


@monitor("groups")
def stale_quote(n: int) -> float:
    raise ValueError(f"quote {n} stale")


@monitor("groups")
def missing_order(n: int) -> dict:
    raise KeyError(f"order 0x{n * 7919:x} not found")


@monitor("groups")
def over_limit(n: int) -> None:
    raise RuntimeError(f"limit {n} exceeded")


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    path = tmp_path_factory.mktemp("groups") / "groups.db"
    with settings_env_cleared(), recording_into(path):
        for fn, times in ((stale_quote, 5), (missing_order, 3), (over_limit, 1)):
            for n in range(times):
                with pytest.raises(Exception):
                    fn(n)
    return path


@pytest.fixture(scope="module")
def resolved_hook():
    return []


@pytest.fixture(scope="module")
def served(grouped, resolved_hook):
    from dash_ui.server import create_server_app

    with settings_env_cleared():
        app = create_server_app(grouped, on_resolved=resolved_hook.append)
    with ServedApp(app) as s:
        yield s


@pytest.fixture
def api(served):
    with httpx.Client(base_url=served.url, timeout=10) as c:
        yield c


def by_process(api) -> dict[str, dict]:
    return {g["process"].rsplit(".", 1)[-1]: g
            for g in api.get("/api/errors", params={"limit": 100}).json()["groups"]}


def test_the_list_has_each_group_with_title_counts_and_times(api):
    page = api.get("/api/errors").json()
    assert page["total"] == 3 and page["sort"] == "last_seen"
    groups = by_process(api)
    assert {k: (g["title"], g["count"], g["count_last_hour"]) for k, g in groups.items()} == {
        "stale_quote": ("ValueError: quote <n> stale", 5, 5),
        "missing_order": ("KeyError: <str>", 3, 3),
        "over_limit": ("RuntimeError: limit <n> exceeded", 1, 1)}
    # newest last failure first: over_limit failed last
    assert page["groups"][0]["process"].endswith("over_limit")
    g = groups["stale_quote"]
    assert g["first_seen"] <= g["last_seen"] and len(g["last_span_id"]) == 16


def test_sort_filters_and_pages(api):
    by_count = api.get("/api/errors", params={"sort": "count"}).json()["groups"]
    assert [g["count"] for g in by_count] == [5, 3, 1]
    name = by_count[1]["process"]
    assert [g["process"] for g in api.get("/api/errors", params={"process": name}).json()[
        "groups"]] == [name]
    service = by_count[0]["services"][0]
    assert api.get("/api/errors", params={"service": service}).json()["total"] == 3
    assert api.get("/api/errors", params={"service": "no-such"}).json()["total"] == 0
    assert api.get("/api/errors", params={"since": "2262-01-01T00:00:00Z"}).json()["total"] == 0
    assert api.get("/api/errors", params={"since": "2000-01-01"}).json()["total"] == 3
    page = api.get("/api/errors", params={"sort": "count", "limit": 1, "offset": 1}).json()
    assert (page["total"], [g["count"] for g in page["groups"]]) == (3, [3])


@pytest.mark.parametrize("params", [{"status": "closed"}, {"sort": "title"}, {"limit": 0},
                                    {"limit": 100_000}, {"offset": -1}, {"since": "yesterday"},
                                    {"since": "12345"}])
def test_bad_list_parameters_are_422s(api, params):
    r = api.get("/api/errors", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][-1] == next(iter(params))


def test_one_group_has_a_sparkline_and_its_latest_call(api):
    g = by_process(api)["stale_quote"]
    one = api.get(f"/api/errors/{g['fingerprint']}").json()
    assert len(one["sparkline"]["counts"]) == 72 and sum(one["sparkline"]["counts"]) == 5
    assert one["sparkline"]["bucket_s"] == 300
    latest = one["latest_call"]
    assert latest["span_id"] == g["last_span_id"]
    call = api.get(f"/api/calls/{latest['span_id']}")
    assert call.status_code == 200 and call.json()["status"] == "ERR"
    assert call.json()["error_group"] == g["fingerprint"]  # a call names its group


def test_unknown_and_malformed_fingerprints(api):
    assert api.get(f"/api/errors/{'0' * 32}").status_code == 404
    assert api.get("/api/errors/not-a-fingerprint").status_code == 422
    for action in ("resolve", "ignore"):
        assert api.post(f"/api/errors/{'0' * 32}/{action}").status_code == 404
        assert api.post(f"/api/errors/XYZ/{action}").status_code == 422
    assert api.post(f"/api/errors/{'0' * 32}/snooze", json={"for_s": 5}).status_code == 404
    assert api.get(f"/api/errors/{'0' * 32}/resolve").status_code == 405


def test_resolve_changes_the_status_and_calls_the_hook(api, resolved_hook):
    fp = by_process(api)["missing_order"]["fingerprint"]
    r = api.post(f"/api/errors/{fp}/resolve")
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    assert [g["fingerprint"] for g in resolved_hook][-1] == fp
    assert resolved_hook[-1]["title"] == "KeyError: <str>"
    listed = api.get("/api/errors", params={"status": "resolved"}).json()["groups"]
    assert [g["fingerprint"] for g in listed] == [fp]


def test_ignore_and_the_snooze_forms(api):
    fp = by_process(api)["over_limit"]["fingerprint"]
    assert api.post(f"/api/errors/{fp}/ignore").json()["status"] == "ignored"
    snoozed = api.post(f"/api/errors/{fp}/snooze", json={"for_s": 3600}).json()
    assert snoozed["status"] == "snoozed" and snoozed["snooze_until_ns"] is not None
    until = api.post(f"/api/errors/{fp}/snooze", json={"until": "2200-01-01T07:00:00Z"}).json()
    assert until["snooze_until_ns"] == 7_258_143_600 * 10**9
    counted = api.post(f"/api/errors/{fp}/snooze", json={"occurrences": 10}).json()
    assert (counted["snooze_remaining"], counted["snooze_until_ns"]) == (10, None)
    assert api.get("/api/errors", params={"status": "snoozed"}).json()["total"] == 1


@pytest.mark.parametrize("body", [None, {}, {"for_s": 5, "occurrences": 2},
                                  {"for_s": 0}, {"for_s": -1}, {"occurrences": 0},
                                  {"occurrences": 1.5}, {"until": "2000-01-01T00:00:00Z"},
                                  {"until": "soon"}, {"forever": True}])
def test_bad_snoozes_are_422s_and_change_nothing(api, body):
    fp = by_process(api)["stale_quote"]["fingerprint"]
    before = api.get(f"/api/errors/{fp}").json()["status"]
    r = api.post(f"/api/errors/{fp}/snooze", json=body)
    assert r.status_code == 422, (body, r.text)
    assert api.get(f"/api/errors/{fp}").json()["status"] == before


def test_with_a_token_the_writes_need_it(grouped, tmp_path):
    from dash_ui.server import create_server_app

    copy = tmp_path / "copy.db"  # the other tests' store keeps its statuses
    with sqlite3.connect(grouped) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    with settings_env_cleared():
        app = create_server_app(copy, token=TOKEN)
    with ServedApp(app) as s, httpx.Client(base_url=s.url, timeout=10) as c:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        first = c.get("/api/errors", headers=auth).json()["groups"][0]
        fp = first["fingerprint"]
        c.post(f"/api/errors/{fp}/ignore", headers=auth)
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            assert c.get("/api/errors", headers=headers).status_code == 401
            assert c.post(f"/api/errors/{fp}/resolve", headers=headers).status_code == 401
            assert c.post(f"/api/errors/{fp}/snooze", json={"for_s": 60},
                          headers=headers).status_code == 401
        assert c.get(f"/api/errors/{fp}", headers=auth).json()["status"] == "ignored"
        assert c.post(f"/api/errors/{fp}/resolve", headers=auth).status_code == 200
        assert c.get(f"/api/errors/{fp}", headers=auth).json()["status"] == "resolved"
