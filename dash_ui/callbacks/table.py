"""The trace table: the grid's infinite row model asks for blocks (startRow/endRow,
sortModel); each is one TraceQueries.page with the filters as SQL parameters. A page
sorted within a bounded window of calls says so in the note under the grid. What the
browser sends is checked here: a request of another shape gets the first block, a date
that is not one sets no bound (one past what the store holds is held within it)."""
from __future__ import annotations

import json
import re
import time
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any, Callable

from dash import Dash, Input, Output, State, no_update
from dash.development.base_component import Component

from exporters.queries import SORTS, RowFilter, TraceQueries

from ..instants import MAX_NS, clamped_ns, wall_clock, zone_of

MAX_BLOCK = 1_000
MAX_ROW = 1_000_000  # the deepest row asked for, as the API's offset

# grid colId -> TraceQueries sort key (without the direction)
SORT_KEYS = {"timestamp": "timestamp", "process": "process", "status": "status",
             "duration_ms": "duration_ms"}


def _day_ns(value: Any, plus_days: int = 0) -> int | None:
    """Midnight (UTC) of the picker's day, ``plus_days`` later, in ns; None for no day."""
    if not isinstance(value, str):
        return None
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        return None
    try:
        return clamped_ns(datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
                          + timedelta(days=plus_days))
    except OverflowError:  # past year 9999
        return MAX_NS


# The time filter's presets: the last so many seconds, up to now (each block asks anew,
# so the window follows now); "live" (no preset) is no time bound unless dates are set.
PRESETS = {"5m": 300, "15m": 900, "1h": 3_600, "6h": 21_600}
PRESET_LABELS = {"live": "live (follows now)", "5m": "last 5 min", "15m": "last 15 min",
                 "1h": "last 1 h", "6h": "last 6 h"}
CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.(\d{1,6}))?)?")


def clock_s(value: Any) -> float | None:
    """A time of day (``HH:MM``, ``HH:MM:SS`` or with a fraction) in seconds, else None."""
    m = CLOCK.fullmatch(value.strip()) if isinstance(value, str) else None
    if not m:
        return None
    h, mi, sec, frac = m.groups()
    return int(h) * 3600 + int(mi) * 60 + int(sec or 0) + float("0." + (frac or "0"))


def _instant_ns(day: Any, clock: Any, end: bool, zone: tzinfo = timezone.utc
                ) -> int | None:
    """The picker's day at ``clock`` on the clocks of ``zone`` (the browser's, or UTC:
    the UTC switch); without a time, the whole UTC day: its start (or, for the end of
    the range, the next day's: the end day is included)."""
    seconds = clock_s(clock)
    if seconds is None:
        return _day_ns(day, 1 if end else 0)
    if _day_ns(day) is None:
        return None
    return clamped_ns(wall_clock(date.fromisoformat(day[:10]), seconds, zone))


def _row(value: Any, default: int) -> int:
    """A row index of the grid's request: a whole number, held within 0..MAX_ROW."""
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return min(max(value, 0), MAX_ROW)


def start_row(request: Any) -> int:
    return _row(request.get("startRow"), 0) if isinstance(request, dict) else 0


def _text(value: Any) -> str | None:
    """A filter's text, None for none (or a value that is not text)."""
    return value.strip() or None if isinstance(value, str) else None


def row_filter(start_date, end_date, process, data, errors_only, service=None, last=None,
               time_from=None, time_to=None, zone=None, now_ns: int | None = None
               ) -> RowFilter:
    """The grid's filters. ``last`` (a PRESETS key): the calls since that long before
    ``now_ns`` (the dates are then not used); else the dates, each at its time of day
    when one is given, read on the clocks of ``zone`` (the om-zone store: the browser's
    zone by name, or "UTC", as the Timestamp cells are shown; UTC for none)."""
    if isinstance(last, str) and last in PRESETS:
        now = time.time_ns() if now_ns is None else now_ns
        since, until = now - PRESETS[last] * 1_000_000_000, None
    else:
        tz = zone_of(zone)
        since, until = (_instant_ns(start_date, time_from, False, tz),
                        _instant_ns(end_date, time_to, True, tz))
    return RowFilter(since_ns=since, until_ns=until,
                     process=process if isinstance(process, str) and process else None,
                     data=_text(data), errors_only=bool(errors_only),
                     service=service if isinstance(service, str) and service else None)


def sort_key(sort_model: Any) -> str:
    for s in sort_model if isinstance(sort_model, list) else []:
        column = s.get("colId") if isinstance(s, dict) else None
        key = SORT_KEYS.get(column) if isinstance(column, str) else None
        if key:
            key = ("-" if s.get("sort") == "desc" else "") + key
            if key in SORTS:
                return key
    return "-timestamp"


