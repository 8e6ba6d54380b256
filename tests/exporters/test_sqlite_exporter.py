"""SQLiteSpanExporter is a standard OTel SpanExporter: behind the SDK's own
BatchSpanProcessor on a private TracerProvider, spans become rows of the store."""
from __future__ import annotations


import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Status, StatusCode

from exporters import SEVEN_COLUMNS, SQLiteSpanExporter
from exporter_helpers import read, scalar


class ListedIds(IdGenerator):
    """Span and trace ids from fixed lists: ids with the top bit set, which do not fit a
    signed SQLite integer as they are, must still come back as the same hex."""

    def __init__(self, span_ids, trace_ids):
        self._span_ids = iter(span_ids)
        self._trace_ids = iter(trace_ids)

    def generate_span_id(self) -> int:
        return next(self._span_ids)

    def generate_trace_id(self) -> int:
        return next(self._trace_ids)


def test_plain_otel_spans_become_one_call_row_each_and_no_data_rows(otel_pipeline, db_path):
    provider, tracer, _ = otel_pipeline()
    with tracer.start_as_current_span("GET /health", attributes={"http.method": "GET"}):
        pass
    with tracer.start_as_current_span("db.query", attributes={"db.system": "sqlite"}):
        pass
    assert provider.force_flush()

    rows = read(db_path, "SELECT process, status, exception FROM process_trace ORDER BY process")
    assert [tuple(r) for r in rows] == [("GET /health", "OK", None), ("db.query", "OK", None)]
    assert scalar(db_path, "SELECT count(*) FROM data_trace") == 0
    assert scalar(db_path, "SELECT count(*) FROM trace_rows") == 0


def test_monitor_attributes_become_input_rows_in_order_then_the_output_row(otel_pipeline, db_path):
    provider, tracer, _ = otel_pipeline()
    with tracer.start_as_current_span("pricing.price", attributes={
        "monitor.process_group": "pricing",
        "monitor.input.spot": "101.5",
        "monitor.input.strike": 100,
        "monitor.input.tenors": [1, 2, 3],
        "http.route": "/price",  # not a monitor attribute: no row
    }) as span:
        span.set_attribute("monitor.output.return", "4.2")
    assert provider.force_flush()

    rows = read(db_path, "SELECT process, data, data_type, data_value, status FROM data_trace "
                         "ORDER BY seq")
    assert [tuple(r) for r in rows] == [
        ("pricing.price", "spot", "INPUT", "101.5", "OK"),
        ("pricing.price", "strike", "INPUT", "100", "OK"),
        ("pricing.price", "tenors", "INPUT", "[1, 2, 3]", "OK"),
        ("pricing.price", "return", "OUTPUT", "4.2", "OK"),
    ]
    assert scalar(db_path, "SELECT process_group FROM process_trace") == "pricing"


def test_a_generators_output_attributes_become_its_rows_in_the_decorators_order(
        otel_pipeline, db_path):
    """monitor.output.yield[i] / yield_count / return, set in any order: yield[0],
    yield[1]… by index, then yield_count, then return (as the decorator's records)."""
    provider, tracer, _ = otel_pipeline()
    with tracer.start_as_current_span("feed.rows", attributes={
            "monitor.input.n": 12}) as span:
        span.set_attribute("monitor.output.return", "'done'")
        span.set_attribute("monitor.output.yield_count", 12)
        for i in (10, 2, 0, 1):
            span.set_attribute(f"monitor.output.yield[{i}]", i * 1.5)
    assert provider.force_flush()

    rows = read(db_path, "SELECT data, data_type, data_value FROM data_trace ORDER BY seq")
    assert [tuple(r) for r in rows] == [
        ("n", "INPUT", "12"), ("yield[0]", "OUTPUT", "0.0"), ("yield[1]", "OUTPUT", "1.5"),
        ("yield[2]", "OUTPUT", "3.0"), ("yield[10]", "OUTPUT", "15.0"),
        ("yield_count", "OUTPUT", "12"), ("return", "OUTPUT", "'done'")]


def test_parent_child_and_trace_ids_are_preserved_as_hex_even_with_the_top_bit_set(
        otel_pipeline, db_path):
    root_id, child_id, grandchild_id = 0xFFFFFFFFFFFFFFFE, 0x8000000000000001, 0x00000000000000AB
    trace_id = 0xF0000000000000000000000000000001
    ids = ListedIds([root_id, child_id, grandchild_id], [trace_id])
    provider, tracer, _ = otel_pipeline(id_generator=ids)
    with tracer.start_as_current_span("root"):
        with tracer.start_as_current_span("child"):
            with tracer.start_as_current_span("grandchild"):
                pass
    assert provider.force_flush()

    rows = {r["process"]: r for r in read(
        db_path, "SELECT process, span_id, parent_span_id, trace_id FROM process_trace")}
    assert rows["root"]["span_id"] == "fffffffffffffffe"
    assert rows["root"]["parent_span_id"] is None
    assert rows["child"]["span_id"] == "8000000000000001"
    assert rows["child"]["parent_span_id"] == "fffffffffffffffe"
    assert rows["grandchild"]["span_id"] == "00000000000000ab"
    assert rows["grandchild"]["parent_span_id"] == "8000000000000001"
    assert {r["trace_id"] for r in rows.values()} == {"f0000000000000000000000000000001"}


