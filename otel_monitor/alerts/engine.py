"""The alert engine: the rules of DESIGN.md, applied in the instrumented process.

One daemon thread ("otel-monitor-alerts") wakes every ``CHECK_INTERVAL_S``, or at
once when a monitored call fails, and

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
* writes the feeds (twice a second), new feed -> process edges, the flag, and the
  outcome of every alert delivery (sent / failed / dropped) to the store.

Webhooks are posted by ``delivery.WebhookSender`` threads, one per URL.
"""
from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
import weakref
from collections import deque
from typing import Any, Callable

from exporters.records import SITES, error_texts, storable
from exporters.state import FLAG_BACKPRESSURE, AlertRecord, FeedState, StateStore

from .. import _feeds
from .._config import Settings
from .delivery import WebhookSender
from .model import (BACKPRESSURE, EXCEPTION, FEED_LAG, RESOLVE, TRIGGER, Alert, dedup_key,
                    iso, traceback_excerpt, ui_link)
from .targets import Target, parse_webhooks

_log = logging.getLogger("otel_monitor")

CHECK_INTERVAL_S = 0.1     # feed and queue checks; failed calls wake the engine at once
PERSIST_INTERVAL_S = 0.5   # feeds and edges to the store
FLAG_REFRESH_S = 1.0       # a raised flag's heartbeat
PURGE_INTERVAL_S = 60.0    # alerts older than the retention window
SHUTDOWN_GRACE_S = 3.0     # for pending alerts when the process stops
MAX_ERROR_KEYS = 10_000    # distinct (process, exception type) pairs waiting for the engine
MAX_RESULTS = 100_000      # delivery outcomes waiting to be written

_NS = 1_000_000_000


class _Group:
    """A storm of one (process, exception type): alerted once, then counted."""

    __slots__ = ("window_end_ns", "pending", "since_ns", "last")

    def __init__(self, window_end_ns: int) -> None:
        self.window_end_ns = window_end_ns
        self.pending = 0              # occurrences not alerted yet
        self.since_ns: int | None = None
        self.last: tuple | None = None


