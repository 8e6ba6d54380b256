"""Schema versions 3, 4 and 5: the index of one process's failed calls, the OTLP health
columns, the trace index, and the migrations to them."""
from __future__ import annotations

import sqlite3

import pytest

from exporters import SpanStore
from exporters.queries import RowFilter, TraceQueries
from exporters.schema import SCHEMA_VERSION
from store_v8 import make_v8_store


def _indexes(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_a_version_2_store_gets_the_error_index_by_process(tmp_path):
    path = tmp_path / "v2.db"
    make_v8_store(path)
    with sqlite3.connect(path) as conn:  # as a version-2 store was
        conn.execute("DROP INDEX spans_errors_by_process")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    assert "spans_errors_by_process" not in _indexes(path)

    SpanStore(path).close()

    assert "spans_errors_by_process" in _indexes(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() \
            == (str(SCHEMA_VERSION),)


def test_process_and_errors_page_reads_the_error_index_by_process(tmp_path):
    path = tmp_path / "s.db"
    SpanStore(path).close()
    plan = TraceQueries(path).explain_rows(RowFilter(process="p", errors_only=True))
    assert "spans_errors_by_process" in plan and "TEMP B-TREE" not in plan


def test_every_filters_page_reads_through_an_index_without_sorting(tmp_path):
    path = tmp_path / "s.db"
    SpanStore(path).close()
    q = TraceQueries(path)
    for f in (RowFilter(), RowFilter(since_ns=1, until_ns=2), RowFilter(process="p"),
              RowFilter(data="spot"), RowFilter(errors_only=True), RowFilter(service="s")):
        plan = q.explain_rows(f)
        assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, (f, plan)


def _health_columns(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[1] for r in conn.execute("PRAGMA table_info(health)")}


def test_a_version_3_store_gets_the_otlp_health_columns_keeping_its_rows(tmp_path):
    path = tmp_path / "v3.db"
    make_v8_store(path)
    with sqlite3.connect(path) as conn:  # as a version-3 store was
        conn.execute("ALTER TABLE health DROP COLUMN otlp_exported")
        conn.execute("ALTER TABLE health DROP COLUMN otlp_failed")
        conn.execute("INSERT INTO health(pid, queue_depth, queue_peak, dropped, written, "
                     "updated_ns) VALUES (7, 1, 2, 3, 4, 5)")
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")

    SpanStore(path).close()

    assert {"otlp_exported", "otlp_failed"} <= _health_columns(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT pid, written, otlp_failed FROM health").fetchall() \
            == [(7, 4, None)]


def test_health_sources_add_their_figures_to_the_health_row(tmp_path):
    from exporters import SQLiteSpanExporter

    exporter = SQLiteSpanExporter(tmp_path / "s.db")
    exporter.health_sources.append(lambda: {"otlp_exported": 12, "otlp_failed": 3})
    exporter.record_health(queue_depth=0, queue_peak=0, dropped=0, written=0,
                           write_lag_ms=None, last_write_ns=None)
    exporter.shutdown()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("SELECT otlp_exported, otlp_failed FROM health").fetchall() \
            == [(12, 3)]


def _index_sql(path, name) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]


@pytest.mark.parametrize("version", ["3", "4"])  # 4: made by an earlier build of version 4
def test_a_store_without_the_sort_indexes_gets_them_and_trace_rows_with_failed_calls_without_data(
        tmp_path, version):
    path = tmp_path / "v3.db"
    make_v8_store(path)
    with sqlite3.connect(path) as conn:  # as a version-3 store was: inner-join trace_rows
        conn.execute("DROP INDEX spans_by_duration")
        for name, shape in [("spans_by_time", "(start_ns)"),
                            ("spans_by_process", "(process_id, start_ns)")]:
            conn.execute(f"DROP INDEX {name}")
            conn.execute(f"CREATE INDEX {name} ON spans{shape}")
        if version == "4":  # an earlier build of version 4 had these too
            conn.execute("CREATE INDEX spans_by_process_duration ON spans(process_id, "
                         "start_ns / 300000000000, duration_ms, start_ns)")
        conn.execute("DROP VIEW trace_rows")
        conn.execute('CREATE VIEW trace_rows AS SELECT p.name AS "Process" FROM spans s '
                     "JOIN data_values d ON d.span = s.id JOIN processes p "
                     "ON p.id = s.process_id")
        conn.execute("INSERT INTO processes(id, name) VALUES (1, 'job')")
        conn.execute("INSERT INTO spans(id, span_id, trace_id, start_ns, duration_ms, "
                     "process_id, status, outcome, exception) "
                     "VALUES (1, 5, 'ab', 1, 1.0, 1, 'ERR', 'error', 'boom')")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
    assert "spans_by_duration" not in _indexes(path)

    SpanStore(path).close()

    assert "spans_by_duration" in _indexes(path)
    assert "spans_by_process_duration" not in _indexes(path)
    assert "parent_span_id" in _index_sql(path, "spans_by_time")
    assert "duration_ms" in _index_sql(path, "spans_by_process")
    with sqlite3.connect(path) as conn:
        assert conn.execute('SELECT "Process", "Data", "Status", "Exception" FROM trace_rows'
                            ).fetchall() == [("job", "", "ERR", "boom")]
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() \
            == (str(SCHEMA_VERSION),)


def test_a_version_4_store_gets_the_trace_index_keeping_its_rows(tmp_path):
    path = tmp_path / "v4.db"
    make_v8_store(path)
    with sqlite3.connect(path) as conn:  # as a version-4 store was
        conn.execute("DROP INDEX spans_by_trace")
        conn.execute("INSERT INTO processes(id, name) VALUES (1, 'job')")
        conn.execute("INSERT INTO spans(id, span_id, trace_id, start_ns, duration_ms, "
                     "process_id, status, outcome) VALUES (1, 5, 'ab', 1, 1.0, 1, 'OK', 'ok')")
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")

    SpanStore(path).close()

    assert "spans_by_trace" in _indexes(path)
    assert "ON spans(substr(trace_id, 9, 8))" in _index_sql(path, "spans_by_trace")  # v9
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM spans").fetchone() == (1,)
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() \
            == (str(SCHEMA_VERSION),)


def test_a_version_5_store_gets_the_recording_health_columns_keeping_its_rows(tmp_path):
    path = tmp_path / "v5.db"
    make_v8_store(path)
    with sqlite3.connect(path) as conn:  # as a version-5 store was
        for column in ("failed_batches", "store_recreated", "recording"):
            conn.execute(f"ALTER TABLE health DROP COLUMN {column}")
        conn.execute("INSERT INTO health(pid, queue_depth, queue_peak, dropped, written, "
                     "updated_ns) VALUES (7, 1, 2, 3, 4, 5)")
        conn.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")

    SpanStore(path).close()

    assert {"failed_batches", "store_recreated", "recording"} <= _health_columns(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT pid, written, failed_batches, recording FROM health"
                            ).fetchall() == [(7, 4, None, None)]
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() \
            == (str(SCHEMA_VERSION),)


def test_a_version_7_store_gets_span_weights_and_call_rollups_keeping_its_calls(tmp_path):
    from exporters.columns import DURATION_BUCKETS_MS, ROLLUP_BUCKET_COLUMNS

    path = tmp_path / "v7.db"
    make_v8_store(path)
    with sqlite3.connect(path) as conn:  # as a version-7 store was
        conn.execute("DROP TABLE call_rollups")
        conn.execute("ALTER TABLE spans DROP COLUMN weight")
        conn.execute("INSERT INTO processes(id, name) VALUES (1, 'job')")
        conn.execute("INSERT INTO spans(id, span_id, trace_id, start_ns, duration_ms, "
                     "process_id, status, outcome) VALUES (1, 5, 'ab', 1, 1.0, 1, 'OK', 'ok')")
        conn.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")

    SpanStore(path).close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT span_id, weight FROM spans").fetchall() == [(5, None)]
        columns = [r[1] for r in conn.execute("PRAGMA table_info(call_rollups)")]
        assert columns == ["minute", "process_id", "service_name", "calls", "errors",
                           "duration_ms_sum", *ROLLUP_BUCKET_COLUMNS]
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() \
            == (str(SCHEMA_VERSION),) == ("9",)
        without_rowid = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'call_rollups'"
                                     ).fetchone()[0]
        assert "WITHOUT ROWID" in without_rowid
    # One bucket column per bound of the one list /metrics uses too.
    assert len(ROLLUP_BUCKET_COLUMNS) == len(DURATION_BUCKETS_MS)
    assert DURATION_BUCKETS_MS[0] == 1.0 and DURATION_BUCKETS_MS[-1] == 10_000.0
