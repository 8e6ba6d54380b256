"""Retention: a thread that purges calls older than the retention window.

It has its own connection, and purges in short transactions (``SpanStore.purge``)
so that writers of the same store never wait long. When several processes write
one store, one purge per interval is enough: the first to claim it does it.
"""
from __future__ import annotations

import logging
import threading
import time

from .store import SpanStore

_log = logging.getLogger("otel_monitor")


class RetentionWorker:
    def __init__(self, db_path: str, *, retention_hours: float = 6.0, interval_s: float = 60.0,
                 max_bytes: int | None = None) -> None:
        self.db_path = db_path
        self.retention_ns = int(retention_hours * 3600 * 1e9)
        self.interval_s = interval_s
        self.max_bytes = max_bytes
        self.purged = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="otel-monitor-retention",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def run_once(self, store: SpanStore, now_ns: int | None = None) -> int:
        now_ns = time.time_ns() if now_ns is None else now_ns
        n = store.purge(now_ns - self.retention_ns, max_bytes=self.max_bytes)
        self.purged += n
        return n

    def _run(self) -> None:
        store = None
        try:
            while not self._stop.is_set():
                try:
                    if store is None:
                        store = SpanStore(self.db_path)
                    if store.claim_purge(int(self.interval_s * 1e9)):
                        self.run_once(store)
                except Exception:
                    _log.warning("otel-monitor: retention pass failed", exc_info=True)
                self._stop.wait(self.interval_s)
        finally:
            if store is not None:
                store.close()