def test_error_status_with_exception_event_stores_err_and_the_stacktrace(otel_pipeline, db_path):
    provider, tracer, _ = otel_pipeline()
    with pytest.raises(ValueError):
        with tracer.start_as_current_span("pricing.price",
                                          attributes={"monitor.input.strike": "-1"}):
            raise ValueError("strike must be positive")
    assert provider.force_flush()

    call = read(db_path, "SELECT status, outcome, exception_type, exception FROM process_trace")[0]
    assert call["status"] == "ERR"
    assert call["outcome"] == "error"
    assert call["exception_type"] == "ValueError"
    assert call["exception"].startswith("Traceback (most recent call last):")
    assert "ValueError: strike must be positive" in call["exception"]
    data = read(db_path, "SELECT data, status, exception FROM data_trace")
    assert [(r["data"], r["status"], r["exception"]) for r in data] == [
        ("strike", "ERR", call["exception"])]
    seven = read(db_path, 'SELECT "Status", "Exception" FROM trace_rows')[0]
    assert tuple(seven) == ("ERR", call["exception"])


def test_error_status_without_exception_event_stores_err_and_the_description(
        otel_pipeline, db_path):
    provider, tracer, _ = otel_pipeline()
    with tracer.start_as_current_span("feed.poll") as span:
        span.set_status(Status(StatusCode.ERROR, "upstream timed out"))
    assert provider.force_flush()
    assert tuple(read(db_path, "SELECT status, exception FROM process_trace")[0]) == (
        "ERR", "upstream timed out")


def test_service_name_of_the_resource_lands_in_service_name(otel_pipeline, db_path):
    provider, tracer, _ = otel_pipeline(service_name="risk-engine")
    with tracer.start_as_current_span("work"):
        pass
    assert provider.force_flush()
    assert scalar(db_path, "SELECT service_name FROM process_trace") == "risk-engine"


def test_timestamps_render_in_utc_with_microseconds_and_duration_in_ms(otel_pipeline, db_path):
    provider, tracer, _ = otel_pipeline()
    start = 1_700_000_000_123_456_789  # 2023-11-14 22:13:20.123456789 UTC
    span = tracer.start_span("work", start_time=start, attributes={"monitor.input.x": "1"})
    span.end(end_time=start + 2_500_000)
    assert provider.force_flush()

    call = read(db_path, "SELECT ts, duration_ms, start_ns FROM process_trace")[0]
    assert call["ts"] == "2023-11-14 22:13:20.123456"
    assert call["duration_ms"] == pytest.approx(2.5)
    assert call["start_ns"] == start
    assert scalar(db_path, "SELECT ts FROM data_trace") == "2023-11-14 22:13:20.123456"
    assert scalar(db_path, 'SELECT "Timestamp" FROM trace_rows') == "2023-11-14T22:13:20.123456Z"


def test_trace_rows_view_has_exactly_the_seven_columns(otel_pipeline, db_path):
    provider, tracer, _ = otel_pipeline()
    start = 1_700_000_000_000_001_000
    span = tracer.start_span("work", start_time=start, attributes={"monitor.input.x": "1"})
    span.set_attribute("monitor.output.return", "2")
    span.end(end_time=start + 1000)
    assert provider.force_flush()

    rows = read(db_path, "SELECT * FROM trace_rows")
    assert tuple(rows[0].keys()) == SEVEN_COLUMNS
    assert sorted(tuple(r) for r in rows) == [
        ("work", "return", "OUTPUT", "2", "2023-11-14T22:13:20.000001Z", "OK", ""),
        ("work", "x", "INPUT", "1", "2023-11-14T22:13:20.000001Z", "OK", ""),
    ]


