"""The pipeline: what a monitored call goes through, and who owns each part.

A ``Pipeline`` owns the call queue, the registries (call sites, feeds and their
edges), the writer (``MonitorSpanProcessor`` -> ``RecordWriter``, or with
``writer_process`` a ``ProcessRecordWriter`` writing from a child process), the store's
retention, the alert engine and the tracer. Recorders, feeds and the engine get
what they use from it when they are built. ``configure`` (re)builds its parts; the
first monitored call builds them from the environment when nobody called it.

One process-wide instance, ``PIPELINE``, is what ``@monitor`` and ``@feed`` record
into. Its queue lives as long as the process, so recorders bind it at decoration.

Threads start only when needed:

* the writer: when the pipeline is configured (``configure()`` or the first
  monitored call); retention: once the writer has written a first batch (in a
  forked child too: never while the parent may be opening its store);
* the alert engine and its state writer: when there is something to watch or to
  write for the UI: a feed (declared or ticked), a function declaring the feeds it
  reads, an SLO registered (``otel_monitor.slo``, ``slo_file``), the queue reaching ``backpressure_depth`` (the banner), or a failed call
  to alert on (a webhook set, ``alert_exceptions`` on);
* a webhook sender: at its first alert.
"""
from __future__ import annotations

import atexit
import dataclasses
import logging
import multiprocessing
import os
import secrets
import sys
import threading
import weakref
from collections import deque
from typing import Any, Callable

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import StatusCode

from exporters import MonitorSpanProcessor, RecordWriter, RetentionWorker
from exporters.archive.remote import target_from
from exporters.errors import ConfigError, OtelMonitorError
from exporters.records import CallSite
from exporters.sigterm import SIGTERM_FLUSH
from exporters.writer_process import ProcessRecordWriter

from ._capture import Masker, ValueFormatter
from ._feeds import FeedRegistry
from .alerts.engine import AlertEngine
from .settings import Settings, load_settings
from .slo import REGISTRY as SLO_REGISTRY
from .slo import load_slo_file

_log = logging.getLogger("otel_monitor")

# How long configure() (and so the first monitored call) tries to open a locked store
# before leaving that to the writer thread.
_OPEN_PROBE_S = 0.05

TRACER_NAME = "otel_monitor"  # reserved: spans of this tracer are the decorator's own


