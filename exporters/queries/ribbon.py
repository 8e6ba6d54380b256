"""The status ribbon: each exporting process's health, the feeds, the alert log and
the banners, with the badge levels the UI colours."""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from ..database import Database
from ..self_health import IngestStats, SelfHealth
from .filters import NS, dicts

# Badge levels of the status ribbon: (amber from, red from). The served UI takes them
# from otel_monitor's settings (OTEL_MONITOR_RIBBON_*); these are their defaults.
QUEUE_DEPTH_LEVELS = (1_000, 5_000)            # spans waiting (5,000: backpressure)
WRITE_LAG_MS_LEVELS = (500.0, 2_000.0)         # oldest queued span -> written
FEED_AGE_FACTORS = (1.5, 2.0)                  # x the feed's interval (else its threshold)


# A process that has not written its health row for this long, while alive, is shown as
# "Recording stopped" (its writer writes it at least once a second).
REPORT_SILENT_S = 5.0
# A health row not updated for this long is left out (a process on another host, whose
# pid cannot be asked); on this host a row is left out as soon as its pid is gone.
REPORT_FORGET_S = 300.0


@dataclass(frozen=True)
class RibbonLevels:
    """Where each badge turns amber and red: (amber from, red from). A feed's are
    factors of its own interval (of its stale threshold if it declares none); red is
    also when a feed counts as stale (its graph edges turn red)."""

    queue_depth: tuple[float, float] = QUEUE_DEPTH_LEVELS
    write_lag_ms: tuple[float, float] = WRITE_LAG_MS_LEVELS
    feed_age_factors: tuple[float, float] = FEED_AGE_FACTORS


ABOUT = {
    "QueueDepth": "calls recorded but not yet written to SQLite (the largest queue of "
                  "the exporting processes)",
    "SQLiteWriteLag": "how long the oldest queued call waits before it is written "
                      "(the largest of the exporting processes)",
    "LastFeedUpdate": "age of the last update of the feed furthest behind, judged "
                      "against its own interval",
    "SelfHealth": "otel-monitor's own health: its writers, the store's size and "
                  "retention, alert deliveries and the OTLP ingest",
}


def live_health_rows(rows: list[dict[str, Any]], *, now_ns: int) -> list[dict[str, Any]]:
    """The health rows of processes that may still run, each with its ``age_s``: not a
    pid of this host that is gone, nor a row older than ``REPORT_FORGET_S``."""
    here = socket.gethostname()
    out = []
    for r in rows:
        r["age_s"] = (now_ns - r["updated_ns"]) / NS
        if r["age_s"] > REPORT_FORGET_S:
            continue
        if r.get("host") == here and not _pid_alive(r["pid"]):
            continue
        out.append(r)
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process (or a pid we cannot ask about)
    return True


def health(db: Database, *, now_ns: int | None, levels: RibbonLevels = RibbonLevels(),
           self_health: SelfHealth | None = None, ingest: IngestStats | None = None
           ) -> dict[str, Any]:
    """Each live exporting process's health row and the ribbon's badges: value, level,
    what it measures (``about``), its thresholds and the value's age (``age_s``: since
    the health row it was read from was written; for a feed, the value is an age); and
    ``recording_stopped``: the processes that report recording off, or that have not
    reported for ``REPORT_SILENT_S``."""
    now = now_ns or time.time_ns()
    rows = live_health_rows(dicts(db, "SELECT * FROM health ORDER BY pid"), now_ns=now)
    stopped = [r for r in rows if r.get("recording") == 0 or r["age_s"] > REPORT_SILENT_S]
    deepest = max(rows, key=lambda r: r["queue_depth"], default=None)
    slowest = max(rows, key=lambda r: r["write_lag_ms"] or 0.0, default=None)
    depth = deepest["queue_depth"] if deepest else 0
    lag = (slowest["write_lag_ms"] or 0.0) if slowest else 0.0
    all_feeds = feeds(db, now_ns=now, levels=levels)
    worst_feed = max(all_feeds, key=lambda f: (_LEVEL_ORDER[f["level"]],
                                               f["age_s"] is None,
                                               (f["age_s"] or 0) / (f["limit_s"] or 1)),
                     default=None)
    badges = {
        "QueueDepth": {"value": depth, "level": _level(depth, levels.queue_depth),
                       "thresholds": levels.queue_depth, "about": ABOUT["QueueDepth"],
                       "age_s": deepest["age_s"] if deepest else None},
        "SQLiteWriteLag": {"value": lag, "level": _level(lag, levels.write_lag_ms),
                           "thresholds": levels.write_lag_ms, "unit": "ms",
                           "about": ABOUT["SQLiteWriteLag"],
                           "age_s": slowest["age_s"] if slowest else None},
        "LastFeedUpdate": {
            "value": worst_feed["age_s"] if worst_feed else None,
            "feed": worst_feed["name"] if worst_feed else None,
            "interval_s": worst_feed["interval_s"] if worst_feed else None,
            "level": worst_feed["level"] if worst_feed else "ok", "unit": "s",
            "thresholds": worst_feed["thresholds_s"] if worst_feed else None,
            "factors": levels.feed_age_factors, "about": ABOUT["LastFeedUpdate"],
            "age_s": worst_feed["age_s"] if worst_feed else None},
    }
    if self_health is not None:
        badges["SelfHealth"] = self_health_badge(db, rows, now, self_health, ingest)
    since = now - 300 * NS
    errors_5m = db.scalar(
        "SELECT count(*) FROM spans WHERE status = 'ERR' AND start_ns >= ?", (since,))
    return {"badges": badges, "errors_last_5_min": errors_5m, "processes": rows,
            "recording_stopped": stopped}


