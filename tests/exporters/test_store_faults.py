"""Fault injection on a real store (issue 10): recording never stops silently.

Each test makes a known number of calls through the real writer
(MonitorSpanProcessor -> SQLiteSpanExporter -> SpanStore), injects a real fault on the
real filesystem, clears it, and checks the exact account:
calls made == rows stored + losses counted (drops), with nothing left pending.
"""
from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from exporters import MonitorSpanProcessor, SQLiteSpanExporter
from exporter_helpers import HOUR_NS, insert_calls, scalar, stored_keys, wait_until

PAD = "x" * 300  # makes each call big enough to fill a small disk with few calls


class Writer:
    """A private TracerProvider -> MonitorSpanProcessor -> SQLiteSpanExporter whose writer
    thread starts only when asked (so what is queued before goes out as one batch)."""

    def __init__(self, db: str, **processor_kwargs) -> None:
        self.exporter = SQLiteSpanExporter(db, service_name="faults", busy_timeout_s=1.0)
        self.processor = MonitorSpanProcessor(self.exporter, **processor_kwargs)
        self.provider = TracerProvider()
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("tests.faults")
        self.made = 0

    def call(self, key: str) -> None:
        with self.tracer.start_as_current_span(
                "faults.call", attributes={"monitor.input.key": key, "monitor.input.pad": PAD}):
            pass
        self.made += 1

    def shutdown(self) -> None:
        self.provider.shutdown()


def stored(db: str) -> int:
    return scalar(db, "SELECT count(*) FROM spans")


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "2m"):
    """A real tmpfs of ``size`` mounted at ``where`` (root only), unmounted after."""
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path, leave_bytes: int) -> None:
    """Write ``path`` until the filesystem is full, then give back ``leave_bytes``."""
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    os.truncate(path, max(0, os.path.getsize(path) - leave_bytes))


# -- 1. disk full, then freed ----------------------------------------------------------------

@pytest.fixture(params=["tmpfs", "max_page_count"])
def full_disk(request, tmp_path):
    """(db path, make it full leaving a little room, free it) for a real 2 MiB tmpfs, or
    for SQLite's own page limit on the writer's connection when mounting is not allowed."""
    if request.param == "tmpfs":
        with small_tmpfs(tmp_path / "fs") as fs:
            filler = fs / "filler"

            def make_full(writer: Writer) -> None:
                fill(filler, leave_bytes=128 * 1024)

            def free(writer: Writer) -> None:
                os.remove(filler)

            yield str(fs / "store.db"), make_full, free
        return

    def limit(writer: Writer, pages: int) -> None:
        writer.exporter._open().db.execute(f"PRAGMA max_page_count = {pages}")

    def make_full(writer: Writer) -> None:
        db = writer.exporter._open().db
        limit(writer, db.scalar("PRAGMA page_count") + 32)  # 128 KiB of room

    def free(writer: Writer) -> None:
        limit(writer, 2**31)

    yield str(tmp_path / "store.db"), make_full, free


def test_disk_full_splits_the_batch_writes_what_fits_and_resumes_once_freed(full_disk):
    db, make_full, free = full_disk
    writer = Writer(db, flush_interval_s=0.05, max_queue=100_000)
    try:
        writer.call("first")
        assert writer.processor.force_flush(10_000)
        make_full(writer)
        # Queued before the writer thread starts: one batch, far bigger than the room left.
        for i in range(400):
            writer.call(f"k{i}")
        writer.processor.start()
        # What fits is written (the batch is split), the rest waits, counted as pending.
        assert wait_until(lambda: writer.processor.failed_batches > 0
                          and writer.processor.written > 1, timeout=10)
        written, pending, dropped = writer.processor.accounts()
        assert 1 < written < writer.made
        assert writer.made == written + pending + dropped
        assert writer.processor.force_flush(500) is False  # not everything reached the store
        free(writer)
        # One writer cycle begun after the space came back writes everything left.
        assert writer.processor.worker.flush(10)
        assert writer.processor.accounts() == (writer.made, 0, 0)
        assert stored(db) == writer.made
        assert writer.processor.force_flush(10_000) is True
    finally:
        writer.shutdown()


# -- 2. store deleted or replaced while running ------------------------------------------------

