"""What an application's own span processor sees of ``otel_span=True`` calls, pinned
whole: at start (name, kind, attributes in order, parent, the context passed) and at
end (attributes in order, events, status, times), for sync, failing, nested, sampled,
generator and async calls. The expected views were taken from main before the span
path was made faster (issue 19), so a faster path is held to the same spans."""
from __future__ import annotations

import asyncio
import re

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor

from otel_monitor import _wrappers, monitor



class RecordingProcessor(SpanProcessor):
    """An application's processor: what it is handed, as plain data, at each hook."""

    def __init__(self) -> None:
        self.started: list[dict] = []
        self.ended: list = []

    def on_start(self, span, parent_context=None) -> None:
        parent_span = trace.get_current_span(parent_context).get_span_context() \
            if parent_context is not None else None
        self.started.append({
            "name": span.name, "kind": span.kind, "attributes": list(span.attributes.items()),
            "parent": span.parent, "context_given": parent_context is not None,
            "context_parent": parent_span, "span": span.get_span_context(),
            "is_recording": span.is_recording(),
        })

    def on_end(self, span) -> None:
        self.ended.append(span)


_PROCESSOR: RecordingProcessor | None = None


@pytest.fixture
def seen(store) -> RecordingProcessor:
    """A RecordingProcessor on the global provider (added once per process), emptied
    for each test."""
    global _PROCESSOR
    if _PROCESSOR is None:
        _PROCESSOR = RecordingProcessor()
        trace.get_tracer_provider().add_span_processor(_PROCESSOR)
    _PROCESSOR.started.clear()
    _PROCESSOR.ended.clear()
    yield _PROCESSOR
    _PROCESSOR.started.clear()
    _PROCESSOR.ended.clear()


_HASHED = re.compile(r"<HASHED:[0-9a-f]+>")


def _frames(stacktrace: str) -> list[str]:
    """A recorded traceback as its functions and its last line (paths and line numbers
    left out)."""
    names = re.findall(r'^  File ".*", line \d+, in (\S+)$', stacktrace, re.M)
    return [*names, stacktrace.rstrip().splitlines()[-1]]


def view(processor: RecordingProcessor, store) -> list[dict]:
    """Every span the processor was handed, in end order, as comparable data: ids as
    names of the spans they belong to, times checked against each other and the store."""
    ended = processor.ended
    names = {s.context.span_id: s.name.rsplit(".", 1)[-1] for s in ended}
    names.update({s["span"].span_id: s["name"].rsplit(".", 1)[-1]
                  for s in processor.started})
    names.update({int(r["span_id"], 16): r["process"].rsplit(".", 1)[-1]
                  for r in store.query("SELECT span_id, process FROM process_trace")})
    traces: dict[int, int] = {}
    started = {s["span"].span_id: s for s in processor.started}

    def ref(span_context) -> str | None:
        if span_context is None:
            return None
        return names.get(span_context.span_id, "<foreign>")

    def attrs(items, span_name: str) -> list:
        out = []
        for key, value in items:
            if key == "code.function.name":
                value = value == span_name
            elif key == "code.file.path":
                value = value == __file__
            elif key == "code.line.number":
                value = type(value) is int and value > 0
            elif key in ("monitor.local_parent_span_id", "monitor.error.propagated_from"):
                value = names.get(int(value, 16), "<foreign>")
            elif type(value) is str:
                value = _HASHED.sub("<HASHED>", value)  # the store's key is the test's
            out.append((key, value))
        return out

    result = []
    for span in ended:
        start = started[span.context.span_id]
        trace_no = traces.setdefault(span.context.trace_id, len(traces))
        events = []
        for event in span.events:
            ea = {k: _HASHED.sub("<HASHED>", v) for k, v in event.attributes.items()}
            if "exception.stacktrace" in ea:
                ea["exception.stacktrace"] = _frames(ea["exception.stacktrace"])
            events.append((event.name, list(ea.items()), event.timestamp == span.end_time))
        entry = {
            "name": span.name.rsplit(".", 1)[-1], "kind": span.kind.name,
            "trace": trace_no, "parent": ref(span.parent),
            "start_attributes": attrs(start["attributes"], span.name),
            "start_parent": ref(start["parent"]), "start_recording": start["is_recording"],
            "context_given": start["context_given"],
            "context_parent": ref(start["context_parent"]),
            "attributes": attrs(span.attributes.items(), span.name),
            "events": events,
            "status": (span.status.status_code.name,
                       _HASHED.sub("<HASHED>", span.status.description or "")),
            "ordered_times": span.start_time <= span.end_time,
        }
        if span.instrumentation_scope.name == "otel_monitor":
            # the store holds the same call: same ids, same start (but for a call
            # recorded only because it failed unsampled: its span starts when its
            # recording does, at the failure, as on main)
            row = next(r for r in store.calls(span.name)
                       if r["span_id"] == "%016x" % span.context.span_id)
            entry["store"] = (row["trace_id"] == "%032x" % span.context.trace_id,
                              row["start_ns"] == span.start_time, row["status"],
                              row["outcome"], ref(_parent_context(row["parent_span_id"])))
        result.append(entry)
    return result


