"""StateWriter: the worker that writes what the alert engine knows to the store.

Feeds (every ``PERSIST_INTERVAL_S``, and at once when one goes stale or recovers),
new feed -> process edges, the backpressure flag, and the outcome of every alert
delivery. It is a ``BackgroundWorker`` of its own ("otel-monitor-state") so that
the engine, which applies the rules and hands alerts to the senders, never waits on
SQLite: the writer thread of a busy application holds the store's write lock much
of the time.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Mapping, Protocol

from exporters.errors import StoreError
from exporters.state import FLAG_BACKPRESSURE, AlertRecord, FeedState, StateStore
from exporters.worker import BackgroundWorker

_log = logging.getLogger("otel_monitor")

CHECK_INTERVAL_S = 0.1
PERSIST_INTERVAL_S = 0.5   # feeds: "at least once a second"
PURGE_INTERVAL_S = 60.0    # alerts older than the retention window
MAX_RESULTS = 100_000      # delivery outcomes waiting to be written

_NS = 1_000_000_000

Edge = tuple[str, str, bool, bool]  # (feed, process, declared, called)


class FeedLike(Protocol):
    name: str
    interval_s: float | None
    stale_after_s: float | None
    last_ns: int
    ticks: int


class FeedBook(Protocol):
    """The feeds of this process and their edges (``otel_monitor._feeds.FeedRegistry``)."""

    feeds: Mapping[str, FeedLike]

    def edges(self) -> set[Edge]:
        """Every feed -> process edge known: declared, or called in a handler."""


class StateWriter:
    def __init__(self, db_path: str, feeds: FeedBook, *, service_name: str | None,
                 default_stale_after_s: float, retention_hours: float) -> None:
        self.db_path = db_path
        self.feeds = feeds
        self.service_name = service_name
        self.default_stale_after_s = default_stale_after_s
        self.retention_ns = int(retention_hours * 3600 * _NS)
        # Its inbox: delivery outcomes waiting to be written.
        self.worker = BackgroundWorker("otel-monitor-state", self._cycle,
                                       interval_s=CHECK_INTERVAL_S, inbox_size=MAX_RESULTS,
                                       on_fork=self._init_state)
        self._results = self.worker.inbox
        self._init_state()

    def _init_state(self) -> None:
        """Also in a forked child: the inherited connection is the parent's, left alone."""
        self.stale: set[str] = set()  # feeds the engine judges stale (it alone writes it)
        self.closed: set[str] = set()  # feeds outside their hours (the engine's too)
        self._flag: dict[str, Any] | None = None
        self._persist_now = False
        self._store: StateStore | None = None
        self._store_failed = False
        self._edges_written: set[Edge] = set()
        self._next_persist_ns = 0
        self._next_purge_ns = 0
        self._pid = os.getpid()

    # -- what the engine and the senders hand over -------------------------------------

    def add_result(self, record: AlertRecord) -> None:
        self.worker.put(record)

    def set_flag(self, *, raised: bool, since_ns: int | None, value: float,
                 message: str | None) -> None:
        self.worker.reset_if_forked()  # first: a forked child's reset would drop this
        self._flag = dict(raised=raised, since_ns=since_ns, value=value, message=message)
        self.worker.wake()

    def persist_soon(self) -> None:
        self.worker.reset_if_forked()  # first: a forked child's reset would drop this
        self._persist_now = True
        self.worker.wake()

    def idle(self) -> bool:
        return not self._results and self._flag is None and not self._persist_now

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Persist feeds from now on (idempotent)."""
        if not self.worker.running:
            self.worker.wake()

    def shutdown(self) -> None:
        if self._pid != os.getpid():  # a forked child that never used it
            self._init_state()
        if self.worker.stop(10):
            self._pass(time.time_ns(), final=True)  # what came in while it stopped
        if self._store is not None:
            self._store.close()
        self._store = None

    def _cycle(self, *, final: bool, flushing: bool) -> None:
        self._pass(time.time_ns(), final=final)

    # -- writes ---------------------------------------------------------------------------

    def _open(self) -> StateStore | None:
        if self._store is None:
            try:
                self._store = StateStore(self.db_path)
                self._store_failed = False
            except Exception:
                if not self._store_failed:
                    _log.warning("otel-monitor: cannot open %s for feeds and alerts; will "
                                 "retry", self.db_path, exc_info=True)
                self._store_failed = True
                return None
        return self._store

    def _pass(self, now: int, final: bool = False) -> None:
        if self._flag is not None:
            self._write_flag()
        if self._persist_now or now >= self._next_persist_ns or final:
            self._persist_now = False
            self._next_persist_ns = now + int(PERSIST_INTERVAL_S * _NS)
            self._persist(now, final)
        if self._results:
            self._write_results()

    def _write_flag(self) -> None:
        flag, store = self._flag, self._open()
        if flag is None or store is None:
            return
        try:
            store.set_flag(FLAG_BACKPRESSURE, **flag)
            if self._flag is flag:
                self._flag = None
        except StoreError:
            _log.debug("otel-monitor: backpressure flag not written yet", exc_info=True)

    def _persist(self, now: int, final: bool) -> None:
        feeds = list(self.feeds.feeds.values())
        new_edges = self.feeds.edges() - self._edges_written
        if not feeds and not new_edges:
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
                default = self.default_stale_after_s
                store.write_feeds([
                    FeedState(f.name, f.interval_s, f.stale_after_s or default,
                              f.last_ns or None, f.ticks, f.name in self.stale,
                              closed=f.name in self.closed)
                    for f in feeds], service_name=self.service_name)
            if new_edges:
                store.write_feed_edges(new_edges)
                self._edges_written |= new_edges
            if now >= self._next_purge_ns and not final:
                self._next_purge_ns = now + int(PURGE_INTERVAL_S * _NS)
                store.purge_alerts(now - self.retention_ns)
        except StoreError:
            _log.debug("otel-monitor: feeds not written yet", exc_info=True)

    def _write_results(self) -> None:
        store = self._open()
        if store is None:
            return
        records = []
        while self._results:
            records.append(self._results.popleft())
        try:
            store.record_alerts(records)
        except StoreError:
            _log.debug("otel-monitor: alert outcomes not written yet", exc_info=True)
            self._results.extendleft(reversed(records))
