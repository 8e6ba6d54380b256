"""Fixtures for the storage half: real SQLite files, real OTel SDK objects, real processes.
Nothing of ``exporters`` or ``otel_monitor`` is mocked."""
from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from exporters import SQLiteSpanExporter


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "store.db")


@pytest.fixture
def otel_pipeline(db_path: str):
    """Factory: a private TracerProvider (never the global one) whose spans go through a
    plain SDK BatchSpanProcessor into a SQLiteSpanExporter on ``db_path``. The exporter
    purges nothing (no retention runs here): spans dated years ago stay put."""
    providers: list[TracerProvider] = []

    def make(service_name: str = "checkout", id_generator=None, **exporter_kwargs):
        exporter = SQLiteSpanExporter(db_path, **exporter_kwargs)
        kwargs = {"resource": Resource.create({"service.name": service_name})}
        if id_generator is not None:
            kwargs["id_generator"] = id_generator
        provider = TracerProvider(**kwargs)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=50))
        providers.append(provider)
        return provider, provider.get_tracer("tests.exporters"), exporter

    yield make
    for provider in providers:
        provider.shutdown()
