"""otel-monitor watching itself in process (alerts.selfmon, ``alert_self_health``): a
webhook that refuses, a store filled to its size cap, a retention that does not run, a
queue that drops and a writer held up by another connection's lock each post a trigger to the working webhooks, and a resolve once
the condition is over; silences hold them. Real webhooks (a receiver on 127.0.0.1), a
real store, real time."""
from __future__ import annotations

import datetime as dt
import sqlite3
import time

import pytest

import otel_monitor
from alert_helpers import PD, SLACK, wait_alerts
from otel_monitor.alerts.selfmon import SELF_HEALTH, TITLES
from otel_monitor.pipeline import PIPELINE

S = 10**9


@otel_monitor.monitor("self-tests")
def book(trade_id: int) -> int:
    return trade_id


@otel_monitor.monitor("self-tests")
def reject(trade_id: int) -> None:
    raise ValueError(f"trade {trade_id} rejected")


def self_posts(receiver, condition: str, action: str = "trigger") -> list:
    """Slack posts of the self-health alerts of ``condition``: its trigger, or with
    ``action="resolve"`` its recovery."""
    title = TITLES[condition]
    out = []
    for post in receiver.to(SLACK):
        text = post.json.get("text", "")
        if title in text and (("no more" in text) == (action == "resolve")):
            out.append(post)
    return out


def wait_self(receiver, condition: str, action: str = "trigger", timeout: float = 15.0):
    return receiver.wait(lambda posts: bool(self_posts(receiver, condition, action)),
                         timeout, SLACK)


def test_a_refusing_webhook_is_alerted_through_the_one_that_works(alerting, receiver):
    receiver.script(PD, *([500] * 20))
    store = alerting(alert_self_health=True, alert_max_attempts=1)
    with pytest.raises(ValueError):
        reject(1)
    assert otel_monitor.force_flush(10)
    wait_self(receiver, "webhook_failing")
    post = self_posts(receiver, "webhook_failing")[0]
    assert "cannot deliver alerts" in post.json["text"]
    rows = wait_alerts(store.path, lambda r: any(x["rule"] == SELF_HEALTH for x in r), 10)
    assert {r["process"] for r in rows if r["rule"] == SELF_HEALTH} == \
        {"otel-monitor:webhook_failing"}
    # told to the target that works only: the refusing one is not sent its own failure
    assert [r["target"].split()[0] for r in rows if r["rule"] == SELF_HEALTH] == ["slack"]
    assert not [p for p in receiver.to(PD) if "cannot deliver" in str(p.json)]


def test_with_one_target_that_refuses_the_failure_is_recorded_not_posted_to_it(
        alerting, receiver):
    receiver.script(SLACK, *([500] * 20))
    store = alerting(alert_self_health=True, alert_max_attempts=1,
                     alert_webhooks=[receiver.url(SLACK)])
    with pytest.raises(ValueError):
        reject(1)
    assert otel_monitor.force_flush(10)
    rows = wait_alerts(store.path, lambda r: any(x["rule"] == SELF_HEALTH for x in r), 15)
    [held] = [r for r in rows if r["rule"] == SELF_HEALTH]
    assert held["status"] == "suppressed" and "every webhook is failing" in held["error"]
    assert not [p for p in receiver.to(SLACK) if TITLES["webhook_failing"] in str(p.json)]


def test_a_store_at_its_size_cap_triggers_and_resolves_when_space_is_freed(
        alerting, receiver, tmp_path):
    path = tmp_path / "alerts.db"
    otel_monitor.configure(db_path=path)  # the store, at the current schema
    book(0)
    assert otel_monitor.force_flush(10)
    otel_monitor.shutdown()
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE filler (b BLOB)")
    con.executemany("INSERT INTO filler VALUES (zeroblob(4000))", [()] * 500)
    con.commit()
    pages, free, size = (con.execute(f"PRAGMA {p}").fetchone()[0]
                         for p in ("page_count", "freelist_count", "page_size"))
    used = (pages - free) * size
    # the cap: the store at 95 % of it (a purge starts past the cap, not under it)
    alerting(alert_self_health=True, max_db_mb=used / 0.95 / 2**20)
    book(1)  # the writer's first batch starts the retention, whose claim notes the cap
    assert otel_monitor.force_flush(10)
    wait_self(receiver, "store_size")
    assert "near its size cap" in self_posts(receiver, "store_size")[0].json["text"]
    con.execute("DROP TABLE filler")  # its pages go to the free list: not used
    con.commit()
    con.close()
    wait_self(receiver, "store_size", "resolve")


