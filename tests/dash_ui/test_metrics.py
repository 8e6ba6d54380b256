"""/metrics: the store's calls, errors, durations, health, feeds and alerts as Prometheus
text, read back with prometheus_client's own parser; a purge never lowers a counter."""
from __future__ import annotations

import os
import time

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import otel_monitor
from api_server import ServedApp
from dash_ui.metrics import DURATION_BUCKETS_S, metrics_registry
from exporters.state import AlertRecord, FeedState, StateStore
from exporters.store import SpanStore

TOKEN = "metrics-s3cret"


@otel_monitor.monitor("metrics-tests")
def quote(symbol: str, qty: int) -> float:
    return qty * 1.5


@otel_monitor.monitor("metrics-tests")
def reject(order_id: int) -> None:
    raise ValueError(f"order {order_id} rejected")


@otel_monitor.monitor("metrics-tests")
def settle(seconds: float) -> None:
    time.sleep(seconds)


QUOTE = f"{__name__}.quote"
REJECT = f"{__name__}.reject"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of the exposition, keyed by (sample name, sorted labels)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float:
    matching = [v for (n, lab), v in found.items()
                if n == name and labels.items() <= dict(lab).items()]
    assert len(matching) == 1, (name, labels, matching)
    return matching[0]


def scrape(registry) -> dict:
    return samples(generate_latest(registry).decode())


def run(calls: int, failures: int) -> None:
    for i in range(calls):
        quote("EURUSD", i)
    for i in range(failures):
        with pytest.raises(ValueError):
            reject(i)
    assert otel_monitor.force_flush(10)


@pytest.fixture
def store(tmp_path, monkeypatch):
    for var in list(os.environ):
        if var.startswith(("OTEL_MONITOR_", "OTEL_EXPORTER_OTLP")):
            monkeypatch.delenv(var)
    path = tmp_path / "metrics.db"
    otel_monitor.configure(db_path=path, flush_interval_s=0.05)
    run(1, 0)  # the store exists before the server starts; this call predates it
    yield path
    otel_monitor.shutdown()


def test_counts_calls_and_errors_written_since_the_server_started(store):
    registry = metrics_registry(store)
    run(5, 3)
    found = scrape(registry)
    assert value(found, "otel_monitor_calls_total", process=QUOTE) == 5
    assert value(found, "otel_monitor_call_errors_total", process=QUOTE) == 0
    assert value(found, "otel_monitor_calls_total", process=REJECT) == 3
    assert value(found, "otel_monitor_call_errors_total", process=REJECT) == 3
    assert value(found, "otel_monitor_metrics_backlog_spans") == 0


def test_duration_histogram_is_cumulative_in_seconds(store):
    registry = metrics_registry(store)
    run(4, 2)
    found = scrape(registry)
    name = "otel_monitor_call_duration_seconds"
    for process, calls in ((QUOTE, 4), (REJECT, 2)):
        counts = [value(found, f"{name}_bucket", process=process, le=str(b))
                  for b in DURATION_BUCKETS_S]
        assert counts == sorted(counts)  # cumulative
        assert value(found, f"{name}_bucket", process=process, le="+Inf") == calls
        assert value(found, f"{name}_count", process=process) == calls
        total_s = value(found, f"{name}_sum", process=process)
        stored_ms = SpanStore(store, readonly=True).query(  # the calls after the start
            "SELECT sum(duration_ms) FROM (SELECT duration_ms FROM process_trace "
            "WHERE process = ? ORDER BY id DESC LIMIT ?)", (process, calls))[0][0]
        assert total_s == pytest.approx(stored_ms / 1000)
    settle(0.03)  # at least 30 ms: above the 25 ms bound, counted in the higher ones
    assert otel_monitor.force_flush(10)
    found = scrape(registry)
    slow = dict(process=f"{__name__}.settle")
    assert value(found, f"{name}_bucket", le="0.025", **slow) == 0
    assert value(found, f"{name}_bucket", le="+Inf", **slow) == 1
    assert value(found, f"{name}_sum", **slow) >= 0.03


