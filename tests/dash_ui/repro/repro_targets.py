"""Functions of every kind the Reproduce snippet must re-run, each failing with its own
exception and message (imported by ``repro_app.py``, which calls them)."""
from __future__ import annotations

from dataclasses import dataclass

from dash import Dash, Input, Output, html

from otel_monitor import monitor


class StaleQuoteError(Exception):
    pass


@monitor("repro")
def black_scholes(spot: float, strike: float, vol: float) -> float:
    if vol <= 0:
        raise ValueError(f"vol must be positive, got {vol}")
    return spot - strike


@dataclass
class MarketDataClient:
    venue: str
    max_age_s: float

    @monitor("repro")
    def fetch_quote(self, symbol: str, age_s: float) -> float:
        if age_s > self.max_age_s:
            raise StaleQuoteError(f"{symbol} quote from {self.venue} is {age_s} s old "
                                  f"(max {self.max_age_s})")
        return 1.0

    @classmethod
    @monitor("repro")
    def for_venue(cls, venue: str) -> "MarketDataClient":
        raise KeyError(f"no client configured for {venue}")


class Session:
    """An instance whose repr cannot be evaluated: the snippet must stop at SELF."""

    def __init__(self, user: str) -> None:
        self.user = user

    @monitor("repro")
    def submit(self, order_id: int) -> None:
        raise PermissionError(f"{self.user} may not submit order {order_id}")


@monitor("repro")
async def fetch_curve(name: str, points: int) -> list[float]:
    if points > 10:
        raise OverflowError(f"curve {name} has only 10 points, asked for {points}")
    return [0.0] * points


@monitor("repro")
def ticks(symbol: str, n: int):
    for i in range(n):
        if i == 3:
            raise RuntimeError(f"tick {i} of {symbol} is missing")
        yield i


app = Dash(__name__)
app.layout = html.Div([html.Div(id="qty"), html.Div(id="out")])


@app.callback(Output("out", "children"), Input("qty", "children"))
@monitor("repro")
def on_qty(qty: str) -> str:
    return f"{1000 // int(qty)} lots"