def block(queries: TraceQueries, request: Any, f: RowFilter
          ) -> tuple[dict[str, Any], str | None]:
    """The grid's block and the page's note (None when the block is in exact order)."""
    return _block(queries.page, queries.count_rows, request, f)


def call_block(queries: TraceQueries, request: Any, f: RowFilter
               ) -> tuple[dict[str, Any], str | None]:
    """The calls grid's block (one row per call) and the page's note."""
    return _block(queries.call_page, queries.count_calls, request, f)


def _block(read_page: Callable[..., Any], count: Callable[[RowFilter], tuple[int, bool]],
           request: Any, f: RowFilter) -> tuple[dict[str, Any], str | None]:
    request = request if isinstance(request, dict) else {}
    start = start_row(request)
    end = max(_row(request.get("endRow"), start + 100), start + 1)
    limit = min(end - start, MAX_BLOCK)
    page = read_page(f, sort=sort_key(request.get("sortModel")), offset=start, limit=limit)
    total, exact = count(f)
    if len(page.rows) < limit:      # the last block: the grid now knows the end
        row_count = start + len(page.rows)
    else:                           # unknown beyond the cap: let the grid keep scrolling
        row_count = total if exact else -1
    return {"rowData": page.rows, "rowCount": row_count}, page.note


def shown_note(start_row: int, note: str | None) -> Any:
    """What the note line shows after a block. A new sort or filter asks for the first
    block again, so that block's note replaces the line (an exact one clears it); a
    later block only adds a note, so scrolling into exact blocks keeps it."""
    if start_row == 0:
        return note or ""
    return note if note else no_update


# The filters both grids read, in the order row_filter takes them.
FILTER_STATES = (State("om-dates", "start_date"), State("om-dates", "end_date"),
                 State("om-process", "value"), State("om-data", "value"),
                 State("om-errors-only", "value"), State("om-service", "value"),
                 State("om-range", "value"), State("om-time-from", "value"),
                 State("om-time-to", "value"), State("om-zone", "data"))


