"""The hot path in C (``otel_monitor/_fastcall.c``) against its Python twin.

Every call of a plain function kept with ``otel_span=False`` goes through
``_fastcall.MonitoredFunction`` when the package is installed (``pip install`` builds
it). ``_wrappers._python_inline_wrapper`` does the same steps in Python and stays the
fallback; the same calls made through each must give the same rows, and the C wrapper
must behave as a function (bind as a method, pickle, keep its metadata) and leak
nothing.
"""
from __future__ import annotations

import ast
import gc
import pickle
import sys
import weakref

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_monitor
from otel_monitor import _wrappers, monitor

IMPLEMENTATIONS = ["c", "python"]


@pytest.fixture(params=IMPLEMENTATIONS)
def hot_path(request, monkeypatch):
    """Decorations made under this fixture use the C wrapper, or the Python one."""
    if request.param == "python":
        monkeypatch.setattr(_wrappers, "MonitoredFunction", None)
    return request.param


def test_the_c_wrapper_is_built_and_is_the_hot_path():
    # An install that failed to build it falls back to Python quietly: CI must not.
    assert _wrappers.MonitoredFunction is not None, "otel_monitor._fastcall is not built"

    def f(x):
        return x

    assert type(monitor("g")(f)).__name__ == "MonitoredFunction"
    assert type(monitor("g", sample=0.5)(f)).__name__ == "function"  # not the hot path
    assert type(monitor("g", otel_span=True)(f)).__name__ == "function"


class Secret:
    def __repr__(self):
        return "Secret()"


def nested_inner(a, b=2):
    return a * b


def _rows(store, fn) -> list[tuple]:
    """What each call of ``fn`` left in the store, without ids and clocks."""
    out = []
    for call in store.calls(fn):
        data = [(r["data"], r["data_type"], r["data_value"]) for r in store.data(call)]
        out.append((call["status"], call["exception_type"], data))
    return out


def _scenario(store, implementation: str) -> dict:
    """The same calls, decorated under ``implementation``; returns what was stored."""
    def inner(a, b=2):
        return a * b

    inner.__qualname__ = f"inner_{implementation}"  # before decorating: the process name
    inner = monitor("fast", mask=["b"])(inner)

    def outer(x, y, *rest, token="t0", **options):
        inner(x, b=3)
        if options.get("fail"):
            raise ValueError(f"bad {x}")
        return {"sum": x + y, "rest": rest}

    outer.__qualname__ = f"outer_{implementation}"
    outer = monitor("fast", mask=["token"])(outer)

    def plain(spot, strike, vol, t):
        return spot * 0.5 + strike * 0.25 + vol * t

    plain.__qualname__ = f"plain_{implementation}"
    plain = monitor("fast")(plain)

    def quiet(x):
        return [x]

    quiet.__qualname__ = f"quiet_{implementation}"
    quiet = monitor("fast", log_inputs=False, log_outputs=False)(quiet)

    assert plain(100.0, 95, 0.2, True) == 100.0 * 0.5 + 95 * 0.25 + 0.2
    assert plain(1.5, 2.5, 0.0, 1.0) == 0.75 + 0.625
    assert outer(1, 2, 3, 4, token="hunter22", note="n") == {"sum": 3, "rest": (3, 4)}
    secret = Secret()
    assert outer("a", "b", secret) == {"sum": "ab", "rest": (secret,)}
    with pytest.raises(ValueError, match="bad 7") as raised:
        outer(7, 1, fail=True)
    assert raised.value.__traceback__ is not None
    assert quiet(5) == [5]
    rows = {name: _rows(store, f"{__name__}.{name}_{implementation}")
            for name in ("plain", "outer", "inner", "quiet")}
    return rows


def test_c_and_python_wrappers_store_the_same_rows(store, monkeypatch):
    from_c = _scenario(store, "c")
    monkeypatch.setattr(_wrappers, "MonitoredFunction", None)
    from_python = _scenario(store, "python")
    assert from_c == from_python
    # and what they stored is what the calls were
    assert [d for d in from_c["plain"][0][2]] == [
        ("spot", "INPUT", "100.0"), ("strike", "INPUT", "95"), ("vol", "INPUT", "0.2"),
        ("t", "INPUT", "True"), ("return", "OUTPUT", str(100.0 * 0.5 + 95 * 0.25 + 0.2))]
    statuses = [(s, t) for s, t, _ in from_c["outer"]]
    assert statuses == [("OK", None), ("OK", None), ("ERR", "ValueError")]
    assert "hunter22" not in repr(from_c)
    assert from_c["quiet"] == [("OK", None, [])]


def test_nested_calls_and_an_otel_span_give_the_trace_and_parent(store, hot_path):
    inner = monitor("fast")(nested_inner)

    @monitor("fast")
    def outer(x):
        return inner(x)

    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as request_span:
        outer(2)
    outer(3)
    ctx = request_span.get_span_context()
    first, second = store.calls(outer)
    inner_first, inner_second = store.calls(nested_inner)
    assert first["trace_id"] == format(ctx.trace_id, "032x")
    assert first["parent_span_id"] == format(ctx.span_id, "016x")
    assert inner_first["trace_id"] == first["trace_id"]
    assert inner_first["parent_span_id"] == first["span_id"]
    assert second["trace_id"] != first["trace_id"]  # a root of its own
    assert second["parent_span_id"] in (None, "0" * 16)
    assert inner_second["parent_span_id"] == second["span_id"]


