"""Error groups kept by the writer (``SpanStore.insert_calls``, ``exporters.groups``): the
groups, their counts and events, status changes, the spike rule, retention, the
migration from version 6, and the reads. Calls are written with their start times given,
so time-based rules are tested without waiting."""
from __future__ import annotations

import itertools
import os
import sqlite3
import time
import traceback

import pytest

from exporters import NotFound, RetentionWorker, SpanStore
from exporters.error_groups import (
    IGNORED, NEW, OPEN, REARMED, REGRESSION, RESOLVED, SNOOZED, SPIKE,
)
from exporters.errors import RowRejected
from exporters.queries import TraceQueries
from exporters.schema import SCHEMA_VERSION
from exporters.sqlite_exporter import SQLiteSpanExporter
from exporters.store import ProcessEntry
from store_v8 import make_v8_store

MIN = 60 * 10**9
HOUR = 60 * MIN
DAY = 24 * HOUR
_ids = itertools.count(1_000_000)


def _tb(fn, n) -> str:
    try:
        fn(n)
    except Exception as exc:
        return "".join(traceback.format_exception(exc))
    raise AssertionError("did not raise")


def stale_quote(n):
    raise ValueError(f"quote {n} stale since 2026-12-07T04:50:{n % 60:02d}Z")


def missing_order(n):
    raise KeyError(f"order 0x{n * 7919:x} not found")


def bad_limit(n):
    raise RuntimeError(f"limit {n} for book 'b{n}' exceeded")


KINDS = {"quote": (ValueError, stale_quote), "order": (KeyError, missing_order),
         "limit": (RuntimeError, bad_limit)}


def write(store: SpanStore, failures: list[tuple[str, int]], *, ok: int = 0,
          process: str = "app.risk", service: str = "svc", span_ids: list[int] | None = None
          ) -> list:
    """Write ``failures`` ((kind, start_ns) each) and ``ok`` OK calls in one batch; returns
    the batch's group events."""
    pid = store.process_ids([ProcessEntry(process, "tests")])[process]
    spans: list = []
    for i, (kind, start) in enumerate(failures):
        exc, fn = KINDS[kind]
        sid = span_ids[i] if span_ids else next(_ids)
        spans += (i, sid, "%032x" % sid, None, start, 1.0, pid, "tests", service, "ERR",
                  "error", exc.__name__, _tb(fn, sid), os.getpid(), None)
    now = time.time_ns()
    for j in range(ok):
        sid = next(_ids)
        spans += (len(failures) + j, sid, "%032x" % sid, None, now, 1.0, pid, "tests",
                  service, "OK", "ok", None, None, os.getpid(), None)
    store.insert_calls(spans, [])
    return store.last_group_events


@pytest.fixture
def store(db_path):
    s = SpanStore(db_path)
    yield s
    s.close()


def groups(store) -> dict[str, dict]:
    return {r["title"].split(":")[0]: dict(r) for r in store.query("SELECT * FROM error_groups")}


def test_failures_of_three_kinds_with_varying_messages_make_three_groups(store):
    now = time.time_ns()
    failures = [(kind, now - i * 1000) for i, kind in
                zip(range(300), itertools.cycle(KINDS))]
    events = write(store, failures, ok=50)

    found = groups(store)
    assert set(found) == {"ValueError", "KeyError", "RuntimeError"}
    assert sum(g["count"] for g in found.values()) == 300
    assert [e.kind for e in events] == [NEW] * 3
    assert {e.fingerprint for e in events} == {g["fingerprint"] for g in found.values()}
    assert found["KeyError"]["title"] == "KeyError: <str>"  # its message is quoted
    assert found["ValueError"]["title"] == "ValueError: quote <n> stale since <time>"
    assert found["RuntimeError"]["title"] == "RuntimeError: limit <n> for book <str> exceeded"
    # Every failed call names its group; OK calls none
    assert store.db.scalar("SELECT count(*) FROM spans WHERE status = 'ERR' "
                           "AND error_group IS NULL") == 0
    assert store.db.scalar("SELECT count(*) FROM spans WHERE status = 'OK' "
                           "AND error_group IS NOT NULL") == 0
    assert store.db.scalar("SELECT count(DISTINCT error_group) FROM spans") == 3

    again = write(store, [("quote", now + 1), ("quote", now + 2)])
    assert again == []
    assert groups(store)["ValueError"]["count"] == 102


