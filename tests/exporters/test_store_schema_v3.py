"""Schema version 3: the index of one process's failed calls, and the migration to it."""
from __future__ import annotations

import sqlite3

from exporters import SpanStore
from exporters.queries import RowFilter, TraceQueries
from exporters.schema import SCHEMA_VERSION


def _indexes(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_a_version_2_store_gets_the_error_index_by_process(tmp_path):
    path = tmp_path / "v2.db"
    SpanStore(path).close()
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
