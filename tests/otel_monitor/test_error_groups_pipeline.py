"""Error groups through the real pipeline: ``@monitor`` functions raise, ``force_flush``,
and the writer's groups and events are read back (the events as the writer hands them
to ``on_group_events``, which the pipeline gives the alert engine)."""
from __future__ import annotations

import time
import uuid

import pytest

import otel_monitor
from exporters import SpanStore
from exporters.error_groups import NEW, REARMED, REGRESSION, RESOLVED, SNOOZED, IGNORED
from otel_monitor import monitor
from otel_monitor.pipeline import PIPELINE


@monitor("groups")
def fetch_quote(symbol: str, n: int) -> float:
    raise ValueError(f"quote {n} for {symbol} stale since 2026-12-07T04:{n % 60:02d}:00Z")


@monitor("groups")
def load_order(order_id: str) -> dict:
    raise KeyError(f"order {order_id} not found")


@monitor("groups")
def check_limit(book: str, amount: float) -> None:
    if amount > 0:
        raise OverflowError(f"limit of book '{book}' exceeded by {amount:.2f} (0x{id(book):x})")


FAILURES = (lambda i: fetch_quote(f"SYM{i}", i),
            lambda i: load_order(str(uuid.uuid4())),
            lambda i: check_limit(f"b{i}", i * 1.5 + 1))


@pytest.fixture
def events(store_path):
    """The events the writer hands on after each committed batch, in order."""
    seen: list = []
    writer = PIPELINE.exporter
    handed = writer.on_group_events

    def record(batch):
        seen.extend(batch)
        handed(batch)

    writer.on_group_events = record
    return seen


def fail(kind: int, i: int = 0) -> None:
    with pytest.raises(Exception):
        FAILURES[kind](i)


def flushed_groups(store_path) -> dict[str, dict]:
    assert otel_monitor.force_flush(10)
    store = SpanStore(store_path, readonly=True)
    try:
        return {r["process"].rsplit(".", 1)[-1]: dict(r)
                for r in store.query("SELECT * FROM error_groups")}
    finally:
        store.close()


def set_status(store_path, fp: str, status: str, **kwargs) -> None:
    store = SpanStore(store_path)
    try:
        store.set_group_status(fp, status, **kwargs)
    finally:
        store.close()


def test_a_thousand_failures_of_three_kinds_make_three_groups_and_three_new_events(
        store_path, events):
    for i in range(1000):
        fail(i % 3, i)

    groups = flushed_groups(store_path)

    assert set(groups) == {"fetch_quote", "load_order", "check_limit"}
    assert sum(g["count"] for g in groups.values()) == 1000
    assert sorted(g["count"] for g in groups.values()) == [333, 333, 334]
    assert [e.kind for e in events] == [NEW] * 3
    assert {e.fingerprint for e in events} == {g["fingerprint"] for g in groups.values()}
    assert groups["load_order"]["title"] == "KeyError: <str>"
    assert groups["fetch_quote"]["title"] \
        == "ValueError: quote <n> for SYM<n> stale since <time>"
    assert groups["check_limit"]["title"] \
        == "OverflowError: limit of book <str> exceeded by <n> (<hex>)"
    first = next(e for e in events if e.process.endswith("load_order"))
    assert first.exception_type == "KeyError" and "not found" in first.message
    assert first.traceback.startswith("Traceback") and first.pid is not None


def test_a_resolved_group_seen_again_gives_exactly_one_regression(store_path, events):
    fail(1)
    fp = flushed_groups(store_path)["load_order"]["fingerprint"]
    set_status(store_path, fp, RESOLVED)

    fail(1)
    fail(1)
    groups = flushed_groups(store_path)

    assert [(e.kind, e.fingerprint) for e in events] == [(NEW, fp), (REGRESSION, fp)]
    assert groups["load_order"]["status"] == "open" and groups["load_order"]["count"] == 3


def test_a_two_second_snooze_is_silent_then_rearms(store_path, events):
    fail(0)
    fp = flushed_groups(store_path)["fetch_quote"]["fingerprint"]
    until = time.time_ns() + 2 * 10**9
    set_status(store_path, fp, SNOOZED, until_ns=until)

    fail(0, 1)
    assert flushed_groups(store_path)["fetch_quote"]["status"] == SNOOZED
    assert [e.kind for e in events] == [NEW]
    while time.time_ns() <= until:  # real time: the snooze runs out
        time.sleep(0.05)
    fail(0, 2)
    groups = flushed_groups(store_path)

    assert [e.kind for e in events] == [NEW, REARMED]
    assert groups["fetch_quote"]["status"] == "open" and groups["fetch_quote"]["count"] == 3


def test_a_snooze_for_n_occurrences_rearms_at_the_nth(store_path, events):
    fail(2, 1)
    fp = flushed_groups(store_path)["check_limit"]["fingerprint"]
    set_status(store_path, fp, SNOOZED, occurrences=3)

    fail(2, 2)
    fail(2, 3)
    assert [e.kind for e in events] == [NEW] and flushed_groups(store_path)
    fail(2, 4)
    flushed_groups(store_path)

    assert [e.kind for e in events] == [NEW, REARMED]


def test_an_ignored_group_gives_no_event(store_path, events):
    fail(1)
    fp = flushed_groups(store_path)["load_order"]["fingerprint"]
    set_status(store_path, fp, IGNORED)
    for _ in range(20):
        fail(1)
    groups = flushed_groups(store_path)

    assert [e.kind for e in events] == [NEW]
    assert groups["load_order"]["count"] == 21 and groups["load_order"]["status"] == IGNORED


def test_the_pipeline_gives_the_events_to_the_alert_engine_when_it_takes_them(
        store_path, monkeypatch):
    got: list = []
    monkeypatch.setattr(PIPELINE.alerts, "on_group_events", got.extend, raising=False)
    fail(0)
    assert otel_monitor.force_flush(10)
    assert [e.kind for e in got] == [NEW]


def test_the_spike_settings_reach_the_writer(tmp_path):
    otel_monitor.configure(db_path=tmp_path / "s.db", alert_spike_multiple=4.5,
                           alert_spike_min_count=3, error_group_retention_days=7)
    try:
        assert (PIPELINE.exporter.spike_multiple, PIPELINE.exporter.spike_min_count) == (4.5, 3)
        assert PIPELINE.retention.group_retention_ns == 7 * 86400 * 10**9
    finally:
        otel_monitor.shutdown()
