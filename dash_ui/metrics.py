"""Prometheus metrics of one store at ``/metrics``: ``mount_metrics(app, db_path)``.

A custom prometheus_client collector in its own ``CollectorRegistry`` (never the
process-global one, so several apps in one process do not mix their figures).

Counters of calls and errors and the duration histogram count the calls written to
the store *since this server started*, each weighted by ``spans.weight`` (how many calls
a call kept by sampling stands for; NULL: 1), so under ``sample="auto"`` they estimate
the calls made: each scrape reads only the spans with an id
above the last one it counted (``spans.id`` never goes back, even after a purge), at
most ``max_spans_per_scrape`` of them, aggregated in SQL. At most ``max_call_series``
(process, process group, service) series are kept (a process's group comes from the
store's catalog: SLO rules select on it); the calls of names seen after that are
counted under ``process="(other)", process_group="(other)", service="(other)"``, so a sender of ever new span names cannot grow
the server's memory or Prometheus's series without bound. A purge removes rows the
counters already hold, so it never makes them go down; a restart is a counter reset,
which ``rate()`` and ``increase()`` handle. The rest (queue depth, dropped, write lag
and OTLP failures per exporting process, feed ages) are read from the small ``health``
and ``feed_status`` tables each scrape, at most ``MAX_LABELLED_ROWS`` rows each.
Cost per scrape: one primary-key range read of the new spans (bounded), plus a few
reads of tables with one row per process or feed.
"""
from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CollectorRegistry
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)
from prometheus_client.exposition import choose_encoder

from exporters.columns import DURATION_BUCKETS_S
from exporters.database import Database, Row
from exporters.errors import StoreError
from exporters.queries.ribbon import live_health_rows
from exporters.self_health import IngestStats, store_figures

# Call duration buckets, seconds: one list with the store's rollups (exporters.columns).
MAX_SPANS_PER_SCRAPE = 200_000   # new calls aggregated per scrape; the rest on the next
MAX_LABELLED_ROWS = 1_000        # health rows and feeds exposed (most recently updated)
# (process, service) series of the call metrics: ingested spans can carry any number of
# names; past this, new ones are counted together under OTHER.
MAX_CALL_SERIES = 2_000
OTHER = "(other)"
PREFIX = "otel_monitor"
_NS = 1e9

# One row per (process, service) for the spans in (?, ?]: count, errors, sum of
# durations, then one cumulative count per bucket bound (in ms, as stored).
# Every figure is weighted: a call kept by sampling stands for ``spans.weight`` calls
# (NULL: 1), so the counters estimate the calls made (``@monitor(sample="auto")``).
_W = "coalesce(weight, 1.0)"
CALLS_SQL = (
    f"SELECT process_id, coalesce((SELECT name FROM services WHERE id = service_id), ''), "
    f"sum({_W}), sum((status = 'ERR') * {_W}), "
    f"sum(duration_ms * {_W}), "
    + ", ".join(f"sum((duration_ms <= {b * 1000!r}) * {_W})" for b in DURATION_BUCKETS_S)
    + " FROM spans WHERE id > ? AND id <= ? GROUP BY 1, 2"
)


@dataclass
class _CallStats:
    calls: float = 0.0  # weighted: estimates of the calls made (see CALLS_SQL)
    errors: float = 0.0
    duration_ms: float = 0.0
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(DURATION_BUCKETS_S))


