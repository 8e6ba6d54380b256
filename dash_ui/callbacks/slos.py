"""The SLOs tab: each SLO the UI knows (``otel-monitor serve``: the settings' ``slo_file``;
an app embedding the UI: the SLOs it registered) with its SLI now over its window, the
error budget remaining, the burn rate over each alert window of its page and ticket
pairs, and its state (ok / ticket / page), listed again at every tick of the page while
the tab is shown. The rows are ``/api/slos``'s (``api.slos.slo_statuses``): the tab and
the API always agree."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from dash import Dash, Input, Output, html, no_update

from exporters.queries import TraceQueries

from .._theme import TOKENS
from ..api.slos import slo_statuses

STATE_COLOURS = {"ok": TOKENS["ok"], "ticket": TOKENS["stale"], "page": TOKENS["err"]}
HEADERS = ("SLO", "Selector", "Objective", "Window", "SLI now", "Budget left",
           "Burn rates (long / short window)", "State")


def _pct(value: float | None, digits: int = 3) -> str:
    return "no calls" if value is None else f"{value:.{digits}f}%"


def _objective(s: dict[str, Any]) -> str:
    if s["kind"] == "latency":
        return f"{s['objective']:g}% under {s['threshold_ms']:g} ms"
    return f"{s['objective']:g}% not failing"


def _burns(s: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for b in s["burn_rates"]:
        text = (f"{b['severity']} ≥{b['factor']:g}x: {b['long_burn_rate']:.2f}x over "
                f"{b['long_window']} / {b['short_burn_rate']:.2f}x over {b['short_window']}")
        out.append(html.Div(text, className="fw-bold" if b["holds"] else "text-muted",
                            **{"data-holds": "1" if b["holds"] else "0"}))
    return out


def slo_rows(statuses: Sequence[dict[str, Any]]) -> list[html.Tr]:
    rows = []
    for s in statuses:
        (key, value), = s["selector"].items()
        state = s["state"]
        rows.append(html.Tr([
            html.Td(s["name"], className="om-slo-name"),
            html.Td(f"{key}={value}"),
            html.Td(_objective(s)),
            html.Td(s["window"]),
            html.Td(_pct(s["sli"]), className="om-slo-sli"),
            html.Td(f"{s['budget_remaining']:.1%}", className="om-slo-budget"),
            html.Td(_burns(s)),
            html.Td(html.Span(state, className="badge om-slo-state",
                              style={"background": STATE_COLOURS[state]},
                              **{"data-state": state})),
        ], className="om-slo-row", **{"data-slo": s["name"]}))
    return rows


def register(app: Dash, queries: TraceQueries,
             slos: Callable[[], Sequence[Any]]) -> None:
    @app.callback(Output("om-slos-body", "children"), Output("om-slos-note", "children"),
                  Input("om-tick", "n_intervals"), Input("om-tabs", "active_tab"),
                  # not on load: the tab shown then is Calls, unless a link asks for this
                  # one (callbacks/url.py error_link), which fires this
                  prevent_initial_call=True)
    def list_slos(_n, tab):
        if tab != "slos":  # a hidden tab is listed when shown
            return no_update, no_update
        statuses = slo_statuses(queries, slos())
        if not statuses:
            return [], ("no SLO: name a YAML file of them in the setting slo_file "
                        "(OTEL_MONITOR_SLO_FILE), or register them with otel_monitor.slo()")
        paging = sum(s["state"] == "page" for s in statuses)
        ticket = sum(s["state"] == "ticket" for s in statuses)
        return slo_rows(statuses), (f"{len(statuses)} SLO(s): {paging} paging, "
                                    f"{ticket} ticket, burn rates from the per-minute "
                                    "rollups")
