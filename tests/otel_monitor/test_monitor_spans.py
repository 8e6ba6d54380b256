"""Nesting and OpenTelemetry: parent/child chains across local (``otel_span=False``)
and OTel (``otel_span=True``) calls, nesting under spans of other instrumentation,
the application's own TracerProvider kept, and the attributes and exception event of
the spans the decorator emits."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import otel_monitor
from otel_monitor import monitor

from monitor_helpers import Store, process_name

_MEMORY: InMemorySpanExporter | None = None


@pytest.fixture
def spans(store) -> InMemorySpanExporter:
    """An in-memory exporter behind a SimpleSpanProcessor on the global provider (added
    once per process: a provider cannot drop a processor), emptied for each test."""
    global _MEMORY
    provider = trace.get_tracer_provider()
    assert hasattr(provider, "add_span_processor"), "configure() installs an SDK provider"
    if _MEMORY is None:
        _MEMORY = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(_MEMORY))
    _MEMORY.clear()
    yield _MEMORY
    _MEMORY.clear()


def _finished(exporter: InMemorySpanExporter, fn) -> list:
    return [s for s in exporter.get_finished_spans() if s.name == process_name(fn)]


# -- nesting in the store --------------------------------------------------------------------

@pytest.mark.parametrize("kinds", [
    (False, False, False), (True, True, True), (False, True, False), (True, False, True),
    (False, False, True), (True, True, False), (False, True, True), (True, False, False),
], ids=lambda k: "-".join("otel" if x else "local" for x in k))
def test_nested_monitored_calls_form_a_parent_chain_in_one_trace(store, kinds):
    outer_span, middle_span, inner_span = kinds

    @monitor("nesting", otel_span=inner_span)
    def inner(x):
        return x + 1

    @monitor("nesting", otel_span=middle_span)
    def middle(x):
        return inner(x) * 2

    @monitor("nesting", otel_span=outer_span)
    def outer(x):
        return middle(x) + 3

    assert outer(1) == 7

    o, m, i = store.call(outer), store.call(middle), store.call(inner)
    assert o["parent_span_id"] is None
    assert m["parent_span_id"] == o["span_id"]
    assert i["parent_span_id"] == m["span_id"]
    assert o["trace_id"] == m["trace_id"] == i["trace_id"]
    assert len({o["span_id"], m["span_id"], i["span_id"]}) == 3
    assert store.values(i) == {"x": "1", "return": "2"}


def test_sibling_calls_share_the_parent_and_separate_roots_get_separate_traces(store):
    @monitor("nesting")
    def leaf(x):
        return x

    @monitor("nesting", otel_span=True)
    def root():
        return [leaf(1), leaf(2)]

    root()
    root()
    roots = store.calls(root)
    leaves = store.calls(leaf)
    assert len(roots) == 2 and len(leaves) == 4
    assert roots[0]["trace_id"] != roots[1]["trace_id"]
    for r in roots:
        children = [c for c in leaves if c["parent_span_id"] == r["span_id"]]
        assert len(children) == 2
        assert {c["trace_id"] for c in children} == {r["trace_id"]}


async def test_concurrent_child_tasks_nest_under_the_awaiting_call(store):
    @monitor("nesting")
    async def child(x):
        await asyncio.sleep(0.001)
        return x

    @monitor("nesting")
    async def parent():
        return await asyncio.gather(child(1), child(2), child(3))

    assert await parent() == [1, 2, 3]
    p = store.call(parent)
    children = store.calls(child)
    assert len(children) == 3
    assert {c["parent_span_id"] for c in children} == {p["span_id"]}
    assert {c["trace_id"] for c in children} == {p["trace_id"]}


def test_generator_is_the_parent_only_of_calls_made_by_its_own_code(store):
    @monitor("nesting")
    def helper(x):
        return x

    @monitor("nesting")
    def produce():
        yield helper("inside")
        yield helper("inside")

    for item in produce():
        helper(f"consumer got {item}")

    gen = store.call(produce)
    calls = store.calls(helper)
    inside = [c for c in calls if store.values(c)["x"] == "'inside'"]
    outside = [c for c in calls if store.values(c)["x"] != "'inside'"]
    assert len(inside) == 2 and len(outside) == 2
    assert {c["parent_span_id"] for c in inside} == {gen["span_id"]}
    assert {c["parent_span_id"] for c in outside} == {None}


async def test_async_generator_is_the_parent_only_of_calls_made_by_its_own_code(store):
    @monitor("nesting")
    def helper(x):
        return x

    @monitor("nesting")
    async def produce():
        yield helper("inside")

    async for _ in produce():
        helper("outside")

    gen = store.call(produce)
    by_value = {store.values(c)["x"]: c for c in store.calls(helper)}
    assert by_value["'inside'"]["parent_span_id"] == gen["span_id"]
    assert by_value["'outside'"]["parent_span_id"] is None


# -- spans of other instrumentation ---------------------------------------------------------

@pytest.mark.parametrize("otel_span", [True, False])
def test_monitored_call_nests_under_a_span_of_other_instrumentation(store, otel_span):
    @monitor("nesting", otel_span=otel_span)
    def handler(path):
        return 200

    tracer = trace.get_tracer("some.web.framework")
    with tracer.start_as_current_span("request") as request:
        assert handler("/price") == 200
    ctx = request.get_span_context()

    call = store.call(handler)
    assert call["trace_id"] == "%032x" % ctx.trace_id
    assert call["parent_span_id"] == "%016x" % ctx.span_id
    # the request span itself lands in the store: a process row without data rows
    req = store.call("request")
    assert req["span_id"] == "%016x" % ctx.span_id
    assert req["parent_span_id"] is None
    assert req["status"] == "OK"
    assert store.data(req) == []


def test_local_root_under_baggage_alone_starts_its_own_trace(store):
    # An OTel context holding no span (baggage only) is not a trace to join.
    from opentelemetry import baggage, context

    @monitor("nesting")
    def handler(path):
        return 200

    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        handler("/a")
        handler("/b")
    finally:
        context.detach(token)
    first, second = store.calls(handler)
    assert first["parent_span_id"] is None and second["parent_span_id"] is None
    assert first["trace_id"] != second["trace_id"]
    assert int(first["trace_id"], 16) and int(second["trace_id"], 16)


def test_otel_span_call_is_the_current_span_for_other_instrumentation_inside_it(store, spans):
    tracer = trace.get_tracer("some.http.client")

    @monitor("nesting", otel_span=True)
    def fetch(url):
        with tracer.start_as_current_span("GET"):
            return "body"

    fetch("http://quotes")
    call = store.call(fetch)
    get = store.call("GET")
    assert get["parent_span_id"] == call["span_id"]
    assert get["trace_id"] == call["trace_id"]
    (span,) = [s for s in spans.get_finished_spans() if s.name == "GET"]
    assert "%016x" % span.parent.span_id == call["span_id"]


# -- the spans the decorator emits -----------------------------------------------------------

def test_otel_span_carries_code_attributes_process_group_inputs_and_output(store, spans):
    @monitor("pricing", otel_span=True, mask=("api_key",))
    def price(spot, strike, api_key):
        return spot - strike

    assert price(101.5, 100.0, "k-123456") == 1.5

    (span,) = _finished(spans, price)
    attrs = dict(span.attributes)
    assert attrs["code.function.name"] == process_name(price)
    assert attrs["code.file.path"] == __file__
    assert attrs["code.line.number"] == price.__wrapped__.__code__.co_firstlineno
    assert attrs["monitor.process_group"] == "pricing"
    # numbers stay typed attributes; everything else is its bounded text
    assert attrs["monitor.input.spot"] == 101.5
    assert attrs["monitor.input.strike"] == 100.0
    assert attrs["monitor.input.api_key"].startswith("<HASHED:")
    assert "k-123456" not in json.dumps(attrs)
    assert attrs["monitor.output.return"] == 1.5
    assert span.status.status_code is not StatusCode.ERROR
    assert span.kind is trace.SpanKind.INTERNAL
    # the store has the same call, once
    call = store.call(price)
    assert call["span_id"] == "%016x" % span.context.span_id
    assert call["trace_id"] == "%032x" % span.context.trace_id


def test_otel_span_text_attributes_are_bounded_reprs(store, spans):
    @monitor("pricing", otel_span=True)
    def label(ccy, legs):
        return {"label": ccy.upper()}

    label("eur", [1, 2])
    (span,) = _finished(spans, label)
    assert span.attributes["monitor.input.ccy"] == "'eur'"
    assert span.attributes["monitor.input.legs"] == "[1, 2]"
    assert span.attributes["monitor.output.return"] == "{'label': 'EUR'}"
    assert store.values(store.call(label)) == {"ccy": "'eur'", "legs": "[1, 2]",
                                               "return": "{'label': 'EUR'}"}


def test_otel_span_error_has_status_error_and_an_exception_event(store, spans):
    secret = "span-secret-token-99"

    @monitor("pricing", otel_span=True)
    def price(spot, token):
        raise ArithmeticError(f"cannot price {spot} with {token}")

    with pytest.raises(ArithmeticError):
        price(7, secret)

    (span,) = _finished(spans, price)
    assert span.status.status_code is StatusCode.ERROR
    assert "monitor.output.return" not in span.attributes
    events = [e for e in span.events if e.name == "exception"]
    assert len(events) == 1
    ea = events[0].attributes
    assert ea["exception.type"] == "ArithmeticError"
    assert ea["exception.message"].startswith("cannot price 7 with <HASHED:")
    assert "Traceback (most recent call last)" in ea["exception.stacktrace"]
    assert "raise ArithmeticError" in ea["exception.stacktrace"]
    for text in (ea["exception.message"], ea["exception.stacktrace"],
                 span.status.description or "", json.dumps(dict(span.attributes))):
        assert secret not in text
    assert store.call(price)["status"] == "ERR"


def test_otel_span_cancelled_is_not_an_error_and_says_so(store, spans):
    @monitor("nesting", otel_span=True)
    async def slow():
        await asyncio.sleep(3600)

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow(), 0.01)

    asyncio.run(main())
    (span,) = _finished(spans, slow)
    assert span.status.status_code is not StatusCode.ERROR
    assert span.attributes["monitor.outcome"] == "cancelled"
    assert store.call(slow)["outcome"] == "cancelled"


def test_otel_span_false_calls_never_leave_the_process(store, spans):
    @monitor("nesting", otel_span=False)
    def local_only(x):
        return x

    @monitor("nesting", otel_span=True)
    def exported(x):
        return local_only(x)

    exported(1)
    assert _finished(spans, local_only) == []
    assert len(_finished(spans, exported)) == 1
    assert store.call(local_only)["parent_span_id"] == store.call(exported)["span_id"]


def test_otel_span_under_a_local_call_keeps_its_trace_id_in_otel_too(store, spans):
    @monitor("nesting", otel_span=True)
    def exported():
        return 1

    @monitor("nesting", otel_span=False)
    def local_root():
        return exported()

    local_root()
    (span,) = _finished(spans, exported)
    root = store.call(local_root)
    assert "%032x" % span.context.trace_id == root["trace_id"]
    assert span.attributes["monitor.local_parent_span_id"] == root["span_id"]
    assert store.call(exported)["parent_span_id"] == root["span_id"]


def test_reconfigure_does_not_queue_spans_of_other_instrumentation_twice(tmp_path):
    otel_monitor.configure(db_path=tmp_path / "first.db", flush_interval_s=0.05)
    otel_monitor.configure(db_path=tmp_path / "second.db", flush_interval_s=60)
    try:
        tracer = trace.get_tracer("some.web.framework")
        for i in range(5):
            with tracer.start_as_current_span(f"request-{i}"):
                pass
        s = Store(tmp_path / "second.db")
        assert len(s.query("SELECT * FROM process_trace")) == 5
        (health,) = s.health()
        assert health["written"] == 5
    finally:
        otel_monitor.shutdown()


# -- the application's provider (a fresh interpreter: the global provider is set once) ------

_APP_PROVIDER_SCRIPT = textwrap.dedent("""
    import json, sys
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    app_provider = TracerProvider(resource=Resource.create({"service.name": "app-svc"}))
    memory = InMemorySpanExporter()
    app_provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(app_provider)

    import otel_monitor
    from otel_monitor import monitor

    otel_monitor.configure(db_path=sys.argv[1], flush_interval_s=0.05)

    @monitor("app", otel_span=True)
    def handle(x):
        return x * 2

    with trace.get_tracer("app.web").start_as_current_span("request"):
        handle(21)
    otel_monitor.force_flush()
    print(json.dumps({
        "kept": trace.get_tracer_provider() is app_provider,
        "app_exporter_saw": sorted(s.name for s in memory.get_finished_spans()),
    }))
    otel_monitor.shutdown()