def _parent_context(hex_id: str | None):
    if hex_id is None:
        return None
    return trace.SpanContext(1, int(hex_id, 16), False)


# -- the workloads -------------------------------------------------------------------------

def test_sync_calls_ok_failing_nested_and_masked(store, seen):
    @monitor("contract", otel_span=True)
    def inner(n, label):
        if n < 0:
            raise ValueError(f"negative {n} for {label}")
        return {"n": n}

    @monitor("contract", otel_span=True, mask=("api_key",))
    def outer(spot, strike, api_key, *, big, z, none, flag):
        inner(int(spot), "a")
        return inner(-1, api_key)

    @monitor("contract", otel_span=False)
    def local_root(x):
        try:
            outer(x, 100, "k-123456", big=2 ** 70, z=1j, none=None, flag=True)
        except ValueError:
            pass
        return inner(3, "b")

    @monitor("contract", otel_span=False)
    def local_alone():
        return inner(4, "c")

    @monitor("contract", otel_span=True, sample=0.0)
    def unsampled(key):
        raise KeyError(key)

    with trace.get_tracer("app").start_as_current_span("request"):
        assert local_root(7.5) == {"n": 3}
    assert local_alone() == {"n": 4}
    with pytest.raises(KeyError):
        unsampled("missing")
    assert view(seen, store) == EXPECTED_SYNC


def test_sampled_generator_async_and_cancelled(store, seen, monkeypatch):
    monkeypatch.setattr(_wrappers, "random", lambda: 0.0)  # sample=0.5 keeps every call

    @monitor("contract", otel_span=True, sample=0.5)
    def halved(x):
        return x * 2

    @monitor("contract", otel_span=True)
    def counting(n):
        for i in range(n):
            yield halved(i)
        return "done"

    @monitor("contract", otel_span=True)
    async def fetch(url, retries=3):
        with trace.get_tracer("http").start_as_current_span("GET"):
            await asyncio.sleep(0)
        return len(url)

    @monitor("contract", otel_span=True)
    async def stream(n):
        for i in range(n):
            yield await fetch("u" * i)

    @monitor("contract", otel_span=True)
    async def slow():
        await asyncio.sleep(3600)

    async def main():
        assert [x async for x in stream(2)] == [0, 1]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow(), 0.01)

    assert list(counting(2)) == [0, 2]
    asyncio.run(main())
    assert view(seen, store) == EXPECTED_ASYNC


# -- the views, as main produced them ----------------------------------------------------