class AlertEngine:
    def __init__(self, settings: Settings, *, service_name: str | None = None,
                 queue_depth: Callable[[], int] = lambda: 0,
                 check_interval_s: float = CHECK_INTERVAL_S,
                 shutdown_grace_s: float = SHUTDOWN_GRACE_S) -> None:
        self.settings = settings
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
        self._init_state()

    def _init_state(self) -> None:
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._inbox: dict[tuple[str, str], list] = {}
        self._results: deque[AlertRecord] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._store: StateStore | None = None
        self._store_failed = False
        self._groups: dict[tuple[str, str], _Group] = {}
        self._stale: dict[str, int] = {}      # feed -> its last update when it went stale
        self._bp_since: int | None = None
        self._bp_raised = False
        self._bp_refresh_ns = 0
        self._edges_written: set[tuple[str, str, bool, bool]] = set()
        self._next_persist_ns = 0
        self._next_purge_ns = 0

    @property
    def wants_errors(self) -> bool:
        """Whether failed calls should be handed over at all."""
        return bool(self.senders) and self.settings.alert_exceptions

    # -- producers: the error path of monitored calls ------------------------------

    def submit_error(self, site: Any, ids: tuple, end_ns: int, error: tuple) -> None:
        """A monitored call raised: ``ids`` = (trace_id, span_id, …), ``error`` as in a record."""
        exc_type = error[0]
        if exc_type in self.ignore:
            return
        self._submit((site.process, exc_type), end_ns, ("record", site, ids, end_ns, error))

    def submit_span_error(self, span: Any) -> None:
        """A span of other instrumentation ended with status ERROR."""
        exc_type = "ERROR"
        for event in reversed(span.events):
            if event.name == "exception":
                exc_type = str((event.attributes or {}).get("exception.type") or exc_type)
                break
        if exc_type in self.ignore or exc_type.rsplit(".", 1)[-1] in self.ignore:
            return
        end = span.end_time or time.time_ns()
        self._submit((span.name, exc_type), end, ("span", span))

    def _submit(self, key: tuple[str, str], end_ns: int, event: tuple) -> None:
        with self._lock:
            entry = self._inbox.get(key)
            if entry is not None:
                entry[0] += 1
                return
            if len(self._inbox) >= MAX_ERROR_KEYS:
                self.errors_dropped += 1
                return
            self._inbox[key] = [1, end_ns, event]
        self._wake.set()

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        for sender in self.senders:
            sender.start()
        self._thread = threading.Thread(target=self._run, name="otel-monitor-alerts",
                                        daemon=True)
        self._thread.start()
        _live.add(self)

    def shutdown(self) -> None:
        """Apply the rules one last time, give pending alerts ``shutdown_grace_s`` to go
        out, record what became of them, and close the store."""
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)
        deadline = time.monotonic() + self.shutdown_grace_s
        for sender in self.senders:
            sender.request_stop(deadline)
        for sender in self.senders:
            sender.finish(deadline)
        try:
            if self._bp_raised:
                self._set_flag(time.time_ns(), raised=False, depth=self.queue_depth())
            self._persist(time.time_ns(), final=True)
        except Exception:
            _log.debug("otel-monitor: final alert state not written", exc_info=True)
        if self._store is not None and self.pid == os.getpid():
            self._store.close()
        self._store = None
        _live.discard(self)

    def idle(self) -> bool:
        """Nothing waiting: no error to judge, no alert pending, no outcome unwritten."""
        with self._lock:
            inbox = bool(self._inbox)
        return not inbox and not self._results and all(s.idle() for s in self.senders)

    def after_fork_in_child(self) -> None:
        self._init_state()
        for sender in self.senders:
            sender.after_fork_in_child()
        self._thread = threading.Thread(target=self._run, name="otel-monitor-alerts",
                                        daemon=True)
        self._thread.start()

    # -- the engine thread --------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.check_interval_s)
            self._wake.clear()
            stopping = self._stopping
            try:
                self._cycle(time.time_ns())
            except Exception:
                _log.warning("otel-monitor: alert engine cycle failed", exc_info=True)
            if stopping:
                return

    def _cycle(self, now: int) -> None:
        self._take_errors(now)
        self._flush_groups(now)
        self._check_feeds(now)
        self._check_backpressure(now)
        if now >= self._next_persist_ns:
            self._persist(now)
            self._next_persist_ns = now + int(PERSIST_INTERVAL_S * _NS)
        elif self._results:
            self._write_results()

    def _dispatch(self, alert: Alert) -> None:
        self.alerts_raised += 1
        for sender in self.senders:
            sender.submit(alert)

    def _report(self, alert: Alert, target: Target, status: str, attempts: int,
                error: str | None) -> None:
        """From the sender threads: how a delivery ended (written by the engine)."""
        if len(self._results) >= MAX_RESULTS:
            return
        self._results.append(AlertRecord(
            ts_ns=alert.time_ns, rule=alert.rule, action=alert.action, key=alert.key,
            target=target.label, status=status, attempts=attempts, count=alert.count,
            summary=alert.summary, error=error, process=alert.process, span_id=alert.span_id,
            trace_id=alert.trace_id, feed=alert.feed, done_ns=time.time_ns()))
        self._wake.set()

    # -- rule: unhandled exception ------------------------------------------------------

    def _take_errors(self, now: int) -> None:
        with self._lock:
            if not self._inbox:
                return
            inbox, self._inbox = self._inbox, {}
        for key, (count, end_ns, event) in inbox.items():
            group = self._groups.get(key)
            if group is None:
                self._groups[key] = _Group(now + self.window_ns)
                self._dispatch(self._exception_alert(event, count, None))
            else:
                group.pending += count
                group.last = event
                if group.since_ns is None:
                    group.since_ns = end_ns

    def _flush_groups(self, now: int) -> None:
        for key, group in list(self._groups.items()):
            if now < group.window_end_ns and not self._stopping:
                continue
            if group.pending and group.last is not None:
                self._dispatch(self._exception_alert(group.last, group.pending, group.since_ns))
                group.pending, group.since_ns, group.last = 0, None, None
                group.window_end_ns = now + self.window_ns
            else:
                del self._groups[key]

    def _exception_alert(self, event: tuple, count: int, since_ns: int | None) -> Alert:
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
        repeat = since_ns is not None
        window = self.settings.alert_group_window_s
        if repeat:
            summary = (f"{exc_type} in {process}: {count:,} more time(s) in the last "
                       f"{window:g} s; latest: {first_line}")
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
        for f in list(_feeds.FEEDS.values()):
            last = f.last_ns
            if not last:
                continue  # watched from its first tick in this process
            threshold = f.stale_after_s or default
            went_stale = self._stale.get(f.name)
            if went_stale is None:
                if now - last > threshold * _NS:
                    self._stale[f.name] = last
                    self._next_persist_ns = 0  # the UI sees it this cycle
                    if self.settings.alert_feed_lag:
                        self._dispatch(self._feed_alert(f, TRIGGER, now, last, threshold))
            elif last != went_stale:
                del self._stale[f.name]
                self._next_persist_ns = 0
                if self.settings.alert_feed_lag:
                    self._dispatch(self._feed_alert(f, RESOLVE, now, went_stale, threshold))

    def _feed_alert(self, f: Any, action: str, now: int, last_ok: int,
                    threshold: float) -> Alert:
        readers = sorted({p for feed, p, *_ in self._edges() if feed == f.name})
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
        store = self._open()
        if store is None:
            return
        try:
            store.set_flag(FLAG_BACKPRESSURE, raised=raised, since_ns=self._bp_since,
                           value=float(depth),
                           message=self._backpressure_message(depth) if raised else None)
        except sqlite3.Error:
            _log.debug("otel-monitor: backpressure flag not written", exc_info=True)

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

    # -- the store -----------------------------------------------------------------------

    def _open(self) -> StateStore | None:
        if self._store is None:
            try:
                self._store = StateStore(self.settings.db_path)
                self._store_failed = False
            except Exception:
                if not self._store_failed:
                    _log.warning("otel-monitor: alert engine cannot open %s; will retry",
                                 self.settings.db_path, exc_info=True)
                self._store_failed = True
                return None
        return self._store

    def _edges(self) -> set[tuple[str, str, bool, bool]]:
        edges = {(feed, process, False, True) for feed, process in _feeds.CALLED_EDGES.copy()}
        for site in list(SITES.values()):
            for feed in site.feeds:
                edges.add((feed, site.process, True, False))
        return edges

    def _persist(self, now: int, final: bool = False) -> None:
        feeds = list(_feeds.FEEDS.values())
        new_edges = self._edges() - self._edges_written
        if not feeds and not new_edges and not self._results:
            return
        store = self._open()
        if store is None:
            return
        try:
            declared = {e for e in new_edges if e[2]}
            if declared:  # written once the process has calls in this store
                known = store.known_processes({e[1] for e in declared})
                new_edges -= {e for e in declared if e[1] not in known}
            if feeds:
                default = self.settings.feed_stale_after_s
                store.write_feeds([
                    FeedState(f.name, f.interval_s, f.stale_after_s or default,
                              f.last_ns or None, f.ticks, f.name in self._stale)
                    for f in feeds], service_name=self.service_name)
            if new_edges:
                store.write_feed_edges(new_edges)
                self._edges_written |= new_edges
            if now >= self._next_purge_ns and not final:
                self._next_purge_ns = now + int(PURGE_INTERVAL_S * _NS)
                store.purge_alerts(now - int(self.settings.retention_hours * 3600 * _NS))
        except sqlite3.Error:
            _log.debug("otel-monitor: feeds not written", exc_info=True)
        self._write_results()

    def _write_results(self) -> None:
        if not self._results:
            return
        store = self._open()
        if store is None:
            return
        records = []
        while self._results:
            records.append(self._results.popleft())
        try:
            store.record_alerts(records)
        except sqlite3.Error:
            _log.debug("otel-monitor: alert outcomes not written yet", exc_info=True)
            self._results.extendleft(reversed(records))


_live: "weakref.WeakSet[AlertEngine]" = weakref.WeakSet()


def _reinit_after_fork() -> None:
    for engine in list(_live):
        engine.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
