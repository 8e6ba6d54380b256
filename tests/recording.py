"""Recording a store through the real decorator in the test process, with the caller's
otel-monitor and OTLP settings kept out of it."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import otel_monitor

SETTINGS_PREFIXES = ("OTEL_MONITOR_", "OTEL_EXPORTER_OTLP")


@contextlib.contextmanager
def settings_env_cleared() -> Iterator[None]:
    """Without the caller's OTEL_MONITOR_* / OTEL_EXPORTER_OTLP* variables (a UI token
    or an OTLP endpoint would change what is recorded or served); restored after."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [k for k in os.environ if k.startswith(SETTINGS_PREFIXES)]:
            mp.delenv(name)
        yield


@contextlib.contextmanager
def recording_into(path: Path) -> Iterator[None]:
    """``otel_monitor`` writing to ``path``; every call flushed, then shut down."""
    otel_monitor.configure(db_path=path, flush_interval_s=0.05)
    try:
        yield
        assert otel_monitor.force_flush(10)
    finally:
        otel_monitor.shutdown()
