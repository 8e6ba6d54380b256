"""Every kind of callable ``@monitor`` supports: plain functions, methods, static and
class methods (either decorator order), ``async def``, generators, async generators
and Dash callbacks; and what the wrapper keeps of the original (name, doc, signature,
kind)."""
from __future__ import annotations

import asyncio
import inspect

import pytest

from otel_monitor import monitor

from monitor_helpers import process_name


class Pricer:
    def __init__(self, rate):
        self.rate = rate

    def __repr__(self):
        return f"Pricer(rate={self.rate})"

    @monitor("methods")
    def method(self, x):
        return x * self.rate

    @monitor("methods")
    @staticmethod
    def static_outer(x):
        return x + 1

    @staticmethod
    @monitor("methods")
    def static_inner(x):
        return x + 2

    @monitor("methods")
    @classmethod
    def class_outer(cls, x):
        return f"{cls.__name__}:{x}"

    @classmethod
    @monitor("methods")
    def class_inner(cls, x):
        return f"{cls.__name__}/{x}"


class SubPricer(Pricer):
    pass


# -- functions and methods -----------------------------------------------------------

def test_plain_function_returns_its_result_and_is_recorded(store):
    @monitor("plain")
    def square(x):
        return x * x

    assert square(7) == 49
    assert store.values(store.call(square)) == {"x": "7", "return": "49"}


def test_method_binds_self_and_records_its_arguments_and_result(store):
    p = Pricer(3)
    assert p.method(2) == 6

    call = store.call(f"{__name__}.Pricer.method")
    values = store.values(call)
    assert values["x"] == "2"
    assert values["return"] == "6"


@pytest.mark.parametrize("name,expected", [
    ("static_outer", 11), ("static_inner", 12)])
def test_staticmethod_works_in_either_decorator_order_via_class_and_instance(store, name,
                                                                              expected):
    assert getattr(Pricer, name)(10) == expected
    assert getattr(Pricer(1), name)(10) == expected

    calls = store.calls(f"{__name__}.Pricer.{name}")
    assert len(calls) == 2
    for call in calls:
        assert store.values(call) == {"x": "10", "return": str(expected)}


@pytest.mark.parametrize("name,sep", [("class_outer", ":"), ("class_inner", "/")])
def test_classmethod_works_in_either_decorator_order_and_binds_the_subclass(store, name, sep):
    assert getattr(Pricer, name)(5) == f"Pricer{sep}5"
    assert getattr(SubPricer, name)(6) == f"SubPricer{sep}6"

    calls = store.calls(f"{__name__}.Pricer.{name}")
    assert len(calls) == 2
    assert [store.values(c)["x"] for c in calls] == ["5", "6"]
    assert [store.values(c)["return"] for c in calls] == [repr(f"Pricer{sep}5"),
                                                          repr(f"SubPricer{sep}6")]


# -- coroutines -------------------------------------------------------------------------

async def test_async_def_records_inputs_and_the_awaited_result(store):
    @monitor("async")
    async def fetch(x):
        await asyncio.sleep(0)
        return {"x": x}

    assert await fetch(21) == {"x": 21}
    call = store.call(fetch)
    assert call["status"] == "OK"
    assert store.values(call) == {"x": "21", "return": "{'x': 21}"}


async def test_async_def_exception_is_recorded_and_reraised_as_the_same_object(store):
    raised = []

    @monitor("async")
    async def fetch(x):
        await asyncio.sleep(0)
        raised.append(LookupError(f"no quote for {x}"))
        raise raised[0]

    with pytest.raises(LookupError) as info:
        await fetch("EURUSD")
    assert info.value is raised[0]

    call = store.call(fetch)
    assert call["status"] == "ERR"
    assert "LookupError: no quote for EURUSD" in call["exception"]
    assert [(r["data"], r["data_type"]) for r in store.data(call)] == [("x", "INPUT")]


async def test_concurrent_coroutines_are_separate_calls_with_their_own_values(store):
    @monitor("async")
    async def echo(x):
        await asyncio.sleep(0.001 * (5 - x))
        return x * 10

    assert await asyncio.gather(*(echo(i) for i in range(5))) == [0, 10, 20, 30, 40]
    calls = store.calls(echo)
    assert len(calls) == 5
    assert sorted((store.values(c)["x"], store.values(c)["return"]) for c in calls) == [
        (str(i), str(i * 10)) for i in range(5)]
    assert all(c["parent_span_id"] is None for c in calls)


# -- generators -------------------------------------------------------------------------

