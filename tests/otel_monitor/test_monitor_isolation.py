"""Nothing from the monitoring reaches the caller: a raising ``repr``, a store that
cannot be created, a locked store, a full queue. The call returns its own result (or
raises its own exception) and the monitoring degrades: placeholders, dropped records
counted in the ``health`` table."""
from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

import otel_monitor
from otel_monitor import monitor

from monitor_helpers import Store


class ExplodingRepr:
    def __repr__(self):
        raise RuntimeError("repr exploded")


@monitor("isolation")
def add(a, b):
    return a + b


@monitor("isolation")
def divide(a, b):
    return a / b


@monitor("isolation")
async def add_async(a, b):
    await asyncio.sleep(0)
    return a + b


@monitor("isolation")
def count_up(n):
    yield from range(n)
    return "done"


def test_raising_repr_of_an_argument_and_of_a_masked_argument_does_not_reach_the_caller(store):
    @monitor("isolation", mask=("hidden",))
    def f(shown, hidden):
        return "fine"

    assert f(ExplodingRepr(), ExplodingRepr()) == "fine"
    values = store.values(store.call(f))
    assert "repr failed" in values["shown"]
    assert values["hidden"].startswith("<HASHED:")


def test_raising_repr_of_the_return_value_does_not_reach_the_caller(store):
    result = ExplodingRepr()

    @monitor("isolation")
    def make():
        return result

    assert make() is result
    assert "repr failed" in store.values(store.call(make))["return"]


def test_raising_repr_of_an_argument_does_not_hide_the_functions_own_exception(store):
    @monitor("isolation")
    def f(x):
        raise KeyError("own error")

    with pytest.raises(KeyError, match="own error"):
        f(ExplodingRepr())
    call = store.call(f)
    assert call["status"] == "ERR"
    assert "KeyError: 'own error'" in call["exception"]


def test_store_path_that_cannot_be_created_from_the_environment_never_reaches_the_caller(
        tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("OTEL_MONITOR_DB", str(blocker / "sub" / "t.db"))
    otel_monitor.shutdown()  # next monitored call configures from the environment
    try:
        assert add(1, 2) == 3
        assert asyncio.run(add_async(3, 4)) == 7
        assert list(count_up(3)) == [0, 1, 2]
        with pytest.raises(ZeroDivisionError):
            divide(1, 0)
        assert not (blocker / "sub").exists()
    finally:
        otel_monitor.shutdown()


def test_unusable_environment_setting_never_reaches_the_caller(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_MONITOR_QUEUE_SIZE", "not-a-number")
    monkeypatch.setenv("OTEL_MONITOR_DB", str(tmp_path / "x.db"))
    otel_monitor.shutdown()
    try:
        assert add(2, 2) == 4
    finally:
        otel_monitor.shutdown()


def test_locked_store_never_reaches_the_caller_and_rows_arrive_once_unlocked(store):
    store.query("SELECT 1")  # the store exists and the writer has an open connection
    locker = sqlite3.connect(store.path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        t0 = time.perf_counter()
        assert [add(i, 1) for i in range(3)] == [1, 2, 3]
        assert time.perf_counter() - t0 < 0.5  # the callers did not wait for the lock
        time.sleep(0.2)  # the writer tries (and waits on the lock) meanwhile
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    calls = store.calls(add)
    assert [store.values(c)["return"] for c in calls] == ["1", "2", "3"]


@pytest.fixture
def tiny_queue_store(tmp_path) -> Store:
    """A queue of 10 records and a writer that only writes when flushed: it cannot keep up."""
    otel_monitor.configure(db_path=tmp_path / "q.db", queue_size=10, flush_interval_s=60)
    yield Store(tmp_path / "q.db")
    otel_monitor.shutdown()


def test_full_queue_drops_records_counts_them_in_health_and_calls_still_return(
        tiny_queue_store):
    results = [add(i, i) for i in range(100)]
    assert results == [2 * i for i in range(100)]

    calls = tiny_queue_store.calls(add)
    assert len(calls) == 10
    assert [tiny_queue_store.values(c)["a"] for c in calls] == [str(i) for i in range(10)]
    (health,) = tiny_queue_store.health()
    assert health["dropped"] == 90
    assert health["written"] == 10
    assert health["queue_depth"] == 0


def test_full_queue_still_lets_raising_calls_raise_their_own_exception(tiny_queue_store):
    @monitor("isolation")
    def fail(i):
        raise ValueError(i)

    for i in range(30):
        with pytest.raises(ValueError) as info:
            fail(i)
        assert info.value.args == (i,)
    assert len(tiny_queue_store.calls(fail)) == 10
    assert tiny_queue_store.health()[0]["dropped"] == 20


def test_health_after_force_flush_counts_drops_since_the_previous_flush(tiny_queue_store):
    add(0, 0)
    assert otel_monitor.force_flush(10)
    t0 = time.monotonic()
    for i in range(25):
        add(i, 1)
    health = tiny_queue_store.health()  # flushes again
    if time.monotonic() - t0 > 0.9:
        pytest.skip("too slow to show the staleness within one health interval")
    assert health[0]["dropped"] == 15


def test_call_after_shutdown_does_not_start_writing_to_another_store(tmp_path, monkeypatch):
    env_db = tmp_path / "env-default" / "core_logs.db"
    monkeypatch.setenv("OTEL_MONITOR_DB", str(env_db))
    otel_monitor.configure(db_path=tmp_path / "mine.db", flush_interval_s=0.05)
    try:
        assert add(1, 1) == 2
        otel_monitor.shutdown()
        assert add(2, 2) == 4  # after shutdown: runs, unrecorded
        otel_monitor.force_flush()
        assert not env_db.exists()
        otel_monitor.configure(db_path=tmp_path / "mine.db", flush_interval_s=0.05)
        assert add(3, 3) == 6  # configure() turns recording back on, same store
        otel_monitor.force_flush()
        with sqlite3.connect(tmp_path / "mine.db") as conn:
            firsts = [r[0] for r in conn.execute(
                "SELECT data_value FROM data_trace WHERE data = 'a' ORDER BY start_ns")]
        assert firsts == ["1", "3"]
    finally:
        otel_monitor.shutdown()
