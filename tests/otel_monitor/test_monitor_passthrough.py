"""KeyboardInterrupt, SystemExit, GeneratorExit and asyncio.CancelledError pass through
the wrapper untouched (the same object), and are recorded as what they are, not as
crashes: only an ``Exception`` makes a call ``ERR``."""
from __future__ import annotations

import asyncio

import pytest

from otel_monitor import monitor

OUTCOMES = [
    (KeyboardInterrupt, "interrupted"),
    (SystemExit, "interrupted"),
    (GeneratorExit, "closed"),
    (asyncio.CancelledError, "cancelled"),
]


@pytest.mark.parametrize("exc_type,outcome", OUTCOMES, ids=lambda v: getattr(v, "__name__", v))
def test_base_exception_from_a_function_passes_through_as_the_same_object(store, exc_type,
                                                                          outcome):
    err = exc_type()

    @monitor("passthrough")
    def f(x):
        raise err

    with pytest.raises(exc_type) as info:
        f(1)
    assert info.value is err

    call = store.call(f)
    assert call["outcome"] == outcome
    assert call["status"] == "OK"  # recorded as such, not as a crash
    assert call["exception"] is None
    assert [(r["data"], r["data_type"]) for r in store.data(call)] == [("x", "INPUT")]


def test_system_exit_keeps_its_exit_code(store):
    @monitor("passthrough")
    def stop():
        raise SystemExit(3)

    with pytest.raises(SystemExit) as info:
        stop()
    assert info.value.code == 3


@pytest.mark.parametrize("exc_type,outcome", OUTCOMES, ids=lambda v: getattr(v, "__name__", v))
async def test_base_exception_from_a_coroutine_passes_through_as_the_same_object(
        store, exc_type, outcome):
    err = exc_type()

    @monitor("passthrough")
    async def f():
        await asyncio.sleep(0)
        raise err

    with pytest.raises(exc_type) as info:
        await f()
    assert info.value is err
    assert store.call(f)["outcome"] == outcome


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
def test_base_exception_from_a_generator_body_passes_through_as_the_same_object(store,
                                                                                exc_type):
    err = exc_type()

    @monitor("passthrough")
    def gen():
        yield 1
        raise err

    g = gen()
    assert next(g) == 1
    with pytest.raises(exc_type) as info:
        next(g)
    assert info.value is err
    assert store.call(gen)["status"] == "OK"


async def test_cancelled_task_is_recorded_as_cancelled_not_as_a_crash(store):
    started = asyncio.Event()

    @monitor("passthrough")
    async def slow(x):
        started.set()
        await asyncio.sleep(3600)
        return x

    task = asyncio.ensure_future(slow(1))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()

    call = store.call(slow)
    assert call["outcome"] == "cancelled"
    assert call["status"] == "OK"
    assert call["exception"] is None
    assert [(r["data"], r["data_type"]) for r in store.data(call)] == [("x", "INPUT")]


async def test_wait_for_timeout_cancels_the_monitored_coroutine_and_raises_timeout(store):
    @monitor("passthrough")
    async def slow():
        await asyncio.sleep(3600)

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(slow(), timeout=0.01)

    call = store.call(slow)
    assert call["outcome"] == "cancelled"
    assert call["status"] == "OK"


async def test_cancelling_a_task_iterating_an_async_generator_records_cancelled(store):
    started = asyncio.Event()

    @monitor("passthrough")
    async def stream():
        yield 1
        started.set()
        await asyncio.sleep(3600)
        yield 2

    async def consume():
        return [x async for x in stream()]

    task = asyncio.ensure_future(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    call = store.call(stream)
    assert call["outcome"] == "cancelled"
    assert call["status"] == "OK"
