"""Cost of the Grafana dashboard's SQLite panels (collector-config/grafana/dashboards/
otel-monitor.json, frser-sqlite-datasource) on a big store, against reading the same
seven columns through the trace_rows view filtered on its text Timestamp.

    .venv/bin/python benchmarks/bench_grafana_panels.py [--calls 2000000] [--runs 20]

Uses bench_ui_queries.py's generated store (cached under the temp dir; generated when
absent). The time range is the store's last hour, as Grafana's "Last 1 hour" sends it
($__from/$__to in ms). Prints each panel's median ms and its ratio to the reference.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DASHBOARD = os.path.join(ROOT, "collector-config", "grafana", "dashboards", "otel-monitor.json")
REFERENCE = """SELECT * FROM trace_rows WHERE "Timestamp" >= ? AND "Timestamp" < ? LIMIT 1000"""


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}000Z"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    from bench_ui_queries import cached_store, median_ms

    path = cached_store(args.calls)  # bench_ui_queries.py's store, named by the schema
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    to_ms = conn.execute("SELECT max(start_ns) FROM spans").fetchone()[0] // 1_000_000 + 1
    from_ms = to_ms - 3_600_000
    print(f"store: {path}: {conn.execute('SELECT count(*) FROM spans').fetchone()[0]:,} calls;"
          " range: its last hour")
    window = (iso(from_ms), iso(to_ms))
    reference = median_ms(lambda: conn.execute(REFERENCE, window).fetchall(),
                          max(3, args.runs // 4))
    print(f"{'query':56} {'median ms':>10} {'x reference':>12}")
    print(f"{'reference: trace_rows filtered on Timestamp (1,000)':56} {reference:10.2f} "
          f"{1:12.4f}")
    dashboard = json.load(open(DASHBOARD))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if "rawQueryText" not in target:
                continue
            sql = target["rawQueryText"].replace("$__from", str(from_ms)) \
                .replace("$__to", str(to_ms))
            ms = median_ms(lambda: conn.execute(sql).fetchall(), args.runs)
            print(f"{'panel: ' + panel['title'][:49]:56} {ms:10.2f} {ms / reference:12.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
