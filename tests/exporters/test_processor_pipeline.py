"""MonitorSpanProcessor: a bounded queue and one writer thread in front of a real
SQLiteSpanExporter. Health figures are written by the exporting process; a full queue drops
new spans and counts them; a locked store loses nothing that was accepted."""
from __future__ import annotations

import os
import sqlite3
import threading
import time
import tracemalloc

import pytest
from opentelemetry.sdk.trace import TracerProvider

from exporters import MonitorSpanProcessor, SQLiteSpanExporter
from exporter_helpers import read, scalar, stored_keys, wait_until


class Pipeline:
    """A private TracerProvider -> MonitorSpanProcessor -> SQLiteSpanExporter."""

    def __init__(self, db: str, busy_timeout_s: float = 30.0, **processor_kwargs) -> None:
        self.exporter = SQLiteSpanExporter(db, service_name="fallback-svc",
                                           busy_timeout_s=busy_timeout_s)
        self.processor = MonitorSpanProcessor(self.exporter, **processor_kwargs)
        self.provider = TracerProvider()
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("tests.exporters")
        self.processor.start()

    def call(self, key: str) -> None:
        with self.tracer.start_as_current_span("pricing.price",
                                               attributes={"monitor.input.key": key}):
            pass

    def call_counting(self, key: str) -> bool:
        """One span; True when the queue took it. Only meaningful while the writer thread
        is not taking from the queue (it only ever takes from the left)."""
        queue = self.processor.queue
        before = len(queue)
        self.call(key)
        return len(queue) == before + 1

    def accept_then_flush_in_background(self, prefix: str, n: int, accepted: list[str],
                                        flush_timeout_ms: int = 30_000):
        """``n`` spans accepted into the queue, then a force_flush on another thread,
        returned once the writer has taken them (and is waiting on the locked store)."""
        for i in range(n):
            assert self.call_counting(f"{prefix}{i}")
            accepted.append(f"{prefix}{i}")
        flushed: list[bool] = []
        flusher = threading.Thread(
            target=lambda: flushed.append(self.processor.force_flush(flush_timeout_ms)))
        flusher.start()
        assert wait_until(lambda: len(self.processor.queue) == 0, timeout=5)
        return flusher, flushed

    def shutdown(self) -> None:
        self.provider.shutdown()


@pytest.fixture
def pipelines(db_path):
    made: list[Pipeline] = []

    def make(**kwargs) -> Pipeline:
        pipeline = Pipeline(db_path, **kwargs)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.shutdown()


def health_row(db: str) -> sqlite3.Row:
    rows = read(db, "SELECT * FROM health WHERE pid = ?", (os.getpid(),))
    assert len(rows) == 1
    return rows[0]


# -- force_flush and shutdown ----------------------------------------------------------------------

def test_force_flush_returns_with_every_queued_span_in_the_store(pipelines, db_path):
    pipeline = pipelines(flush_interval_s=30.0)  # only a flush can write them
    for i in range(2500):
        pipeline.call(f"k{i}")
    assert pipeline.processor.force_flush()
    keys = stored_keys(db_path)
    assert len(keys) == 2500 and set(keys.values()) == {1}


def test_shutdown_writes_what_is_still_queued(pipelines, db_path):
    pipeline = pipelines(flush_interval_s=30.0)
    for i in range(300):
        pipeline.call(f"k{i}")
    pipeline.shutdown()
    assert len(stored_keys(db_path)) == 300


def test_writer_thread_writes_on_its_own_every_flush_interval(pipelines, db_path):
    pipeline = pipelines(flush_interval_s=0.05)
    for i in range(100):
        pipeline.call(f"k{i}")
    assert wait_until(lambda: len(stored_keys(db_path)) == 100, timeout=5)


# -- health --------------------------------------------------------------------------------------

def test_health_row_after_shutdown_has_the_final_figures(pipelines, db_path):
    pipeline = pipelines(flush_interval_s=30.0)
    t0 = time.time_ns()
    for i in range(120):
        pipeline.call(f"k{i}")
    pipeline.shutdown()
    row = health_row(db_path)
    assert row["written"] == 120
    assert row["queue_depth"] == 0
    assert row["dropped"] == 0
    assert row["queue_peak"] == 120
    assert t0 <= row["last_write_ns"] <= time.time_ns()
    assert row["write_lag_ms"] is not None and row["write_lag_ms"] >= 0
    assert row["service_name"] == "fallback-svc"
    assert row["updated_ns"] >= row["last_write_ns"]


def test_health_row_refreshes_every_health_interval(pipelines, db_path):
    pipeline = pipelines(flush_interval_s=0.05, health_interval_s=0.1)
    for i in range(40):
        pipeline.call(f"k{i}")
    assert wait_until(lambda: scalar(db_path, "SELECT coalesce(max(written), 0) FROM health "
                                              "WHERE pid = ?", (os.getpid(),)) == 40, timeout=5)


def test_health_row_is_current_right_after_force_flush(pipelines, db_path):
    pipeline = pipelines(flush_interval_s=0.05, health_interval_s=5.0)
    # The writer's first cycle writes a health row (nothing written yet).
    assert wait_until(lambda: scalar(db_path, "SELECT count(*) FROM health") == 1, timeout=5)
    t0 = time.time_ns()
    for i in range(75):
        pipeline.call(f"k{i}")
    assert pipeline.processor.force_flush()
    assert len(stored_keys(db_path)) == 75
    row = health_row(db_path)
    assert row["written"] == 75
    assert row["queue_depth"] == 0
    assert row["dropped"] == 0
    assert row["last_write_ns"] is not None and t0 <= row["last_write_ns"] <= time.time_ns()
    assert row["write_lag_ms"] is not None and row["write_lag_ms"] >= 0


