"""Where an @monitor(otel_span=True) call's time goes, step by step, in one run.

    python benchmarks/bench_span_steps.py [--calls 5000] [--rounds 21]

The SDK's steps, cumulative, on the tracer @monitor uses (the provider with
otel-monitor's one span processor), for the span @monitor makes of ``price``:
  start_span + end -> + the 8 start attributes in its mapping -> + the return value
  (set_attribute) -> + its context attached and detached: the floor of any decorator
  making that span through the public SDK API (bench_overhead's ``sdk_span_floor``)
then @monitor(otel_span=True) itself, and the same decorator with the tracer swapped
for one whose spans do nothing (what the decorator's own code costs: capture, record,
nesting, context), next to @monitor(otel_span=False). All against issue 19's reference,
a raw SDK span (start_as_current_span + 5 set_attribute, BatchSpanProcessor). Rounds
of the variants are interleaved so machine noise hits them alike.
"""
from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from opentelemetry import context, trace  # noqa: E402
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags  # noqa: E402

import otel_monitor  # noqa: E402
from bench_overhead import (_NullExporter, price, raw_span_function,  # noqa: E402
                            sdk_floor_function, time_round)
from otel_monitor import monitor  # noqa: E402
from otel_monitor.pipeline import PIPELINE  # noqa: E402


class _InertSpan(NonRecordingSpan):
    """A span that records nothing: the decorator's own work is all that is left."""

    parent = None

    def set_attribute(self, key, value) -> None:
        pass

    def end(self, end_time=None) -> None:
        pass


class _InertTracer:
    def __init__(self) -> None:
        self.span = _InertSpan(SpanContext(1, 1, False, TraceFlags(TraceFlags.SAMPLED)))

    def start_span(self, name, context=None, attributes=None, start_time=None):
        return self.span


def sdk_steps(tracer) -> dict:
    """The SDK's steps of the span @monitor makes of price(), cumulative."""
    code = price.__code__
    name = f"{price.__module__}.{price.__qualname__}"
    start_attributes = {
        "code.function.name": name, "monitor.process_group": "pricing",
        "code.file.path": code.co_filename, "code.line.number": code.co_firstlineno,
        "monitor.input.spot": 100.0, "monitor.input.strike": 95.0,
        "monitor.input.vol": 0.2, "monitor.input.t": 0.5}

    def start_end(*args):
        span = tracer.start_span(name)
        result = price(*args)
        span.end()
        return result

    def with_attributes(*args):
        span = tracer.start_span(name, attributes=start_attributes)
        result = price(*args)
        span.end()
        return result

    def with_return(*args):
        span = tracer.start_span(name, attributes=start_attributes)
        result = price(*args)
        span.set_attribute("monitor.output.return", result)
        span.end()
        return result

    return {"sdk: start_span + end": start_end,
            "sdk: + 8 start attributes": with_attributes,
            "sdk: + return attribute": with_return,
            "sdk: + context attach/detach": sdk_floor_function()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5_000)
    ap.add_argument("--rounds", type=int, default=21)
    opts = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="otel-monitor-bench-")
    try:
        run(opts, tmp)
    finally:
        otel_monitor.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)  # its stores: hundreds of MB a run


def run(opts: argparse.Namespace, tmp: str) -> None:
    otel_monitor.configure(db_path=os.path.join(tmp, "bench.db"), queue_size=1_000_000)
    raw, _ = raw_span_function(_NullExporter())
    real_tracer, inert_tracer = PIPELINE.tracer, _InertTracer()
    variants = {"raw SDK span (reference)": raw, **sdk_steps(real_tracer),
                "@monitor(otel_span=True)": monitor("pricing", otel_span=True)(price),
                "@monitor(otel_span=False)": monitor("pricing")(price)}
    inert = "@monitor(otel_span=True), inert spans"
    variants[inert] = variants["@monitor(otel_span=True)"]
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():
        time_round(fn, 2000)
    for _ in range(opts.rounds):
        for name, fn in variants.items():
            PIPELINE.tracer = inert_tracer if name == inert else real_tracer
            gc.collect()
            samples[name].append(time_round(fn, opts.calls))
            otel_monitor.force_flush()
    PIPELINE.tracer = real_tracer
    bare = statistics.median(time_round(price, opts.calls) for _ in range(opts.rounds))
    med = {name: statistics.median(v) for name, v in samples.items()}
    raw_us = med["raw SDK span (reference)"]
    print(f"per-call time, median of {opts.rounds} rounds x {opts.calls} calls "
          f"(µs; bare call {bare:.3f})")
    previous = None
    for name, us in med.items():
        step = f"  step {us - previous:+7.3f}" if name.startswith("sdk: +") else ""
        print(f"  {name:<40} {us:8.3f}   / reference {us / raw_us:6.3f}{step}")
        previous = us
    ours = med["@monitor(otel_span=True)"] - med["sdk: + context attach/detach"]
    print(f"@monitor(otel_span=True) above the SDK floor: {ours:.3f} µs")


if __name__ == "__main__":
    main()
