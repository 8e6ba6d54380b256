"""What happens at the start and end of a monitored call.

Two recorders share one interface (``begin``, ``ok``, ``fail``, ``fail_unsampled``,
and ``enter``/``leave`` around each resumption of a generator):

* ``LocalRecorder`` (``otel_span=False``) appends a compact record to the queue;
  nesting rides on a ContextVar, and a local root joins the current OTel trace.
* ``SpanRecorder`` (``otel_span=True``) opens a real span on the process-wide
  tracer provider, so it nests under other instrumentation's spans and reaches
  every exporter on that provider.

Each method swallows its own failures: monitoring never reaches the caller.

A recorder gets the pipeline it records into at decoration (``CallPipeline``) and
binds the queue then: the queue lives as long as the process, so the per-call path
reads instance attributes, no module globals.
"""
from __future__ import annotations

import asyncio
import traceback
import logging
import sys
import time
import types
from collections import deque
from random import getrandbits
from typing import Any, Callable, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

from exporters import columns as C
from exporters.records import (END_NS, ERR_PROPAGATED, OUTPUT, CallSite, Outputs,
                               error_texts, exception_type_name, scalar_text)

from . import _wrappers
from ._capture import UNBUDGETED, UNTIMED, CaptureState, Masker
from ._capture_plan import CapturePlan
from ._context import CURRENT, get_current_span

_log = logging.getLogger("otel_monitor")

_time_ns = time.time_ns
_get_current_span = get_current_span
_attach, _detach = otel_context.attach, otel_context.detach
_set_span_in_context = trace.set_span_in_context
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class CallPipeline(Protocol):
    """What a recorder needs of the pipeline it records into."""

    queue: deque           # call records, for the writer (see exporters.records)
    ready: bool
    fast_limit: int        # below this depth a record is appended with no more checks
    format: Callable[[Any], str]
    capture_state: CaptureState  # .spent: this thread's call's capture time so far
    mask: Masker | None
    yield_values: int      # a generator's first yields kept as OUTPUT rows
    tracer: Any
    # Called on the error path of a failing call when exceptions alert; else None.
    on_error: Callable[..., None] | None

    def ensure_started(self) -> bool: ...

    def overflow(self, record: tuple) -> None:
        """A record arriving at or past ``fast_limit`` deep: queued or dropped."""


# Captured values that are valid OTel attribute values as they are (see attribute_value).
_ATTRIBUTE_AS_IS = frozenset({str, float, bool})


def attribute_value(value: Any) -> Any:
    """A captured value as an OTel attribute: numbers and booleans stay typed."""
    kind = type(value)
    if kind is str or kind is float or kind is bool:
        return value
    if kind is int and -(1 << 63) <= value < (1 << 63):
        return value
    return scalar_text(value)


def outcome_of(exc: BaseException) -> str:
    if isinstance(exc, Exception):
        return C.OUTCOME_ERROR
    if isinstance(exc, asyncio.CancelledError):
        return C.OUTCOME_CANCELLED
    if isinstance(exc, GeneratorExit):
        return C.OUTCOME_CLOSED
    return C.OUTCOME_INTERRUPTED  # KeyboardInterrupt, SystemExit


_YIELD_NAMES: list[str] = []


def _yield_names(n: int) -> list[str]:
    while len(_YIELD_NAMES) < n:
        _YIELD_NAMES.append(f"yield[{len(_YIELD_NAMES)}]")
    return _YIELD_NAMES[:n]


TB_KEEP = 50  # a recorded traceback keeps its first and last TB_KEEP frames
_SECRETS_ATTR = "__otel_monitor_secrets__"
# The innermost monitored call an exception failed: (span id, start ns).
_FAILED_ATTR = "__otel_monitor_failed_call__"
_WRAPPERS_FILE = _wrappers.__file__


def _secrets_of(exc: BaseException, own: list) -> list:
    """The masked texts to scrub from this failure: this call's own, and those that
    monitored calls further down attached to the exception (or to its cause or
    context) as it passed through them, so an unmasked caller does not store, in
    its copy of the traceback, what the callee masked."""
    found = list(own)
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        found.extend(getattr(link, _SECRETS_ATTR, ()))
        link = link.__cause__ or link.__context__
    if own:
        try:
            setattr(exc, _SECRETS_ATTR, found)
        except (AttributeError, TypeError):  # an exception type without a __dict__
            pass
    return found


