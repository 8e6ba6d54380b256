"""What the application and its writer process (``writer_process`` / ``writer_child``)
send each other: plain tuples and lists, encoded with ``marshal`` (C, fast, and it
takes every field a call record holds).

A batch goes as ``("batch", sites, chunks, spans_at, outputs_at)``:

* ``chunks``: the items, CHUNK at a time, each marshalled on its own: call records
  as they are (the child renders their scalars with ``scalar_text``, work taken off
  the application); a failed record, a
  ``ReadableSpan`` or a ``SpanFields`` goes as its ``SpanFields`` tuple, made in the
  application: a record's ``error`` holds a ``TracebackException`` and its masked
  values, scrubbed (``error_texts``) before any byte leaves the process.
* ``spans_at`` / ``outputs_at``: the positions of the items that are ``SpanFields``
  and of those whose output is ``Outputs``: ``marshal`` refuses tuple subclasses, so
  they travel as plain tuples and are rebuilt on the other side.
* ``sites``: the call sites of the batch's processes the child has not been sent
  yet, ``(process, group, file, line, feeds, source text)``: the source is read in
  the application, where the function is.

The child answers every message with one ``reply``.
"""
from __future__ import annotations

import dataclasses
import marshal
from typing import Any, Mapping, Sequence

from . import errors
from .error_groups import GroupEvent
from .errors import StoreError
from .flatten import SpanFields, span_fields
from .records import (ERR_PROPAGATED, ERROR, INPUTS, OUTPUT, WEIGHT, CallSite, Outputs,
                      error_texts, scalar_text)

# Where a SpanFields holds its inputs and output (records: records.INPUTS, OUTPUT).
_SPAN_INPUTS, _SPAN_OUTPUT = 10, 11


# Records per marshal call: marshal holds the GIL in C without a break, ~0.3 ms for
# 1,000 records (a whole batch of 20,000 at once: ~15-25 ms, a stall for the
# application's threads). Between chunks the application's threads can run.
CHUNK = 1000


def encode_batch(items: Sequence[Any], sites: list[tuple],
                 known: Mapping[str, CallSite]) -> bytes:
    """The ``batch`` message of ``items`` (records, ReadableSpans, SpanFields) with the
    ``sites`` (``site_of``) the child needs; ``known``: all call sites by process, for the
    group of a failed record. The items go in chunks of CHUNK, each marshalled apart."""
    chunks: list[bytes] = []
    spans_at: list[int] = []
    outputs_at: list[int] = []
    for start in range(0, len(items), CHUNK):
        part = items[start:start + CHUNK]
        try:  # the usual chunk: records that did not fail, no generator's: all in C
            chunks.append(marshal.dumps(part))
        except ValueError:  # a span, a failure's traceback, a generator's Outputs
            chunks.append(_plain_chunk(part, start, known, spans_at, outputs_at))
    return marshal.dumps(("batch", sites, chunks, spans_at, outputs_at))


def _plain_chunk(part: Sequence[Any], start: int, known: Mapping[str, CallSite],
                 spans_at: list[int], outputs_at: list[int]) -> bytes:
    """A chunk made of plain tuples, the positions of its SpanFields and Outputs noted."""
    wire: list = []
    for i, item in enumerate(part, start):
        if type(item) is tuple and item[ERROR] is None:
            out = OUTPUT
        else:
            item = _span_tuple(item, known)
            spans_at.append(i)
            out = _SPAN_OUTPUT
        if type(item[out]) is Outputs:
            item = (*item[:out], tuple(item[out]), *item[out + 1:])
            outputs_at.append(i)
        wire.append(_plain_fields(item))
    try:
        return marshal.dumps(wire)
    except ValueError:  # a value of a type marshal does not take: rendered here instead
        spans, several = set(spans_at), set(outputs_at)
        return marshal.dumps([_rendered(item, i in spans, i in several)
                              for i, item in enumerate(wire, start)])


def _plain_fields(item: tuple) -> tuple:
    """``item`` with its ids, times and names of a subclass of int or str as the plain
    value: a feed handler's calls have a parent id that is an int subclass naming the
    feed (read in the application by an observer; the child needs its value)."""
    if all(type(f) in _MARSHALLED for f in item):
        return item
    return tuple(f if type(f) in _MARSHALLED else int(f) if isinstance(f, int)
                 and not isinstance(f, bool) else str.__str__(f) if isinstance(f, str)
                 else f for f in item)