def test_a_purge_never_lowers_the_counters(store):
    registry = metrics_registry(store)
    run(6, 2)
    before = scrape(registry)
    writer = SpanStore(store)
    assert writer.purge(time.time_ns() + 10**9) >= 8  # every call in the store is gone
    writer.close()
    after = scrape(registry)
    for process, calls in ((QUOTE, 6), (REJECT, 2)):
        assert value(after, "otel_monitor_calls_total", process=process) == calls
        assert value(after, "otel_monitor_calls_total", process=process) == \
            value(before, "otel_monitor_calls_total", process=process)
    assert value(after, "otel_monitor_call_errors_total", process=REJECT) == 2
    assert value(after, "otel_monitor_metrics_backlog_spans") == 0
    run(2, 1)  # new ids continue after the purged ones: counted once each
    later = scrape(registry)
    assert value(later, "otel_monitor_calls_total", process=QUOTE) == 8
    assert value(later, "otel_monitor_call_errors_total", process=REJECT) == 3


def test_each_scrape_reads_a_bounded_number_of_new_calls_and_catches_up(store):
    registry = metrics_registry(store, max_spans_per_scrape=4)
    run(10, 0)
    first = scrape(registry)
    assert value(first, "otel_monitor_calls_total", process=QUOTE) == 4
    assert value(first, "otel_monitor_metrics_backlog_spans") == 6
    totals = [value(scrape(registry), "otel_monitor_calls_total", process=QUOTE)
              for _ in range(3)]
    assert totals == [8, 10, 10]


def test_health_feeds_and_alerts(store):
    registry = metrics_registry(store)
    now = time.time_ns()
    state = StateStore(store)
    state.write_health(queue_depth=7, queue_peak=40, dropped=3, written=120,
                       write_lag_ms=250.0, last_write_ns=now, service_name="pricer",
                       otlp_exported=100, otlp_failed=20)
    state.write_feeds([FeedState("bbg.fx", 1.0, 10.0, now - 30 * 10**9, 9, True),
                       FeedState("never.ticked", None, 10.0, None, 0, False)])
    alert = dict(ts_ns=now, rule="exception", action="trigger", key="k", target="slack x",
                 attempts=1, count=1, summary="ValueError")
    state.record_alerts([AlertRecord(status="sent", **alert), AlertRecord(status="sent", **alert),
                         AlertRecord(status="failed", **alert)])
    found = scrape(registry)
    me = dict(pid=str(os.getpid()), service="pricer")
    assert value(found, "otel_monitor_exporter_queue_depth", **me) == 7
    assert value(found, "otel_monitor_exporter_queue_peak", **me) == 40
    assert value(found, "otel_monitor_exporter_dropped_spans_total", **me) == 3
    assert value(found, "otel_monitor_exporter_write_lag_seconds", **me) == 0.25
    assert value(found, "otel_monitor_exporter_otlp_exported_spans_total", **me) == 100
    assert value(found, "otel_monitor_exporter_otlp_export_failures_total", **me) == 20
    assert 29 < value(found, "otel_monitor_feed_age_seconds", feed="bbg.fx") < 300
    assert value(found, "otel_monitor_feed_stale_after_seconds", feed="never.ticked") == 10
    assert not [k for k in found if k[0] == "otel_monitor_feed_age_seconds"
                and ("feed", "never.ticked") in k[1]]  # no age without an update
    assert value(found, "otel_monitor_alerts_total", rule="exception", status="sent") == 2
    assert value(found, "otel_monitor_alerts_total", rule="exception", status="failed") == 1
    # Retention empties the alerts table, so its plain rowids start again at 1: the
    # alerts recorded after that still count, the earlier ones stay counted.
    assert state.purge_alerts(now + 10**9) == 3
    scrape(registry)
    state.record_alerts([AlertRecord(status="failed", **alert)])
    later = scrape(registry)
    assert value(later, "otel_monitor_alerts_total", rule="exception", status="sent") == 2
    assert value(later, "otel_monitor_alerts_total", rule="exception", status="failed") == 2
    state.close()


def test_served_at_slash_metrics_behind_the_access_token(store):
    from dash_ui.server import create_server_app

    run(2, 1)
    with ServedApp(create_server_app(store, token=TOKEN)) as served:
        url = f"{served.url}/metrics"
        refused = httpx.get(url, timeout=10)
        assert refused.status_code == 401
        run(3, 0)
        ok = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain")
    # The server's registry was built when the app was: the calls before it are not counted.
    assert value(samples(ok.text), "otel_monitor_calls_total", process=QUOTE) == 3


def test_after_span_id_zero_counts_the_calls_already_in_the_store(store):
    run(2, 1)
    found = scrape(metrics_registry(store, after_span_id=0))
    assert value(found, "otel_monitor_calls_total", process=QUOTE) == 3  # with the first
    assert value(found, "otel_monitor_call_errors_total", process=REJECT) == 1