def test_a_failing_call_reraises_the_same_object_and_leaves_its_context(store, hot_path):
    from otel_monitor._context import CURRENT

    error = KeyError("k")

    @monitor("fast")
    def boom(x):
        raise error

    before = CURRENT.get()
    with pytest.raises(KeyError) as raised:
        boom(1)
    assert raised.value is error
    assert CURRENT.get() is before
    call = store.call(boom)
    assert call["status"] == "ERR"
    assert "raise error" in call["exception"]  # the function's own line, in the traceback


def test_an_argument_whose_repr_raises_systemexit_loses_nothing_of_the_call(store, hot_path):
    class Hostile:
        def __repr__(self):
            raise SystemExit("repr")

    @monitor("fast")
    def f(x, y):
        return 42

    assert f(Hostile(), 1) == 42
    assert f(1, 2) == 42
    assert len(store.calls(f)) >= 1  # the second call at least; nothing raised


def test_the_c_wrapper_binds_pickles_and_weakrefs_like_a_function(store):
    assert type(PICKLED).__name__ == "MonitoredFunction"
    assert pickle.loads(pickle.dumps(PICKLED)) is PICKLED
    assert pickle.loads(pickle.dumps(Holder.method)) is Holder.method
    assert Holder().method(2) == ("bound", 2)
    assert Holder.method(Holder(), 3) == ("bound", 3)
    ref = weakref.ref(PICKLED)
    assert ref() is PICKLED
    assert PICKLED(4) == 8
    assert "pickled" in repr(PICKLED)


@monitor("fast")
def pickled(x):
    return 2 * x


PICKLED = pickled


class Holder:
    @monitor("fast")
    def method(self, x):
        return ("bound", x)


@pytest.mark.skipif(not hasattr(sys, "getrefcount"), reason="CPython only")
def test_the_c_wrapper_leaks_no_reference_to_arguments_results_or_errors(store):
    argument, result = object(), object()
    error = RuntimeError("e")

    @monitor("fast", log_inputs=False, log_outputs=False)
    def keep(x, *, y=None):
        return result

    @monitor("fast", log_inputs=False)
    def fail(x):
        raise error

    def refs() -> tuple[int, int, int]:
        assert otel_monitor.force_flush(10)
        gc.collect()
        return sys.getrefcount(argument), sys.getrefcount(result), sys.getrefcount(error)

    for _ in range(10):  # warm up: anything cached once is cached now
        keep(argument, y=argument)
    before = refs()
    for _ in range(2000):
        assert keep(argument, y=argument) is result
        try:
            fail(argument)
        except RuntimeError as exc:
            assert exc is error
        error.__traceback__ = None
    assert refs() == before


@pytest.mark.skipif(not hasattr(sys, "getrefcount"), reason="CPython only")
def test_a_dropped_c_wrapper_is_freed_with_all_it_holds(store):
    def plain(x):
        return x

    wrapper_type = type(monitor("fast")(plain))
    gc.collect()
    before = sys.getrefcount(wrapper_type), sys.getrefcount(plain)
    for _ in range(200):
        wrapped = monitor("fast")(plain)
        ref = weakref.ref(wrapped)
        wrapped(1)
        del wrapped
    assert otel_monitor.force_flush(10)
    gc.collect()
    assert ref() is None
    assert (sys.getrefcount(wrapper_type), sys.getrefcount(plain)) == before


def test_ids_are_random_and_a_forked_child_never_repeats_its_parents(store, hot_path):
    import os

    from otel_monitor._context import CURRENT

    @monitor("fast")
    def ids():
        return CURRENT.get()[:2]  # (trace_id, span_id) of this call

    seen = [ids() for _ in range(2000)]
    assert len({t for t, _ in seen}) == len(seen) and len({s for _, s in seen}) == len(seen)
    assert all(0 < t < 1 << 128 and 0 < s < 1 << 64 for t, s in seen)
    assert max(t for t, _ in seen) >= 1 << 120  # all 128 bits drawn, not 64
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        try:
            os.write(write, repr([ids() for _ in range(5)]).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = ast.literal_eval(pipe.read())
    parent = [ids() for _ in range(5)]
    assert len(child) == 5 and not set(child) & set(parent)


def test_a_record_leaves_the_cyclic_gc_only_when_it_can_hold_no_cycle(store, monkeypatch):
    # Queued records of plain numbers are untracked as they are made (a long queue no
    # longer lengthens every collection); one holding a tracked container stays tracked.
    from otel_monitor._context import CURRENT
    from otel_monitor.pipeline import PIPELINE

    records, contexts = [], []
    monkeypatch.setattr(PIPELINE, "fast_limit", 0)  # every record through overflow():
    monkeypatch.setattr(PIPELINE, "overflow", records.append)  # seen here, unqueued

    @monitor("fast")
    def plain(a, b):
        contexts.append(CURRENT.get())
        return a + b

    @monitor("fast")
    def rendered(a, *, flag=None):
        return [a]

    assert plain(1.5, 2) == 3.5
    rendered([1], flag={"k": 1})
    plain_record, rendered_record = records

    def held(record):
        return [item for item in record if isinstance(item, tuple)]

    assert not gc.is_tracked(plain_record) and not gc.is_tracked(contexts[0])
    assert all(not gc.is_tracked(t) for t in held(plain_record))
    assert any(gc.is_tracked(t) for t in held(rendered_record))
    assert gc.is_tracked(rendered_record)
