"""OTLP trace requests into the store: checked, turned into SDK spans, written in one go.

Each OTLP span becomes an ``opentelemetry.sdk`` ``ReadableSpan`` and goes through the
SQLite exporter's own flattening (``SQLiteSpanExporter``), so a remote call is stored
exactly like a local one: ``monitor.input.<name>`` and ``monitor.output.*`` (``return``;
a generator's ``yield[i]`` and ``yield_count``, in the decorator's order) attributes
become INPUT / OUTPUT rows, an ``exception`` event the Exception column,
``monitor.process_group`` the group, the resource's ``service.name`` the service.

Process names (the store's ``Process`` column):

* the ``code.function.name`` attribute when the span has one (otel-monitor's own
  spans carry it: ``module.qualname``, the same name local calls get);
* else the span name, when the span carries ``monitor.*`` attributes;
* else ``"<service.name>: <span name>"`` — two services' ``GET /users`` spans are
  different processes (just the span name when the resource names no service).

A foreign span (one without ``monitor.*`` attributes: another SDK's, a Node service's)
is kept whole in the seven columns, its rows after the rule of the decorator's:

* each attribute is an INPUT row, Data the attribute's key, Data Value its ``repr``
  (bounded like a local value);
* each event other than ``exception`` (that one fills the Exception column of a failed
  span) is an OUTPUT row ``event[i]:<name>``, its value the ``repr`` of its attributes;
* the resource's ``host.name`` is an INPUT row ``resource.host.name``;
* a span with no attribute and no event is one INPUT row ``span.kind`` (``'SERVER'``…),
  so every span has a row in the table.

Every span's ``pid`` is the resource's ``process.pid`` (none when the sender does not
say), not the server's.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from exporters import columns as C
# The exporter's own helpers: a value's text and the store's signed form of an id.
from exporters.flatten import attribute_text as _attr_text, signed_id as _signed
from exporters.archive.remote import target_from
from exporters.retention import RetentionWorker
from exporters.sqlite_exporter import SQLiteSpanExporter
from exporters.store import SPAN_COLUMNS
from exporters.columns import DEFAULT_MAX_VALUE_LENGTH as DEFAULT_MAX_LENGTH, TRUNCATION_MARKER

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_STATUS = {trace_pb2.Status.STATUS_CODE_UNSET: StatusCode.UNSET,
           trace_pb2.Status.STATUS_CODE_OK: StatusCode.OK,
           trace_pb2.Status.STATUS_CODE_ERROR: StatusCode.ERROR}
_KIND = {trace_pb2.Span.SPAN_KIND_SERVER: SpanKind.SERVER,
         trace_pb2.Span.SPAN_KIND_CLIENT: SpanKind.CLIENT,
         trace_pb2.Span.SPAN_KIND_PRODUCER: SpanKind.PRODUCER,
         trace_pb2.Span.SPAN_KIND_CONSUMER: SpanKind.CONSUMER}
_UNKNOWN_SERVICE = "unknown_service"
MAX_NAME = 1000  # longest process name kept
_MAX_TIME_NS = (1 << 63) - 1  # SQLite's INTEGER is signed 64-bit
# Attributes the store keeps as text: another type from a sender becomes its text,
# else SQLite refuses the whole batch. The names among them are cut to MAX_NAME.
_NAME_ATTRS = (C.ATTR_PROCESS_GROUP, C.ATTR_OUTCOME)
_EXCEPTION_NAME_ATTRS = ("exception.type",)
_EXCEPTION_TEXT_ATTRS = ("exception.message", "exception.stacktrace")


DATA_SPAN_KIND = "span.kind"
_KIND_NAMES = {getattr(trace_pb2.Span, f"SPAN_KIND_{k}"): k for k in (
    "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")}


class IngestedSpan(ReadableSpan):
    """A received span: the SDK's span, plus the sender's pid and the rows of a foreign
    span's attributes and events (``(data, data_type, data_value)``)."""

    pid: int | None = None
    rows: tuple[tuple[str, str, str], ...] = ()


