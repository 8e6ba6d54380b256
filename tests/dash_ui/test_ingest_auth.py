"""Ingest tokens (dedicated, else the UI's) and a locked store, on apps served by uvicorn
in this process (``ServedApp``): the cases the `otel-monitor serve` process of
``test_ingest.py`` is not configured for."""
from __future__ import annotations

import json
import sqlite3
import time

import httpx
import pytest
from google.rpc import code_pb2

from api_server import ServedApp
from dash_ui.ingest import create_ingest_app
from dash_ui.server import create_server_app
from exporters.store import SpanStore


def _body(span_id: str) -> bytes:
    now = time.time_ns()
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "a"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": span_id, "name": "op",
            "startTimeUnixNano": str(now - 1000), "endTimeUnixNano": str(now)}]}]}]}).encode()


def _post(url: str, span_id: str, token: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return httpx.post(f"{url}/v1/traces", content=_body(span_id), headers=headers, timeout=10)


def _stored(db) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT count(*) FROM spans").fetchone()[0]
    finally:
        con.close()


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.delenv("OTEL_MONITOR_INGEST_TOKEN", raising=False)
    monkeypatch.delenv("OTEL_MONITOR_UI_TOKEN", raising=False)
    path = tmp_path / "s.db"
    SpanStore(path).close()
    return path


def test_without_an_ingest_token_the_ui_token_guards_ingest(db):
    with ServedApp(create_server_app(db, token="ui-token")) as served:
        assert _post(served.url, "00000000000000a1", None).status_code == 401
        assert _post(served.url, "00000000000000a2", "other").status_code == 401
        assert _stored(db) == 0
        assert _post(served.url, "00000000000000a3", "ui-token").status_code == 200
        assert _stored(db) == 1


def test_a_dedicated_ingest_token_writes_only(db, monkeypatch):
    monkeypatch.setenv("OTEL_MONITOR_INGEST_TOKEN", "write-only")
    with ServedApp(create_server_app(db, token="ui-token")) as served:
        assert _post(served.url, "00000000000000b1", "ui-token").status_code == 401
        assert _post(served.url, "00000000000000b2", "write-only").status_code == 200
        assert _stored(db) == 1
        # The ingest token does not read: the API still wants the UI token.
        api = f"{served.url}/api/rows"
        assert httpx.get(api, headers={"authorization": "Bearer write-only"},
                         timeout=10).status_code == 401
        assert httpx.get(api, headers={"authorization": "Bearer ui-token"},
                         timeout=10).status_code == 200


def test_a_store_locked_by_another_writer_is_a_503_then_the_retry_lands(db):
    ingest = create_ingest_app(db, busy_timeout_s=0.2)
    with ServedApp(ingest) as served:
        url = served.url  # the ingest app alone: its route is /traces (/v1 when mounted)
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            r = httpx.post(f"{url}/traces", content=_body("00000000000000c1"),
                           headers={"content-type": "application/json"}, timeout=10)
            assert r.status_code == 503
            assert r.json()["code"] == code_pb2.UNAVAILABLE
            assert "cannot be written now" in r.json()["message"]
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert _stored(db) == 0
        r = httpx.post(f"{url}/traces", content=_body("00000000000000c1"),
                       headers={"content-type": "application/json"}, timeout=10)
        assert r.status_code == 200 and _stored(db) == 1


def test_requests_past_the_concurrency_limit_are_a_503_to_retry(db):
    """A request in hand holds its body and decoded spans (~30x the body in memory):
    past ``max_concurrent`` of them a request waits ``wait_s`` for its turn, its body
    unread, then is answered 503, rather than the server holding any number of them."""
    import threading

    ingest = create_ingest_app(db, busy_timeout_s=30, max_concurrent=1, wait_s=0.3)
    with ServedApp(ingest) as served:
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # both requests wait on the store if admitted
        answers: dict[str, httpx.Response] = {}

        def send(span_id: str) -> None:
            answers[span_id] = httpx.post(f"{served.url}/traces", content=_body(span_id),
                                          headers={"content-type": "application/json"},
                                          timeout=60)

        senders = [threading.Thread(target=send, args=(f"00000000000000d{i}",))
                   for i in (1, 2)]
        for t in senders:
            t.start()
        try:
            deadline = time.monotonic() + 30
            while not answers and time.monotonic() < deadline:
                time.sleep(0.01)
            # One answered after its wait, while the other is still waiting on the store.
            (refused_id, refused), = answers.items()
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert refused.json()["code"] == code_pb2.UNAVAILABLE
            assert "busy" in refused.json()["message"]
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
            for t in senders:
                t.join(60)
        admitted, = (r for i, r in answers.items() if i != refused_id)
        assert admitted.status_code == 200 and _stored(db) == 1
