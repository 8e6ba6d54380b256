"""Status ribbon: QueueDepth, SQLiteWriteLag, LastFeedUpdate badges coloured by level,
errors in the last 5 min, and the backpressure banner."""
from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, html

from exporters.queries import TraceQueries

from .._theme import LEVEL_COLOURS, TOKENS


def _fmt(badge: dict[str, Any]) -> str:
    value = badge.get("value")
    if value is None:
        return "—"
    text = f"{value:,.0f}" if isinstance(value, int) else f"{value:,.1f}"
    return text + (" " + badge["unit"] if badge.get("unit") else "")


def badges(health: dict[str, Any]) -> list[Any]:
    out = []
    for name, badge in health["badges"].items():
        out.append(dbc.Badge(f"{name}: {_fmt(badge)}", id=f"om-badge-{name}",
                             className=f"om-level-{badge['level']}",
                             style={"backgroundColor": LEVEL_COLOURS[badge["level"]]},
                             color="none"))
    errors = health["errors_last_5_min"]
    out.append(dbc.Badge(f"errors (5 min): {errors}", id="om-badge-errors", color="none",
                         style={"backgroundColor": TOKENS["err"] if errors else TOKENS["ok"]}))
    return out


def banner(raised: list[dict[str, Any]]) -> list[Any]:
    """One alert per raised flag (the backpressure flag is the one the exporter raises)."""
    return [dbc.Alert(f"{str(b['name']).capitalize()}: "
                      f"{b.get('message') or 'spans are being dropped or delayed'} "
                      f"({b.get('host', '?')}:{b.get('pid', '?')})",
                      color="danger", className="my-1 py-1") for b in raised]


def register(app: Dash, queries: TraceQueries) -> None:
    @app.callback(Output("om-ribbon", "children"), Output("om-banner", "children"),
                  Input("om-tick", "n_intervals"))
    def refresh_ribbon(_n):
        return badges(queries.health()), banner(queries.banners())