class StoreMetrics:
    """The collector: ``collect()`` tails the new calls and reads the state tables."""

    def __init__(self, db_path: str | os.PathLike[str], *,
                 max_spans_per_scrape: int = MAX_SPANS_PER_SCRAPE,
                 max_call_series: int = MAX_CALL_SERIES,
                 after_span_id: int | None = None,
                 ingest_stats: IngestStats | None = None) -> None:
        """``after_span_id``: count the spans with a higher id (default: the store's
        highest now, i.e. the calls written from now on). ``ingest_stats``: the serving
        process's OTLP ingest answers."""
        self._db = Database(db_path, readonly=True)
        self._ingest = ingest_stats
        self._max_spans = max_spans_per_scrape
        self._max_series = max_call_series
        self._lock = threading.Lock()  # one scrape at a time: they share the tail position
        self._calls: dict[tuple[str, str, str], _CallStats] = {}
        self._alerts: Counter[tuple[str, str]] = Counter()
        self._names: dict[int, tuple[str, str]] = {}  # process id -> (name, group)
        self._last_span = self._max_id("spans") if after_span_id is None else after_span_id
        self._last_alert = self._max_id("alerts")
        self._backlog = 0

    def _q(self, sql: str, params: Any = ()) -> list[Row]:
        return self._db.execute(sql, params)

    def _max_id(self, table: str) -> int:
        return self._q(f"SELECT coalesce(max(id), 0) FROM {table}")[0][0]

    def _process(self, process_id: int) -> tuple[str, str]:
        """(name, process group) of a process id."""
        if process_id not in self._names:
            self._names = {r[0]: (r[1], r[2] or "") for r in self._q(
                "SELECT id, name, process_group FROM processes")}
        return self._names.get(process_id, (f"process#{process_id}", ""))

    # -- incremental parts --------------------------------------------------------------

    def _tail_calls(self) -> None:
        newest = self._max_id("spans")
        upto = min(newest, self._last_span + self._max_spans)
        if upto > self._last_span:
            for pid, service, calls, errors, total_ms, *buckets in self._q(
                    CALLS_SQL, (self._last_span, upto)):
                stats = self._series((*self._process(pid), service))
                stats.calls += calls
                stats.errors += errors
                stats.duration_ms += total_ms or 0.0
                stats.buckets = [a + b for a, b in zip(stats.buckets, buckets)]
            self._last_span = upto
        self._backlog = max(0, newest - self._last_span)  # < 0 once a purge emptied spans

    def _series(self, key: tuple[str, str, str]) -> _CallStats:
        stats = self._calls.get(key)
        if stats is None:
            if len(self._calls) >= self._max_series:
                key = (OTHER, OTHER, OTHER)
            stats = self._calls.setdefault(key, _CallStats())
        return stats

    def _tail_alerts(self) -> None:
        newest = self._max_id("alerts")
        if newest < self._last_alert:
            # alerts.id is a plain rowid: it restarts only once retention emptied the
            # table, so every row there now is new.
            self._last_alert = 0
        for rule, status, n in self._q(
                "SELECT rule, status, count(*) FROM alerts WHERE id > ? AND id <= ? "
                "GROUP BY 1, 2", (self._last_alert, newest)):
            self._alerts[(rule, status)] += n
        self._last_alert = newest

    # -- the collector protocol -----------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            self._tail_calls()
            self._tail_alerts()
            now = time.time_ns()
            families = [*self._call_metrics(), *self._alert_metrics(),
                        *self._health_metrics(now), *self._feed_metrics(now),
                        *self._store_metrics(now)]
        return iter(families)

    def _call_metrics(self) -> Iterator[Metric]:
        labels = ["process", "process_group", "service"]
        calls = CounterMetricFamily(f"{PREFIX}_calls", "Calls written to the store since "
                                    "this server started, weighted by sampling (an "
                                    "estimate of the calls made).", labels=labels)
        errors = CounterMetricFamily(f"{PREFIX}_call_errors", "Calls with status ERR written "
                                     "to the store since this server started, weighted by "
                                     "sampling.", labels=labels)
        durations = HistogramMetricFamily(f"{PREFIX}_call_duration_seconds",
                                          "Duration of the calls counted in "
                                          f"{PREFIX}_calls_total.", labels=labels)
        for key, s in sorted(self._calls.items()):
            calls.add_metric(list(key), s.calls)
            errors.add_metric(list(key), s.errors)
            buckets = [(repr(b), n) for b, n in zip(DURATION_BUCKETS_S, s.buckets)]
            durations.add_metric(list(key), buckets + [("+Inf", s.calls)],
                                 s.duration_ms / 1000)
        backlog = GaugeMetricFamily(f"{PREFIX}_metrics_backlog_spans",
                                    "Spans in the store not counted yet (a scrape counts at "
                                    f"most {self._max_spans}); an upper bound.",
                                    value=self._backlog)
        yield from (calls, errors, durations, backlog)

    def _alert_metrics(self) -> Iterator[Metric]:
        alerts = CounterMetricFamily(f"{PREFIX}_alerts", "Alerts recorded since this server "
                                     "started, by rule and delivery status (sent, failed, "
                                     "dropped, suppressed).", labels=["rule", "status"])
        for (rule, status), n in sorted(self._alerts.items()):
            alerts.add_metric([rule, status], n)
        yield alerts

    def _health_metrics(self, now: int) -> Iterator[Metric]:
        labels = ["pid", "host", "service"]

        def family(kind: type, name: str, doc: str) -> Any:
            return kind(f"{PREFIX}_exporter_{name}", doc, labels=labels)

        depth = family(GaugeMetricFamily, "queue_depth", "Spans waiting in the exporting "
                       "process's queue.")
        peak = family(GaugeMetricFamily, "queue_peak", "Highest queue depth seen.")
        dropped = family(CounterMetricFamily, "dropped_spans", "Spans dropped (queue full).")
        written = family(CounterMetricFamily, "written_spans", "Spans written to SQLite.")
        lag = family(GaugeMetricFamily, "write_lag_seconds", "Oldest queued span to written.")
        age = family(GaugeMetricFamily, "report_age_seconds", "Time since the process last "
                     "wrote its health row (a stopped process stops reporting).")
        otlp_ok = family(CounterMetricFamily, "otlp_exported_spans", "Spans exported over OTLP "
                         "(processes that dual-write).")
        otlp_failed = family(CounterMetricFamily, "otlp_export_failures", "Spans whose OTLP "
                             "export failed (processes that dual-write).")
        rows = [dict(row) for row in self._q(
            "SELECT * FROM health ORDER BY updated_ns DESC LIMIT ?", (MAX_LABELLED_ROWS,))]
        for r in live_health_rows(rows, now_ns=now):  # not the rows of processes gone
            key = [str(r["pid"]), r["host"] or "", r["service_name"] or ""]
            depth.add_metric(key, r["queue_depth"])
            peak.add_metric(key, r["queue_peak"])
            dropped.add_metric(key, r["dropped"])
            written.add_metric(key, r["written"])
            if r["write_lag_ms"] is not None:
                lag.add_metric(key, r["write_lag_ms"] / 1000)
            age.add_metric(key, max(0.0, (now - r["updated_ns"]) / _NS))
            if r.get("otlp_exported") is not None:  # NULL (or no column): no dual-write
                otlp_ok.add_metric(key, r["otlp_exported"])
            if r.get("otlp_failed") is not None:
                otlp_failed.add_metric(key, r["otlp_failed"])
        yield from (depth, peak, dropped, written, lag, age, otlp_ok, otlp_failed)

    def _feed_metrics(self, now: int) -> Iterator[Metric]:
        age = GaugeMetricFamily(f"{PREFIX}_feed_age_seconds", "Time since the feed's last "
                                "update (feeds ticked at least once).", labels=["feed"])
        stale_after = GaugeMetricFamily(f"{PREFIX}_feed_stale_after_seconds", "The feed is "
                                        "stale past this age.", labels=["feed"])
        interval = GaugeMetricFamily(f"{PREFIX}_feed_interval_seconds", "The feed's declared "
                                     "update interval.", labels=["feed"])
        for r in self._q("SELECT name, interval_s, stale_after_s, last_update_ns FROM "
                         "feed_status ORDER BY updated_ns DESC LIMIT ?", (MAX_LABELLED_ROWS,)):
            if r["last_update_ns"] is not None:
                age.add_metric([r["name"]], max(0.0, (now - r["last_update_ns"]) / _NS))
            stale_after.add_metric([r["name"]], r["stale_after_s"])
            if r["interval_s"] is not None:
                interval.add_metric([r["name"]], r["interval_s"])
        yield from (age, stale_after, interval)


    def _store_metrics(self, now: int) -> Iterator[Metric]:
        """The store's size against its cap, the retention's progress (the settings the
        purging processes noted in ``meta``) and this server's OTLP ingest answers."""
        f = store_figures(self._db, now)
        yield GaugeMetricFamily(f"{PREFIX}_store_used_bytes", "Bytes of the store in use "
                                "(pages minus free pages).", value=f["used_bytes"])
        cap = GaugeMetricFamily(f"{PREFIX}_store_size_cap_bytes", "The size cap "
                                "(max_db_mb) of the processes that purge the store; absent "
                                "without a cap.")
        if f["size_cap_bytes"]:
            cap.add_metric([], f["size_cap_bytes"])
        yield cap
        for key, name, doc in (
                ("retention_behind_s", "retention_behind_seconds", "How far the oldest call "
                 "is past the retention window (0: retention keeps up)."),
                ("purge_interval_s", "retention_interval_seconds", "The purge interval of "
                 "the processes that purge the store."),
                ("last_purge_age_s", "retention_last_claim_age_seconds", "Time since a "
                 "process last took its turn to purge.")):
            family = GaugeMetricFamily(f"{PREFIX}_{name}", doc)
            if f[key] is not None:
                family.add_metric([], f[key])
            yield family
        # the cold archive (issue 17): absent while no retention with an archive noted it
        for key, name, doc in (
                ("archive_behind_s", "archive_behind_seconds", "How long the cold archive "
                 "has been behind (0: it keeps up)."),
                ("archive_spool_bytes", "archive_spool_bytes", "Bytes of archive batches "
                 "waiting on local disk for the bucket.")):
            family = GaugeMetricFamily(f"{PREFIX}_{name}", doc)
            if f["archive_on"]:
                family.add_metric([], f[key] or 0)
            yield family
        lost = CounterMetricFamily(f"{PREFIX}_archive_lost_calls", "Calls the size cap "
                                   "deleted without archiving them (the archive failing or "
                                   "its spool full).")
        if f["archive_on"]:
            lost.add_metric([], f["archive_lost_calls"])
        yield lost
        ingest = CounterMetricFamily(f"{PREFIX}_ingest_requests", "OTLP/HTTP requests to "
                                     "/v1/traces answered by this server, by HTTP status "
                                     "(503: refused, busy or the store not writable).",
                                     labels=["status"])
        if self._ingest is not None:
            for status, n in sorted(self._ingest.snapshot().items()):
                ingest.add_metric([str(status)], n)
        yield ingest


