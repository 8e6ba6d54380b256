"""Rule "queue backpressure": the export queue deeper than a threshold for a while raises
a banner flag in the store (no webhook unless asked), cleared when the queue drains.

The writer is made slow for real: ``flush_interval_s=60`` leaves calls queued until a
flush, so the queue grows with every call."""
from __future__ import annotations

import time

import otel_monitor
from alert_helpers import PD, SLACK, read, wait_rows
from otel_monitor import monitor

BANNERS = "SELECT * FROM banners"
FLAGS = "SELECT * FROM flags"


@monitor("pricing")
def price(spot: float) -> float:
    return spot * 1.01


def _backlog(n: int) -> None:
    for i in range(n):
        price(float(i))


def test_a_deep_queue_for_long_enough_raises_the_banner_flag_and_no_webhook(alerting,
                                                                           receiver):
    store = alerting(flush_interval_s=60, backpressure_depth=50, backpressure_for_s=0.3)
    _backlog(20)  # under the threshold: nothing
    time.sleep(0.5)
    assert read(store.path, BANNERS) == []

    started = time.monotonic()
    _backlog(100)
    [banner] = wait_rows(store.path, BANNERS, lambda r: len(r) == 1, timeout=3)
    assert time.monotonic() - started >= 0.3  # only after it lasted backpressure_for_s
    assert banner["name"] == "backpressure"
    assert banner["value"] >= 120
    assert "export queue above 50 calls for 0.3 s" in banner["message"]

    assert otel_monitor.force_flush(10)  # the writer catches up: the queue drains
    wait_rows(store.path, BANNERS, lambda r: r == [], timeout=3)
    [flag] = read(store.path, FLAGS)
    assert (flag["raised"], flag["value"]) == (0, 0.0)
    assert receiver.posts == []  # a banner, not a page, by default


def test_a_raised_flag_is_refreshed_while_the_queue_stays_deep(alerting):
    store = alerting(flush_interval_s=60, backpressure_depth=10, backpressure_for_s=0.0)
    _backlog(30)
    [first] = wait_rows(store.path, BANNERS, lambda r: len(r) == 1, timeout=3)
    [later] = wait_rows(store.path, BANNERS,
                        lambda r: r and r[0]["updated_ns"] > first["updated_ns"], timeout=3)
    assert later["since_ns"] == first["since_ns"]


def test_backpressure_can_also_post_to_the_webhooks(alerting, receiver):
    alerting(flush_interval_s=60, backpressure_depth=10, backpressure_for_s=0.1,
             alert_backpressure=True)
    _backlog(30)
    [trigger] = receiver.wait(lambda p: len(p) == 1, path=PD, timeout=3)
    assert trigger.json["payload"]["severity"] == "warning"
    assert trigger.json["dedup_key"].startswith("otel-monitor/backpressure/")
    assert otel_monitor.force_flush(10)
    resolve = receiver.wait(lambda p: len(p) == 2, path=PD, timeout=3)[1].json
    assert (resolve["event_action"], resolve["dedup_key"]) == (
        "resolve", trigger.json["dedup_key"])
    assert "Export queue backpressure" in receiver.to(SLACK)[0].json["blocks"][0]["text"]["text"]


def test_the_flag_is_cleared_when_the_process_shuts_down(alerting):
    store = alerting(flush_interval_s=60, backpressure_depth=10, backpressure_for_s=0.0)
    _backlog(30)
    wait_rows(store.path, BANNERS, lambda r: len(r) == 1, timeout=3)
    otel_monitor.shutdown()
    assert read(store.path, BANNERS) == []
