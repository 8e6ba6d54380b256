"""The wrappers ``@monitor`` returns, one shape per kind of callable.

Which wrapper, and whether it samples, is decided at decoration; the per-call
path is begin -> call -> ok/fail. A call skipped by sampling still records if it
raises; a call kept with probability q < 1 records the weight 1/q (a failure, kept
whatever the sampling, weighs 1). Under ``sample="auto"`` (an ``AutoSampler``) a plain
function or coroutine is only timed; the sampler decides at its end, and only a kept
call is recorded (``rec.kept``), its arguments rendered then. Generators and async
generators are driven step by step so the call's context is current only while their
own code runs, never between yields.
"""
from __future__ import annotations

import functools
import time
from random import random
from typing import Any, Callable

from ._sampling import AutoSampler

_time_ns = time.time_ns


def sync_wrapper(fn: Callable, rec: Any, sample: float | AutoSampler) -> Callable:
    if isinstance(sample, AutoSampler):
        return _auto_sync_wrapper(fn, rec, sample)
    begin, ok, fail, fail_unsampled = rec.begin, rec.ok, rec.fail, rec.fail_unsampled
    # begin/ok/fail swallow their own failures; the try around each call also covers
    # the call itself failing (RecursionError at the recursion limit), so nothing of
    # ours replaces, or chains onto, what the function raised. A try costs nothing
    # until something is raised.

    if sample >= 1.0:
        def wrapper(*args, **kwargs):
            try:
                call = begin(args, kwargs)
            except BaseException:
                call = None
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                try:
                    fail(call, exc, args, kwargs)
                except BaseException:
                    pass
                raise
            try:
                ok(call, result)
            except BaseException:
                pass
            return result
    elif sample <= 0.0:
        def wrapper(*args, **kwargs):
            start = _time_ns()
            try:
                return fn(*args, **kwargs)
            except BaseException as exc:
                try:
                    fail_unsampled(start, exc, args, kwargs)
                except BaseException:
                    pass
                raise
    else:
        weight = 1.0 / sample

        def wrapper(*args, **kwargs):
            if random() < sample:
                try:
                    call = begin(args, kwargs)
                    if call is not None:
                        call[8] = weight  # kept with probability sample (see rec.fail)
                except BaseException:
                    call = None
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    try:
                        fail(call, exc, args, kwargs)
                    except BaseException:
                        pass
                    raise
                try:
                    ok(call, result)
                except BaseException:
                    pass
                return result
            start = _time_ns()
            try:
                return fn(*args, **kwargs)
            except BaseException as exc:
                try:
                    fail_unsampled(start, exc, args, kwargs)
                except BaseException:
                    pass
                raise
    return functools.wraps(fn)(wrapper)


def _auto_sync_wrapper(fn: Callable, rec: Any, sampler: AutoSampler) -> Callable:
    """``sample="auto"``: time the call, let the sampler decide at its end; nothing is
    captured for a call it drops. The clock is bound here (a test may replace
    ``_time_ns`` before decorating)."""
    now, keep, kept = _time_ns, sampler.keep, rec.kept

    def wrapper(*args, **kwargs):
        start = now()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            end = now()
            try:  # a failure is always kept (weight 1); an interruption is not one
                if isinstance(exc, Exception) and keep(start, end, True):
                    kept(start, end, args, kwargs, None, exc, 1.0)
            except BaseException:
                pass
            raise
        end = now()
        try:
            weight = keep(start, end)
            if weight:
                kept(start, end, args, kwargs, result, None, weight)
        except BaseException:
            pass
        return result
    return functools.wraps(fn)(wrapper)


def _auto_async_wrapper(fn: Callable, rec: Any, sampler: AutoSampler) -> Callable:
    now, keep, kept = _time_ns, sampler.keep, rec.kept  # see _auto_sync_wrapper

    async def wrapper(*args, **kwargs):
        start = now()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            end = now()
            try:  # a cancellation is not a failure: as under sample < 1, not forced
                if isinstance(exc, Exception) and keep(start, end, True):
                    kept(start, end, args, kwargs, None, exc, 1.0)
            except BaseException:
                pass
            raise
        end = now()
        try:
            weight = keep(start, end)
            if weight:
                kept(start, end, args, kwargs, result, None, weight)
        except BaseException:
            pass
        return result
    return functools.wraps(fn)(wrapper)


