"""Dual-write: the official OTLP exporter behind a BatchSpanProcessor, when configured.

Spans of ``otel_span=True`` calls reach this processor through the runtime's one
span processor (``_Switch``) beside the SQLite pipeline; the two never wait on each
other: a Collector that is down costs the application a queue append per span (the
BatchSpanProcessor's bounded queue, drained on its own thread), and a store that
cannot be written does not hold spans back from OTLP.

What the exporter sent and failed to send is counted by ``CountingSpanExporter``
and written into every health row (``otlp_exported`` / ``otlp_failed``); spans that
found the queue full count as failed (``DualWriteProcessor``).
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any, Sequence

from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from exporters.errors import ConfigError

from .settings import Settings

_log = logging.getLogger("otel_monitor")

PROTOCOLS = ("http/protobuf", "grpc")


class CountingSpanExporter(SpanExporter):
    """Passes batches to the official exporter and counts spans exported and failed
    (an exporter that raises counts as failed: the export thread must go on)."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.exported = 0
        self.failed = 0
        self._lock = threading.Lock()  # export runs on the processor's thread, health on ours

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception:
            _log.warning("otel-monitor: OTLP export raised", exc_info=True)
            result = SpanExportResult.FAILURE
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                self.exported += len(spans)
            else:
                self.failed += len(spans)
        return result

    def health(self) -> dict[str, int]:
        """Figures for ``SQLiteSpanExporter.health_sources``."""
        with self._lock:
            return {"otlp_exported": self.exported, "otlp_failed": self.failed}

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class DualWriteProcessor(BatchSpanProcessor):
    """The SDK's BatchSpanProcessor over a ``CountingSpanExporter``; ``health`` reads
    its counts, the spans it had no room for among the failed.

    The SDK's queue drops a span once full and only logs it, so its drops would be lost
    to the figures. Here a span is admitted only while fewer than the queue's size are
    in hand (handed over, not yet exported nor failed): the SDK's queue, which holds no
    more than that, never drops, and a span refused here is counted as failed.
    """

    def __init__(self, exporter: CountingSpanExporter) -> None:
        # The SDK's own reading of OTEL_BSP_MAX_QUEUE_SIZE (default 2048).
        self.queue_size = BatchSpanProcessor._default_max_queue_size()
        super().__init__(exporter, max_queue_size=self.queue_size)
        self._counts = exporter
        self._admitted = 0
        self._refused = 0
        self._lock = threading.Lock()

    def on_end(self, span: Any) -> None:
        if not (span.context and span.context.trace_flags.sampled):
            return  # the SDK's processor ignores these too
        with self._lock:
            done = self._counts.exported + self._counts.failed
            if self._admitted - done >= self.queue_size:
                self._refused += 1
                return
            self._admitted += 1
        super().on_end(span)

    def health(self) -> dict[str, int]:
        """Figures for ``SQLiteSpanExporter.health_sources``."""
        figures = self._counts.health()
        with self._lock:
            figures["otlp_failed"] += self._refused
        return figures


def otlp_protocol(settings: Settings) -> str:
    protocol = (settings.otlp_protocol
                or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    if protocol not in PROTOCOLS:  # http/json has no official Python exporter
        raise ConfigError(f"OTLP protocol {protocol!r} is not supported; use one of "
                          f"{', '.join(PROTOCOLS)}")
    return protocol


def otlp_processor(settings: Settings) -> DualWriteProcessor | None:
    """The dual-write processor, or None when no OTLP endpoint is configured (the
    ``otlp_endpoint`` setting, else ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_ENDPOINT``, which the official exporter reads itself, with
    the other standard variables: headers, timeout, compression, certificates)."""
    endpoint = settings.otlp_endpoint
    env_endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint and not env_endpoint:
        return None
    if otlp_protocol(settings) == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter,
        )
        exporter = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )
        if endpoint:
            # A base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is: the signal path is added.
            endpoint = endpoint.rstrip("/")
            if not endpoint.endswith("/v1/traces"):
                endpoint += "/v1/traces"
            exporter = OTLPSpanExporter(endpoint=endpoint)
        else:
            exporter = OTLPSpanExporter()
    return DualWriteProcessor(CountingSpanExporter(exporter))