def register(app: Dash, queries: TraceQueries, calls_grid: Component | None = None) -> None:
    """``calls_grid``: the calls view's grid (layout.calls_grid), mounted when that view
    is first shown."""
    @app.callback(Output("om-grid", "getRowsResponse"), Output("om-sort-note", "children"),
                  Input("om-grid", "getRowsRequest"),
                  *FILTER_STATES,
                  prevent_initial_call=True)
    def get_rows(request, start_date, end_date, process, data, errors_only, service,
                 last, time_from, time_to, zone):
        response, note = block(queries, request, row_filter(
            start_date, end_date, process, data, errors_only, service, last, time_from,
            time_to, zone))
        return response, shown_note(start_row(request), note)

    @app.callback(Output("om-calls", "getRowsResponse"),
                  Output("om-calls-note", "children"),
                  Input("om-calls", "getRowsRequest"),
                  *FILTER_STATES,
                  prevent_initial_call=True)
    def get_call_rows(request, start_date, end_date, process, data, errors_only, service,
                      last, time_from, time_to, zone):
        # The grid exists once its view was shown (it is mounted then: no request at
        # load). Answered with the real block even while the view is hidden again: the
        # grid applies a response to its latest request, so a placeholder answer
        # arriving late would blank the view just shown.
        response, note = call_block(queries, request, row_filter(
            start_date, end_date, process, data, errors_only, service, last, time_from,
            time_to, zone))
        return response, shown_note(start_row(request), note)

    # The view toggle: the seven-column grid or the calls grid.
    app.clientside_callback(
        """function(view) {
            var calls = view === "calls";
            if (calls) {  // fresh blocks (the hidden grid was not live-refreshed)
                try { dash_ag_grid.getApi("om-calls").refreshInfiniteCache(); } catch (err) {}
            }
            return [{display: calls ? "none" : "block"}, {display: calls ? "block" : "none"}];
        }""",
        Output("om-rows-view", "style"), Output("om-calls-view", "style"),
        Input("om-view", "value"))

    # The calls grid is mounted when the calls view is first shown (on load, when the
    # view kept in the browser is the calls view): a page showing the rows view neither
    # creates it nor asks for its first block. Once mounted it stays (hidden with its
    # view), so its blocks, sort and scroll are kept across toggles.
    if calls_grid is not None:
        mounted = json.dumps(calls_grid.to_plotly_json())
        app.clientside_callback(
            """function(view, holder) {
                if (view !== "calls" || holder) { return window.dash_clientside.no_update; }
                return %s;
            }""" % mounted,
            Output("om-calls-holder", "children"), Input("om-view", "value"),
            State("om-calls-holder", "children"))

    # A filter change drops the cached blocks (the grid asks again from the top); the
    # live tick refreshes the cached blocks in place, keeping the rows the user is
    # reading in view (assets/omLiveRefresh.js).
    app.clientside_callback(
        """function(a, b, c, d, e, f, g, h, i) {
            ["om-grid", "om-calls"].forEach(function (id) {
                try { dash_ag_grid.getApi(id).purgeInfiniteCache(); } catch (err) {}
            });
            return window.dash_clientside.no_update;
        }""",
        Output("om-grid-purged", "data"),
        Input("om-dates", "start_date"), Input("om-dates", "end_date"),
        Input("om-process", "value"), Input("om-data", "value"),
        Input("om-errors-only", "value"), Input("om-service", "value"),
        Input("om-range", "value"), Input("om-time-from", "value"),
        Input("om-time-to", "value"),
        prevent_initial_call=True)

    # A preset sets the window: the dates and times are then not used (greyed out).
    app.clientside_callback(
        """function(last) {
            var preset = !!last && last !== "live";
            return [preset, preset, preset];
        }""",
        Output("om-dates", "disabled"), Output("om-time-from", "disabled"),
        Output("om-time-to", "disabled"), Input("om-range", "value"),
        # the layout's range is "live" (enabled); the URL's callback sets a preset
        prevent_initial_call=True)
    app.clientside_callback(
        """function(n) {
            try { window.omLiveRefresh("om-grid"); } catch (err) {}
            var calls = document.getElementById("om-calls-view");
            if (calls && calls.style.display !== "none") {  // a hidden view waits
                try { window.omLiveRefresh("om-calls"); } catch (err) {}
            }
            return window.dash_clientside.no_update;
        }""",
        Output("om-grid-refreshed", "data"),
        Input("om-tick", "n_intervals"), prevent_initial_call=True)

    # The zone the time filter's times of day are read in, as the Timestamp cells are
    # shown: UTC with the switch on, else the browser's (by its IANA name); beside the
    # time inputs, its name. And the times the grids show (assets/omFormat.js): the
    # trace table's and the calls view's Timestamp, the error groups' first/last seen.
    app.clientside_callback(
        """function(utc) {
            var zone = "UTC";
            if (!utc) {
                try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; }
                catch (err) {}
            }
            window.omUtc = !!utc;
            [["om-grid", ["timestamp"]], ["om-calls", ["timestamp"]],
             ["om-errors-grid", ["first_seen", "last_seen"]]].forEach(function (g) {
                try { dash_ag_grid.getApi(g[0]).refreshCells({columns: g[1], force: true}); }
                catch (err) {}
            });
            return [zone, zone];
        }""",
        Output("om-zone", "data"), Output("om-time-zone", "children"),
        Input("om-utc", "value"))

    # The user's column widths and order: every change of the grid's column state is
    # kept in the browser (om-grid-columns, local storage); on load it is put back,
    # once, so a reload or a refresh leaves the columns as the user set them.
    app.clientside_callback(
        """function(state) {
            if (!window.omColumnsRestored || !Array.isArray(state) || !state.length) {
                return window.dash_clientside.no_update;
            }
            return state.map(c => ({colId: c.colId, width: c.width, hide: c.hide,
                                    pinned: c.pinned, flex: c.flex}));
        }""",
        Output("om-grid-columns", "data"),
        Input("om-grid", "columnState"), prevent_initial_call=True)
    app.clientside_callback(
        """function(_boot) {
            if (window.omColumnsRestored) { return window.dash_clientside.no_update; }
            window.omColumnsRestored = true;
            // read from the storage itself: the store may not have loaded it yet
            var saved = null;
            try { saved = JSON.parse(window.localStorage.getItem("om-grid-columns")); }
            catch (err) {}
            return Array.isArray(saved) && saved.length ? saved
                                                        : window.dash_clientside.no_update;
        }""",
        Output("om-grid", "columnState"), Input("om-grid-boot", "data"))

    # On load the URL's callback (callbacks/url.py sync) sets the options: from the
    # first tick on, this.
    @app.callback(Output("om-process", "options"), Input("om-tick", "n_intervals"),
                  State("om-process", "value"), prevent_initial_call=True)
    def process_options(_n, current):
        return process_choices(queries, current)

    # On load the URL's callback (callbacks/url.py sync) sets the options: from the
    # first tick on, this.
    @app.callback(Output("om-service", "options"), Input("om-tick", "n_intervals"),
                  State("om-service", "value"), prevent_initial_call=True)
    def service_options(_n, current):
        return service_choices(queries, current)


def _choices(names: list[str], current: Any) -> list[dict[str, str]]:
    """A dropdown's options: ``names``, and the value it shows (set by a link, say) even
    when it is not among them, since the dropdown drops a value without an option."""
    if isinstance(current, str) and current and current not in names:
        names = [current, *names]
    return [{"label": n, "value": n} for n in names]


def process_choices(queries: TraceQueries, current: Any = None) -> list[dict[str, str]]:
    return _choices([p["name"] for p in queries.processes()], current)


def service_choices(queries: TraceQueries, current: Any = None) -> list[dict[str, str]]:
    return _choices(queries.services(), current)
