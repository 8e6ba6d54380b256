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


def _num(value: Any) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"


def _seconds(value: Any) -> str:
    return f"{value:.3g} s" if isinstance(value, (int, float)) else "—"


def explain(name: str, badge: dict[str, Any]) -> str:
    """A badge's hover text: what it measures, its amber and red thresholds, the value's
    age."""
    about = badge.get("about") or ""
    unit = " " + badge["unit"] if badge.get("unit") else ""
    if name == "LastFeedUpdate":
        if not badge.get("feed"):
            return f"{name}: {about}. No feed has been declared."
        amber, red = badge.get("thresholds") or (None, None)
        fa, fr = badge.get("factors") or (None, None)
        interval = badge.get("interval_s")
        basis = (f"its interval {_seconds(interval)}" if interval
                 else "its stale threshold (no interval declared)")
        age = badge.get("value")
        return (f"{name}: {about}. Feed {badge['feed']}, {basis}: amber past "
                f"{_seconds(amber)} ({_num(fa)}x), red past {_seconds(red)} ({_num(fr)}x). "
                + ("Never updated." if age is None else f"Last update {_seconds(age)} ago.")
                + (" Closed: outside its hours, never stale."
                   if badge.get("level") == "closed" else ""))
    if name == "SelfHealth":
        bad = [c for c in badge.get("conditions", []) if c["bad"]]
        now = ("Now bad: " + "; ".join(f"{c['name']} ({c['measured']}, {c['where']})"
                                       for c in bad) + "." if bad else "All good.")
        return (f"{name}: {about}. Red when any of: "
                + "; ".join(f"{rule}" for rule in (badge.get("rules") or {}).values())
                + f". {now}")
    amber, red = badge.get("thresholds") or (None, None)
    age = badge.get("age_s")
    return (f"{name}: {about}. Amber from {_num(amber)}{unit}, red from {_num(red)}{unit}. "
            + ("No exporting process has reported yet." if age is None
               else f"Measured {_seconds(age)} ago."))


def badges(health: dict[str, Any]) -> list[Any]:
    out = []
    for name, badge in health["badges"].items():
        out.append(dbc.Badge(f"{name}: {_fmt(badge)}", id=f"om-badge-{name}",
                             className=f"om-level-{badge['level']}",
                             style={"backgroundColor": LEVEL_COLOURS[badge["level"]],
                                    "cursor": "help"},
                             color="none", title=explain(name, badge)))
    errors = health["errors_last_5_min"]
    out.append(dbc.Badge(f"errors (5 min): {errors}", id="om-badge-errors", color="none",
                         style={"backgroundColor": TOKENS["err"] if errors else TOKENS["ok"],
                                "cursor": "help"},
                         title="Calls that raised in the last 5 minutes, in every process: "
                               "red from the first one."))
    return out


def banner(raised: list[dict[str, Any]]) -> list[Any]:
    """One alert per raised flag (the backpressure flag is the one the exporter raises)."""
    return [dbc.Alert(f"{str(b['name']).capitalize()}: "
                      f"{b.get('message') or 'spans are being dropped or delayed'} "
                      f"({b.get('host', '?')}:{b.get('pid', '?')})",
                      color="danger", className="my-1 py-1") for b in raised]


def recording_banner(health: dict[str, Any]) -> list[Any]:
    """A red "Recording stopped" banner per live process that reports recording off or
    has stopped reporting (``TraceQueries.health``'s ``recording_stopped``)."""
    out = []
    for r in health.get("recording_stopped", []):
        why = ("reports recording off" if r.get("recording") == 0
               else f"has not reported for {r['age_s']:,.0f} s")
        out.append(html.Div(
            f"Recording stopped: {r.get('service_name') or 'process'} "
            f"({r.get('host') or '?'}:{r['pid']}) {why}",
            className="om-recording-stopped my-1 py-1 px-2 rounded",
            style={"backgroundColor": TOKENS["err"], "color": TOKENS["bg"]}))
    return out


def register(app: Dash, queries: TraceQueries) -> None:
    # One request a tick (and on load) for the badges, the banners and the recording
    # banner: one health read.
    @app.callback(Output("om-ribbon", "children"), Output("om-banner", "children"),
                  Output("om-recording", "children"), Input("om-tick", "n_intervals"))
    def refresh_ribbon(_n):
        health = queries.health()
        return badges(health), banner(queries.banners()), recording_banner(health)