def self_health_badge(db: Database, rows: list[dict[str, Any]], now_ns: int,
                      judge: SelfHealth, ingest: IngestStats | None) -> dict[str, Any]:
    """otel-monitor's own health (``exporters.self_health``): red while any condition is
    bad; ``conditions``: each one judged (name, bad, measured, rule, where) and
    ``rules``: every condition's threshold, for the tooltip."""
    conditions = judge.judge(db, rows, now_ns, ingest=ingest)
    bad = [c for c in conditions if c.bad]
    return {"value": len(bad), "level": "red" if bad else "ok", "unit": "bad",
            "about": ABOUT["SelfHealth"], "rules": judge.limits.describe(),
            "conditions": [{"name": c.name, "bad": c.bad, "measured": c.text,
                            "rule": c.rule, "where": c.subject} for c in conditions],
            "age_s": None}


def feeds(db: Database, *, now_ns: int | None, levels: RibbonLevels = RibbonLevels()
          ) -> list[dict[str, Any]]:
    """Each feed with its age, its thresholds (``thresholds_s``: the level factors x its
    own interval, or x its stale threshold without one), a badge level and ``stale``
    (red: by default older than 2x its interval); a feed outside its hours (its
    processes wrote it closed) has the level ``closed`` and is never stale."""
    now = now_ns or time.time_ns()
    out = dicts(db, "SELECT * FROM feed_status ORDER BY name")
    # Outside its hours (every process ticking it says so: state 2): closed, never stale.
    closed = {r["name"] for r in dicts(
        db, "SELECT name FROM feeds GROUP BY name HAVING min(stale) = 2")}
    for f in out:
        limit = f["interval_s"] or f["stale_after_s"]
        age = None if f["last_update_ns"] is None else (now - f["last_update_ns"]) / NS
        f["age_s"] = age
        f["limit_s"] = limit
        f["thresholds_s"] = (limit * levels.feed_age_factors[0],
                             limit * levels.feed_age_factors[1])
        if age is None:
            f["level"] = "amber"
        else:
            f["level"] = _level(age, f["thresholds_s"])
        f["closed"] = f["name"] in closed
        if f["closed"]:
            f["level"] = "closed"
        f["stale"] = f["level"] == "red"
    return out


def alerts(db: Database, *, limit: int) -> list[dict[str, Any]]:
    return dicts(db, "SELECT * FROM alert_log LIMIT ?", (limit,))


def banners(db: Database, *, fresh_within_s: float, now_ns: int | None
            ) -> list[dict[str, Any]]:
    since = (now_ns or time.time_ns()) - int(fresh_within_s * NS)
    return dicts(db, "SELECT * FROM banners WHERE updated_ns >= ? ORDER BY name, host, pid",
                 (since,))


_LEVEL_ORDER = {"closed": -1, "ok": 0, "amber": 1, "red": 2}


def _level(value: float, levels: tuple[float, float]) -> str:
    if value >= levels[1]:
        return "red"
    if value >= levels[0]:
        return "amber"
    return "ok"
