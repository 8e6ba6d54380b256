"""Feeds: ``@feed`` on a tick handler, ``tick(name)``, their rows in the store (written
at least once a second, read here as the UI would, from another connection), and the
feed -> process edges of the dependency graph."""
from __future__ import annotations

import asyncio
import time

import pytest

import otel_monitor
from alert_helpers import read, wait_rows
from monitor_helpers import process_name
from otel_monitor import feed, monitor, tick
from otel_monitor.pipeline import PIPELINE

FEED_ROWS = "SELECT * FROM feed_status ORDER BY name"
EDGE_ROWS = "SELECT * FROM feed_edges ORDER BY feed, process"


def _edges(path) -> dict[tuple[str, str], tuple[int, int]]:
    return {(r["feed"], r["process"]): (r["declared"], r["called"]) for r in read(path, EDGE_ROWS)}


# -- the API -------------------------------------------------------------------------------

def test_a_decorated_handler_ticks_its_feed_and_returns_what_it_returns(store):
    @feed("bbg.fx", interval_s=0.5)
    def on_fx(snapshot: dict) -> float:
        """Handle one FX snapshot."""
        return snapshot["EURUSD"]

    before = time.time_ns()
    assert on_fx({"EURUSD": 1.08}) == 1.08
    assert on_fx({"EURUSD": 1.09}) == 1.09
    f = PIPELINE.feeds.feeds["bbg.fx"]
    assert f.ticks == 2 and f.last_ns >= before and f.interval_s == 0.5
    assert on_fx.__name__ == "on_fx" and on_fx.__doc__ == "Handle one FX snapshot."
    assert on_fx.__wrapped__ is not None


def test_a_handler_that_raises_still_ticks_and_raises_unchanged(store):
    boom = KeyError("EURUSD")

    @feed("bbg.fx")
    def on_fx(snapshot):
        raise boom

    with pytest.raises(KeyError) as info:
        on_fx({})
    assert info.value is boom
    assert PIPELINE.feeds.feeds["bbg.fx"].ticks == 1


async def test_an_async_handler_ticks_and_awaits(store):
    @feed("ws.quotes", interval_s=0.1)
    async def on_quote(q):
        await asyncio.sleep(0)
        return q * 2

    assert await on_quote(21) == 42
    assert PIPELINE.feeds.feeds["ws.quotes"].ticks == 1


def test_methods_static_and_class_methods_can_be_handlers(store):
    class Session:
        @feed("a.method")
        def on(self, x):
            return (self, x)

        @feed("a.static")
        @staticmethod
        def on_static(x):
            return x

        @feed("a.class")
        @classmethod
        def on_class(cls, x):
            return cls, x

    s = Session()
    assert s.on(1) == (s, 1) and Session.on_static(2) == 2 and Session.on_class(3) == (Session, 3)
    assert [PIPELINE.feeds.feeds[n].ticks for n in ("a.method", "a.static", "a.class")] == [1, 1, 1]


def test_tick_records_an_update_declaring_the_feed_if_new(store):
    tick("refinitiv.rates")
    tick("refinitiv.rates")
    f = PIPELINE.feeds.feeds["refinitiv.rates"]
    assert f.ticks == 2 and f.interval_s is None and f.stale_after_s is None


def test_feed_called_alone_declares_a_feed_for_tick(store):
    feed("refinitiv.rates", interval_s=1.0, stale_after_s=3.0)
    tick("refinitiv.rates")
    f = PIPELINE.feeds.feeds["refinitiv.rates"]
    assert (f.interval_s, f.stale_after_s, f.ticks) == (1.0, 3.0, 1)


def test_tick_never_raises_into_the_caller(store):
    tick("")     # not a feed name: ignored
    tick(None)   # type: ignore[arg-type]
    assert "" not in PIPELINE.feeds.feeds


@pytest.mark.parametrize("bad", [dict(interval_s=0), dict(interval_s=-1.0),
                                 dict(stale_after_s=0), dict(stale_after_s="10"),
                                 dict(interval_s=True)])
def test_bad_feed_declarations_raise_at_decoration(bad):
    with pytest.raises(ValueError):
        feed("x", **bad)


def test_feed_needs_a_name_and_a_handler():
    with pytest.raises(TypeError):
        feed("")
    with pytest.raises(TypeError):
        feed("x")(42)

    def gen():
        yield 1

    with pytest.raises(TypeError, match="tick handler"):
        feed("x")(gen)


def test_monitor_rejects_feeds_that_are_not_names():
    with pytest.raises(TypeError, match="feeds"):
        monitor("g", feeds=("ok", 3))


# -- in the store --------------------------------------------------------------------------

