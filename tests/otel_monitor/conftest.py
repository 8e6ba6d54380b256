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
