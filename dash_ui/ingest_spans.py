"""OTLP trace requests into the store: checked, read into rows, written in one go.

Each OTLP span is read straight from the protobuf into the rows the SQLite exporter's
flattening makes of the SDK span the sender recorded (no SDK span nor intermediate
fields are built: ``tests/dash_ui/test_ingest_rows.py`` holds the two to the very same
rows), so a remote call is stored exactly like a local one:
``monitor.input.<name>`` and ``monitor.output.*`` (``return``; a generator's
``yield[i]`` and ``yield_count``, in the decorator's order) attributes become INPUT /
OUTPUT rows, an ``exception`` event the Exception column, ``monitor.process_group`` the
group, the resource's ``service.name`` the service.

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

from exporters import columns as C
# The exporter's own helpers: a value's text, and the checks its flattening makes of a
# span's weight, error link and outputs (the same on a sender's span as on a local one).
from exporters.flatten import (
    attribute_text as _attr_text,
    output_order,
    propagated_from,
    sample_weight,
)
from exporters.archive.remote import target_from
from exporters.records import storable
from exporters.retention import RetentionWorker
from exporters.sqlite_exporter import SQLiteSpanExporter
from exporters.store import DATA_COLUMNS, SPAN_COLUMNS, ProcessEntry
from exporters.columns import DEFAULT_MAX_VALUE_LENGTH as DEFAULT_MAX_LENGTH, TRUNCATION_MARKER

_ERROR = trace_pb2.Status.STATUS_CODE_ERROR
_UNKNOWN_SERVICE = "unknown_service"
MAX_NAME = 1000  # longest process name kept
_MAX_TIME_NS = (1 << 63) - 1  # SQLite's INTEGER is signed 64-bit
_INPUT, _INPUT_LEN = C.ATTR_INPUT_PREFIX, len(C.ATTR_INPUT_PREFIX)
_OUTPUT, _OUTPUT_LEN = C.ATTR_OUTPUT_PREFIX, len(C.ATTR_OUTPUT_PREFIX)
_SIGN, _MAX_SIGNED = 1 << 64, (1 << 63) - 1  # SQLite keeps 64-bit ids signed
_WIDTH, _DATA_WIDTH = len(SPAN_COLUMNS), len(DATA_COLUMNS)
_SPAN_ID, _PROCESS, _GROUP = (SPAN_COLUMNS.index(c) for c in
                              ("span_id", "process_id", "process_group"))


_NO_EVENTS: list = []  # shared, never changed
_NO_TRACE, _NO_SPAN = bytes(16), bytes(8)  # all zero: invalid ids
DATA_SPAN_KIND = "span.kind"
_KIND_NAMES = {getattr(trace_pb2.Span, f"SPAN_KIND_{k}"): k for k in (
    "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")}


@dataclass
class Converted:
    """The spans of one request that can be stored, as ``SpanStore.insert_calls`` takes
    them (``calls``, ``data`` and ``propagated``, but for the process's name where its id
    goes), and why the others cannot be."""

    calls: list = field(default_factory=list)
    data: list = field(default_factory=list)
    propagated: dict[int, int] = field(default_factory=dict)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < 5:  # the response names a few, not thousands
            self.reasons.append(reason)

    def drop(self, indexes: set[int]) -> None:
        """Leave out the spans at ``indexes`` (in the batch), the others renumbered."""
        calls, data, propagated = self.calls, self.data, self.propagated
        new_index: dict[int, int] = {}
        kept: list = []
        for o in range(0, len(calls), _WIDTH):
            if calls[o] not in indexes:
                new_index[calls[o]] = len(new_index)
                kept += (new_index[calls[o]], *calls[o + 1:o + _WIDTH])
        rows: list = []
        for o in range(0, len(data), _DATA_WIDTH):
            if data[o] in new_index:
                rows += (new_index[data[o]], *data[o + 1:o + _DATA_WIDTH])
        self.calls, self.data = kept, rows
        self.propagated = {new_index[i]: inner for i, inner in propagated.items()
                           if i in new_index}


def any_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as the Python value the SDK would have held."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
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


def process_name(name: str, attrs: dict[str, Any], service: str | None,
                 own: bool | None = None) -> str:
    """``own``: whether ``attrs`` has a ``monitor.*`` key, when the caller knows."""
    function = attrs.get(C.ATTR_CODE_FUNCTION)
    if type(function) is str and function:
        return function[:MAX_NAME]
    if own is None:
        own = _is_own(attrs)
    if own or not service or service == _UNKNOWN_SERVICE:
        return name[:MAX_NAME]
    return f"{service}: {name}"[:MAX_NAME]


def _is_own(attrs: Iterable[str]) -> bool:
    """Whether a span is otel-monitor's own: it has a ``monitor.*`` attribute."""
    for key in attrs:
        if key.startswith("monitor."):
            return True
    return False


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


def _own_text(value: Any, max_length: int) -> str:
    """An own span's input or output value as stored: the exporter's text of it, bounded."""
    if type(value) is not str:
        value = _attr_text(value)
    return bounded(value, max_length) if len(value) > max_length else value