""")


def test_application_tracer_provider_is_kept_and_gets_the_sqlite_exporter(tmp_path):
    db = tmp_path / "app.db"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_MONITOR_", "OTEL_EXPORTER_OTLP", "OTEL_SERVICE_NAME"))}
    proc = subprocess.run([sys.executable, "-c", _APP_PROVIDER_SCRIPT, str(db)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["kept"] is True
    assert report["app_exporter_saw"] == ["__main__.handle", "request"]

    s = Store(db)
    request = s.call("request")
    handle = s.call("__main__.handle")
    assert handle["parent_span_id"] == request["span_id"]
    assert handle["trace_id"] == request["trace_id"]
    assert request["service_name"] == handle["service_name"] == "app-svc"
    assert s.values(handle) == {"x": "21", "return": "42"}


# -- semantic conventions --------------------------------------------------------------------

def _semconv_attributes() -> dict[str, bool]:
    """Every attribute name the installed opentelemetry-semantic-conventions defines (its
    stable and incubating ``attributes`` modules), mapped to whether it is deprecated
    (the constant's docstring says so: they are read from the source)."""
    import ast
    import pathlib

    import opentelemetry.semconv as semconv

    root = pathlib.Path(semconv.__file__).parent
    found: dict[str, bool] = {}
    for path in [*root.glob("attributes/*.py"), *root.glob("_incubating/attributes/*.py")]:
        body = ast.parse(path.read_text()).body
        for node, after in zip(body, [*body[1:], None]):
            value = getattr(node, "value", None)
            if not (isinstance(node, (ast.Assign, ast.AnnAssign)) and
                    isinstance(value, ast.Constant) and isinstance(value.value, str)):
                continue
            doc = (after.value.value if isinstance(after, ast.Expr) and
                   isinstance(after.value, ast.Constant) else "") or ""
            deprecated = str(doc).strip().startswith("Deprecated")
            found[value.value] = found.get(value.value, True) and deprecated
    return found


def test_every_otel_attribute_the_decorator_writes_is_a_current_semconv_name(store, spans):
    """Each attribute name outside otel-monitor's own ``monitor.*`` namespace, on the
    spans and span events the decorator emits (OK, failed, cancelled, generator), is a
    constant of opentelemetry-semantic-conventions and not a deprecated one."""
    from exporters import columns as C

    @monitor("semconv", otel_span=True)
    def ok(x):
        return x

    @monitor("semconv", otel_span=True)
    def fails(text):
        return json.loads(text)

    @monitor("semconv", otel_span=True)
    def gen(n):
        yield from range(n)

    @monitor("semconv", otel_span=True)
    async def slow():
        await asyncio.sleep(10)

    async def cancel():
        task = asyncio.ensure_future(slow())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    ok(1)
    with pytest.raises(json.JSONDecodeError):
        fails("{")
    list(gen(2))
    asyncio.run(cancel())
    written: set[str] = set()
    for span in spans.get_finished_spans():
        written |= set(span.attributes or {})
        for event in span.events:
            written |= set(event.attributes or {})
    written |= {getattr(C, n) for n in dir(C) if n.startswith("ATTR_")}
    ours = {n for n in written if not n.startswith("monitor.")}
    assert {"code.function.name", "exception.type", "exception.stacktrace"} <= ours
    known = _semconv_attributes()
    assert {n for n in ours if n not in known} == set()
    assert {n for n in ours if known[n]} == set()  # deprecated (exception.escaped was)


def test_exception_type_is_fully_qualified_like_the_sdk_writes_it(store, spans):
    """``exception.type`` is ``module.qualname`` (builtins bare), as the SDK's own
    ``record_exception`` writes it; the store's exception_type is the same name (so a
    call received over OTLP from any Python SDK reads as a local one)."""
    @monitor("semconv", otel_span=True)
    def parse(text):
        return json.loads(text)

    @monitor("semconv", otel_span=True)
    def check(x):
        raise ValueError(x)

    with pytest.raises(json.JSONDecodeError):
        parse("{")
    with pytest.raises(ValueError):
        check(1)
    sdk = trace.get_tracer_provider().get_tracer("reference")
    for exc in (json.JSONDecodeError("x", "{", 1), ValueError(1)):
        with sdk.start_as_current_span("reference") as span:
            span.record_exception(exc)
    reference = [e.attributes["exception.type"] for s in spans.get_finished_spans()
                 if s.name == "reference" for e in s.events]
    assert reference == ["json.decoder.JSONDecodeError", "ValueError"]
    for fn, expected in ((parse, "json.decoder.JSONDecodeError"), (check, "ValueError")):
        (span,) = _finished(spans, fn)
        (event,) = [e for e in span.events if e.name == "exception"]
        assert event.attributes["exception.type"] == expected
        assert "exception.escaped" not in event.attributes
        assert span.status.description.startswith(expected + ": ")
        assert store.call(fn)["exception_type"] == expected


def test_auto_sampled_spans_are_only_the_kept_calls_with_their_weight(store, spans,
                                                                      monkeypatch):
    # sample="auto" with otel_span=True: a span is made at the end of a kept call only
    # (start time the call's), nested under the caller's span, with its weight as
    # monitor.sample.weight when it is not 1; the store holds the same weight.
    from otel_monitor import _wrappers

    now = [1_800_000_000_000_000_000]
    monkeypatch.setattr(_wrappers, "_time_ns", lambda: now[0])

    @monitor("spans", sample="auto", target_per_s=10, otel_span=True)
    def work(x):
        now[0] += 1_000_000  # 1 ms a call: 1,000 calls a second
        return x

    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        for i in range(5_000):
            work(i)

    finished = _finished(spans, work)
    rows = store.calls(work)
    assert 0 < len(finished) == len(rows) < 200
    assert {s.context.span_id for s in finished} == {int(r["span_id"], 16) for r in rows}
    assert all(s.parent.span_id == request.get_span_context().span_id for s in finished)
    weights = {s.context.span_id: s.attributes.get("monitor.sample.weight")
               for s in finished}
    assert any(w is not None and w > 1 for w in weights.values())
    stored = {int(r["span_id"], 16): r["weight"] for r in store.query(
        "SELECT printf('%016x', s.span_id & 0xFFFFFFFFFFFFFFFF) AS span_id, s.weight "
        "FROM spans s JOIN processes p ON p.id = s.process_id WHERE p.name = ?",
        (process_name(work),))}
    assert stored == weights
    first = min(finished, key=lambda s: s.start_time)
    assert first.end_time - first.start_time == 1_000_000


class _Interrupted(BaseException):
    """What a signal handler might raise while the decorator records a result."""


def test_otel_span_is_ended_even_when_recording_its_result_fails(store, spans,
                                                                   monkeypatch):
    """The call's value is the caller's; the span must still end (else the
    application's exporters never see it and its context leaks)."""
    from otel_monitor.pipeline import PIPELINE

    @monitor("g", otel_span=True)
    def answer():
        return 42

    answer()  # configured, with a span, before the formatter breaks
    assert len(spans.get_finished_spans()) == 1

    def broken_format(value, *_):
        raise _Interrupted()

    monkeypatch.setattr(PIPELINE, "format", broken_format)
    assert answer() == 42
    assert len(spans.get_finished_spans()) == 2
    assert trace.get_current_span() is trace.INVALID_SPAN  # its context was left


def test_failed_otel_span_is_ended_even_when_recording_the_failure_fails(store, spans,
                                                                         monkeypatch):
    from otel_monitor import _recorders

    @monitor("g", otel_span=True)
    def boom():
        raise KeyError("k")

    def broken_error(*_args, **_kwargs):
        raise _Interrupted()

    monkeypatch.setattr(_recorders.SpanRecorder, "_error", broken_error)
    with pytest.raises(KeyError):
        boom()
    assert len(spans.get_finished_spans()) == 1
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_generator_otel_span_is_ended_even_when_recording_its_result_fails(store, spans,
                                                                           monkeypatch):
    from otel_monitor import _recorders

    @monitor("g", otel_span=True)
    def numbers():
        yield 1
        return 2

    def broken_output(*_args, **_kwargs):
        raise _Interrupted()

    monkeypatch.setattr(_recorders.SpanRecorder, "_output", broken_output)
    assert list(numbers()) == [1]
    assert len(spans.get_finished_spans()) == 1
