"""Schema version 9 (issue 19): interned variable names and services, binary trace ids,
no name index; a version-8 store migrates keeping every row as the views and the API
showed it. Real SQLite files, version 8 written as its writer wrote it."""
from __future__ import annotations

import sqlite3

import pytest

from exporters import SpanStore
from exporters.queries import RowFilter, TraceQueries
from exporters.schema import SCHEMA_VERSION
from exporters.store import ProcessEntry
from store_v8 import make_v8_store

NS = 10**9
T0 = 1_700_000_000 * NS

# Version 8's rows: (id, span_id, trace_id, parent, start_ns, duration_ms, process_id,
# process_group, service_name, status, outcome, exception_type, exception, pid,
# error_group, weight)
V8_SPANS = [
    (1, 11, "0af7651916cd43dd8448eb211c80319c", None, T0, 1.5, 1, "pricing", "desk",
     "OK", "ok", None, None, 100, None, None),
    (2, -12, "0af7651916cd43dd8448eb211c80319c", 11, T0 + 1, 0.25, 2, "pricing", "desk",
     "ERR", "error", "ValueError", "Traceback...\nValueError: bad", 100, "f" * 32, 2.0),
    (3, 13, "ffffffffffffffffffffffffffffffff", None, T0 + 2, 3.0, 1, "pricing", None,
     "OK", "cancelled", None, None, 101, None, None),
    (4, 14, "00000000000000000000000000000001", None, T0 + 3, 0.5, 3, None, "ingest",
     "ERR", "error", "KeyError", "KeyError: 'x'", None, "e" * 32, None),
]
# (span, seq, data, data_type, data_value)
V8_DATA = [
    (1, 0, "spot", "INPUT", "101.5"), (1, 1, "api_key", "INPUT", "'***'"),
    (1, 2, "return", "OUTPUT", "3.25"),
    (2, 0, "pair", "INPUT", "'EURUSD'"), (2, 1, "spot", "INPUT", "None"),
    (3, 0, "spot", "OUTPUT", "7"),  # the same name as another Data Type
    (3, 1, "return", "OUTPUT", "''"),
]


def _v8_store(path) -> None:
    make_v8_store(path)
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO processes(id, name, process_group) VALUES (?, ?, ?)",
                         [(1, "pricing.price", "pricing"), (2, "pricing.quote", None),
                          (3, "ingest.step", None)])
        conn.executemany("INSERT INTO spans(id, span_id, trace_id, parent_span_id, start_ns, "
                         "duration_ms, process_id, process_group, service_name, status, "
                         "outcome, exception_type, exception, pid, error_group, weight) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", V8_SPANS)
        conn.executemany("INSERT INTO data_values(span, seq, data, data_type, data_value) "
                         "VALUES (?, ?, ?, ?, ?)", V8_DATA)


def _views(path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as conn:
        return {
            "process_trace": conn.execute("SELECT * FROM process_trace ORDER BY id").fetchall(),
            "data_trace": conn.execute("SELECT * FROM data_trace ORDER BY span, seq").fetchall(),
            "trace_rows": conn.execute("SELECT * FROM trace_rows").fetchall(),
        }


def _columns(path, view) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [d[0] for d in conn.execute(f"SELECT * FROM {view} LIMIT 0").description]


def test_a_version_8_store_migrates_keeping_every_row_as_the_views_showed_it(tmp_path):
    path = tmp_path / "v8.db"
    _v8_store(path)
    before = _views(path)
    columns = {v: _columns(path, v) for v in before}
    assert len(before["process_trace"]) == 4 and len(before["data_trace"]) == 7

    SpanStore(path).close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                            ).fetchone() == (str(SCHEMA_VERSION),) == ("9",)
        indexes = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "data_values_by_name" not in indexes
        assert conn.execute("SELECT typeof(trace_id), length(trace_id) FROM spans "
                            "GROUP BY 1, 2").fetchall() == [("blob", 16)]
        assert sorted(conn.execute(
            "SELECT p.name, n.name, n.kind FROM process_names x "
            "JOIN processes p ON p.id = x.process_id JOIN data_names n ON n.id = x.name_id"
        )) == [("pricing.price", "api_key", "INPUT"), ("pricing.price", "return", "OUTPUT"),
               ("pricing.price", "spot", "INPUT"), ("pricing.price", "spot", "OUTPUT"),
               ("pricing.quote", "pair", "INPUT"), ("pricing.quote", "spot", "INPUT")]
    # pricing.quote had no group of its own: its calls' group is now its own
    assert _views(path) == before
    assert {v: _columns(path, v) for v in before} == columns


