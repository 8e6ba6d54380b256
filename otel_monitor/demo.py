"""The workload behind ``otel-monitor demo``: an equity-options risk desk, instrumented.

Each cycle the desk

1. refreshes FX rates concurrently (``async``: ``refresh_fx_rates`` gathers one
   ``fetch_fx_rate`` per pair);
2. streams a quote per underlying from its market-data vendor (the generator
   ``stream_quotes`` calls ``fetch_quote``, whose ``api_key`` is masked by default);
3. runs risk on the book: ``run_risk`` -> ``price_position`` for each position ->
   ``black_scholes`` (the first two are OpenTelemetry spans, ``otel_span=True``);
4. checks limits and publishes a report.

Market data arrives as feeds: ``bbg.fx`` and ``bbg.equities`` tick each cycle
through their ``@feed`` handlers (which call ``refresh_fx_rates`` and
``stream_quotes``: edges of the dependency graph), and ``refinitiv.rates``, the
discount curve ``black_scholes`` declares it reads, ticks once a second with
``tick()`` but goes silent for ``RATES_OUTAGE_FOR_S`` every
``RATES_OUTAGE_EVERY_S`` (first after ``RATES_OUTAGE_FIRST_S``): stale past its
10 s threshold, then updating again, so the feed-lag alert fires and resolves.

Things go wrong as they do on a real desk, in about 1.5% of calls: a vendor
snapshot is too old (``fetch_quote`` raises ``StaleQuoteError``; the stream falls
back to the last good quote) or comes without an implied vol (``black_scholes``
raises, up through ``price_position`` and ``run_risk`` to the driver loop, which
drops that cycle and carries on).

Pure stdlib and otel_monitor: no UI packages.
"""
from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from . import feed, monitor, tick

# A made-up vendor key: the demo shows it never reaches the store in clear.
VENDOR_API_KEY = "sk-live-demo-7c1e4b2a9f03"

# Underlying -> (currency, spot, implied vol)
UNDERLYINGS = {
    "AAPL": ("USD", 190.0, 0.24),
    "ASML": ("EUR", 680.0, 0.33),
    "7203.T": ("JPY", 2800.0, 0.27),
    "HSBA.L": ("GBP", 6.50, 0.21),
}
# Currency -> (FX pair, USD per unit of the pair's quote, whether to invert)
FX_PAIRS = {"EUR": ("EURUSD", 1.08, False), "JPY": ("USDJPY", 151.0, True),
            "GBP": ("GBPUSD", 1.27, False)}
RATE = 0.04                 # flat discount rate
MAX_QUOTE_AGE_S = 1.0       # older vendor snapshots are refused
MEAN_QUOTE_AGE_S = 0.35     # so about 1 fetch in 18 is stale
P_MISSING_VOL = 0.015       # a quote without an implied vol
DELTA_LIMIT_USD = 250_000.0

FX_FEED, EQUITY_FEED, RATES_FEED = "bbg.fx", "bbg.equities", "refinitiv.rates"
RATES_INTERVAL_S = 1.0
RATES_OUTAGE_FIRST_S = 40.0   # the rates feed first goes silent this long after the start,
RATES_OUTAGE_EVERY_S = 90.0   # then again every this long,
RATES_OUTAGE_FOR_S = 20.0     # for this long (past the default 10 s stale threshold)

feed(RATES_FEED, interval_s=RATES_INTERVAL_S)  # declared here, ticked with tick()


def rates_silent(elapsed_s: float, first_s: float = RATES_OUTAGE_FIRST_S,
                 every_s: float = RATES_OUTAGE_EVERY_S, for_s: float = RATES_OUTAGE_FOR_S) -> bool:
    """Whether the rates feed is in one of its outages ``elapsed_s`` after the start."""
    return elapsed_s >= first_s and (elapsed_s - first_s) % every_s < for_s


class StaleQuoteError(RuntimeError):
    """The vendor's snapshot of an underlying is older than the desk accepts."""


@dataclass(frozen=True)
class Quote:
    symbol: str
    bid: float
    ask: float
    vol: float | None
    age_s: float

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True)
class Position:
    symbol: str
    kind: str        # "call" | "put"
    strike: float
    expiry_y: float
    quantity: int    # contracts of 100


class Book:
    def __init__(self, name: str, positions: list[Position]) -> None:
        self.name = name
        self.positions = positions

    def __repr__(self) -> str:
        return f"Book({self.name!r}, {len(self.positions)} positions)"


@dataclass(frozen=True)
class PositionRisk:
    symbol: str
    pv_usd: float
    delta_usd: float


@dataclass(frozen=True)
class RiskResult:
    book: str
    pv_usd: float
    delta_usd: dict[str, float]


