"""The Errors tab: the error groups (``TraceQueries.error_groups``, with each one's 6-hour
sparkline) filtered by status (open by default), process and service, sorted by last
seen or count, listed again at every tick of the page; the actions on the selected group
(resolve, ignore, snooze 1 h / until tomorrow 07:00 / for N failures), which call the
server's ``GroupActions`` (the API's POST routes call the same: one read-write connection,
one ``on_resolved`` hook) and need the access token when one is set, checked here as the
API checks it; a click on a group's title (or "Open latest call") opens its latest call
in the drill-down (``om-open``). ``?error=<fingerprint>`` (callbacks/url.py) asks for
the tab with that group selected (``om-error-wanted``)."""
from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import flask
from dash import Dash, Input, Output, State, ctx, no_update
from dash.development.base_component import Component

from exporters.error_groups import IGNORED, RESOLVED, STATUSES
from exporters.errors import ConfigError, NotFound
from exporters.queries import TraceQueries

from ..api.auth import TOKEN_COOKIE, bearer_of, token_given
from ..group_actions import GroupActions
from ..instants import clamped_ns

FINGERPRINT = re.compile("[0-9a-f]{32}")
MAX_GROUPS = 500          # listed at most (the API's page limit)
SNOOZE_HOUR_S = 3600
MORNING_HOUR = 7          # "until tomorrow 07:00" (the browser's zone, or UTC)
MAX_OCCURRENCES = 1_000_000_000
SORTS = ("last_seen", "count")
TOKEN_REFUSED = ("refused: a valid access token is required (open the UI once with "
                 "?token=<token>)")

ACTIONS = {"om-errors-resolve": "resolve", "om-errors-ignore": "ignore",
           "om-errors-snooze-hour": "snooze 1 h",
           "om-errors-snooze-morning": "snooze until tomorrow 07:00",
           "om-errors-snooze-count": "snooze for N failures"}


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def group_rows(queries: TraceQueries, status: Any, process: Any, service: Any, sort: Any,
               *, now_ns: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """The grid's rows (each group with ``spark``: its counts per 5 minutes over 6 hours)
    and how many groups match. A status, or sort, of another value is the default."""
    now = time.time_ns() if now_ns is None else now_ns
    page = queries.error_groups(
        status=None if status == "all" else status if status in STATUSES else "open",
        process=_text(process), service=_text(service),
        sort=sort if sort in SORTS else "last_seen", limit=MAX_GROUPS, now_ns=now)
    groups = page["groups"]
    sparks = queries.error_sparklines([g["fingerprint"] for g in groups], now_ns=now)
    return [{**g, "spark": sparks[g["fingerprint"]]["counts"]} for g in groups], page["total"]


def choices(queries: TraceQueries, current: Any) -> tuple[list[dict], list[dict]]:
    """The process and service dropdowns' options: those of the groups (any status), and
    the value a dropdown shows even when it is not among them."""
    groups = queries.error_groups(limit=MAX_GROUPS)["groups"]
    processes = sorted({g["process"] for g in groups})
    services = sorted({s for g in groups for s in g["services"]})

    def options(names: list[str], value: Any) -> list[dict[str, str]]:
        if isinstance(value, str) and value and value not in names:
            names = [value, *names]
        return [{"label": n, "value": n} for n in names]

    return options(processes, current[0]), options(services, current[1])


def note(shown: int, total: int) -> str:
    if total == 0:
        return "no error group matches"
    more = f" (the first {shown})" if shown < total else ""
    return f"{total} error group{'s' if total != 1 else ''}{more}"


def selected_group(rows: Any) -> dict[str, Any] | None:
    """The selected row of the grid (``selectedRows``), if it is a group."""
    row = rows[0] if isinstance(rows, list) and rows else None
    if isinstance(row, dict) and isinstance(row.get("fingerprint"), str) \
            and FINGERPRINT.fullmatch(row["fingerprint"]):
        return row
    return None


def zone_of(name: Any, utc: Any) -> tzinfo:
    """UTC when the page shows UTC, else the browser's zone (an IANA name), else UTC."""
    if utc is True or not isinstance(name, str) or not name:
        return timezone.utc
    try:
        return ZoneInfo(name[:100])
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def tomorrow_at(now: datetime, hour: int = MORNING_HOUR) -> datetime:
    """``hour``:00 of the day after ``now``, in ``now``'s zone (wall-clock time, so a day
    with a DST change still ends at that hour)."""
    day = now.date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, tzinfo=now.tzinfo)


