"""``sample="auto"``: about ``target_per_s`` calls a second kept, every failure and every
call slower than the rolling p99 kept, each kept call weighted by 1/(its probability of
being kept) so the stored weights estimate the calls made.

Durations come from a fake clock (``otel_monitor._wrappers._time_ns`` replaced before
decorating, as the auto wrapper binds its clock at decoration) that only the monitored
function moves: the calls run at full speed, their durations and the run's length are
exact, and nothing asserted depends on how fast this machine is.
"""
from __future__ import annotations

import asyncio
import time

import pytest

import otel_monitor
from exporters.errors import ConfigError
from otel_monitor import _wrappers, monitor

from monitor_helpers import process_name

CALLS = 200_000
TARGET = 2_000.0  # calls a second


class FakeClock:
    """``time_ns`` for the wrapper; ``advance`` is how long the monitored body takes."""

    def __init__(self) -> None:
        self.t = time.time_ns()

    def time_ns(self) -> int:
        return self.t

    def advance(self, ns: int) -> None:
        self.t += ns


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(_wrappers, "_time_ns", fake.time_ns)
    return fake


def duration_of(i: int) -> int:
    """Fast calls take 10, 20 or 30 µs; one in 200 (0.5%) is slow, 2 to 2.6 ms."""
    if i % 200 == 199:
        return 2_000_000 + (i % 7) * 100_000
    return (1 + i % 3) * 10_000


def fails(i: int) -> bool:
    return i % 1000 == 500  # 200 of the 200,000


def stored(store, fn) -> list[dict]:
    return store.query(
        "SELECT s.id, s.status, s.weight, s.duration_ms, d.data_value AS x FROM spans s "
        "JOIN processes p ON p.id = s.process_id "
        "LEFT JOIN data_trace d ON d.span = s.id AND d.data = 'x' WHERE p.name = ?",
        (process_name(fn),))


def test_auto_keeps_about_the_target_every_failure_every_slow_call_and_estimates_the_total(
        store, clock):
    @monitor("sampling", sample="auto", target_per_s=TARGET)
    def work(x):
        clock.advance(duration_of(x))
        if fails(x):
            raise ValueError(f"bad {x}")
        return x

    first = clock.t
    for i in range(CALLS):  # a tight loop: no sleeping, the fake clock moves
        try:
            work(i)
        except ValueError:
            pass
    seconds = (clock.t - first) / 1e9

    rows = stored(store, work)
    kept = {int(r["x"]) for r in rows}
    assert len(rows) <= 1.2 * TARGET * seconds, (len(rows), seconds)

    errors = {i for i in range(CALLS) if fails(i)}
    assert {int(r["x"]) for r in rows if r["status"] == "ERR"} == errors
    assert all(r["weight"] is None for r in rows if r["status"] == "ERR")  # weight 1

    durations = sorted(duration_of(i) for i in range(CALLS))
    p99 = durations[int(0.99 * CALLS) - 1]
    above = {i for i in range(CALLS) if duration_of(i) > p99}
    assert len(above) == 1000
    assert above <= kept, f"{len(above - kept)} calls above the p99 not stored"

    estimate = sum(r["weight"] or 1.0 for r in rows)
    assert abs(estimate - CALLS) <= 0.05 * CALLS, estimate
    rolled, rolled_errors = store.query(  # the per-minute rollups sum the same weights
        "SELECT sum(r.calls) AS calls, sum(r.errors) AS errors FROM call_rollups r "
        "JOIN processes p ON p.id = r.process_id WHERE p.name = ?",
        (process_name(work),))[0].values()
    assert rolled == pytest.approx(estimate) and rolled_errors == len(errors)
    # sampling happened: most calls were dropped, and kept ordinary calls weigh > 1
    assert len(rows) < CALLS / 5
    assert any((r["weight"] or 1.0) > 1.0 for r in rows)


def test_auto_renders_nothing_of_the_calls_it_drops(store, clock):
    renders = []

    class Arg:
        def __init__(self, i: int) -> None:
            self.i = i

        def __repr__(self) -> str:
            renders.append(self.i)
            return f"Arg({self.i})"

    @monitor("sampling", sample="auto", target_per_s=50)
    def work(x):
        clock.advance(20_000)
        return x.i

    for i in range(20_000):
        work(Arg(i))

    rows = store.query("SELECT data_value FROM data_trace WHERE process = ? AND data = 'x'",
                       (process_name(work),))
    assert 0 < len(rows) < 2_000
    assert sorted(renders) == sorted(int(r["data_value"][4:-1]) for r in rows)