def propagated_from(exc: BaseException, me: tuple, start_ns: int) -> int | None:
    """The span id of the monitored call further down that ``exc`` (the same object)
    failed before it reached this call (``me``: its (trace id, span id, …), started at
    ``start_ns``), or None when this call is the innermost: then the exception is
    marked with this call, for the callers it rises through. One bug, one error group
    (``exporters.records.ERR_PROPAGATED``), and the alert engine's innermost-only rule
    reads the same.

    A mark counts only when it is of a call that started within this one (not of the
    same trace: calls skipped by sampling record as roots of their own): one exception
    object raised again by a later, unrelated call (a cached instance) is a failure of
    that call. An exception that takes no attribute (``__setattr__``
    refusing) is never marked: each call it fails is judged on its own."""
    try:
        mark = getattr(exc, _FAILED_ATTR, None)
        if type(mark) is tuple and mark[1] >= start_ns and mark[0] != me[1]:
            return mark[0]
        setattr(exc, _FAILED_ATTR, (me[1], start_ns))
    except Exception:  # an exception type without a __dict__, or a hostile __getattr__
        pass
    return None


def _warn(what: str) -> None:
    try:
        if isinstance(sys.exc_info()[1], RecursionError):
            return  # at the recursion limit: the application's own RecursionError follows
        _log.warning("otel-monitor: %s failed; the call itself is unaffected", what,
                     exc_info=True)
    except BaseException:  # logging itself failed (or hit the recursion limit)
        pass


def _on_account(state: CaptureState, to_text: Callable[[Any], Any], value: Any,
                spent: int) -> tuple[Any, int]:
    """``to_text(value)`` with the thread's capture account at ``spent`` (what the call
    has spent so far), left at 0: (text, what the call has spent now)."""
    if spent:
        state.spent = spent
    try:
        text = to_text(value)
    finally:
        now = state.spent
        if now:
            state.spent = 0
    return text, now


def _clean_account(rt: Any) -> None:
    """After a capture that did not finish: the thread's account back to 0."""
    try:
        rt.capture_state.spent = 0
    except BaseException:
        pass


RECURSION_NOTE = (
    "otel-monitor: each call of a @monitor-decorated function adds one Python frame (its "
    "wrapper), so a recursion through it reaches sys.getrecursionlimit() at about half "
    "the depth the bare function reaches (see README, 'Recursion')")


def _note_recursion(exc: BaseException) -> None:
    """Say, once, on a RecursionError that went through many monitored calls, that our
    frames count towards the limit. The traceback grows as the error unwinds: the
    note is added at the first level that sees 10 or more wrapper frames in it, a
    quarter of its frames or more."""
    notes = getattr(exc, "__notes__", None)
    if notes is not None and RECURSION_NOTE in notes:
        return
    ours = total = 0
    tb = exc.__traceback__
    while tb is not None:
        total += 1
        if tb.tb_frame.f_code.co_filename == _WRAPPERS_FILE:
            ours += 1
        tb = tb.tb_next
    if ours >= 10 and 4 * ours >= total:
        exc.add_note(RECURSION_NOTE)