def test_a_group_keeps_first_and_last_ids_times_services_and_hosts(store):
    now = time.time_ns()
    write(store, [("quote", now)], span_ids=[0x111], service="pricing")
    write(store, [("quote", now + 5)], span_ids=[0x222], service="risk")
    g = groups(store)["ValueError"]
    assert (g["first_seen_ns"], g["last_seen_ns"], g["count"]) == (now, now + 5, 2)
    assert (g["first_span_id"], g["last_span_id"]) == ("%016x" % 0x111, "%016x" % 0x222)
    assert g["first_trace_id"] == "%032x" % 0x111
    assert sorted(eval(g["services"])) == ["pricing", "risk"]
    assert eval(g["hosts"]) == [store.host]


def test_a_resolved_group_failing_again_gives_one_regression(store):
    fp = write(store, [("order", time.time_ns())])[0].fingerprint
    store.set_group_status(fp, RESOLVED)
    resolved = groups(store)["KeyError"]
    assert resolved["status"] == RESOLVED
    now = resolved["resolved_ns"]

    events = write(store, [("order", now + 1), ("order", now + 2)])

    assert [(e.kind, e.fingerprint, e.count) for e in events] == [(REGRESSION, fp, 3)]
    assert groups(store)["KeyError"]["status"] == OPEN
    assert write(store, [("order", now + 3)]) == []


def test_a_failure_from_before_the_resolve_written_late_reopens_nothing(store):
    fp = write(store, [("order", time.time_ns())])[0].fingerprint
    store.set_group_status(fp, RESOLVED)
    resolved_ns = groups(store)["KeyError"]["resolved_ns"]

    assert write(store, [("order", resolved_ns - 10**8)]) == []  # queued before the resolve

    g = groups(store)["KeyError"]
    assert (g["status"], g["count"]) == (RESOLVED, 2)
    assert [e.kind for e in write(store, [("order", resolved_ns + 1)])] == [REGRESSION]


def test_a_snooze_until_a_time_is_silent_before_it_and_rearms_after(store):
    now = time.time_ns()
    fp = write(store, [("limit", now - HOUR)])[0].fingerprint
    until = now + 20 * 10**9  # (a start up to a minute ahead is stored as given)
    store.set_group_status(fp, SNOOZED, until_ns=until)

    assert write(store, [("limit", until - 10**9)]) == []
    assert groups(store)["RuntimeError"]["status"] == SNOOZED
    events = write(store, [("limit", until + 1), ("limit", until + 2)])

    assert [e.kind for e in events] == [REARMED]
    assert groups(store)["RuntimeError"]["status"] == OPEN
    assert groups(store)["RuntimeError"]["count"] == 4


def test_a_snooze_for_n_occurrences_rearms_at_the_nth(store):
    now = time.time_ns()
    fp = write(store, [("quote", now)])[0].fingerprint
    store.set_group_status(fp, SNOOZED, occurrences=3)

    assert write(store, [("quote", now + 1), ("quote", now + 2)]) == []
    assert groups(store)["ValueError"]["snooze_remaining"] == 1
    events = write(store, [("quote", now + 3), ("quote", now + 4)])

    assert [e.kind for e in events] == [REARMED]
    assert events[0].count == 5
    assert groups(store)["ValueError"]["status"] == OPEN
    assert write(store, [("quote", now + 5)]) == []


def test_an_ignored_group_is_counted_and_never_gives_an_event(store, db_path):
    now = time.time_ns()
    fp = write(store, [("quote", now)])[0].fingerprint
    store.set_group_status(fp, IGNORED)
    store.spike_multiple, store.spike_min_count = 1.0, 1

    assert write(store, [("quote", now + HOUR + i) for i in range(50)]) == []
    g = groups(store)["ValueError"]
    assert (g["status"], g["count"]) == (IGNORED, 51)


