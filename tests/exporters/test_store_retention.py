"""Retention: calls older than the window (6 h by default) are purged, in short chunks that
do not stall writers, every purge interval, by one process per interval; an optional size
cap deletes the oldest calls first."""
from __future__ import annotations

import shutil
import threading
import time

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from exporters import SQLiteSpanExporter, SpanStore
from exporters.retention import RetentionWorker
from exporter_helpers import HOUR_NS, insert_calls, scalar, stored_keys, wait_until

MINUTE_NS = 60 * 10**9


def _export_at(tracer, key: str, start_ns: int) -> None:
    span = tracer.start_span("pricing.price", start_time=start_ns,
                             attributes={"monitor.input.key": key})
    span.set_attribute("monitor.output.return", "1.0")
    span.end(end_time=start_ns + 1_000_000)


def _export_one(exporter: SQLiteSpanExporter) -> None:
    """One span through the exporter."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("work"):
        pass


@pytest.fixture
def aged_calls(db_path, otel_pipeline):
    """Calls written through the exporter with start times 7 h, 6 h 1 s, 5 h 59 min and 1 s
    before ``now``. The exporter's own retention window is huge, so only the test purges."""
    provider, tracer, _ = otel_pipeline()
    now = time.time_ns()
    ages = {"7h": 7 * HOUR_NS, "6h1s": 6 * HOUR_NS + 10**9, "5h59m": 6 * HOUR_NS - MINUTE_NS,
            "1s": 10**9}
    for key, age in ages.items():
        _export_at(tracer, key, now - age)
    assert provider.force_flush()
    assert set(stored_keys(db_path)) == set(ages)
    return now


def test_retention_deletes_calls_older_than_six_hours_and_keeps_newer(db_path, aged_calls):
    store = SpanStore(db_path)
    try:
        deleted = RetentionWorker(db_path).run_once(store, now_ns=aged_calls)
    finally:
        store.close()
    assert deleted == 2
    assert set(stored_keys(db_path)) == {"5h59m", "1s"}
    assert scalar(db_path, "SELECT count(*) FROM data_values") == 4  # key + return of each
    assert scalar(db_path, "SELECT count(*) FROM spans") == 2


def test_time_warp_purges_calls_once_they_age_past_six_hours(db_path, aged_calls):
    worker = RetentionWorker(db_path)
    store = SpanStore(db_path)
    try:
        worker.run_once(store, now_ns=aged_calls)
        assert set(stored_keys(db_path)) == {"5h59m", "1s"}
        worker.run_once(store, now_ns=aged_calls + 2 * MINUTE_NS)  # two minutes later
        assert set(stored_keys(db_path)) == {"1s"}
        worker.run_once(store, now_ns=aged_calls + 6 * HOUR_NS + 2 * 10**9)
        assert set(stored_keys(db_path)) == set()
    finally:
        store.close()
    assert worker.purged == 4
    assert scalar(db_path, "SELECT count(*) FROM data_values") == 0


def test_retention_hours_is_configurable(db_path):
    store = SpanStore(db_path)
    try:
        now = time.time_ns()
        old = insert_calls(store, [now - 2 * HOUR_NS, now - 61 * MINUTE_NS], key_prefix="old")
        young = insert_calls(store, [now - 59 * MINUTE_NS, now - 30 * MINUTE_NS],
                             key_prefix="young")
        assert RetentionWorker(db_path, retention_hours=1).run_once(store, now_ns=now) == 2
    finally:
        store.close()
    assert set(stored_keys(db_path)) == set(young)
    assert not set(old) & set(stored_keys(db_path))


def test_store_purge_deletes_calls_started_before_the_cutoff_with_their_data(db_path):
    store = SpanStore(db_path)
    try:
        now = time.time_ns()
        old = insert_calls(store, [now - 10 * MINUTE_NS + i for i in range(1500)],
                           key_prefix="old")
        new = insert_calls(store, [now - MINUTE_NS + i for i in range(500)], key_prefix="new")
        assert store.purge(now - 5 * MINUTE_NS) == 1500
        assert store.purge(now - 5 * MINUTE_NS) == 0  # nothing left to purge
    finally:
        store.close()
    assert set(stored_keys(db_path)) == set(new)
    assert len(old) == 1500
    assert scalar(db_path, "SELECT count(*) FROM data_values") == 1000


