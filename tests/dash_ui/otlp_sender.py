"""Another application sending to ``otel-monitor serve`` with the official OTLP/HTTP
exporter (protobuf), as any OTel SDK would; run as its own process.

    python otlp_sender.py URL TOKEN

Two services (two tracer providers, each with its resource): ``checkout-svc`` sends a
span carrying otel-monitor's attributes with a plain child span (``GET /cart``) and a
failing span with an exception event; ``billing-svc`` sends one monitored span, gzip
compressed. Prints the span ids it sent, as hex, by role."""
from __future__ import annotations

import json
import sys

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode


def provider(service: str, url: str, token: str, compression: Compression) -> TracerProvider:
    p = TracerProvider(resource=Resource.create({"service.name": service, "host.name": "h1"}))
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", compression=compression,
                                headers={"authorization": f"Bearer {token}"})
    p.add_span_processor(SimpleSpanProcessor(exporter))
    return p


def main(url: str, token: str) -> None:
    ids: dict[str, str] = {}
    checkout = provider("checkout-svc", url, token, Compression.NoCompression)
    tracer = checkout.get_tracer("shop")
    with tracer.start_as_current_span("shop.cart.add", attributes={
            "code.function.name": "shop.cart.add", "monitor.process_group": "cart",
            "monitor.input.item": "'apple'", "monitor.input.qty": 3,
            "monitor.output.return": "True"}) as add:
        with tracer.start_as_current_span("GET /cart") as child:
            child.set_attribute("http.request.method", "GET")
        ids["add"] = format(add.get_span_context().span_id, "016x")
        ids["get"] = format(child.get_span_context().span_id, "016x")
    with tracer.start_as_current_span("shop.cart.pay", attributes={
            "code.function.name": "shop.cart.pay", "monitor.input.amount": 9.5},
            record_exception=False, set_status_on_exception=False) as pay:
        pay.record_exception(RuntimeError("card declined"))
        pay.set_status(Status(StatusCode.ERROR, "RuntimeError: card declined"))
        ids["pay"] = format(pay.get_span_context().span_id, "016x")
    checkout.shutdown()

    billing = provider("billing-svc", url, token, Compression.Gzip)
    with billing.get_tracer("billing").start_as_current_span("billing.charge", attributes={
            "code.function.name": "billing.charge", "monitor.process_group": "billing",
            "monitor.input.amount": 42, "monitor.output.return": "'ok'"}) as charge:
        ids["charge"] = format(charge.get_span_context().span_id, "016x")
    billing.shutdown()
    print(json.dumps(ids), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
