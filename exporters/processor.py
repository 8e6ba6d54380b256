"""MonitorSpanProcessor: a bounded queue and one writer job in front of an exporter.

It plays the part of the SDK's BatchSpanProcessor, tuned for the decorator:

* The queue is a ``collections.deque`` that the decorator appends compact call
  records to directly (one C call, no lock); OTel spans arrive through ``on_end``.
* A full queue drops the new item and counts it: the caller never blocks and
  memory stays bounded.
* A batch that fails to write is split (halving) until what fits is written; the
  rest is kept and retried every cycle rather than lost, within the same bound.
* After ``fork`` the child forgets what the parent had queued (the parent writes
  it; its owner calls ``after_fork_in_child``) and has its own writer thread, so
  each call is written once.

The writer is a job on a ``BackgroundWorker`` ("otel-monitor-writer").
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from multiprocessing import util as mp_util
from typing import Any, Callable, Protocol, Sequence

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExportResult

from .errors import StoreBusy
from .records import END_NS
from .sigterm import SIGTERM_FLUSH
from .worker import BackgroundWorker

_log = logging.getLogger("otel_monitor")

MAX_BATCH = 20_000


def _end_ns(item: Any) -> int | None:
    if isinstance(item, tuple):
        return item[END_NS]
    return getattr(item, "end_time", None)


class BatchExporter(Protocol):
    """What the writer writes to: a ``SQLiteSpanExporter`` (spans), or a
    ``RecordWriter`` (spans and call records)."""

    def export(self, batch: Sequence[Any]) -> SpanExportResult: ...

    def record_health(self, **figures: Any) -> None: ...

    def after_fork_in_child(self) -> None: ...

    def shutdown(self) -> None: ...


class MonitorSpanProcessor(SpanProcessor):
    def __init__(self, exporter: BatchExporter, *, queue: deque | None = None,
                 max_queue: int = 100_000, flush_interval_s: float = 0.2,
                 health_interval_s: float = 1.0, high_water: int | None = None,
                 on_high_water: Callable[[], None] | None = None) -> None:
        self.exporter = exporter
        self.queue: deque = deque() if queue is None else queue
        self.max_queue = max_queue
        self.flush_interval_s = flush_interval_s
        self.health_interval_s = health_interval_s
        # Called once, the first time an item is submitted into a queue this deep.
        self._high_water = max_queue if high_water is None else high_water
        self._on_high_water = on_high_water
        self.dropped = 0  # changed only through count_dropped()
        self._dropped_lock = threading.Lock()
        self.written = 0
        self.failed_batches = 0
        self._failing_in_a_row = 0
        self.queue_peak = 0
        self.last_write_ns: int | None = None
        self.write_lag_ms: float | None = None
        self._retry: list = []  # accepted, taken from the queue, not written yet
        # Held while calls move between queued, pending and written (not while writing).
        self._accounts = threading.Lock()
        self._stuck = False  # the last write left calls behind
        # Called on the writer thread with each batch once it is written (records and
        # spans); an observer's failure is logged, never stops the writer.
        self.observers: list[Callable[[list], None]] = []
        # Held while a thread writes what is queued: the writer's cycle, or another thread
        # once the writer stopped (at exit and at SIGTERM both may, and one that outlived
        # its stop may still be writing): a batch is written by one of them.
        self._drain_lock = threading.RLock()
        self._next_health = 0.0
        self.worker = BackgroundWorker("otel-monitor-writer", self._cycle,
                                       interval_s=flush_interval_s)
        # A multiprocessing child ends with os._exit(), which skips atexit: have its
        # exit finalizers flush what the child recorded.
        mp_util.register_after_fork(self, MonitorSpanProcessor._flush_at_child_exit)

    # -- the producer side ----------------------------------------------------

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        self.submit(span)

    def submit(self, item: Any) -> None:
        """Queue a ReadableSpan or a call record; drop and count it when full."""
        q = self.queue
        depth = len(q)
        if depth < self.max_queue:
            q.append(item)
        else:
            self.count_dropped()
        if depth >= self._high_water:
            self._high_water = self.max_queue + 1  # once
            if self._on_high_water is not None:
                self._on_high_water()

    def count_dropped(self) -> None:
        # Callers on many threads drop at once when the queue is full; `+=` alone
        # would lose counts. The lock is taken on that already-failing path only.
        with self._dropped_lock:
            self.dropped += 1

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        self.worker.start()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Return once everything queued before the call is written (or the timeout passes)."""
        worker = self.worker
        if not worker.running or worker.on_thread():
            # (another thread draining, e.g. the exit's stop_writer: wait for it, bounded)
            if not self._drain_lock.acquire(timeout=timeout_millis / 1000):
                return False
            try:
                self._drain_once(everything=True)
            finally:
                self._drain_lock.release()
            return not self.queue and not self._retry
        # A cycle that could not write everything is followed by more, until the
        # timeout: True only once what was queued before the call is in the store.
        deadline = time.monotonic() + timeout_millis / 1000
        while True:
            if not worker.flush(max(0.0, deadline - time.monotonic())):
                return False
            if not self._stuck:
                return True
            if time.monotonic() >= deadline:
                return False

    def shutdown(self) -> None:
        self.worker.stop(30)
        with self._drain_lock:
            self._drain_once(everything=True)
            self._write_health()
            self.exporter.shutdown()

    def stop_writer(self) -> None:
        """Stop the writer thread after writing everything queued and the health row;
        unlike ``shutdown`` the store stays open for ``write_health_now``."""
        self.worker.stop(30)
        with self._drain_lock:
            self._drain_once(everything=True)
            self._write_health()

    def write_health_now(self) -> None:
        """Write the health row on the calling thread (the writer may be gone)."""
        self._write_health()

    def _flush_at_child_exit(self) -> None:
        mp_util.Finalize(self, self.force_flush, exitpriority=100)

    def flush_on_sigterm(self) -> None:
        """In a worker process (forked, or a multiprocessing child) whose SIGTERM is
        left at its default: write what is queued before SIGTERM ends the process.
        ``multiprocessing.Pool`` terminates its workers that way when it exits.
        The process still dies of SIGTERM, with the same exit status (``sigterm.py``)."""
        SIGTERM_FLUSH.arm(lambda: self.force_flush(2_000))

    def after_fork_in_child(self) -> None:
        """Called at fork, in the child, before it records anything: the parent writes
        what it had queued; the child starts afresh, with a writer thread of its own
        (the worker starts one on its next use)."""
        self.queue.clear()
        self._retry = []
        self.dropped = self.written = self.failed_batches = self.queue_peak = 0
        self._dropped_lock = threading.Lock()
        self._accounts = threading.Lock()
        self._drain_lock = threading.RLock()
        self._next_health = 0.0
        self.exporter.after_fork_in_child()  # its lock may have been held by the writer

    # -- the writer job -------------------------------------------------------------

    def _cycle(self, *, final: bool, flushing: bool) -> None:
        if final:
            return  # shutdown drains and writes health itself, once the thread is gone
        with self._drain_lock:
            self._drain_once(everything=False)
        now = time.monotonic()
        if now >= self._next_health or flushing:  # fresh after a flush
            self._write_health()
            self._next_health = now + self.health_interval_s

    def _drain_once(self, *, everything: bool) -> None:
        """Write what is queued now (and, if ``everything``, what arrives meanwhile)."""
        q = self.queue
        while True:
            depth = len(q)
            if depth > self.queue_peak:
                self.queue_peak = depth
            with self._accounts:  # in flight, a batch stays in _retry: still pending
                batch = self._retry
                take = min(depth, MAX_BATCH - len(batch)) if len(batch) < MAX_BATCH else 0
                popleft = q.popleft
                batch.extend(popleft() for _ in range(take))
                self._retry = batch
            if not batch:
                self._stuck = False
                return
            if not self._export(batch):
                return  # kept for retry in the next cycle
            if time.monotonic() >= self._next_health:  # a long drain still reports
                self._write_health()
                self._next_health = time.monotonic() + self.health_interval_s
            if not everything and depth <= take:
                return
            if everything and not q:
                return

    def _export(self, batch: list) -> bool:
        """Write ``batch``. A batch the store refuses for a reason other than a lock
        (a full disk, a store that went away) is split in halves, again and again, so
        that what fits is written; what is not written waits in ``_retry``, in order,
        for the next cycle (one flush interval: no longer backoff, so recording
        resumes as soon as the fault clears). True when all of it was written."""
        size, start, end = len(batch), 0, len(batch)
        while start < end:
            part = batch if size == end else batch[start:start + size]
            if self._export_part(part):
                start += len(part)
                with self._accounts:
                    self.written += len(part)
                    self._retry = batch[start:] if start < end else []
                size = min(end - start, size * 2) or 1  # a small write is many pages' worth
                continue
            if size == 1 or isinstance(getattr(self.exporter, "last_error", None), StoreBusy):
                break
            size = (size + 1) // 2
        # What is not written stays in _retry: what was accepted is not dropped for
        # what arrives later (the queue's own bound applies to those). Memory:
        # max_queue + MAX_BATCH items.
        self._stuck = start < end
        return not self._stuck

    def _export_part(self, batch: list) -> bool:
        try:
            ok = self.exporter.export(batch) is SpanExportResult.SUCCESS
        except Exception:  # the exporter must not kill the writer
            _log.exception("otel-monitor: export failed")
            ok = False
        now = time.time_ns()
        if ok:
            self.last_write_ns = now
            oldest = _end_ns(batch[0])
            self.write_lag_ms = (now - oldest) / 1e6 if oldest else None
            self._failing_in_a_row = 0
            for observe in self.observers:
                try:
                    observe(batch)
                except Exception:
                    _log.debug("otel-monitor: batch observer failed", exc_info=True)
            return True
        self.failed_batches += 1
        self._failing_in_a_row += 1
        return False

    @property
    def failing(self) -> bool:
        """Whether the writer's last attempt to write failed (a full disk, a store that
        is read-only, gone or locked past the wait): calls are not reaching the store."""
        return self._failing_in_a_row > 0

    def pending(self) -> int:
        """Calls accepted and not written yet (queued, in flight or waiting for a retry)."""
        with self._accounts:
            return len(self.queue) + len(self._retry)

    def accounts(self) -> tuple[int, int, int]:
        """(written, pending, dropped) at one instant: with no call being made meanwhile,
        their sum is every call submitted."""
        with self._accounts:
            return self.written, len(self.queue) + len(self._retry), self.dropped

    def _write_health(self) -> None:
        try:
            self.exporter.record_health(
                queue_depth=len(self.queue) + len(self._retry), queue_peak=self.queue_peak,
                dropped=self.dropped, written=self.written, write_lag_ms=self.write_lag_ms,
                last_write_ns=self.last_write_ns, failed_batches=self.failed_batches,
                recording=not self._stuck)
        except Exception:
            _log.debug("otel-monitor: health not written", exc_info=True)