def test_generator_forwards_send_and_records_the_return_value(store):
    @monitor("gen")
    def accumulate(start):
        total = start
        while True:
            x = yield total
            if x is None:
                return total
            total += x

    g = accumulate(10)
    assert next(g) == 10
    assert g.send(5) == 15
    assert g.send(1) == 16
    with pytest.raises(StopIteration) as stop:
        g.send(None)
    assert stop.value.value == 16

    call = store.call(accumulate)
    assert call["status"] == "OK"
    assert call["outcome"] == "ok"
    assert store.values(call) == {"start": "10", "return": "16", "yield[0]": "10",
                                  "yield[1]": "15", "yield[2]": "16", "yield_count": "3"}


def test_generator_fully_consumed_yields_everything_and_records_once(store):
    @monitor("gen")
    def count(n):
        yield from range(n)
        return "done"

    assert list(count(4)) == [0, 1, 2, 3]
    call = store.call(count)
    assert call["outcome"] == "ok"
    assert store.values(call) == {"n": "4", "return": "'done'", "yield[0]": "0",
                                  "yield[1]": "1", "yield[2]": "2", "yield[3]": "3",
                                  "yield_count": "4"}


def test_generator_forwards_throw_to_a_generator_that_handles_it(store):
    @monitor("gen")
    def resilient():
        while True:
            try:
                yield "ready"
            except KeyError as exc:
                yield f"handled {exc.args[0]}"
                return "recovered"

    g = resilient()
    assert next(g) == "ready"
    assert g.throw(KeyError("k1")) == "handled k1"
    with pytest.raises(StopIteration) as stop:
        next(g)
    assert stop.value.value == "recovered"

    call = store.call(resilient)
    assert call["status"] == "OK"
    assert store.values(call) == {"return": "'recovered'", "yield[0]": "'ready'",
                                  "yield[1]": "'handled k1'", "yield_count": "2"}


def test_generator_throw_not_handled_is_reraised_as_the_same_object_and_recorded(store):
    @monitor("gen")
    def plain():
        yield 1
        yield 2

    g = plain()
    assert next(g) == 1
    err = ValueError("thrown in")
    with pytest.raises(ValueError) as info:
        g.throw(err)
    assert info.value is err

    call = store.call(plain)
    assert call["status"] == "ERR"
    assert call["outcome"] == "error"
    assert "ValueError: thrown in" in call["exception"]


def test_generator_raising_inside_its_body_is_recorded_as_error(store):
    @monitor("gen")
    def parse(lines):
        for line in lines:
            yield int(line)

    g = parse(["1", "x"])
    assert next(g) == 1
    with pytest.raises(ValueError, match="invalid literal"):
        next(g)

    call = store.call(parse)
    assert call["status"] == "ERR"
    assert "in parse" in call["exception"]
    assert "yield int(line)" in call["exception"]
    # issue 11: the yields seen before the failure are recorded, with their count
    assert [(r["data"], r["data_type"], r["data_value"]) for r in store.data(call)] == [
        ("lines", "INPUT", "['1', 'x']"), ("yield[0]", "OUTPUT", "1"),
        ("yield_count", "OUTPUT", "1")]


def test_generator_closed_early_runs_its_cleanup_and_is_recorded_closed_ok(store):
    cleanup = []

    @monitor("gen")
    def counter(n):
        try:
            for i in range(n):
                yield i
        finally:
            cleanup.append("cleaned up")

    g = counter(5)
    assert next(g) == 0
    assert next(g) == 1
    g.close()
    assert cleanup == ["cleaned up"]
    with pytest.raises(StopIteration):
        next(g)

    call = store.call(counter)
    assert call["outcome"] == "closed"
    assert call["status"] == "OK"
    assert call["exception"] is None
    # issue 11: the yields seen before the close are recorded, with their count
    assert [(r["data"], r["data_type"]) for r in store.data(call)] == [
        ("n", "INPUT"), ("yield[0]", "OUTPUT"), ("yield[1]", "OUTPUT"),
        ("yield_count", "OUTPUT")]


def test_generator_abandoned_in_a_for_loop_is_closed_and_recorded_closed(store):
    @monitor("gen")
    def naturals():
        i = 0
        while True:
            yield i
            i += 1

    for i in naturals():
        if i == 3:
            break
    # the loop's generator is unreachable now: CPython closes it at once

    call = store.call(naturals)
    assert call["outcome"] == "closed"
    assert call["status"] == "OK"


# -- async generators --------------------------------------------------------------------

