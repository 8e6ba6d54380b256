"""A failed call that recorded no variable (no arguments, or log_inputs=False) is still a
row: in trace_rows, in the trace table's pages (errors only too) and in its count."""
from __future__ import annotations

import sqlite3

import pytest

import otel_monitor
from exporters.columns import SEVEN_COLUMNS
from exporters.queries import SORTS, RowFilter, TraceQueries
from otel_monitor import monitor


@monitor("jobs")
def nightly_reset():
    raise RuntimeError("reset failed")


@monitor("jobs", log_inputs=False)
def load_secret(path: str):
    raise FileNotFoundError(path)


@monitor("jobs", log_outputs=False)
def heartbeat():
    return None


@monitor("jobs")
def add(a: int, b: int) -> int:
    return a + b


@pytest.fixture
def recorded(store_path):
    add(1, 2)
    with pytest.raises(RuntimeError):
        nightly_reset()
    with pytest.raises(FileNotFoundError):
        load_secret("/etc/key")
    heartbeat()  # OK with nothing recorded: nothing to show in the seven columns
    assert otel_monitor.force_flush(10)
    return store_path


def _name(fn) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def test_trace_rows_has_one_row_with_empty_data_for_each_failed_call_without_variables(
        recorded):
    with sqlite3.connect(recorded) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM trace_rows")]
    assert list(rows[0]) == list(SEVEN_COLUMNS)
    by_process = {}
    for r in rows:
        by_process.setdefault(r["Process"], []).append(r)
    for fn, error in ((nightly_reset, "RuntimeError: reset failed"),
                      (load_secret, "FileNotFoundError: /etc/key")):
        (row,) = by_process[_name(fn)]
        assert (row["Data"], row["Data Type"], row["Data Value"]) == ("", "", "")
        assert row["Status"] == "ERR" and error in row["Exception"]
    assert _name(heartbeat) not in by_process
    assert len(by_process[_name(add)]) == 3  # a, b, return: unchanged


def test_pages_and_errors_only_show_the_failed_calls_without_variables_in_every_sort(
        recorded):
    q = TraceQueries(recorded)
    failed = {_name(nightly_reset), _name(load_secret)}
    for sort in SORTS:
        for f in (RowFilter(), RowFilter(errors_only=True), RowFilter(process=_name(load_secret))):
            page = q.page(f, sort=sort)
            shown = {r["Process"] for r in page.rows if r["Status"] == "ERR"}
            assert shown >= failed & ({f.process} if f.process else failed), (sort, f)
            empty = [r for r in page.rows if r["Process"] in failed]
            assert all(r["Data"] == "" and r["seq"] is None for r in empty)
    assert q.count_rows(RowFilter(errors_only=True)) == (2, True)
    assert q.count_rows(RowFilter()) == (5, True)
