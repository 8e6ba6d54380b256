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


# -- one bug, one group: an exception rising through several monitored calls ----------

@monitor("groups")
def vol_of(n: int) -> float:
    raise ValueError(f"no implied vol for position {n}")


def _nested(kinds: tuple[bool, bool, bool]):
    """run -> price -> vol (vol raises), each monitored with ``otel_span`` as given."""
    outer_span, middle_span, inner_span = kinds

    @monitor("groups", otel_span=inner_span)
    def implied_vol(n: int) -> float:
        raise ValueError(f"no implied vol for position {n}")

    @monitor("groups", otel_span=middle_span)
    def price_position(n: int) -> float:
        return implied_vol(n) * 2

    @monitor("groups", otel_span=outer_span)
    def run_risk(n: int) -> float:
        return price_position(n) + 1

    return run_risk


def failed_calls(store_path) -> list[dict]:
    assert otel_monitor.force_flush(10)
    store = SpanStore(store_path, readonly=True)
    try:
        return [dict(r) for r in store.query(
            "SELECT p.name AS process, printf('%016x', s.span_id) AS span_id, s.error_group "
            "FROM spans s JOIN processes p ON p.id = s.process_id "
            "WHERE s.status = 'ERR' ORDER BY s.id")]
    finally:
        store.close()


_MEMORY = None


@pytest.fixture
def spans(store_path):
    """An in-memory exporter on the process's provider (added once), emptied per test."""
    global _MEMORY
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if _MEMORY is None:
        _MEMORY = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(_MEMORY))
    _MEMORY.clear()
    yield _MEMORY
    _MEMORY.clear()


KINDS = [(False, False, False), (True, True, True), (True, False, True), (False, True, False)]


@pytest.mark.parametrize("kinds", KINDS,
                         ids=lambda k: "-".join("otel" if x else "local" for x in k))
def test_an_exception_rising_through_nested_monitored_calls_is_one_group(
        store_path, events, kinds):
    run_risk = _nested(kinds)
    for i in range(7):
        with pytest.raises(ValueError):
            run_risk(i)

    groups = flushed_groups(store_path)
    calls = failed_calls(store_path)

    assert set(groups) == {"implied_vol"}  # the innermost call's group, the only one
    group = groups["implied_vol"]
    assert group["count"] == 7  # the raises, not the calls they passed through
    assert [(e.kind, e.fingerprint) for e in events] == [(NEW, group["fingerprint"])]
    assert len(calls) == 21
    assert {c["error_group"] for c in calls} == {group["fingerprint"]}
    inner = [c["span_id"] for c in calls if c["process"].endswith(".implied_vol")]
    assert group["last_span_id"] == inner[-1] and group["first_span_id"] == inner[0]


def test_an_outer_call_raising_a_new_exception_is_its_own_group(store_path, events):
    @monitor("groups")
    def price_book(n: int) -> float:
        try:
            return vol_of(n)
        except ValueError as exc:
            raise RuntimeError(f"book {n} not priced") from exc

    @monitor("groups")
    def report(n: int) -> float:
        try:
            return price_book(n)
        except RuntimeError:
            raise  # the same exception object, re-raised: passed on

    for i in range(4):
        with pytest.raises(RuntimeError):
            report(i)

    groups = flushed_groups(store_path)
    calls = failed_calls(store_path)

    assert set(groups) == {"vol_of", "price_book"}
    assert groups["vol_of"]["count"] == 4 and groups["price_book"]["count"] == 4
    assert sorted(e.fingerprint for e in events) == sorted(
        g["fingerprint"] for g in groups.values())
    assert all(e.kind == NEW for e in events)
    named = {c["process"].rsplit(".", 1)[-1]: c["error_group"] for c in calls}
    assert named == {"vol_of": groups["vol_of"]["fingerprint"],
                     "price_book": groups["price_book"]["fingerprint"],
                     "report": groups["price_book"]["fingerprint"]}


def test_one_exception_object_raised_by_separate_calls_counts_each_time(store_path, events):
    cached = LookupError("no such book")

    @monitor("groups")
    def open_book() -> None:
        raise cached

    for _ in range(3):
        with pytest.raises(LookupError):
            open_book()

    # (a re-raised object keeps its earlier traceback too, so its frames, hence its
    # fingerprint, may differ from one raise to the next: count over the process)
    calls = failed_calls(store_path)
    assert otel_monitor.force_flush(10)
    store = SpanStore(store_path, readonly=True)
    try:
        counts = [r[0] for r in store.query(
            "SELECT count FROM error_groups WHERE process LIKE '%.open_book'")]
    finally:
        store.close()
    assert sum(counts) == 3 and len(calls) == 3
    assert len(events) == len(counts) and all(e.kind == NEW for e in events)


def test_an_exception_that_takes_no_attributes_still_records_every_call(store_path):
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class FrozenError(Exception):
        code: int

    @monitor("groups")
    def deep(n: int) -> None:
        raise FrozenError(n)

    @monitor("groups")
    def shallow(n: int) -> None:
        deep(n)

    for i in range(2):
        with pytest.raises(FrozenError) as info:
            shallow(i)
        assert info.value.code == i and info.value.__dict__ == {"code": i}

    calls = failed_calls(store_path)
    groups = flushed_groups(store_path)
    assert len(calls) == 4 and all(c["error_group"] for c in calls)
    # nothing could be marked: each call is judged on its own
    assert sum(g["count"] for g in groups.values()) == 4


def test_the_spans_name_the_call_the_error_came_from_and_their_store_groups_it_once(
        store_path, spans, tmp_path):
    from exporters.sqlite_exporter import SQLiteSpanExporter

    run_risk = _nested((True, True, True))
    for i in range(3):
        with pytest.raises(ValueError):
            run_risk(i)
    assert otel_monitor.force_flush(10)
    finished = [s for s in spans.get_finished_spans() if s.name.startswith(__name__)]
    assert len(finished) == 9
    attr = "monitor.error.propagated_from"
    by_trace: dict[int, dict[str, object]] = {}
    for s in finished:
        by_trace.setdefault(s.context.trace_id, {})[s.name.rsplit(".", 1)[-1]] = s
    for trio in by_trace.values():
        inner_id = "%016x" % trio["implied_vol"].context.span_id
        assert attr not in trio["implied_vol"].attributes
        assert trio["price_position"].attributes[attr] == inner_id
        assert trio["run_risk"].attributes[attr] == inner_id

    # the spans alone (as OTLP brings them to another store) group the same way
    other = tmp_path / "from-spans.db"
    exporter = SQLiteSpanExporter(other)
    try:
        exporter.export(finished)
    finally:
        exporter.shutdown()
    store = SpanStore(other, readonly=True)
    try:
        found = [dict(r) for r in store.query("SELECT * FROM error_groups")]
        named = {r[0] for r in store.query(
            "SELECT error_group FROM spans WHERE status = 'ERR'")}
    finally:
        store.close()
    assert len(found) == 1 and found[0]["count"] == 3
    assert found[0]["process"].endswith(".implied_vol")
    assert named == {found[0]["fingerprint"]}