@dataclass
class Converted:
    """The spans of one request that can be stored, and why the others cannot."""

    spans: list[ReadableSpan] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < 5:  # the response names a few, not thousands
            self.reasons.append(reason)


def any_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as the Python value the SDK would have held."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in pairs}


def process_name(name: str, attrs: dict[str, Any], service: str | None) -> str:
    function = attrs.get(C.ATTR_CODE_FUNCTION)
    if isinstance(function, str) and function:
        return function[:MAX_NAME]
    if any(key.startswith("monitor.") for key in attrs):
        return name[:MAX_NAME]
    if service and service != _UNKNOWN_SERVICE:
        return f"{service}: {name}"[:MAX_NAME]
    return name[:MAX_NAME]


def _span_problem(span: trace_pb2.Span) -> str | None:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return f"span {span.name!r}: trace_id must be 16 bytes, not all zero"
    if len(span.span_id) != 8 or not any(span.span_id):
        return f"span {span.name!r}: span_id must be 8 bytes, not all zero"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"span {span.name!r}: parent_span_id must be empty or 8 bytes"
    if not span.name:
        return f"span {span.span_id.hex()}: name is empty"
    if span.start_time_unix_nano == 0:
        return f"span {span.name!r}: start_time_unix_nano is missing"
    if span.end_time_unix_nano < span.start_time_unix_nano:
        return f"span {span.name!r}: ends before it starts"
    if span.end_time_unix_nano > _MAX_TIME_NS:
        return f"span {span.name!r}: end_time_unix_nano is out of range"
    return None


def _local_parent_problem(span: trace_pb2.Span, attrs: dict[str, Any]) -> str | None:
    """otel-monitor's own parent link (16 hex digits), which the exporter reads as an id."""
    value = attrs.get(C.ATTR_LOCAL_PARENT)
    if not value:
        return None
    if isinstance(value, str) and len(value) <= 16:
        try:
            int(value, 16)
            return None
        except ValueError:
            pass
    return f"span {span.name!r}: {C.ATTR_LOCAL_PARENT} must be at most 16 hex digits"


def bounded(text: str, max_length: int) -> str:
    """``text`` cut to ``max_length`` with local capture's marker counting the rest."""
    over = len(text) - max_length
    return text[:max_length] + TRUNCATION_MARKER.format(n=over) if over > 0 else text


def value_text(value: Any, max_length: int) -> str:
    """A foreign attribute's value as the decorator renders a value: ``repr``, bounded."""
    if isinstance(value, tuple):
        value = list(value)
    return bounded(repr(value), max_length)


def foreign_rows(span: trace_pb2.Span, attrs: dict[str, Any], host: Any,
                 max_length: int) -> tuple[tuple[str, str, str], ...]:
    """A foreign span's rows: its attributes, its events but ``exception``, the host."""
    rows = [(key[:MAX_NAME], C.INPUT, value_text(value, max_length))
            for key, value in attrs.items()]
    for i, event in enumerate(span.events):
        if event.name != "exception":
            rows.append((f"event[{i}]:{event.name}"[:MAX_NAME], C.OUTPUT,
                         value_text(attributes(event.attributes), max_length)))
    if not rows:
        rows.append((DATA_SPAN_KIND, C.INPUT,
                     repr(_KIND_NAMES.get(span.kind, "INTERNAL"))))
    if host is not None:
        rows.append((C.DATA_RESOURCE_HOST, C.INPUT, value_text(host, max_length)))
    return tuple(rows)


def _bound_values(attrs: dict[str, Any], max_length: int) -> None:
    """The values that become Data Value rows, as text within local capture's bound:
    a sender's 10 MB attribute is not a 10 MB row."""
    for key, value in attrs.items():
        if key.startswith((C.ATTR_INPUT_PREFIX, C.ATTR_OUTPUT_PREFIX)):
            attrs[key] = bounded(_attr_text(value), max_length)


