"""Per-call overhead of @monitor against its references, measured in one run.

    python benchmarks/bench_overhead.py [--calls 20000] [--rounds 15]

Prints the median per-call overhead (µs above the bare call) of:
  * @monitor(otel_span=False), @monitor(otel_span=True), @monitor(sample=0)
  * the brief's reference decorator (appendix 7.2, queue.Queue)
  * a raw OTel SDK span: start_as_current_span + 5 attributes, BatchSpanProcessor
and the ratios the core issue sets targets for. Rounds of the variants are
interleaved so machine noise hits them alike.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
warnings.filterwarnings("ignore", category=DeprecationWarning)

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import (  # noqa: E402
    BatchSpanProcessor, SpanExporter, SpanExportResult)

import _reference  # noqa: E402
import otel_monitor  # noqa: E402
from otel_monitor import monitor  # noqa: E402


class _NullExporter(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


def price(spot: float, strike: float, vol: float, t: float) -> float:
    return spot * 0.5 + strike * 0.25 + vol * t


def build_variants() -> dict:
    raw_provider = TracerProvider()
    raw_provider.add_span_processor(BatchSpanProcessor(_NullExporter()))
    raw_tracer = raw_provider.get_tracer("bench")

    def raw_sdk_span(spot, strike, vol, t):
        with raw_tracer.start_as_current_span("price") as span:
            span.set_attribute("spot", spot)
            span.set_attribute("strike", strike)
            span.set_attribute("vol", vol)
            span.set_attribute("t", t)
            result = price(spot, strike, vol, t)
            span.set_attribute("return", result)
            return result

    return {
        "bare": price,
        "reference_7_2": _reference.monitor("pricing")(price),
        "raw_sdk_span": raw_sdk_span,
        "monitor_local": monitor("pricing")(price),
        "monitor_otel": monitor("pricing", otel_span=True)(price),
        "monitor_sample0": monitor("pricing", sample=0.0)(price),
    }


def time_round(fn, calls: int) -> float:
    args = (100.0, 95.0, 0.2, 0.5)
    t0 = time.perf_counter()
    for _ in range(calls):
        fn(*args)
    return (time.perf_counter() - t0) / calls * 1e6


def sustained(fn, seconds: float) -> float:
    """µs per call over a continuous run, the writer thread working alongside."""
    args = (100.0, 95.0, 0.2, 0.5)
    calls, t0 = 0, time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        for _ in range(1000):
            fn(*args)
        calls += 1000
    otel_monitor.force_flush()  # the writer's share of the work counts too
    return (time.perf_counter() - t0) / calls * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5_000)
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--sustained-seconds", type=float, default=2.0)
    opts = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="otel-monitor-bench-")
    otel_monitor.configure(db_path=os.path.join(tmp, "bench.db"), queue_size=1_000_000)
    variants = build_variants()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for name, fn in variants.items():  # warm up
        time_round(fn, 2000)
    for _ in range(opts.rounds):
        for name, fn in variants.items():
            gc.collect()
            samples[name].append(time_round(fn, opts.calls))
            _reference.drain()
            otel_monitor.force_flush()
    med = {name: statistics.median(v) for name, v in samples.items()}
    bare = med["bare"]
    over = {name: max(m - bare, 0.0) for name, m in med.items()}
    print(f"per-call time, median of {opts.rounds} rounds x {opts.calls} calls (µs)")
    for name in variants:
        print(f"  {name:<18} {med[name]:8.3f}   overhead {over[name]:8.3f}")
    print()
    ratio_local = over["monitor_local"] / over["reference_7_2"]
    ratio_otel = med["monitor_otel"] / med["raw_sdk_span"]
    print(f"otel_span=False overhead / reference decorator overhead = {ratio_local:.3f}  "
          f"(target <= 0.25)  {'PASS' if ratio_local <= 0.25 else 'FAIL'}")
    print(f"otel_span=True call / raw SDK span call               = {ratio_otel:.3f}  "
          f"(target <= 1.15)  {'PASS' if ratio_otel <= 1.15 else 'FAIL'}")
    print(f"sample=0 overhead                                     = {over['monitor_sample0']:.3f} µs"
          f" (target <= 0.3)  {'PASS' if over['monitor_sample0'] <= 0.3 else 'FAIL'}")
    print()
    print(f"sustained {opts.sustained_seconds:.0f} s runs, writer included (µs per call):")
    steady = {}
    for name in ("raw_sdk_span", "monitor_otel", "monitor_local"):
        steady[name] = sustained(variants[name], opts.sustained_seconds)
        print(f"  {name:<18} {steady[name]:8.3f}")
    print(f"  otel_span=True / raw SDK span, sustained = "
          f"{steady['monitor_otel'] / steady['raw_sdk_span']:.3f}")
    print(f"dropped by otel-monitor during the run: {otel_monitor._runtime.RUNTIME.processor.dropped}")
    otel_monitor.shutdown()


if __name__ == "__main__":
    main()