def test_store_owner_purges_by_itself_every_configured_purge_interval(db_path):
    now = time.time_ns()
    store = SpanStore(db_path)
    exporter = SQLiteSpanExporter(db_path)
    retention = RetentionWorker(db_path, retention_hours=1, interval_s=0.2)
    retention.start()
    try:
        first_old = insert_calls(store, [now - 2 * HOUR_NS] * 50, key_prefix="a")
        young = insert_calls(store, [now - 30 * MINUTE_NS] * 5, key_prefix="young")
        _export_one(exporter)
        assert wait_until(lambda: not set(first_old) & set(stored_keys(db_path)), timeout=5)
        second_old = insert_calls(store, [now - 3 * HOUR_NS] * 50, key_prefix="b")
        assert wait_until(lambda: not set(second_old) & set(stored_keys(db_path)), timeout=3)
        assert set(young) <= set(stored_keys(db_path))
    finally:
        retention.stop()
        exporter.shutdown()
        store.close()


def test_default_purge_interval_does_not_purge_again_within_a_second(db_path):
    """The contrast to the test above: with the default 60 s interval, calls that age out
    after the first pass are still there a second later."""
    now = time.time_ns()
    store = SpanStore(db_path)
    exporter = SQLiteSpanExporter(db_path)
    retention = RetentionWorker(db_path, retention_hours=1)
    retention.start()
    try:
        _export_one(exporter)
        assert wait_until(lambda: scalar(
            db_path, "SELECT count(*) FROM meta WHERE key = 'last_purge_ns'") == 1, timeout=5)
        late_old = insert_calls(store, [now - 2 * HOUR_NS] * 20, key_prefix="late")
        time.sleep(1.0)
        assert set(late_old) <= set(stored_keys(db_path))
    finally:
        retention.stop()
        exporter.shutdown()
        store.close()


# -- the size cap --------------------------------------------------------------------------------

def test_size_cap_deletes_the_oldest_calls_first_until_under_the_cap(db_path):
    store = SpanStore(db_path)
    try:
        now = time.time_ns()
        keys = insert_calls(store, [now - (20_000 - i) * 1000 for i in range(20_000)])
        full = store.used_bytes()
        cap = full // 2
        deleted = RetentionWorker(db_path, max_bytes=cap).run_once(store, now_ns=now)
        used = store.used_bytes()
    finally:
        store.close()
    assert used <= cap
    remaining = set(stored_keys(db_path))
    assert 0 < len(remaining) < len(keys)
    assert deleted == len(keys) - len(remaining)
    # Exactly the newest survive: the kept keys are a suffix of the keys in time order.
    assert remaining == set(keys[len(keys) - len(remaining):])


def test_size_cap_is_not_applied_when_under_it(db_path):
    store = SpanStore(db_path)
    try:
        now = time.time_ns()
        keys = insert_calls(store, [now - i for i in range(1000)])
        cap = store.used_bytes() * 2
        assert RetentionWorker(db_path, max_bytes=cap).run_once(store, now_ns=now) == 0
    finally:
        store.close()
    assert set(stored_keys(db_path)) == set(keys)


def test_retention_max_bytes_reaches_the_purge(db_path):
    store = SpanStore(db_path)
    try:
        now = time.time_ns()
        insert_calls(store, [now - (10_000 - i) * 1000 for i in range(10_000)])
        cap = store.used_bytes() // 3
        exporter = SQLiteSpanExporter(db_path)
        retention = RetentionWorker(db_path, max_bytes=cap, interval_s=0.2)
        retention.start()
        try:
            _export_one(exporter)
            assert wait_until(lambda: store.used_bytes() <= cap, timeout=5)
        finally:
            retention.stop()
            exporter.shutdown()
    finally:
        store.close()
    assert 0 < scalar(db_path, "SELECT count(*) FROM spans") < 10_000


# -- one purge per interval across stores ----------------------------------------------------------

def test_claim_purge_lets_only_one_of_two_stores_purge_per_interval(db_path):
    a, b = SpanStore(db_path), SpanStore(db_path)
    interval = int(0.5e9)
    try:
        assert a.claim_purge(interval) is True
        assert b.claim_purge(interval) is False
        assert a.claim_purge(interval) is False
        time.sleep(0.6)
        assert b.claim_purge(interval) is True
        assert a.claim_purge(interval) is False
    finally:
        a.close()
        b.close()


