"""The ribbon's SelfHealth badge: otel-monitor's own health with its thresholds in the
tooltip; red for a store at its size cap, and for an OTLP ingest that refuses spans
because its store is full (a real full store: PRAGMA max_page_count on the ingest
writer's own connection), which /metrics counts too."""
from __future__ import annotations

import sqlite3
import time

import httpx
from fastapi import FastAPI
from prometheus_client import generate_latest

from api_server import ServedApp

from dash_ui.callbacks.ribbon import badges, explain
from dash_ui.ingest import ingest_router
from dash_ui.ingest_spans import open_writer
from dash_ui.metrics import metrics_registry
from exporters.queries import TraceQueries
from exporters.self_health import IngestStats, SelfHealthLimits
from exporters.store import SpanStore


def _badge(queries: TraceQueries) -> dict:
    return queries.health()["badges"]["SelfHealth"]


def test_all_good_then_red_for_a_store_at_its_cap_with_the_thresholds_in_the_tooltip(
        tmp_path):
    db = tmp_path / "s.db"
    store = SpanStore(db)
    queries = TraceQueries(db)
    good = _badge(queries)
    assert good["level"] == "ok" and good["value"] == 0
    text = explain("SelfHealth", good)
    for rule in SelfHealthLimits().describe().values():
        assert rule in text  # every threshold is in the tooltip
    assert "writer lag > 5 s" in text and "All good." in text

    con = sqlite3.connect(db)
    con.execute("CREATE TABLE filler (b BLOB)")
    con.executemany("INSERT INTO filler VALUES (zeroblob(4000))", [()] * 200)
    con.commit()
    con.close()
    store.claim_purge(60 * 10**9, retention_ns=3600 * 10**9,
                      max_bytes=int(store.used_bytes() / 0.95))
    store.close()
    bad = _badge(queries)
    assert bad["level"] == "red" and bad["value"] == 1
    assert [c["name"] for c in bad["conditions"] if c["bad"]] == ["store_size"]
    assert "Now bad: store_size (95% of" in explain("SelfHealth", bad)
    rendered = {b.id: b for b in badges(queries.health())}
    assert rendered["om-badge-SelfHealth"].className == "om-level-red"


def test_an_ingest_refusing_a_full_store_turns_the_badge_red_and_is_counted(tmp_path):
    db = tmp_path / "s.db"
    SpanStore(db).close()
    writer = open_writer(db, busy_timeout_s=0.5)
    store = writer._open()
    pages = store.db.scalar("PRAGMA page_count")
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # full: no page more
    stats = IngestStats()
    app = FastAPI()
    app.include_router(ingest_router(writer, token=None, max_bytes=2**20, stats=stats),
                       prefix="/v1")
    queries = TraceQueries(db)
    queries.ingest_stats = stats
    registry = metrics_registry(db, ingest_stats=stats)
    assert _badge(queries)["level"] == "ok"
    now = time.time_ns()
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "far"}}]},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "051581bf3cb55c13",
            "name": "far.work", "kind": 1, "startTimeUnixNano": str(now - 2_000_000),
            "endTimeUnixNano": str(now),
            "attributes": [{"key": "payload", "value": {"stringValue": "x" * 50_000}}]}]}]}]}
    with ServedApp(app) as served:
        answer = httpx.post(f"{served.url}/v1/traces", json=body, timeout=30)
    assert answer.status_code == 503
    badge = _badge(queries)
    assert badge["level"] == "red"
    assert [c["name"] for c in badge["conditions"] if c["bad"]] == ["ingest_refusing"]
    text = generate_latest(registry).decode()
    assert 'otel_monitor_ingest_requests_total{status="503"} 1.0' in text
    writer.shutdown()
