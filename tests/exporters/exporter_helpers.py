"""Helpers shared by the exporter tests (fixtures live in conftest.py).

Rows are always read back from the SQLite file on a connection of the test's own.
"""
from __future__ import annotations

import collections
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

from exporters import SpanStore
from exporters.store import ProcessEntry

# The brief's DDL, verbatim (projectbrief.md, 3.2).
BRIEF_DDL = """
CREATE TABLE process_trace (
  ts           TEXT  NOT NULL,
  process      TEXT  NOT NULL,      -- dotted function/class
  status       TEXT  NOT NULL,      -- OK | ERR
  duration_ms  REAL  NOT NULL,
  exception    TEXT,                -- full traceback or NULL
  PRIMARY KEY (ts, process)
);

CREATE TABLE data_trace (
  ts          TEXT  NOT NULL,
  process     TEXT  NOT NULL,
  data        TEXT  NOT NULL,       -- variable name
  data_type   TEXT  NOT NULL,       -- INPUT | OUTPUT
  data_value  TEXT  NOT NULL,       -- repr() or <HASHED>
  status      TEXT  NOT NULL,       -- copy from parent row
  exception   TEXT,                 -- copy from parent row
  PRIMARY KEY (ts, process, data, data_type)
);
-- 6‑hour retention
CREATE INDEX idx_data_ts ON data_trace(ts);
"""

HERE = Path(__file__).resolve().parent
WORKLOAD = HERE / "workload.py"
HOUR_NS = 3600 * 10**9


def read(db: str, sql: str, params: Iterable = ()) -> list[sqlite3.Row]:
    """Rows of a query, on a fresh connection of the test's own."""
    conn = sqlite3.connect(db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, tuple(params)).fetchall()
    finally:
        conn.close()


def scalar(db: str, sql: str, params: Iterable = ()):
    return read(db, sql, params)[0][0]


def stored_keys(db: str, data: str = "key") -> collections.Counter:
    """How many calls stored each value of the INPUT ``data`` (1 each: no loss, no doubles)."""
    return collections.Counter(r[0] for r in read(
        db, "SELECT data_value FROM data_trace WHERE data = ? AND data_type = 'INPUT'", (data,)))


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0,
               interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


_span_ids = [random.getrandbits(40) << 20]


def insert_calls(store: SpanStore, starts_ns: Iterable[int], *, process: str = "app.price",
                 key_prefix: str = "k", args: tuple[tuple[str, str], ...] = ()) -> list[str]:
    """Write calls straight through ``SpanStore.insert_calls``: an INPUT ``key`` row, an
    INPUT row per ``(name, value)`` of ``args``, and an OUTPUT row each, in batches of
    20,000. Returns their keys, in the order given."""
    pid = store.process_ids([ProcessEntry(process, "tests")])[process]
    me = os.getpid()
    keys: list[str] = []
    starts = list(starts_ns)
    for offset in range(0, len(starts), 20_000):
        spans: list = []
        data: list = []
        for i, start in enumerate(starts[offset:offset + 20_000]):
            _span_ids[0] += 1
            sid = _span_ids[0]
            key = f"{key_prefix}{sid}"
            keys.append(key)
            spans += (i, sid, "%032x" % sid, None, start, 0.25, pid, "tests", "svc", "OK", "ok",
                      None, None, me, None)
            data += (i, 0, "key", "INPUT", key)
            for seq, (name, value) in enumerate(args, 1):
                data += (i, seq, name, "INPUT", value)
            data += (i, len(args) + 1, "return", "OUTPUT", "None")
        store.insert_calls(spans, data)
    return keys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(db: str, extra: dict | None) -> dict:
    env = dict(os.environ, OTEL_MONITOR_DB=db, PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


def run_workload(db: str, *args: str, env: dict | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``workload.py`` in a fresh interpreter with OTEL_MONITOR_DB set to ``db``. It runs
    in its own process group: on timeout the whole group (its children too) is killed."""
    proc = start_workload(db, *args, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError(f"workload {args} hung for {timeout} s; stderr:\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def start_workload(db: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKLOAD), *args], env=_env(db, env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group this test started (``start_new_session=True``)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