EXPECTED_SYNC = [{'name': 'inner',
                  'kind': 'INTERNAL',
                  'trace': 0,
                  'parent': 'outer',
                  'start_attributes': [('code.function.name', True),
                                       ('monitor.process_group', 'contract'),
                                       ('code.file.path', True),
                                       ('code.line.number', True),
                                       ('monitor.input.n', 7),
                                       ('monitor.input.label', "'a'")],
                  'start_parent': 'outer',
                  'start_recording': True,
                  'context_given': False,
                  'context_parent': None,
                  'attributes': [('code.function.name', True),
                                 ('monitor.process_group', 'contract'),
                                 ('code.file.path', True),
                                 ('code.line.number', True),
                                 ('monitor.input.n', 7),
                                 ('monitor.input.label', "'a'"),
                                 ('monitor.output.return', "{'n': 7}")],
                  'events': [],
                  'status': ('UNSET', ''),
                  'ordered_times': True,
                  'store': (True, True, 'OK', 'ok', 'outer')},
                 {'name': 'inner',
                  'kind': 'INTERNAL',
                  'trace': 0,
                  'parent': 'outer',
                  'start_attributes': [('code.function.name', True),
                                       ('monitor.process_group', 'contract'),
                                       ('code.file.path', True),
                                       ('code.line.number', True),
                                       ('monitor.input.n', -1),
                                       ('monitor.input.label', "'k-123456'")],
                  'start_parent': 'outer',
                  'start_recording': True,
                  'context_given': False,
                  'context_parent': None,
                  'attributes': [('code.function.name', True),
                                 ('monitor.process_group', 'contract'),
                                 ('code.file.path', True),
                                 ('code.line.number', True),
                                 ('monitor.input.n', -1),
                                 ('monitor.input.label', "'k-123456'")],
                  'events': [('exception',
                              [('exception.type', 'ValueError'),
                               ('exception.message', 'negative -1 for k-123456'),
                               ('exception.stacktrace',
                                ['inner', 'ValueError: negative -1 for k-123456'])],
                              True)],
                  'status': ('ERROR', 'ValueError: negative -1 for k-123456'),
                  'ordered_times': True,
                  'store': (True, True, 'ERR', 'error', 'outer')},
                 {'name': 'outer',
                  'kind': 'INTERNAL',
                  'trace': 0,
                  'parent': 'request',
                  'start_attributes': [('code.function.name', True),
                                       ('monitor.process_group', 'contract'),
                                       ('code.file.path', True),
                                       ('code.line.number', True),
                                       ('monitor.input.spot', 7.5),
                                       ('monitor.input.strike', 100),
                                       ('monitor.input.api_key', '<HASHED>'),
                                       ('monitor.input.big', '1180591620717411303424'),
                                       ('monitor.input.z', '1j'),
                                       ('monitor.input.none', 'None'),
                                       ('monitor.input.flag', True),
                                       ('monitor.local_parent_span_id', 'local_root')],
                  'start_parent': 'request',
                  'start_recording': True,
                  'context_given': False,
                  'context_parent': None,
                  'attributes': [('code.function.name', True),
                                 ('monitor.process_group', 'contract'),
                                 ('code.file.path', True),
                                 ('code.line.number', True),
                                 ('monitor.input.spot', 7.5),
                                 ('monitor.input.strike', 100),
                                 ('monitor.input.api_key', '<HASHED>'),
                                 ('monitor.input.big', '1180591620717411303424'),
                                 ('monitor.input.z', '1j'),
                                 ('monitor.input.none', 'None'),
                                 ('monitor.input.flag', True),
                                 ('monitor.local_parent_span_id', 'local_root'),
                                 ('monitor.error.propagated_from', 'inner')],
                  'events': [('exception',
                              [('exception.type', 'ValueError'),
                               ('exception.message', 'negative -1 for <HASHED>'),
                               ('exception.stacktrace',
                                ['outer', 'inner', 'ValueError: negative -1 for <HASHED>'])],
                              True)],
                  'status': ('ERROR', 'ValueError: negative -1 for <HASHED>'),
                  'ordered_times': True,
                  'store': (True, True, 'ERR', 'error', 'local_root')},
                 {'name': 'inner',
                  'kind': 'INTERNAL',
                  'trace': 0,
                  'parent': 'request',
                  'start_attributes': [('code.function.name', True),
                                       ('monitor.process_group', 'contract'),
                                       ('code.file.path', True),
                                       ('code.line.number', True),
                                       ('monitor.input.n', 3),
                                       ('monitor.input.label', "'b'"),
                                       ('monitor.local_parent_span_id', 'local_root')],
                  'start_parent': 'request',
                  'start_recording': True,
                  'context_given': False,
                  'context_parent': None,
                  'attributes': [('code.function.name', True),
                                 ('monitor.process_group', 'contract'),
                                 ('code.file.path', True),
                                 ('code.line.number', True),
                                 ('monitor.input.n', 3),
                                 ('monitor.input.label', "'b'"),
                                 ('monitor.local_parent_span_id', 'local_root'),
                                 ('monitor.output.return', "{'n': 3}")],
                  'events': [],
                  'status': ('UNSET', ''),
                  'ordered_times': True,
                  'store': (True, True, 'OK', 'ok', 'local_root')},
                 {'name': 'request',
                  'kind': 'INTERNAL',
                  'trace': 0,
                  'parent': None,
                  'start_attributes': [],
                  'start_parent': None,
                  'start_recording': True,
                  'context_given': False,
                  'context_parent': None,
                  'attributes': [],
                  'events': [],
                  'status': ('UNSET', ''),
                  'ordered_times': True},
                 {'name': 'inner',
                  'kind': 'INTERNAL',
                  'trace': 1,
                  'parent': 'local_alone',
                  'start_attributes': [('code.function.name', True),
                                       ('monitor.process_group', 'contract'),
                                       ('code.file.path', True),
                                       ('code.line.number', True),
                                       ('monitor.input.n', 4),
                                       ('monitor.input.label', "'c'"),
                                       ('monitor.local_parent_span_id', 'local_alone')],
                  'start_parent': 'local_alone',
                  'start_recording': True,
                  'context_given': True,
                  'context_parent': 'local_alone',
                  'attributes': [('code.function.name', True),
                                 ('monitor.process_group', 'contract'),
                                 ('code.file.path', True),
                                 ('code.line.number', True),
                                 ('monitor.input.n', 4),
                                 ('monitor.input.label', "'c'"),
                                 ('monitor.local_parent_span_id', 'local_alone'),
                                 ('monitor.output.return', "{'n': 4}")],
                  'events': [],
                  'status': ('UNSET', ''),
                  'ordered_times': True,
                  'store': (True, True, 'OK', 'ok', 'local_alone')},
                 {'name': 'unsampled',
                  'kind': 'INTERNAL',
                  'trace': 2,
                  'parent': None,
                  'start_attributes': [('code.function.name', True),
                                       ('monitor.process_group', 'contract'),
                                       ('code.file.path', True),
                                       ('code.line.number', True),
                                       ('monitor.input.key', "'missing'")],
                  'start_parent': None,
                  'start_recording': True,
                  'context_given': False,
                  'context_parent': None,
                  'attributes': [('code.function.name', True),
                                 ('monitor.process_group', 'contract'),
                                 ('code.file.path', True),
                                 ('code.line.number', True),
                                 ('monitor.input.key', "'missing'")],
                  'events': [('exception',
                              [('exception.type', 'KeyError'),
                               ('exception.message', "'missing'"),
                               ('exception.stacktrace', ['unsampled', "KeyError: 'missing'"])],
                              True)],
                  'status': ('ERROR', "KeyError: 'missing'"),
                  'ordered_times': True,
                  'store': (True, False, 'ERR', 'error', None)}]

