"""The calls the browser tests look at, recorded by the real decorator in a process of
its own (so the feeds it declares never leak into the test process):

    python -m e2e_workload DB pricing|risk|flood

``pricing`` and ``risk`` run as two services (OTEL_SERVICE_NAME is set by the caller);
``flood`` waits for "go" on stdin, then calls far faster than a locked store drains."""
from __future__ import annotations

import sys
import threading
import time

from e2e_support import FAILING_BOOKS, SCRIPT

import otel_monitor
from otel_monitor import feed, monitor


@monitor("pricing")
def quote(symbol: str, qty: int) -> float:
    return fee(qty) + 100.0 * qty


@monitor("pricing")
def fee(qty: int) -> float:
    return 0.5 * qty


@monitor("risk")
def check_limit(book: str, limit: int) -> str:
    if limit < 0:
        raise ValueError(f"negative limit for {book}")
    return "ok"


@monitor("reporting")
def render(note: str) -> str:
    return note


@feed("fx.fresh", interval_s=3600)
def on_fx_tick(qty: int) -> float:
    return quote("EURUSD", qty)


@feed("rates.stale", interval_s=0.2)   # ticked once: stale 0.4 s later
def on_rates_tick() -> str:
    return check_limit("rates", 1)


@monitor("flood")
def flood(i: int) -> int:
    return i


def pricing() -> None:
    for qty in range(1, 21):
        quote("AAPL", qty)
    on_fx_tick(7)


def risk() -> None:
    for book in FAILING_BOOKS:
        check_limit(book, 5)
        try:
            check_limit(book, -1)
        except ValueError:
            pass
    render(SCRIPT)
    on_rates_tick()


def flood_when_told() -> None:
    """One call written (the store is open); on "go", calls in bursts, far faster than a
    locked store drains, until the next line; then idles (its queue full) until the
    caller is done with it."""
    flood(-1)
    assert otel_monitor.force_flush(10)
    print("ready", flush=True)
    sys.stdin.readline()
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    i = 0
    while not stop.is_set():
        for _ in range(500):
            flood(i)
            i += 1
        time.sleep(0.005)
    print(f"stopped after {i} calls", flush=True)
    stop.clear()
    sys.stdin.readline()


def main(argv: list[str]) -> None:
    db, part = argv[0], argv[1]
    otel_monitor.configure(db_path=db, flush_interval_s=0.05,
                           **({"queue_size": 6_000} if part == "flood" else {}))
    if part == "flood":
        flood_when_told()
        return
    {"pricing": pricing, "risk": risk}[part]()
    assert otel_monitor.force_flush(10)
    otel_monitor.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
