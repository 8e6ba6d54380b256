"""Schema version 2: feeds, feed edges, alerts and flags (StateStore), and the migration
of a version-1 store. Real SQLite files; a second connection reads as the UI would."""
from __future__ import annotations

import sqlite3
import time

import pytest

from exporters import SCHEMA_VERSION, SpanStore
from exporters.schema import STATE_TABLES, TABLES_V8
from exporters.state import DROPPED, FAILED, SENT, AlertRecord, FeedState, StateStore

# Version 1 as it shipped: its tables (what TABLES was before the state tables were
# appended), the brief's process_trace view and trace_rows without an ORDER BY.
V1_DDL = TABLES_V8.replace(STATE_TABLES, "") + """
CREATE VIEW process_trace AS
SELECT s.start_ns AS ts, p.name AS process, s.status, s.duration_ms, s.exception, s.id
FROM spans s JOIN processes p ON p.id = s.process_id;
CREATE VIEW trace_rows AS
SELECT p.name AS "Process", d.data AS "Data", d.data_type AS "Data Type",
       d.data_value AS "Data Value", s.start_ns AS "Timestamp", s.status AS "Status",
       coalesce(s.exception, '') AS "Exception"
FROM data_values d JOIN spans s ON s.id = d.span JOIN processes p ON p.id = s.process_id;
INSERT INTO meta(key, value) VALUES ('schema_version', '1');
INSERT INTO processes(id, name, process_group) VALUES (1, 'risk.price', 'pricing');
INSERT INTO spans(id, span_id, trace_id, start_ns, duration_ms, process_id, status, outcome)
    VALUES (1, 42, '0000000000000000000000000000002a', 1700000000000000000, 1.5, 1, 'OK', 'ok');
INSERT INTO data_values(span, seq, data, data_type, data_value)
    VALUES (1, 0, 'spot', 'INPUT', '101.5');
"""


def _objects(path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return {name: kind for kind, name in conn.execute(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}


def test_a_version_1_store_is_migrated_to_the_current_version_keeping_its_rows(tmp_path):
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_DDL)
    assert "feeds" not in _objects(path)

    StateStore(path).close()

    objects = _objects(path)
    for table in ("feeds", "feed_edges", "alerts", "flags"):
        assert objects.get(table) == "table", table
    for view in ("feed_status", "alert_log", "banners", "trace_rows"):
        assert objects.get(view) == "view", view
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() \
            == (str(SCHEMA_VERSION),)
        assert conn.execute('SELECT "Process", "Data", "Data Value" FROM trace_rows').fetchall() \
            == [("risk.price", "spot", "101.5")]
        # trace_rows was made anew: the version-2 text, with its readable timestamp
        ts = conn.execute('SELECT "Timestamp" FROM trace_rows').fetchone()[0]
        assert ts == "2023-11-14T22:13:20.000000Z"


def test_a_migrated_store_takes_feeds_alerts_and_flags(tmp_path):
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_DDL)
    store = StateStore(path)
    store.write_feeds([FeedState("bbg.fx", 1.0, 10.0, time.time_ns(), 3, False)])
    store.close()
    assert [r["name"] for r in StateStore(path, readonly=True).feeds()] == ["bbg.fx"]


def test_feeds_of_several_processes_show_as_one_feed_with_the_newest_update(tmp_path):
    path = tmp_path / "s.db"
    store = StateStore(path)
    store.write_feeds([FeedState("bbg.fx", 1.0, 10.0, 1_000, 5, False),
                       FeedState("refinitiv.rates", None, 3.0, None, 0, False)])
    with sqlite3.connect(path) as conn:  # another worker of the same service
        conn.execute("INSERT INTO feeds VALUES ('bbg.fx', 'other-host', 7, NULL, 1.0, 10.0, "
                      "2000, 2, 0, 1)")
    rows = {r["name"]: dict(r) for r in store.feeds()}
    assert rows["bbg.fx"]["last_update_ns"] == 2000
    assert rows["bbg.fx"]["ticks"] == 7
    assert rows["bbg.fx"]["writers"] == 2
    assert rows["refinitiv.rates"]["last_update_ns"] is None
    assert rows["refinitiv.rates"]["stale_after_s"] == 3.0

    store.write_feeds([FeedState("bbg.fx", 1.0, 10.0, 5_000, 9, True)])  # an upsert
    with sqlite3.connect(path) as conn:
        mine = conn.execute("SELECT ticks, stale FROM feeds WHERE name = 'bbg.fx' "
                            "AND host != 'other-host'").fetchall()
    assert mine == [(9, 1)]
    store.close()


def test_feed_edges_keep_both_how_they_were_learned(tmp_path):
    store = StateStore(tmp_path / "s.db")
    store.write_feed_edges([("bbg.fx", "risk.run", True, False)])
    store.write_feed_edges([("bbg.fx", "risk.run", False, True),
                            ("bbg.fx", "md.on_tick", False, True)])
    edges = {(r["feed"], r["process"]): (r["declared"], r["called"]) for r in store.feed_edges()}
    assert edges == {("bbg.fx", "risk.run"): (1, 1), ("bbg.fx", "md.on_tick"): (0, 1)}
    store.close()


