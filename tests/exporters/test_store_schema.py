"""The store's schema: versioned, WAL, refuses files it does not own, migrates the brief's
own MVP store (section 3.2 of the brief) so the brief's queries keep working."""
from __future__ import annotations

import datetime as dt
import hashlib
import re
import sqlite3
from pathlib import Path

import pytest

from exporters import SCHEMA_VERSION, SchemaError, SQLiteSpanExporter, SpanStore
from exporter_helpers import BRIEF_DDL, read, scalar

BRIEF_PURGE = (
    "DELETE FROM process_trace WHERE ts < datetime('now','-6 hours');",
    "DELETE FROM data_trace    WHERE ts < datetime('now','-6 hours');",
)
TRACEBACK = 'Traceback (most recent call last):\n  File "x.py", line 1\nKeyError: \'EURUSD\'\n'


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def brief_ts(when: dt.datetime) -> str:
    """The brief's MVP timestamp: datetime.utcnow().isoformat(' ', 'seconds')."""
    return when.isoformat(" ", "seconds")


def make_brief_store(path: str, calls: list[tuple]) -> None:
    """A store as the brief's MVP writes it: (ts, process, status, duration, exception,
    [(data, data_type, data_value), ...]) per call, data rows copying status/exception."""
    conn = sqlite3.connect(path)
    conn.executescript(BRIEF_DDL)
    for ts, process, status, duration, exception, data in calls:
        conn.execute("INSERT INTO process_trace VALUES (?, ?, ?, ?, ?)",
                     (ts, process, status, duration, exception))
        for name, kind, value in data:
            conn.execute("INSERT INTO data_trace VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (ts, process, name, kind, value, status, exception))
    conn.commit()
    conn.close()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


# -- a new store -----------------------------------------------------------------------

def test_new_store_records_its_schema_version_in_meta(db_path):
    SpanStore(db_path).close()
    assert scalar(db_path, "SELECT value FROM meta WHERE key = 'schema_version'") == str(
        SCHEMA_VERSION)
    assert SCHEMA_VERSION >= 1


def test_new_store_is_in_wal_journal_mode(db_path):
    SpanStore(db_path).close()
    assert scalar(db_path, "PRAGMA journal_mode") == "wal"


def test_new_store_has_the_tables_and_views_of_the_contract(db_path):
    SpanStore(db_path).close()
    objects = {(r["type"], r["name"]) for r in read(
        db_path, "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}
    for table in ("spans", "data_values", "processes", "health", "meta"):
        assert ("table", table) in objects
    for view in ("process_trace", "data_trace", "trace_rows"):
        assert ("view", view) in objects


def test_reopening_a_store_keeps_its_rows_and_version(db_path, otel_pipeline):
    provider, tracer, _ = otel_pipeline()
    with tracer.start_as_current_span("work"):
        pass
    assert provider.force_flush()
    SpanStore(db_path).close()
    assert scalar(db_path, "SELECT count(*) FROM process_trace") == 1
    assert scalar(db_path, "SELECT value FROM meta WHERE key = 'schema_version'") == str(
        SCHEMA_VERSION)


# -- files that are not ours (or not ours yet) ------------------------------------------------

def test_store_with_a_newer_schema_is_refused_naming_file_and_versions_and_left_unchanged(
        db_path):
    SpanStore(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    before = digest(db_path)

    with pytest.raises(SchemaError) as info:
        SpanStore(db_path)
    message = str(info.value)
    assert db_path in message
    assert "99" in message
    assert re.search(rf"(?<!\d){SCHEMA_VERSION}(?!\d)", message.replace(db_path, ""))
    assert digest(db_path) == before


def test_exporter_on_a_store_with_a_newer_schema_fails_at_construction(db_path):
    SpanStore(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                 (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    before = digest(db_path)
    with pytest.raises(SchemaError):
        SQLiteSpanExporter(db_path)
    assert digest(db_path) == before


def _other_apps_file(path: str) -> None:
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER, total REAL);
        INSERT INTO users(name) VALUES ('ada'), ('grace');
        INSERT INTO orders(user_id, total) VALUES (1, 9.5);
    """)
    conn.close()


def test_other_apps_sqlite_file_is_refused_and_gets_no_tables_of_ours(db_path):
    _other_apps_file(db_path)
    with pytest.raises(SchemaError) as info:
        SpanStore(db_path)
    assert db_path in str(info.value)
    assert "orders" in str(info.value) and "users" in str(info.value)
    tables = {r[0] for r in read(db_path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"users", "orders"}
    assert [r[0] for r in read(db_path, "SELECT name FROM users ORDER BY id")] == ["ada", "grace"]


def test_other_apps_sqlite_file_is_byte_for_byte_unchanged_after_refusal(db_path):
    _other_apps_file(db_path)
    before = digest(db_path)
    with pytest.raises(SchemaError):
        SpanStore(db_path)
    assert digest(db_path) == before
    assert scalar(db_path, "PRAGMA journal_mode") == "delete"


def test_a_file_that_is_not_sqlite_is_refused_and_unchanged(db_path):
    Path(db_path).write_text("timestamp,process\n2025-06-17,pricing.price\n" * 200)
    before = digest(db_path)
    with pytest.raises(SchemaError) as info:
        SpanStore(db_path)
    assert db_path in str(info.value)
    assert digest(db_path) == before


# -- the brief's MVP store ("version 0") ---------------------------------------------------------

@pytest.fixture
def brief_store(db_path):
    now = utcnow()
    fresh, old = now - dt.timedelta(minutes=5), now - dt.timedelta(hours=7)
    calls = [
        (brief_ts(fresh), "pricing.price", "OK", 1.25, None,
         [("spot", "INPUT", "101.5"), ("strike", "INPUT", "100"), ("return", "OUTPUT", "4.2")]),
        (brief_ts(fresh + dt.timedelta(seconds=1)), "fx.rate", "ERR", 0.5, TRACEBACK,
         [("pair", "INPUT", "'EURUSD'")]),
        (brief_ts(old), "pricing.price", "OK", 2.0, None,
         [("spot", "INPUT", "99.0"), ("strike", "INPUT", "95"), ("return", "OUTPUT", "5.1")]),
    ]
    make_brief_store(db_path, calls)
    return {"fresh": fresh, "old": old, "calls": calls}


def test_brief_store_is_migrated_to_the_current_schema_version_in_wal(db_path, brief_store):
    SpanStore(db_path).close()
    assert scalar(db_path, "SELECT value FROM meta WHERE key = 'schema_version'") == str(
        SCHEMA_VERSION)
    assert scalar(db_path, "PRAGMA journal_mode") == "wal"
    kinds = {r[0]: r[1] for r in read(
        db_path, "SELECT name, type FROM sqlite_master WHERE name IN "
                 "('process_trace', 'data_trace', 'trace_rows')")}
    assert kinds == {"process_trace": "view", "data_trace": "view", "trace_rows": "view"}


def test_brief_store_rows_appear_in_process_trace_data_trace_and_trace_rows(db_path, brief_store):
    SpanStore(db_path).close()
    calls = read(db_path, "SELECT process, status, duration_ms, exception FROM process_trace "
                          "ORDER BY start_ns")
    assert [tuple(r) for r in calls] == [
        ("pricing.price", "OK", 2.0, None),
        ("pricing.price", "OK", 1.25, None),
        ("fx.rate", "ERR", 0.5, TRACEBACK),
    ]
    data = read(db_path, "SELECT process, data, data_type, data_value, status, exception "
                         "FROM data_trace ORDER BY start_ns, seq")
    assert [tuple(r) for r in data] == [
        ("pricing.price", "spot", "INPUT", "99.0", "OK", None),
        ("pricing.price", "strike", "INPUT", "95", "OK", None),
        ("pricing.price", "return", "OUTPUT", "5.1", "OK", None),
        ("pricing.price", "spot", "INPUT", "101.5", "OK", None),
        ("pricing.price", "strike", "INPUT", "100", "OK", None),
        ("pricing.price", "return", "OUTPUT", "4.2", "OK", None),
        ("fx.rate", "pair", "INPUT", "'EURUSD'", "ERR", TRACEBACK),
    ]
    seven = {tuple(r) for r in read(db_path, 'SELECT "Process", "Data", "Data Type", '
                                             '"Data Value", "Status", "Exception" FROM trace_rows')}
    assert ("fx.rate", "pair", "INPUT", "'EURUSD'", "ERR", TRACEBACK) in seven
    assert ("pricing.price", "return", "OUTPUT", "4.2", "OK", "") in seven
    assert len(seven) == 7


def test_brief_store_timestamps_are_kept_to_the_millisecond(db_path, brief_store):
    SpanStore(db_path).close()
    stored = sorted(r[0] for r in read(db_path, "SELECT start_ns FROM process_trace"))
    expected = sorted(int(dt.datetime.fromisoformat(c[0]).replace(
        tzinfo=dt.timezone.utc).timestamp()) * 10**9 for c in brief_store["calls"])
    assert len(stored) == len(expected)
    for got, want in zip(stored, expected):
        assert abs(got - want) < 1_000_000


def test_brief_store_timestamps_are_preserved_exactly_by_the_migration(db_path):
    base = dt.datetime(2025, 6, 17, 12, 0, 0)
    stamps = [brief_ts(base + dt.timedelta(seconds=7 * i)) for i in range(20)]
    make_brief_store(db_path, [(ts, "pricing.price", "OK", 1.0, None,
                                [("spot", "INPUT", str(i))]) for i, ts in enumerate(stamps)])
    SpanStore(db_path).close()
    assert sorted(r[0] for r in read(db_path, "SELECT ts FROM process_trace")) == [
        ts + ".000000" for ts in stamps]


def test_briefs_own_select_on_process_trace_still_works_after_migration(db_path, brief_store):
    SpanStore(db_path).close()
    rows = read(db_path, "SELECT ts, process, status, duration_ms, exception FROM process_trace")
    assert len(rows) == 3
    assert {r["process"] for r in rows} == {"pricing.price", "fx.rate"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", r["ts"]) for r in rows)


def test_briefs_own_purge_statements_still_work_on_the_views(db_path, brief_store):
    SpanStore(db_path).close()
    conn = sqlite3.connect(db_path)
    for statement in BRIEF_PURGE:
        conn.execute(statement)
    conn.commit()
    conn.close()
    assert sorted(r[0] for r in read(db_path, "SELECT process FROM process_trace")) == [
        "fx.rate", "pricing.price"]
    assert sorted(r[0] for r in read(db_path, "SELECT data_value FROM data_trace")) == [
        "'EURUSD'", "100", "101.5", "4.2"]
    assert scalar(db_path, "SELECT count(*) FROM data_values WHERE span NOT IN "
                           "(SELECT id FROM spans)") == 0


def test_briefs_purge_statements_work_on_a_store_written_by_the_exporter(
        db_path, otel_pipeline):
    provider, tracer, _ = otel_pipeline()
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    for name, age_h in (("old", 7), ("young", 5)):
        span = tracer.start_span(name, start_time=int((now - age_h * 3600) * 1e9),
                                 attributes={"monitor.input.x": name})
        span.end(end_time=int((now - age_h * 3600 + 1) * 1e9))
    assert provider.force_flush()
    conn = sqlite3.connect(db_path)
    for statement in BRIEF_PURGE:
        conn.execute(statement)
    conn.commit()
    conn.close()
    assert [r[0] for r in read(db_path, "SELECT process FROM process_trace")] == ["young"]
    assert [r[0] for r in read(db_path, "SELECT data_value FROM data_trace")] == ["young"]


def test_migrated_brief_store_accepts_new_calls_from_the_exporter(db_path, brief_store,
                                                                    otel_pipeline):
    provider, tracer, _ = otel_pipeline()
    with tracer.start_as_current_span("pricing.price", attributes={"monitor.input.spot": "7"}):
        pass
    assert provider.force_flush()
    assert scalar(db_path, "SELECT count(*) FROM process_trace") == 4
    assert scalar(db_path, "SELECT count(*) FROM processes WHERE name = 'pricing.price'") == 1
    assert scalar(db_path, "SELECT count(DISTINCT id) FROM spans") == 4


def test_brief_store_calls_in_the_same_second_from_data_rows_only_are_kept(db_path):
    """An MVP row whose process_trace insert lost the (ts, process) race still has its
    data rows; the migration keeps that call."""
    ts = brief_ts(utcnow())
    make_brief_store(db_path, [(ts, "pricing.price", "OK", 1.0, None,
                                [("spot", "INPUT", "1")])])
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO data_trace VALUES (?, 'fx.rate', 'pair', 'INPUT', 'x', 'OK', NULL)",
                 (ts,))
    conn.commit()
    conn.close()
    SpanStore(db_path).close()
    assert sorted(r[0] for r in read(db_path, "SELECT process FROM process_trace")) == [
        "fx.rate", "pricing.price"]
