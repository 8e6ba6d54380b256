"""Span -> rows: the flattening shared by the SQLite exporter (``ReadableSpan``\\ s), the
decorator's writer (compact call records, ``records.py``) and OTLP ingest.

A call becomes one row of ``SpanStore.insert_calls``'s ``calls`` and one row of its
``data`` per input and for the output. ``rows_of`` does it for a batch (records,
spans, or both) against a store; ``sqlite_exporter`` writes them.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from . import columns as C
from .records import ERR_PROPAGATED, CallSite, Outputs, error_texts, scalar_text, storable
from .store import ProcessEntry, SpanStore

_SIGN = 1 << 64
_MAX_SIGNED = (1 << 63) - 1
_INPUT_PREFIX_LEN = len(C.ATTR_INPUT_PREFIX)
_OUTPUT_PREFIX_LEN = len(C.ATTR_OUTPUT_PREFIX)


def signed_id(span_id: int) -> int:
    """A 64-bit span id as the store keeps it (SQLite's INTEGER is signed)."""
    return span_id - _SIGN if span_id > _MAX_SIGNED else span_id


def attribute_text(value: Any) -> str:
    """The Data Value text of an OTel attribute value."""
    if isinstance(value, str):
        return value
    if isinstance(value, (tuple, list)):
        return repr(list(value))
    return repr(value)


def output_order(name: str) -> tuple:
    """A generator's OUTPUT rows in the decorator's order: ``yield[0]``, ``yield[1]``…
    (by index), ``yield_count``, any other name, ``return`` last."""
    if name.startswith("yield[") and name.endswith("]") and name[6:-1].isdigit():
        return (0, int(name[6:-1]), name)
    if name == "yield_count":
        return (1, 0, name)
    return (3, 0, name) if name == "return" else (2, 0, name)


def span_outputs(attrs: Mapping[str, Any]) -> Any:
    """The OUTPUT of a span's ``monitor.output.*`` attributes, as a record carries it:
    None, the ``return`` text, or for a generator's span (``yield[i]``, ``yield_count``)
    ``Outputs((names, texts))`` in the decorator's row order."""
    return outputs_of([(k[_OUTPUT_PREFIX_LEN:], v) for k, v in attrs.items()
                       if k.startswith(C.ATTR_OUTPUT_PREFIX)])


def outputs_of(found: list[tuple[str, Any]]) -> Any:
    """``span_outputs`` of the ``(name after monitor.output., value)`` pairs of a span
    (sorted in place)."""
    if not found:
        return None
    if len(found) == 1 and found[0][0] == "return":
        return attribute_text(found[0][1])
    found.sort(key=lambda pair: output_order(pair[0]))
    return Outputs((tuple(name for name, _ in found),
                    tuple(attribute_text(value) for _, value in found)))


def propagated_from(value: Any) -> int | None:
    """The span id in a span's ``monitor.error.propagated_from`` (16 hex digits), or
    None when it is missing or not one."""
    if not value:
        return None
    try:
        span_id = int(str(value), 16)
    except ValueError:
        return None
    return span_id if 0 < span_id < _SIGN else None


def sample_weight(value: Any) -> float | None:
    """``spans.weight`` of a span's ``monitor.sample.weight`` attribute: a finite number
    > 0 (a sender's anything else, or 1, is stored as NULL: weight 1)."""
    if type(value) is int or type(value) is float:
        if 0 < value < float("inf") and value != 1:
            return float(value)
    return None


class SpanFields(tuple):
    """A span's fields as ``span_fields`` returns them, read by the caller from another
    form of the span (the writer process's wire, ``writer_wire``): ``flatten`` and
    ``process_entries`` take them as they take the span itself. (OTLP ingest lays out
    the rows ``flatten`` would make straight from the protobuf: ``dash_ui.ingest_spans``.)"""

    __slots__ = ()


def span_fields(span: ReadableSpan) -> tuple:
    """A span's fields in the order ``flatten`` reads them (records carry them ready),
    then the span id its failure was passed on from (``ATTR_PROPAGATED_FROM``) or None:

        (name, process_group, trace_id, span_id, parent_span_id or None, start_ns,
         end_ns, outcome, exception_type, exception_text, inputs ([(name, text)]),
         output (``span_outputs``), service_name, propagated_from, weight)
    """
    attrs = span.attributes or {}
    ctx = span.context
    local_parent = attrs.get(C.ATTR_LOCAL_PARENT)
    if local_parent:
        psid = int(str(local_parent), 16)
    else:
        psid = span.parent.span_id if span.parent is not None else None
    failed = span.status.status_code is StatusCode.ERROR
    outcome = attrs.get(C.ATTR_OUTCOME) or (C.OUTCOME_ERROR if failed else C.OUTCOME_OK)
    err_type = err_text = propagated = None
    if failed or outcome != C.OUTCOME_OK:
        propagated = propagated_from(attrs.get(C.ATTR_PROPAGATED_FROM))
        for event in reversed(span.events):
            if event.name == "exception":
                ea = event.attributes or {}
                err_type = ea.get("exception.type")
                err_text = ea.get("exception.stacktrace") or ea.get("exception.message")
                break
        if err_text is None and failed:
            err_text = span.status.description or "ERROR"
    inputs = [(k[_INPUT_PREFIX_LEN:], attribute_text(v)) for k, v in attrs.items()
              if k.startswith(C.ATTR_INPUT_PREFIX)]
    output = span_outputs(attrs)
    resource = getattr(span, "resource", None)
    svc = resource.attributes.get("service.name") if resource is not None else None
    start = span.start_time or 0
    end = span.end_time or start
    return (span.name, attrs.get(C.ATTR_PROCESS_GROUP), ctx.trace_id, ctx.span_id,
            psid, start, end, str(outcome), err_type,
            storable(str(err_text)) if err_text is not None else None,
            inputs, output, svc, propagated, sample_weight(attrs.get(C.ATTR_SAMPLE_WEIGHT)))


def process_entries(items: Sequence[Any], sites: Mapping[str, CallSite]) -> list[ProcessEntry]:
    """The process names of a batch, with their groups."""
    seen: dict[str, ProcessEntry] = {}
    for item in items:
        if type(item) is tuple:
            name = item[0]
            if name not in seen:
                site = sites.get(name)
                seen[name] = ProcessEntry(name, site.process_group if site else None)
        elif type(item) is SpanFields:
            if item[0] not in seen:
                seen[item[0]] = ProcessEntry(item[0], item[1])
        elif item.name not in seen:
            group = (item.attributes or {}).get(C.ATTR_PROCESS_GROUP)
            seen[item.name] = ProcessEntry(item.name, group)
    return list(seen.values())


def flatten(items: Sequence[Any], process_ids: Mapping[str, int], groups: Mapping[str, Any],
            service_name: str | None, propagated: dict[int, int] | None = None,
            pid: int | None = None) -> tuple[list, list]:
    """Flat ``calls`` and ``data`` rows for ``SpanStore.insert_calls``; ``propagated``,
    when given, gets ``{index in the batch: inner span id (signed)}`` of the failed calls
    that only passed on an exception of a monitored call further down (its
    ``propagated`` argument). ``pid``: the process the calls were made in (None: this
    one; a writer process passes its application's).

    This loop runs once per call written, on the writer thread, competing with
    the application for the GIL: it allocates as little as it can per row.
    """
    calls: list = []
    data: list = []
    pid = os.getpid() if pid is None else pid
    service = service_name
    trace_hex: dict[int, str] = {}
    ok, err, error_outcome = C.OK, C.ERR, C.OUTCOME_ERROR
    input_, output_, return_ = C.INPUT, C.OUTPUT, C.RETURN
    for i, item in enumerate(items):
        if type(item) is tuple:
            name, tid, sid, psid, start, end, outcome, error, inputs, output, weight = item
            group, svc = groups[name], service
            err_type = err_text = None
            if error is not None:
                err_type, err_text, _ = error_texts(error)
                if propagated is not None and len(error) > ERR_PROPAGATED \
                        and error[ERR_PROPAGATED]:
                    inner = error[ERR_PROPAGATED]
                    propagated[i] = inner - _SIGN if inner > _MAX_SIGNED else inner
            pairs = zip(*inputs) if inputs else ()
        else:
            (name, group, tid, sid, psid, start, end, outcome, err_type, err_text,
             pairs, output, svc, inner, weight) = \
                item if type(item) is SpanFields else span_fields(item)
            svc = svc or service
            if inner is not None and propagated is not None:
                propagated[i] = inner - _SIGN if inner > _MAX_SIGNED else inner
        th = trace_hex.get(tid)
        if th is None:
            th = trace_hex[tid] = "%032x" % tid
        calls += (i, sid - _SIGN if sid > _MAX_SIGNED else sid, th,
                  (psid - _SIGN if psid > _MAX_SIGNED else psid) if psid else None,
                  start, (end - start) / 1e6, process_ids[name], group, svc,
                  err if outcome == error_outcome else ok, outcome, err_type, err_text, pid,
                  weight)  # None (NULL): 1.0
        seq = 0
        for seq, (data_name, value) in enumerate(pairs, 1):
            if type(value) is not str:
                value = scalar_text(value)
            data += (i, seq - 1, data_name, input_, value)
        if type(output) is Outputs:  # a generator's: (names, values), return last
            for seq, (data_name, value) in enumerate(zip(*output), seq):
                if type(value) is not str:
                    value = scalar_text(value)
                data += (i, seq, data_name, output_, value)
        elif output is not None:
            if type(output) is not str:
                output = scalar_text(output)
            data += (i, seq, return_, output_, output)
    return calls, data


def catalog_entries(names: Any, sites: Mapping[str, CallSite],
                    cataloged: set[str]) -> list[ProcessEntry]:
    """Catalog rows (source, file, line) for monitored functions not cataloged yet; a name
    with no call site (other instrumentation's span) is marked done with none."""
    entries = []
    for name in names - cataloged:
        site = sites.get(name)
        if site is None:
            cataloged.add(name)
            continue
        entries.append(ProcessEntry(name, site.process_group, site.file, site.line,
                                    site.source(), ",".join(site.feeds) or None))
    return entries


def rows_of(store: SpanStore, items: Sequence[Any], sites: Mapping[str, CallSite], *,
                  service_name: str | None = None,
                  cataloged: set[str] | None = None,
                  propagated: dict[int, int] | None = None,
                  pid: int | None = None) -> tuple[list, list, list]:
    """Flatten ``items`` (call records, ReadableSpans and/or SpanFields) against
    ``store``: returns the ``calls`` and ``data`` rows for ``store.insert_calls`` and the
    catalog entries of processes not in ``cataloged`` yet (the caller writes them, then
    adds their names).
    ``propagated``: filled for ``insert_calls`` as by ``flatten``; ``pid`` as there."""
    entries = process_entries(items, sites)
    process_ids = store.process_ids(entries)
    calls, data = flatten(items, process_ids, {e.name: e.process_group for e in entries},
                          service_name, propagated, pid)
    return calls, data, catalog_entries(process_ids.keys(), sites,
                                        set() if cataloged is None else cataloged)
