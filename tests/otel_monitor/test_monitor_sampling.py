"""``sample``: the fraction of calls recorded; a call that raises is always recorded."""
from __future__ import annotations

import asyncio
import contextlib

import pytest

from otel_monitor import monitor


def test_sample_zero_records_no_successful_call(store):
    @monitor("sampling", sample=0)
    def quiet(x):
        return x

    @monitor("sampling")
    def loud(x):
        return x

    assert [quiet(i) for i in range(100)] == list(range(100))
    loud(1)  # proves the store is being written

    assert store.calls(quiet) == []
    assert len(store.calls(loud)) == 1


def test_sample_zero_still_records_a_call_that_raises_with_its_inputs(store):
    @monitor("sampling", sample=0)
    def check(x):
        if x == 7:
            raise ValueError(f"bad {x}")
        return x

    for i in range(20):
        if i == 7:
            with pytest.raises(ValueError):
                check(i)
        else:
            assert check(i) == i

    call = store.call(check)
    assert call["status"] == "ERR"
    assert "ValueError: bad 7" in call["exception"]
    assert store.values(call) == {"x": "7"}
    assert call["duration_ms"] >= 0


def _sync(x):
    raise KeyError(x)


async def _coroutine(x):
    await asyncio.sleep(0)
    raise KeyError(x)


def _generator(x):
    yield 0
    raise KeyError(x)


async def _async_generator(x):
    yield 0
    raise KeyError(x)


async def _drive(wrapped, x):
    if asyncio.iscoroutinefunction(wrapped):
        return await wrapped(x)
    result = wrapped(x)
    if hasattr(result, "__anext__"):
        return [v async for v in result]
    return list(result)


@pytest.mark.parametrize("fn", [_sync, _coroutine, _generator, _async_generator],
                         ids=lambda f: f.__name__)
async def test_sample_zero_records_a_raising_call_of_every_callable_kind(store, fn):
    wrapped = monitor("sampling", sample=0)(fn)

    with pytest.raises(KeyError):
        await _drive(wrapped, "k")

    call = store.call(wrapped)
    assert call["status"] == "ERR"
    assert "KeyError: 'k'" in call["exception"]
    assert store.values(call) == {"x": "'k'"}


def test_sample_half_records_about_half_of_4000_calls(store):
    @monitor("sampling", sample=0.5)
    def half(x):
        return x

    for i in range(4000):
        half(i)

    n = store.query("SELECT count(*) AS n FROM process_trace WHERE process LIKE '%.half'")[0]["n"]
    # mean 2000, sd ~32: this band is more than 9 sd wide on each side
    assert 1700 <= n <= 2300


def test_sampled_calls_still_have_all_their_data_rows(store):
    @monitor("sampling", sample=0.5)
    def pair(a, b):
        return a + b

    for i in range(200):
        pair(i, 1)

    calls = store.calls(pair)
    assert 0 < len(calls) < 200
    for call in calls:
        values = store.values(call)
        assert int(values["return"]) == int(values["a"]) + 1


def test_sample_below_one_still_records_every_raising_call(store):
    @monitor("sampling", sample=0.1)
    def always_fails(x):
        raise RuntimeError(x)

    for i in range(200):
        with pytest.raises(RuntimeError):
            always_fails(i)

    calls = store.calls(always_fails)
    assert len(calls) == 200
    assert {c["status"] for c in calls} == {"ERR"}


@pytest.mark.parametrize("sample", [-0.1, 1.5, "x", True, None, float("nan")])
def test_invalid_sample_raises_value_error_at_decoration(sample):
    with pytest.raises(ValueError, match="sample"):
        monitor("sampling", sample=sample)


@pytest.mark.parametrize("sample", [0, 0.0, 1, 1.0, 0.25])
def test_valid_sample_bounds_are_accepted(sample):
    @monitor("sampling", sample=sample)
    def f():
        return 1

    assert callable(f)


def test_sample_zero_raising_call_records_inputs_as_they_are_when_it_raised(store):
    # A documented trade-off: capturing inputs at entry would cost every skipped
    # call, which is what sampling is there to avoid.
    @monitor("sampling", sample=0)
    def mutate_then_fail(items):
        items.append("added inside")
        raise ValueError("failed")

    with pytest.raises(ValueError):
        mutate_then_fail(["at entry"])

    assert store.values(store.call(mutate_then_fail)) == {"items": "['at entry', 'added inside']"}


def test_sample_zero_does_not_record_a_generator_closed_early(store):
    @monitor("sampling", sample=0)
    def gen():
        yield 1
        yield 2

    for x in gen():
        break

    assert store.calls(gen) == []


async def test_sample_zero_does_not_record_a_cancelled_coroutine(store):
    @monitor("sampling", sample=0)
    async def slow():
        await asyncio.sleep(3600)

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(slow(), timeout=0.01)

    assert store.calls(slow) == []


@pytest.mark.parametrize("kind", ["sync", "coroutine", "generator"])
async def test_a_sampled_call_weighs_one_over_the_sample_and_a_failure_weighs_one(store, kind):
    # A successful call is kept with probability `sample`, a failing one always: their
    # weights (spans.weight; NULL for 1) make /metrics, the rollups and the SLIs
    # estimate the calls made, not the calls stored (an error ratio over stored calls
    # would be inflated 1/sample times).
    def body(x):
        if x % 10 == 0:
            raise ValueError(x)
        return x

    async def coroutine(x):
        return body(x)

    def generator(x):
        yield body(x)

    fn = {"sync": body, "coroutine": coroutine, "generator": generator}[kind]
    wrapped = monitor("sampling", sample=0.25)(fn)
    for i in range(4000):
        with contextlib.suppress(ValueError):
            if kind == "sync":
                wrapped(i)
            else:
                await _drive(wrapped, i)

    rows = store.query("SELECT s.status, s.weight FROM spans s JOIN processes p "
                       "ON p.id = s.process_id WHERE p.name LIKE ?", (f"%.{fn.__name__}",))
    assert {r["weight"] for r in rows if r["status"] == "ERR"} == {None}
    assert {r["weight"] for r in rows if r["status"] == "OK"} == {4.0}
    assert sum(r["status"] == "ERR" for r in rows) == 400
    estimate = sum(r["weight"] or 1.0 for r in rows)
    assert abs(estimate - 4000) <= 0.15 * 4000  # sd about 2.6%