def token_ok(token: str | None) -> bool:
    """Whether the callback's request carries the access token (always, with none set):
    the API's check, on the same header and cookie."""
    if token is None:
        return True
    request = flask.request
    return token_given(token, bearer_of(request.headers.get("Authorization")),
                       request.cookies.get(TOKEN_COOKIE))


def act(actions: GroupActions, action: str, fingerprint: str, *, count: Any = None,
        zone: tzinfo = timezone.utc, now: datetime | None = None) -> dict[str, Any]:
    """One action (an ``ACTIONS`` value) on a group; returns it as stored after.
    ``ConfigError`` for a bad N, ``NotFound`` for a group no longer stored."""
    if action == "resolve":
        return actions.set_status(fingerprint, RESOLVED)
    if action == "ignore":
        return actions.set_status(fingerprint, IGNORED)
    if action == "snooze 1 h":
        return actions.snooze(fingerprint, for_s=SNOOZE_HOUR_S)
    if action == "snooze until tomorrow 07:00":
        moment = now.astimezone(zone) if now else datetime.now(zone)
        return actions.snooze(fingerprint, until_ns=clamped_ns(tomorrow_at(moment)))
    if isinstance(count, float) and count.is_integer():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int) \
            or not 1 <= count <= MAX_OCCURRENCES:
        raise ConfigError(f"N must be a whole number from 1 to {MAX_OCCURRENCES:,}")
    return actions.snooze(fingerprint, occurrences=count)


def describe(group: dict[str, Any]) -> str:
    status = group["status"]
    if status == "snoozed":
        if group.get("snooze_remaining") is not None:
            status += f" for {group['snooze_remaining']} more failures"
        elif group.get("snooze_until_ns") is not None:
            until = datetime.fromtimestamp(group["snooze_until_ns"] / 1e9, timezone.utc)
            status += f" until {until.isoformat(timespec='seconds').replace('+00:00', 'Z')}"
    return f"{group['title']}: {status}"


def latest_call(queries: TraceQueries, fingerprint: str) -> dict[str, str]:
    """What ``om-open`` gets for a group: its latest call still stored, else why not."""
    try:
        group = queries.error_group(fingerprint)
    except NotFound:
        return {"missing": f"no error group {fingerprint} in the store"}
    call = group.get("latest_call")
    if not call:
        return {"missing": f"the latest call of {group['title']} (span "
                           f"{group['last_span_id']}) is no longer in the store"}
    return {"span_id": call["span_id"]}


