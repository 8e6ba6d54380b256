"""The process-wide pipeline: settings, the SQLite exporter, the writer, the tracer.

``configure`` builds it; the first monitored call builds it from the environment
when nobody called ``configure``. The queue the decorator appends to is created
once at import and lives as long as the process, so wrappers can hold it.
"""
from __future__ import annotations

import atexit
import logging
import os
import secrets
import threading
from collections import deque
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from exporters import MonitorSpanProcessor, SQLiteSpanExporter

from ._capture import Masker, ValueFormatter
from ._config import Settings, load_settings

_log = logging.getLogger("otel_monitor")

TRACER_NAME = "otel_monitor"  # reserved: spans of this tracer are the decorator's own

# Appended to by every monitored call (see exporters.records for the layout).
QUEUE: deque = deque()


class Runtime:
    """What monitored calls need at run time; one instance per process."""

    def __init__(self) -> None:
        self.ready = False
        self.settings: Settings | None = None
        self.processor: MonitorSpanProcessor | None = None
        self.exporter: SQLiteSpanExporter | None = None
        self.provider: Any = None
        self.tracer: Any = trace.get_tracer(TRACER_NAME)  # a proxy until configured
        self.max_queue = 100_000
        self.format = ValueFormatter().format
        self.mask: Masker | None = None
        self._lock = threading.RLock()
        self._atexit_registered = False

    def ensure_started(self) -> None:
        if not self.ready:
            with self._lock:
                if not self.ready:
                    self.configure({})

    def configure(self, overrides: dict[str, Any]) -> Settings:
        settings = load_settings(overrides)  # a bad value raises before anything changes
        with self._lock:
            if self.processor is not None:
                self._stop_pipeline()
            self.settings = settings
            self.format = ValueFormatter(settings.max_value_length).format
            self.mask = Masker(_mask_key(settings))
            self.max_queue = settings.queue_size
            self.provider = self._provider()
            resource = getattr(self.provider, "resource", None)
            service = resource.attributes.get("service.name") if resource is not None else None
            self.exporter = SQLiteSpanExporter(
                settings.db_path, service_name=service, retention_hours=settings.retention_hours,
                purge_interval_s=settings.purge_interval_s,
                max_db_bytes=int(settings.max_db_mb * 2**20) if settings.max_db_mb else None)
            self.processor = MonitorSpanProcessor(
                self.exporter, queue=QUEUE, max_queue=settings.queue_size,
                flush_interval_s=settings.flush_interval_s)
            self.processor.start()
            if hasattr(self.provider, "add_span_processor"):
                self.provider.add_span_processor(_Switch(self))
                self._add_otlp(settings)
            self.tracer = self.provider.get_tracer(TRACER_NAME)
            if not self._atexit_registered:
                atexit.register(self.shutdown)
                self._atexit_registered = True
            self.ready = True
            return settings

    def _provider(self) -> Any:
        """The application's SDK provider if it has one (we add to it), else ours."""
        if self.provider is not None:
            return self.provider
        current = trace.get_tracer_provider()
        if hasattr(current, "add_span_processor"):
            return current
        provider = TracerProvider(resource=Resource.create())
        trace.set_tracer_provider(provider)
        return trace.get_tracer_provider()

    def _add_otlp(self, settings: Settings) -> None:
        from ._otlp import otlp_processor  # imports the OTLP exporter only when used

        processor = otlp_processor(settings)
        if processor is not None:
            self.provider.add_span_processor(processor)

    def record_dropped(self) -> None:
        if self.processor is not None:
            self.processor.dropped += 1

    def force_flush(self, timeout_s: float = 30.0) -> bool:
        processor = self.processor
        return processor.force_flush(int(timeout_s * 1000)) if processor is not None else True

    def shutdown(self) -> None:
        with self._lock:
            if self.processor is not None:
                self._stop_pipeline()
            self.ready = False

    def _stop_pipeline(self) -> None:
        try:
            self.processor.shutdown()
        except Exception:
            _log.warning("otel-monitor: shutdown failed", exc_info=True)
        self.processor = None
        self.exporter = None


class _Switch:
    """The span processor registered on the tracer provider. A provider cannot drop
    a processor, so reconfiguring swaps what this one forwards to."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: Any) -> None:
        # The decorator's own spans reach SQLite as records already (see SpanRecorder).
        processor = self._runtime.processor
        if processor is None:
            return
        scope = span.instrumentation_scope
        if scope is None or scope.name != TRACER_NAME:
            processor.on_end(span)

    def _on_ending(self, span: Any) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._runtime.force_flush(timeout_millis / 1000)


def _mask_key(settings: Settings) -> bytes:
    """The store's masking secret: from the environment, else a key file beside the
    store (created once, readable by its owner only)."""
    if settings.mask_key:
        return settings.mask_key.encode()
    path = settings.db_path + ".key"
    try:
        with open(path, "rb") as fh:
            key = fh.read().strip()
        if len(key) >= 16:
            return key
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    key = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its key
        with open(path, "rb") as fh:
            return fh.read().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


RUNTIME = Runtime()

if hasattr(os, "register_at_fork"):
    # A lock held by another thread at fork time would stay held in the child forever.
    os.register_at_fork(after_in_child=lambda: setattr(RUNTIME, "_lock", threading.RLock()))