def test_alerts_are_logged_newest_first_with_status_and_purged_by_age(tmp_path):
    store = StateStore(tmp_path / "s.db")
    now = time.time_ns()
    base = dict(rule="exception", action="trigger", key="k", target="slack https://h/…",
                count=1, summary="ValueError in risk.price")
    store.record_alerts([
        AlertRecord(ts_ns=now - 3 * 3600 * 10**9, status=SENT, attempts=1, **base),
        AlertRecord(ts_ns=now - 10, status=FAILED, attempts=5, error="HTTP 500", **base),
        AlertRecord(ts_ns=now, status=DROPPED, attempts=0, error="queue full", **base),
    ])
    assert [r["status"] for r in store.alerts()] == [DROPPED, FAILED, SENT]
    assert store.alerts()[0]["ts"].endswith("Z")
    assert store.purge_alerts(now - 3600 * 10**9) == 1
    assert [r["status"] for r in store.alerts()] == [DROPPED, FAILED]
    store.close()


def test_a_raised_flag_is_a_banner_until_cleared_and_fresh_only_while_refreshed(tmp_path):
    store = StateStore(tmp_path / "s.db")
    store.set_flag("backpressure", raised=True, since_ns=1, value=6000.0, message="deep")
    assert [(b["name"], b["message"]) for b in store.banners()] == [("backpressure", "deep")]
    assert len(store.banners(fresh_within_s=60)) == 1
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE flags SET updated_ns = 0")
    assert store.banners(fresh_within_s=60) == []
    store.set_flag("backpressure", raised=False, value=0.0)
    assert store.banners() == []
    store.close()


def test_a_state_store_is_a_span_store_on_the_same_file(tmp_path):
    path = tmp_path / "s.db"
    SpanStore(path).close()
    store = StateStore(path)
    assert isinstance(store, SpanStore)
    assert store.call_counts() == (0, 0)
    store.close()


@pytest.mark.parametrize("table", ["feeds", "feed_edges", "alerts", "flags"])
def test_a_new_store_has_the_state_tables(tmp_path, table):
    SpanStore(tmp_path / "n.db").close()
    assert _objects(tmp_path / "n.db").get(table) == "table"


def test_a_feed_outside_its_hours_reads_closed_never_stale_and_greys_its_edges(tmp_path):
    """Issue 15: a process writes a feed closed (stale column 2) outside its hours; the
    UI's reads give it the level ``closed``, however old its last update."""
    from exporters.queries import TraceQueries
    from exporters.state import FEED_CLOSED

    path = tmp_path / "s.db"
    store = StateStore(path)
    hours_ago = time.time_ns() - 3 * 3600 * 10**9
    store.write_feeds([FeedState("lse.px", 1.0, 10.0, hours_ago, 5, False, closed=True),
                       FeedState("bbg.fx", 1.0, 10.0, hours_ago, 5, True)])
    store.write_feed_edges([("lse.px", "risk.run", True, False),
                            ("bbg.fx", "risk.run", True, False)])
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT stale FROM feeds WHERE name = 'lse.px'").fetchall() == [
            (FEED_CLOSED,)]
    store.close()
    queries = TraceQueries(path)
    feeds = {f["name"]: f for f in queries.feeds()}
    assert (feeds["lse.px"]["level"], feeds["lse.px"]["stale"], feeds["lse.px"]["closed"]) \
        == ("closed", False, True)
    assert (feeds["bbg.fx"]["level"], feeds["bbg.fx"]["stale"], feeds["bbg.fx"]["closed"]) \
        == ("red", True, False)
    graph = queries.graph()
    edges = {e["source"]: e for e in graph["edges"] if e["kind"] == "feed"}
    assert (edges["feed:lse.px"]["closed"], edges["feed:lse.px"]["stale"]) == (True, False)
    assert (edges["feed:bbg.fx"]["closed"], edges["feed:bbg.fx"]["stale"]) == (False, True)
    # the ribbon's worst feed is the stale one, not the closed one
    assert queries.health()["badges"]["LastFeedUpdate"]["feed"] == "bbg.fx"


def test_the_ui_reads_judge_feeds_as_of_the_queries_clock(tmp_path):
    """A feed's staleness, its graph edge's and the ribbon's badge are judged as of
    ``TraceQueries.clock`` (the wall clock unless set): a reader pinned to an instant
    gets the same answer however long after it reads."""
    from exporters.queries import TraceQueries

    path = tmp_path / "s.db"
    store = StateStore(path)
    t0 = 1_700_000_000 * 10**9
    store.write_feeds([FeedState("bbg.fx", 1.0, 10.0, t0, 5, False),
                       FeedState("refinitiv.rates", 1.0, 10.0, t0 - 30 * 10**9, 5, True)])
    store.write_feed_edges([("bbg.fx", "risk.run", True, False),
                            ("refinitiv.rates", "risk.run", True, False)])
    store.close()
    queries = TraceQueries(path)

    def judged(at_ns: int) -> tuple:
        queries.clock = lambda: at_ns
        feeds = {f["name"]: f["stale"] for f in queries.feeds()}
        edges = {e["source"]: e["stale"] for e in queries.graph()["edges"]
                 if e["kind"] == "feed"}
        badge = queries.health()["badges"]["LastFeedUpdate"]
        return feeds, edges, (badge["feed"], badge["level"])

    assert judged(t0 + 10**9 // 2) == (
        {"bbg.fx": False, "refinitiv.rates": True},
        {"feed:bbg.fx": False, "feed:refinitiv.rates": True}, ("refinitiv.rates", "red"))
    assert judged(t0 + 3 * 10**9) == (
        {"bbg.fx": True, "refinitiv.rates": True},
        {"feed:bbg.fx": True, "feed:refinitiv.rates": True}, ("refinitiv.rates", "red"))