def test_a_migrated_store_answers_the_api_as_before_and_takes_new_calls(tmp_path):
    path = tmp_path / "v8.db"
    _v8_store(path)
    SpanStore(path).close()
    q = TraceQueries(path)

    call = q.call(f"{-12 & (2**64 - 1):016x}")
    assert (call["trace_id"], call["service_name"], call["process_group"]) == \
        ("0af7651916cd43dd8448eb211c80319c", "desk", "pricing")
    assert [(v["data"], v["data_type"], v["data_value"]) for v in call["values"]] == \
        [("pair", "INPUT", "'EURUSD'"), ("spot", "INPUT", "None")]
    assert [c["span_id"] for c in q.call(f"{11:016x}")["children"]] == [call["span_id"]]
    trace = q.trace("0AF7651916CD43DD8448EB211C80319C")
    assert [s["span_id"] for s in trace["spans"]] == [f"{11:016x}", call["span_id"]]

    def values(f):
        return [(r["Process"], r["Data"], r["Data Type"], r["Data Value"])
                for r in q.rows(f, sort="timestamp")]

    assert values(RowFilter(service="desk")) == [
        ("pricing.price", "spot", "INPUT", "101.5"), ("pricing.price", "api_key", "INPUT", "'***'"),
        ("pricing.price", "return", "OUTPUT", "3.25"),
        ("pricing.quote", "pair", "INPUT", "'EURUSD'"), ("pricing.quote", "spot", "INPUT", "None")]
    assert values(RowFilter(data="spot")) == [
        ("pricing.price", "spot", "INPUT", "101.5"), ("pricing.quote", "spot", "INPUT", "None"),
        ("pricing.price", "spot", "OUTPUT", "7")]
    assert q.count_rows(RowFilter(data="spot")) == (3, True)
    assert values(RowFilter(service="ingest")) == [("ingest.step", "", "", "")]

    store = SpanStore(path)
    try:
        pid = store.process_ids([ProcessEntry("ingest.step")])["ingest.step"]
        store.insert_calls([0, 15, "ab" * 16, None, T0 + 4, 1.0, pid, "late", "desk", "OK",
                            "ok", None, None, 1, None], [0, 0, "spot", "INPUT", "8"])
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT id, trace_id, service_name, process_group FROM "
                            "process_trace WHERE span_id = ?", (f"{15:016x}",)
                            ).fetchone() == (5, "ab" * 16, "desk", "late")
    assert values(RowFilter(data="spot"))[-1] == ("ingest.step", "spot", "INPUT", "8")


def _call(store, process, span_id, names, *, service="svc"):
    pid = store.process_ids([ProcessEntry(process)])[process]
    spans = [0, span_id, f"{span_id:032x}", None, T0 + span_id, 1.0, pid, None, service,
             "OK", "ok", None, None, 1, None]
    data = [v for seq, n in enumerate(names) for v in (0, seq, n, "INPUT", str(seq))]
    return spans, data


def test_a_batch_rolled_back_by_its_callers_transaction_leaves_no_stale_key(db_path):
    store = SpanStore(db_path)
    try:
        spans, data = _call(store, "job", 1, ["fresh"], service="new-service")
        with pytest.raises(RuntimeError), store.db.transaction():
            store.insert_calls(spans, data)
            raise RuntimeError("the caller's transaction fails after the batch")
        assert store.query("SELECT count(*) FROM data_names")[0][0] == 0
        store.insert_calls(spans, data)  # again, in its own transaction
    finally:
        store.close()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT process, data, data_type FROM data_trace").fetchall() \
            == [("job", "fresh", "INPUT")]
        assert conn.execute("SELECT service_name FROM process_trace").fetchall() \
            == [("new-service",)]
    assert TraceQueries(db_path).count_rows(RowFilter(data="fresh")) == (1, True)