@pytest.mark.parametrize("accept", ["application/openmetrics-text; version=abc",
                                    "application/openmetrics-text; version=1.0.0"])
def test_an_accept_header_the_client_library_cannot_read_gets_the_text_format(store, accept):
    """prometheus_client's choose_encoder raises on a version it cannot compare (a 500):
    the scrape falls back to the plain text format, which every scraper reads."""
    from dash_ui.server import create_server_app

    run(1, 0)
    with ServedApp(create_server_app(store)) as served:
        got = httpx.get(f"{served.url}/metrics", headers={"accept": accept}, timeout=10)
    assert got.status_code == 200, got.text
    if "abc" in accept:
        assert got.headers["content-type"].startswith("text/plain")
    else:  # a version it reads keeps its OpenMetrics answer
        assert got.headers["content-type"].startswith("application/openmetrics-text")
    assert "otel_monitor_calls" in got.text


def test_call_counts_durations_and_buckets_sum_the_weights_of_sampled_calls(store):
    # A call kept by sampling stands for 1/q calls (spans.weight; NULL means 1): the
    # counters estimate the calls made, not the calls stored.
    registry = metrics_registry(store)
    run(4, 2)
    writer = SpanStore(store)
    try:
        first = writer.db.scalar("SELECT max(id) FROM spans") - 5  # the 6 calls of run()
        writer.db.execute_write("UPDATE spans SET weight = 2.5 WHERE id >= ?", (first,))
        quote_ms = writer.db.scalar(
            "SELECT sum(duration_ms) FROM process_trace WHERE process = ? AND id >= ?",
            (QUOTE, first))
    finally:
        writer.close()
    found = scrape(registry)
    name = "otel_monitor_call_duration_seconds"
    assert value(found, "otel_monitor_calls_total", process=QUOTE) == 10
    assert value(found, "otel_monitor_calls_total", process=REJECT) == 5
    assert value(found, "otel_monitor_call_errors_total", process=REJECT) == 5
    assert value(found, f"{name}_count", process=QUOTE) == 10
    assert value(found, f"{name}_bucket", process=QUOTE, le="+Inf") == 10
    assert value(found, f"{name}_bucket", process=QUOTE, le="10.0") == 10
    assert value(found, f"{name}_sum", process=QUOTE) == pytest.approx(2.5 * quote_ms / 1000)


def test_process_group_label_and_the_self_health_figures(store):
    """Calls carry their process group (SLO rules select on it); the store's used bytes,
    its cap and the retention's progress come from what the purge claim noted; the
    ingest's answers are counted by status."""
    from exporters.self_health import IngestStats

    stats = IngestStats()
    registry = metrics_registry(store, ingest_stats=stats)
    run(2, 0)
    s = SpanStore(store)
    s.claim_purge(30 * 10**9, retention_ns=3600 * 10**9, max_bytes=64 * 2**20)
    used = s.used_bytes()
    s.close()
    stats.note(200)
    stats.note(503)
    stats.note(503)
    found = scrape(registry)
    assert value(found, "otel_monitor_calls_total", process=QUOTE,
                 process_group="metrics-tests") == 2
    assert value(found, "otel_monitor_store_used_bytes") == used
    assert value(found, "otel_monitor_store_size_cap_bytes") == 64 * 2**20
    assert value(found, "otel_monitor_retention_interval_seconds") == 30
    assert value(found, "otel_monitor_retention_behind_seconds") == 0
    s = SpanStore(store)
    s.db.execute_write_many("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                            [("archive_behind_since_ns", "0"),
                             ("archive_spool_bytes", str(3 * 2**20))])
    s.close()
    found = scrape(registry)
    assert value(found, "otel_monitor_archive_behind_seconds") == 0
    assert value(found, "otel_monitor_archive_spool_bytes") == 3 * 2**20
    assert value(found, "otel_monitor_archive_lost_calls_total") == 0  # none lost yet
    s = SpanStore(store)
    s.db.execute_write("INSERT OR REPLACE INTO meta(key, value) VALUES "
                       "('archive_lost_calls', '1234')")
    s.close()
    assert value(scrape(registry), "otel_monitor_archive_lost_calls_total") == 1234
    assert value(found, "otel_monitor_ingest_requests_total", status="503") == 2
    assert value(found, "otel_monitor_ingest_requests_total", status="200") == 1