def register(app: Dash, queries: TraceQueries, actions: GroupActions,
             token: str | None, grid: Component | None = None) -> None:
    """``grid``: the tab's grid (layout.errors_grid), mounted when the tab is first shown
    (None: an app whose layout has it already)."""
    # The tabs: the Calls content, the Errors content or the SLOs content.
    app.clientside_callback(
        """function(tab) {
            var shown = tab === "errors" || tab === "slos" ? tab : "calls";
            return ["calls", "errors", "slos"].map(function(t) {
                return {display: t === shown ? "block" : "none"}; });
        }""",
        Output("om-calls-tab", "style"), Output("om-errors-tab", "style"),
        Output("om-slos-tab", "style"), Input("om-tabs", "active_tab"),
        # the layout's styles are the Calls tab's; a link naming a tab changes it
        prevent_initial_call=True)

    # The browser's zone, for "until tomorrow 07:00".
    app.clientside_callback(
        """function(_tab) {
            try { return Intl.DateTimeFormat().resolvedOptions().timeZone || null; }
            catch (err) { return null; }
        }""",
        Output("om-tz", "data"), Input("om-tabs", "active_tab"),
        prevent_initial_call=True)  # the Errors tab is shown by a change of tab

    # First/last seen in UTC or the browser's zone follow om-utc as the trace table's
    # times do (callbacks/table.py, the om-zone callback).

    # The grid is mounted (clientside) when the tab is first shown: a page opening on
    # the Calls tab does not create it on its first render. Once mounted it stays.
    # om-errors-mounted then fires list_groups, after the grid is in the page.
    if grid is not None:
        mounted = json.dumps(grid.to_plotly_json())
        app.clientside_callback(
            """function(tab, holder) {
                if (tab !== "errors" || holder) {
                    return [window.dash_clientside.no_update, window.dash_clientside.no_update];
                }
                return [%s, 1];
            }""" % mounted,
            Output("om-errors-holder", "children"), Output("om-errors-mounted", "data"),
            Input("om-tabs", "active_tab"), State("om-errors-holder", "children"),
            prevent_initial_call=True)  # the page opens on the Calls tab

    # The rows and the selection, from their stores into the grid (mounted by then:
    # list_groups fills them only while the tab is shown).
    app.clientside_callback(
        """function(rows, select) {
            var fired = (window.dash_clientside.callback_context.triggered || [])
                .map(function (t) { return t.prop_id; });
            var nu = window.dash_clientside.no_update;
            return [fired.indexOf("om-errors-rows.data") >= 0 ? (rows || []) : nu,
                    fired.indexOf("om-errors-select.data") >= 0 && select ? select : nu];
        }""",
        Output("om-errors-grid", "rowData"), Output("om-errors-grid", "selectedRows"),
        Input("om-errors-rows", "data"), Input("om-errors-select", "data"),
        prevent_initial_call=True)

    @app.callback(Output("om-errors-rows", "data"), Output("om-errors-note", "children"),
                  Output("om-errors-process", "options"),
                  Output("om-errors-service", "options"),
                  Output("om-errors-select", "data"),
                  Output("om-error-wanted", "data", allow_duplicate=True),
                  Input("om-tick", "n_intervals"), Input("om-tabs", "active_tab"),
                  Input("om-errors-status", "value"), Input("om-errors-process", "value"),
                  Input("om-errors-service", "value"), Input("om-errors-sort", "value"),
                  Input("om-errors-changed", "data"), Input("om-error-wanted", "data"),
                  Input("om-errors-mounted", "data"),
                  # not on load: the tab shown then is Calls, unless a link asks for this
                  # one (callbacks/url.py error_link), which fires this
                  prevent_initial_call=True)
    def list_groups(_n, tab, status, process, service, sort, _changed, wanted, _mounted):
        if tab != "errors":  # a hidden tab is listed when shown
            return (no_update,) * 6
        rows, total = group_rows(queries, status, process, service, sort)
        process_options, service_options = choices(queries, (process, service))
        select, keep = no_update, no_update
        if isinstance(wanted, str) and FINGERPRINT.fullmatch(wanted):
            # select the group asked for once it is listed; then forget the ask
            if any(r["fingerprint"] == wanted for r in rows):
                select, keep = {"ids": [wanted]}, None
        return rows, note(len(rows), total), process_options, service_options, select, keep

    # not on load: the layout's text is the one for no selection
    @app.callback(Output("om-errors-selected", "children"),
                  Input("om-errors-grid", "selectedRows", allow_optional=True),
                  prevent_initial_call=True)
    def show_selected(rows):
        group = selected_group(rows)
        return f"selected: {group['title']}" if group else "no group selected"

    @app.callback(Output("om-open", "data", allow_duplicate=True),
                  Input("om-errors-grid", "cellClicked", allow_optional=True),
                  Input("om-errors-open", "n_clicks"),
                  State("om-errors-grid", "selectedRows", allow_optional=True),
                  prevent_initial_call=True)
    def open_latest(cell, _clicks, rows):
        if ctx.triggered_id == "om-errors-grid":
            fp = cell.get("rowId") if isinstance(cell, dict) and \
                cell.get("colId") == "title" else None
        else:
            group = selected_group(rows)
            fp = group["fingerprint"] if group else None
        if not isinstance(fp, str) or not FINGERPRINT.fullmatch(fp):
            return no_update
        return latest_call(queries, fp)

    @app.callback(Output("om-errors-action-note", "children"),
                  Output("om-errors-changed", "data"),
                  *[Input(cid, "n_clicks") for cid in ACTIONS],
                  State("om-errors-grid", "selectedRows", allow_optional=True),
                  State("om-errors-snooze-n", "value"),
                  State("om-tz", "data"), State("om-utc", "value"),
                  State("om-errors-changed", "data"), prevent_initial_call=True)
    def change(*args):
        rows, count, zone, utc, changed = args[len(ACTIONS):]
        action = ACTIONS.get(ctx.triggered_id) if isinstance(ctx.triggered_id, str) else None
        if action is None or not any(args[:len(ACTIONS)]):
            return no_update, no_update
        group = selected_group(rows)
        if group is None:
            return "select a group first", no_update
        if not token_ok(token):
            return TOKEN_REFUSED, no_update
        try:
            after = act(actions, action, group["fingerprint"], count=count,
                        zone=zone_of(zone, utc))
        except (ConfigError, NotFound) as exc:
            return f"{action}: {exc}", no_update
        return describe(after), (changed if isinstance(changed, int) else 0) + 1