class MarketDataClient:
    """The vendor's API, simulated: spots follow a random walk between cycles."""

    def __init__(self, rng: random.Random, vendor: str = "SIM") -> None:
        self.vendor = vendor
        self._rng = rng
        self._spots = {s: spot for s, (_, spot, _) in UNDERLYINGS.items()}
        self._fx = {pair: level for pair, level, _ in FX_PAIRS.values()}
        self._last_good: dict[str, Quote] = {}

    def __repr__(self) -> str:
        return f"MarketDataClient(vendor={self.vendor!r})"

    def advance(self, dt_s: float) -> None:
        """Move the simulated market on by ``dt_s`` seconds (not monitored)."""
        g = self._rng.gauss
        scale = math.sqrt(max(dt_s, 1e-3) / (252 * 6.5 * 3600))  # one trading year
        for s, (_, _, vol) in UNDERLYINGS.items():
            self._spots[s] *= math.exp(vol * scale * g(0, 1))
        for pair in self._fx:
            self._fx[pair] *= math.exp(0.08 * scale * g(0, 1))

    @monitor("marketdata")
    def fetch_quote(self, symbol: str, api_key: str) -> Quote:
        rng = self._rng
        age = rng.expovariate(1 / MEAN_QUOTE_AGE_S)
        if age > MAX_QUOTE_AGE_S:
            raise StaleQuoteError(f"{symbol}: vendor snapshot is {age:.2f} s old "
                                  f"(limit {MAX_QUOTE_AGE_S} s)")
        mid = self._spots[symbol]
        half_spread = mid * 0.0002
        vol = None if rng.random() < P_MISSING_VOL else UNDERLYINGS[symbol][2]
        return Quote(symbol, round(mid - half_spread, 4), round(mid + half_spread, 4), vol,
                     round(age, 3))

    @monitor("marketdata")
    def stream_quotes(self, symbols: list[str], api_key: str) -> Iterator[tuple[str, Quote]]:
        """One quote per symbol; a stale snapshot falls back to the last good quote."""
        for symbol in symbols:
            try:
                quote = self.fetch_quote(symbol, api_key)
            except StaleQuoteError:
                quote = self._last_good.get(symbol)
                if quote is None:
                    continue
            else:
                self._last_good[symbol] = quote
            yield symbol, quote

    @monitor("marketdata")
    async def fetch_fx_rate(self, pair: str) -> float:
        await asyncio.sleep(self._rng.uniform(0.0002, 0.001))  # the vendor's latency
        return round(self._fx[pair], 5)

    @monitor("marketdata")
    async def refresh_fx_rates(self, pairs: list[str]) -> dict[str, float]:
        rates = await asyncio.gather(*(self.fetch_fx_rate(p) for p in pairs))
        return dict(zip(pairs, rates))

    @feed(FX_FEED, interval_s=0.25)
    def on_fx_snapshot(self, pairs: list[str]) -> dict[str, float]:
        """The FX feed's tick handler: one snapshot of every pair."""
        return asyncio.run(self.refresh_fx_rates(pairs))

    @feed(EQUITY_FEED, interval_s=0.25)
    def on_quotes(self, symbols: list[str], api_key: str) -> dict[str, Quote]:
        """The equity feed's tick handler: a quote per underlying."""
        return dict(self.stream_quotes(symbols, api_key))


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _d1(spot: float, strike: float, vol: float, t: float, rate: float) -> float:
    return (math.log(spot / strike) + (rate + 0.5 * vol * vol) * t) / (vol * math.sqrt(t))


@monitor("pricing", feeds=(RATES_FEED,))
def black_scholes(spot: float, strike: float, vol: float | None, t: float, rate: float,
                  kind: str = "call") -> float:
    """Price of a European option."""
    if vol is None or vol <= 0:
        raise ValueError(f"implied vol must be > 0, got {vol!r}")
    d1 = _d1(spot, strike, vol, t, rate)
    d2 = d1 - vol * math.sqrt(t)
    df = math.exp(-rate * t)
    if kind == "call":
        return spot * _norm_cdf(d1) - strike * df * _norm_cdf(d2)
    return strike * df * _norm_cdf(-d2) - spot * _norm_cdf(-d1)


def usd_per_unit(currency: str, fx: dict[str, float]) -> float:
    if currency == "USD":
        return 1.0
    pair, _, inverted = FX_PAIRS[currency]
    return 1.0 / fx[pair] if inverted else fx[pair]


@monitor("pricing", otel_span=True)
def price_position(position: Position, quote: Quote, usd_rate: float) -> PositionRisk:
    spot = quote.mid
    price = black_scholes(spot, position.strike, quote.vol, position.expiry_y, RATE,
                          position.kind)
    call_delta = _norm_cdf(_d1(spot, position.strike, quote.vol, position.expiry_y, RATE))
    delta = call_delta if position.kind == "call" else call_delta - 1.0
    units = position.quantity * 100
    return PositionRisk(position.symbol, round(price * units * usd_rate, 2),
                        round(delta * spot * units * usd_rate, 2))


