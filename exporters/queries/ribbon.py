"""The status ribbon: each exporting process's health, the feeds, the alert log and
the banners, with the badge levels the UI colours."""
from __future__ import annotations

import time
from typing import Any

from ..database import Database
from .filters import NS, dicts

# Badge levels of the status ribbon: (amber from, red from).
QUEUE_DEPTH_LEVELS = (1_000, 5_000)            # spans waiting (5,000: backpressure)
WRITE_LAG_MS_LEVELS = (500.0, 2_000.0)         # oldest queued span -> written
FEED_AGE_FACTORS = (1.0, 2.0)                  # x the feed's interval (else its threshold)


def health(db: Database, *, now_ns: int | None) -> dict[str, Any]:
    """Each exporting process's health row and the ribbon's badges with their levels."""
    now = now_ns or time.time_ns()
    rows = dicts(db, "SELECT * FROM health ORDER BY pid")
    for r in rows:
        r["age_s"] = (now - r["updated_ns"]) / NS
    depth = max((r["queue_depth"] for r in rows), default=0)
    lag = max((r["write_lag_ms"] or 0.0 for r in rows), default=0.0)
    all_feeds = feeds(db, now_ns=now)
    worst_feed = max(all_feeds, key=lambda f: _LEVEL_ORDER[f["level"]], default=None)
    badges = {
        "QueueDepth": {"value": depth, "level": _level(depth, QUEUE_DEPTH_LEVELS),
                       "thresholds": QUEUE_DEPTH_LEVELS},
        "SQLiteWriteLag": {"value": lag, "level": _level(lag, WRITE_LAG_MS_LEVELS),
                           "thresholds": WRITE_LAG_MS_LEVELS, "unit": "ms"},
        "LastFeedUpdate": {
            "value": worst_feed["age_s"] if worst_feed else None,
            "feed": worst_feed["name"] if worst_feed else None,
            "level": worst_feed["level"] if worst_feed else "ok", "unit": "s",
            "thresholds": "amber past the feed's interval, red past 2x"},
    }
    since = now - 300 * NS
    errors_5m = db.scalar(
        "SELECT count(*) FROM spans WHERE status = 'ERR' AND start_ns >= ?", (since,))
    return {"badges": badges, "errors_last_5_min": errors_5m, "processes": rows}


def feeds(db: Database, *, now_ns: int | None) -> list[dict[str, Any]]:
    """Each feed with its age, ``stale`` (older than 2x its interval, or its threshold
    without one) and a badge level."""
    now = now_ns or time.time_ns()
    out = dicts(db, "SELECT * FROM feed_status ORDER BY name")
    for f in out:
        limit = f["interval_s"] or f["stale_after_s"]
        age = None if f["last_update_ns"] is None else (now - f["last_update_ns"]) / NS
        f["age_s"] = age
        if age is None:
            f["level"] = "amber"
        else:
            f["level"] = _level(age, (limit * FEED_AGE_FACTORS[0],
                                      limit * FEED_AGE_FACTORS[1]))
        f["stale"] = f["level"] == "red"
    return out


def alerts(db: Database, *, limit: int) -> list[dict[str, Any]]:
    return dicts(db, "SELECT * FROM alert_log LIMIT ?", (limit,))


def banners(db: Database, *, fresh_within_s: float, now_ns: int | None
            ) -> list[dict[str, Any]]:
    since = (now_ns or time.time_ns()) - int(fresh_within_s * NS)
    return dicts(db, "SELECT * FROM banners WHERE updated_ns >= ? ORDER BY name, host, pid",
                 (since,))


_LEVEL_ORDER = {"ok": 0, "amber": 1, "red": 2}


def _level(value: float, levels: tuple[float, float]) -> str:
    if value >= levels[1]:
        return "red"
    if value >= levels[0]:
        return "amber"
    return "ok"