class LocalRecorder:
    """``otel_span=False``: a record on the queue, no span object.

    A call in flight is a list: [context token, (trace_id, span_id, is_local),
    parent span id, inputs, start ns, span, OTel context token, capture ns spent,
    weight] (span and OTel token for ``SpanRecorder``; weight: how many calls this one
    stands for under sampling, None for 1). The capture time spent is the call's
    budget account: its arguments' reprs, then its result's or yields' (see
    ``ValueFormatter``); nested calls in the body keep their own.
    """

    def __init__(self, site: CallSite, plan: CapturePlan, pipeline: CallPipeline, *,
                 log_inputs: bool, log_outputs: bool) -> None:
        self.site = site
        self.process = site.process
        self.plan = plan
        self.log_inputs = log_inputs
        self.log_outputs = log_outputs
        self.rt = pipeline
        self.queue = pipeline.queue  # lives as long as the process: bound here

    # The sync wrapper of a call always kept (sample=1.0) inlines begin and ok
    # (``_wrappers._inline_sync_wrapper``); SpanRecorder's calls go through them.
    inline = True

    def result_text(self, result: Any, spent: int) -> tuple[Any, int]:
        """(what ``ok`` records of a result, the call's capture account after it):
        rendered under what the call's budget has left (``spent``: its account so far)."""
        rt = self.rt
        to_text = rt.mask if self.plan.mask_return else rt.format
        if type(result) in UNTIMED:
            return to_text(result), spent
        return _on_account(rt.capture_state, to_text, result, spent)

    def begin_failed(self) -> None:
        """What ``begin`` does when recording a call's start failed."""
        _clean_account(self.rt)
        _warn("recording a call's start")

    @staticmethod
    def ok_failed() -> None:
        _warn("recording a call's result")

    def begin(self, args: tuple, kwargs: dict, enter: bool = True,
              start: int | None = None) -> list | None:
        """``start``: when the call started, if not now (a call kept at its end)."""
        try:
            rt = self.rt
            if not rt.ready and not rt.ensure_started():
                return None
            parent = CURRENT.get()
            if parent is None:
                ctx = _get_current_span().get_span_context()
                if ctx.is_valid:  # join the trace of, say, a FastAPI request span
                    trace_id, parent_id = ctx.trace_id, ctx.span_id
                else:
                    trace_id, parent_id = getrandbits(128) or 1, 0
            else:
                trace_id, parent_id = parent[0], parent[1]
            if self.log_inputs:
                inputs = self.plan.capture(args, kwargs, rt.format, rt.mask)
                state = rt.capture_state
                spent = state.spent  # the call's account, kept in the call
                if spent:
                    state.spent = 0  # 0 between captures
            else:
                inputs, spent = None, 0
            me = (trace_id, getrandbits(64) or 1, True)
            return [CURRENT.set(me) if enter else None, me, parent_id, inputs,
                    _time_ns() if start is None else start, None, None, spent, None]
        except BaseException:  # a __repr__ raising SystemExit… included
            self.begin_failed()
            return None

    def enter(self, call: list | None) -> None:
        if call is not None:
            call[0] = CURRENT.set(call[1])

    def leave(self, call: list | None) -> None:
        if call is not None and call[0] is not None:
            try:
                CURRENT.reset(call[0])
            except ValueError:  # resumed in another context (rare, for generators)
                pass
            call[0] = None

    def ok(self, call: list | None, result: Any) -> tuple | None:
        """Records a call that returned: the record queued (None when not recorded)."""
        # The hottest few lines of the project: helpers are inlined on purpose.
        end = _time_ns()
        if call is None:
            return None
        token = call[0]
        if token is not None:
            try:
                CURRENT.reset(token)
            except ValueError:
                pass
        try:
            rt = self.rt
            if self.log_outputs:
                if type(result) in UNTIMED:
                    output = rt.mask(result) if self.plan.mask_return else rt.format(result)
                else:  # under what the call's budget has left
                    output = self._output(result, call)
            else:
                output = None
            me = call[1]
            record = (self.process, me[0], me[1], call[2], call[4], end, C.OUTCOME_OK, None,
                      call[3], output, call[8])
            queue = self.queue
            if len(queue) < rt.fast_limit:
                queue.append(record)
            else:
                rt.overflow(record)
            return record
        except BaseException:  # a __repr__ raising SystemExit… included
            self.ok_failed()
            return None

    def yields(self, call: list | None) -> tuple[Callable[[Any], Any], int] | None:
        """(format, bound) for a generator's yielded values, or None when they are not
        recorded (call unsampled, outputs not logged). ``format`` renders under the
        call's budget (what its arguments and earlier yields left)."""
        if call is None or not self.log_outputs:
            return None
        rt = self.rt
        to_text = rt.mask if self.plan.mask_return else rt.format
        state = rt.capture_state

        def yielded(item: Any) -> Any:
            if type(item) in UNTIMED:
                return to_text(item)
            text, call[7] = _on_account(state, to_text, item, call[7])
            return text
        return yielded, rt.yield_values

    def ok_yields(self, call: list | None, result: Any, kept: list, count: int) -> None:
        """A generator finished: its return value, its first yields, their count."""
        end = _time_ns()
        if call is None:
            return
        self.leave(call)
        try:
            output = None
            if self.log_outputs:
                names = (*_yield_names(len(kept)), "yield_count", "return")
                output = Outputs((names, (*kept, count, self._output(result, call))))
            self._put(call, end, C.OUTCOME_OK, None, output)
        except BaseException:
            _warn("recording a generator's result")

    def fail(self, call: list | None, exc: BaseException, args: tuple, kwargs: dict,
             yields: tuple[list, int] | None = None, end: int | None = None) -> None:
        """A call that raised; or a generator that did (``yields``: its first yielded
        values kept and the count of all, recorded as when it runs to its end), or that
        was closed early (``GeneratorExit``: closed, abandoned, garbage collected).
        ``end``: when it ended, if not now (a call kept at its end)."""
        if end is None:
            end = _time_ns()
        if call is None:
            return
        self.leave(call)
        try:
            if type(exc) is RecursionError:
                _note_recursion(exc)
            outcome = outcome_of(exc)
            if outcome == C.OUTCOME_ERROR:
                call[8] = None  # a failure is recorded whatever the sampling: weight 1
            error = self._error(exc, args, kwargs, call) if outcome == C.OUTCOME_ERROR \
                else None
            output = None
            if yields is not None and self.log_outputs:
                kept, count = yields
                output = Outputs(((*_yield_names(len(kept)), "yield_count"), (*kept, count)))
            self._put(call, end, outcome, error, output)
            if error is not None:
                on_error = self.rt.on_error  # the alert engine, when exceptions alert
                if on_error is not None:
                    on_error(self.site, call[1], end, error, exc)
        except BaseException:  # a __repr__ raising SystemExit… included
            _warn("recording a failed call")

    def kept(self, start: int, end: int, args: tuple, kwargs: dict, result: Any,
             exc: BaseException | None, weight: float) -> None:
        """``sample="auto"``: a call the sampler kept at its end, recorded now, its
        arguments rendered now (as they are at its end: a call that mutates its
        arguments shows them mutated, as a failure under ``sample < 1`` does; copying
        them at the start would cost every call, dropped ones too). It nests under the
        caller's call (the context is the caller's again at the end); calls made inside
        it nest under that caller too, since it was not current while they ran."""
        call = self.begin(args, kwargs, enter=False, start=start)
        if call is None:
            return
        if exc is not None:
            self.fail(call, exc, args, kwargs, end=end)
            return
        if weight != 1.0:
            call[8] = weight
        try:
            self._put(call, end, C.OUTCOME_OK, None, self._output(result, call))
        except BaseException:  # a __repr__ raising SystemExit… included
            self.ok_failed()

    def fail_unsampled(self, start: int, exc: BaseException, args: tuple, kwargs: dict) -> None:
        """A call skipped by sampling raised: record it anyway, with its inputs as they
        are when it raised (capturing them at entry would cost every skipped call).
        Cancellation and early close are not failures: they stay unrecorded."""
        if not isinstance(exc, Exception):
            return
        call = self.begin(args, kwargs, enter=False)
        if call is not None:
            call[4] = start
            self.fail(call, exc, args, kwargs)

    def _put(self, call: list, end: int, outcome: str, error: tuple | None,
             output: str | None) -> None:
        me = call[1]
        record = (self.process, me[0], me[1], call[2], call[4], end, outcome, error, call[3],
                  output, call[8])
        queue = self.queue
        if len(queue) < self.rt.fast_limit:
            queue.append(record)
        else:
            self.rt.overflow(record)

    def _output(self, result: Any, call: list) -> str | None:
        """The result's text, under what the call's capture budget has left."""
        if not self.log_outputs:
            return None
        text, call[7] = self.result_text(result, call[7])
        return text

    def _error(self, exc: BaseException, args: tuple, kwargs: dict, call: list) -> tuple:
        """The failure as it is now: a snapshot of the traceback (no live frames kept,
        so a later ``add_note`` or the frames' locals do not leak into the store), the
        masked arguments' clear texts to scrub it with, and the monitored call further
        down it rose out of (``propagated_from``)."""
        # Our wrapper's frames (this call's and nested monitored calls') are left out,
        # and a deep traceback keeps its outermost and innermost TB_KEEP frames: an
        # error unwinding through N monitored levels snapshots each level's traceback,
        # which would cost O(N^2) frame summaries (seconds for a RecursionError).
        kept = []
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename != _WRAPPERS_FILE:
                kept.append(tb)
            tb = tb.tb_next
        omitted = 0
        if len(kept) > 2 * TB_KEEP:
            omitted = len(kept) - 2 * TB_KEEP
            kept = kept[:TB_KEEP] + kept[-TB_KEEP:]
        tb = None
        for link in reversed(kept):
            tb = types.TracebackType(tb, link.tb_frame, link.tb_lasti, link.tb_lineno)
        snapshot = traceback.TracebackException(type(exc), exc, tb, lookup_lines=False)
        if omitted:
            snapshot.stack.insert(TB_KEEP, traceback.FrameSummary(
                "<otel-monitor>", 0, f"[{omitted} frames not recorded]", lookup_line=False))
        try:
            message = str(exc)
        except BaseException:
            message = "<exception message unavailable: its __str__ raised>"
        # The masked texts to scrub, and their markers, whatever the call's capture
        # spent: a text left out would be a secret left in the message.
        state = self.rt.capture_state
        spent, state.spent = state.spent, UNBUDGETED
        try:
            secrets = _secrets_of(exc, self.plan.secrets(args, kwargs, self.rt.mask))
        finally:
            state.spent = spent
        return (exception_type_name(type(exc)), snapshot, message, secrets,
                propagated_from(exc, call[1], call[4]))