EXPECTED_ASYNC = [{'name': 'halved',
                   'kind': 'INTERNAL',
                   'trace': 0,
                   'parent': 'counting',
                   'start_attributes': [('code.function.name', True),
                                        ('monitor.process_group', 'contract'),
                                        ('code.file.path', True),
                                        ('code.line.number', True),
                                        ('monitor.input.x', 0)],
                   'start_parent': 'counting',
                   'start_recording': True,
                   'context_given': False,
                   'context_parent': None,
                   'attributes': [('code.function.name', True),
                                  ('monitor.process_group', 'contract'),
                                  ('code.file.path', True),
                                  ('code.line.number', True),
                                  ('monitor.input.x', 0),
                                  ('monitor.sample.weight', 2.0),
                                  ('monitor.output.return', 0)],
                   'events': [],
                   'status': ('UNSET', ''),
                   'ordered_times': True,
                   'store': (True, True, 'OK', 'ok', 'counting')},
                  {'name': 'halved',
                   'kind': 'INTERNAL',
                   'trace': 0,
                   'parent': 'counting',
                   'start_attributes': [('code.function.name', True),
                                        ('monitor.process_group', 'contract'),
                                        ('code.file.path', True),
                                        ('code.line.number', True),
                                        ('monitor.input.x', 1)],
                   'start_parent': 'counting',
                   'start_recording': True,
                   'context_given': False,
                   'context_parent': None,
                   'attributes': [('code.function.name', True),
                                  ('monitor.process_group', 'contract'),
                                  ('code.file.path', True),
                                  ('code.line.number', True),
                                  ('monitor.input.x', 1),
                                  ('monitor.sample.weight', 2.0),
                                  ('monitor.output.return', 2)],
                   'events': [],
                   'status': ('UNSET', ''),
                   'ordered_times': True,
                   'store': (True, True, 'OK', 'ok', 'counting')},
                  {'name': 'counting',
                   'kind': 'INTERNAL',
                   'trace': 0,
                   'parent': None,
                   'start_attributes': [('code.function.name', True),
                                        ('monitor.process_group', 'contract'),
                                        ('code.file.path', True),
                                        ('code.line.number', True),
                                        ('monitor.input.n', 2)],
                   'start_parent': None,
                   'start_recording': True,
                   'context_given': False,
                   'context_parent': None,
                   'attributes': [('code.function.name', True),
                                  ('monitor.process_group', 'contract'),
                                  ('code.file.path', True),
                                  ('code.line.number', True),
                                  ('monitor.input.n', 2),
                                  ('monitor.output.yield[0]', 0),
                                  ('monitor.output.yield[1]', 2),
                                  ('monitor.output.yield_count', 2),
                                  ('monitor.output.return', "'done'")],
                   'events': [],
                   'status': ('UNSET', ''),
                   'ordered_times': True,
                   'store': (True, True, 'OK', 'ok', None)},
                  {'name': 'GET',
                   'kind': 'INTERNAL',
                   'trace': 1,
                   'parent': 'fetch',
                   'start_attributes': [],
                   'start_parent': 'fetch',
                   'start_recording': True,
                   'context_given': False,
                   'context_parent': None,
                   'attributes': [],
                   'events': [],
                   'status': ('UNSET', ''),
                   'ordered_times': True},
                  {'name': 'fetch',
                   'kind': 'INTERNAL',
                   'trace': 1,
                   'parent': 'stream',
                   'start_attributes': [('code.function.name', True),
                                        ('monitor.process_group', 'contract'),
                                        ('code.file.path', True),
                                        ('code.line.number', True),
                                        ('monitor.input.url', "''")],
                   'start_parent': 'stream',
                   'start_recording': True,
                   'context_given': False,
                   'context_parent': None,
                   'attributes': [('code.function.name', True),
                                  ('monitor.process_group', 'contract'),
                                  ('code.file.path', True),
                                  ('code.line.number', True),
                                  ('monitor.input.url', "''"),
                                  ('monitor.output.return', 0)],
                   'events': [],
                   'status': ('UNSET', ''),
                   'ordered_times': True,
                   'store': (True, True, 'OK', 'ok', 'stream')},
                  {'name': 'GET',
                   'kind': 'INTERNAL',
                   'trace': 1,
                   'parent': 'fetch',
                   'start_attributes': [],
                   'start_parent': 'fetch',
                   'start_recording': True,
                   'context_given': False,
                   'context_parent': None,
                   'attributes': [],
                   'events': [],
                   'status': ('UNSET', ''),
                   'ordered_times': True},
                  {'name': 'fetch',
                   'kind': 'INTERNAL',
                   'trace': 1,
                   'parent': 'stream',
                   'start_attributes': [('code.function.name', True),
                                        ('monitor.process_group', 'contract'),
                                        ('code.file.path', True),
                                        ('code.line.number', True),
                                        ('monitor.input.url', "'u'")],
                   'start_parent': 'stream',
                   'start_recording': True,
                   'context_given': False,
                   'context_parent': None,
                   'attributes': [('code.function.name', True),
                                  ('monitor.process_group', 'contract'),
                                  ('code.file.path', True),
                                  ('code.line.number', True),
                                  ('monitor.input.url', "'u'"),
                                  ('monitor.output.return', 1)],
                   'events': [],
                   'status': ('UNSET', ''),
                   'ordered_times': True,
                   'store': (True, True, 'OK', 'ok', 'stream')},
                  {'name': 'stream',
                   'kind': 'INTERNAL',
                   'trace': 1,
                   'parent': None,
                   'start_attributes': [('code.function.name', True),
                                        ('monitor.process_group', 'contract'),
                                        ('code.file.path', True),
                                        ('code.line.number', True),
                                        ('monitor.input.n', 2)],
                   'start_parent': None,
                   'start_recording': True,
                   'context_given': False,
                   'context_parent': None,
                   'attributes': [('code.function.name', True),
                                  ('monitor.process_group', 'contract'),
                                  ('code.file.path', True),
                                  ('code.line.number', True),
                                  ('monitor.input.n', 2),
                                  ('monitor.output.yield[0]', 0),
                                  ('monitor.output.yield[1]', 1),
                                  ('monitor.output.yield_count', 2),
                                  ('monitor.output.return', 'None')],
                   'events': [],
                   'status': ('UNSET', ''),
                   'ordered_times': True,
                   'store': (True, True, 'OK', 'ok', None)},
                  {'name': 'slow',
                   'kind': 'INTERNAL',
                   'trace': 2,
                   'parent': None,
                   'start_attributes': [('code.function.name', True),
                                        ('monitor.process_group', 'contract'),
                                        ('code.file.path', True),
                                        ('code.line.number', True)],
                   'start_parent': None,
                   'start_recording': True,
                   'context_given': False,
                   'context_parent': None,
                   'attributes': [('code.function.name', True),
                                  ('monitor.process_group', 'contract'),
                                  ('code.file.path', True),
                                  ('code.line.number', True),
                                  ('monitor.outcome', 'cancelled')],
                   'events': [],
                   'status': ('UNSET', ''),
                   'ordered_times': True,
                   'store': (True, True, 'OK', 'cancelled', None)}]
