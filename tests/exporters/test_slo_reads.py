"""SLIs and burn rates from the rollups (exporters.queries.slos via TraceQueries): each
selector, both kinds, weighted counts, windows at minute resolution, the state."""
from __future__ import annotations

import time

import pytest

from exporters import SpanStore
from exporters.queries import TraceQueries
from exporters.queries.slos import Objective
from exporters.store import ProcessEntry

MINUTE_NS = 60 * 10**9
NOW = (time.time_ns() // MINUTE_NS) * MINUTE_NS + 30 * 10**9  # mid-minute


@pytest.fixture
def queries(db_path):
    """Now: 100 calls of app.a (svc-a, group g): 10 failed, 20 slower than 250 ms, weight
    2 each; 10 minutes ago 50 OK fast calls of app.b (svc-b, group g); 2 hours ago 40
    failed calls of app.a."""
    store = SpanStore(db_path)
    ids = store.process_ids([ProcessEntry("app.a", "g"), ProcessEntry("app.b", "g")])
    spans: list = []
    n = 0

    def add(start, process, service, status, ms, weight):
        nonlocal n
        spans.extend((n, 10_000 + n, "%032x" % n, None, start, ms, ids[process], "g",
                      service, status, "error" if status == "ERR" else "ok", None,
                      "x" if status == "ERR" else None, 1, weight))
        n += 1

    for i in range(100):
        add(NOW - i * 10**6, "app.a", "svc-a", "ERR" if i < 10 else "OK",
            400.0 if 10 <= i < 30 else 5.0, 2.0)
    for i in range(50):
        add(NOW - 10 * MINUTE_NS + i, "app.b", "svc-b", "OK", 1.0, None)
    for i in range(40):
        add(NOW - 120 * MINUTE_NS + i, "app.a", "svc-a", "ERR", 1.0, None)
    store.insert_calls(spans, [])
    store.close()
    return TraceQueries(db_path)


def test_availability_of_a_process_is_weighted_over_each_window(queries):
    avail = Objective("process", "app.a", "availability", 99.0)
    now_only, hour, day = queries.slo_windows(avail, [1.0, 3600.0, 86400.0], now_ns=NOW)
    assert (now_only.calls, now_only.bad) == (200.0, 20.0)   # weights 2
    assert (hour.calls, hour.bad) == (200.0, 20.0)
    assert (day.calls, day.bad) == (240.0, 60.0)
    assert now_only.sli() == pytest.approx(90.0)
    assert now_only.burn_rate(avail.budget) == pytest.approx(10.0)   # 10% bad / 1% budget


def test_latency_counts_calls_over_the_threshold_bucket(queries):
    lat = Objective("service", "svc-a", "latency", 90.0, threshold_ms=250.0)
    (c,) = queries.slo_windows(lat, [60.0], now_ns=NOW)
    assert (c.calls, c.bad) == (200.0, 40.0)  # 20 calls of 400 ms, weight 2
    assert c.sli() == pytest.approx(80.0)


def test_each_selector_reads_its_own_calls(queries):
    def calls(selector, value):
        return queries.slo_windows(Objective(selector, value, "availability", 99.0),
                                   [3600.0], now_ns=NOW)[0].calls

    assert calls("process", "app.b") == 50.0
    assert calls("process_group", "g") == 250.0
    assert calls("service", "svc-b") == 50.0
    assert calls("service", "nobody") == 0.0


def test_status_gives_sli_budget_burn_rates_and_state(queries):
    avail = Objective("process", "app.a", "availability", 99.0)
    rules = [("page", 14.4, 3600.0, 300.0), ("page", 6.0, 21600.0, 1800.0),
             ("ticket", 1.0, 3 * 86400.0, 21600.0)]
    status = queries.slo_status(avail, 28 * 86400.0, rules, now_ns=NOW)
    assert status["sli"] == pytest.approx(75.0)                  # 60 bad of 240
    assert status["budget_remaining"] == pytest.approx(1 - 25.0)  # 25x the budget spent
    first = status["burn_rates"][0]
    assert first["long_burn_rate"] == pytest.approx(10.0) and not first["holds"]
    assert status["burn_rates"][1]["holds"]   # 6x: 25x over 6 h, 10x over 30 min
    assert status["state"] == "page"
    quiet = queries.slo_status(Objective("process", "app.b", "availability", 99.0),
                               28 * 86400.0, rules, now_ns=NOW)
    assert (quiet["state"], quiet["sli"], quiet["budget_remaining"]) == ("ok", 100.0, 1.0)


def test_the_windows_read_an_index_of_the_rollups(queries):
    for selector in ("process", "process_group", "service"):
        plan = queries.explain_slo(Objective(selector, "x", "availability", 99.0))
        assert "call_rollups_by_" in plan, plan
