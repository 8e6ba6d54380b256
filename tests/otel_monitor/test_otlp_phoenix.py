"""Dual-write to a real OTLP backend: Arize Phoenix, from its own virtualenv
(scripts/phoenix-venv.sh), started here on 127.0.0.1 with free HTTP and gRPC ports.

Every span the decorator made is read back through Phoenix's REST API (name, ids,
parent, status, monitor.* attributes) and compared with the same call in SQLite.
Phoenix keeps one resource attribute, ``openinference.project.name`` (its project),
and drops ``service.name``: the project shows that OTEL_RESOURCE_ATTRIBUTES reached
it; ``service.name`` sent over OTLP is checked against otel-monitor's own receiver in
tests/dash_ui/test_ingest.py. Also: a stalled backend does not hold the application
up, and a store that cannot be written does not hold spans back from OTLP.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import otel_monitor
from otel_monitor import monitor
from otel_monitor.pipeline import PIPELINE

ROOT = Path(__file__).resolve().parents[2]
PHOENIX_BIN = ROOT / ".venv-phoenix" / "bin" / "phoenix"
WORKLOAD = Path(__file__).with_name("otlp_workload.py")


@dataclass
class Phoenix:
    url: str
    grpc_port: int
    proc: subprocess.Popen

    def spans(self, project: str) -> dict[str, dict]:
        """Every span of a project, by span id (hex), through the REST API."""
        found, cursor = {}, None
        while True:
            params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            r = httpx.get(f"{self.url}/v1/projects/{project}/spans", params=params, timeout=30)
            if r.status_code == 404:  # no span has created the project yet
                return found
            r.raise_for_status()
            body = r.json()
            found.update((s["context"]["span_id"], s) for s in body["data"])
            cursor = body.get("next_cursor")
            if not cursor:
                return found

    def wait_for(self, project: str, pick, count: int, timeout_s: float = 60) -> list[dict]:
        """Phoenix writes what it receives from a queue: poll until ``count`` spans
        ``pick`` selects are there."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = [s for s in self.spans(project).values() if pick(s)]
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.25)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env_without_otel() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_"))}


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory):
    """`phoenix serve` on 127.0.0.1, its database and files in a temporary folder."""
    subprocess.run(["bash", str(ROOT / "scripts" / "phoenix-venv.sh")], cwd=ROOT,
                   check=True, timeout=900)  # a no-op once installed (stamp)
    work = tmp_path_factory.mktemp("phoenix")
    port, grpc_port = _free_port(), _free_port()
    env = {**_env_without_otel(), "PHOENIX_HOST": "127.0.0.1", "PHOENIX_PORT": str(port),
           "PHOENIX_GRPC_PORT": str(grpc_port), "PHOENIX_WORKING_DIR": str(work),
           "PHOENIX_SQL_DATABASE_URL": f"sqlite:///{work / 'spans.db'}",
           "PHOENIX_TELEMETRY_ENABLED": "false"}
    log = open(work / "phoenix.log", "w")  # noqa: SIM115 - closed after the process
    proc = subprocess.Popen([str(PHOENIX_BIN), "serve"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            assert proc.poll() is None, (work / "phoenix.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "phoenix did not become ready"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        assert (work / "spans.db").exists()  # its database where we said, not in $HOME
        yield Phoenix(url, grpc_port, proc)
    finally:
        proc.send_signal(signal.SIGCONT)  # in case a test left it stopped
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def _sqlite_calls(db: Path) -> dict[str, dict]:
    """Each call in the store by span id, with its data rows."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        calls = {r["span_id"]: {**dict(r), "data": []}
                 for r in con.execute("SELECT * FROM process_trace")}
        for d in con.execute("SELECT span_id, data, data_type, data_value FROM data_trace "
                             "ORDER BY span, seq"):
            calls[d["span_id"]]["data"].append((d["data"], d["data_type"], d["data_value"]))
        return calls
    finally:
        con.close()


def _text(value) -> str:
    """An attribute as SQLite stores the value: text stays, numbers and bools as repr."""
    return value if isinstance(value, str) else repr(value)


def assert_same_calls(sqlite_calls: dict[str, dict], phoenix_spans: dict[str, dict]) -> None:
    assert set(phoenix_spans) == set(sqlite_calls)
    for span_id, call in sqlite_calls.items():
        span = phoenix_spans[span_id]
        attrs = span["attributes"]
        assert span["name"] == call["process"] == attrs["code.function.name"]
        assert span["context"]["trace_id"] == call["trace_id"]
        assert span["parent_id"] == call["parent_span_id"]
        assert attrs["monitor.process_group"] == call["process_group"]
        assert span["status_code"] == ("ERROR" if call["status"] == "ERR" else "UNSET")
        sent = {(k[len("monitor.input."):], "INPUT", _text(v)) for k, v in attrs.items()
                if k.startswith("monitor.input.")}
        if "monitor.output.return" in attrs:
            sent.add(("return", "OUTPUT", _text(attrs["monitor.output.return"])))
        assert sent == set(call["data"]), span_id
        assert call["data"]  # every call of the workload has inputs


def _run_workload(tmp_path: Path, service: str, project: str, *args: str,
                  env: dict[str, str] | None = None) -> tuple[Path, int]:
    db = tmp_path / f"{service}.db"
    run_env = {**_env_without_otel(), "OTEL_MONITOR_DB": str(db), "OTEL_SERVICE_NAME": service,
               "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={project},"
                                           "deployment.environment=ci",
               **(env or {})}
    ran = subprocess.run([sys.executable, str(WORKLOAD), *args], env=run_env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    return db, json.loads(ran.stdout.strip().splitlines()[-1])["calls"]


def _check_roundtrip(phoenix: Phoenix, db: Path, n_calls: int, service: str,
                     project: str) -> None:
    mine = _sqlite_calls(db)
    assert len(mine) == n_calls
    assert {c["service_name"] for c in mine.values()} == {service}  # OTEL_SERVICE_NAME
    got = phoenix.wait_for(project, lambda s: True, n_calls)
    assert_same_calls(mine, {s["context"]["span_id"]: s for s in got})
    con = sqlite3.connect(db)
    try:
        exported, failed = con.execute(
            "SELECT otlp_exported, otlp_failed FROM health").fetchone()
    finally:
        con.close()
    assert (exported, failed) == (n_calls, 0)


def test_dual_write_over_http_protobuf_from_the_environment(phoenix, tmp_path):
    db, n = _run_workload(tmp_path, "svc-http", "otlp-http", env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": phoenix.url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    _check_roundtrip(phoenix, db, n, "svc-http", "otlp-http")


def test_dual_write_over_grpc_from_configure(phoenix, tmp_path):
    db, n = _run_workload(tmp_path, "svc-grpc", "otlp-grpc",
                          "--endpoint", f"http://127.0.0.1:{phoenix.grpc_port}",
                          "--protocol", "grpc")
    _check_roundtrip(phoenix, db, n, "svc-grpc", "otlp-grpc")


# -- one side down, the other goes on (in this process: project "default") -------------


@monitor("tagged", otel_span=True)
def tagged(tag: str, i: int) -> int:
    return i


def _tagged_spans(phoenix: Phoenix, tag: str, count: int) -> dict[str, dict]:
    got = phoenix.wait_for("default", lambda s: s["attributes"].get("monitor.input.tag")
                           == repr(tag), count)
    return {s["context"]["span_id"]: s for s in got}


def _tagged_calls(db: Path, tag: str) -> dict[str, dict]:
    return {k: c for k, c in _sqlite_calls(db).items()
            if ("tag", "INPUT", repr(tag)) in c["data"]}


def test_a_stalled_backend_does_not_hold_the_application_up(phoenix, tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")  # export while the calls run
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "120")  # outlast the stop: no failure
    db = tmp_path / "stalled.db"
    otel_monitor.configure(db_path=db, otlp_endpoint=phoenix.url, flush_interval_s=0.05)
    tag = uuid.uuid4().hex
    try:
        phoenix.proc.send_signal(signal.SIGSTOP)  # accepts connections, answers none
        try:
            results = [tagged(tag, i) for i in range(200)]
            # Every call returned while not one export could have been answered.
            assert PIPELINE.otlp.health()["otlp_exported"] == 0
        finally:
            phoenix.proc.send_signal(signal.SIGCONT)
        assert results == list(range(200))
        assert otel_monitor.force_flush(30)
        assert PIPELINE.otlp.force_flush(60_000)  # the backend is back: all of it goes
        assert PIPELINE.otlp.health() == {"otlp_exported": 200, "otlp_failed": 0}
        assert_same_calls(_tagged_calls(db, tag), _tagged_spans(phoenix, tag, 200))
    finally:
        otel_monitor.shutdown()


def test_a_store_that_cannot_be_written_does_not_hold_otlp_back(phoenix, tmp_path):
    db = tmp_path / "locked.db"
    otel_monitor.configure(db_path=db, otlp_endpoint=phoenix.url, flush_interval_s=0.05)
    tag = uuid.uuid4().hex
    try:
        tagged("warm-up", 0)
        assert otel_monitor.force_flush(10)
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the store's write lock
        try:
            for i in range(20):
                tagged(tag, i)
            assert PIPELINE.otlp.force_flush(60_000)
            in_phoenix = _tagged_spans(phoenix, tag, 20)
            assert len(in_phoenix) == 20
            assert _tagged_calls(db, tag) == {}  # none written to SQLite yet
            assert not otel_monitor.force_flush(0.5)  # the writer is waiting on the lock
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert otel_monitor.force_flush(30)  # lock gone: the same calls land, none lost
        assert_same_calls(_tagged_calls(db, tag), in_phoenix)
    finally:
        otel_monitor.shutdown()