def _spiky_store(store, now, *, baseline: int):
    """A group first seen two hours ago, with ``baseline`` failures spread over the hour
    before the last 5 minutes."""
    first = write(store, [("order", now - 2 * HOUR)])
    spread = [("order", now - 60 * MIN + k * (50 * MIN // baseline)) for k in range(baseline)]
    assert write(store, spread) == []
    return first[0].fingerprint


def test_a_spike_over_the_hourly_rate_and_the_floor_gives_one_spike_an_hour(store):
    now = time.time_ns() - MIN
    store.spike_multiple, store.spike_min_count = 3.0, 4
    fp = _spiky_store(store, now, baseline=6)  # 0.1 a minute

    assert write(store, [("order", now - 2 * MIN), ("order", now - MIN)]) == []  # under floor
    events = write(store, [("order", now), ("order", now + 1)])  # 4 in 5 min: 0.8/min

    assert [(e.kind, e.fingerprint) for e in events] == [(SPIKE, fp)]
    assert events[0].rate_5m == pytest.approx(4 / 5)
    assert events[0].rate_1h == pytest.approx(6 / 60)
    assert write(store, [("order", now + 2 + i) for i in range(10)]) == []  # once an hour


def test_no_spike_when_the_rate_is_under_the_multiple(store):
    now = time.time_ns() - MIN
    store.spike_multiple, store.spike_min_count = 3.0, 4
    _spiky_store(store, now, baseline=120)  # 2 a minute
    assert write(store, [("order", now + i) for i in range(8)]) == []  # 1.6/min < 6


def test_a_new_group_gives_new_not_a_spike(store):
    store.spike_multiple, store.spike_min_count = 2.0, 2
    now = time.time_ns()
    events = write(store, [("order", now + i) for i in range(20)])
    assert [e.kind for e in events] == [NEW]
    assert write(store, [("order", now + 100 + i) for i in range(20)]) == []


def test_a_batch_rolled_back_changes_no_group_and_gives_no_event(store):
    now = time.time_ns()
    write(store, [("quote", now)], span_ids=[77])
    with pytest.raises(RowRejected):
        write(store, [("order", now + 1), ("quote", now + 2)], span_ids=[78, 77])
    assert store.last_group_events == []
    assert set(groups(store)) == {"ValueError"}
    assert groups(store)["ValueError"]["count"] == 1
    assert store.db.scalar("SELECT count(*) FROM error_group_minutes") == 1


def test_the_exporter_hands_on_only_committed_events_and_survives_its_handler(db_path):
    got: list = []

    def handler(events):
        got.append([e.kind for e in events])
        raise RuntimeError("the handler's own bug")

    exporter = SQLiteSpanExporter(db_path, on_group_events=handler)
    store = exporter._open()
    now = time.time_ns()
    write(store, [("quote", now)], span_ids=[500])
    pid = store.process_ids([ProcessEntry("app.risk")])["app.risk"]

    def call(i, sid, kind):
        exc, fn = KINDS[kind]
        return [i, sid, "%032x" % sid, None, now + sid, 1.0, pid, "g", "svc", "ERR", "error",
                exc.__name__, _tb(fn, sid), 1, None]

    # The batch is refused whole (a span id already stored), then written call by call:
    # the rolled-back attempt says nothing, the one-by-one write its new group once. The
    # stored call is its group's first, written before by a writer whose answer this
    # exporter never had (as a writer process killed before it answered): its NEW is
    # told too, once (groups.replayed_new_events).
    exporter._flatten = lambda items, store, *more: (
        call(0, 501, "order") + call(1, 500, "quote"), [], [])
    assert exporter.export([object()]).name == "SUCCESS"
    assert got == [[NEW, NEW]]
    assert exporter.rejected == 1
    assert exporter.export([object()]).name == "SUCCESS"  # all stored now: told already
    assert got == [[NEW, NEW]]
    exporter.shutdown()


def test_purging_calls_keeps_groups_and_retention_drops_old_groups_and_minutes(store):
    now = time.time_ns()
    write(store, [("quote", now - 2 * DAY)])
    write(store, [("order", now - 40 * DAY)])
    write(store, [("limit", now)], ok=3)

    assert store.purge(now + HOUR) == 6  # every call
    assert store.db.scalar("SELECT count(*) FROM spans") == 0
    assert len(groups(store)) == 3 and store.db.scalar(
        "SELECT count(*) FROM error_group_minutes") == 3

    RetentionWorker(store.path).run_once(store, now_ns=now)

    assert set(groups(store)) == {"ValueError", "RuntimeError"}  # 30 days past last seen
    minutes = store.query("SELECT fingerprint FROM error_group_minutes")
    assert [r[0] for r in minutes] == [groups(store)["RuntimeError"]["fingerprint"]]


def test_a_version_6_store_migrates_keeping_its_calls(db_path):
    make_v8_store(db_path)
    with sqlite3.connect(db_path) as conn:  # as a version-6 store was
        conn.execute("DROP TABLE error_groups")
        conn.execute("DROP TABLE error_group_minutes")
        conn.execute("DROP INDEX spans_by_error_group")
        conn.execute("ALTER TABLE spans DROP COLUMN error_group")
        conn.execute("INSERT INTO processes(id, name) VALUES (1, 'old.proc')")
        conn.execute("INSERT INTO spans(span_id, trace_id, start_ns, duration_ms, process_id, "
                     "status, outcome, exception) VALUES (9, 'ab', 5, 1.0, 1, 'ERR', 'error', "
                     "'boom')")
        conn.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")

    store = SpanStore(db_path)
    try:
        assert store.db.scalar("SELECT value FROM meta WHERE key = 'schema_version'") \
            == str(SCHEMA_VERSION) == "9"
        assert [tuple(r) for r in store.query("SELECT span_id, error_group FROM spans")] \
            == [(9, None)]
        events = write(store, [("quote", time.time_ns())])
        assert [e.kind for e in events] == [NEW]
    finally:
        store.close()


def test_status_changes_are_validated(store):
    fp = write(store, [("quote", time.time_ns())])[0].fingerprint
    with pytest.raises(NotFound):
        store.set_group_status("0" * 32, RESOLVED)
    bad = [dict(status="closed"), dict(status=SNOOZED),
           dict(status=SNOOZED, until_ns=time.time_ns() + HOUR, occurrences=2),
           dict(status=SNOOZED, occurrences=0), dict(status=RESOLVED, occurrences=3),
           dict(status=SNOOZED, until_ns=time.time_ns() - 1)]
    for kwargs in bad:
        with pytest.raises(ValueError):
            store.set_group_status(fp, **kwargs)
    assert groups(store)["ValueError"]["status"] == OPEN
    assert store.set_group_status(fp, IGNORED)["status"] == IGNORED
    reopened = store.set_group_status(fp, OPEN)
    assert (reopened["status"], reopened["resolved_ns"]) == (OPEN, None)


def test_reads_filter_sort_and_page_groups_and_show_one_with_its_sparkline(store, db_path):
    now = time.time_ns()
    write(store, [("quote", now - 3 * HOUR)] + [("quote", now - i) for i in range(5)],
          service="pricing")
    write(store, [("order", now - 2 * DAY)], process="app.orders", service="oms")
    fp_limit = write(store, [("limit", now - 10)])[0].fingerprint
    store.set_group_status(fp_limit, SNOOZED, until_ns=now + 2 * HOUR)
    q = TraceQueries(db_path)

    page = q.error_groups(now_ns=now)
    assert page["total"] == 3
    assert [g["title"].split(":")[0] for g in page["groups"]] \
        == ["ValueError", "RuntimeError", "KeyError"]  # newest last failure first
    assert [g["count"] for g in q.error_groups(sort="count", now_ns=now)["groups"]] == [6, 1, 1]
    assert q.error_groups(now_ns=now)["groups"][0]["count_last_hour"] == 5
    assert [g["process"] for g in q.error_groups(process="app.orders")["groups"]] \
        == ["app.orders"]
    assert [g["services"] for g in q.error_groups(service="pricing")["groups"]] == [["pricing"]]
    assert q.error_groups(since_ns=now - HOUR)["total"] == 2
    assert q.error_groups(status=SNOOZED, now_ns=now)["total"] == 1
    assert q.error_groups(status=SNOOZED, now_ns=now + 3 * HOUR)["total"] == 0  # expired
    assert q.error_groups(status=OPEN, now_ns=now + 3 * HOUR)["total"] == 3
    second = q.error_groups(limit=1, offset=1, now_ns=now)
    assert (second["total"], len(second["groups"])) == (3, 1)
    for bad in (dict(status="closed"), dict(sort="title"), dict(limit=0), dict(offset=-1)):
        with pytest.raises(ValueError):
            q.error_groups(**bad)

    one = q.error_group(page["groups"][0]["fingerprint"], now_ns=now)
    assert len(one["sparkline"]["counts"]) == 72
    assert sum(one["sparkline"]["counts"]) == 6 and one["sparkline"]["counts"][-1] == 5
    assert one["latest_call"]["span_id"] == one["last_span_id"]
    with pytest.raises(NotFound):
        q.error_group("f" * 32)
    # the list's sparklines in one read: the same as the group's own; zeros past 6 hours
    order = [g for g in page["groups"] if g["process"] == "app.orders"][0]["fingerprint"]
    batch = q.error_sparklines([one["fingerprint"], order], now_ns=now)
    assert batch[one["fingerprint"]] == one["sparkline"]
    assert batch[order]["counts"] == [0] * 72


# -- failures passed on by outer calls (``insert_calls(..., propagated=...)``) -----------

def _failed(store: SpanStore, i: int, process: str, sid: int, start: int, kind: str,
            n: int) -> tuple:
    pid = store.process_ids([ProcessEntry(process, "tests")])[process]
    exc, fn = KINDS[kind]
    return (i, sid, "%032x" % 7, None, start, 1.0, pid, "tests", "svc", "ERR", "error",
            exc.__name__, _tb(fn, n), os.getpid(), None)


def _group_of(store, sid: int) -> str | None:
    return store.query("SELECT error_group FROM spans WHERE span_id = ?", (sid,))[0][0]


def test_a_failure_passed_on_takes_the_inner_calls_group_without_counting(store):
    now = time.time_ns()
    inner, middle, outer = next(_ids), next(_ids), next(_ids)
    spans = [*_failed(store, 0, "app.black_scholes", inner, now + 2, "quote", 1),
             *_failed(store, 1, "app.price_position", middle, now + 1, "quote", 1),
             *_failed(store, 2, "app.run_risk", outer, now, "quote", 1)]
    store.insert_calls(spans, [], propagated={1: inner, 2: inner})
    events = store.last_group_events

    [group] = store.query("SELECT * FROM error_groups")
    assert group["process"] == "app.black_scholes" and group["count"] == 1
    assert [(e.kind, e.fingerprint) for e in events] == [(NEW, group["fingerprint"])]
    assert {_group_of(store, s) for s in (inner, middle, outer)} == {group["fingerprint"]}
    assert store.query("SELECT sum(count) FROM error_group_minutes")[0][0] == 1


def test_a_failure_passed_on_finds_its_inner_call_written_earlier(store):
    now = time.time_ns()
    inner, outer = next(_ids), next(_ids)
    store.insert_calls(list(_failed(store, 0, "app.black_scholes", inner, now, "order", 2)), [])
    [fp] = [e.fingerprint for e in store.last_group_events]

    store.insert_calls(list(_failed(store, 0, "app.run_risk", outer, now - 5, "order", 2)),
                       [], propagated={0: inner})

    assert store.last_group_events == []
    assert [(g["fingerprint"], g["count"]) for g in store.query(
        "SELECT * FROM error_groups")] == [(fp, 1)]
    assert _group_of(store, outer) == fp


def test_a_failure_passed_on_from_a_call_not_in_the_store_is_grouped_on_its_own(store):
    now = time.time_ns()
    outer = next(_ids)
    store.insert_calls(list(_failed(store, 0, "app.run_risk", outer, now, "limit", 3)), [],
                       propagated={0: next(_ids)})

    [group] = store.query("SELECT * FROM error_groups")
    assert group["process"] == "app.run_risk" and group["count"] == 1
    assert [e.kind for e in store.last_group_events] == [NEW]
    assert _group_of(store, outer) == group["fingerprint"]
