"""The alert engine: the rules of DESIGN.md, applied in the instrumented process.

A job on a ``BackgroundWorker`` ("otel-monitor-alerts"), started only when needed
(see ``otel_monitor.pipeline``), runs every ``CHECK_INTERVAL_S``, or at once when a
monitored call fails, and

* turns failed calls into ``exception`` alerts. A failing call hands the engine
  its error under a lock, on the error path only (``submit_error``); calls that
  succeed never reach it. A storm of identical errors (same process, same
  exception type) is one alert sent at once, then at most one per
  ``alert_group_window_s`` carrying how many more there were;
* judges every feed this process ticks: past its threshold, a ``feed_lag``
  trigger; on its next tick, a resolve;
* watches the export queue: deeper than ``backpressure_depth`` for
  ``backpressure_for_s`` raises the ``backpressure`` flag in the store (the UI's
  banner), refreshed every second and cleared when the queue drains; a webhook
  too only if ``alert_backpressure`` is set;
* has the feeds (twice a second, and at once when one goes stale or recovers), new
  feed -> process edges, the flag, and the outcome of every alert delivery (sent /
  failed / dropped) written to the store by ``persist.StateWriter``, a worker of its
  own: the engine never waits on SQLite.

Webhooks are posted by ``delivery.WebhookSender`` workers, one per URL.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any, Callable

from exporters.records import error_texts, storable
from exporters.state import AlertRecord
from exporters.worker import BackgroundWorker

from ..settings import Settings
from .delivery import WebhookSender
from .model import (BACKPRESSURE, EXCEPTION, FEED_LAG, RESOLVE, TRIGGER, Alert, clip,
                    dedup_key, iso, traceback_excerpt, ui_link)
from .payloads import PD_SUMMARY_MAX
from .persist import FeedBook, StateWriter
from ..webhooks import Target, parse_webhooks

_log = logging.getLogger("otel_monitor")

CHECK_INTERVAL_S = 0.1     # feed and queue checks; failed calls wake the engine at once
FLAG_REFRESH_S = 1.0       # a raised flag's heartbeat
SHUTDOWN_GRACE_S = 3.0     # for pending alerts when the process stops
MAX_ERROR_KEYS = 10_000    # distinct (process, exception type) pairs waiting for the engine

_NS = 1_000_000_000
_ALERTED_ATTR = "__otel_monitor_alerted__"


class _Group:
    """A storm of one (process, exception type): alerted once, then counted."""

    __slots__ = ("window_start_ns", "window_end_ns", "pending", "since_ns", "last")

    def __init__(self, window_start_ns: int, window_end_ns: int) -> None:
        self.window_start_ns = window_start_ns
        self.window_end_ns = window_end_ns
        self.pending = 0              # occurrences not alerted yet
        self.since_ns: int | None = None
        self.last: tuple | None = None


class AlertEngine:
    """``feeds``: the feeds to judge and the feed -> process edges (the pipeline's
    ``FeedRegistry``)."""

    def __init__(self, settings: Settings, feeds: FeedBook, *, service_name: str | None = None,
                 queue_depth: Callable[[], int] = lambda: 0,
                 check_interval_s: float = CHECK_INTERVAL_S,
                 shutdown_grace_s: float = SHUTDOWN_GRACE_S) -> None:
        self.settings = settings
        self.feeds = feeds
        self.service_name = service_name
        self.queue_depth = queue_depth
        self.check_interval_s = check_interval_s
        self.shutdown_grace_s = shutdown_grace_s
        self.targets: tuple[Target, ...] = parse_webhooks(settings.alert_webhooks,
                                                          settings.pagerduty_routing_key)
        # Builds each sender, importing httpx: only when a webhook is configured.
        self.senders = [WebhookSender(t, self._report, queue_size=settings.alert_queue_size,
                                      timeout_s=settings.alert_timeout_s,
                                      max_attempts=settings.alert_max_attempts,
                                      backoff_s=settings.alert_backoff_s)
                        for t in self.targets]
        self.ignore = frozenset(settings.alert_ignore_exceptions)
        self.window_ns = int(settings.alert_group_window_s * _NS)
        self.errors_dropped = 0   # distinct errors refused: MAX_ERROR_KEYS were waiting
        self.alerts_raised = 0
        self.state = StateWriter(settings.db_path, feeds, service_name=service_name,
                                 default_stale_after_s=settings.feed_stale_after_s,
                                 retention_hours=settings.retention_hours)
        self.worker = BackgroundWorker("otel-monitor-alerts", self._cycle_job,
                                       interval_s=check_interval_s, on_fork=self._init_state)
        self._init_state()

    def _init_state(self) -> None:
        """Also in a forked child: its errors, feeds and queue are its own."""
        self.state.worker.reset_if_forked()  # before the engine hands it anything
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._inbox: dict[tuple[str, str], list] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._stale: dict[str, int] = {}      # feed -> its last update when it went stale
        self._bp_since: int | None = None
        self._bp_raised = False
        self._bp_refresh_ns = 0

    @property
    def wants_errors(self) -> bool:
        """Whether failed calls should be handed over at all."""
        return bool(self.senders) and self.settings.alert_exceptions

    # -- producers: the error path of monitored calls ------------------------------

    def submit_error(self, site: Any, ids: tuple, end_ns: int, error: tuple,
                     exc: BaseException | None = None) -> None:
        """A monitored call raised ``exc``: ``ids`` = (trace_id, span_id, …), ``error`` as
        in a record. An exception that goes on up through more monitored calls alerts
        once, for the innermost (the callers' ERR rows are in the store all the same)."""
        if exc is not None:
            if getattr(exc, _ALERTED_ATTR, False):
                return
            try:
                setattr(exc, _ALERTED_ATTR, True)
            except (AttributeError, TypeError):  # an exception type without a __dict__
                pass
        exc_type = error[0]  # module.qualname (OTel's exception.type)
        if self.ignored(exc_type):
            return
        self._submit((site.process, exc_type), end_ns, ("record", site, ids, end_ns, error))

    def ignored(self, exc_type: str) -> bool:
        """Whether alerts on ``exc_type`` (fully qualified) are off: the setting names a
        type fully qualified or by its class name alone."""
        return exc_type in self.ignore or exc_type.rsplit(".", 1)[-1] in self.ignore

    def submit_span_error(self, span: Any) -> None:
        """A span of other instrumentation ended with status ERROR."""
        exc_type = "ERROR"
        for event in reversed(span.events):
            if event.name == "exception":
                exc_type = str((event.attributes or {}).get("exception.type") or exc_type)
                break
        if self.ignored(exc_type):
            return
        end = span.end_time or time.time_ns()
        self._submit((span.name, exc_type), end, ("span", span))

    def _submit(self, key: tuple[str, str], end_ns: int, event: tuple) -> None:
        self.worker.reset_if_forked()  # first: a forked child's reset would drop this
        with self._lock:
            entry = self._inbox.get(key)
            if entry is not None:
                entry[0] += 1
                return
            if len(self._inbox) >= MAX_ERROR_KEYS:
                self.errors_dropped += 1
                return
            self._inbox[key] = [1, end_ns, event]
        self.worker.wake()

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Watch from now on (idempotent); the engine's threads start here at the
        earliest, the senders' at their first alert."""
        if not self.worker.running:
            self.worker.wake()
            self.state.start()

    def shutdown(self) -> None:
        """Apply the rules one last time, give pending alerts ``shutdown_grace_s`` to go
        out, record what became of them, and close the store."""
        if self.worker.running:
            self.worker.stop(10)
        elif self._has_errors():
            self._cycle(time.time_ns(), final=True)  # the thread had no time to start
        deadline = time.monotonic() + self.shutdown_grace_s
        for sender in self.senders:
            sender.request_stop(deadline)
        for sender in self.senders:
            sender.finish(deadline)
        if self._bp_raised:  # this process no longer stands behind its banner
            self._set_flag(time.time_ns(), raised=False, depth=self.queue_depth())
        self.state.shutdown()

    def _has_errors(self) -> bool:
        with self._lock:
            return bool(self._inbox)

    def idle(self) -> bool:
        """Nothing waiting: no error to judge, no alert pending, no outcome unwritten."""
        return not self._has_errors() and self.state.idle() and all(
            s.idle() for s in self.senders)

    def after_fork_in_child(self) -> None:
        """At fork, in the child: watch there too if the parent did (the child's feeds
        tick without telling anyone)."""
        if self.worker.was_started:
            self.start()

    # -- the engine's job --------------------------------------------------------------

    def _cycle_job(self, *, final: bool, flushing: bool) -> None:
        self._cycle(time.time_ns(), final=final)

    def _cycle(self, now: int, final: bool = False) -> None:
        self._take_errors(now)
        self._flush_groups(now, final)
        self._check_feeds(now)
        self._check_backpressure(now)

    def _dispatch(self, alert: Alert) -> None:
        self.alerts_raised += 1
        for sender in self.senders:
            sender.submit(alert)

    def _report(self, alert: Alert, target: Target, status: str, attempts: int,
                error: str | None) -> None:
        """From the sender threads: how a delivery ended (to the store)."""
        self.state.add_result(AlertRecord(
            ts_ns=alert.time_ns, rule=alert.rule, action=alert.action, key=alert.key,
            target=target.label, status=status, attempts=attempts, count=alert.count,
            # clipped as PagerDuty's summary is: a 1 MB message is not a 1 MB row
            summary=clip(alert.summary, PD_SUMMARY_MAX), error=error, process=alert.process,
            span_id=alert.span_id,
            trace_id=alert.trace_id, feed=alert.feed, done_ns=time.time_ns()))

    # -- rule: unhandled exception ------------------------------------------------------

    def _take_errors(self, now: int) -> None:
        with self._lock:
            if not self._inbox:
                return
            inbox, self._inbox = self._inbox, {}
        for key, (count, end_ns, event) in inbox.items():
            group = self._groups.get(key)
            if group is None:
                self._groups[key] = _Group(now, now + self.window_ns)
                self._dispatch(self._exception_alert(event, count))
            else:
                group.pending += count
                group.last = event
                if group.since_ns is None:
                    group.since_ns = end_ns

    def _flush_groups(self, now: int, final: bool) -> None:
        for key, group in list(self._groups.items()):
            if now < group.window_end_ns and not final:
                continue
            if group.pending and group.last is not None:
                self._dispatch(self._exception_alert(group.last, group.pending, group.since_ns,
                                                     (now - group.window_start_ns) / _NS))
                group.pending, group.since_ns, group.last = 0, None, None
                group.window_start_ns, group.window_end_ns = now, now + self.window_ns
            else:
                del self._groups[key]

    def _exception_alert(self, event: tuple, count: int, since_ns: int | None = None,
                         over_s: float = 0.0) -> Alert:
        """The alert for ``event``; with ``since_ns``, the digest of ``count`` more
        occurrences over the last ``over_s`` seconds."""
        if event[0] == "record":
            _, site, ids, end_ns, error = event
            exc_type, text, message = error_texts(error)
            process, group = site.process, site.process_group
            trace_id, span_id = "%032x" % ids[0], "%016x" % ids[1]
        else:
            span = event[1]
            process, end_ns = span.name, span.end_time or time.time_ns()
            attrs = span.attributes or {}
            group = attrs.get("monitor.process_group")
            exc_type, message, text = "ERROR", span.status.description or "", ""
            for ev in reversed(span.events):
                if ev.name == "exception":
                    ea = ev.attributes or {}
                    exc_type = str(ea.get("exception.type") or exc_type)
                    message = storable(str(ea.get("exception.message") or message))
                    text = storable(str(ea.get("exception.stacktrace") or ""))
                    break
            ctx = span.context
            trace_id, span_id = "%032x" % ctx.trace_id, "%016x" % ctx.span_id
        first_line = message.strip().splitlines()[0] if message.strip() else ""
        if since_ns is not None:
            span = f"{over_s:.0f}" if over_s >= 10 else f"{over_s:.1f}"
            summary = (f"{exc_type} in {process}: {count:,} more time(s) in the last "
                       f"{span} s; latest: {first_line}")
        else:
            summary = f"{exc_type} in {process}" + (f": {first_line}" if first_line else "")
            if count > 1:
                summary += f" ({count:,} times)"
        return Alert(
            rule=EXCEPTION, action=TRIGGER, key=dedup_key("exception", process, exc_type),
            severity="error",
            title=f"{exc_type} in {'.'.join(process.rsplit('.', 2)[-2:])}"
                  + (f" (×{count:,})" if count > 1 else ""),
            summary=summary, time_ns=end_ns, count=count, since_ns=since_ns, process=process,
            process_group=group, exception_type=exc_type, exception_message=message,
            traceback=traceback_excerpt(text) if text else None, span_id=span_id,
            trace_id=trace_id,
            link=ui_link(self.settings.ui_url, process=process, span_id=span_id,
                         trace_id=trace_id),
            service=self.service_name, host=self.host, pid=self.pid)

    # -- rule: feed lag -----------------------------------------------------------------

    def _check_feeds(self, now: int) -> None:
        default = self.settings.feed_stale_after_s
        for f in list(self.feeds.feeds.values()):
            last = f.last_ns
            if not last:
                continue  # watched from its first tick in this process
            threshold = f.stale_after_s or default
            went_stale = self._stale.get(f.name)
            if went_stale is None:
                if now - last > threshold * _NS:
                    self._stale[f.name] = last
                    self.state.stale.add(f.name)
                    self.state.persist_soon()  # the UI sees it at once
                    if self.settings.alert_feed_lag:
                        self._dispatch(self._feed_alert(f, TRIGGER, now, last, threshold))
            elif last != went_stale:
                del self._stale[f.name]
                self.state.stale.discard(f.name)
                self.state.persist_soon()
                if self.settings.alert_feed_lag:
                    self._dispatch(self._feed_alert(f, RESOLVE, now, went_stale, threshold))

    def _feed_alert(self, f: Any, action: str, now: int, last_ok: int,
                    threshold: float) -> Alert:
        readers = sorted({p for feed, p, *_ in self.feeds.edges() if feed == f.name})
        fields: dict[str, Any] = {}
        if action == TRIGGER:
            age = (now - last_ok) / _NS
            title = f"Feed {f.name} is stale"
            summary = (f"Feed {f.name} is stale: no update for {age:.1f} s "
                       f"(threshold {threshold:g} s)")
            when, severity = last_ok + int(threshold * _NS), "critical"
            fields["Last update"] = iso(last_ok)
        else:
            gap = (f.last_ns - last_ok) / _NS
            title = f"Feed {f.name} is updating again"
            summary = f"Feed {f.name} is updating again after {gap:.1f} s without an update"
            when, severity = f.last_ns, "info"
        fields["Threshold"] = f"{threshold:g} s"
        if f.interval_s:
            fields["Expected interval"] = f"{f.interval_s:g} s"
        if readers:
            fields["Read by"] = ", ".join(readers[:10]) + (" …" if len(readers) > 10 else "")
        return Alert(rule=FEED_LAG, action=action, key=dedup_key("feed", f.name),
                     severity=severity, title=title, summary=summary, time_ns=when,
                     feed=f.name, link=ui_link(self.settings.ui_url, feed=f.name),
                     service=self.service_name, host=self.host, pid=self.pid, fields=fields)

    # -- rule: queue backpressure ---------------------------------------------------------

    def _check_backpressure(self, now: int) -> None:
        s = self.settings
        depth = self.queue_depth()
        if depth > s.backpressure_depth:
            if self._bp_since is None:
                self._bp_since = now
            if not self._bp_raised and now - self._bp_since >= s.backpressure_for_s * _NS:
                self._bp_raised = True
                self._set_flag(now, raised=True, depth=depth)
                if s.alert_backpressure:
                    self._dispatch(self._backpressure_alert(TRIGGER, now, depth))
            elif self._bp_raised and now >= self._bp_refresh_ns:
                self._set_flag(now, raised=True, depth=depth)
        else:
            self._bp_since = None
            if self._bp_raised:
                self._bp_raised = False
                self._set_flag(now, raised=False, depth=depth)
                if s.alert_backpressure:
                    self._dispatch(self._backpressure_alert(RESOLVE, now, depth))

    def _backpressure_message(self, depth: int) -> str:
        s = self.settings
        return (f"export queue above {s.backpressure_depth:,} calls for "
                f"{s.backpressure_for_s:g} s (now {depth:,}): the writer is behind and "
                "calls may be dropped")

    def _set_flag(self, now: int, *, raised: bool, depth: int) -> None:
        self._bp_refresh_ns = now + int(FLAG_REFRESH_S * _NS)
        self.state.set_flag(raised=raised, since_ns=self._bp_since, value=float(depth),
                            message=self._backpressure_message(depth) if raised else None)

    def _backpressure_alert(self, action: str, now: int, depth: int) -> Alert:
        if action == TRIGGER:
            title, summary = "Export queue backpressure", self._backpressure_message(depth)
        else:
            title = summary = f"Export queue back under {self.settings.backpressure_depth:,}"
        return Alert(rule=BACKPRESSURE, action=action,
                     key=dedup_key("backpressure", self.host, str(self.pid)),
                     severity="warning" if action == TRIGGER else "info", title=title,
                     summary=summary, time_ns=now, link=ui_link(self.settings.ui_url),
                     service=self.service_name, host=self.host, pid=self.pid,
                     fields={"Queue depth": f"{depth:,}"})