class Pipeline:
    """What monitored calls go through; ``PIPELINE`` is the process's."""

    def __init__(self) -> None:
        # Appended to by every monitored call (see exporters.records for the layout).
        self.queue: deque = deque()
        # Call sites by process name, filled at decoration: the writer reads a record's
        # group and the catalog's source code from here.
        self.sites: dict[str, CallSite] = {}
        self.feeds = FeedRegistry(self.sites, on_new=self._watch)
        SLO_REGISTRY.listeners.append(self._watch)  # an SLO registered: the engine evaluates
        self.ready = False
        # True after shutdown(), or after configuring from the environment failed:
        # calls then run unrecorded until configure() is called again.
        self.stopped = False
        self.settings: Settings | None = None
        self.processor: MonitorSpanProcessor | None = None
        self.exporter: RecordWriter | ProcessRecordWriter | None = None
        self.retention: RetentionWorker | None = None
        self.otlp: Any = None
        self.alerts: AlertEngine | None = None  # feeds, alerts, backpressure
        # Called on the error path of a failing monitored call (the engine's
        # submit_error) when exception alerts are on; None costs failing calls nothing.
        self.on_error: Callable[..., None] | None = None
        # The same, for other instrumentation's ERROR spans.
        self.on_span_error: Callable[[Any], None] | None = None
        self.provider: Any = None
        self.tracer: Any = trace.get_tracer(TRACER_NAME)  # a proxy until configured
        self.max_queue = 100_000
        # Below this depth a record is appended without a second look; at it, the
        # record goes through overflow(), which starts the engine's backpressure
        # watch, then lifts this to max_queue.
        self.fast_limit = self.max_queue
        formatter = ValueFormatter()
        self.format = formatter.format
        # Per thread, the capture time the current call has spent (its budget).
        self.capture_state = formatter.state
        self.mask: Masker | None = None
        self.yield_values = 10  # a generator's yields kept as OUTPUT rows
        self.sample_target_per_s = 200.0  # sample="auto"'s default target
        self._lock = threading.RLock()
        self._atexit_registered = False
        self.exited = False  # after the final flush at interpreter exit
        self._exiting = False  # running the other exit handlers, before that flush
        _live.add(self)

    def sample_target(self) -> float:
        """The calls a second ``sample="auto"`` keeps of a function with no target of
        its own (read by its sampler when a window closes)."""
        return self.sample_target_per_s

    def register(self, site: CallSite) -> CallSite:
        """A monitored function, at decoration."""
        self.sites[site.process] = site
        if site.feeds:
            self._watch()
        return site

    def ensure_started(self) -> bool:
        """Configure from the environment on the first monitored call; False when
        recording is off (after shutdown, or when that configuration failed)."""
        if self.ready:
            return True
        if self.exited:
            self._lost_at_exit()
            return False
        with self._lock:
            if self.ready or self.stopped:
                return self.ready
            try:
                self.configure({})
            except Exception:
                self.stopped = True
                _log.error("otel-monitor: not recording; configuring from the environment "
                           "failed (call otel_monitor.configure() to retry)", exc_info=True)
            return self.ready

    def configure(self, overrides: dict[str, Any]) -> Settings:
        """Build the new pipeline first; only once all of it stands is the old one
        flushed and replaced, so a bad setting changes nothing."""
        settings = load_settings(overrides)
        # A relative path (the default is) names the store in today's directory, for
        # good: a writer that reopens it, or a new writer process, must not follow a
        # chdir to a second store.
        settings = dataclasses.replace(settings, db_path=os.path.abspath(settings.db_path))
        # The SLO file is read first: a bad one (ConfigError) changes nothing either.
        file_slos = load_slo_file(settings.slo_file) if settings.slo_file else ()
        with self._lock:
            provider = self._provider()
            resource = getattr(provider, "resource", None)
            service = resource.attributes.get("service.name") if resource is not None else None
            otlp = self._otlp_processor(settings)  # first: a bad OTLP setting opens nothing
            try:
                formatter = ValueFormatter(settings.max_value_length,
                                           settings.capture_budget_ms)
                mask = Masker(_mask_key(settings), formatter)
                # A store locked by another process, or a full disk, is a passing
                # condition: never a ConfigError, and never a wait past store_wait_s
                # (the writer opens it later while calls queue). Only a path or a file
                # that cannot be a store raises.
                writer = ProcessRecordWriter if settings.writer_process else RecordWriter
                exporter = writer(settings.db_path, service_name=service,
                                  sites=self.sites,
                                  open_timeout_s=max(_OPEN_PROBE_S, settings.store_wait_s),
                                  on_group_events=self._group_events,
                                  spike_multiple=settings.alert_spike_multiple,
                                  spike_min_count=settings.alert_spike_min_count)
            except (OSError, ValueError, OtelMonitorError) as exc:
                if otlp is not None:
                    otlp.shutdown()
                raise ConfigError(f"otel-monitor cannot use db_path={settings.db_path!r}: "
                                  f"{exc}") from exc
            if otlp is not None:  # its export counts go into every health row
                exporter.health_sources.append(otlp.health)
            alerts = self._alert_engine(settings, service, exporter)
            if self.processor is not None:
                self._stop_pipeline()
            self.settings = settings
            SLO_REGISTRY.set_file(settings.slo_file, file_slos)
            self.format = formatter.format
            self.capture_state = formatter.state
            self.mask = mask
            self.yield_values = settings.yield_values
            self.sample_target_per_s = settings.sample_target_per_s
            self.max_queue = settings.queue_size
            self.fast_limit = min(settings.queue_size, settings.backpressure_depth)
            self.exporter = exporter
            self.processor = MonitorSpanProcessor(
                exporter, queue=self.queue, max_queue=settings.queue_size,
                flush_interval_s=settings.flush_interval_s,
                high_water=settings.backpressure_depth, on_high_water=self._deep_queue)
            self.processor.start()
            self.retention = RetentionWorker(
                settings.db_path, retention_hours=settings.retention_hours,
                interval_s=settings.purge_interval_s, max_bytes=settings.max_db_bytes,
                group_retention_days=settings.error_group_retention_days,
                rollup_retention_days=settings.rollup_retention_days,
                archive_dir=settings.archive_path,
                archive_retention_days=settings.archive_retention_days,
                archive_target=target_from(settings.archive_url, settings.archive_s3_endpoint,
                                           settings.archive_s3_region),
                archive_spool_max_bytes=settings.archive_spool_max_bytes)
            # Started by the writer's first batch, on the writer thread.
            self.processor.observers.append(self._start_retention)
            self._start_alerts(alerts)
            # A worker (spawned, or forked and armed at the fork): this processor is the
            # one to flush at SIGTERM now, not the one just stopped.
            if _in_worker_process() or SIGTERM_FLUSH.armed:
                self.processor.flush_on_sigterm()
            self.otlp = otlp
            self.tracer = provider.get_tracer(TRACER_NAME)
            if not self._atexit_registered:
                atexit.register(self._at_exit)
                self._atexit_registered = True
            self.stopped = self.exited = False
            self.ready = True
            return settings

    def _provider(self) -> Any:
        """The application's SDK provider if it has one (we add to it), else ours; our
        one span processor is added to it once, whatever the number of configures."""
        if self.provider is not None:
            return self.provider
        current = trace.get_tracer_provider()
        if not hasattr(current, "add_span_processor"):
            trace.set_tracer_provider(TracerProvider(resource=Resource.create()))
            current = trace.get_tracer_provider()
        if hasattr(current, "add_span_processor"):
            current.add_span_processor(_Switch(self))
        self.provider = current
        return current

    @staticmethod
    def _otlp_processor(settings: Settings) -> Any:
        from ._otlp import otlp_processor  # imports the OTLP exporter only when used

        return otlp_processor(settings)

    def overflow(self, record: tuple) -> None:
        processor = self.processor
        if processor is not None:
            processor.submit(record)  # queued below max_queue, else dropped and counted

    def _start_retention(self, batch: list) -> None:
        retention = self.retention
        if retention is not None and not retention.worker.running:
            retention.start()

    def _deep_queue(self) -> None:
        """The queue reached backpressure_depth: the engine watches it from now on."""
        self.fast_limit = self.max_queue
        alerts = self.alerts
        if alerts is not None:
            alerts.start()

    def _watch(self) -> None:
        """A feed or a feed-reading function appeared: the engine watches and persists."""
        alerts = self.alerts
        if alerts is not None:
            alerts.start()

    def force_flush(self, timeout_s: float = 30.0) -> bool:
        processor = self.processor
        return processor.force_flush(int(timeout_s * 1000)) if processor is not None else True

    def shutdown(self) -> None:
        with self._lock:
            if self.processor is not None:
                self._stop_pipeline()
            self.ready = False
            self.stopped = True

    def _at_exit(self) -> None:
        """The final flush, run last of the interpreter's exit handlers: the handlers
        registered before ours (which atexit would run after it) run first, while we
        still record. Calls made after it (finalisers at module teardown) are counted
        as lost in the store's health row."""
        atexit.unregister(self._at_exit)
        self._exiting = True  # the tracer provider's own exit handler must not stop us
        try:
            atexit._run_exitfuncs()  # the others, in their usual (LIFO) order
        except Exception:
            _log.debug("otel-monitor: an exit handler failed", exc_info=True)
        finally:
            self._exiting = False
        with self._lock:
            processor = self.processor
            if processor is not None:
                self.retention and self.retention.stop()
                processor.stop_writer()  # flushed, health written; the store stays open
                if isinstance(self.exporter, ProcessRecordWriter):
                    self.exporter.stop_process()  # no writer process outlives us
            self.ready = False
            self.exited = True

    def _lost_at_exit(self) -> None:
        """A monitored call after the final flush: counted, the health row rewritten."""
        processor = self.processor
        if processor is None:
            return
        try:
            processor.count_dropped()
            processor.write_health_now()
        except Exception:
            pass

    def _alert_engine(self, settings: Settings, service: str | None,
                      exporter: Any = None) -> AlertEngine:
        """Built before the old pipeline is stopped: a bad webhook changes nothing.
        Its threads start when needed (see the module's doc). A writer that reports
        error-group events (``on_group_events``, wired to ``_group_events``) makes the
        engine alert on those, and per call only when the writer cannot write."""
        return AlertEngine(settings, self.feeds, service_name=service,
                           queue_depth=self.queue.__len__,
                           group_events=getattr(exporter, "on_group_events", None) is not None)

    def _group_events(self, events: list) -> None:
        """The writer's error-group events of a committed batch, for the alert engine
        (when it takes them)."""
        handler = getattr(self.alerts, "on_group_events", None)
        if handler is not None:
            handler(events)

    def _start_alerts(self, alerts: AlertEngine) -> None:
        assert self.processor is not None
        # feed -> process edges, on the writer thread
        self.processor.observers.append(self.feeds.observe_batch)
        self.alerts = alerts
        self.on_error = alerts.submit_error if alerts.wants_errors else None
        self.on_span_error = alerts.submit_span_error if alerts.wants_errors else None
        processor = self.processor
        alerts.writer_failing = lambda: processor.failing
        if alerts.wants_errors:  # strikes off the failed calls written (group mode)
            processor.observers.append(alerts.on_batch_written)
        if self.feeds or alerts.burn.wanted() or alerts.watches_self:
            alerts.start()

    def _stop_pipeline(self) -> None:
        self.on_error = self.on_span_error = None
        if self.retention is not None:
            self.retention.stop()
        for part in (self.processor, self.otlp, self.alerts):
            if part is None:
                continue
            try:
                part.shutdown()
            except Exception:
                _log.warning("otel-monitor: shutdown failed", exc_info=True)
        self.processor = self.exporter = self.retention = self.otlp = self.alerts = None

    def after_fork_in_child(self) -> None:
        """At fork, in the child, before it records anything: a lock another thread
        held stays held; the parent writes what it had queued and owns its feeds'
        ticks; the child writes its own calls from now on. (The workers themselves
        restart lazily; the writer is started here because the child's records are
        written without anyone calling it.)"""
        self._lock = threading.RLock()
        self.feeds.after_fork_in_child()
        if self.processor is not None:
            self.processor.after_fork_in_child()
            self.processor.start()
            self.processor.flush_on_sigterm()
        if self.alerts is not None:
            self.alerts.after_fork_in_child()