def value_text(value: Any, max_length: int) -> str:
    """A foreign attribute's value as the decorator renders a value: ``repr``, bounded."""
    if isinstance(value, tuple):
        value = list(value)
    return bounded(repr(value), max_length)


def foreign_rows(span: trace_pb2.Span, attrs: dict[str, Any],
                 events: list[tuple[str, dict[str, Any]]], host: Any,
                 max_length: int) -> tuple[tuple[str, str, str], ...]:
    """A foreign span's rows: its attributes, its events (``(name, attributes)``) but
    ``exception``, the host."""
    rows = [(key[:MAX_NAME], C.INPUT, value_text(value, max_length))
            for key, value in attrs.items()]
    for i, (name, event_attrs) in enumerate(events):
        if name != "exception":
            rows.append((f"event[{i}]:{name}"[:MAX_NAME], C.OUTPUT,
                         value_text(event_attrs, max_length)))
    if not rows:
        rows.append((DATA_SPAN_KIND, C.INPUT,
                     repr(_KIND_NAMES.get(span.kind, "INTERNAL"))))
    if host is not None:
        rows.append((C.DATA_RESOURCE_HOST, C.INPUT, value_text(host, max_length)))
    return tuple(rows)


def _text(value: Any) -> Any:
    """A value the store keeps as text, as text (None stays None): another type from a
    sender becomes its text, else SQLite refuses the whole batch."""
    return value if value is None or type(value) is str else _attr_text(value)


def _name(value: Any) -> Any:
    """A name kept per call (group, outcome, exception type): text, cut to MAX_NAME."""
    value = _text(value)
    return value[:MAX_NAME] if value is not None and len(value) > MAX_NAME else value