def test_claim_purge_has_exactly_one_winner_when_stores_race(db_path):
    SpanStore(db_path).close()
    stores = [SpanStore(db_path) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    results: list[bool] = []

    def claim(store: SpanStore) -> None:
        barrier.wait()
        results.append(store.claim_purge(60 * 10**9))

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for s in stores:
        s.close()
    assert sorted(results) == [False] * 5 + [True]


def test_two_retention_workers_on_one_store_purge_once_per_interval(db_path):
    store = SpanStore(db_path)
    now = time.time_ns()
    insert_calls(store, [now - 8 * HOUR_NS] * 100)
    workers = [RetentionWorker(db_path, interval_s=30) for _ in range(2)]
    try:
        for w in workers:
            w.start()
        assert wait_until(lambda: scalar(db_path, "SELECT count(*) FROM spans") == 0, timeout=5)
        time.sleep(0.2)
        assert sorted(w.purged for w in workers) == [0, 100]
    finally:
        for w in workers:
            w.stop()
        store.close()


# -- a big purge next to a live writer -----------------------------------------------------------

OLD_CALLS = 200_000
# Like the design's example call: four arguments and a return value, so five data rows.
ARGS = (("spot", "101.25"), ("strike", "100.0"), ("vol", "0.2"))


def _writer_during(db: str, stop: threading.Event, started: threading.Event,
                   latencies: list[float], keys: list[str]) -> None:
    """Every 10 ms, one batch of 20 calls on the writer's own connection; each batch's
    insert time is recorded (how long it waits is benchmarks/bench_retention.py's
    figure, not a test's: timings on a shared machine are noise)."""
    store = SpanStore(db)
    try:
        while not stop.is_set():
            t0 = time.perf_counter()
            keys += insert_calls(store, [time.time_ns()] * 20, key_prefix="live", args=ARGS)
            latencies.append(time.perf_counter() - t0)
            started.set()
            time.sleep(0.01)
    finally:
        store.close()


def _purge_with_live_writer(db: str) -> dict:
    stop, started = threading.Event(), threading.Event()
    latencies: list[float] = []
    live: list[str] = []
    writer = threading.Thread(target=_writer_during, args=(db, stop, started, latencies, live))
    writer.start()
    store = SpanStore(db)
    try:
        assert started.wait(10)
        before = len(latencies)
        deleted = store.purge(time.time_ns() - 6 * HOUR_NS)
        during = latencies[before:]
    finally:
        stop.set()
        writer.join(30)
        store.close()
    return {"deleted": deleted, "during": during, "live": live,
            "spans": scalar(db, "SELECT count(*) FROM spans"),
            "data_values": scalar(db, "SELECT count(*) FROM data_values"),
            "keys": stored_keys(db)}


@pytest.fixture(scope="module")
def purges_next_to_a_live_writer(tmp_path_factory):
    """Two rounds, each on a fresh copy of a store holding 200k calls 7 h old: a writer
    thread inserts a batch every 10 ms on its own connection while another connection
    purges everything older than 6 h."""
    work = tmp_path_factory.mktemp("purge")
    template = str(work / "template.db")
    store = SpanStore(template)
    insert_calls(store, [time.time_ns() - 7 * HOUR_NS + i * 1000 for i in range(OLD_CALLS)],
                 key_prefix="old", args=ARGS)
    store.close()
    rounds = []
    for n in range(2):
        db = str(work / f"round{n}.db")
        shutil.copyfile(template, db)
        rounds.append(_purge_with_live_writer(db))
    return rounds


def test_purge_of_200k_old_calls_deletes_them_all_and_keeps_a_live_writers_calls(
        purges_next_to_a_live_writer):
    for round_ in purges_next_to_a_live_writer:
        assert round_["deleted"] == OLD_CALLS
        assert round_["during"]  # the writer got through while the purge ran: it was chunked
        assert round_["spans"] == len(round_["live"])
        assert set(round_["keys"]) == set(round_["live"])
        assert round_["data_values"] == (len(ARGS) + 2) * len(round_["live"])


def test_the_size_cap_s_bookkeeping_reads_the_ends_of_the_ids_not_every_call(db_path):
    """``calls_over_cap`` runs before every chunk of a size-cap purge. Reading min(id) and
    max(id) in one SELECT defeats SQLite's min/max shortcut (one aggregate only) and scans
    every call: ~45 ms a chunk on 200k calls, inside the chunk's 20 ms budget, so chunks
    fell to 50 calls and the cap deleted ~1,250 calls/s."""
    store = SpanStore(db_path)
    try:
        insert_calls(store, [time.time_ns() + i for i in range(20_000)])
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0  # go on

        store.db._conn.set_progress_handler(count, 100)  # called every 100 VM steps
        try:
            assert store.calls_over_cap(1) > 0
        finally:
            store.db._conn.set_progress_handler(None, 100)
    finally:
        store.close()
    assert steps[0] < 20  # a scan of 20,000 calls takes hundreds
