"""SLOs: ``GET /api/slos`` — each SLO the server knows (``otel-monitor serve`` loads the
settings' ``slo_file``; an app embedding the UI shows the SLOs it registered) with, now:
its SLI over its window, the error budget remaining, the burn rate over each alert
window of its page and ticket pairs, and its state (``ok`` / ``ticket`` / ``page``).

Read from the store's per-minute rollups (``TraceQueries.slo_status``), the same
reads as the in-process burn-rate alerts (``otel_monitor.alerts.burn``), so the
API, the UI's SLOs tab and the alerts agree.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from fastapi import APIRouter, Request

from otel_monitor.slo import SLO, registered_slos, window_text

from .deps import Queries

router = APIRouter()

SloSource = Callable[[], Sequence[SLO]]


def slo_statuses(queries: Any, slos: Sequence[SLO], *, now_ns: int | None = None
                 ) -> list[dict[str, Any]]:
    """Each SLO's spec and status now (the API's answer; the SLOs tab shows it): now is
    the queries' clock (the wall clock unless a caller pinned it), one instant for all."""
    now = queries.clock() if now_ns is None else now_ns
    out = []
    for slo in slos:
        status = queries.slo_status(slo.target, slo.window_s, slo.rule_tuples, now_ns=now)
        for rate in status["burn_rates"]:
            rate["long_window"] = window_text(rate["long_window_s"])
            rate["short_window"] = window_text(rate["short_window_s"])
        out.append({**slo.as_dict(), **status})
    return out


def slo_source(request: Request) -> SloSource:
    return getattr(request.app.state, "slos", None) or registered_slos


@router.get("/api/slos", summary="SLOs now: SLI over the window, error budget remaining, "
                                 "burn rate per alert window, state (ok / ticket / page)")
def slos(queries: Queries, request: Request) -> list[dict[str, Any]]:
    return slo_statuses(queries, slo_source(request)())
