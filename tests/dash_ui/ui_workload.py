"""The monitored functions the API tests record through the real decorator."""
from __future__ import annotations

from otel_monitor import monitor


@monitor("pricing")
def price(symbol: str, qty: int) -> float:
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


class Markup:
    """A value whose stored text (its repr) is exactly the given string."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


@monitor("reporting")
def render_markup(text: str) -> Markup:
    return Markup(text)
