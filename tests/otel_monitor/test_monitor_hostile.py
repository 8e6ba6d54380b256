"""Hostile but realistic values: the decorated call behaves exactly like the bare
function (return value, exception identity, side effects), whatever the values'
``repr`` does, and no masked value leaks. Timing is measured by
``benchmarks/bench_hostile.py``, never asserted here (noisy machines)."""
from __future__ import annotations

import pytest

from otel_monitor import monitor


class CustomBase(BaseException):
    pass


BASE_EXCEPTIONS = [SystemExit, KeyboardInterrupt, GeneratorExit, CustomBase]


ARMED = [False]  # the reprs raise only inside ``armed()``: pytest's own reports repr them too


class armed:
    def __enter__(self):
        ARMED[0] = True

    def __exit__(self, *exc):
        ARMED[0] = False


def raising_repr(kind):
    class Hostile:
        def __repr__(self):
            if ARMED[0]:
                raise kind("from __repr__")
            return "<hostile>"
    Hostile.__qualname__ = f"Raises{kind.__name__}"
    return Hostile()


# -- 1. BaseExceptions from __repr__ never reach the caller -------------------------


@pytest.mark.parametrize("kind", BASE_EXCEPTIONS, ids=lambda k: k.__name__)
def test_base_exception_from_an_arguments_repr_does_not_skip_the_body(store, kind):
    ran = []

    @monitor("hostile")
    def f(value):
        ran.append(value)
        return "fine"

    value = raising_repr(kind)
    with armed():
        got = f(value)
    assert got == "fine"
    assert ran == [value]
    assert store.values(store.call(f))["value"] == f"<repr raised {kind.__name__}>"


@pytest.mark.parametrize("kind", BASE_EXCEPTIONS, ids=lambda k: k.__name__)
def test_base_exception_from_a_masked_arguments_repr_does_not_reach_the_caller(store, kind):
    @monitor("hostile", mask=("hidden",))
    def f(hidden):
        return "fine"

    with armed():
        got = f(raising_repr(kind))
    assert got == "fine"
    assert store.values(store.call(f))["hidden"].startswith("<HASHED:")


@pytest.mark.parametrize("kind", BASE_EXCEPTIONS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("otel_span", [False, True])
def test_base_exception_from_the_results_repr_does_not_lose_the_result(store, kind, otel_span):
    result = raising_repr(kind)

    @monitor("hostile", otel_span=otel_span)
    def f():
        return result

    with armed():
        got = f()
    assert got is result
    assert store.values(store.call(f))["return"] == f"<repr raised {kind.__name__}>"


@pytest.mark.parametrize("kind", BASE_EXCEPTIONS, ids=lambda k: k.__name__)
def test_base_exception_from_a_repr_when_the_call_fails_keeps_the_callers_exception(store, kind):
    error = ValueError("own")

    @monitor("hostile", mask=("hidden",))
    def f(shown, hidden):
        raise error

    with pytest.raises(ValueError) as info, armed():
        f(raising_repr(kind), raising_repr(kind))
    assert info.value is error


@pytest.mark.parametrize("kind", BASE_EXCEPTIONS, ids=lambda k: k.__name__)
def test_base_exception_from_repr_in_coroutines_and_generators(store, kind):
    @monitor("hostile")
    async def co(value):
        return value

    @monitor("hostile")
    def gen(value):
        yield value
        return value

    value = raising_repr(kind)
    with armed():  # driven by hand: asyncio.run would repr the result in its own debug text
        got = run_coroutine(co(value)), list(gen(value))
    assert got == (value, [value])


def run_coroutine(coro):
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the coroutine suspended")


@pytest.mark.parametrize("kind", [SystemExit, KeyboardInterrupt, CustomBase],
                         ids=lambda k: k.__name__)
def test_control_flow_exceptions_of_the_function_itself_still_pass_through(store, kind):
    error = kind("own")

    @monitor("hostile")
    def f():
        raise error

    with pytest.raises(kind) as info:
        f()
    assert info.value is error
