"""A service that knows nothing of otel-monitor, sending with the official OTLP/HTTP
exporter (protobuf); run as its own process.

    python otlp_foreign_sender.py URL TOKEN

Its resource names the service, host and pid (``process.pid`` 31337: not the sender's
own, so the test can tell it from the server's). It sends a server span with attributes
of every OTel type (one value longer than the store's bound) and two events besides an
``exception`` one, and an OK child span with no attribute at all. Prints the span ids
it sent, as hex, by role."""
from __future__ import annotations

import json
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

ATTRIBUTES = {"http.request.method": "GET", "http.response.status_code": 200,
              "server.duration.ratio": 0.25, "feature.enabled": True,
              "db.rows": [1, 2, 3], "user.tags": ("a", "b"), "payload": "x" * 5000}


def main(url: str, token: str) -> None:
    provider = TracerProvider(resource=Resource.create({
        "service.name": "foreign-svc", "host.name": "box-42", "process.pid": 31337}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"{url}/v1/traces", headers={"authorization": f"Bearer {token}"})))
    tracer = provider.get_tracer("foreign")
    with tracer.start_as_current_span("GET /items", kind=SpanKind.SERVER,
                                      attributes=ATTRIBUTES) as server:
        server.add_event("cache.miss", {"cache.key": "items:1", "attempt": 2})
        server.add_event("retry")
        server.record_exception(ValueError("soft failure, handled"))
        with tracer.start_as_current_span("bare.child") as child:
            pass
        server.set_status(Status(StatusCode.OK))
    provider.shutdown()
    print(json.dumps({"server": format(server.get_span_context().span_id, "016x"),
                      "child": format(child.get_span_context().span_id, "016x")}),
          flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