def test_a_retention_that_does_not_run_is_behind(alerting, receiver, tmp_path):
    """Another process claimed the purge turn just now and never purged: calls older than
    the retention window stay; past 2 intervals the store's retention is behind."""
    path = tmp_path / "alerts.db"
    otel_monitor.configure(db_path=path)
    book(0)
    assert otel_monitor.force_flush(10)
    otel_monitor.shutdown()
    con = sqlite3.connect(path)
    old = time.time_ns() - 3600 * S - 10 * S  # 10 s past a 1-hour window
    con.execute("UPDATE spans SET start_ns = ?", (old,))
    con.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('last_purge_ns', ?)",
                (str(time.time_ns()),))
    con.commit()
    con.close()
    alerting(alert_self_health=True, retention_hours=1, purge_interval_s=2)
    book(1)
    assert otel_monitor.force_flush(10)
    post = wait_self(receiver, "retention_behind")
    assert any("retention is behind" in p.json["text"] for p in post)


def test_drops_in_the_last_minute_are_alerted(alerting, receiver):
    alerting(alert_self_health=True, queue_size=1, flush_interval_s=1.0)
    for i in range(2000):  # far more than a queue of one holds between two writes
        book(i)
    assert otel_monitor.force_flush(10)
    wait_self(receiver, "drops")
    assert "dropping calls" in self_posts(receiver, "drops")[0].json["text"]


def test_a_silence_on_otel_monitor_holds_its_self_alerts(alerting, receiver):
    until = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    receiver.script(PD, *([500] * 20))
    store = alerting(alert_self_health=True, alert_max_attempts=1,
                     alert_silences=(f"process=otel-monitor:* until={until} reason=test",))
    with pytest.raises(ValueError):
        reject(1)
    assert otel_monitor.force_flush(10)
    rows = wait_alerts(store.path, lambda r: any(x["rule"] == SELF_HEALTH for x in r), 10)
    held = [r for r in rows if r["rule"] == SELF_HEALTH]
    assert {r["status"] for r in held} == {"suppressed"}
    assert held[0]["error"].startswith("silence process=otel-monitor:*")
    assert self_posts(receiver, "webhook_failing") == []


def test_on_by_default_and_off_when_turned_off(alerting):
    alerting()
    assert PIPELINE.alerts.selfmon.enabled is True and PIPELINE.alerts.watches_self
    alerting(alert_self_health=False)
    assert PIPELINE.alerts.selfmon.enabled is False
    assert not PIPELINE.alerts.watches_self


def test_a_writer_held_up_past_5_s_is_alerted_then_resolved(alerting, receiver, tmp_path):
    """Another connection holds the store's write lock for 5.5 s: the queued call is
    written after it, its lag reported in the health row; the next call, written at
    once, resolves."""
    alerting(alert_self_health=True)
    book(0)
    assert otel_monitor.force_flush(10)
    con = sqlite3.connect(tmp_path / "alerts.db", timeout=10)
    con.execute("BEGIN EXCLUSIVE")
    book(1)  # waits for the lock in the writer
    held_until = time.monotonic() + 5.5  # the condition is a duration: hold it that long
    while time.monotonic() < held_until:
        time.sleep(0.1)
    con.rollback()
    con.close()
    assert otel_monitor.force_flush(15)
    wait_self(receiver, "writer_lag")
    assert "writer is behind" in self_posts(receiver, "writer_lag")[0].json["text"]
    book(2)
    assert otel_monitor.force_flush(10)
    wait_self(receiver, "writer_lag", "resolve")
