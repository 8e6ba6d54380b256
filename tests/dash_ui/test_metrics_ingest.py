"""Spans another host sends over OTLP/HTTP (the official exporter, gzip, as a Collector's
otlphttp exporter does) into /v1/traces are counted by /metrics per process and service:
what the scale-out stack's Prometheus sees of every host."""
from __future__ import annotations

import httpx
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from api_server import ServedApp
from exporters.store import SpanStore
from test_metrics import samples, value

TOKEN = "ingest-metrics-s3cret"


def send(url: str, service: str, ok: int, failed: int) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"{url}/v1/traces", headers={"Authorization": f"Bearer {TOKEN}"},
        compression=Compression.Gzip, timeout=10)))
    tracer = provider.get_tracer("remote-host")
    for _ in range(ok):
        with tracer.start_as_current_span("checkout"):
            pass
    for _ in range(failed):
        with tracer.start_as_current_span("checkout") as span:
            span.set_status(Status(StatusCode.ERROR, "card declined"))
    provider.shutdown()


def test_spans_ingested_from_other_hosts_are_counted_per_service(tmp_path):
    from dash_ui.server import create_server_app

    path = tmp_path / "central.db"
    SpanStore(path).close()
    with ServedApp(create_server_app(path, token=TOKEN)) as served:
        send(served.url, "host-a", ok=4, failed=1)
        send(served.url, "host-b", ok=2, failed=0)
        r = httpx.get(f"{served.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"},
                      timeout=10)
    assert r.status_code == 200
    found = samples(r.text)
    # Each ingested span is a call of the process the ingest named it after, with its
    # service: the counters match the store row for row, and each host's totals.
    stored = SpanStore(path, readonly=True).query(
        "SELECT process, service_name, count(*), sum(status = 'ERR') FROM process_trace "
        "GROUP BY 1, 2")
    assert {row[1] for row in stored} == {"host-a", "host-b"}
    for process, service, calls, errors in stored:
        assert value(found, "otel_monitor_calls_total", process=process, service=service) \
            == calls
        assert value(found, "otel_monitor_call_errors_total", process=process,
                     service=service) == errors
    totals = {service: (calls, errors) for _, service, calls, errors in stored}
    assert totals == {"host-a": (5, 1), "host-b": (2, 0)}
