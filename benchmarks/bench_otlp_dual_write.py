"""What dual-writing to an OTLP endpoint that is down costs the application, measured
against the same calls without OTLP in the same run.

    python benchmarks/bench_otlp_dual_write.py [--calls 5000] [--rounds 5]

Variants, each an ``@monitor(otel_span=True)`` call, rounds interleaved:
  * no OTLP endpoint (the reference)
  * OTLP http/protobuf to a closed port (the Collector is down)
  * OTLP http/protobuf to a socket that accepts and never answers (a stalled Collector)
Prints the median per-call time of each, its ratio to the reference, and the 99.9th
percentile call beside the exporter's timeout: calls that waited on the exporter
would take that long.
"""
from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import tempfile
import threading
import time

os.environ["OTEL_EXPORTER_OTLP_TIMEOUT"] = "1"  # seconds: each failed export ends fast
logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)  # export failure notices

import otel_monitor  # noqa: E402
from otel_monitor import monitor  # noqa: E402


@monitor("bench", otel_span=True)
def price(spot: float, strike: float) -> float:
    return spot * 0.5 + strike * 0.25


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StalledCollector:
    """Accepts connections and reads what is sent, never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)


def timed_round(db: str, endpoint: str | None, calls: int) -> tuple[float, float]:
    """(median µs per call, 99.9th percentile call in µs) of ``calls`` calls."""
    otel_monitor.configure(db_path=db, otlp_endpoint=endpoint, queue_size=1_000_000)
    durations = []
    clock = time.perf_counter_ns
    for i in range(calls):
        t0 = clock()
        price(1.0 + i, 2.0)
        durations.append(clock() - t0)
    otel_monitor.shutdown()
    durations.sort()
    return statistics.median(durations) / 1e3, durations[int(len(durations) * 0.999)] / 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    stalled = StalledCollector()
    variants = {
        "no OTLP (reference)": None,
        "collector down (closed port)": f"http://127.0.0.1:{closed_port()}",
        "collector stalled (never answers)": f"http://127.0.0.1:{stalled.port}",
    }
    medians: dict[str, list[float]] = {name: [] for name in variants}
    tails: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        timed_round(os.path.join(tmp, "warm.db"), None, args.calls)  # imports, first store
        for r in range(args.rounds):
            for name, endpoint in variants.items():
                med, tail = timed_round(os.path.join(tmp, f"{r}-{len(medians[name])}.db"),
                                         endpoint, args.calls)
                medians[name].append(med)
                tails[name].append(tail)
    reference = statistics.median(medians["no OTLP (reference)"])
    print(f"{args.calls} calls x {args.rounds} rounds; OTLP exporter timeout 1000 ms")
    for name in variants:
        m = statistics.median(medians[name])
        print(f"  {name:36s} {m:7.2f} µs/call  x{m / reference:4.2f}  "
              f"p99.9 {statistics.median(tails[name]):8.1f} µs")


if __name__ == "__main__":
    main()
