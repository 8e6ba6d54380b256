"""otel-monitor's own health: the conditions it alerts on about itself, read from the store.

One place for the limits (``SelfHealthLimits``), used by the ribbon's self-health badge
(``exporters.queries``), the in-process alerts (``otel_monitor.alerts.selfmon``) and, as
the same numbers, by the Prometheus rules in ``collector-config/prometheus/
selfmon-rules.yml`` (a test compares them):

==================  =========================================================  =========
condition           measured                                                    bad when
==================  =========================================================  =========
writer_lag          oldest queued call -> written, per exporting process         > 5 s
drops               calls dropped (queue full) in the last minute, per process  > 0
store_size          used bytes / the size cap (``max_db_mb``), when one is set  >= 90 %
retention_behind    age of the oldest call past the retention window, in purge  > 2
                    intervals (``retention_hours``, ``purge_interval_s``)
archive_behind      time the cold archive has been behind (its bucket down, its > 2
                    spool growing; ``meta.archive_behind_since_ns``), in purge
                    intervals; only with an archive
archive_lost        calls the size cap deleted without archiving them (the     > 0
                    archive failing or its spool full; ``meta.archive_lost_calls``,
                    exact), in the last 15 minutes; only with an archive
webhook_failing     alert deliveries failed or dropped in the last 15 minutes   > 0
ingest_refusing     OTLP requests refused with 503 in the last minute (the      > 0
                    serving process's own count; ``IngestStats``)
==================  =========================================================  =========

The retention's settings reach readers through the store's ``meta`` table: each purge
claim writes ``purge_interval_ns``, ``retention_ns`` and ``size_cap_bytes``
(``SpanStore.claim_purge``). Drops per minute need two readings: a ``SelfHealth``
remembers the dropped counters it saw over the last minute.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from .database import Database

NS = 1_000_000_000
WRITER_LAG = "writer_lag"
DROPS = "drops"
STORE_SIZE = "store_size"
RETENTION_BEHIND = "retention_behind"
WEBHOOK_FAILING = "webhook_failing"
INGEST_REFUSING = "ingest_refusing"
ARCHIVE_BEHIND = "archive_behind"
ARCHIVE_LOST = "archive_lost"
CONDITIONS = (WRITER_LAG, DROPS, STORE_SIZE, RETENTION_BEHIND, WEBHOOK_FAILING,
              INGEST_REFUSING, ARCHIVE_BEHIND, ARCHIVE_LOST)
REFUSED_STATUSES = (503,)  # the server could not take spans it should take (busy, store)


@dataclass(frozen=True)
class SelfHealthLimits:
    writer_lag_s: float = 5.0
    drops_window_s: float = 60.0
    store_full_ratio: float = 0.9
    retention_intervals: float = 2.0
    webhook_window_s: float = 900.0
    ingest_window_s: float = 60.0
    archive_intervals: float = 2.0
    archive_lost_window_s: float = 900.0

    def describe(self) -> dict[str, str]:
        """Each condition's rule, for people (the ribbon's tooltip, alert texts)."""
        return {
            WRITER_LAG: f"writer lag > {self.writer_lag_s:g} s",
            DROPS: f"calls dropped in the last {self.drops_window_s:g} s > 0",
            STORE_SIZE: f"store at {self.store_full_ratio:.0%} of its size cap or more",
            RETENTION_BEHIND: f"retention behind by > {self.retention_intervals:g} purge "
                              "intervals",
            WEBHOOK_FAILING: f"alert deliveries failed in the last "
                             f"{self.webhook_window_s / 60:g} min > 0",
            INGEST_REFUSING: f"OTLP requests refused (503) in the last "
                             f"{self.ingest_window_s:g} s > 0",
            ARCHIVE_BEHIND: f"archive behind for > {self.archive_intervals:g} purge "
                            "intervals",
            ARCHIVE_LOST: "calls deleted by the size cap without archiving them in the "
                          f"last {self.archive_lost_window_s / 60:g} min > 0",
        }


@dataclass
class Condition:
    name: str
    bad: bool
    value: float | None     # what was measured (None: nothing to measure)
    text: str               # the measurement, for people
    rule: str               # when it is bad
    subject: str = ""       # which process (pid@host) or "store"


class IngestStats:
    """The serving process's OTLP ingest answers (thread-safe counters, and the times of
    recent refusals)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.answers: Counter[int] = Counter()
        self._refused: deque[int] = deque(maxlen=10_000)

    def note(self, status: int) -> None:
        with self._lock:
            self.answers[status] += 1
            if status in REFUSED_STATUSES:
                self._refused.append(time.time_ns())

    def refused_since(self, since_ns: int) -> int:
        with self._lock:
            return sum(1 for t in self._refused if t >= since_ns)

    def snapshot(self) -> dict[int, int]:
        with self._lock:
            return dict(self.answers)