def async_wrapper(fn: Callable, rec: Any, sample: float | AutoSampler) -> Callable:
    if isinstance(sample, AutoSampler):
        return _auto_async_wrapper(fn, rec, sample)
    begin, ok, fail, fail_unsampled = rec.begin, rec.ok, rec.fail, rec.fail_unsampled

    weight = 1.0 / sample if 0.0 < sample < 1.0 else None

    async def wrapper(*args, **kwargs):
        if sample >= 1.0 or (sample > 0.0 and random() < sample):
            try:
                call = begin(args, kwargs)
                if call is not None:
                    call[8] = weight  # kept with probability sample (see rec.fail)
            except BaseException:  # see sync_wrapper
                call = None
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                try:
                    fail(call, exc, args, kwargs)
                except BaseException:
                    pass
                raise
            try:
                ok(call, result)
            except BaseException:
                pass
            return result
        start = _time_ns()
        try:
            return await fn(*args, **kwargs)
        except BaseException as exc:
            try:
                fail_unsampled(start, exc, args, kwargs)
            except BaseException:
                pass
            raise
    return functools.wraps(fn)(wrapper)


def _head(sample: float | AutoSampler, start: int) -> tuple[bool, float | None]:
    """A generator's sampling, decided at its start: (sampled, weight: 1/its probability
    of being kept, None for 1). Under "auto"
    by the sampler's current rate alone (its arguments cannot wait for its end); a
    failure is recorded whatever was decided, with weight 1 (see ``rec.fail``)."""
    if type(sample) is float:
        if sample >= 1.0:
            return True, None
        return sample > 0.0 and random() < sample, 1.0 / sample if sample > 0.0 else None
    weight = sample.head(start)
    return weight > 0.0, (weight if weight != 1.0 else None)


def generator_wrapper(fn: Callable, rec: Any, sample: float | AutoSampler) -> Callable:
    def wrapper(*args, **kwargs):
        start = _time_ns()
        sampled, weight = _head(sample, start)
        call = rec.begin(args, kwargs, enter=False) if sampled else None
        if call is not None:
            call[8] = weight
        # The first yields (format, bound from the recorder) and the count of all:
        # O(1) memory per generator.
        capture = rec.yields(call) if sampled else None
        kept: list = []
        count = 0
        try:
            gen = fn(*args, **kwargs)  # runs none of the body yet
            step, value = gen.send, None
            while True:
                rec.enter(call)
                try:
                    item = step(value)
                except StopIteration as stop:
                    rec.leave(call)
                    if capture is not None:
                        rec.ok_yields(call, stop.value, kept, count)
                    elif sampled:
                        rec.ok(call, stop.value)
                    return stop.value
                finally:
                    rec.leave(call)
                if capture is not None:
                    if count < capture[1]:
                        kept.append(capture[0](item))
                    count += 1
                try:
                    value = yield item
                    step = gen.send
                except GeneratorExit:
                    rec.enter(call)
                    try:
                        gen.close()
                    finally:
                        rec.leave(call)
                    raise
                except BaseException as exc:
                    step, value = gen.throw, exc
        except BaseException as exc:  # raised, thrown in, or closed early (GeneratorExit)
            if sampled:
                rec.fail(call, exc, args, kwargs,
                         (kept, count) if capture is not None else None)
            else:
                rec.fail_unsampled(start, exc, args, kwargs)
            raise
    return functools.wraps(fn)(wrapper)


def async_generator_wrapper(fn: Callable, rec: Any,
                            sample: float | AutoSampler) -> Callable:
    async def wrapper(*args, **kwargs):
        start = _time_ns()
        sampled, weight = _head(sample, start)
        call = rec.begin(args, kwargs, enter=False) if sampled else None
        if call is not None:
            call[8] = weight
        capture = rec.yields(call) if sampled else None  # see generator_wrapper
        kept: list = []
        count = 0
        try:
            agen = fn(*args, **kwargs)  # runs none of the body yet
            step, value = agen.asend, None
            while True:
                rec.enter(call)
                try:
                    item = await step(value)
                except StopAsyncIteration:
                    rec.leave(call)
                    if capture is not None:
                        rec.ok_yields(call, None, kept, count)
                    elif sampled:
                        rec.ok(call, None)
                    return
                finally:
                    rec.leave(call)
                if capture is not None:
                    if count < capture[1]:
                        kept.append(capture[0](item))
                    count += 1
                try:
                    value = yield item
                    step = agen.asend
                except GeneratorExit:
                    rec.enter(call)
                    try:
                        await agen.aclose()
                    finally:
                        rec.leave(call)
                    raise
                except BaseException as exc:
                    step, value = agen.athrow, exc
        except BaseException as exc:  # raised, thrown in, or closed early (GeneratorExit)
            if sampled:
                rec.fail(call, exc, args, kwargs,
                         (kept, count) if capture is not None else None)
            else:
                rec.fail_unsampled(start, exc, args, kwargs)
            raise
    return functools.wraps(fn)(wrapper)
