"""The wrappers ``@monitor`` returns, one shape per kind of callable.

Which wrapper, and whether it samples, is decided at decoration; the per-call
path is begin -> call -> ok/fail (for a plain function always kept with
``otel_span=False``, begin and ok inlined in the wrapper: ``_inline_sync_wrapper``).
A call skipped by sampling still records if it raises; a call kept with probability
q < 1 records the weight 1/q (a failure, kept whatever the sampling, weighs 1). Under
``sample="auto"`` (an ``AutoSampler``) a plain function or coroutine is only timed;
the sampler decides at its end, and only a kept call is recorded (``rec.kept``), its
arguments rendered then. Generators and async generators are driven step by step so
the call's context is current only while their own code runs, never between yields.
"""
from __future__ import annotations

import functools
import time
from random import getrandbits, random
from typing import Any, Callable

from exporters.columns import OUTCOME_OK

from ._capture import AS_IS
from ._context import CURRENT, get_current_context, get_current_span, otel_context_var
from ._sampling import AutoSampler

try:  # the hot path in C, built by the package's install; Python's when it is not built
    from ._fastcall import MonitoredFunction
except ImportError:  # pragma: no cover - a source tree used without installing
    MonitoredFunction = None

_time_ns = time.time_ns


def sync_wrapper(fn: Callable, rec: Any, sample: float | AutoSampler) -> Callable:
    if isinstance(sample, AutoSampler):
        return _auto_sync_wrapper(fn, rec, sample)
    begin, ok, fail, fail_unsampled = rec.begin, rec.ok, rec.fail, rec.fail_unsampled
    # begin/ok/fail swallow their own failures; the try around each call also covers
    # the call itself failing (RecursionError at the recursion limit), so nothing of
    # ours replaces, or chains onto, what the function raised. A try costs nothing
    # until something is raised.

    if sample >= 1.0 and rec.inline:
        return functools.wraps(fn)(_inline_sync_wrapper(fn, rec))
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


def _inline_sync_wrapper(fn: Callable, rec: Any) -> Callable:
    """The hot path: every call of a plain function kept (sample=1.0). In C
    (``_fastcall.c``) when it is built, else ``_python_inline_wrapper``; both make the
    same records and are tested alike."""
    if MonitoredFunction is None:
        return _python_inline_wrapper(fn, rec)
    return _c_inline_wrapper(fn, rec)


def _c_inline_wrapper(fn: Callable, rec: Any) -> Callable:
    """``_python_inline_wrapper``'s steps in C; what is rare stays in Python, here."""
    rt, plan = rec.rt, rec.plan
    capture = plan.capture if rec.log_inputs else None
    prefixes = plan.plain_prefixes if rec.log_inputs else None

    def captured(args: tuple, kwargs: dict) -> tuple[Any, int]:
        """Arguments that need rendering: (inputs, the call's capture account)."""
        inputs = capture(args, kwargs, rt.format, rt.mask)
        state = rt.capture_state
        spent = state.spent  # the call's account, kept in the call
        if spent:
            state.spent = 0  # 0 between captures
        return inputs, spent

    def otel_parent() -> tuple[int, int] | None:
        ctx = get_current_span().get_span_context()
        return (ctx.trace_id, ctx.span_id) if ctx is not None and ctx.is_valid else None

    return MonitoredFunction(
        fn=fn, rt=rt, queue=rec.queue, process=rec.process,
        prefixes=None if prefixes is None else tuple(prefixes),
        npos=len(plan.positional), captured=captured if capture is not None else None,
        fail=rec.fail, result_text=rec.result_text, begin_failed=rec.begin_failed,
        ok_failed=rec.ok_failed, current=CURRENT,
        otel_now=otel_context_var() or get_current_context,
        otel_parent=otel_parent, now=time.time_ns, as_is=AS_IS,
        ok_outcome=OUTCOME_OK, log_outputs=rec.log_outputs,
        as_is_result=rec.log_outputs and not plan.mask_return)


def _python_inline_wrapper(fn: Callable, rec: Any) -> Callable:
    """``LocalRecorder.begin`` and ``ok`` inlined, for every call of a plain function
    (sample=1.0): the hot path. What stays fixed (the recorder's queue, process name,
    capture plan and flags) is bound here; what ``configure`` may change (``ready``,
    ``format``, ``mask``, ``capture_state``, ``fast_limit``) is read on the pipeline per
    call. A failing call, and anything unusual in recording one, goes through the
    recorder's own methods (``fail``, ``result_text``)."""
    rt, queue, process, plan = rec.rt, rec.queue, rec.process, rec.plan
    fail, result_text = rec.fail, rec.result_text
    capture = plan.capture if rec.log_inputs else None
    prefixes = plan.plain_prefixes if rec.log_inputs else None
    npos = len(plan.positional)
    log_outputs = rec.log_outputs
    as_is_result = log_outputs and not plan.mask_return
    get, enter, leave = CURRENT.get, CURRENT.set, CURRENT.reset
    now, rand, as_is = time.time_ns, getrandbits, AS_IS
    current_span, otel_now = get_current_span, get_current_context
    ok_outcome = OUTCOME_OK

    def wrapper(*args, **kwargs):
        try:
            if rt.ready or rt.ensure_started():
                parent = get()
                if parent is None:
                    if otel_now():  # an OTel context: a span in it, perhaps
                        ctx = current_span().get_span_context()
                    else:
                        ctx = None
                    if ctx is not None and ctx.is_valid:  # join, say, a request's trace
                        trace_id, parent_id = ctx.trace_id, ctx.span_id
                    else:
                        trace_id, parent_id = rand(128) or 1, 0
                else:
                    trace_id, parent_id = parent[0], parent[1]
                spent = 0
                if (prefixes is not None and not kwargs and len(args) <= npos
                        and as_is.issuperset(map(type, args))):
                    inputs = (prefixes[len(args)], args)  # capture's first case, no repr
                elif capture is not None:
                    inputs = capture(args, kwargs, rt.format, rt.mask)
                    state = rt.capture_state
                    spent = state.spent  # the call's account, kept in the call
                    if spent:
                        state.spent = 0  # 0 between captures
                else:
                    inputs = None
                me = (trace_id, rand(64) or 1, True)
                token = enter(me)
                start = now()
            else:
                me = None
        except BaseException:  # a __repr__ raising SystemExit… included
            me = None
            try:
                rec.begin_failed()
            except BaseException:  # at the recursion limit
                pass
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            if me is not None:
                try:
                    fail([token, me, parent_id, inputs, start, None, None, spent, None],
                         exc, args, kwargs)
                except BaseException:
                    pass
            raise
        end = now()
        if me is None:
            return result
        try:
            try:
                leave(token)
            except ValueError:
                pass
            try:
                if not log_outputs:
                    output = None
                elif as_is_result and type(result) in as_is:
                    output = result
                else:
                    output = result_text(result, spent)[0]
                record = (process, trace_id, me[1], parent_id, start, end, ok_outcome, None,
                          inputs, output, None)
                if len(queue) < rt.fast_limit:
                    queue.append(record)
                else:
                    rt.overflow(record)
            except BaseException:  # a __repr__ raising SystemExit… included
                rec.ok_failed()
        except BaseException:
            pass
        return result
    return wrapper


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