def test_a_name_filter_finds_a_name_a_process_gains_later(db_path):
    store = SpanStore(db_path)
    try:
        store.insert_calls(*_call(store, "job", 1, ["a"]))
        store.insert_calls(*_call(store, "job", 2, ["a", "b"]))
    finally:
        store.close()
    q = TraceQueries(db_path)
    assert [r["Data"] for r in q.rows(RowFilter(data="b"))] == ["b"]
    assert q.count_rows(RowFilter(data="a")) == (2, True)


def test_the_service_page_tests_the_service_in_the_time_index(db_path):
    SpanStore(db_path).close()
    plan = TraceQueries(db_path).explain_rows(RowFilter(service="svc"))
    assert "spans_by_time" in plan and "TEMP B-TREE" not in plan, plan
    with sqlite3.connect(db_path) as conn:
        assert "service_id" in conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'spans_by_time'").fetchone()[0]


def test_a_batch_whose_error_groups_fail_leaves_no_call_rollup_or_key(db_path, monkeypatch):
    """The calls, their rollups, the id high-water mark and the groups are one transaction."""
    from exporters import store as store_module

    def broken(*args, **kwargs):
        raise RuntimeError("the groups' upkeep fails after the calls went in")

    store = SpanStore(db_path)
    try:
        monkeypatch.setattr(store_module.groups, "maintain", broken)
        with pytest.raises(RuntimeError):
            store.insert_calls(*_call(store, "job", 1, ["a"]))
        assert [store.query(f"SELECT count(*) FROM {t}")[0][0]
                for t in ("spans", "data_values", "call_rollups", "process_names")] == [0] * 4
        assert store.query("SELECT value FROM meta WHERE key = 'span_id_high'") == []
        monkeypatch.undo()
        store.insert_calls(*_call(store, "job", 1, ["a"]))
    finally:
        store.close()
    assert TraceQueries(db_path).count_rows(RowFilter(data="a")) == (1, True)


def test_a_new_store_has_no_free_page_and_the_migrated_schema(tmp_path):
    """A new store is made as version 9 directly (no version-8 tables made and dropped:
    their pages would sit free, and a store at its size cap would take calls in them)."""
    new, migrated = tmp_path / "new.db", tmp_path / "migrated.db"
    SpanStore(new).close()
    make_v8_store(migrated)
    SpanStore(migrated).close()
    with sqlite3.connect(new) as conn:
        assert conn.execute("PRAGMA freelist_count").fetchone() == (0,)

    def schema(path):
        with sqlite3.connect(path) as conn:
            return sorted(" ".join(sql.replace('"', "").split()) for (sql,) in conn.execute(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL"))

    assert schema(new) == schema(migrated)


def test_a_trace_of_64_bit_ids_is_one_short_range_of_the_trace_index(db_path):
    """64-bit trace ids widened to 128 bits (Zipkin, Jaeger) share a zero first half: the
    trace index keys on the last 8 bytes, so one trace is still a few index entries."""
    from exporters.queries import calls

    store = SpanStore(db_path)
    try:
        pid = store.process_ids([ProcessEntry("job")])["job"]
        spans = []
        for i in range(5000):
            spans += [i, i + 1, f"{i + 1:032x}", None, T0 + i, 1.0, pid, None, "svc", "OK",
                      "ok", None, None, 1, None]
        store.insert_calls(spans, [])
    finally:
        store.close()
    q = TraceQueries(db_path)
    assert [s["span_id"] for s in q.trace(f"{4321:032x}")["spans"]] == [f"{4321:016x}"]
    rows = q.db.execute(calls._TRACE_SQL, (bytes.fromhex(f"{4321:032x}"), 10), max_steps=2000)
    assert len(rows) == 1