# -- the bound ---------------------------------------------------------------------------------------

def _lock(db: str) -> sqlite3.Connection:
    """Another connection holding the store's write lock (BEGIN EXCLUSIVE)."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=5)
    conn.execute("BEGIN EXCLUSIVE")
    return conn


def test_full_queue_drops_new_spans_counts_them_stays_bounded_and_loses_no_accepted_span(
        pipelines, db_path):
    """The store is locked for a while (shorter than the busy timeout): the writer waits
    inside its export, the queue fills to max_queue, further spans are dropped and
    counted, memory does not grow, and when the lock goes every accepted span is written."""
    pipeline = pipelines(max_queue=1000, flush_interval_s=30.0, health_interval_s=30.0)
    processor = pipeline.processor
    pipeline.call("warm-up")
    assert processor.force_flush()

    locker = _lock(db_path)
    locked_at = time.monotonic()
    accepted = ["warm-up"]
    try:
        # The writer takes those 500 and waits for the lock inside its export.
        flusher, flushed = pipeline.accept_then_flush_in_background("a", 500, accepted)
        for i in range(2000):
            if pipeline.call_counting(f"b{i}"):
                accepted.append(f"b{i}")
        assert len(accepted) == 1 + 500 + 1000
        assert len(processor.queue) == 1000
        assert processor.dropped == 1000

        # Memory stays bounded: 10,000 more spans are all dropped and nothing is kept.
        tracemalloc.start()
        try:
            base, _ = tracemalloc.get_traced_memory()
            for i in range(10_000):
                assert not pipeline.call_counting(f"c{i}")
            grown = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        assert grown < 1_000_000, f"{grown} bytes kept for dropped spans"
        assert processor.dropped == 11_000
        assert processor.queue_peak <= 1000

        time.sleep(max(0.0, 1.0 - (time.monotonic() - locked_at)))  # locked >= 1 s
        assert flusher.is_alive()  # still waiting for the lock
    finally:
        locker.execute("COMMIT")
        locker.close()
    flusher.join(30)
    assert flushed == [True]
    assert processor.force_flush()

    keys = stored_keys(db_path)
    assert sorted(keys) == sorted(accepted)
    assert set(keys.values()) == {1}
    pipeline.shutdown()
    row = health_row(db_path)
    assert row["dropped"] == 11_000
    assert row["written"] == len(accepted)


def test_batch_that_fails_on_a_locked_store_is_kept_and_written_once_the_lock_is_released(
        pipelines, db_path):
    # A 1 s busy timeout (the default waits 30 s), so that the export fails with
    # "database is locked" while the lock is held.
    pipeline = pipelines(max_queue=1000, flush_interval_s=30.0, health_interval_s=30.0,
                         busy_timeout_s=1.0)
    processor = pipeline.processor
    pipeline.call("warm-up")
    assert processor.force_flush()

    locker = _lock(db_path)
    accepted = ["warm-up"]
    try:
        # The flush gives up after 5 s (five busy timeouts) with the lock still held:
        # it must say False (waiting out the default 30 s proved nothing more).
        flusher, flushed = pipeline.accept_then_flush_in_background("a", 600, accepted,
                                                                    flush_timeout_ms=5_000)
        # While the export of those 600 is failing, more spans arrive.
        for i in range(1200):
            if pipeline.call_counting(f"b{i}"):
                accepted.append(f"b{i}")
        flusher.join(30)
        assert processor.failed_batches >= 1  # the export did fail on the lock
    finally:
        locker.execute("COMMIT")
        locker.close()
    assert processor.force_flush()

    keys = stored_keys(db_path)
    assert set(keys.values()) <= {1}
    missing = sorted(set(accepted) - set(keys))
    assert not missing, f"{len(missing)} accepted spans lost, e.g. {missing[:3]}"
    # ... and the flush made while the store was locked did not claim success.
    assert flushed == [False]


def test_a_shutdown_whose_writer_outlives_its_stop_writes_no_batch_twice(monkeypatch):
    """stop(30) can return with the writer still inside a write (a store locked for
    longer); shutdown then writes what is left itself. The writer's batch in flight was
    that same list: it was written twice. A counting exporter stands in for the store
    (which would set a second copy aside and hide it) and is slow on the writer only."""
    from collections import Counter

    from opentelemetry.sdk.trace.export import SpanExportResult

    class SlowOnTheWriter:
        def __init__(self) -> None:
            self.written: Counter = Counter()
            self.entered = threading.Event()

        def export(self, batch):
            if threading.current_thread().name == "otel-monitor-writer" \
                    and not self.entered.is_set():
                self.entered.set()
                time.sleep(1.0)
            self.written.update(batch)
            return SpanExportResult.SUCCESS

        def record_health(self, **figures) -> None:
            pass

        def after_fork_in_child(self) -> None:
            pass

        def shutdown(self) -> None:
            pass

    exporter = SlowOnTheWriter()
    processor = MonitorSpanProcessor(exporter, flush_interval_s=0.05)
    processor.start()
    for i in range(5):
        processor.submit(f"call-{i}")
    assert exporter.entered.wait(10)  # the writer is inside its write
    stop = processor.worker.stop
    writer = processor.worker._thread
    monkeypatch.setattr(processor.worker, "stop", lambda timeout: stop(0.2))  # 30 s, run out
    processor.shutdown()
    writer.join(10)  # its own write is over too
    assert not writer.is_alive()
    assert exporter.written == {f"call-{i}": 1 for i in range(5)}
