"""A small application for the OTLP tests, run as its own process (a fresh tracer
provider, so OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES apply): monitored calls
with ``otel_span=True``, nested, one failing. Configured from the environment
(OTEL_MONITOR_DB, OTEL_EXPORTER_OTLP_*), plus ``--endpoint`` / ``--protocol`` given to
``configure``. ``--generators``: also monitored generators (run to the end past the
yield bound, closed early, raising; an async one). Prints ``{"calls": N}`` once
recording is shut down (flushed)."""
from __future__ import annotations

import argparse
import json

from opentelemetry import trace

import otel_monitor
from otel_monitor import monitor


@monitor("pricing", otel_span=True)
def price(symbol: str, qty: int, rate: float) -> float:
    return round(qty * rate, 2)


@monitor("orders", otel_span=True)
def place(symbol: str, qty: int, urgent: bool = False) -> dict:
    if qty < 0:
        raise ValueError(f"negative quantity {qty}")
    return {"symbol": symbol, "value": price(symbol, qty, 1.5)}


@monitor("streams", otel_span=True)
def rows(n: int, fail: bool = False):
    for i in range(n):
        yield {"i": i, "half": i / 2} if i % 2 else f"row-{i}"
    if fail:
        raise LookupError(f"row {n} missing")
    return n


@monitor("streams", otel_span=True)
async def ticks(n: int):
    for i in range(n):
        yield i * 1.5


def generators() -> int:
    """Monitored generators' calls: the number made."""
    import asyncio

    assert len(list(rows(13))) == 13  # past the bound of 10 yields kept
    early = rows(8)
    next(early), next(early), next(early)
    early.close()
    try:
        list(rows(2, fail=True))
    except LookupError:
        pass

    async def consume():
        return [x async for x in ticks(3)]
    asyncio.run(consume())
    return 4


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint")
    parser.add_argument("--protocol")
    parser.add_argument("--orders", type=int, default=5)
    parser.add_argument("--generators", action="store_true")
    args = parser.parse_args()
    otel_monitor.configure(otlp_endpoint=args.endpoint, otlp_protocol=args.protocol)
    calls = 0
    for i in range(args.orders):
        place("AAPL" if i % 2 else "MSFT", i, urgent=i == 0)
        calls += 2
    try:
        place("TSLA", -1)
    except ValueError:
        calls += 1
    if args.generators:
        calls += generators()
    # OTLP first, so the last health row counts every span exported; then SQLite.
    trace.get_tracer_provider().force_flush()
    otel_monitor.shutdown()
    print(json.dumps({"calls": calls}), flush=True)


if __name__ == "__main__":
    main()