def remove_store(db: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(db + suffix)


GARBAGE = b"this is not a database\n" * 200


@pytest.mark.parametrize("fault", ["deleted", "garbage", "garbage_over_db_only"])
def test_a_store_deleted_or_replaced_while_running_is_recreated_and_counted(
        fault, db_path, tmp_path, caplog):
    writer = Writer(db_path, flush_interval_s=0.05)
    writer.processor.start()
    try:
        for i in range(100):
            writer.call(f"before{i}")
        assert writer.processor.force_flush(10_000)
        if fault == "garbage_over_db_only":  # its -wal and -shm left in place
            Path(db_path + ".new").write_bytes(GARBAGE)
            os.replace(db_path + ".new", db_path)
        else:
            remove_store(db_path)
        if fault == "garbage":
            Path(db_path).write_bytes(GARBAGE)
        made_before = writer.made
        for i in range(200):
            writer.call(f"after{i}")
        assert writer.processor.force_flush(10_000) is True
        # Every call made after the fault is in the file at db_path, none in a lost inode.
        assert stored(db_path) == writer.made - made_before
        assert writer.processor.accounts() == (writer.made, 0, 0)
        assert writer.exporter.store_recreated == 1
        assert sum("recreated" in r.getMessage() for r in caplog.records) == 1
        aside = [p for p in tmp_path.iterdir() if p.name.startswith("store.db.bad-")]
        if fault != "deleted":  # moved aside whole, never overwritten
            assert len(aside) == 1 and aside[0].read_bytes() == GARBAGE
        else:
            assert aside == []
        # Once recreated, the store keeps working as before.
        for i in range(50):
            writer.call(f"later{i}")
        assert writer.processor.force_flush(10_000) is True
        assert stored(db_path) == writer.made - made_before
        assert writer.exporter.store_recreated == 1
    finally:
        writer.shutdown()


def test_a_garbage_file_is_moved_aside_under_a_new_name_each_time(db_path, tmp_path):
    writer = Writer(db_path, flush_interval_s=0.05)
    writer.processor.start()
    try:
        for round_ in range(3):
            remove_store(db_path)
            Path(db_path).write_bytes(GARBAGE + str(round_).encode())
            writer.call(f"r{round_}")
            assert writer.processor.force_flush(10_000) is True
        aside = sorted(p.read_bytes() for p in tmp_path.iterdir()
                       if p.name.startswith("store.db.bad-"))
        assert aside == [GARBAGE + str(r).encode() for r in range(3)]
        assert writer.exporter.store_recreated == 3
        assert stored(db_path) == 1
    finally:
        writer.shutdown()


# -- 4. clock steps, and a size cap that never empties the store ------------------------------

def test_a_purge_claim_stamped_in_the_future_is_stale(db_path):
    from exporters import SpanStore
    store = SpanStore(db_path)
    try:
        future = time.time_ns() + 3600 * 10**9  # written by a host whose clock ran ahead
        store.db.execute_write("INSERT OR REPLACE INTO meta(key, value) "
                               "VALUES ('last_purge_ns', ?)", (str(future),))
        assert store.claim_purge(60 * 10**9) is True
        assert store.claim_purge(60 * 10**9) is False  # the new stamp holds
    finally:
        store.close()


def test_calls_dated_in_the_future_are_clamped_to_their_receive_time_and_purged(db_path):
    from exporters import SpanStore
    from exporters.retention import RetentionWorker
    store = SpanStore(db_path)
    try:
        now = time.time_ns()
        insert_calls(store, [now + 24 * HOUR_NS] * 5 + [now] * 5)
        assert scalar(db_path, "SELECT max(start_ns) FROM spans") <= time.time_ns()
        # Their real (receive) time passes the retention window: all ten go.
        later = time.time_ns() + 7 * HOUR_NS
        assert RetentionWorker(db_path, retention_hours=6).run_once(store, now_ns=later) == 10
    finally:
        store.close()
    assert stored(db_path) == 0


@pytest.mark.parametrize("budget_s", [1e9, 1e-9], ids=["chunks-grow", "chunks-shrink"])
def test_size_cap_purges_the_oldest_down_to_the_cap_and_never_everything(db_path, budget_s):
    """The cause of issue 10's case 8: the chunk grew with the machine's speed, not with
    what was left to delete, so one chunk could take every call that was left. With chunks
    that always grow (a fast machine) a cap at a fifth of the store emptied it."""
    from exporters import SpanStore
    store = SpanStore(db_path)
    try:
        now = time.time_ns()
        keys = insert_calls(store, [now - (10_000 - i) * 1000 for i in range(10_000)])
        cap = store.used_bytes() // 5
        deleted = store.purge(0, max_bytes=cap, max_tx_seconds=budget_s)
        used = store.used_bytes()
    finally:
        store.close()
    left = stored(db_path)
    assert used <= cap
    assert deleted == len(keys) - left
    assert left >= len(keys) // 10  # down to the cap (a fifth), not far below it
    assert set(stored_keys(db_path)) == set(keys[len(keys) - left:])  # the newest stay


def test_size_cap_below_an_empty_store_keeps_the_newest_call(db_path):
    from exporters import SpanStore
    store = SpanStore(db_path)
    try:
        keys = insert_calls(store, [time.time_ns() - (100 - i) for i in range(100)])
        store.purge(0, max_bytes=1, max_tx_seconds=1e9)
    finally:
        store.close()
    assert set(stored_keys(db_path)) == {keys[-1]}


# -- 6. truthful accounting: health during overload, exact counters ---------------------------

class EventExporter(SQLiteSpanExporter):
    """The real exporter, noting the order of its exports and health writes."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[tuple] = []

    def export(self, batch):
        result = super().export(batch)
        self.events.append(("export", len(batch)))
        return result

    def record_health(self, **figures) -> None:
        super().record_health(**figures)
        self.events.append(("health", figures["queue_depth"]))


def test_health_is_written_between_batches_while_the_writer_drains_a_long_queue(db_path):
    exporter = EventExporter(db_path, service_name="faults")
    processor = MonitorSpanProcessor(exporter, flush_interval_s=0.05, health_interval_s=0.0,
                                     max_queue=200_000)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("tests.faults")
    try:
        for i in range(50_000):  # queued before the writer starts: one long drain
            with tracer.start_as_current_span("faults.call"):
                pass
        processor.start()
        assert processor.force_flush(60_000)
    finally:
        provider.shutdown()
    first = [e for e in exporter.events if e[0] == "export"][0]
    before_first_health = exporter.events[:exporter.events.index(
        next(e for e in exporter.events if e[0] == "health"))]
    # The first health row came after one batch, with the rest still queued.
    assert before_first_health == [first]
    assert next(e for e in exporter.events if e[0] == "health")[1] > 0


def test_the_health_row_has_exact_counters_and_says_whether_it_records(db_path):
    writer = Writer(db_path, flush_interval_s=0.05)
    writer.processor.start()
    try:
        for i in range(10):
            writer.call(f"k{i}")
        assert writer.processor.force_flush(10_000)
        row = read_health(db_path)
        assert (row["written"], row["dropped"], row["failed_batches"], row["store_recreated"],
                row["recording"]) == (10, 0, 0, 0, 1)
        remove_store(db_path)
        Path(db_path).write_bytes(GARBAGE)
        writer.call("after")
        assert writer.processor.force_flush(10_000)
        row = read_health(db_path)
        assert (row["written"], row["store_recreated"], row["recording"]) == (11, 1, 1)
    finally:
        writer.shutdown()


def test_the_health_row_counts_every_batch_the_full_store_refused(full_disk):
    db, make_full, free = full_disk
    writer = Writer(db, flush_interval_s=0.05, health_interval_s=0.0)
    try:
        writer.call("first")
        assert writer.processor.force_flush(10_000)
        make_full(writer)
        for i in range(400):
            writer.call(f"k{i}")
        writer.processor.start()
        assert wait_until(lambda: writer.processor.failed_batches > 0, timeout=10)
        free(writer)  # room for the health row, but look at what was written while full
        assert writer.processor.worker.flush(10)
        assert writer.processor.accounts() == (writer.made, 0, 0)
        row = read_health(db)
        assert row["failed_batches"] == writer.processor.failed_batches > 0
        assert row["recording"] == 1
    finally:
        writer.shutdown()


def read_health(db: str):
    from exporter_helpers import read
    rows = read(db, "SELECT * FROM health WHERE pid = ?", (os.getpid(),))
    assert len(rows) == 1
    return rows[0]


# -- 6. dead processes' health rows age out; a silent or stopped one is flagged ----------------

def _health_row(store, *, pid: int, host: str, updated_ns: int, recording: int | None = 1,
                queue_depth: int = 0) -> None:
    store.db.execute_write(
        "INSERT OR REPLACE INTO health(pid, host, queue_depth, queue_peak, dropped, written, "
        "updated_ns, recording) VALUES (?, ?, ?, 0, 0, 0, ?, ?)",
        (pid, host, queue_depth, updated_ns, recording))


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_dead_processes_health_rows_leave_the_ribbon_and_silent_ones_are_flagged(db_path):
    import socket
    from exporters import SpanStore
    from exporters.queries import TraceQueries
    from exporters.queries.ribbon import REPORT_FORGET_S, REPORT_SILENT_S
    here, now = socket.gethostname(), time.time_ns()
    store = SpanStore(db_path)
    try:
        dead = dead_pid()
        _health_row(store, pid=dead, host=here, updated_ns=now, queue_depth=120_000)
        _health_row(store, pid=os.getpid(), host=here, updated_ns=now)
        silent = subprocess.Popen(["sleep", "60"])
        stopped = subprocess.Popen(["sleep", "60"])
        try:
            _health_row(store, pid=silent.pid, host=here,
                        updated_ns=now - int((REPORT_SILENT_S + 1) * 1e9))
            _health_row(store, pid=stopped.pid, host=here, updated_ns=now, recording=0)
            _health_row(store, pid=1_000_001, host="elsewhere",  # can't ask: by age only
                        updated_ns=now - int((REPORT_FORGET_S + 1) * 1e9))
            _health_row(store, pid=1_000_002, host="elsewhere", updated_ns=now)
            health = TraceQueries(db_path).health(now_ns=now)
        finally:
            silent.kill()
            stopped.kill()
            silent.wait()
            stopped.wait()
    finally:
        store.close()
    shown = {r["pid"] for r in health["processes"]}
    assert shown == {os.getpid(), silent.pid, stopped.pid, 1_000_002}
    assert health["badges"]["QueueDepth"]["value"] == 0  # the dead one's 120,000 is gone
    assert {r["pid"] for r in health["recording_stopped"]} == {silent.pid, stopped.pid}


def test_exact_drop_count_when_many_threads_overflow_the_queue(db_path):
    import threading
    writer = Writer(db_path, flush_interval_s=0.05, max_queue=100)
    barrier = threading.Barrier(4)

    def overflow() -> None:
        barrier.wait()
        for i in range(2000):
            writer.processor.submit(("not", "a", "record"))  # never written: writer idle

    threads = [threading.Thread(target=overflow) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert writer.processor.dropped == 4 * 2000 - 100
        assert len(writer.processor.queue) == 100
    finally:
        writer.processor.queue.clear()
        writer.shutdown()


# -- 7. writers killed with SIGKILL while writing -----------------------------------------------

def test_writers_sigkilled_while_writing_twenty_times_leave_a_sound_store(db_path):
    import signal
    from exporter_helpers import read, run_workload, start_workload

    def spans_of(pid: int) -> int:
        return scalar(db_path, "SELECT count(*) FROM spans WHERE pid = ?", (pid,))

    from exporters import SpanStore
    SpanStore(db_path).close()
    kills = 0
    for round_ in range(10):
        procs = [start_workload(db_path, "calls", f"k{round_}-{j}", "10000000",
                                env={"OTEL_MONITOR_FLUSH_INTERVAL_S": "0.01"})
                 for j in range(2)]
        try:
            for proc in procs:  # killed once it has written (so, while it writes)
                assert wait_until(lambda: spans_of(proc.pid) > 0, timeout=60)
        finally:
            for proc in procs:
                os.kill(proc.pid, signal.SIGKILL)
                proc.communicate()
                kills += proc.returncode == -signal.SIGKILL
    assert kills == 20
    assert read(db_path, "PRAGMA integrity_check")[0][0] == "ok"
    # Batches are atomic: no call without its rows.
    assert scalar(db_path, "SELECT count(*) FROM spans s WHERE NOT EXISTS "
                           "(SELECT 1 FROM data_values d WHERE d.span = s.id)") == 0
    # And the store keeps working: a new writer loses nothing.
    done = run_workload(db_path, "calls", "after", "500")
    assert done.returncode == 0, done.stderr
    assert scalar(db_path, "SELECT count(*) FROM data_values WHERE data_value LIKE ?",
                  ("'after-%'",)) == 500  # each key's repr
