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
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from exporters import MonitorSpanProcessor, SQLiteSpanExporter
from exporter_helpers import scalar, wait_until

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
    with open(path, "wb") as fh:
        try:
            while True:
                fh.write(chunk)
                fh.flush()
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
        for i in range(1000):
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