class _Switch:
    """The one span processor otel-monitor adds to the tracer provider. A provider
    cannot remove a processor, so reconfiguring swaps what this one forwards to:
    the SQLite pipeline, and the OTLP processor when dual-writing."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        otlp = self._pipeline.otlp
        if otlp is not None:
            otlp.on_start(span, parent_context=parent_context)

    def on_end(self, span: Any) -> None:
        # Runs inside every span.end() of the provider, the decorator's included: the
        # least it can do for those is the OTLP hand-over and the scope check.
        pipeline = self._pipeline
        otlp = pipeline.otlp
        if otlp is not None:
            otlp.on_end(span)
        processor = pipeline.processor
        if processor is None:
            return
        # The decorator's own spans reach SQLite as records already (see SpanRecorder).
        scope = span.instrumentation_scope
        if scope is None or scope.name != TRACER_NAME:
            processor.on_end(span)
            sink = pipeline.on_span_error
            if sink is not None and span.status.status_code is StatusCode.ERROR:
                try:  # runs on the application's thread, inside its span.end()
                    sink(span)
                except Exception:
                    _log.warning("otel-monitor: alerting on a failed span failed",
                                 exc_info=True)

    def _on_ending(self, span: Any) -> None:
        pass

    def shutdown(self) -> None:
        pipeline = self._pipeline
        if pipeline._exiting:  # the provider's exit handler: our final flush comes later
            pipeline.force_flush(2.0)
            return
        pipeline.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        otlp = self._pipeline.otlp
        ok = otlp.force_flush(timeout_millis) if otlp is not None else True
        return self._pipeline.force_flush(timeout_millis / 1000) and ok


def _in_worker_process() -> bool:
    """Whether this is a multiprocessing child. Once bootstrapped it knows its parent;
    a spawned (or forkserver) child that configures while its bootstrap imports the
    main module (a script calling configure() at its top) does not yet, but that
    import runs under the name ``__mp_main__``."""
    if multiprocessing.parent_process() is not None:
        return True
    # (multiprocessing itself aliases __mp_main__ to __main__ in every process; only
    # the bootstrap's import of the main module makes them differ)
    mp_main = sys.modules.get("__mp_main__")
    return mp_main is not None and mp_main is not sys.modules.get("__main__")


def _mask_key(settings: Settings) -> bytes:
    """The store's masking secret: from the environment, else a key file beside the
    store (created once, readable by its owner only)."""
    if settings.mask_key:
        return settings.mask_key.encode()
    path = settings.db_path + ".key"
    try:
        with open(path, "rb") as fh:
            key = fh.read().strip()
        if len(key) >= 16:
            return key
        raise ConfigError(f"{path}: mask key file holds fewer than 16 bytes")
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # Written whole to a private file, then linked into place: processes starting
    # together (gunicorn workers) never read a half-written key, and the first wins.
    draft = f"{path}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_hex(32).encode())
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(draft)
    with open(path, "rb") as fh:
        return fh.read().strip()


_live: "weakref.WeakSet[Pipeline]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pipeline in list(_live):
        pipeline.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    # The queue must be emptied of the parent's records at the fork itself, before the
    # child appends its own: a lazy check later could not tell them apart.
    os.register_at_fork(after_in_child=_after_fork_in_child)

PIPELINE = Pipeline()