def test_trace_rows_lists_calls_in_time_order_each_with_inputs_in_argument_order(
        otel_pipeline, db_path):
    provider, tracer, _ = otel_pipeline()
    start = 1_700_000_000_000_000_000
    for n, (spot, strike) in enumerate([("101", "100"), ("99", "95")]):
        span = tracer.start_span("pricing.price", start_time=start + n * 1000, attributes={
            "monitor.input.spot": spot, "monitor.input.strike": strike})
        span.set_attribute("monitor.output.return", f"r{n}")
        span.end(end_time=start + n * 1000 + 500)
    assert provider.force_flush()

    rows = read(db_path, 'SELECT "Data", "Data Value" FROM trace_rows')
    assert [tuple(r) for r in rows] == [
        ("spot", "101"), ("strike", "100"), ("return", "r0"),
        ("spot", "99"), ("strike", "95"), ("return", "r1"),
    ]


def test_thousand_calls_within_one_second_make_a_thousand_call_rows(otel_pipeline, db_path):
    """The brief keys calls on (ts, process) at second resolution, which keeps one call per
    function per second; keyed on span ids, every call is kept."""
    provider, tracer, _ = otel_pipeline()
    for i in range(1000):
        with tracer.start_as_current_span("pricing.price",
                                          attributes={"monitor.input.i": str(i)}):
            pass
    assert provider.force_flush()

    # The premise: many calls share a second (the brief's key would keep one of them).
    assert scalar(db_path, "SELECT max(n) FROM (SELECT count(*) AS n FROM spans "
                           "GROUP BY start_ns / 1000000000)") > 1
    assert scalar(db_path, "SELECT count(*) FROM process_trace WHERE process = 'pricing.price'") \
        == 1000
    assert scalar(db_path, "SELECT count(DISTINCT data_value) FROM data_trace") == 1000
    # Most of them share a second: under the brief's key they would have collided.
    per_second = scalar(db_path, "SELECT max(n) FROM (SELECT count(*) AS n FROM process_trace "
                                 "GROUP BY substr(ts, 1, 19))")
    assert per_second >= 500


def _finished_spans(n: int):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    for i in range(n):
        with tracer.start_as_current_span("work", attributes={"monitor.input.i": str(i)}):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_a_resent_span_is_stored_once_and_the_rest_of_its_batch_is_written(db_path):
    first, second, third = _finished_spans(3)
    exporter = SQLiteSpanExporter(db_path)
    try:
        assert exporter.export([first, second]) is SpanExportResult.SUCCESS
        assert exporter.export([second, third]) is SpanExportResult.SUCCESS  # a retry resends
    finally:
        exporter.shutdown()
    assert scalar(db_path, "SELECT count(*) FROM process_trace") == 3
    assert sorted(r[0] for r in read(db_path, "SELECT data_value FROM data_trace")) == [
        "0", "1", "2"]


def test_export_after_shutdown_fails_and_writes_nothing(db_path):
    (span,) = _finished_spans(1)
    exporter = SQLiteSpanExporter(db_path)
    exporter.shutdown()
    assert exporter.export([span]) is SpanExportResult.FAILURE
    assert scalar(db_path, "SELECT count(*) FROM spans") == 0


def test_many_batches_keep_every_span_once(otel_pipeline, db_path):
    provider, tracer, _ = otel_pipeline()
    for batch in range(5):
        for i in range(200):
            with tracer.start_as_current_span(f"f{i % 7}",
                                              attributes={"monitor.input.k": f"{batch}-{i}"}):
                pass
        assert provider.force_flush()
    assert scalar(db_path, "SELECT count(*) FROM process_trace") == 1000
    assert scalar(db_path, "SELECT count(DISTINCT data_value) FROM data_trace") == 1000
    assert scalar(db_path, "SELECT count(*) FROM processes") == 7
    names = [r[0] for r in read(db_path, "SELECT name FROM processes ORDER BY name")]
    assert names == [f"f{i}" for i in range(7)]


def test_a_span_sampling_weight_becomes_the_calls_weight_and_no_data_row(otel_pipeline,
                                                                          db_path):
    # monitor.sample.weight (sample="auto" on an otel_span=True function, or an OTLP
    # sender's) is how many calls the span stands for; absent, 1 or nonsense: NULL (1).
    provider, tracer, _ = otel_pipeline()
    for name, weight in (("kept", 12.5), ("plain", None), ("one", 1), ("bad", -3.0),
                         ("text", "7")):
        attributes = {"monitor.process_group": "g"}
        if weight is not None:
            attributes["monitor.sample.weight"] = weight
        with tracer.start_as_current_span(name, attributes=attributes):
            pass
    assert provider.force_flush()

    rows = read(db_path, "SELECT p.name, s.weight FROM spans s JOIN processes p "
                         "ON p.id = s.process_id ORDER BY p.name")
    assert {r[0]: r[1] for r in rows} == {"bad": None, "kept": 12.5, "one": None,
                                          "plain": None, "text": None}
    assert scalar(db_path, "SELECT count(*) FROM data_trace") == 0
