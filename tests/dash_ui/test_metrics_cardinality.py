"""/metrics keeps a bounded number of (process, service) series: spans ingested from
other hosts can carry any number of names (an HTTP server's span named after each URL),
and each new name must not become one more series held in memory and scraped for ever."""
from __future__ import annotations

import time

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from dash_ui.ingest_spans import convert, open_writer
from dash_ui.metrics import OTHER, metrics_registry
from exporters.store import SpanStore


def ingest(db, service: str, names: list[str], first_id: int) -> None:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = service
    spans = rs.scope_spans.add().spans
    now = time.time_ns()
    for i, name in enumerate(names):
        spans.add(trace_id=b"\x01" * 16, span_id=(first_id + i).to_bytes(8, "big"),
                  name=name, start_time_unix_nano=now - 1000, end_time_unix_nano=now)
    writer = open_writer(db)
    writer.write(convert(request))
    writer.shutdown()


def calls_by_series(registry) -> dict[tuple[str, str], float]:
    return {(s.labels["process"], s.labels["service"]): s.value
            for family in text_string_to_metric_families(generate_latest(registry).decode())
            for s in family.samples if s.name == "otel_monitor_calls_total"}


def test_calls_past_the_series_limit_are_counted_under_other(tmp_path):
    db = tmp_path / "s.db"
    SpanStore(db).close()
    registry = metrics_registry(db, max_call_series=3)
    ingest(db, "web", ["GET /a", "GET /b", "GET /a"], first_id=1)
    assert calls_by_series(registry) == {("web: GET /a", "web"): 2, ("web: GET /b", "web"): 1}

    ingest(db, "web", [f"GET /user/{i}" for i in range(50)] + ["GET /a"], first_id=100)
    found = calls_by_series(registry)
    assert len(found) == 4  # the limit, and the series of the rest
    assert found[("web: GET /a", "web")] == 3  # a series already kept goes on counting
    assert found[(OTHER, OTHER)] == 49
    assert sum(found.values()) == 54  # no call lost