def test_auto_renders_a_kept_calls_inputs_as_they_are_at_its_end(store, clock):
    # Chosen and documented: the decision is at the end, and copying every call's
    # arguments at its start would cost the calls that are dropped too.
    @monitor("sampling", sample="auto")
    def mutate(items):
        items.append("added inside")
        return len(items)

    mutate(["at entry"])

    assert store.values(store.call(mutate)) == {"items": "['at entry', 'added inside']",
                                                "return": "2"}


def test_auto_kept_call_nests_under_its_caller(store, clock):
    @monitor("sampling", sample="auto")
    def inner(x):
        return x

    @monitor("sampling")
    def outer(x):
        return inner(x)

    outer(1)

    parent, child = store.call(outer), store.call(inner)
    assert child["parent_span_id"] == parent["span_id"]
    assert child["trace_id"] == parent["trace_id"]


async def test_auto_on_a_coroutine_keeps_its_failures_and_weights_the_rest(store, clock):
    @monitor("sampling", sample="auto", target_per_s=100)
    async def work(x):
        clock.advance(1_000_000)  # 1,000 calls a second for 20 s
        await asyncio.sleep(0)
        if x % 100 == 3:
            raise KeyError(x)
        return x

    for i in range(20_000):
        try:
            await work(i)
        except KeyError:
            pass

    rows = stored(store, work)
    assert {int(r["x"]) for r in rows if r["status"] == "ERR"} == {
        i for i in range(20_000) if i % 100 == 3}
    assert len(rows) <= 1.2 * 100 * 20
    # p is about 0.09: the estimate's standard deviation is about 2.2% of the total
    assert abs(sum(r["weight"] or 1.0 for r in rows) - 20_000) <= 0.1 * 20_000


def test_auto_on_a_generator_samples_at_its_start_and_keeps_its_failures(store, clock):
    @monitor("sampling", sample="auto", target_per_s=10)
    def gen(x):
        clock.advance(1_000_000)
        yield x
        if x % 50 == 0:
            raise RuntimeError(x)

    for i in range(2_000):
        try:
            list(gen(i))
        except RuntimeError:
            pass

    rows = stored(store, gen)
    assert {int(r["x"]) for r in rows if r["status"] == "ERR"} == set(range(0, 2_000, 50))
    assert len(rows) < 200


def test_the_default_target_is_the_sample_target_per_s_setting(tmp_path, clock):
    otel_monitor.configure(db_path=tmp_path / "t.db", sample_target_per_s=20)
    try:
        @monitor("sampling", sample="auto")
        def work(x):
            clock.advance(1_000_000)  # 1,000 calls a second for 10 s
            return x

        for i in range(10_000):
            work(i)
        from monitor_helpers import Store
        rows = stored(Store(tmp_path / "t.db"), work)
        assert 0.5 * 20 * 10 <= len(rows) <= 1.2 * 20 * 10
    finally:
        otel_monitor.shutdown()


@pytest.mark.parametrize("sample", ["bogus", "AUTO", ""])
def test_a_sample_string_other_than_auto_is_a_config_error_at_decoration(sample):
    with pytest.raises(ConfigError, match="sample"):
        monitor("sampling", sample=sample)


@pytest.mark.parametrize("target", [0, -1, 0.0, float("nan"), float("inf"), "200", True])
def test_a_target_that_is_not_a_positive_number_is_a_config_error_at_decoration(target):
    with pytest.raises(ConfigError, match="target_per_s"):
        monitor("sampling", sample="auto", target_per_s=target)


def test_a_target_without_auto_sampling_is_a_config_error():
    with pytest.raises(ConfigError, match="target_per_s"):
        monitor("sampling", sample=0.5, target_per_s=100)


def test_when_failures_alone_exceed_the_target_ordinary_calls_still_estimate_well(
        store, clock):
    # Half the calls fail (all kept): 500 a second against a target of 100. Ordinary
    # calls are still kept at half the target, so their weights stay moderate and the
    # estimate useful (at p = 1e-6 a couple of calls would each weigh a million).
    @monitor("sampling", sample="auto", target_per_s=100)
    def work(x):
        clock.advance(1_000_000)
        if x % 2:
            raise ValueError(x)
        return x

    for i in range(20_000):
        try:
            work(i)
        except ValueError:
            pass

    rows = stored(store, work)
    ok = [r for r in rows if r["status"] == "OK"]
    assert sum(r["status"] == "ERR" for r in rows) == 10_000
    assert 0.5 * 50 * 20 <= len(ok) <= 1.5 * 50 * 20
    assert abs(sum(r["weight"] or 1.0 for r in ok) - 10_000) <= 0.1 * 10_000
