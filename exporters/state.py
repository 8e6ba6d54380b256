"""StateStore: the store's tables besides calls (schema version 2).

What an instrumented process writes for the UI — another process — to show:
its feeds and their last update (at least once a second), the feed -> process
edges of the dependency graph, every alert it sent, failed to send or dropped,
and the flags shown as banners (queue backpressure). ``StateStore`` is a
``SpanStore`` (same file, same ``Database``, same rules: one per thread, every
query parameterised) with the writes and reads of those tables.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .database import Row
from .store import SpanStore

FLAG_BACKPRESSURE = "backpressure"

# Alert delivery outcomes (alerts.status)
SENT = "sent"
FAILED = "failed"
DROPPED = "dropped"
SUPPRESSED = "suppressed"  # not posted: a maintenance window or a silence held it (the
                           # row's ``error`` names which); target is SUPPRESSED_TARGET
SUPPRESSED_TARGET = "none (suppressed)"


@dataclass(frozen=True)
class FeedState:
    """One feed as one process sees it."""

    name: str
    interval_s: float | None
    stale_after_s: float
    last_update_ns: int | None
    ticks: int
    stale: bool
    closed: bool = False  # outside its hours: not stale whatever its age


# The feeds table's ``stale`` column: the state of the feed as its process judged it.
FEED_ON_TIME, FEED_STALE, FEED_CLOSED = 0, 1, 2


@dataclass(frozen=True)
class AlertRecord:
    """One alert's delivery to one webhook, as it ended."""

    ts_ns: int
    rule: str
    action: str
    key: str
    target: str
    status: str
    attempts: int
    count: int
    summary: str
    error: str | None = None
    process: str | None = None
    span_id: str | None = None
    trace_id: str | None = None
    feed: str | None = None
    done_ns: int | None = None


class StateStore(SpanStore):
    """Feeds, feed edges, alerts and flags of one store file."""

    def __init__(self, path: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.host = socket.gethostname()

    # -- writes ---------------------------------------------------------------

    def write_feeds(self, feeds: Sequence[FeedState], *, service_name: str | None = None) -> None:
        """Upsert this process's row of each feed (``updated_ns`` is now); its ``stale``
        column holds ``FEED_ON_TIME``, ``FEED_STALE`` or ``FEED_CLOSED`` (outside its
        hours: the UI greys it)."""
        now, pid = time.time_ns(), os.getpid()
        self.db.execute_write_many(
            """INSERT OR REPLACE INTO feeds(name, host, pid, service_name, interval_s,
                   stale_after_s, last_update_ns, ticks, stale, updated_ns)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [(f.name, self.host, pid, service_name, f.interval_s, f.stale_after_s,
              f.last_update_ns, f.ticks,
              FEED_CLOSED if f.closed else FEED_STALE if f.stale else FEED_ON_TIME, now)
             for f in feeds])

    def write_feed_edges(self, edges: Iterable[tuple[str, str, bool, bool]]) -> None:
        """Upsert ``(feed, process, declared, called)`` edges; a flag once set stays set."""
        now = time.time_ns()
        self.db.execute_write_many(
            """INSERT INTO feed_edges(feed, process, declared, called, first_ns, last_ns)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT(feed, process) DO UPDATE SET
                   declared = max(declared, excluded.declared),
                   called = max(called, excluded.called),
                   last_ns = excluded.last_ns""",
            [(feed, process, int(declared), int(called), now, now)
             for feed, process, declared, called in edges])

    def record_alerts(self, records: Sequence[AlertRecord]) -> None:
        now, pid = time.time_ns(), os.getpid()
        self.db.execute_write_many(
            """INSERT INTO alerts(ts_ns, rule, action, key, target, status, attempts, count,
                   summary, error, process, span_id, trace_id, feed, done_ns, host, pid)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [(r.ts_ns, r.rule, r.action, r.key, r.target, r.status, r.attempts, r.count,
              r.summary, r.error, r.process, r.span_id, r.trace_id, r.feed,
              r.done_ns if r.done_ns is not None else now, self.host, pid) for r in records])

    def set_flag(self, name: str, *, raised: bool, since_ns: int | None = None,
                 value: float | None = None, message: str | None = None) -> None:
        """Raise (or refresh) or clear this process's flag ``name``."""
        self.db.execute_write_many(
            """INSERT OR REPLACE INTO flags(name, host, pid, raised, since_ns, value, message,
                   updated_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            [(name, self.host, os.getpid(), int(raised), since_ns, value, message,
              time.time_ns())])

    def purge_alerts(self, older_than_ns: int) -> int:
        return self.db.execute_write("DELETE FROM alerts WHERE ts_ns < ?", (older_than_ns,))

    # -- reads ----------------------------------------------------------------

    def known_processes(self, names: Iterable[str]) -> set[str]:
        """Which of ``names`` are in the catalog (have calls in this store)."""
        names = list(names)
        found: set[str] = set()
        for i in range(0, len(names), 500):
            chunk = names[i:i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self.db.execute(
                f"SELECT name FROM processes WHERE name IN ({marks})", chunk))
        return found

    def feeds(self) -> list[Row]:
        """Each feed across the processes that tick it (the ``feed_status`` view)."""
        return self.query("SELECT * FROM feed_status ORDER BY name")

    def feed_edges(self) -> list[Row]:
        return self.query("SELECT * FROM feed_edges ORDER BY feed, process")

    def alerts(self, *, limit: int = 100, rule: str | None = None) -> list[Row]:
        """The newest alerts first (the ``alert_log`` view)."""
        if rule is None:
            return self.query("SELECT * FROM alert_log LIMIT ?", (limit,))
        return self.query("SELECT * FROM alert_log WHERE rule = ? LIMIT ?", (rule, limit))

    def banners(self, *, fresh_within_s: float | None = None) -> list[Row]:
        """Raised flags; with ``fresh_within_s``, only those refreshed that recently (a
        process that stopped while its flag was raised no longer refreshes it)."""
        if fresh_within_s is None:
            return self.query("SELECT * FROM banners ORDER BY name, host, pid")
        since = time.time_ns() - int(fresh_within_s * 1e9)
        return self.query("SELECT * FROM banners WHERE updated_ns >= ? ORDER BY name, host, pid",
                          (since,))
