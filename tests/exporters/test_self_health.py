"""otel-monitor's own health read from a real store: the purge claim notes the retention's
settings, the store's size against its cap, retention behind, failed deliveries, drops
per minute and the ingest's refusals (exporters.self_health)."""
from __future__ import annotations

import time

from exporters import SpanStore
from exporters.database import Database
from exporters.retention import RetentionWorker
from exporters.self_health import (ARCHIVE_BEHIND, ARCHIVE_LOST, DROPS, INGEST_REFUSING,
                                   RETENTION_BEHIND, STORE_SIZE,
                                   WEBHOOK_FAILING, WRITER_LAG, IngestStats, SelfHealth,
                                   store_figures)
from exporters.state import AlertRecord, StateStore
from exporter_helpers import HOUR_NS, insert_calls

S = 10**9


def judged(db_path, rows=(), now=None, **kw) -> dict:
    db = Database(db_path, readonly=True)
    try:
        return {c.name: c for c in SelfHealth().judge(db, list(rows), now or time.time_ns(),
                                                       **kw)}
    finally:
        db.close()


def test_the_purge_claim_notes_interval_retention_and_cap(db_path):
    store = SpanStore(db_path)
    worker = RetentionWorker(str(db_path), retention_hours=1, interval_s=30,
                             max_bytes=5 * 2**20)
    worker._cycle(final=False, flushing=False)
    worker._cycle(final=True, flushing=False)
    f = store_figures(store.db, time.time_ns())
    assert f["purge_interval_s"] == 30 and f["retention_s"] == 3600
    assert f["size_cap_bytes"] == 5 * 2**20
    assert f["last_purge_age_s"] is not None and f["retention_behind_s"] == 0.0
    store.close()


def test_a_store_near_its_cap_is_bad_and_one_well_under_it_is_not(db_path):
    store = SpanStore(db_path)
    insert_calls(store, [time.time_ns()] * 2000, args=(("payload", "x" * 200),))
    used = store.used_bytes()
    store.claim_purge(60 * S, retention_ns=6 * HOUR_NS, max_bytes=int(used / 0.95))
    assert judged(db_path)[STORE_SIZE].bad
    store.claim_purge(60 * S, retention_ns=6 * HOUR_NS, max_bytes=used * 2)
    size = judged(db_path)[STORE_SIZE]
    assert not size.bad and 0.45 < size.value < 0.55
    store.claim_purge(60 * S, retention_ns=6 * HOUR_NS, max_bytes=None)
    assert STORE_SIZE not in judged(db_path)  # no cap: nothing to judge
    store.close()


def test_retention_behind_by_more_than_two_intervals(db_path):
    store = SpanStore(db_path)
    now = time.time_ns()
    store.claim_purge(60 * S, retention_ns=HOUR_NS, max_bytes=None)
    insert_calls(store, [now - HOUR_NS - 100 * S])  # 100 s past the window: < 2 intervals
    assert not judged(db_path, now=now)[RETENTION_BEHIND].bad
    insert_calls(store, [now - HOUR_NS - 150 * S])  # 150 s: 2.5 intervals
    behind = judged(db_path, now=now)[RETENTION_BEHIND]
    assert behind.bad and 2.4 < behind.value < 2.6
    store.close()


def _note_archive(store, since_ns: int, spool: int = 0) -> None:
    """What the retention notes each pass (RetentionWorker._note_archive_state)."""
    store.db.execute_write_many("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                                [("archive_behind_since_ns", str(since_ns)),
                                 ("archive_spool_bytes", str(spool))])


