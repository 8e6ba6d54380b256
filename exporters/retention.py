"""Retention: purges calls older than the retention window, every ``interval_s``, and
error groups last seen more than ``group_retention_days`` ago (with minute buckets
older than a day): a group outlives its calls; and per-minute call rollups older than
``rollup_retention_days`` (30): they outlive their calls too.

A job on a ``BackgroundWorker`` ("otel-monitor-retention"), started by whoever owns
the store (the decorator's pipeline, the server's OTLP ingest). It has its own
connection, and purges in short transactions (``SpanStore.purge``) so that writers
of the same store never wait long. When several processes write one store, one
purge per interval is enough: the first to claim it does it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from pathlib import Path

from .groups import MINUTES_KEPT_NS
from .rollups import DEFAULT_RETENTION_DAYS
from .store import SpanStore
from .worker import BackgroundWorker

_log = logging.getLogger("otel_monitor")
_NO_AGE_NS = 2**63 - 1  # "started before the end of time": every call, oldest first


class RetentionWorker:
    def __init__(self, db_path: str, *, retention_hours: float = 6.0, interval_s: float = 60.0,
                 max_bytes: int | None = None, group_retention_days: float = 30.0,
                 rollup_retention_days: float = DEFAULT_RETENTION_DAYS,
                 archive_dir: str | None = None, archive_batch_calls: int = 5_000,
                 archive_retention_days: float = 30.0, archive_target=None,
                 archive_spool_max_bytes: int = 1024 * 2**20) -> None:
        self.db_path = db_path
        # Archive before purge: calls past the window go to Parquet files under
        # archive_dir (exporters.archive) and are deleted only once their file verified.
        self.archive_dir = archive_dir
        # 5,000 calls a batch: larger batches hold the GIL in one C call (the rows'
        # fetch, their conversion to Arrow) long enough to stall the application's
        # writer (bench_archive, 200k calls: longest insert 408 ms at 50,000 a batch,
        # 48 ms at 5,000; the plain purge: 31 ms), for ~4% more bytes and more files.
        self.archive_batch_calls = archive_batch_calls
        self.archive_retention_ns = int(archive_retention_days * 86400 * 1e9)
        self.archived = 0
        # An S3-compatible destination (exporters.archive.remote.S3Target): archive_dir
        # is then its spool, bounded by archive_spool_max_bytes.
        self.archive_target = archive_target
        self.archive_spool_max_bytes = archive_spool_max_bytes
        self.archive_behind = False  # the spool is full, the bucket or the archive failed
        # Calls the size cap deleted without archiving them (the archive failed or its
        # spool was full); also counted, exactly, in meta.archive_lost_calls.
        self.archive_lost = 0
        self.retention_ns = int(retention_hours * 3600 * 1e9)
        self.group_retention_ns = int(group_retention_days * 86400 * 1e9)
        self.rollup_retention_ns = int(rollup_retention_days * 86400 * 1e9)
        self.interval_s = interval_s
        self.max_bytes = max_bytes
        self.purged = 0
        self._store: SpanStore | None = None
        # A forked child's connection is the parent's: the child opens its own.
        self.worker = BackgroundWorker("otel-monitor-retention", self._cycle,
                                       interval_s=interval_s, on_fork=self._forget_store)

    def start(self) -> None:
        """Purge now, then every ``interval_s`` (a no-op once started)."""
        if not self.worker.running:
            self.worker.wake()

    def stop(self) -> None:
        self.worker.stop(10)

    def run_once(self, store: SpanStore, now_ns: int | None = None) -> int:
        now_ns = time.time_ns() if now_ns is None else now_ns
        if self.archive_dir is None:
            n = store.purge(now_ns - self.retention_ns, max_bytes=self.max_bytes)
        else:
            try:  # an archive that fails (ArchiveError) leaves its calls in the store
                n = 0
                if self._spool_has_room():
                    n = self._archive_then_delete(store, now_ns - self.retention_ns)
                    self._upload(now_ns)
            except OSError:
                self.archive_behind = True
                raise
            finally:
                try:
                    self.purged += self._archive_over_cap(store, now_ns)
                finally:
                    self._note_archive_state(store, now_ns)
            self._compact(now_ns - self.retention_ns)
            from .archive.layout import expire
            expire(self.archive_dir, now_ns - self.archive_retention_ns)
        self.purged += n
        store.purge_groups(now_ns - self.group_retention_ns, now_ns - MINUTES_KEPT_NS,
                           rollups_before_ns=now_ns - self.rollup_retention_ns)
        return n

    def writer_id(self) -> str:
        """Stable across restarts of the same store on the same host, so a re-archive
        after a crash writes the same file name."""
        key = f"{socket.gethostname()}:{os.path.abspath(self.db_path)}"
        return hashlib.sha1(key.encode()).hexdigest()[:10]

    def _note_archive_state(self, store: SpanStore, now_ns: int) -> None:
        """``meta.archive_behind_since_ns`` (0: not behind) and ``archive_spool_bytes``,
        for the readers of the store's health (``exporters.self_health``)."""
        from .archive.remote import spool_bytes
        try:
            with store.db.transaction():
                since = store.db.scalar(
                    "SELECT value FROM meta WHERE key = 'archive_behind_since_ns'")
                since = int(since or 0)
                if self.archive_behind and not since:
                    since = now_ns
                elif not self.archive_behind:
                    since = 0
                store.db.execute_write_many(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                    [("archive_behind_since_ns", str(since)),
                     ("archive_spool_bytes", str(spool_bytes(self.archive_dir)))])
        except Exception:
            _log.warning("otel-monitor: archive state not noted", exc_info=True)

    def _spool_has_room(self) -> bool:
        """With a remote destination: upload what waits; False (archiving waits, and so
        does the hot purge, up to the size cap) while the spool is over its bound."""
        if self.archive_target is None:
            return True
        from .archive.remote import spool_bytes
        self._upload(None)
        full = spool_bytes(self.archive_dir) >= self.archive_spool_max_bytes
        if full:
            self.archive_behind = True
            _log.warning("otel-monitor: archive behind: the spool %s is full; the purge "
                         "waits for the archive destination", self.archive_dir)
        return not full

    def _upload(self, now_ns: int | None) -> None:
        if self.archive_target is None:
            return
        from .archive.remote import expire_remote, upload_pending
        try:
            upload_pending(self.archive_dir, self.archive_target)
            if now_ns is not None:
                expire_remote(self.archive_target, now_ns - self.archive_retention_ns)
            self.archive_behind = False
        except OSError as exc:  # the bucket is down: the files wait in the spool
            self.archive_behind = True
            # the error's text only (never the filesystem's settings)
            _log.warning("otel-monitor: archive upload failed, files wait in the spool: %s",
                         type(exc).__name__)

    def _archive_then_delete(self, store: SpanStore, older_than_ns: int) -> int:
        from .archive.writer import ArchiveWriter

        writer = ArchiveWriter(self.archive_dir, self.writer_id())
        deleted = 0
        while True:
            rows = store.archive_rows(older_than_ns, self.archive_batch_calls)
            if not rows:
                return deleted
            writer.write(rows)  # raises ArchiveError: nothing is deleted
            ids = sorted({r[0] for r in rows})
            self.archived += len(ids)
            _fault_point("archived")
            deleted += store.delete_calls(ids)
            if len(ids) < self.archive_batch_calls:
                return deleted

    def _compact(self, cut_off_ns: int) -> None:
        """One file per hour per writer: this pass archived every call that started
        before ``cut_off_ns``, so the hours that ended by then are complete (a call of
        such an hour that arrives late is archived to a new file, merged the next pass).
        With S3 the bucket's objects are compacted after their upload (``compact_remote``):
        a file leaves the spool as soon as it is uploaded, since holding an hour's batches
        there until the hour completes would fill the bounded spool (and make the hot purge
        wait). Runs after the purge, files and objects only, no SQLite transaction; a
        failure loses nothing (the batches stay as they are, the next pass resumes), so it
        is logged, not raised; an unreachable bucket skips it for this pass."""
        from .archive.compact import compact, compact_remote
        try:
            if self.archive_target is None:
                compact(self.archive_dir, self.writer_id(), cut_off_ns, fault=_fault_point)
            else:
                compact_remote(self.archive_dir, self.archive_target, self.writer_id(),
                               cut_off_ns, fault=_fault_point)
        except OSError as exc:  # the bucket is down (or the disk): the next pass resumes
            _log.warning("otel-monitor: archive compaction skipped this pass: %s",
                         type(exc).__name__)
        except Exception:
            _log.warning("otel-monitor: archive compaction failed; the hour's batch files "
                         "stay as they are", exc_info=True)

    def _archive_over_cap(self, store: SpanStore, now_ns: int) -> int:
        """Past the size cap, delete the oldest calls (by start), each batch archived
        first as the age path does (verified file, then delete; a crash re-archives).
        The cap protects the disk the application runs on, so it is never waived: when
        the archive cannot take a batch (it fails, or the spool is at its bound) the
        calls over the cap are deleted anyway, and counted (``archive_lost``, exactly in
        ``meta.archive_lost_calls``; the self-health condition ``archive_lost``)."""
        if self.max_bytes is None:
            return 0
        from .archive.writer import ArchiveWriter

        writer = ArchiveWriter(self.archive_dir, self.writer_id())
        deleted = 0
        while over := store.calls_over_cap(self.max_bytes):
            try:
                if not self._spool_below_bound():
                    raise OSError("the archive spool is full")
                rows = store.archive_rows(_NO_AGE_NS, min(over, self.archive_batch_calls))
                writer.write(rows)
            except OSError as exc:
                self.archive_behind = True
                lost = store.purge(0, max_bytes=self.max_bytes, lost_at_ns=now_ns)
                self.archive_lost += lost
                _log.error("otel-monitor: the store is over its size cap and the archive "
                           "cannot take its oldest calls (%s): %d calls deleted unarchived",
                           exc, lost)
                return deleted + lost
            ids = sorted({r[0] for r in rows})
            self.archived += len(ids)
            _fault_point("archived")
            n = store.delete_calls(ids)
            deleted += n
            if n == 0:
                return deleted  # deleted by another process meanwhile: judge again next pass
        return deleted

    def _spool_below_bound(self) -> bool:
        from .archive.remote import spool_bytes
        return (self.archive_target is None
                or spool_bytes(self.archive_dir) < self.archive_spool_max_bytes)

    def _cycle(self, *, final: bool, flushing: bool) -> None:
        if final:
            if self._store is not None:
                self._store.close()
            self._store = None
            return
        try:
            if self._store is None:
                self._store = SpanStore(self.db_path)
            if self._store.claim_purge(int(self.interval_s * 1e9),
                                       retention_ns=self.retention_ns,
                                       max_bytes=self.max_bytes):
                self.run_once(self._store)
        except Exception:
            _log.warning("otel-monitor: retention pass failed", exc_info=True)

    def _forget_store(self) -> None:
        self._store = None


def _fault_point(name: str) -> None:
    """Test hook: with OTEL_MONITOR_ARCHIVE_FAULT=name:path, create ``path`` and stop here
    for good (the crash-safety test kills the process -9 at this point)."""
    spec = os.environ.get("OTEL_MONITOR_ARCHIVE_FAULT", "")
    if spec.partition(":")[0] == name:
        Path(spec.partition(":")[2]).touch()
        while True:
            time.sleep(1)
