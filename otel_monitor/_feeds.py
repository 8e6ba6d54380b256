"""Market-data feeds: ``@feed`` on a tick handler, ``tick(name)`` where there is none.

A tick records a timestamp and a count on the feed's object: no span, no queue,
no lock (about 0.1 µs). The alert engine reads the feeds from another thread,
judges them stale past their threshold, and writes them to the store twice a
second, so the UI (another process) sees them.

Feed -> process edges, for the dependency graph, come two ways:

* declared: ``@monitor(..., feeds=("bbg.fx",))`` says the process reads the feed;
* called: a monitored function called directly inside a feed's tick handler. The
  handler makes the current-call marker (``_context.CURRENT``) say so, at no cost
  to monitored calls: its parent id is an ``int`` of a per-feed subclass with the
  same value the call's parent id would have had, so the record carries the feed
  without one more field, and the writer thread, which sees every record anyway,
  notes the edge (``observe_batch``). Calls further down are not edges of the feed.

A handler that runs outside any monitored call and any OpenTelemetry span starts
one trace for what it calls: the calls made for one tick share a trace id.

A feed may keep **hours** (``hours="Mon-Fri 07:00-22:00", tz="Europe/London",
holidays=("2026-12-25",)``, see ``otel_monitor.schedules``): outside them it is
never stale (the store and the UI say ``closed``), and when they begin it has one
interval of grace. ``failures_before_alert=N`` alerts only after N missed intervals
in a row, ``recoveries_before_resolve=M`` resolves only after M ticks in a row on
time (the engine applies them; see ``alerts.engine``). Every declaration is checked
when it is made: a bad one raises ``ConfigError`` at decoration.

The feeds of a process live in a ``FeedRegistry`` owned by the pipeline; ``feed``
and ``tick`` are its methods, bound in ``otel_monitor``'s namespace.
"""
from __future__ import annotations

import functools
import inspect
import logging
import numbers
import time
from random import getrandbits
from typing import Any, Callable, Iterable, Mapping, TypeVar

from opentelemetry.context import get_current as _otel_context

from exporters.errors import ConfigError
from exporters.records import CallSite

from ._context import CURRENT, get_current_span
from .schedules import Hours, parse_hours

F = TypeVar("F", bound=Callable[..., Any])
_log = logging.getLogger("otel_monitor")

FEED_ATTR = "__otel_monitor_feed__"

_time_ns = time.time_ns


class FeedParent(int):
    """A parent span id that also says "called inside the tick handler of ``feed``".

    Its value is the real parent id (0 for none): everything that reads it as an int
    is unaffected. One subclass per feed, made by ``Feed``."""

    __slots__ = ()
    feed: str = ""


class Feed:
    """One feed: its declaration and its last update, as this process sees it."""

    __slots__ = ("name", "interval_s", "stale_after_s", "last_ns", "ticks", "parent_type",
                 "root_parent", "hours", "failures_before_alert", "recoveries_before_resolve")

    def __init__(self, name: str, interval_s: float | None, stale_after_s: float | None) -> None:
        self.name = name
        self.interval_s = interval_s
        self.stale_after_s = stale_after_s  # None: the feed_stale_after_s setting
        self.last_ns = 0                    # 0: not ticked yet
        self.ticks = 0
        self.hours: Hours | None = None     # None: always open
        self.failures_before_alert = 1
        self.recoveries_before_resolve = 1
        self.parent_type = type(f"FeedParent[{name}]", (FeedParent,),
                                {"__slots__": (), "feed": name})
        self.root_parent = self.parent_type(0)  # the marker's parent id outside any call

    def __repr__(self) -> str:
        return (f"Feed({self.name!r}, interval_s={self.interval_s}, "
                f"stale_after_s={self.stale_after_s}, ticks={self.ticks})")


Edge = tuple[str, str, bool, bool]  # (feed, process, declared, called)


def _check_seconds(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)


def _check_count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


