"""Burn-rate alert detection time in Prometheus: from an error spike to the generated
SLO rules' page alert ``firing`` in Debian's prometheus scraping a real ``otel-monitor
serve``, and from the end of the spike to the alert leaving.

    python benchmarks/bench_slo_prometheus.py [--spikes 3] [--window 1m] [--rate 50]

The chain is tests/stack/slo_stack.py's (the one test_slo_prometheus.py runs): a
workload calling a monitored function ``--rate`` times a second into a store, serve on
it, Prometheus scraping /metrics and evaluating the rules every second, the rate()
ranges at least 4 s. Each spike makes every call fail until the alert fires, then lets
them succeed until it resolves. Prints each detection and recovery time, their median,
and the detection as a ratio to the SLO's window (``--window``) and to the page pair's
short range (the scaled 5-minute window, at least 4 s).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "stack"))
logging.getLogger("otel_monitor").setLevel(logging.ERROR)

import otel_monitor  # noqa: E402
from otel_monitor.slo import SLO, parse_window  # noqa: E402
from otel_monitor.slo_rules import windows  # noqa: E402
from slo_stack import MIN_RANGE, Workload, recording_ok, slo_stack  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spikes", type=int, default=3)
    ap.add_argument("--window", default="1m", help="the SLO's window (default 1m)")
    ap.add_argument("--rate", type=float, default=50.0, help="calls per second")
    args = ap.parse_args()
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("prometheus is not installed (scripts/install-system-deps.sh)")
        return 1
    for name in [k for k in os.environ if k.startswith("OTEL_MONITOR_")]:
        del os.environ[name]
    window_s = parse_window(args.window)
    short = windows(SLO("x", process="p", window=args.window),
                    min_range_s=parse_window(MIN_RANGE))["5m"]
    short_s = parse_window(short)
    detected, recovered = [], []
    with tempfile.TemporaryDirectory() as tmp:
        otel_monitor.configure(db_path=Path(tmp) / "store.db", flush_interval_s=0.05)
        try:
            with slo_stack(Path(tmp), prometheus, window=args.window) as stack:
                workload = Workload(rate=args.rate)
                workload.start()
                try:
                    recording_ok(stack)
                    for i in range(args.spikes):
                        detected.append(stack.detect(workload, "page", timeout_s=120))
                        recovered.append(stack.recover(workload, "page", timeout_s=120))
                        print(f"spike {i + 1}: page firing after {detected[-1]:.1f} s, "
                              f"gone {recovered[-1]:.1f} s after the spike ended")
                finally:
                    workload.stopped.set()
                    workload.join(10)
        finally:
            otel_monitor.shutdown()
    d = statistics.median(detected)
    print(f"SLO window {args.window}, scrape and evaluation every 1 s, page pair ranges "
          f"{short} (5m-class) and the 1h-class at least {MIN_RANGE}")
    print(f"detection (spike -> firing), median of {len(detected)}: {d:.1f} s = "
          f"{d / window_s:.3f} x the SLO window, {d / short_s:.2f} x the short range "
          f"({short})")
    print(f"recovery (spike over -> not firing), median: {statistics.median(recovered):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
