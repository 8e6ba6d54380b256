"""Per-minute call rollups kept by the writer (``SpanStore.insert_calls``,
``exporters.rollups``): equal to the raw calls they sum (counts, failures, durations,
buckets, weights), in the calls' transaction, kept past the calls' purge, purged after
their own retention."""
from __future__ import annotations

import os
import time

import pytest
from opentelemetry.trace import Status, StatusCode

from exporter_helpers import HOUR_NS, insert_calls, run_workload
from exporters import RetentionWorker, RowRejected, SpanStore
from exporters import rollups
from exporters.columns import DURATION_BUCKETS_MS, ROLLUP_BUCKET_COLUMNS
from exporters.store import SPAN_COLUMNS, ProcessEntry

MINUTE_NS = 60 * 10**9
DAY_NS = 24 * HOUR_NS

# The rollups as the raw calls give them (every column, weighted; NULL weight is 1).
RAW = (
    "SELECT start_ns / 60000000000, process_id, "
    "coalesce((SELECT name FROM services WHERE id = service_id), ''), "
    "sum(coalesce(weight, 1.0)), sum(CASE WHEN status = 'ERR' THEN coalesce(weight, 1.0) "
    "ELSE 0 END), sum(duration_ms * coalesce(weight, 1.0)), "
    + ", ".join(f"sum(CASE WHEN duration_ms <= {b!r} THEN coalesce(weight, 1.0) ELSE 0 END)"
                for b in DURATION_BUCKETS_MS)
    + " FROM spans GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
ROLLED = (f"SELECT {', '.join(rollups.ROLLUP_COLUMNS)} FROM call_rollups "
          "ORDER BY minute, process_id, service_name")


def _rounded(rows) -> list[tuple]:
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in r) for r in rows]


def test_the_positions_rollups_read_are_the_span_columns():
    assert [SPAN_COLUMNS.index(c) for c in ("start_ns", "duration_ms", "process_id",
                                            "service_name", "status", "weight")] \
        == [rollups._START, rollups._DURATION, rollups._PROCESS_ID, rollups._SERVICE,
            rollups._STATUS, rollups._WEIGHT]