def test_archive_behind_by_more_than_two_purge_intervals(db_path):
    store = SpanStore(db_path)
    now = time.time_ns()
    store.claim_purge(60 * S, retention_ns=HOUR_NS, max_bytes=None)
    assert ARCHIVE_BEHIND not in judged(db_path, now=now)  # no archive: nothing to judge
    _note_archive(store, 0)
    ok = judged(db_path, now=now)[ARCHIVE_BEHIND]
    assert not ok.bad and ok.value == 0 and ok.subject == "store"
    _note_archive(store, now - 100 * S, spool=5 * 2**20)  # 100 s: < 2 intervals
    assert not judged(db_path, now=now)[ARCHIVE_BEHIND].bad
    _note_archive(store, now - 150 * S, spool=5 * 2**20)  # 150 s: 2.5 intervals
    behind = judged(db_path, now=now)[ARCHIVE_BEHIND]
    assert behind.bad and 2.4 < behind.value < 2.6
    assert "150 s" in behind.text and "5.0 MiB" in behind.text
    assert "archive" in behind.rule and "2 purge intervals" in behind.rule
    store.close()


def test_calls_the_size_cap_deleted_unarchived_are_bad_for_fifteen_minutes(db_path, tmp_path):
    """A real retention pass over the size cap whose archive cannot be written: the
    calls it deletes anyway are counted, and the condition is bad for the window."""
    store = SpanStore(db_path)
    now = time.time_ns()
    insert_calls(store, [now - 10**9 + i for i in range(2000)], args=(("pad", "x" * 400),))
    store.claim_purge(60 * S, retention_ns=6 * HOUR_NS, max_bytes=200_000)
    assert ARCHIVE_LOST not in judged(db_path, now=now)  # no archive: nothing to judge
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    worker = RetentionWorker(str(db_path), archive_dir=str(blocker / "a"), max_bytes=200_000)
    worker.run_once(store, now_ns=now)  # young calls: only the cap deletes
    store.close()
    assert worker.archive_lost > 0
    lost = judged(db_path, now=now + 60 * S)[ARCHIVE_LOST]
    assert lost.bad and lost.value == worker.archive_lost and lost.subject == "store"
    assert f"{worker.archive_lost:,} calls" in lost.text and "60 s ago" in lost.text
    assert "size cap" in lost.rule and "15 min" in lost.rule
    later = judged(db_path, now=now + 16 * 60 * S)[ARCHIVE_LOST]
    assert not later.bad and later.value == worker.archive_lost  # the count stays


def test_failed_or_dropped_deliveries_in_the_window_are_bad(db_path):
    SpanStore(db_path).close()
    state = StateStore(db_path)
    assert not judged(db_path)[WEBHOOK_FAILING].bad
    now = time.time_ns()
    state.record_alerts([AlertRecord(
        ts_ns=now, rule="exception", action="trigger", key="k", target="slack x",
        status="failed", attempts=3, count=1, summary="s", error="HTTP 500", process=None,
        span_id=None, trace_id=None, feed=None, done_ns=now)])
    state.close()
    assert judged(db_path)[WEBHOOK_FAILING].bad
    assert not judged(db_path, now=now + 3600 * S)[WEBHOOK_FAILING].bad  # long ago


def test_writer_lag_and_drops_in_the_last_minute_per_process(db_path):
    SpanStore(db_path).close()
    health = SelfHealth()
    row = {"pid": 1, "host": "h", "write_lag_ms": 6000.0, "dropped": 10}
    db = Database(db_path, readonly=True)
    now = time.time_ns()
    first = {c.name: c for c in health.judge(db, [dict(row)], now)}
    assert first[WRITER_LAG].bad and not first[DROPS].bad  # one reading: no drop seen yet
    later = {c.name: c for c in health.judge(db, [dict(row, dropped=15, write_lag_ms=10.0)],
                                            now + 10 * S)}
    assert later[DROPS].bad and later[DROPS].value == 5 and not later[WRITER_LAG].bad
    calm = {c.name: c for c in health.judge(db, [dict(row, dropped=15)], now + 80 * S)}
    assert not calm[DROPS].bad  # the 5 drops are more than a minute old
    db.close()


def test_ingest_refusals_in_the_last_minute(db_path):
    SpanStore(db_path).close()
    stats = IngestStats()
    stats.note(200)
    assert not judged(db_path, ingest=stats)[INGEST_REFUSING].bad
    stats.note(503)
    assert judged(db_path, ingest=stats)[INGEST_REFUSING].bad
    assert stats.snapshot() == {200: 1, 503: 1}
