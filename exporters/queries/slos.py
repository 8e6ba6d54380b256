"""SLIs and burn rates of SLOs, read from the per-minute call rollups (schema 8).

The SLO spec itself lives in ``otel_monitor.slo`` (what users write); this module takes
its fields as plain values (``Objective``), so ``exporters`` never imports
``otel_monitor``. Every count is weighted (``spans.weight`` summed by the writer into
``call_rollups``): with sampling, the SLIs are estimates of the true calls.

- availability: bad = failed calls (``errors``);
- latency: bad = calls slower than ``threshold_ms`` (``calls - b<i>``, ``b<i>`` the
  cumulative bucket of that bound: exact, never interpolated).

A window of ``w`` seconds ending at ``now`` reads the minutes that overlap it: from the
minute holding ``now - w`` to the current one (partial: calls written so far). So a
window is read at minute resolution: shorter windows (a 1-minute SLO's scaled alert
windows) read the current minute, and the one before while the window reaches into it.

Burn rate = the window's bad ratio / the error budget (``1 - objective/100``): 1.0 spends
the budget exactly over the SLO's window. A window without calls burns 0.

All windows of one SLO are one query: conditional sums over the longest window's
minutes, read through ``call_rollups_by_process`` / ``call_rollups_by_service``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

from ..columns import DURATION_BUCKETS_MS, ROLLUP_BUCKET_COLUMNS
from ..database import Database

MINUTE_NS = 60 * 10**9
SELECTORS = ("process", "process_group", "service")
KINDS = ("availability", "latency")
OK, TICKET, PAGE = "ok", "ticket", "page"

_WHERE = {
    "process": "process_id IN (SELECT id FROM processes WHERE name = :value)",
    "process_group": "process_id IN (SELECT id FROM processes WHERE process_group = :value)",
    "service": "service_name = :value",
}


@dataclass(frozen=True)
class Objective:
    """What the reads need of an SLO (``otel_monitor.slo.SLO`` has these fields)."""
    selector: str            # process | process_group | service
    value: str
    kind: str                # availability | latency
    objective: float         # percent, 0 < x < 100
    threshold_ms: float | None = None

    def __post_init__(self) -> None:
        if self.selector not in SELECTORS:
            raise ValueError(f"unknown selector {self.selector!r}")
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}")
        if self.kind == "latency" and self.threshold_ms not in DURATION_BUCKETS_MS:
            raise ValueError(f"threshold_ms {self.threshold_ms!r} is not a bucket bound")

    @property
    def budget(self) -> float:
        return 1.0 - self.objective / 100.0

    @property
    def bad(self) -> str:
        """The SQL of a rollup row's bad calls."""
        if self.kind == "availability":
            return "errors"
        bucket = ROLLUP_BUCKET_COLUMNS[DURATION_BUCKETS_MS.index(self.threshold_ms)]
        return f"max(calls - {bucket}, 0)"


@dataclass(frozen=True)
class WindowCounts:
    window_s: float
    calls: float             # weighted
    bad: float               # weighted

    def ratio(self) -> float:
        """The bad share (0 without calls)."""
        return self.bad / self.calls if self.calls > 0 else 0.0

    def sli(self) -> float | None:
        """The good share in percent (None without calls)."""
        return 100.0 * (1.0 - self.bad / self.calls) if self.calls > 0 else None

    def burn_rate(self, budget: float) -> float:
        return self.ratio() / budget


def first_minute(window_s: float, now_ns: int) -> int:
    """The first minute a window of ``window_s`` ending at ``now_ns`` reads."""
    return (now_ns - int(window_s * 1e9)) // MINUTE_NS


def window_counts(db: Database, objective: Objective, windows_s: Sequence[float], *,
                  now_ns: int | None = None) -> list[WindowCounts]:
    """(weighted calls, bad calls) over each window ending now, one query for all."""
    now = time.time_ns() if now_ns is None else now_ns
    if not windows_s:
        return []
    firsts = [first_minute(w, now) for w in windows_s]
    params: dict[str, Any] = {"value": objective.value, "first": min(firsts),
                              "last": now // MINUTE_NS}
    sums = []
    for i, first in enumerate(firsts):
        params[f"m{i}"] = first
        sums.append(f"coalesce(sum(CASE WHEN minute >= :m{i} THEN calls END), 0), "
                    f"coalesce(sum(CASE WHEN minute >= :m{i} THEN {objective.bad} END), 0)")
    row = db.execute(
        f"SELECT {', '.join(sums)} FROM call_rollups "
        f"WHERE {_WHERE[objective.selector]} AND minute >= :first AND minute <= :last",
        params)[0]
    return [WindowCounts(w, float(row[2 * i]), float(row[2 * i + 1]))
            for i, w in enumerate(windows_s)]


def explain(db: Database, objective: Objective) -> str:
    """The plan of ``window_counts`` (it reads an index of the rollups)."""
    rows = db.execute(
        f"EXPLAIN QUERY PLAN SELECT sum(calls) FROM call_rollups "
        f"WHERE {_WHERE[objective.selector]} AND minute >= :first AND minute <= :last",
        {"value": objective.value, "first": 0, "last": 1})
    return "\n".join(str(r[-1]) for r in rows)


def slo_status(db: Database, objective: Objective, window_s: float,
               rules: Sequence[tuple[str, float, float, float]], *,
               now_ns: int | None = None) -> dict[str, Any]:
    """An SLO now: its SLI over its window, the budget remaining, the burn rate over
    each alert window, which rules hold, and its state (``page`` when a page rule holds,
    else ``ticket`` when a ticket rule holds, else ``ok``). ``rules``: (severity,
    factor, long window s, short window s), as ``otel_monitor.slo.BurnRule``."""
    windows = [window_s]
    for _, _, long_s, short_s in rules:
        windows += [long_s, short_s]
    counts = window_counts(db, objective, windows, now_ns=now_ns)
    whole, budget = counts[0], objective.budget
    burn_rates, holding = [], []
    for i, (severity, factor, long_s, short_s) in enumerate(rules):
        long_c, short_c = counts[1 + 2 * i], counts[2 + 2 * i]
        long_rate, short_rate = long_c.burn_rate(budget), short_c.burn_rate(budget)
        holds = long_rate >= factor and short_rate >= factor
        if holds:
            holding.append(severity)
        burn_rates.append({"severity": severity, "factor": factor,
                           "long_window_s": long_s, "long_burn_rate": long_rate,
                           "long_calls": long_c.calls, "short_window_s": short_s,
                           "short_burn_rate": short_rate, "short_calls": short_c.calls,
                           "holds": holds})
    state = PAGE if PAGE in holding else TICKET if TICKET in holding else OK
    return {"sli": whole.sli(), "calls": whole.calls, "bad": whole.bad,
            "error_budget": budget,
            "budget_remaining": 1.0 - whole.burn_rate(budget),
            "burn_rates": burn_rates, "state": state}


__all__ = ["KINDS", "OK", "PAGE", "SELECTORS", "TICKET", "Objective", "WindowCounts",
           "explain", "first_minute", "slo_status", "window_counts"]