def _end_if_open(call: list | None) -> None:
    """End a call's span that recording it left open (the record failed; its warning is
    out): an open span never reaches the application's exporters."""
    if call is None:
        return
    span = call[5]
    try:
        if getattr(span, "end_time", 0) is None:
            span.end()
    except BaseException:
        _warn("ending a span")


class SpanRecorder(LocalRecorder):
    """``otel_span=True``: also a span of the process-wide tracer provider, so the call
    nests under other instrumentation's spans and reaches every exporter there.

    The SQLite store gets the same call as a record (the provider's processor skips
    spans of this tracer), which spares the writer thread reading span objects back.

    The per-call path of every ``otel_span=True`` call: the span gets every attribute
    known at its start in the one mapping it starts with (the SDK validates a mapping
    in one pass; ``set_attribute`` takes a lock and validates each value on its own),
    its context is attached with ``opentelemetry.context.attach``/``detach`` (no
    context manager), ``begin`` inlines its helpers, and ``ok`` ends the span from the
    record ``LocalRecorder.ok`` queued (its end time and output: rendered once).
    """

    inline = False

    def __init__(self, site: CallSite, plan: CapturePlan, pipeline: CallPipeline,
                 **flags: Any) -> None:
        super().__init__(site, plan, pipeline, **flags)
        # What every span of this call site starts with; each call copies it and adds
        # its inputs.
        self.static_attributes = {
            C.ATTR_CODE_FUNCTION: site.process,
            C.ATTR_PROCESS_GROUP: site.process_group,
        }
        if site.file:
            self.static_attributes[C.ATTR_CODE_FILE] = site.file
        if site.line:
            self.static_attributes[C.ATTR_CODE_LINE] = site.line
        self.input_key = plan.keys.__getitem__  # argument name -> its attribute key

    def begin(self, args: tuple, kwargs: dict, enter: bool = True,
              start: int | None = None) -> list | None:
        try:
            rt = self.rt
            if not rt.ready and not rt.ensure_started():
                return None
            attributes = self.static_attributes.copy()
            spent = 0
            if self.log_inputs:
                inputs = self.plan.capture(args, kwargs, rt.format, rt.mask)
                state = rt.capture_state
                spent = state.spent  # the call's account (see LocalRecorder.begin)
                if spent:
                    state.spent = 0
                values = inputs[1]
                if not _ATTRIBUTE_AS_IS.issuperset(map(type, values)):
                    values = map(attribute_value, values)
                attributes.update(zip(map(self.input_key, inputs[0]), values))
            else:
                inputs = None
            parent = CURRENT.get()
            parent_context = None
            parent_id = 0
            if parent is not None and parent[2]:
                # The nearest monitored caller is local-only: it is the parent in SQLite;
                # its trace id is kept when there is no OTel span to nest under.
                parent_id = parent[1]
                attributes[C.ATTR_LOCAL_PARENT] = "%016x" % parent_id
                if not _get_current_span().get_span_context().is_valid:
                    parent_context = trace.set_span_in_context(NonRecordingSpan(
                        SpanContext(parent[0], parent_id, False, _SAMPLED)))
            if start is None:
                start = _time_ns()
            span = rt.tracer.start_span(self.site.process, parent_context,
                                        attributes=attributes, start_time=start)
            ctx = span.get_span_context()
            if not parent_id:
                otel_parent = span.parent
                parent_id = otel_parent.span_id if otel_parent is not None else 0
            if parent is not None and type(parent[1]) is not int:
                # Inside a feed's tick handler: the marker's int subclass names the feed
                # (see _feeds); the record keeps it, with this call's real parent id.
                parent_id = type(parent[1])(parent_id)
            me = (ctx.trace_id, ctx.span_id, False)
            call = [None, me, parent_id, inputs, start, span, None, spent, None]
            if enter:
                call[6] = _attach(_set_span_in_context(span))
                call[0] = CURRENT.set(me)
            return call
        except BaseException:  # a __repr__ raising SystemExit… included
            _clean_account(self.rt)
            _warn("starting a span")
            return None

    def ok(self, call: list | None, result: Any) -> tuple | None:
        if call is None:
            return None
        otel_token = call[6]
        if otel_token is not None:  # the caller's OTel context back, as ``leave`` does
            call[6] = None
            _detach(otel_token)
        record = super().ok(call, result)  # the store's record: its end and output
        try:
            if record is not None:
                self._end_span(call, record[END_NS], C.OUTCOME_OK, None, record[OUTPUT])
        except BaseException:
            _warn("ending a span")
        _end_if_open(call)
        return record

    def ok_yields(self, call: list | None, result: Any, kept: list, count: int) -> None:
        super().ok_yields(call, result, kept, count)
        _end_if_open(call)

    def fail(self, call: list | None, exc: BaseException, args: tuple, kwargs: dict,
             yields: tuple[list, int] | None = None, end: int | None = None) -> None:
        super().fail(call, exc, args, kwargs, yields, end)
        _end_if_open(call)

    def enter(self, call: list | None) -> None:
        if call is not None:
            call[6] = _attach(_set_span_in_context(call[5]))
            call[0] = CURRENT.set(call[1])

    def leave(self, call: list | None) -> None:
        if call is None or call[6] is None:
            return
        try:
            CURRENT.reset(call[0])
        except ValueError:  # resumed in another context (rare, for generators)
            pass
        call[0] = None
        _detach(call[6])
        call[6] = None

    def _put(self, call: list, end: int, outcome: str, error: tuple | None,
             output: str | None) -> None:
        super()._put(call, end, outcome, error, output)
        self._end_span(call, end, outcome, error, output)

    @staticmethod
    def _end_span(call: list, end: int, outcome: str, error: tuple | None,
                  output: Any) -> None:
        """What the call's record says, as the span's last attributes, its exception
        event and status; then the span ends, when the record does."""
        span = call[5]
        if call[8] is not None:  # kept by sampling: ingest reads it back as spans.weight
            span.set_attribute(C.ATTR_SAMPLE_WEIGHT, call[8])
        if type(output) is Outputs:  # a generator's: yield[i]…, yield_count, return
            span.set_attributes({C.ATTR_OUTPUT_PREFIX + name: attribute_value(value)
                                 for name, value in zip(*output)})
        elif output is not None:
            span.set_attribute(C.ATTR_OUTPUT_RETURN, attribute_value(output))
        if error is not None:
            exc_type, text, message = error_texts(error)
            if error[ERR_PROPAGATED] is not None:
                span.set_attribute(C.ATTR_PROPAGATED_FROM, "%016x" % error[ERR_PROPAGATED])
            span.add_event("exception", {
                "exception.type": exc_type,
                "exception.message": message,
                "exception.stacktrace": text,  # (no exception.escaped: deprecated)
            }, timestamp=end)
            span.set_status(Status(StatusCode.ERROR, f"{exc_type}: {message}"))
        elif outcome != C.OUTCOME_OK:
            span.set_attribute(C.ATTR_OUTCOME, outcome)
        span.end(end_time=end)
