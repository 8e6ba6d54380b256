"""Dual-write while the OTLP endpoint is down: SQLite gets every call, the calls never
raise, and the failed exports are counted in the store's health rows.

(The dual-write to a real backend, Phoenix, and a store that cannot be written while
OTLP goes on, are in ``test_otlp_phoenix.py``.)"""
from __future__ import annotations

import socket
import time

import pytest

import otel_monitor
from exporters.queries import TraceQueries
from monitor_helpers import Store
from otel_monitor import ConfigError, monitor
from otel_monitor.pipeline import PIPELINE


@monitor("dual", otel_span=True)
def quote(symbol: str, qty: int) -> int:
    return qty * 2


def _closed_port() -> int:
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health_until(store: Store, ready, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = store.health()
        if rows and ready(rows[-1]):
            return rows[-1]
        assert time.monotonic() < deadline, f"health never got there: {rows}"
        time.sleep(0.1)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_collector_down_sqlite_keeps_every_call_and_health_counts_failures(
        tmp_path, monkeypatch, protocol):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")  # seconds: give up fast
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
    db = tmp_path / "down.db"
    otel_monitor.configure(db_path=db, flush_interval_s=0.05, otlp_protocol=protocol,
                           otlp_endpoint=f"http://127.0.0.1:{_closed_port()}")
    try:
        assert PIPELINE.otlp is not None
        results = [quote("EURUSD", i) for i in range(50)]  # none raises
        assert results == [i * 2 for i in range(50)]
        store = Store(db)
        rows = store.calls(quote)
        assert [store.values(c)["qty"] for c in rows] == [str(i) for i in range(50)]
        health = _health_until(store, lambda h: (h["otlp_failed"] or 0) >= 50)
        assert health["otlp_exported"] == 0
        assert health["written"] >= 50 and health["dropped"] == 0
        api_rows = TraceQueries(db).health()["processes"]  # what /api/health returns
        assert [(r["otlp_exported"], r["otlp_failed"] >= 50) for r in api_rows] == [(0, True)]
    finally:
        otel_monitor.shutdown()


def test_without_an_endpoint_health_has_no_otlp_figures(store_path):
    quote("X", 1)
    health = Store(store_path).health()
    assert health and health[-1]["otlp_exported"] is None and health[-1]["otlp_failed"] is None


def test_an_unsupported_protocol_from_the_environment_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ConfigError, match="'http/json' is not supported"):
        otel_monitor.configure(db_path=tmp_path / "x.db")


def test_spans_past_the_full_otlp_queue_are_counted_as_failed(tmp_path, monkeypatch):
    """The SDK's batch queue drops spans once full and only logs it: with the Collector
    down, every call past the queue is lost to OTLP and must show in otlp_failed too."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "20")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "20")
    db = tmp_path / "full.db"
    otel_monitor.configure(db_path=db, flush_interval_s=0.05,
                           otlp_endpoint=f"http://127.0.0.1:{_closed_port()}")
    try:
        for i in range(300):  # far more than the queue holds during one failed export
            quote("EURUSD", i)
        store = Store(db)
        assert len(store.calls(quote)) == 300  # SQLite has every call
        health = _health_until(store, lambda h: (h["otlp_exported"] or 0) +
                               (h["otlp_failed"] or 0) == 300, timeout_s=20)
        assert health["otlp_exported"] == 0 and health["otlp_failed"] == 300
    finally:
        otel_monitor.shutdown()
