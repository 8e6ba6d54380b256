"""Fixtures for the decorator's tests (helpers in ``monitor_helpers``)."""
from __future__ import annotations

import os

import pytest

from monitor_helpers import Store


@pytest.fixture(autouse=True)
def _hermetic_environment(monkeypatch, tmp_path):
    """No OTEL_MONITOR_* / OTLP settings leak in from the shell; a call that configures
    from the environment writes under tmp_path, never into the repository."""
    for var in list(os.environ):
        if var.startswith(("OTEL_MONITOR_", "OTEL_EXPORTER_OTLP")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("OTEL_MONITOR_DB", str(tmp_path / "from-env" / "env.db"))


@pytest.fixture
def store(store_path) -> Store:
    """A fresh configured store (see ``store_path``) and a reader for it."""
    return Store(store_path)


# -- feeds and alerts ---------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_feeds():
    """Feeds are process-wide: each test starts with none and leaves none behind (a feed
    a test stopped ticking would go stale, and alert, in the next test)."""
    from otel_monitor.pipeline import PIPELINE

    registry = PIPELINE.feeds
    saved, edges = dict(registry.feeds), set(registry.called_edges)
    registry.feeds.clear()
    registry.called_edges.clear()
    yield
    registry.feeds.clear()
    registry.feeds.update(saved)
    registry.called_edges.clear()
    registry.called_edges.update(edges)


@pytest.fixture
def receiver():
    """A real webhook receiver listening on 127.0.0.1 (see ``webhook_receiver``)."""
    from webhook_receiver import start_receiver

    r = start_receiver()
    yield r
    r.close()




@pytest.fixture
def alerting(tmp_path, receiver):
    """Factory: configure otel_monitor on a fresh store with the receiver as its Slack and
    PagerDuty webhooks (short timeouts and backoff), plus ``settings``; returns a
    ``Store`` reader. Shut down after the test."""
    import otel_monitor
    from alert_helpers import PD, ROUTING_KEY, SLACK

    def configure(**settings) -> Store:
        settings.setdefault("alert_webhooks", [
            receiver.url(SLACK), f"pagerduty+{receiver.url(PD)}#routing_key={ROUTING_KEY}"])
        settings.setdefault("alert_timeout_s", 2.0)
        settings.setdefault("alert_backoff_s", 0.05)
        settings.setdefault("ui_url", "http://ui.test:8050")
        settings.setdefault("flush_interval_s", 0.05)
        otel_monitor.configure(db_path=tmp_path / "alerts.db", **settings)
        return Store(tmp_path / "alerts.db")

    yield configure
    otel_monitor.shutdown()
