"""What readers get from SpanStore: the newest rows in the seven columns, paging that
survives purges, read-only access next to a writer, one health row per process."""
from __future__ import annotations

import os
import sqlite3
import time

import pytest
from opentelemetry.trace import Status, StatusCode

from exporters import SpanStore, StoreError
from exporter_helpers import HOUR_NS, insert_calls, read, scalar


def _export_calls(tracer, calls) -> None:
    """calls: (process, {input: value}, output or None, error text or None)."""
    for process, inputs, output, error in calls:
        with tracer.start_as_current_span(process, attributes={
                f"monitor.input.{k}": v for k, v in inputs.items()}) as span:
            if output is not None:
                span.set_attribute("monitor.output.return", output)
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, error))


@pytest.fixture
def three_calls(otel_pipeline, db_path):
    provider, tracer, _ = otel_pipeline()
    _export_calls(tracer, [
        ("pricing.price", {"spot": "1", "strike": "2"}, "3", None),
        ("fx.rate", {"pair": "'EURUSD'"}, None, "no quote"),
        ("pricing.price", {"spot": "4", "strike": "5"}, "9", None),
    ])
    assert provider.force_flush()
    store = SpanStore(db_path)
    yield store
    store.close()


def test_latest_rows_are_the_newest_rows_oldest_first_in_the_seven_columns(three_calls):
    rows = three_calls.latest_rows(limit=4)
    assert [(r["Process"], r["Data"], r["Data Type"], r["Data Value"], r["Status"])
            for r in rows] == [
        ("fx.rate", "pair", "INPUT", "'EURUSD'", "ERR"),
        ("pricing.price", "spot", "INPUT", "4", "OK"),
        ("pricing.price", "strike", "INPUT", "5", "OK"),
        ("pricing.price", "return", "OUTPUT", "9", "OK"),
    ]
    assert rows[0]["Exception"] == "no quote"
    assert rows[1]["Exception"] == ""


def test_latest_rows_filter_by_process_and_errors_only(three_calls):
    by_process = three_calls.latest_rows(limit=50, process="pricing.price")
    assert [r["Data Value"] for r in by_process] == ["1", "2", "3", "4", "5", "9"]
    errors = three_calls.latest_rows(limit=50, errors_only=True)
    assert [(r["Process"], r["Data"]) for r in errors] == [("fx.rate", "pair")]


def test_latest_rows_after_span_returns_only_later_calls(three_calls):
    first = three_calls.latest_rows(limit=50)
    spans = sorted({r["span"] for r in first})
    assert len(spans) == 3
    later = three_calls.latest_rows(limit=50, after_span=spans[0])
    assert {r["span"] for r in later} == set(spans[1:])
    assert three_calls.latest_rows(limit=50, after_span=spans[-1]) == []


def test_span_ids_keep_growing_after_a_purge_empties_the_store(db_path):
    """A reader paging with after_span must see calls written after retention purged
    everything (ids are not reused)."""
    store = SpanStore(db_path)
    try:
        now = time.time_ns()
        insert_calls(store, [now - 8 * HOUR_NS] * 10)
        last_seen = max(r["span"] for r in store.latest_rows(limit=100))
        assert store.purge(now - 6 * HOUR_NS) == 10
        assert scalar(db_path, "SELECT count(*) FROM spans") == 0
        after = insert_calls(store, [now] * 3, key_prefix="after")
        newer = store.latest_rows(limit=100, after_span=last_seen)
    finally:
        store.close()
    assert {r["Data Value"] for r in newer if r["Data"] == "key"} == set(after)
    assert min(r["span"] for r in newer) > last_seen


def test_read_only_store_on_a_missing_file_raises_store_error_naming_it(tmp_path):
    path = str(tmp_path / "nothing-here.db")
    with pytest.raises(StoreError) as info:
        SpanStore(path, readonly=True)
    assert path in str(info.value)
    assert not os.path.exists(path)


def test_read_only_store_reads_while_a_writer_holds_the_write_lock(three_calls, db_path):
    reader = SpanStore(db_path, readonly=True, busy_timeout_s=0.5)
    locker = sqlite3.connect(db_path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    locker.execute("DELETE FROM data_values")  # uncommitted: the reader must not see it
    try:
        # WAL: the reader neither waits for the writer (it would fail after its 0.5 s
        # busy timeout) nor sees its uncommitted delete.
        rows = reader.latest_rows(limit=100)
        assert len(rows) == 7
    finally:
        locker.execute("ROLLBACK")
        locker.close()
        reader.close()


def test_read_only_store_cannot_write(three_calls, db_path):
    reader = SpanStore(db_path, readonly=True)
    try:
        with pytest.raises(StoreError, match="readonly") as info:
            reader.write_health(queue_depth=0, queue_peak=0, dropped=0, written=0,
                                write_lag_ms=None, last_write_ns=None, service_name=None)
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    finally:
        reader.close()
    assert scalar(db_path, "SELECT count(*) FROM health") == 0


def test_health_is_one_row_per_process_replaced_on_each_write(db_path):
    store = SpanStore(db_path)
    try:
        for written in (5, 9):
            store.write_health(queue_depth=1, queue_peak=3, dropped=2, written=written,
                               write_lag_ms=1.5, last_write_ns=123, service_name="svc")
    finally:
        store.close()
    rows = read(db_path, "SELECT pid, written, dropped, queue_depth, queue_peak, write_lag_ms, "
                         "last_write_ns, service_name FROM health")
    assert [tuple(r) for r in rows] == [(os.getpid(), 9, 2, 1, 3, 1.5, 123, "svc")]