_UNSET: Any = object()  # hours= not given (None given: always open again)


class FeedRegistry:
    """Every feed this process declared or ticked, by name, and the feed -> process edges.

    ``sites``: the pipeline's call sites (their declared feeds are edges).
    ``on_new``: called with no argument when a feed or a feed-reading site appears
    (the pipeline starts what writes feeds to the store then, not before)."""

    def __init__(self, sites: Mapping[str, CallSite],
                 on_new: Callable[[], None] = lambda: None) -> None:
        self.feeds: dict[str, Feed] = {}
        # (feed, process) edges seen by the writer thread: processes called in a handler.
        self.called_edges: set[tuple[str, str]] = set()
        self.handlers_ran = False
        self.sites = sites
        self.on_new = on_new

    def __bool__(self) -> bool:
        """Whether there is anything to watch or write: a feed, or a declared edge."""
        return bool(self.feeds) or any(site.feeds for site in list(self.sites.values()))

    def declare(self, name: str, interval_s: float | None = None,
                stale_after_s: float | None = None, *, hours: Any = _UNSET,
                tz: str | None = None, holidays: Iterable[Any] = (),
                failures_before_alert: int | None = None,
                recoveries_before_resolve: int | None = None) -> Feed:
        """The feed ``name``, created if new; given values replace what was declared.
        ``ConfigError`` (a ``ValueError``) for a bad value, naming it."""
        if not isinstance(name, str) or not name.strip():
            raise TypeError(f"a feed name must be a non-empty string, got {name!r}")
        interval_s = _check_seconds("interval_s", interval_s)
        stale_after_s = _check_seconds("stale_after_s", stale_after_s)
        failures = _check_count("failures_before_alert", failures_before_alert)
        recoveries = _check_count("recoveries_before_resolve", recoveries_before_resolve)
        given_hours = hours is not _UNSET
        parsed = parse_hours(None if hours is _UNSET else hours, tz, holidays,
                             what=f"feed {name!r}")
        found = self.feeds.get(name)
        if found is None:
            found = self.feeds.setdefault(name, Feed(name, interval_s, stale_after_s))
            self.on_new()
        if interval_s is not None:
            found.interval_s = interval_s
        if stale_after_s is not None:
            found.stale_after_s = stale_after_s
        if given_hours:
            found.hours = parsed
        if failures is not None:
            found.failures_before_alert = failures
        if recoveries is not None:
            found.recoveries_before_resolve = recoveries
        return found

    def tick(self, name: str, **declaration: Any) -> None:
        """Record an update of feed ``name`` now (declaring it with defaults if new).

        For code with no handler to wrap; costs a timestamp, no span. ``declaration``:
        what ``feed`` takes (``interval_s``, ``hours``, ``tz``, …), applied when given
        (a bad one is logged once per call, never raised into the caller: declare it
        with ``feed(name, …)`` to have it checked)."""
        f = self.feeds.get(name)
        if f is None or declaration:
            try:
                f = self.declare(name, **declaration)
            except (TypeError, ValueError):
                _log.warning("otel-monitor: tick(%r): bad declaration %r", name, declaration,
                             exc_info=True)
                if f is None:
                    return  # monitoring never raises into the caller
        f.last_ns = _time_ns()
        f.ticks += 1  # read by the engine; exact unless two threads tick at the same instant

    def _handler_starts(self, f: Feed) -> Any:
        """A tick, and the feed's marker made current for the handler's calls."""
        f.last_ns = _time_ns()
        f.ticks += 1
        self.handlers_ran = True
        return CURRENT.set(_marker(f))

    def feed(self, name: str, interval_s: float | None = None,
             stale_after_s: float | None = None, *, hours: Any = _UNSET,
             tz: str | None = None, holidays: Iterable[Any] = (),
             failures_before_alert: int | None = None,
             recoveries_before_resolve: int | None = None) -> Callable[[F], F]:
        """Declare feed ``name`` and return a decorator for its tick handler: each call of
        the handler is an update, and monitored functions it calls are edges of the feed.

        ``interval_s``: the expected time between updates (the graph reddens an edge past
        twice that). ``stale_after_s``: past this age the feed is stale and alerts
        (default: the ``feed_stale_after_s`` setting, 10 s). ``hours`` (one or more
        windows, ``;``-separated, e.g. ``"Mon-Fri 07:00-22:00"``) in ``tz`` (an IANA
        name, default UTC) minus ``holidays`` (dates): outside them the feed is not
        stale. ``failures_before_alert``: missed intervals in a row before it alerts;
        ``recoveries_before_resolve``: ticks in a row on time before it resolves. A bad
        value raises ``ConfigError`` here. Calling ``feed(...)`` alone, decorating
        nothing, declares the feed for ``tick(name)``."""
        f = self.declare(name, interval_s, stale_after_s, hours=hours, tz=tz,
                         holidays=holidays, failures_before_alert=failures_before_alert,
                         recoveries_before_resolve=recoveries_before_resolve)
        handler_starts = self._handler_starts
        on_new = self.on_new

        def decorate(fn: F) -> F:
            if isinstance(fn, (staticmethod, classmethod)):
                return type(fn)(decorate(fn.__func__))  # type: ignore[return-value]
            target = inspect.unwrap(fn)
            if isinstance(fn, type) or not callable(fn) or inspect.isgeneratorfunction(target) \
                    or inspect.isasyncgenfunction(target):
                raise TypeError(f"@feed decorates a tick handler (a function or coroutine "
                                f"function), not {fn!r}")
            site = getattr(fn, "__otel_monitor__", None)
            if site is not None and name not in site.feeds:  # @feed over @monitor
                site.feeds = (*site.feeds, name)
                on_new()

            if inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(fn):
                async def wrapper(*args, **kwargs):
                    token = handler_starts(f)
                    try:
                        return await fn(*args, **kwargs)
                    finally:
                        CURRENT.reset(token)
            else:
                def wrapper(*args, **kwargs):
                    token = handler_starts(f)
                    try:
                        return fn(*args, **kwargs)
                    finally:
                        CURRENT.reset(token)
            wrapper = functools.wraps(fn)(wrapper)
            setattr(wrapper, FEED_ATTR, name)
            return wrapper  # type: ignore[return-value]

        return decorate

    def observe_batch(self, batch: Iterable[Any]) -> None:
        """On the writer thread, for each batch it wrote: note the edges of calls made
        directly inside a feed's handler (their parent id is a ``FeedParent``)."""
        if not self.handlers_ran:
            return
        for item in batch:
            if type(item) is tuple:
                parent = item[3]
                if type(parent) is not int and isinstance(parent, FeedParent):
                    self.called_edges.add((parent.feed, item[0]))

    def edges(self) -> set[Edge]:
        """Every feed -> process edge this process knows: declared by
        ``@monitor(feeds=…)`` (or ``@monitor`` over a tick handler), or called."""
        edges = {(feed, process, False, True) for feed, process in self.called_edges.copy()}
        for site in list(self.sites.values()):
            for feed in site.feeds:
                edges.add((feed, site.process, True, False))
        return edges

    def after_fork_in_child(self) -> None:
        """A forked child has ticked nothing yet: the parent's ticks are the parent's."""
        for f in list(self.feeds.values()):
            f.last_ns = 0
            f.ticks = 0


def _marker(f: Feed) -> tuple:
    """The current-call marker for the duration of a handler (see the module's doc)."""
    parent = CURRENT.get()
    if parent is not None:
        return (parent[0], f.parent_type(parent[1]), parent[2])
    if _otel_context():  # an empty OTel context holds no span: skip the lookup
        ctx = get_current_span().get_span_context()
        if ctx.is_valid:
            return (ctx.trace_id, f.parent_type(ctx.span_id), False)
    return (getrandbits(128) or 1, f.root_parent, False)