def convert(request: ExportTraceServiceRequest, *,
            max_value_length: int = DEFAULT_MAX_LENGTH,
            rejected: Iterable[str] = ()) -> Converted:
    """Every span of the request as its rows, or rejected with a reason (bad ids, no
    name or start time, a span id seen twice in the request). Input and output values
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
        for scope_spans in resource_spans.scope_spans:
            _add_spans(out, scope_spans.spans, seen, service, pid, host, max_value_length)
    return out


def _add_spans(out: Converted, spans: Iterable[trace_pb2.Span], seen: set[bytes],
               service: str | None, pid: int | None, host: Any, max_length: int) -> None:
    """Each span's call row and data rows onto ``out``, laid out as ``flatten.flatten``
    lays out the SDK span the sender recorded (``flatten.span_fields`` reads it): the
    same checks on a sender's weight, error link and outputs, inputs and outputs as text
    within ``max_length`` (a sender's 10 MB attribute is not a 10 MB row), names cut to
    MAX_NAME, the last ``exception`` event's type and text; the process name stands
    where its id goes (``IngestWriter.rows`` looks the ids up), the sender's pid where
    the pid goes.

    This loop runs once per span received, a thousand times a request: the attributes
    are read once (a string value, the usual one, without asking the value its kind),
    and a span allocates its rows and little else."""
    calls, data, propagated = out.calls, out.data, out.propagated
    i = len(calls) // _WIDTH
    any_value_, reject, add_seen, layouts = any_value, out.reject, seen.add, _LAYOUTS
    input_, output_ = C.INPUT, C.OUTPUT
    ok, err, outcome_ok, outcome_error = C.OK, C.ERR, C.OUTCOME_OK, C.OUTCOME_ERROR
    for span in spans:
        trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
        name, start = span.name, span.start_time_unix_nano
        end = span.end_time_unix_nano
        if not (len(trace_id) == 16 and len(span_id) == 8 and trace_id != _NO_TRACE
                and span_id != _NO_SPAN and (not parent or len(parent) == 8) and name
                and start and start <= end <= _MAX_TIME_NS) or span_id in seen:
            reject(_span_problem(span)
                   or f"span {span_id.hex()}: sent twice in one request")
            continue
        attrs = {kv.key: kv.value.string_value or any_value_(kv.value)
                 for kv in span.attributes}
        get = attrs.get
        local_parent = get(C.ATTR_LOCAL_PARENT)
        if local_parent:
            problem = _local_parent_problem(span, attrs)
            if problem is not None:
                reject(problem)
                continue
            psid = int(local_parent, 16)  # checked: at most 16 hex digits
            psid = (psid - _SIGN if psid > _MAX_SIGNED else psid) or None
        else:
            psid = int.from_bytes(parent, "big", signed=True) or None if parent else None
        add_seen(span_id)
        events = span.events
        events = [(e.name, attributes(e.attributes)) for e in events] if events \
            else _NO_EVENTS
        keys = tuple(attrs)
        layout = layouts.get(keys) or _layout(keys)
        own = layout[0]
        status = span.status
        failed = status.code == _ERROR
        group, outcome = get(C.ATTR_PROCESS_GROUP), get(C.ATTR_OUTCOME)
        if group is not None and (type(group) is not str or len(group) > MAX_NAME):
            group = _name(group)
        if outcome is not None and (type(outcome) is not str or len(outcome) > MAX_NAME):
            outcome = _name(outcome)
        if not outcome:
            outcome = outcome_error if failed else outcome_ok
        err_type = err_text = None
        if failed or outcome != outcome_ok:
            inner = propagated_from(get(C.ATTR_PROPAGATED_FROM))
            if inner is not None:
                propagated[i] = inner - _SIGN if inner > _MAX_SIGNED else inner
            for event_name, event_attrs in reversed(events):
                if event_name == "exception":
                    err_type = _name(event_attrs.get("exception.type"))
                    err_text = _text(event_attrs.get("exception.stacktrace")) or \
                        _text(event_attrs.get("exception.message"))
                    break
            if err_text is None and failed:
                err_text = status.message or "ERROR"
            if err_text is not None:
                err_text = storable(err_text)
        weight = get(C.ATTR_SAMPLE_WEIGHT)
        function = get(C.ATTR_CODE_FUNCTION)
        calls += (i, int.from_bytes(span_id, "big", signed=True), trace_id.hex(), psid,
                  start, ((end or start) - start) / 1e6,
                  function[:MAX_NAME] if type(function) is str and function
                  else process_name(name, attrs, service, own),
                  group, service, err if outcome == outcome_error else ok, outcome,
                  err_type, err_text, pid, None if weight is None else sample_weight(weight))
        if own:  # only otel-monitor's own spans have inputs and outputs
            values = tuple(attrs.values())
            seq = 0
            for seq, (at, data_name) in enumerate(layout[1], 1):
                value = values[at]
                if type(value) is not str or len(value) > max_length:
                    value = _own_text(value, max_length)
                data += (i, seq - 1, data_name, input_, value)
            for seq, (at, data_name) in enumerate(layout[2], seq):
                value = values[at]
                if type(value) is not str or len(value) > max_length:
                    value = _own_text(value, max_length)
                data += (i, seq, data_name, output_, value)
        else:
            for seq, row in enumerate(foreign_rows(span, attrs, events, host, max_length)):
                data += (i, seq, *row)
        i += 1


# The attribute keys of a span, in order -> (whether it is otel-monitor's own, its
# inputs' (position, name), its outputs' (position, name) in the decorator's row order):
# a service's spans repeat a few key lists, so each is read once (bounded: a sender's
# every span may have keys of its own).
_LAYOUTS: dict[tuple[str, ...], tuple[bool, tuple, tuple]] = {}
_MAX_LAYOUTS = 4096


def _layout(keys: tuple[str, ...]) -> tuple[bool, tuple, tuple]:
    own = _is_own(keys)
    inputs, outputs = [], []
    if own:
        for at, key in enumerate(keys):
            if key.startswith(_INPUT):
                inputs.append((at, key[_INPUT_LEN:]))
            elif key.startswith(_OUTPUT):
                outputs.append((at, key[_OUTPUT_LEN:]))
    # in the rows' order, as flatten.outputs_of sorts them: yield[0]..., return last
    outputs.sort(key=lambda output: output_order(output[1]))
    layout = (own, tuple(inputs), tuple(outputs))
    if len(_LAYOUTS) >= _MAX_LAYOUTS:
        _LAYOUTS.clear()
    _LAYOUTS[keys] = layout
    return layout



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
            rows = self.rows(store, converted)
            if rows is not None:
                store.insert_calls(*rows)  # one transaction: all or none

    def rows(self, store: Any, converted: Converted) -> tuple[list, list, dict] | None:
        """``store.insert_calls``' arguments for the spans of ``converted`` not in
        ``store`` yet (the others are moved to the rejected), or None when none is left.
        Under the writer's lock (``write``; ``benchmarks/bench_ingest.py --split``)."""
        calls = converted.calls
        stored = self._stored_ids(store, calls[_SPAN_ID::_WIDTH])
        if stored:
            dropped = set()
            for o in range(0, len(calls), _WIDTH):
                if calls[o + _SPAN_ID] in stored:
                    converted.reject(f"span {calls[o + _SPAN_ID] % _SIGN:016x}: "
                                     "already stored")
                    dropped.add(calls[o])
            converted.drop(dropped)
            calls = converted.calls
        if not calls:
            return None
        # Catalog rows for new process names (idempotent, before the calls' transaction),
        # each with the group of its first call, as the exporter's flattening adds them.
        names = calls[_PROCESS::_WIDTH]
        first_group = dict(zip(reversed(names), reversed(calls[_GROUP::_WIDTH])))
        ids = store.process_ids([ProcessEntry(name, first_group[name])
                                 for name in dict.fromkeys(names)])  # in call order
        calls[_PROCESS::_WIDTH] = [ids[name] for name in names]
        return calls, converted.data, converted.propagated

    def _configure_store(self, store: Any) -> None:
        super()._configure_store(store)
        store.host = None  # the calls come from other hosts: the groups name none

    def shutdown(self) -> None:
        if self.retention is not None:
            self.retention.stop()
        super().shutdown()

    @staticmethod
    def _stored_ids(store: Any, span_ids: list[int]) -> set[int]:
        """Which of ``span_ids`` (signed, as stored) are in ``store`` already."""
        found: set[int] = set()
        for i in range(0, len(span_ids), 500):
            chunk = span_ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in store.query(
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
