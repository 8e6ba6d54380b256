"""SQLiteSpanExporter: flattens spans into the seven-column store.

A standard OTel ``SpanExporter``: behind any span processor it turns each
``ReadableSpan`` into one call row and one row per ``monitor.input.*`` /
``monitor.output.return`` attribute; a span from other instrumentation (no
monitor attributes) becomes a call row with no data rows. The decorator's
local-only calls arrive as compact records (``records.py``) and take the same
road without the cost of building span objects.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

from . import columns as C
from .errors import RowRejected, StoreError
from .records import SITES, error_texts, scalar_text, storable
from .retention import RetentionWorker
from .store import DATA_COLUMNS, SPAN_COLUMNS, ProcessEntry, SpanStore

_log = logging.getLogger("otel_monitor")

_SIGN = 1 << 64
_MAX_SIGNED = (1 << 63) - 1
_INPUT_PREFIX_LEN = len(C.ATTR_INPUT_PREFIX)

# Connections inherited over fork belong to the parent: never used, never closed
# (closing could touch the parent's WAL state), just kept from the garbage collector.
_INHERITED: list[Any] = []


def _signed(span_id: int) -> int:
    return span_id - _SIGN if span_id > _MAX_SIGNED else span_id


class SQLiteSpanExporter(SpanExporter):
    """Writes spans to an otel-monitor store at ``db_path`` (created if missing)."""

    def __init__(self, db_path: str | os.PathLike[str], *, service_name: str | None = None,
                 retention_hours: float = 6.0, purge_interval_s: float = 60.0,
                 max_db_bytes: int | None = None, busy_timeout_s: float = 30.0) -> None:
        self.db_path = os.fspath(db_path)
        self.busy_timeout_s = busy_timeout_s  # how long a write waits for another writer
        self.service_name = service_name
        self.retention_hours = retention_hours
        self.purge_interval_s = purge_interval_s
        self.max_db_bytes = max_db_bytes
        # Callables returning extra health figures (keyword arguments of
        # SpanStore.write_health), read each time health is written.
        self.health_sources: list[Callable[[], dict[str, Any]]] = []
        self._lock = threading.Lock()
        # Opened now, to fail early on a bad file.
        self._store: SpanStore | None = SpanStore(self.db_path, busy_timeout_s=busy_timeout_s)
        self._cataloged: set[str] = set()
        self._pid = os.getpid()
        self._retention: RetentionWorker | None = None
        self._closed = False
        self.rejected = 0  # calls set aside: already stored, or unstorable

    # -- SpanExporter -------------------------------------------------------------

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        with self._lock:
            store = self._open()
            self._start_retention()
            calls, data, catalog = self._flatten(spans, store)
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
                _log.warning("otel-monitor: %d calls not written yet to %s: %s",
                             len(spans), self.db_path, exc)
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # every export is committed before it returns

    def shutdown(self) -> None:
        self._closed = True
        if self._retention is not None:
            self._retention.stop()
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
        self._retention = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    # -- internals ------------------------------------------------------------------

    def _open(self) -> SpanStore:
        if self._pid != os.getpid():
            self.after_fork_in_child()
        if self._store is None:
            self._store = SpanStore(self.db_path, busy_timeout_s=self.busy_timeout_s)
        return self._store

    def _start_retention(self) -> None:
        if self._retention is None:
            self._retention = RetentionWorker(
                self.db_path, retention_hours=self.retention_hours,
                interval_s=self.purge_interval_s, max_bytes=self.max_db_bytes)
            self._retention.start()

    def _flatten(self, items: Sequence[Any], store: SpanStore) -> tuple[list, list, list]:
        """Flat rows for ``SpanStore.insert_calls``, plus catalog entries not yet written.

        This loop runs once per call written, on the writer thread, competing with
        the application for the GIL: it allocates as little as it can per row.
        """
        calls: list = []
        data: list = []
        entries = self._process_entries(items)
        process_ids = store.process_ids(entries)
        groups = {e.name: e.process_group for e in entries}
        pid = os.getpid()
        service = self.service_name
        trace_hex: dict[int, str] = {}
        ok, err, error_outcome = C.OK, C.ERR, C.OUTCOME_ERROR
        input_, output_, return_ = C.INPUT, C.OUTPUT, C.RETURN
        for i, item in enumerate(items):
            if type(item) is tuple:
                name, tid, sid, psid, start, end, outcome, error, inputs, output = item
                group, svc = groups[name], service
                err_type = err_text = None
                if error is not None:
                    err_type, err_text, _ = error_texts(error)
                pairs = zip(*inputs) if inputs else ()
            else:
                (name, group, tid, sid, psid, start, end, outcome, err_type, err_text,
                 pairs, output, svc) = self._from_span(item)
                svc = svc or service
            th = trace_hex.get(tid)
            if th is None:
                th = trace_hex[tid] = "%032x" % tid
            calls += (i, sid - _SIGN if sid > _MAX_SIGNED else sid, th,
                      (psid - _SIGN if psid > _MAX_SIGNED else psid) if psid else None,
                      start, (end - start) / 1e6, process_ids[name], group, svc,
                      err if outcome == error_outcome else ok, outcome, err_type, err_text, pid)
            seq = 0
            for seq, (data_name, value) in enumerate(pairs, 1):
                if type(value) is not str:
                    value = scalar_text(value)
                data += (i, seq - 1, data_name, input_, value)
            if output is not None:
                if type(output) is not str:
                    output = scalar_text(output)
                data += (i, seq, return_, output_, output)
        return calls, data, self._new_catalog_entries(process_ids)

    def _process_entries(self, items: Sequence[Any]) -> list[ProcessEntry]:
        seen: dict[str, ProcessEntry] = {}
        for item in items:
            if type(item) is tuple:
                name = item[0]
                if name not in seen:
                    site = SITES.get(name)
                    seen[name] = ProcessEntry(name, site.process_group if site else None)
            elif item.name not in seen:
                group = (item.attributes or {}).get(C.ATTR_PROCESS_GROUP)
                seen[item.name] = ProcessEntry(item.name, group)
        return list(seen.values())

    def _new_catalog_entries(self, known: dict[str, int]) -> list[ProcessEntry]:
        """Catalog rows (source, file, line) for monitored functions seen for the first time."""
        entries = []
        for name in known.keys() - self._cataloged:
            site = SITES.get(name)
            if site is None:
                self._cataloged.add(name)  # a span of other instrumentation: no source
                continue
            entries.append(ProcessEntry(name, site.process_group, site.file, site.line,
                                        site.source(), ",".join(site.feeds) or None))
        return entries

    @staticmethod
    def _from_span(span: ReadableSpan) -> tuple:
        attrs = span.attributes or {}
        ctx = span.context
        local_parent = attrs.get(C.ATTR_LOCAL_PARENT)
        if local_parent:
            psid = int(str(local_parent), 16)
        else:
            psid = span.parent.span_id if span.parent is not None else None
        failed = span.status.status_code is StatusCode.ERROR
        outcome = attrs.get(C.ATTR_OUTCOME) or (C.OUTCOME_ERROR if failed else C.OUTCOME_OK)
        err_type = err_text = None
        if failed or outcome != C.OUTCOME_OK:
            for event in reversed(span.events):
                if event.name == "exception":
                    ea = event.attributes or {}
                    err_type = ea.get("exception.type")
                    err_text = ea.get("exception.stacktrace") or ea.get("exception.message")
                    break
            if err_text is None and failed:
                err_text = span.status.description or "ERROR"
        inputs = [(k[_INPUT_PREFIX_LEN:], _attr_text(v)) for k, v in attrs.items()
                  if k.startswith(C.ATTR_INPUT_PREFIX)]
        output = attrs.get(C.ATTR_OUTPUT_RETURN)
        resource = getattr(span, "resource", None)
        svc = resource.attributes.get("service.name") if resource is not None else None
        start = span.start_time or 0
        end = span.end_time or start
        return (span.name, attrs.get(C.ATTR_PROCESS_GROUP), ctx.trace_id, ctx.span_id,
                psid, start, end, str(outcome), err_type,
                storable(str(err_text)) if err_text is not None else None,
                inputs, None if output is None else _attr_text(output), svc)

    def _insert_one_by_one(self, store: SpanStore, calls: list, data: list) -> None:
        """Write a batch call by call; a call already stored or that cannot be stored
        is skipped (and counted in ``rejected``) instead of blocking the others."""
        width, dwidth = len(SPAN_COLUMNS), len(DATA_COLUMNS)
        rows_of: dict[int, list] = {}
        for o in range(0, len(data), dwidth):
            rows_of.setdefault(data[o], []).extend([0, *data[o + 1:o + dwidth]])
        for o in range(0, len(calls), width):
            call = [0, *calls[o + 1:o + width]]
            try:
                store.insert_calls(call, rows_of.get(calls[o], []))
            except (RowRejected, ValueError, TypeError, OverflowError):
                self.rejected += 1


def _attr_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (tuple, list)):
        return repr(list(value))
    return repr(value)
