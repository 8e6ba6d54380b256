"""The server starts while another process holds the store's write lock: it serves reads
at once, OTLP ingest answers 503 until the lock is released, then writes. A store whose
schema would need migrating is still refused while locked."""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api_server import ServedApp
from dash_ui.ingest import create_ingest_app
from exporters.errors import StoreBusy
from exporters.schema import SCHEMA_VERSION
from exporters.store import ProcessEntry, SpanStore
from served_cli import served_cli

# Another process: takes the lock with the given statement, says so, and keeps it until
# a line arrives on its stdin.
HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute(sys.argv[2])
print("held", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


class LockHolder:
    """Another process holding the store's lock (taken by ``statement``) until release."""

    def __init__(self, db: Path, statement: str) -> None:
        self._proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), statement],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True)
        assert self._proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        if self._proc.returncode is None:
            self._proc.communicate("release\n", timeout=10)
            assert self._proc.returncode == 0


@contextlib.contextmanager
def lock_held(db: Path, statement: str) -> Iterator[LockHolder]:
    holder = LockHolder(db, statement)
    try:
        yield holder
    finally:
        holder.release()


def _body(span_id: str) -> bytes:
    now = time.time_ns()
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": span_id, "name": "op",
        "startTimeUnixNano": str(now - 1000), "endTimeUnixNano": str(now),
        "attributes": [{"key": "monitor.input.x", "value": {"stringValue": "1"}}]}]}]}]}
    ).encode()


def _post(url: str, span_id: str) -> httpx.Response:
    return httpx.post(url, content=_body(span_id), timeout=30,
                      headers={"content-type": "application/json"})


def _stored_calls(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT count(*) FROM spans").fetchone()[0]


@pytest.fixture
def db(tmp_path, monkeypatch) -> Path:
    """A store with three calls, each with one variable."""
    for var in ("OTEL_MONITOR_INGEST_TOKEN", "OTEL_MONITOR_UI_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "locked.db"
    store = SpanStore(path)
    pid = store.process_ids([ProcessEntry("app.f")])["app.f"]
    t0 = time.time_ns()
    spans, data = [], []
    for k in range(3):
        spans += [k, k + 1, f"{k:032x}", None, t0 + k, 1.0, pid, None, "svc", "OK", "ok",
                  None, None, 1, None]
        data += [k, 0, "x", "INPUT", repr(k)]
    store.insert_calls(spans, data)
    store.close()
    return path


def test_serve_starts_and_reads_while_another_process_holds_the_write_lock(db):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OTEL_MONITOR_INGEST_TOKEN", "OTEL_MONITOR_UI_TOKEN")}
    with lock_held(db, "BEGIN EXCLUSIVE") as holder, \
            served_cli(db, env, ready_path="/api/rows") as served:  # started while locked
        url = served.url
        rows = httpx.get(f"{url}/api/rows", timeout=10)
        assert rows.status_code == 200 and rows.json()["total"] == 3
        assert httpx.get(url + "/", timeout=10).status_code == 200  # the UI too
        holder.release()
        # The lock is released: the first ingest request opens the writer and lands.
        r = _post(f"{url}/v1/traces", "00000000000000d1")
        assert r.status_code == 200, r.text
        assert httpx.get(f"{url}/api/rows", timeout=10).json()["total"] == 4
    assert "locked by another writer; serving reads now" in served.stderr


def test_ingest_opened_while_locked_answers_503_until_the_lock_is_released(db):
    with lock_held(db, "BEGIN IMMEDIATE") as holder:
        ingest = create_ingest_app(db, busy_timeout_s=0.2)
        with ServedApp(ingest) as served:
            r = _post(f"{served.url}/traces", "00000000000000e1")
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert "database is locked" in r.json()["message"]
            assert _stored_calls(db) == 3
            holder.release()
            r = _post(f"{served.url}/traces", "00000000000000e1")  # the sender's retry
            assert r.status_code == 200, r.text
    assert _stored_calls(db) == 4


def test_a_store_that_needs_migrating_is_still_refused_while_locked(db):
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                     (str(SCHEMA_VERSION - 1),))
    with lock_held(db, "BEGIN IMMEDIATE"), pytest.raises(StoreBusy, match="locked"):
        create_ingest_app(db, busy_timeout_s=0.2)