def _weighted_batch(store: SpanStore, t0: int) -> None:
    """Calls over three minutes, two processes, two services (and none), failures,
    durations on and around every bound, weights NULL, 1, 2.5 and 10."""
    ids = store.process_ids([ProcessEntry("app.a", "g1"), ProcessEntry("app.b", "g2")])
    spans = []
    durations = [0.0, *DURATION_BUCKETS_MS, *(b + 0.001 for b in DURATION_BUCKETS_MS), 20_000.0]
    weights = [None, 1.0, 2.5, 10.0]
    for i in range(400):
        err = i % 7 == 0
        spans += (i, 900_000 + i, "%032x" % i, None, t0 + (i % 3) * MINUTE_NS + i,
                  durations[i % len(durations)], ids["app.a" if i % 2 else "app.b"],
                  "g1" if i % 2 else "g2", [None, "svc-a", "svc-b"][i // 3 % 3],
                  "ERR" if err else "OK", "error" if err else "ok",
                  "ValueError" if err else None, "ValueError: x" if err else None, 1,
                  weights[i % 4])
    store.insert_calls(spans, [])


def test_rollups_equal_the_raw_calls_after_a_real_workload(db_path, otel_pipeline):
    # 1. monitored calls in a process of their own (the decorator's record path)
    run_workload(db_path, "calls", "roll", "300")
    # 2. OTel spans through the SQLite exporter: failures, chosen durations, two services
    now = time.time_ns()
    for service in ("checkout", "billing"):
        provider, tracer, _ = otel_pipeline(service)
        for i, ms in enumerate((0.5, 3, 40, 700, 4000, 12_000)):
            span = tracer.start_span(f"op.{service}", start_time=now - 2 * MINUTE_NS + i)
            if i % 2:
                span.set_status(Status(StatusCode.ERROR, "boom"))
            span.end(end_time=now - 2 * MINUTE_NS + i + int(ms * 1e6))
        provider.force_flush()
    # 3. weighted calls (what sampling writes), many minutes, processes and services
    store = SpanStore(db_path)
    try:
        _weighted_batch(store, now - 10 * MINUTE_NS)
        raw = _rounded(store.query(RAW))
        rolled = _rounded(store.query(ROLLED))
        assert rolled == raw
        names = {r[0] for r in store.query(
            "SELECT DISTINCT p.name FROM call_rollups r JOIN processes p ON p.id = r.process_id")}
        assert {"app.a", "app.b", "op.checkout", "op.billing"} < names  # and the workload's
        assert len(names) == 5 and len(rolled) >= 3 * 2 * 3 + 3
        # the weights count: more calls in the rollups than rows in the store
        assert sum(r[3] for r in rolled) > store.db.scalar("SELECT count(*) FROM spans")
        assert sum(r[4] for r in rolled) > 0
    finally:
        store.close()


def test_a_batch_rolled_back_leaves_the_rollups_as_they_were(db_path):
    store = SpanStore(db_path)
    try:
        t0 = time.time_ns() - 5 * MINUTE_NS
        _weighted_batch(store, t0)
        before = _rounded(store.query(ROLLED))
        with pytest.raises(RowRejected):
            _weighted_batch(store, t0)  # the same span ids again: refused whole
        assert _rounded(store.query(ROLLED)) == before == _rounded(store.query(RAW))
    finally:
        store.close()


def test_rollups_outlive_the_calls_purge_and_go_after_their_own_retention(db_path):
    store = SpanStore(db_path)
    try:
        now = time.time_ns()
        insert_calls(store, [now - 7 * HOUR_NS] * 5)          # past the 6-hour retention
        insert_calls(store, [now - 29 * DAY_NS] * 3, key_prefix="old")
        insert_calls(store, [now - 31 * DAY_NS] * 2, key_prefix="older")
        insert_calls(store, [now] * 4, key_prefix="new")
        assert store.db.scalar("SELECT sum(calls) FROM call_rollups") == 14

        RetentionWorker(db_path, retention_hours=6).run_once(store, now_ns=now)

        assert store.db.scalar("SELECT count(*) FROM spans") == 4   # the calls went
        kept = {r[0]: r[1] for r in store.query(
            "SELECT minute, calls FROM call_rollups ORDER BY minute")}
        assert kept == {(now - 29 * DAY_NS) // MINUTE_NS: 3.0,
                        (now - 7 * HOUR_NS) // MINUTE_NS: 5.0, now // MINUTE_NS: 4.0}
        # its own retention is a setting (rollup_retention_days)
        RetentionWorker(db_path, rollup_retention_days=1).run_once(store, now_ns=now)
        assert [r[0] for r in store.query("SELECT minute FROM call_rollups ORDER BY minute")] \
            == [(now - 7 * HOUR_NS) // MINUTE_NS, now // MINUTE_NS]
    finally:
        store.close()


def test_bucket_columns_are_one_per_bound():
    assert len(ROLLUP_BUCKET_COLUMNS) == len(DURATION_BUCKETS_MS)
    assert rollups.ROLLUP_COLUMNS[6:] == ROLLUP_BUCKET_COLUMNS
    assert os.path.basename(rollups.__file__) == "rollups.py"


def test_the_windows_services_are_read_from_the_rollups_exactly_at_its_edges(db_path):
    """TraceQueries.services: the window's whole minutes from the rollups, the part of a
    minute at its start from the calls; a service whose calls are all before the window,
    even in the window's first minute, is not listed; the plan reads ranges, no scan."""
    from exporters.queries import TraceQueries

    store = SpanStore(db_path)
    try:
        ids = store.process_ids([ProcessEntry("app.a", "g1")])
        now = (time.time_ns() // MINUTE_NS) * MINUTE_NS + 30 * 10**9  # 30 s into a minute
        since = now - 10 * MINUTE_NS                                   # 30 s into one too
        starts = {"before-window": since - 10**9,             # same minute, before it
                  "window-first-minute": since + 10**9,       # same minute, in it
                  "whole-minute": since + 5 * MINUTE_NS,       # read from the rollups
                  "last-minute": now - 10**9}
        spans = []
        for i, (service, start) in enumerate(starts.items()):
            spans += (i + 1, 700_000 + i, "%032x" % i, None, start, 1.0, ids["app.a"], "g1",
                      service, "OK", "ok", None, None, 1, None)
        spans += (9, 700_009, "%032x" % 9, None, since + 2 * 10**9, 1.0, ids["app.a"], "g1",
                  None, "OK", "ok", None, None, 1, None)   # no service: not listed
        store.insert_calls(spans, [])
    finally:
        store.close()
    q = TraceQueries(db_path)
    assert q.services(window_s=600, now_ns=now) == \
        ["last-minute", "whole-minute", "window-first-minute"]
    assert q.services(window_s=600 + 2, now_ns=now) == sorted(starts)
    explained = q.explain_services()
    # (schema 9: spans_by_time holds the service key, so it reads no row)
    assert "SEARCH spans USING COVERING INDEX spans_by_time (start_ns>? AND start_ns<?)" \
        in explained
    assert "SEARCH call_rollups USING PRIMARY KEY (minute>? AND minute<?)" in explained
    assert "SCAN call_rollups" not in explained and "SCAN spans" not in explained