def meta_int(db: Database, key: str) -> int | None:
    value = db.scalar("SELECT value FROM meta WHERE key = ?", (key,))
    return None if value is None else int(value)


def store_figures(db: Database, now_ns: int) -> dict[str, Any]:
    """The store's size and retention figures (cheap: a few pragmas, ``meta`` rows and
    the first entry of the time index)."""
    page_size = db.scalar("PRAGMA page_size")
    used = (db.scalar("PRAGMA page_count") - db.scalar("PRAGMA freelist_count")) * page_size
    oldest = db.scalar("SELECT min(start_ns) FROM spans")
    interval = meta_int(db, "purge_interval_ns")
    retention = meta_int(db, "retention_ns")
    last = meta_int(db, "last_purge_ns")
    behind_s = None
    if retention is not None:
        behind_s = 0.0 if oldest is None else max(0.0, (now_ns - retention - oldest) / NS)
    return {"used_bytes": used, "size_cap_bytes": meta_int(db, "size_cap_bytes"),
            "purge_interval_s": None if interval is None else interval / NS,
            "retention_s": None if retention is None else retention / NS,
            "last_purge_age_s": None if last is None else max(0.0, (now_ns - last) / NS),
            "oldest_call_ns": oldest, "retention_behind_s": behind_s,
            # the archive (exporters.retention): behind since (None: not behind), spool
            "archive_behind_s": _archive_behind_s(db, now_ns),
            "archive_spool_bytes": meta_int(db, "archive_spool_bytes"),
            # calls the size cap deleted unarchived (a count since the store began) and
            # when it last did
            "archive_lost_calls": meta_int(db, "archive_lost_calls") or 0,
            "archive_lost_last_ns": meta_int(db, "archive_lost_last_ns"),
            # True once a retention with an archive noted its state (0 or a time)
            "archive_on": meta_int(db, "archive_behind_since_ns") is not None}


def _archive_behind_s(db: Database, now_ns: int) -> float | None:
    since = meta_int(db, "archive_behind_since_ns")
    return None if not since else max(0.0, (now_ns - since) / NS)


