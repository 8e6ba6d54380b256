"""Dual-write: the official OTLP exporter behind a BatchSpanProcessor, when configured."""
from __future__ import annotations

import os
from typing import Any

from ._config import Settings


def otlp_processor(settings: Settings) -> Any | None:
    endpoint = settings.otlp_endpoint
    env_endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint and not env_endpoint:
        return None
    protocol = (settings.otlp_protocol
                or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        if endpoint:
            endpoint = endpoint.rstrip("/")
            if not endpoint.endswith("/v1/traces"):
                endpoint += "/v1/traces"
            exporter = OTLPSpanExporter(endpoint=endpoint)
        else:
            exporter = OTLPSpanExporter()
    return BatchSpanProcessor(exporter)