def _as_text(attrs: dict[str, Any], keys: tuple[str, ...],
             names: tuple[str, ...] = ()) -> dict[str, Any]:
    """``keys`` and ``names`` as text, ``names`` cut to MAX_NAME."""
    for key in keys + names:
        value = attrs.get(key)
        if value is not None and not isinstance(value, str):
            attrs[key] = value = _attr_text(value)
        if key in names and value is not None and len(value) > MAX_NAME:
            attrs[key] = value[:MAX_NAME]
    return attrs


def to_readable(span: trace_pb2.Span, attrs: dict[str, Any], resource: Resource,
                service: str | None, scope: InstrumentationScope) -> IngestedSpan:
    parent = None
    if span.parent_span_id and any(span.parent_span_id):
        parent = SpanContext(int.from_bytes(span.trace_id, "big"),
                             int.from_bytes(span.parent_span_id, "big"), True, _SAMPLED)
    return IngestedSpan(
        name=process_name(span.name, attrs, service),
        context=SpanContext(int.from_bytes(span.trace_id, "big"),
                            int.from_bytes(span.span_id, "big"), True, _SAMPLED),
        parent=parent,
        resource=resource,
        attributes=_as_text(attrs, (), _NAME_ATTRS),
        events=[Event(e.name, _as_text(attributes(e.attributes), _EXCEPTION_TEXT_ATTRS,
                                       _EXCEPTION_NAME_ATTRS), e.time_unix_nano)
                for e in span.events],
        kind=_KIND.get(span.kind, SpanKind.INTERNAL),
        status=Status(_STATUS.get(span.status.code, StatusCode.UNSET),
                      span.status.message or None),
        start_time=span.start_time_unix_nano,
        end_time=span.end_time_unix_nano,
        instrumentation_scope=scope,
    )


def convert(request: ExportTraceServiceRequest, *,
            max_value_length: int = DEFAULT_MAX_LENGTH,
            rejected: Iterable[str] = ()) -> Converted:
    """Every span of the request as an IngestedSpan, or rejected with a reason (bad ids,
    no name or start time, a span id seen twice in the request). Input and output values
    are cut to ``max_value_length`` as local capture cuts them. ``rejected``: the reasons
    of spans already left out of ``request`` (JSON ids that are not hex)."""
    out = Converted()
    for reason in rejected:
        out.reject(reason)
    seen: set[bytes] = set()
    for resource_spans in request.resource_spans:
        resource_attrs = attributes(resource_spans.resource.attributes)
        pid = resource_attrs.get("process.pid")
        pid = pid if type(pid) is int and 0 <= pid <= _MAX_TIME_NS else None
        host = resource_attrs.get("host.name")
        host = host if host not in (None, "") else None
        service = resource_attrs.get("service.name")
        # Cut like a process name: it is copied into every span row of the resource.
        service = service[:MAX_NAME] if isinstance(service, str) and service else None
        # Only service.name is read back from the resource: keep the rest out of
        # Resource's own checks (it drops nested values with a warning per span).
        resource = Resource({"service.name": service} if service else {})
        for scope_spans in resource_spans.scope_spans:
            scope = InstrumentationScope(scope_spans.scope.name or "otlp-ingest",
                                         scope_spans.scope.version or None)
            for span in scope_spans.spans:
                problem = _span_problem(span)
                if problem is None and span.span_id in seen:
                    problem = f"span {span.span_id.hex()}: sent twice in one request"
                attrs = attributes(span.attributes) if problem is None else {}
                problem = problem or _local_parent_problem(span, attrs)
                if problem is not None:
                    out.reject(problem)
                    continue
                seen.add(span.span_id)
                own = any(key.startswith("monitor.") for key in attrs)
                rows = () if own else foreign_rows(span, attrs, host, max_value_length)
                _bound_values(attrs, max_value_length)
                readable = to_readable(span, attrs, resource, service, scope)
                readable.pid, readable.rows = pid, rows
                out.spans.append(readable)
    return out


