"""SQLiteSpanExporter: flattens spans into the seven-column store.

A standard OTel ``SpanExporter``: behind any span processor (the SDK's own
``BatchSpanProcessor`` included) it turns each ``ReadableSpan`` into one call row
and one row per ``monitor.input.*`` / ``monitor.output.return`` attribute; a span
from other instrumentation (no monitor attributes) becomes a call row with no data
rows. Exporting writes and does nothing else: retention is started by whoever owns
the store (``retention.RetentionWorker``).

``RecordWriter`` is the same writer for the decorator's pipeline: it also takes the
compact call records (``records.py``), which reach the same rows through the same
flattening (``flatten.py``) without the cost of building span objects.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable, Mapping, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .errors import RowRejected, StoreError
from .flatten import rows_of
from .records import CallSite
from .store import DATA_COLUMNS, SPAN_COLUMNS, SpanStore

_log = logging.getLogger("otel_monitor")

# Connections inherited over fork belong to the parent: never used, never closed
# (closing could touch the parent's WAL state), just kept from the garbage collector.
_INHERITED: list[Any] = []


class SQLiteSpanExporter(SpanExporter):
    """Writes spans to an otel-monitor store at ``db_path`` (created if missing)."""

    def __init__(self, db_path: str | os.PathLike[str], *, service_name: str | None = None,
                 busy_timeout_s: float = 30.0,
                 sites: Mapping[str, CallSite] | None = None) -> None:
        self.db_path = os.fspath(db_path)
        self.busy_timeout_s = busy_timeout_s  # how long a write waits for another writer
        self.service_name = service_name
        # The decorator's call sites by process name, for the catalog (source, file,
        # line) of its spans; other spans are cataloged without.
        self.sites: Mapping[str, CallSite] = {} if sites is None else sites
        # Callables returning extra health figures (keyword arguments of
        # SpanStore.write_health), read each time health is written.
        self.health_sources: list[Callable[[], dict[str, Any]]] = []
        self._lock = threading.Lock()
        # Opened now, to fail early on a bad file.
        self._store: SpanStore | None = SpanStore(self.db_path, busy_timeout_s=busy_timeout_s)
        self._cataloged: set[str] = set()
        self._pid = os.getpid()
        self._closed = False
        self.rejected = 0  # calls set aside: already stored, or unstorable
        # Why the last export failed (None after a success): a writer splits a batch
        # the store refused, except for a lock (StoreBusy), which a smaller batch
        # would not get past.
        self.last_error: StoreError | None = None

    # -- SpanExporter -------------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._write(spans)

    def _write(self, items: Sequence[Any]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        with self._lock:
            store = self._open()
            calls, data, catalog = self._flatten(items, store)
            if catalog:
                try:
                    store.upsert_catalog(catalog)
                    self._cataloged.update(e.name for e in catalog)
                except StoreError:
                    _log.warning("otel-monitor: catalog not written", exc_info=True)
            try:
                store.insert_calls(calls, data)
            except (RowRejected, ValueError, TypeError, OverflowError):
                # A span id already stored (a resent span), or a value SQLite cannot
                # take: write the batch call by call, setting those calls aside.
                self._insert_one_by_one(store, calls, data)
            except StoreError as exc:
                # Logged once per run of failures, not once per (split) attempt.
                log = _log.debug if self.last_error is not None else _log.warning
                log("otel-monitor: %d calls not written yet to %s: %s",
                    len(items), self.db_path, exc)
                self.last_error = exc
                return SpanExportResult.FAILURE
        if self.last_error is not None:
            _log.warning("otel-monitor: writing to %s again", self.db_path)
            self.last_error = None
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # every export is committed before it returns

    def shutdown(self) -> None:
        self._closed = True
        with self._lock:
            if self._store is not None and self._pid == os.getpid():
                self._store.close()
            self._store = None

    # -- health and fork --------------------------------------------------------

    def record_health(self, **figures: Any) -> None:
        for source in self.health_sources:  # e.g. the OTLP dual-write's export counts
            figures.update(source())
        with self._lock:
            self._open().write_health(service_name=self.service_name, **figures)

    def after_fork_in_child(self) -> None:
        if self._store is not None:
            _INHERITED.append(self._store)
        self._store = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    # -- internals ------------------------------------------------------------------

    def _open(self) -> SpanStore:
        if self._pid != os.getpid():
            self.after_fork_in_child()
        if self._store is None:
            self._store = SpanStore(self.db_path, busy_timeout_s=self.busy_timeout_s)
        return self._store

    def _flatten(self, items: Sequence[Any], store: SpanStore) -> tuple[list, list, list]:
        """Flat rows for ``SpanStore.insert_calls``, plus catalog entries not yet written."""
        return rows_of(store, items, self.sites, service_name=self.service_name,
                       cataloged=self._cataloged)

    def _insert_one_by_one(self, store: SpanStore, calls: list, data: list) -> None:
        """Write a batch call by call; a call already stored or that cannot be stored
        is skipped (and counted in ``rejected``) instead of blocking the others."""
        width, dwidth = len(SPAN_COLUMNS), len(DATA_COLUMNS)
        data_of: dict[int, list] = {}
        for o in range(0, len(data), dwidth):
            data_of.setdefault(data[o], []).extend([0, *data[o + 1:o + dwidth]])
        for o in range(0, len(calls), width):
            call = [0, *calls[o + 1:o + width]]
            try:
                store.insert_calls(call, data_of.get(calls[o], []))
            except (RowRejected, ValueError, TypeError, OverflowError):
                self.rejected += 1


class RecordWriter(SQLiteSpanExporter):
    """The decorator pipeline's writer: exports ReadableSpans and call records alike
    (``records.py``), ``sites`` naming the records' processes."""

    def export(self, batch: Sequence[Any]) -> SpanExportResult:
        return self._write(batch)