# The types of a record's fields other than the values marshal takes as they are.
_MARSHALLED = frozenset({str, int, float, bool, type(None), tuple, list, complex})


def decode_batch(message: tuple) -> tuple[list[tuple], list[Any]]:
    """(sites, items) of a ``batch`` message, its tuples rebuilt as ``flatten`` takes them."""
    _, sites, chunks, spans_at, outputs_at = message
    items: list = []
    for chunk in chunks:
        items += marshal.loads(chunk)
    spans = set(spans_at)
    for i in outputs_at:
        item = items[i]
        out = _SPAN_OUTPUT if i in spans else OUTPUT
        items[i] = (*item[:out], Outputs(item[out]), *item[out + 1:])
    for i in spans_at:
        items[i] = SpanFields(items[i])
    return sites, items


def _span_tuple(item: Any, known: Mapping[str, CallSite]) -> tuple:
    """The SpanFields fields of a failed record, a ReadableSpan or a SpanFields."""
    if type(item) is SpanFields:
        return tuple(item)
    if type(item) is not tuple:
        return span_fields(item)
    name, tid, sid, psid, start, end, outcome, error, inputs, output, weight = item
    err_type, err_text, _ = error_texts(error)
    inner = error[ERR_PROPAGATED] if len(error) > ERR_PROPAGATED else None
    pairs = list(zip(*inputs)) if inputs else []
    site = known.get(name)
    return (name, site.process_group if site else None, tid, sid, psid, start, end, outcome, err_type, err_text, pairs,
            output, None, inner or None, weight)


def _rendered(item: tuple, is_span: bool, several: bool) -> tuple:
    """``item`` (as sent) with its input and output values as text (``scalar_text``);
    ``several``: its output is an ``Outputs`` made plain."""
    def text(value: Any) -> Any:
        return value if type(value) is str or value is None else scalar_text(value)

    out = _SPAN_OUTPUT if is_span else OUTPUT
    output = item[out]
    output = (output[0], tuple(map(text, output[1]))) if several else text(output)
    if is_span:
        pairs = [(name, text(value)) for name, value in item[_SPAN_INPUTS]]
        return (*item[:_SPAN_INPUTS], pairs, output, *item[out + 1:])
    inputs = item[INPUTS]
    if inputs:
        inputs = (inputs[0], tuple(map(text, inputs[1])))
    return (*item[:INPUTS], inputs, output, item[WEIGHT])


def site_of(site: CallSite) -> tuple:
    """A call site as sent: its source read here, where its function is."""
    return (site.process, site.process_group, site.file, site.line, tuple(site.feeds),
            site.source())


@dataclasses.dataclass(eq=False)
class SentSite(CallSite):
    """A call site received from the application, its source text with it."""

    text: str | None = None

    def source(self) -> str | None:
        return self.text


def received_site(fields: tuple) -> SentSite:
    process, group, file, line, feeds, text = fields
    return SentSite(process, group, file, line, feeds=tuple(feeds), text=text)


# -- replies ---------------------------------------------------------------------------

def reply(ok: bool, error: StoreError | None, events: list[GroupEvent], rejected: int,
          recreated: int, logs: list[tuple[int, str]]) -> bytes:
    """The child's answer: whether it was written, why not (the StoreError's class name
    and message), the batch's group events, the calls it set aside and the times it
    recreated the store since its last answer, and what it logged meanwhile."""
    why = None if error is None else (type(error).__name__, str(error))
    return marshal.dumps((ok, why, [dataclasses.astuple(e) for e in events], rejected,
                          recreated, logs))


def store_error(why: tuple[str, str]) -> StoreError:
    """The child's StoreError, rebuilt as its own class (``StoreBusy`` stays one: the
    processor does not split a batch that met a lock)."""
    name, message = why
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, StoreError)):
        cls = StoreError
    return cls(message)


def group_events(rows: list[tuple]) -> list[GroupEvent]:
    return [GroupEvent(*row) for row in rows]
