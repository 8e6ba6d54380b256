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

import logging
import time

from .groups import MINUTES_KEPT_NS
from .rollups import DEFAULT_RETENTION_DAYS
from .store import SpanStore
from .worker import BackgroundWorker

_log = logging.getLogger("otel_monitor")


class RetentionWorker:
    def __init__(self, db_path: str, *, retention_hours: float = 6.0, interval_s: float = 60.0,
                 max_bytes: int | None = None, group_retention_days: float = 30.0,
                 rollup_retention_days: float = DEFAULT_RETENTION_DAYS) -> None:
        self.db_path = db_path
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
        n = store.purge(now_ns - self.retention_ns, max_bytes=self.max_bytes)
        self.purged += n
        store.purge_groups(now_ns - self.group_retention_ns, now_ns - MINUTES_KEPT_NS,
                           rollups_before_ns=now_ns - self.rollup_retention_ns)
        return n

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