class IngestWriter(SQLiteSpanExporter):
    """The SQLite exporter, writing one request's spans as one transaction: spans already
    in the store (a sender's retry) are left out first, so a batch is never split.
    ``max_value_length``: the store's bound on a value, for ``convert``."""

    max_value_length: int = DEFAULT_MAX_LENGTH
    retention: RetentionWorker | None = None  # the server owns the store: it purges it

    def write(self, converted: Converted) -> None:
        """Store ``converted.spans``; an already stored span is moved to the rejected.
        Raises ``StoreError`` when the store cannot be written (nothing is)."""
        with self._lock:
            store = self._open()
            if self.retention is not None:
                self.retention.start()
            stored = self._stored_ids(store, converted.spans)
            if stored:
                for span in converted.spans:
                    if span.context.span_id in stored:
                        converted.reject(f"span {span.context.span_id:016x}: already stored")
                converted.spans = [s for s in converted.spans
                                   if s.context.span_id not in stored]
            if not converted.spans:
                return
            # The flattening the exporter uses for every span; it adds catalog rows
            # for new process names (idempotent, before the calls' transaction).
            propagated: dict[int, int] = {}  # failures passed on: their inner call's group
            calls, data, _ = self._flatten(converted.spans, store, propagated)
            self._add_sender_fields(converted.spans, calls, data)
            store.insert_calls(calls, data, propagated)  # one transaction: all or none

    @staticmethod
    def _add_sender_fields(spans: list[IngestedSpan], calls: list, data: list) -> None:
        """The sender's pid in each call (flatten writes this process's), and a foreign
        span's rows (flatten writes none for it: it has no ``monitor.*`` attribute)."""
        width, at_pid = len(SPAN_COLUMNS), SPAN_COLUMNS.index("pid")
        for i, span in enumerate(spans):
            calls[i * width + at_pid] = span.pid
            for seq, (name, kind, value) in enumerate(span.rows):
                data += (i, seq, name, kind, value)

    def _configure_store(self, store: Any) -> None:
        super()._configure_store(store)
        store.host = None  # the calls come from other hosts: the groups name none

    def shutdown(self) -> None:
        if self.retention is not None:
            self.retention.stop()
        super().shutdown()

    @staticmethod
    def _stored_ids(store: Any, spans: list[ReadableSpan]) -> set[int]:
        found: set[int] = set()
        ids = [_signed(s.context.span_id) for s in spans]
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] % (1 << 64) for r in store.query(
                f"SELECT span_id FROM spans WHERE span_id IN ({marks})", chunk))
        return found


def open_writer(db_path: str | os.PathLike[str], *, busy_timeout_s: float = 5.0
                ) -> IngestWriter:
    """The server's writer: the store's retention from the same settings as any writer
    (OTEL_MONITOR_RETENTION_HOURS, OTEL_MONITOR_MAX_DB_MB). A request waits at most
    ``busy_timeout_s`` for another writer's lock, then is answered 503 (and retried)."""
    from otel_monitor.settings import load_settings

    settings = load_settings({"db_path": os.fspath(db_path)})
    writer = IngestWriter(settings.db_path, busy_timeout_s=busy_timeout_s)
    writer.retention = RetentionWorker(
        settings.db_path, retention_hours=settings.retention_hours,
        interval_s=settings.purge_interval_s, max_bytes=settings.max_db_bytes,
        rollup_retention_days=settings.rollup_retention_days,
        archive_dir=settings.archive_path,
        archive_retention_days=settings.archive_retention_days,
        archive_target=target_from(settings.archive_url, settings.archive_s3_endpoint,
                                   settings.archive_s3_region),
        archive_spool_max_bytes=settings.archive_spool_max_bytes)
    writer.max_value_length = settings.max_value_length  # OTEL_MONITOR_MAX_VALUE_LENGTH
    return writer