def test_feeds_reach_the_store_within_a_second_for_another_process_to_read(store):
    @feed("bbg.fx", interval_s=0.25, stale_after_s=4.0)
    def on_fx(x):
        return x

    for i in range(3):
        on_fx(i)
    tick("refinitiv.rates")
    last = PIPELINE.feeds.feeds["bbg.fx"].last_ns
    rows = wait_rows(store.path, FEED_ROWS,  # written every writer cycle
                     lambda r: {x["name"] for x in r} == {"bbg.fx", "refinitiv.rates"}, timeout=3)
    fx = rows[0]
    assert (fx["name"], fx["interval_s"], fx["stale_after_s"], fx["ticks"]) == (
        "bbg.fx", 0.25, 4.0, 3)
    assert fx["last_update_ns"] == last
    assert fx["last_update"].endswith("Z")
    assert rows[1]["stale_after_s"] == 10.0  # the default threshold
    [raw] = read(store.path, "SELECT * FROM feeds WHERE name = 'bbg.fx'")
    import os
    assert raw["pid"] == os.getpid() and raw["host"]

    on_fx(9)  # later ticks follow
    wait_rows(store.path, FEED_ROWS, lambda r: r and r[0]["ticks"] == 4, timeout=3)


def test_the_default_threshold_is_a_setting(store):
    otel_monitor.configure(db_path=store.path, flush_interval_s=0.05, feed_stale_after_s=2.5)
    tick("bbg.fx")
    wait_rows(store.path, FEED_ROWS, lambda r: r and r[0]["stale_after_s"] == 2.5, timeout=3)


# -- edges ---------------------------------------------------------------------------------

@monitor("pricing")
def reprice(rate: float) -> float:
    return inner(rate) * 2


@monitor("pricing")
def inner(rate: float) -> float:
    return rate + 1


@monitor("risk", otel_span=True)
def rerisk(rate: float) -> float:
    return rate


def test_processes_called_inside_a_handler_are_edges_of_its_feed(store):
    @feed("bbg.fx")
    def on_fx(rate):
        return reprice(rate) + rerisk(rate)

    on_fx(1.0)
    edges = wait_rows(store.path, EDGE_ROWS, lambda r: len(r) >= 2, timeout=3)
    assert _edges(store.path) == {
        ("bbg.fx", process_name(reprice)): (0, 1),   # otel_span=False, called directly
        ("bbg.fx", process_name(rerisk)): (0, 1),    # otel_span=True, called directly
    }
    assert all(e["process"] != process_name(inner) for e in edges)  # further down: not an edge


def test_calls_in_a_handler_keep_their_true_parents_and_share_one_trace(store):
    @monitor("md")
    def dispatcher(rate):
        return on_fx(rate)

    @feed("bbg.fx")
    def on_fx(rate):
        return reprice(rate), reprice(rate)

    dispatcher(1.0)  # the handler runs inside a monitored call
    [parent] = store.calls(dispatcher)
    calls = store.calls(reprice)
    assert [c["parent_span_id"] for c in calls] == [parent["span_id"]] * 2
    assert {c["trace_id"] for c in calls} == {parent["trace_id"]}
    [first_inner, _] = store.calls(inner)
    assert first_inner["parent_span_id"] == calls[0]["span_id"]

    on_fx(2.0)  # and on its own: the calls of one tick are roots of one trace
    roots = store.calls(reprice)[2:]
    assert [c["parent_span_id"] for c in roots] == [None, None]
    assert roots[0]["trace_id"] == roots[1]["trace_id"] != parent["trace_id"]
    wait_rows(store.path, EDGE_ROWS, lambda r: len(r) == 1, timeout=3)


def test_declared_feeds_are_edges_and_in_the_catalog(store):
    @monitor("risk", feeds=("bbg.fx", "refinitiv.rates"))
    def run_risk(book):
        return book

    run_risk("EQ")
    wait_rows(store.path, EDGE_ROWS, lambda r: len(r) == 2, timeout=3)
    assert _edges(store.path) == {("bbg.fx", process_name(run_risk)): (1, 0),
                                  ("refinitiv.rates", process_name(run_risk)): (1, 0)}
    [row] = read(store.path, "SELECT feeds FROM processes WHERE name = ?",
                 (process_name(run_risk),))
    assert row["feeds"] == "bbg.fx,refinitiv.rates"


@pytest.mark.parametrize("order", ["feed over monitor", "monitor over feed"])
def test_a_monitored_handler_is_an_edge_of_its_feed_whichever_decorator_is_outside(store,
                                                                                  order):
    def handler(x):
        return x

    if order == "feed over monitor":
        on_tick = feed("bbg.eq")(monitor("md")(handler))
    else:
        on_tick = monitor("md")(feed("bbg.eq")(handler))
    on_tick(1)
    wait_rows(store.path, EDGE_ROWS, lambda r: len(r) == 1, timeout=3)
    [(key, _)] = _edges(store.path).items()
    assert key == ("bbg.eq", process_name(handler))
    assert PIPELINE.feeds.feeds["bbg.eq"].ticks == 1
