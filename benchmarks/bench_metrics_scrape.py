"""Cost of a /metrics scrape (dash_ui.metrics) on a big store, against the full recount
a non-incremental exporter would do on every scrape.

    .venv/bin/python benchmarks/bench_metrics_scrape.py [--calls 2000000] [--runs 20]

Uses bench_ui_queries.py's generated store (cached under the temp dir; generated when
absent). Times, in the same run:
  - reference: one aggregate of calls, errors and duration buckets over every span
    (what a scrape costs when it recounts the store);
  - steady scrape: the scrape when no span was written since the last one;
  - catch-up scrape: a scrape that counts MAX_SPANS_PER_SCRAPE new spans (its bound);
and prints each as milliseconds (median) and as a ratio to the reference.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from dash_ui.metrics import CALLS_SQL, MAX_SPANS_PER_SCRAPE, StoreMetrics  # noqa: E402
from exporters.store import SpanStore  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    from bench_ui_queries import cached_store, median_ms

    path = cached_store(args.calls)  # bench_ui_queries.py's store, named by the schema
    store = SpanStore(path, readonly=True)
    newest = store.query("SELECT max(id) FROM spans")[0][0]
    spans = store.query("SELECT count(*) FROM spans")[0][0]
    print(f"store: {path}: {spans:,} calls")

    reference = median_ms(lambda: store.query(CALLS_SQL, (0, newest)), max(3, args.runs // 4))

    steady_registry = CollectorRegistry(auto_describe=False)
    steady_registry.register(StoreMetrics(path))
    steady = median_ms(lambda: generate_latest(steady_registry), args.runs)

    def catch_up() -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(StoreMetrics(path, after_span_id=newest - MAX_SPANS_PER_SCRAPE))
        generate_latest(registry)

    batch = median_ms(catch_up, max(3, args.runs // 4))
    print(f"{'what':48} {'median ms':>10} {'x reference':>12}")
    for label, ms in ((f"reference: recount all {spans:,} calls", reference),
                      ("steady scrape (no new calls)", steady),
                      (f"catch-up scrape ({MAX_SPANS_PER_SCRAPE:,} new calls, the bound)", batch)):
        print(f"{label:48} {ms:10.2f} {ms / reference:12.5f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
