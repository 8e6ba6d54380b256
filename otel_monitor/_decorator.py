"""``@monitor``: validate once, decide once, return the right wrapper.

The decorated function records into the process's pipeline (``pipeline.PIPELINE``),
handed to its recorder here, at decoration."""
from __future__ import annotations

import inspect
import numbers
from typing import Any, Callable, Iterable, Literal, TypeVar

from exporters.errors import ConfigError
from exporters.records import CallSite

from ._capture_plan import CapturePlan
from ._recorders import LocalRecorder, SpanRecorder
from ._sampling import auto_sampler
from ._wrappers import async_generator_wrapper, async_wrapper, generator_wrapper, sync_wrapper
from .pipeline import PIPELINE

F = TypeVar("F", bound=Callable[..., Any])


def monitor(process_group: str, sample: float | Literal["auto"] = 1.0,
            mask: Iterable[str] = (), log_inputs: bool = True, log_outputs: bool = True,
            otel_span: bool = False, feeds: Iterable[str] = (),
            target_per_s: float | None = None) -> Callable[[F], F]:
    """Record every call of the decorated function as a span with its inputs and output.

    ``process_group``: a logical group (``"pricing"``). ``sample``: the fraction of
    calls recorded, each weighing 1/sample in counts (a call that raises is always
    recorded, weighing 1); or ``"auto"``: adaptive,
    keeping about ``target_per_s`` calls a second of this function (default: the
    ``sample_target_per_s`` setting), always its failures and its calls slower than its
    rolling p99, each kept call weighted by 1/(its probability of being kept) so that
    counts stay unbiased estimates (see ``otel_monitor._sampling``). ``mask``: argument
    names (and ``"return"``) stored only as a keyed hash, on top of the default
    sensitive names. ``otel_span=True``: a span of the process-wide OpenTelemetry
    tracer provider (exported wherever it exports); ``False``: recorded locally only.
    ``feeds``: names of the market-data feeds the function reads (feed -> process edges
    of the dependency graph; see ``otel_monitor.feed``).
    """
    if callable(process_group):
        raise TypeError("@monitor needs a process group: write @monitor('pricing'), "
                        "not a bare @monitor")
    if not isinstance(process_group, str) or not process_group.strip():
        raise TypeError(f"process_group must be a non-empty string, got {process_group!r}")
    process_group = _plain(process_group)
    auto = isinstance(sample, str)
    if auto and sample != "auto":
        raise ConfigError(f'sample must be a number in [0, 1] or "auto", got {sample!r}')
    if not auto and (isinstance(sample, bool) or not isinstance(sample, numbers.Real)
                     or not 0 <= sample <= 1):
        raise ValueError(f"sample must be a number in [0, 1], got {sample!r}")
    if target_per_s is not None:
        if (isinstance(target_per_s, bool) or not isinstance(target_per_s, numbers.Real)
                or not target_per_s > 0 or target_per_s == float("inf")):
            raise ConfigError(f"target_per_s must be a number > 0, got {target_per_s!r}")
        if not auto:
            raise ConfigError('target_per_s is the target of sample="auto"; '
                              f"with sample={sample!r} it would be ignored")
        target_per_s = float(target_per_s)
    if isinstance(mask, str):
        mask = (mask,)
    mask = tuple(mask)
    for name in mask:
        if not isinstance(name, str):
            raise TypeError(f"mask must be argument names (strings), got {name!r}")
    if not auto:
        sample = float(sample)
    if isinstance(feeds, str):
        feeds = (feeds,)
    feeds = tuple(feeds)
    for name in feeds:
        if not isinstance(name, str) or not name.strip():
            raise TypeError(f"feeds must be feed names (non-empty strings), got {name!r}")
    feeds = tuple(map(_plain, feeds))

    def decorate(fn: F) -> F:
        if isinstance(fn, (staticmethod, classmethod)):
            return type(fn)(decorate(fn.__func__))  # type: ignore[return-value]
        if isinstance(fn, type) or not callable(fn):
            raise TypeError(f"@monitor decorates functions and methods, not {fn!r}")
        site = _site(fn, process_group)
        handler_of = getattr(fn, "__otel_monitor_feed__", None)  # @monitor over @feed
        site.feeds = tuple(dict.fromkeys((*feeds, *((handler_of,) if handler_of else ()))))
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):  # no signature: mask names cannot be checked
            signature = inspect.Signature([inspect.Parameter(
                "args", inspect.Parameter.VAR_POSITIONAL)])
        else:
            _check_mask(fn, signature, mask)
        plan = CapturePlan(signature, mask)
        recorder_cls = SpanRecorder if otel_span else LocalRecorder
        recorder = recorder_cls(site, plan, PIPELINE, log_inputs=log_inputs,
                                log_outputs=log_outputs)
        target = inspect.unwrap(fn)
        if inspect.isasyncgenfunction(target):
            make = async_generator_wrapper
        elif inspect.isgeneratorfunction(target):
            make = generator_wrapper
        elif inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(fn):
            make = async_wrapper
        else:
            make = sync_wrapper
        policy = auto_sampler(target_per_s, PIPELINE.sample_target) if auto else sample
        wrapper = make(fn, recorder, policy)
        wrapper.__otel_monitor__ = site  # type: ignore[attr-defined]
        PIPELINE.register(site)
        return wrapper  # type: ignore[return-value]

    return decorate


def _check_mask(fn: Callable, signature: inspect.Signature, mask: tuple[str, ...]) -> None:
    """A name in ``mask`` that the function does not have would store the value it was
    meant to hide in clear: refused at decoration."""
    params = tuple(signature.parameters)
    unknown = [name for name in mask if name != "return" and name not in params]
    if unknown:
        name = getattr(fn, "__qualname__", None) or repr(fn)
        raise ConfigError(
            f"@monitor(mask=...) names {', '.join(map(repr, unknown))}, which "
            f"{'is not a parameter' if len(unknown) == 1 else 'are not parameters'} of "
            f"{name}; its parameters: {', '.join(params) or '(none)'} (and 'return')")


def _plain(name: str) -> str:
    """A name given as a str subclass (a string enum's member) as its plain value:
    ``str()`` of a ``(str, Enum)`` member is ``'Group.PRICING'``, not ``'pricing'``."""
    return name if type(name) is str else str.__str__(name)


def _site(fn: Callable, process_group: str) -> CallSite:
    target = inspect.unwrap(fn)
    module = getattr(target, "__module__", None) or "<unknown>"
    qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", repr(target))
    code = getattr(target, "__code__", None)
    return CallSite(
        process=f"{module}.{qualname}",
        process_group=process_group,
        file=code.co_filename if code is not None else None,
        line=code.co_firstlineno if code is not None else None,
        function=target,
    )
