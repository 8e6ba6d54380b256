"""The alert engine: the rules of DESIGN.md, applied in the instrumented process.

A job on a ``BackgroundWorker`` ("otel-monitor-alerts"), started only when needed
(see ``otel_monitor.pipeline``), runs every ``CHECK_INTERVAL_S``, or at once when a
monitored call fails or the writer reports error-group events, and

* alerts on **error groups**, not on calls. The writer keeps every failed call's
  group in the store, in the same transaction as the calls, and after each batch
  hands the engine what changed (``on_group_events``: cheap, thread-safe, it only
  queues them for the engine's thread): a group's first failure (``new``), a
  resolved group failing again (``regression``), a rate spike (``spike``), a snooze
  run out (``rearmed``). Each is one ``exception`` alert whose Slack text and
  PagerDuty summary say which ("New error", "Regression", "Spike: 42/min vs 3/min
  hourly", "Snooze expired"), keyed ``dedup_key("group", fingerprint)``, linking to
  the UI on the call and its group (``?error=…&span_id=…&trace_id=…``). Failures of
  an existing open, ignored or snoozed group make no event, hence no alert. An
  exception that rises through several monitored calls alerts once, for the
  innermost: the calls it only passed through (their records say so:
  ``records.ERR_PROPAGATED``, the decorator's one rule, which also gives them the
  innermost call's group, uncounted) are not alerted, and any event of theirs (their
  span ids noted by ``submit_error``) neither.
* keeps the **per-call fallback**, so that an unhandled exception is never left
  unalerted because the store could not take it. A failing call still hands the
  engine its error (``submit_error``; calls that succeed never reach it). Without
  group events (a writer that keeps no groups: ``group_events`` False, the state
  until the pipeline says otherwise or the first event arrives) it alerts per call,
  as it always did. With them, the call is *held*, by span id, until the writer
  has written it: the writer's batch observer (``on_batch_written``) strikes off
  every failed call of each written batch, and a held error whose calls were all
  written is dropped (its group spoke for it, or chose to keep quiet). A held
  error is alerted per call instead when ``writer_failing()`` says the writer's
  last write failed (a full disk, a read-only or vanished store, a lock it could
  not get), or when it waited ``fallback_after_s`` unwritten (a writer stuck
  without failing); the alert then says the store could not be written. A call
  the writer wrote before its error reached the engine is remembered (the last
  ``MAX_WRITTEN_IDS`` failed span ids), so the order of the two never matters.
  A writer *behind* (a backlog of calls, a lock it is still waiting for) would delay
  a new group's alert by its lag: a held call of the decorator still unwritten after
  ``early_after_s`` has its group judged by the engine from the store, as the writer
  will judge it (the same fingerprint): no group yet is a "New error", a resolved one
  a "Regression", alerted at once; the writer's own event for it is then not
  alerted again. (Spans of other instrumentation wait for the writer.)
  Each step is a method of its own, driven by ``_cycle(now)``: tests feed events,
  batches and a failing writer directly.
* groups **storms**: alerts of one (process, exception type) — of one kind of group
  event, or per call — are one alert sent at once, then at most one per
  ``alert_group_window_s`` carrying how many more there were (many new groups of one
  type, from many code paths, are one "New error" then a count);
* judges every feed this process ticks: past its threshold, a ``feed_lag``
  trigger; on its next tick, a resolve. A feed with **hours** (``@feed(hours=…,
  tz=…, holidays=…)``) is never stale while closed (the store says ``closed``; the
  UI greys it; an open incident is resolved as "closed") and gets one interval of
  grace when it opens; a feed with
  ``failures_before_alert=N`` triggers only once it has missed N intervals in a
  row past its threshold, and ``recoveries_before_resolve=M`` resolves only after
  M ticks in a row with no stale gap;
* holds back what a **maintenance window** or a **silence** covers
  (``suppress.Suppressor``): such an alert is recorded with the outcome
  ``suppressed`` and the rule that held it, and posted nowhere;
* evaluates the **burn rates** of the SLOs this process registered
  (``otel_monitor.slo``, ``slo_file``) every ``slo_eval_interval_s``: page and ticket
  alerts, triggered once and resolved (``burn.BurnRateRule``);
* watches the export queue: deeper than ``backpressure_depth`` for
  ``backpressure_for_s`` raises the ``backpressure`` flag in the store (the UI's
  banner), refreshed every second and cleared when the queue drains; a webhook
  too only if ``alert_backpressure`` is set;
* watches otel-monitor itself (``selfmon.SelfMonitor``, ``alert_self_health``): its
  writer's lag and drops, the store's size against its cap, the retention, its own
  failed deliveries; checked once a second, a trigger and a resolve per condition. With
  a webhook configured the engine runs from the start for it;
* has the feeds (twice a second, and at once when one goes stale or recovers), new
  feed -> process edges, the flag, and the outcome of every alert (sent / failed /
  dropped / suppressed) written to the store by ``persist.StateWriter``, a worker
  of its own: the engine never waits on SQLite.

Webhooks are posted by ``delivery.WebhookSender`` workers, one per URL.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from typing import Any, Callable, Sequence

from opentelemetry.trace import StatusCode

from exporters import SpanStore
from exporters.error_groups import NEW, REARMED, REGRESSION, RESOLVED, SPIKE, GroupEvent
from exporters.errors import StoreError
from exporters.fingerprint import fingerprint, title as group_title
from exporters.records import ERR_PROPAGATED, ERROR, SPAN_ID, error_texts, storable
from exporters.state import SUPPRESSED, SUPPRESSED_TARGET, AlertRecord
from exporters.worker import BackgroundWorker

from ..settings import Settings
from .delivery import WebhookSender
from .model import (BACKPRESSURE, EXCEPTION, FEED_LAG, RESOLVE, TRIGGER, Alert, clip,
                    dedup_key, iso, traceback_excerpt, ui_link)
from .payloads import PD_SUMMARY_MAX
from .persist import FeedBook, StateWriter
from .burn import BurnRateRule
from .selfmon import SelfMonitor
from .suppress import Suppressor
from ..slo import REGISTRY as SLO_REGISTRY
from ..slo import registered_slos
from ..webhooks import Target, parse_webhooks

_log = logging.getLogger("otel_monitor")

CHECK_INTERVAL_S = 0.1     # feed and queue checks; failed calls wake the engine at once
FLAG_REFRESH_S = 1.0       # a raised flag's heartbeat
SHUTDOWN_GRACE_S = 3.0     # for pending alerts when the process stops
MAX_ERROR_KEYS = 10_000    # distinct (process, exception type) pairs waiting for the engine
MAX_EVENTS = 10_000        # group events waiting for the engine
MAX_UNCONFIRMED = 100_000  # failed calls held until the writer has written them
MAX_WRITTEN_IDS = 10_000   # failed calls written before their error reached the engine
FALLBACK_AFTER_S = 10.0    # a held error still unwritten after this alerts per call
EARLY_AFTER_S = 0.3        # a held call unwritten this long: its group judged from the store
MAX_EARLY = 10_000         # (fingerprint, event) pairs alerted ahead of the writer

# What a group event is called in an alert's title and text
EVENT_WORDS = {NEW: "New error", REGRESSION: "Regression", SPIKE: "Spike",
               REARMED: "Snooze expired"}
FALLBACK_NOTE = ("the store could not be written: alerted per call, not by error group")

_NS = 1_000_000_000


class _Group:
    """A storm of one (process, exception type): alerted once, then counted."""

    __slots__ = ("window_start_ns", "window_end_ns", "pending", "since_ns", "last")

    def __init__(self, window_start_ns: int, window_end_ns: int) -> None:
        self.window_start_ns = window_start_ns
        self.window_end_ns = window_end_ns
        self.pending = 0              # occurrences (or group events) not alerted yet
        self.since_ns: int | None = None
        self.last: tuple | None = None  # ("record", …), ("span", …) or ("group", event)


class _FeedWatch:
    """What the engine knows of one feed between checks."""

    __slots__ = ("stale_last", "alerted", "outage_last", "resume_ticks", "closed")

    def __init__(self) -> None:
        self.stale_last: int | None = None   # its last tick when it went stale
        self.alerted = False                 # a trigger went out, no resolve yet
        self.outage_last = 0                 # its last tick before the alerted outage
        self.resume_ticks: int | None = None  # ticks count before the first on-time one
        self.closed = False                  # outside its hours


class AlertEngine:
    """``feeds``: the feeds to judge and the feed -> process edges (the pipeline's
    ``FeedRegistry``)."""

    def __init__(self, settings: Settings, feeds: FeedBook, *, service_name: str | None = None,
                 queue_depth: Callable[[], int] = lambda: 0,
                 check_interval_s: float = CHECK_INTERVAL_S,
                 shutdown_grace_s: float = SHUTDOWN_GRACE_S,
                 writer_failing: Callable[[], bool] = lambda: False,
                 group_events: bool = False,
                 fallback_after_s: float = FALLBACK_AFTER_S,
                 early_after_s: float = EARLY_AFTER_S) -> None:
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
        self.suppressor = Suppressor.from_settings(settings)
        # otel-monitor's own health, through the same webhooks (alerts.selfmon)
        self.selfmon = SelfMonitor(settings, service_name=service_name)
        # Whether the writer reports error-group events (see the module's doc); set by
        # the pipeline, and by the first event.
        self.group_events = group_events
        self.writer_failing = writer_failing
        self.fallback_after_s = fallback_after_s
        self.early_after_s = early_after_s
        self.early_alerts = 0     # group events alerted ahead of a writer behind
        self.events_dropped = 0   # group events refused: MAX_EVENTS were waiting
        self.alerts_suppressed = 0
        self.fallback_alerts = 0  # held errors alerted per call (the store not written)
        self.window_ns = int(settings.alert_group_window_s * _NS)
        self.errors_dropped = 0   # distinct errors refused: MAX_ERROR_KEYS were waiting
        self.alerts_raised = 0
        self.state = StateWriter(settings.db_path, feeds, service_name=service_name,
                                 default_stale_after_s=settings.feed_stale_after_s,
                                 retention_hours=settings.retention_hours)
        # SLO burn rates (alerts/burn.py): the SLOs this process registered.
        self.burn = BurnRateRule(settings.db_path, registered_slos,
                                 interval_s=settings.slo_eval_interval_s,
                                 ui_url=settings.ui_url, service_name=service_name,
                                 owner_pid=lambda: SLO_REGISTRY.owner_pid)
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
        self._groups: dict[tuple[str, ...], _Group] = {}
        self._events: deque[GroupEvent] = deque()
        # Group mode: failed calls not written yet, by (process, exception type):
        # [count, first end_ns, latest event, unwritten span ids, held since (ns)].
        self._held: dict[tuple[str, str], list] = {}
        self._unconfirmed: dict[int, tuple[str, str]] = {}  # span id -> its key in _held
        self._written_ids: dict[int, None] = {}   # failed calls the writer wrote first
        # failed calls that only passed on an exception alerted for a deeper call
        self._propagated: dict[int, None] = {}
        self._early: dict[tuple[str, str], None] = {}  # alerted before the writer's event
        self._reader: SpanStore | None = None  # the store, read-only (the engine's thread)
        self._feeds: dict[str, _FeedWatch] = {}
        self._bp_since: int | None = None
        self._bp_raised = False
        self._bp_refresh_ns = 0

    @property
    def wants_errors(self) -> bool:
        """Whether failed calls should be handed over at all."""
        return bool(self.senders) and self.settings.alert_exceptions

    # -- producers: the error path of monitored calls, and the writer -----------------

    def submit_error(self, site: Any, ids: tuple, end_ns: int, error: tuple,
                     exc: BaseException | None = None) -> None:
        """A monitored call raised ``exc``: ``ids`` = (trace_id, span_id, …), ``error`` as
        in a record. An exception that goes on up through more monitored calls alerts
        once, for the innermost (the callers' ERR rows are in the store all the same):
        a caller's error names the call it was passed on from (``ERR_PROPAGATED``, set
        by the decorator for the store's groups too, so both agree on the innermost)."""
        if len(error) > ERR_PROPAGATED and error[ERR_PROPAGATED] is not None:
            if self.group_events:  # its group's events are not alerted either
                self._passed_on(ids[1])
            return
        exc_type = error[0]  # module.qualname (OTel's exception.type)
        if self.ignored(exc_type):
            return
        self._submit((site.process, exc_type), end_ns, ("record", site, ids, end_ns, error),
                     ids[1])

    def _passed_on(self, span_id: int) -> None:
        with self._lock:
            self._propagated[span_id] = None
            if len(self._propagated) > MAX_WRITTEN_IDS:
                del self._propagated[next(iter(self._propagated))]

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
        self._submit((span.name, exc_type), end, ("span", span), span.context.span_id)

    def _submit(self, key: tuple[str, str], end_ns: int, event: tuple, span_id: int) -> None:
        self.worker.reset_if_forked()  # first: a forked child's reset would drop this
        with self._lock:
            if self.group_events:
                new = self._hold(key, end_ns, event, span_id)
            else:
                new = self._queue_error(key, end_ns, event)
        if new:  # a storm's later errors wait for the cycle its first one woke
            self.worker.wake()

    def _queue_error(self, key: tuple[str, str], end_ns: int, event: tuple) -> bool:
        """Per-call mode, under the lock: one inbox entry per (process, type)."""
        entry = self._inbox.get(key)
        if entry is not None:
            entry[0] += 1
            return False
        if len(self._inbox) >= MAX_ERROR_KEYS:
            self.errors_dropped += 1
            return False
        self._inbox[key] = [1, end_ns, event]
        return True

    def _hold(self, key: tuple[str, str], end_ns: int, event: tuple, span_id: int) -> bool:
        """Group mode, under the lock: keep the error until the writer has written its
        call (see the module's doc); the engine's regular checks judge it."""
        entry = self._held.get(key)
        if entry is not None and not entry[3]:
            # Its calls were all written (their group spoke for them): the next check
            # drops it. The writer strikes them off after handing their events on, so
            # a check may have come just before: this call is held on its own, from its
            # own end and wait, never judged by the written calls' older ones.
            del self._held[key]
            entry = None
        new = entry is None
        if entry is None:
            if len(self._held) >= MAX_ERROR_KEYS:
                self.errors_dropped += 1
                return False
            entry = self._held[key] = [0, end_ns, event, set(), time.time_ns()]
        entry[0] += 1
        entry[2] = event
        if self._written_ids.pop(span_id, 1) is None:
            return new  # written already
        # past MAX_UNCONFIRMED a call is taken as written: the writer keeps up, or fails
        # (then the calls still held alert per call)
        if len(self._unconfirmed) < MAX_UNCONFIRMED:
            entry[3].add(span_id)
            self._unconfirmed[span_id] = key
        return new

    def on_group_events(self, events: Sequence[GroupEvent]) -> None:
        """From the writer thread, after a committed batch: what it changed in the error
        groups. Queued for the engine's thread; never blocks, never raises."""
        self.group_events = True
        if not events or not self.wants_errors:
            return
        self.worker.reset_if_forked()
        with self._lock:
            room = MAX_EVENTS - len(self._events)
            if room < len(events):
                self.events_dropped += len(events) - max(room, 0)
            if room > 0:
                self._events.extend(events[:room])
        self.worker.wake()

    def on_batch_written(self, batch: Sequence[Any]) -> None:
        """From the writer thread, for each batch written: its failed calls are in the
        store, so their group events (if any) come from the writer: strike them off."""
        if not self.group_events:
            return
        failed = []  # found without the lock: the error path of calls takes it
        for item in batch:
            if type(item) is tuple:
                if item[ERROR] is not None:
                    failed.append(item[SPAN_ID])
            else:  # a ReadableSpan of other instrumentation
                status = getattr(item, "status", None)
                if status is not None and status.status_code is StatusCode.ERROR:
                    failed.append(item.context.span_id)
        if not failed:
            return
        with self._lock:
            unconfirmed, written = self._unconfirmed, self._written_ids
            for span_id in failed:
                key = unconfirmed.pop(span_id, None)
                if key is not None:
                    entry = self._held.get(key)
                    if entry is not None:
                        entry[3].discard(span_id)
                    continue
                written[span_id] = None  # its error may reach the engine after this
                if len(written) > MAX_WRITTEN_IDS:
                    del written[next(iter(written))]

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
        self.burn.close()
        self.selfmon.close()
        reader, self._reader = self._reader, None
        if reader is not None:
            try:
                reader.close()
            except Exception:
                pass

    def _has_errors(self) -> bool:
        with self._lock:
            return bool(self._inbox or self._events or self._held)

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
        self._take_events(now)
        self._judge_held(now, final)
        self._take_errors(now)
        self._flush_groups(now, final)
        self._check_feeds(now)
        self._check_backpressure(now)
        if not final:
            for alert in self.burn.check(now):
                self._dispatch(alert)
            self._check_self(now)

    def _dispatch(self, alert: Alert) -> None:
        why = self.suppressor.why(alert, time.time_ns()) if self.suppressor else None
        if why is not None:  # recorded, with the rule that held it; posted nowhere
            self.alerts_suppressed += 1
            self._record(alert, SUPPRESSED_TARGET, SUPPRESSED, 0, why)
            return
        senders = [s for s in self.senders if s.target.label not in alert.skip_targets]
        if not senders:  # "alerts cannot be delivered", and every target is the failing one
            self._record(alert, SUPPRESSED_TARGET, SUPPRESSED, 0,
                         "no target left: every webhook is failing")
            return
        self.alerts_raised += 1
        for sender in senders:
            sender.submit(alert)

    def _report(self, alert: Alert, target: Target, status: str, attempts: int,
                error: str | None) -> None:
        """From the sender threads: how a delivery ended (to the store)."""
        self.selfmon.note_delivery(status, target.label)
        self._record(alert, target.label, status, attempts, error)

    def _record(self, alert: Alert, target: str, status: str, attempts: int,
                error: str | None) -> None:
        self.state.add_result(AlertRecord(
            ts_ns=alert.time_ns, rule=alert.rule, action=alert.action, key=alert.key,
            target=target, status=status, attempts=attempts, count=alert.count,
            # clipped as PagerDuty's summary is: a 1 MB message is not a 1 MB row
            summary=clip(alert.summary, PD_SUMMARY_MAX), error=error, process=alert.process,
            span_id=alert.span_id,
            trace_id=alert.trace_id, feed=alert.feed, done_ns=time.time_ns()))

    # -- rule: unhandled exception ------------------------------------------------------

    def _take_events(self, now: int) -> None:
        """Group events: each is an alert, storms of one (process, type) grouped."""
        with self._lock:
            if not self._events:
                return
            events, self._events = self._events, deque()
        for ev in events:
            if ev.kind not in EVENT_WORDS or self.ignored(ev.exception_type):
                continue
            if self._propagated and self._was_passed_on(ev.span_id):
                continue  # the deeper call's group alerted for this exception
            if self._early and self._early.pop((ev.fingerprint, ev.kind), 1) is None:
                continue  # alerted already, ahead of the writer
            # a regression or a snooze's end is news even right after the group's NEW:
            # storms are of one kind of event
            self._storm((ev.process, ev.exception_type, ev.kind), 1, ev.last_seen_ns,
                        ("group", ev), now)

    def _judge_held(self, now: int, final: bool) -> None:
        """Group mode: drop held errors whose calls were all written; alert per call
        those the writer could not write (failing, stuck past ``fallback_after_s``, or
        the process stopping)."""
        with self._lock:
            if not self._held:
                return
            failing = final or self._writer_failing()
            late = now - int(self.fallback_after_s * _NS)
            behind = now - int(self.early_after_s * _NS)
            released, early = [], []
            for key, entry in list(self._held.items()):
                count, end_ns, event, unwritten, since = entry[:5]
                if not unwritten:
                    del self._held[key]
                elif failing or since <= late:
                    del self._held[key]
                    for span_id in unwritten:
                        self._unconfirmed.pop(span_id, None)
                    released.append((key, len(unwritten), end_ns, event))
                elif since <= behind and len(entry) == 5 and event[0] == "record":
                    entry.append(True)  # judged once (a 6th item)
                    early.append((key, entry))
        for key, count, end_ns, event in released:
            self.fallback_alerts += 1
            self._storm(key, count, end_ns, event + (FALLBACK_NOTE,), now)
        for key, entry in early:
            self._judge_early(key, entry, now)

    def _judge_early(self, key: tuple[str, str], entry: list, now: int) -> None:
        """The writer is behind (not failing): a held call waits behind many others. Its
        group is judged from the store as the writer will judge it: none yet is a NEW
        event, a resolved one a REGRESSION, alerted now; the writer's own event for it
        is then not alerted again, nor is the group's next call judged early before
        that event came (the store still without the group). Any other status (open,
        snoozed, ignored) is the writer's to judge (a snooze's end, a spike): the error
        is let go. A store that
        cannot be read leaves the error held (the fallback still applies)."""
        count, end_ns, event, unwritten = entry[0], entry[1], entry[2], entry[3]
        _, site, ids, _, error = event
        exc_type, text, message = error_texts(error)
        fp = fingerprint(site.process, exc_type, text)
        try:
            status, resolved_ns = self._group_status(fp)
        except (StoreError, OSError):
            _log.debug("otel-monitor: error groups not readable for an early alert",
                       exc_info=True)
            return
        with self._lock:
            if self._held.get(key) is not entry:
                return  # written meanwhile (or released)
            del self._held[key]
            for span_id in unwritten:
                self._unconfirmed.pop(span_id, None)
        if status is None:
            kind: str | None = NEW
        elif status == RESOLVED and end_ns >= (resolved_ns or 0):  # failed since
            kind = REGRESSION
        else:
            kind = None
        if kind is None or (fp, kind) in self._early:
            return  # (the group's event went out ahead of the writer already)
        self._early[(fp, kind)] = None
        if len(self._early) > MAX_EARLY:
            del self._early[next(iter(self._early))]
        self.early_alerts += 1
        ev = GroupEvent(kind=kind, fingerprint=fp, process=site.process,
                        exception_type=exc_type, title=group_title(exc_type, message),
                        count=count, first_seen_ns=end_ns, last_seen_ns=end_ns,
                        span_id="%016x" % ids[1], trace_id="%032x" % ids[0],
                        message=message, traceback=text, service=self.service_name,
                        process_group=site.process_group, pid=self.pid)
        self._storm((ev.process, ev.exception_type, kind), 1, end_ns, ("group", ev), now)

    def _group_status(self, fp: str) -> tuple[str | None, int | None]:
        """A group's status and resolve time in the store (None: no such group),
        read-only."""
        if self._reader is None:
            self._reader = SpanStore(self.settings.db_path, readonly=True)
        rows = self._reader.query(
            "SELECT status, resolved_ns FROM error_groups WHERE fingerprint = ?", (fp,))
        return (rows[0]["status"], rows[0]["resolved_ns"]) if rows else (None, None)

    def _was_passed_on(self, span_hex: str) -> bool:
        try:
            span_id = int(span_hex, 16)
        except (TypeError, ValueError):
            return False
        with self._lock:
            return self._propagated.pop(span_id, 1) is None

    def _writer_failing(self) -> bool:
        try:
            return bool(self.writer_failing())
        except Exception:
            return True  # an unknown writer state: do not risk silence

    def _take_errors(self, now: int) -> None:
        with self._lock:
            if not self._inbox:
                return
            inbox, self._inbox = self._inbox, {}
        for key, (count, end_ns, event) in inbox.items():
            self._storm(key, count, end_ns, event, now)

    def _storm(self, key: tuple[str, ...], count: int, end_ns: int, event: tuple,
               now: int) -> None:
        """The first alert of ``key`` in a window goes at once; the rest are counted."""
        group = self._groups.get(key)
        if group is None:
            self._groups[key] = _Group(now, now + self.window_ns)
            self._dispatch(self._alert(event, count))
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
                self._dispatch(self._alert(group.last, group.pending, group.since_ns,
                                           (now - group.window_start_ns) / _NS))
                group.pending, group.since_ns, group.last = 0, None, None
                group.window_start_ns, group.window_end_ns = now, now + self.window_ns
            else:
                del self._groups[key]

    def _alert(self, event: tuple, count: int, since_ns: int | None = None,
               over_s: float = 0.0) -> Alert:
        if event[0] == "group":
            return self._group_alert(event[1], count, since_ns, over_s)
        return self._exception_alert(event, count, since_ns, over_s)

    @staticmethod
    def _over(over_s: float) -> str:
        return f"{over_s:.0f}" if over_s >= 10 else f"{over_s:.1f}"

    def _group_alert(self, ev: GroupEvent, count: int, since_ns: int | None = None,
                     over_s: float = 0.0) -> Alert:
        """The alert for a group event; with ``since_ns``, it stands for ``count`` events
        of its (process, exception type) over the last ``over_s`` seconds."""
        word = EVENT_WORDS[ev.kind]
        said = word
        fields: dict[str, Any] = {}
        if ev.kind == SPIKE and ev.rate_5m is not None and ev.rate_1h is not None:
            said = f"Spike: {_rate(ev.rate_5m)}/min vs {_rate(ev.rate_1h)}/min hourly"
            fields["Rate (5 min)"] = f"{_rate(ev.rate_5m)}/min"
            fields["Rate (1 h)"] = f"{_rate(ev.rate_1h)}/min"
        fields["Error event"] = said
        fields["Error group"] = ev.title
        fields["Fingerprint"] = ev.fingerprint
        fields["Occurrences in all"] = f"{ev.count:,}"
        fields["First seen"] = iso(ev.first_seen_ns)
        exc_short = ev.exception_type.rsplit(".", 1)[-1]
        # as a call's alert says it, after the event: the type fully qualified, the
        # process, the call's own message (the group's title is its normalised form)
        first_line = ev.message.strip().splitlines()[0] if ev.message.strip() else ""
        summary = f"{said}: {ev.exception_type} in {ev.process}" + (
            f": {first_line}" if first_line else "")
        if ev.kind == REGRESSION:
            summary += f" (was resolved; {ev.count:,} occurrences in all)"
        elif ev.kind == REARMED:
            summary += f" (snooze over; {ev.count:,} occurrences in all)"
        if since_ns is not None:
            summary += (f"; {count:,} error event(s) of {ev.exception_type} in "
                        f"{ev.process} in the last {self._over(over_s)} s")
        short = ".".join(ev.process.rsplit(".", 2)[-2:])
        trace_id, span_id = ev.trace_id, ev.span_id
        return Alert(
            rule=EXCEPTION, action=TRIGGER, key=dedup_key("group", ev.fingerprint),
            severity="error", title=f"{word}: {exc_short} in {short}"
                                    + (f" (×{count:,})" if count > 1 else ""),
            summary=summary, time_ns=ev.last_seen_ns, count=count, since_ns=since_ns,
            process=ev.process, process_group=ev.process_group,
            exception_type=ev.exception_type, exception_message=ev.message,
            traceback=traceback_excerpt(ev.traceback) if ev.traceback else None,
            span_id=span_id, trace_id=trace_id,
            link=ui_link(self.settings.ui_url, process=ev.process, error=ev.fingerprint,
                         span_id=span_id, trace_id=trace_id),
            service=ev.service or self.service_name, host=self.host,
            pid=ev.pid if ev.pid is not None else self.pid, fields=fields,
            event=ev.kind, fingerprint=ev.fingerprint)

    def _exception_alert(self, event: tuple, count: int, since_ns: int | None = None,
                         over_s: float = 0.0) -> Alert:
        """The alert for ``event``; with ``since_ns``, the digest of ``count`` more
        occurrences over the last ``over_s`` seconds. An event ending in
        ``FALLBACK_NOTE`` was held for its group and could not be written: it says so."""
        fields: dict[str, Any] = {}
        if event[-1] is FALLBACK_NOTE:
            event = event[:-1]
            fields["Alerted per call"] = FALLBACK_NOTE
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
            service=self.service_name, host=self.host, pid=self.pid, fields=fields)

    # -- rule: feed lag -----------------------------------------------------------------

    def _check_feeds(self, now: int) -> None:
        default = self.settings.feed_stale_after_s
        for f in list(self.feeds.feeds.values()):
            last = f.last_ns
            if not last:
                continue  # watched from its first tick in this process
            w = self._feeds.get(f.name)
            if w is None:
                w = self._feeds[f.name] = _FeedWatch()
            threshold = f.stale_after_s or default
            period = f.interval_s or threshold
            reference = last
            hours = getattr(f, "hours", None)
            if hours is not None:
                opened = hours.occurrence(now)
                if opened is None:
                    if not w.closed:  # closed: never stale, whatever its age
                        w.closed, w.stale_last, w.resume_ticks = True, None, None
                        self.state.closed.add(f.name)
                        self.state.stale.discard(f.name)
                        self.state.persist_soon()
                        if w.alerted:  # its incident ends with its hours
                            w.alerted = False
                            if self.settings.alert_feed_lag:
                                self._dispatch(self._feed_alert(f, RESOLVE, now, w.outage_last,
                                                                threshold, closed=True))
                    continue
                if w.closed:
                    w.closed = False
                    self.state.closed.discard(f.name)
                    self.state.persist_soon()
                # one interval of grace from the opening
                reference = max(last, opened[0] + int(period * _NS))
            if now - reference > threshold * _NS:
                if w.stale_last is None:
                    w.stale_last, w.resume_ticks = last, None
                    self.state.stale.add(f.name)
                    self.state.persist_soon()  # the UI sees it at once
                missed = 1 + (now - reference - int(threshold * _NS)) // int(period * _NS)
                if not w.alerted and missed >= getattr(f, "failures_before_alert", 1):
                    w.alerted, w.outage_last = True, last
                    if self.settings.alert_feed_lag:
                        n = getattr(f, "failures_before_alert", 1)
                        when = reference + int((threshold + (n - 1) * period) * _NS)
                        self._dispatch(self._feed_alert(f, TRIGGER, now, last, threshold,
                                                        when))
                continue
            if w.stale_last is not None and last != w.stale_last:  # it ticks again
                w.stale_last = None
                self.state.stale.discard(f.name)
                self.state.persist_soon()
                if w.alerted:
                    w.resume_ticks = f.ticks - 1  # this tick is the first on time
            if w.alerted and w.resume_ticks is not None \
                    and f.ticks - w.resume_ticks >= getattr(f, "recoveries_before_resolve", 1):
                w.alerted, w.resume_ticks = False, None
                if self.settings.alert_feed_lag:
                    self._dispatch(self._feed_alert(f, RESOLVE, now, w.outage_last, threshold))

    def _feed_alert(self, f: Any, action: str, now: int, last_ok: int,
                    threshold: float, when: int | None = None, closed: bool = False
                    ) -> Alert:
        readers = sorted({p for feed, p, *_ in self.feeds.edges() if feed == f.name})
        fields: dict[str, Any] = {}
        if action == TRIGGER:
            age = (now - last_ok) / _NS
            title = f"Feed {f.name} is stale"
            summary = (f"Feed {f.name} is stale: no update for {age:.1f} s "
                       f"(threshold {threshold:g} s)")
            when, severity = when or last_ok + int(threshold * _NS), "critical"
            fields["Last update"] = iso(last_ok)
            missed = getattr(f, "failures_before_alert", 1)
            if missed > 1:
                fields["Missed intervals"] = f"{missed} in a row"
        elif closed:
            title = f"Feed {f.name} is closed"
            summary = (f"Feed {f.name} is closed (outside its hours) after "
                       f"{(now - last_ok) / _NS:.1f} s without an update")
            when, severity = now, "info"
        else:
            gap = (f.last_ns - last_ok) / _NS
            title = f"Feed {f.name} is updating again"
            summary = f"Feed {f.name} is updating again after {gap:.1f} s without an update"
            when, severity = f.last_ns, "info"
            ticks = getattr(f, "recoveries_before_resolve", 1)
            if ticks > 1:
                fields["On-time ticks"] = f"{ticks} in a row"
        fields["Threshold"] = f"{threshold:g} s"
        if f.interval_s:
            fields["Expected interval"] = f"{f.interval_s:g} s"
        hours = getattr(f, "hours", None)
        if hours is not None:
            fields["Hours"] = "; ".join(w.text for w in hours.windows)
        if readers:
            fields["Read by"] = ", ".join(readers[:10]) + (" …" if len(readers) > 10 else "")
        return Alert(rule=FEED_LAG, action=action, key=dedup_key("feed", f.name),
                     severity=severity, title=title, summary=summary, time_ns=when,
                     feed=f.name, link=ui_link(self.settings.ui_url, feed=f.name),
                     service=self.service_name, host=self.host, pid=self.pid, fields=fields)

    # -- rule: otel-monitor's own health ---------------------------------------------------

    def _check_self(self, now: int) -> None:
        if self.senders:
            for alert in self.selfmon.check(now, self.host, self.pid):
                self._dispatch(alert)

    @property
    def watches_self(self) -> bool:
        """Whether the engine should run from the start to watch otel-monitor itself."""
        return bool(self.senders) and self.selfmon.enabled

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


def _rate(per_min: float) -> str:
    """A rate for people: ``42``, ``3.5``, ``0.2``."""
    return f"{per_min:,.0f}" if per_min >= 10 else f"{per_min:.2g}"