async def test_async_generator_forwards_asend_athrow_and_aclose(store):
    cleanup = []

    @monitor("agen")
    async def ticker(start):
        value = start
        try:
            while True:
                try:
                    got = yield value
                except KeyError:
                    got = -value
                await asyncio.sleep(0)
                value += got or 0
        finally:
            cleanup.append("cleaned up")

    ag = ticker(1)
    assert await ag.__anext__() == 1
    assert await ag.asend(10) == 11
    assert await ag.athrow(KeyError("reset")) == 0
    await ag.aclose()
    assert cleanup == ["cleaned up"]

    call = store.call(ticker)
    assert call["outcome"] == "closed"
    assert call["status"] == "OK"
    assert store.values(call) == {"start": "1", "yield[0]": "1", "yield[1]": "11",
                                  "yield[2]": "0", "yield_count": "3"}  # issue 11


async def test_async_generator_consumed_to_the_end_is_recorded_ok(store):
    @monitor("agen")
    async def stream(n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    assert [x async for x in stream(3)] == [0, 1, 2]
    call = store.call(stream)
    assert call["outcome"] == "ok"
    assert call["status"] == "OK"
    assert store.values(call)["n"] == "3"


async def test_async_generator_athrow_not_handled_is_reraised_as_the_same_object(store):
    @monitor("agen")
    async def stream():
        yield 1
        yield 2

    ag = stream()
    assert await ag.__anext__() == 1
    err = RuntimeError("feed died")
    with pytest.raises(RuntimeError) as info:
        await ag.athrow(err)
    assert info.value is err

    call = store.call(stream)
    assert call["status"] == "ERR"
    assert "RuntimeError: feed died" in call["exception"]


# -- Dash ------------------------------------------------------------------------------------

def test_dash_callback_under_app_callback_is_recorded_when_driven_over_http(store):
    dash = pytest.importorskip("dash")
    from dash import Input, Output, dcc, html

    app = dash.Dash(__name__)
    app.layout = html.Div([dcc.Input(id="ccy", value="eur"), html.Div(id="out")])

    @app.callback(Output("out", "children"), Input("ccy", "value"))
    @monitor("ui")
    def shout(value):
        """Upper-case the currency."""
        return value.upper() + "!"

    client = app.server.test_client()
    assert client.get("/").status_code == 200
    response = client.post("/_dash-update-component", json={
        "output": "out.children",
        "outputs": {"id": "out", "property": "children"},
        "inputs": [{"id": "ccy", "property": "value", "value": "usd"}],
        "changedPropIds": ["ccy.value"],
        "state": [],
    })
    assert response.status_code == 200
    assert response.get_json()["response"]["out"]["children"] == "USD!"

    assert shout.__wrapped__.__name__ == "shout"
    call = store.call(process_name(shout))
    assert call["status"] == "OK"
    assert call["process_group"] == "ui"
    assert store.values(call) == {"value": "'usd'", "return": "'USD!'"}


# -- what the wrapper keeps -----------------------------------------------------------------

def _plain(spot: float, strike: float = 1.0, *, api_key: str = "") -> float:
    """Plain doc."""
    return spot


async def _coroutine(spot: float, *args: int) -> float:
    """Coroutine doc."""
    return spot


def _generator(n: int, /, step: int = 1):
    """Generator doc."""
    yield n


async def _async_generator(n: int, **options: str):
    """Async generator doc."""
    yield n


KINDS = [_plain, _coroutine, _generator, _async_generator]


@pytest.mark.parametrize("fn", KINDS, ids=lambda f: f.__name__)
def test_wrapper_keeps_name_qualname_module_doc_wrapped_and_signature(fn):
    wrapped = monitor("meta")(fn)
    assert wrapped.__name__ == fn.__name__
    assert wrapped.__qualname__ == fn.__qualname__
    assert wrapped.__module__ == fn.__module__
    assert wrapped.__doc__ == fn.__doc__
    assert wrapped.__wrapped__ is fn
    assert inspect.signature(wrapped) == inspect.signature(fn)
    assert process_name(wrapped) == f"{__name__}.{fn.__name__}"


@pytest.mark.parametrize("fn", KINDS, ids=lambda f: f.__name__)
def test_wrapper_is_the_same_kind_of_function_as_the_original(fn):
    wrapped = monitor("meta")(fn)
    for check in (inspect.iscoroutinefunction, inspect.isgeneratorfunction,
                  inspect.isasyncgenfunction):
        assert check(wrapped) == check(fn), check.__name__


def test_methods_keep_their_metadata_through_static_and_class_method():
    for name in ("method", "static_outer", "static_inner", "class_outer", "class_inner"):
        attr = getattr(Pricer, name)
        assert attr.__name__ == name
        assert attr.__qualname__ == f"Pricer.{name}"
    assert isinstance(Pricer.__dict__["static_outer"], staticmethod)
    assert isinstance(Pricer.__dict__["class_outer"], classmethod)
    assert inspect.signature(Pricer.class_outer) == inspect.signature(Pricer.class_inner)
    assert list(inspect.signature(Pricer.static_outer).parameters) == ["x"]
