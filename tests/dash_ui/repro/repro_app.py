"""A script (run as ``python repro_app.py``) that makes one failing call of each kind the
Reproduce snippet must re-run; two of them are its own (``__main__``) functions.

    python repro_app.py          # OTEL_MONITOR_DB (and OTEL_MONITOR_WEBHOOKS) from the caller
"""
from __future__ import annotations

import asyncio

import otel_monitor
from otel_monitor import monitor

import repro_targets as t


class QuoteRejected(Exception):
    pass


@monitor("repro")
def script_price(symbol: str, qty: int) -> float:
    raise QuoteRejected(f"{symbol}: quantity {qty} is over the desk limit")


@monitor("repro")
def script_total(prices: list) -> float:
    return sum(prices)


def _failing_calls():
    yield lambda: t.black_scholes(100.0, 95.0, -0.2)
    yield lambda: script_price("EURUSD", 5000)
    yield lambda: t.MarketDataClient("ebs", 2.0).fetch_quote("EURUSD", 12.5)
    yield lambda: t.MarketDataClient.for_venue("reuters")
    yield lambda: asyncio.run(t.fetch_curve("usd.ois", 40))
    yield lambda: list(t.ticks("AAPL", 5))
    yield lambda: t.on_qty("0")  # as Dash calls it on a request
    yield lambda: t.Session("ann").submit(42)


if __name__ == "__main__":
    script_total([1.5, 2.5])
    for make_call in _failing_calls():
        try:
            make_call()
        except Exception:
            pass
    otel_monitor.shutdown()
