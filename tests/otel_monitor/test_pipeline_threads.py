"""Background threads start only when needed: with no webhook configured, recording
runs the writer and retention only; a feed (something to watch and write for the UI)
starts the alert engine and its state writer, still with no webhook sender."""
from __future__ import annotations

import threading

import pytest

import otel_monitor
from otel_monitor import feed, monitor
from otel_monitor.pipeline import PIPELINE

from alert_helpers import wait_rows

ALERT_THREADS = ("otel-monitor-alerts", "otel-monitor-state", "otel-monitor-webhook")


@pytest.fixture(autouse=True)
def _no_sites_of_earlier_tests():
    """Functions decorated by earlier tests (some declaring the feeds they read, which
    is reason enough to watch) stay registered for the process: set them aside."""
    saved = dict(PIPELINE.sites)
    PIPELINE.sites.clear()
    yield
    PIPELINE.sites.update(saved)


def _names() -> set[str]:
    return {t.name for t in threading.enumerate()}


def _alert_threads() -> set[str]:
    return {n for n in _names() if n.startswith(ALERT_THREADS)}


def test_without_a_webhook_no_alert_state_or_sender_thread_runs(tmp_path):
    assert _alert_threads() == set()  # none left over either
    otel_monitor.configure(db_path=tmp_path / "t.db", flush_interval_s=0.05)
    try:
        @monitor("pricing")
        def price(spot: float) -> float:
            return spot * 2

        @monitor("pricing")
        def fail(spot: float) -> float:
            raise ValueError(spot)

        price(1.0)
        try:
            fail(2.0)
        except ValueError:
            pass
        assert otel_monitor.force_flush(10)
        assert "otel-monitor-writer" in _names()
        assert _alert_threads() == set()
    finally:
        otel_monitor.shutdown()


def test_a_feed_starts_the_engine_and_state_writer_but_no_sender(tmp_path):
    otel_monitor.configure(db_path=tmp_path / "t.db", flush_interval_s=0.05)
    try:
        assert _alert_threads() == set()

        @feed("bbg.fx", interval_s=1.0)
        def on_fx(x):
            return x

        on_fx(1)
        wait_rows(tmp_path / "t.db", "SELECT name FROM feed_status", lambda r: len(r) == 1,
                  timeout=3)
        assert _alert_threads() == {"otel-monitor-alerts", "otel-monitor-state"}
    finally:
        otel_monitor.shutdown()
    assert _alert_threads() == set()