@monitor("risk", otel_span=True)
def run_risk(book: Book, quotes: dict[str, Quote], fx: dict[str, float]) -> RiskResult:
    pv = 0.0
    delta: dict[str, float] = {}
    for position in book.positions:
        currency = UNDERLYINGS[position.symbol][0]
        risk = price_position(position, quotes[position.symbol], usd_per_unit(currency, fx))
        pv += risk.pv_usd
        delta[risk.symbol] = round(delta.get(risk.symbol, 0.0) + risk.delta_usd, 2)
    return RiskResult(book.name, round(pv, 2), delta)


@monitor("risk")
def check_limits(result: RiskResult, delta_limit_usd: float) -> list[str]:
    return [f"{symbol} delta {d:+,.0f} USD over {delta_limit_usd:,.0f}"
            for symbol, d in result.delta_usd.items() if abs(d) > delta_limit_usd]


@monitor("reporting", otel_span=True)
def publish_report(result: RiskResult, breaches: list[str]) -> str:
    net_delta = sum(result.delta_usd.values())
    return (f"{result.book}: PV {result.pv_usd:,.0f} USD, net delta {net_delta:+,.0f} USD, "
            f"{len(breaches)} limit breach(es)")


def make_book(rng: random.Random, name: str = "EQ-VOL", size: int = 8) -> Book:
    positions = []
    symbols = list(UNDERLYINGS)
    for i in range(size):
        symbol = symbols[i % len(symbols)]
        spot = UNDERLYINGS[symbol][1]
        positions.append(Position(symbol, rng.choice(("call", "put")),
                                  round(spot * rng.uniform(0.85, 1.15), 2),
                                  round(rng.uniform(0.1, 2.0), 2),
                                  rng.choice((-1, 1)) * rng.randint(5, 40)))
    return Book(name, positions)


class RiskDesk:
    """One desk's market data, book and risk cycle."""

    def __init__(self, seed: int | None = None, api_key: str = VENDOR_API_KEY,
                 rates_silent: Callable[[float], bool] = rates_silent) -> None:
        self.rng = random.Random(seed)
        self.market = MarketDataClient(self.rng)
        self.book = make_book(self.rng)
        self.api_key = api_key
        self.symbols = list(UNDERLYINGS)
        self.fx_pairs = [pair for pair, _, _ in FX_PAIRS.values()]
        # Monitored calls in a cycle that goes through (one that fails makes fewer).
        self.calls_per_cycle = ((1 + len(self.fx_pairs)) + (1 + len(self.symbols))
                                + (1 + 2 * len(self.book.positions)) + 2)
        self._last_cycle = self._started = time.monotonic()
        self._rates_silent = rates_silent
        self._next_rates_tick = 0.0

    def cycle(self) -> str:
        """One risk cycle; returns the published report line. Raises what the desk raises."""
        now = time.monotonic()
        self.market.advance(now - self._last_cycle)
        self._last_cycle = now
        self._tick_rates(now)
        fx = self.market.on_fx_snapshot(self.fx_pairs)
        quotes = self.market.on_quotes(self.symbols, self.api_key)
        result = run_risk(self.book, quotes, fx)
        return publish_report(result, check_limits(result, DELTA_LIMIT_USD))

    def _tick_rates(self, now: float) -> None:
        """The discount curve updates once a second, except during its outages."""
        if now >= self._next_rates_tick and not self._rates_silent(now - self._started):
            tick(RATES_FEED)
            self._next_rates_tick = now + RATES_INTERVAL_S


def run(desk: RiskDesk, *, rate: float, duration_s: float | None = None,
        stop: threading.Event | None = None, progress: Callable[[], None] | None = None,
        progress_every_s: float = 5.0) -> tuple[int, int]:
    """Run cycles at about ``rate`` monitored calls per second until ``duration_s`` has
    passed or ``stop`` is set (Ctrl-C propagates). A cycle that raises is dropped and
    the next one runs. ``progress`` is called every ``progress_every_s``.
    Returns (cycles run, cycles that raised)."""
    stop = stop or threading.Event()
    interval = desk.calls_per_cycle / rate
    start = next_cycle = next_progress = time.monotonic()
    next_progress += progress_every_s
    deadline = None if duration_s is None else start + duration_s
    cycles = failed = 0
    while not stop.is_set():
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            break
        if progress is not None and now >= next_progress:
            progress()
            next_progress += progress_every_s
        try:
            desk.cycle()
        except Exception:  # what a real desk logs and alerts on; the UI shows it as ERR
            failed += 1
        cycles += 1
        next_cycle += interval
        delay = next_cycle - time.monotonic()
        if delay > 0:
            if deadline is not None:
                delay = min(delay, deadline - time.monotonic())
            stop.wait(max(delay, 0.0))
        elif delay < -1.0:  # far behind (a slow machine): do not burst to catch up
            next_cycle = time.monotonic()
    return cycles, failed