def metrics_registry(db_path: str | os.PathLike[str], **kwargs: Any) -> CollectorRegistry:
    """A fresh registry holding the store's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreMetrics(db_path, **kwargs))
    return registry


def mount_metrics(app: FastAPI, db_path: str | os.PathLike[str], *,
                  ingest_stats: IngestStats | None = None) -> None:
    """Serve ``/metrics`` on ``app``. Add it before the UI's catch-all mount at ``/``; the
    app's own dependencies (the access token) guard it like the API."""
    registry = metrics_registry(db_path, ingest_stats=ingest_stats)
    app.state.metrics_registry = registry

    @app.get("/metrics", summary="Prometheus metrics of the store (text exposition format)",
             response_class=PlainTextResponse, responses={
                 200: {"content": {  # OpenMetrics if the scraper's Accept asks for it
                     "text/plain": {"schema": {"type": "string"}},
                     "application/openmetrics-text": {"schema": {"type": "string"}}}},
                 503: {"description": "The store cannot be read",
                       "content": {"text/plain": {"schema": {"type": "string"}}}}})
    def metrics(request: Request) -> Response:
        try:
            encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        except (TypeError, ValueError):  # e.g. "version=abc": it compares it as numbers
            encoder, content_type = choose_encoder("")  # the text format
        try:
            body = encoder(registry)
        except StoreError as exc:  # e.g. the store file was removed under us
            return PlainTextResponse(f"cannot read the store: {exc}", status_code=503)
        return Response(body, media_type=content_type)
