"""Shared fixtures: small and generic. Area-specific helpers live beside their tests."""
from __future__ import annotations

import pytest


@pytest.fixture
def store_path(tmp_path):
    """A fresh store: ``otel_monitor`` configured to write to ``tmp_path/t.db``,
    shut down (flushed and stopped) after the test."""
    import otel_monitor

    path = tmp_path / "t.db"
    otel_monitor.configure(db_path=path, flush_interval_s=0.05)
    yield path
    otel_monitor.shutdown()