@dataclass
class SelfHealth:
    """Judges the conditions; keeps the dropped counters of the last minute."""

    limits: SelfHealthLimits = field(default_factory=SelfHealthLimits)

    def __post_init__(self) -> None:
        self._drops: dict[tuple[int, str], deque[tuple[int, int]]] = {}
        self._lock = threading.Lock()

    def drops_in_window(self, key: tuple[int, str], dropped: int, now_ns: int, *,
                        from_zero: bool = False) -> int:
        """Calls dropped by ``key``'s process over the last ``drops_window_s`` (since the
        first reading, for a process seen for less than that; with ``from_zero``, a
        process first seen counts from 0: the process judging its own writer, whose
        counter started with it)."""
        window = int(self.limits.drops_window_s * NS)
        with self._lock:
            seen = self._drops.get(key)
            if seen is None:
                seen = self._drops[key] = deque([(now_ns - 1, 0)] if from_zero else [])
            seen.append((now_ns, dropped))
            while len(seen) > 1 and seen[1][0] <= now_ns - window:
                seen.popleft()
            if len(self._drops) > 10_000:  # processes come and go
                for old in list(self._drops)[:1000]:
                    self._drops.pop(old, None)
            base = seen[0][1]
            return max(0, dropped - base) if seen[0][0] < now_ns else 0

    def judge(self, db: Database, health_rows: list[dict[str, Any]], now_ns: int, *,
              ingest: IngestStats | None = None, pids: set[int] | None = None
              ) -> list[Condition]:
        """Every condition that applies, bad or not. ``health_rows``: the live processes'
        health rows; ``pids``: only those processes' (an instrumented process judges
        its own writer: its drops count from 0)."""
        lim = self.limits
        rules = lim.describe()
        out = []
        for r in health_rows:
            if pids is not None and r["pid"] not in pids:
                continue
            who = f"{r['pid']}@{r.get('host') or '?'}"
            lag = (r.get("write_lag_ms") or 0.0) / 1000
            out.append(Condition(WRITER_LAG, lag > lim.writer_lag_s, lag, f"{lag:.1f} s",
                                 rules[WRITER_LAG], who))
            dropped = self.drops_in_window((r["pid"], r.get("host") or ""), r["dropped"],
                                           now_ns, from_zero=pids is not None)
            out.append(Condition(DROPS, dropped > 0, dropped, f"{dropped:,} dropped",
                                 rules[DROPS], who))
        figures = store_figures(db, now_ns)
        cap = figures["size_cap_bytes"]
        if cap:
            ratio = figures["used_bytes"] / cap
            out.append(Condition(STORE_SIZE, ratio >= lim.store_full_ratio, ratio,
                                 f"{ratio:.0%} of {cap / 2**20:,.1f} MiB", rules[STORE_SIZE],
                                 "store"))
        interval, behind = figures["purge_interval_s"], figures["retention_behind_s"]
        if interval and behind is not None:
            n = behind / interval
            out.append(Condition(RETENTION_BEHIND, n > lim.retention_intervals, n,
                                 f"behind by {behind:,.0f} s ({n:.1f} intervals)",
                                 rules[RETENTION_BEHIND], "store"))
        if interval and figures["archive_on"]:
            late = figures["archive_behind_s"] or 0.0
            n = late / interval
            spool = (figures["archive_spool_bytes"] or 0) / 2**20
            out.append(Condition(ARCHIVE_BEHIND, n > lim.archive_intervals, n,
                                 f"behind for {late:,.0f} s ({n:.1f} intervals), "
                                 f"{spool:,.1f} MiB spooled", rules[ARCHIVE_BEHIND], "store"))
        if figures["archive_on"]:
            lost, last = figures["archive_lost_calls"], figures["archive_lost_last_ns"]
            age_s = None if last is None else max(0.0, (now_ns - last) / NS)
            recent = age_s is not None and age_s < lim.archive_lost_window_s
            text = (f"{lost:,} calls deleted unarchived"
                    + ("" if age_s is None else f", the last {age_s:,.0f} s ago"))
            out.append(Condition(ARCHIVE_LOST, recent and lost > 0, lost, text,
                                 rules[ARCHIVE_LOST], "store"))
        since = now_ns - int(lim.webhook_window_s * NS)
        failed = db.scalar("SELECT count(*) FROM alerts WHERE ts_ns >= ? AND status IN "
                           "('failed', 'dropped')", (since,)) or 0
        out.append(Condition(WEBHOOK_FAILING, failed > 0, failed,
                             f"{failed:,} failed or dropped", rules[WEBHOOK_FAILING], "store"))
        if ingest is not None:
            refused = ingest.refused_since(now_ns - int(lim.ingest_window_s * NS))
            out.append(Condition(INGEST_REFUSING, refused > 0, refused,
                                 f"{refused:,} refused", rules[INGEST_REFUSING], "ingest"))
        return out
