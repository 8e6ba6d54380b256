"""The other endpoints over real HTTP: processes, a call, source, durations, graph,
health, feeds, alerts, banners; 404s, 4xx for bad parameters; the access token."""
from __future__ import annotations

import sqlite3
import time
from contextlib import closing

import httpx
import pytest

from api_server import ServedApp
from conftest import SCRIPT


@pytest.fixture(scope="module", autouse=True)
def _reads_as_of_the_state(server, recorded):
    """The served reads judge ages as of the instant ``write_state`` wrote the feeds, not
    as of whenever a test gets to read: "bbg.fx" (interval 1 s) is fresh at that instant
    and stale 2 s later, which a slow module run (a loaded machine) used to reach, failing
    the graph's and the feeds' assertions now and then."""
    with closing(sqlite3.connect(recorded)) as conn:
        [(written,)] = conn.execute(
            "SELECT last_update_ns FROM feeds WHERE name = 'bbg.fx'").fetchall()
    queries = server.app.state.queries
    queries.clock = lambda: written
    yield
    queries.clock = time.time_ns


def get(client, path, **params):
    r = client.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_processes_have_group_calls_and_errors(client):
    procs = {p["name"]: p for p in get(client, "/api/processes")}
    assert procs["ui_workload.check_limit"] == {
        "name": "ui_workload.check_limit", "process_group": "risk", "calls": 6, "errors": 3}
    assert procs["ui_workload.price"]["calls"] == 30


def test_a_call_has_its_values_traceback_parent_and_children(client):
    err = get(client, "/api/rows", errors_only=True, limit=1)["rows"][0]
    call = get(client, f"/api/calls/{err['span_id']}")
    assert call["status"] == "ERR" and "ValueError: negative limit" in call["exception"]
    assert [v["data"] for v in call["values"]] == ["book", "limit"]

    child = get(client, "/api/rows", process="ui_workload.fee", limit=1)["rows"][0]
    detail = get(client, f"/api/calls/{child['span_id']}")
    assert detail["parent"]["process"] == "ui_workload.price"
    parent = get(client, f"/api/calls/{detail['parent']['span_id']}")
    assert [c["span_id"] for c in parent["children"]] == [child["span_id"]]


def test_unknown_or_malformed_span_id(client):
    assert client.get("/api/calls/00000000deadbeef").status_code == 404
    r = client.get("/api/calls/not-a-span")
    assert r.status_code == 422 and "span_id" in r.text


def test_source_comes_from_the_catalog(client):
    src = get(client, "/api/processes/ui_workload.price/source")
    assert "def price(symbol: str, qty: int)" in src["source"]
    assert src["file"].endswith("ui_workload.py") and src["line"] > 0
    r = client.get("/api/processes/nope'; DROP TABLE processes; --/source")
    assert r.status_code == 404 and "no process named" in r.json()["detail"]


def test_durations_are_bucketed_and_bounded(client):
    series = get(client, "/api/processes/ui_workload.price/durations", minutes=30, points=10)
    assert 1 <= len(series["points"]) <= 10
    assert sum(p["calls"] for p in series["points"]) == 30
    assert client.get("/api/processes/ui_workload.price/durations",
                      params={"points": 10_000}).status_code == 422
    assert client.get("/api/processes/nope/durations").status_code == 404


def test_graph_has_call_edges_and_feed_edges_with_stale_flag(client):
    graph = get(client, "/api/graph")
    calls = {(e["source"], e["target"]) for e in graph["edges"] if e["kind"] == "call"}
    assert ("ui_workload.price", "ui_workload.fee") in calls
    feeds = {e["source"]: e for e in graph["edges"] if e["kind"] == "feed"}
    assert feeds["feed:refinitiv.rates"]["stale"] is True
    assert feeds["feed:bbg.fx"]["stale"] is False
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes["ui_workload.check_limit"]["errors"] == 3
    assert nodes["ui_workload.fee"]["last_latency_ms"] >= 0
    assert nodes["feed:bbg.fx"]["kind"] == "feed"
    assert client.get("/api/graph", params={"window_s": -1}).status_code == 422


def test_health_badges_turn_red_past_their_thresholds(client):
    health = get(client, "/api/health")
    assert health["badges"]["QueueDepth"]["level"] == "red"
    assert health["badges"]["SQLiteWriteLag"]["level"] == "ok"
    assert health["badges"]["LastFeedUpdate"] == {**health["badges"]["LastFeedUpdate"],
                                                  "feed": "refinitiv.rates", "level": "red"}
    assert health["errors_last_5_min"] == 3
    assert health["processes"][0]["dropped"] == 3


def test_feeds_alerts_banners(client):
    feeds = {f["name"]: f for f in get(client, "/api/feeds")}
    assert feeds["refinitiv.rates"]["stale"] and not feeds["bbg.fx"]["stale"]
    alerts = get(client, "/api/alerts", limit=5)
    assert alerts[0]["summary"] == f"ValueError {SCRIPT}"
    assert client.get("/api/alerts", params={"limit": 0}).status_code == 422
    assert [b["name"] for b in get(client, "/api/banners", fresh_within_s=3600)] == [
        "backpressure"]


def test_ui_page_and_openapi_docs(client):
    page = client.get("/")  # the Dash app (tests/dash_ui/test_dash_app.py tests it further)
    assert page.status_code == 200 and 'id="_dash-config"' in page.text
    assert client.get("/docs").status_code == 200
    paths = get(client, "/openapi.json")["paths"]
    assert {"/api/rows", "/api/graph", "/api/calls/{span_id}", "/api/health"} <= set(paths)


def test_token_is_required_as_a_bearer_header_when_set(recorded):
    from dash_ui.server import create_server_app

    with ServedApp(create_server_app(recorded, token="s3cret")) as served, \
            httpx.Client(base_url=served.url, timeout=10) as c:
        for path in ("/api/rows", "/api/health", "/api/graph", "/"):
            assert c.get(path).status_code == 401
            assert c.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = c.get("/api/rows", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["rows"]


def test_token_from_the_environment(recorded, monkeypatch):
    from dash_ui.api import TOKEN_ENV, create_api

    monkeypatch.setenv(TOKEN_ENV, "from-env")
    with ServedApp(create_api(recorded)) as served, \
            httpx.Client(base_url=served.url, timeout=10) as c:
        assert c.get("/api/feeds").status_code == 401
        assert c.get("/api/feeds",
                     headers={"Authorization": "Bearer from-env"}).status_code == 200


@pytest.mark.parametrize("path", ["/api/processes?window_s=abc", "/api/banners?fresh_within_s=0",
                                  "/api/processes/x/durations?minutes=-5"])
def test_more_bad_parameters_are_4xx(client, path):
    r = client.get(path)
    assert 400 <= r.status_code < 500 and r.json()["detail"]
