"""The page's state in its URL, and the search box.

``?span_id=<16 hex>`` opens that call's drill-down on load, ``?trace_id=<32 hex>`` its
trace's (at the trace's first span); ``?process=``, ``?errors=1``, ``?from=&to=`` (days,
``YYYY-MM-DD``, or instants ``YYYY-MM-DDTHH:MM:SSZ``, UTC: the day and the time of day,
shown in the time inputs on the clocks of the browser's zone, or of UTC with the UTC
switch on, as the Timestamp cells are; ``?from=now-15m`` is a preset, 5m/15m/1h/6h,
following now) and ``?data=``, ``?service=``
set the filters; ``?feed=`` names a feed, whose status the line above the graph shows;
``?error=<fingerprint>`` opens the Errors tab with that group selected (listed whatever
its status; with ``span_id``/``trace_id`` too, as an alert's link has them, that call
opens in the drill-down over it). The
alert bodies link with exactly these (``otel_monitor.alerts.model.ui_link``). A filter
change writes the URL anew (``dcc.Location(refresh=False)`` pushes it onto the browser's
history, so its back button restores the previous filters). The search box takes a span
id, a trace id or a process name.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timezone, tzinfo
from typing import Any
from urllib.parse import parse_qs, urlencode

from dash import Dash, Input, Output, State, ctx, no_update

from exporters.queries import NotFound, TraceQueries

from ..instants import wall_clock, zone_of
from .graph import describe
from .table import PRESETS, clock_s, process_choices, service_choices

SPAN_ID = re.compile("[0-9a-fA-F]{16}")
FINGERPRINT = re.compile("[0-9a-fA-F]{32}")
TRACE_ID = re.compile("[0-9a-fA-F]{32}")
MAX_PARAM = 1_000   # longest parameter value read (as the API's filters)

# Filter inputs, in the order of sync's arguments after the URL.
FILTERS = [("om-process", "value"), ("om-errors-only", "value"), ("om-dates", "start_date"),
           ("om-dates", "end_date"), ("om-data", "value"), ("om-service", "value")]


def _day(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        return None


# The time window's inputs (after the search box among sync's inputs).
WINDOW = [("om-range", "value"), ("om-time-from", "value"), ("om-time-to", "value")]
RELATIVE = re.compile(r"now-(\d+[mh])")


def _clock(value: str | None) -> str | None:
    """The time of day of an ISO instant (``HH:MM:SS``, UTC as written), if it has one."""
    if not value or len(value) < 16 or value[10] not in "Tt ":
        return None
    text = value[11:19] if len(value) >= 19 and value[16] == ":" else value[11:16]
    return text if clock_s(text) is not None else None


def _instant(day: str | None, clock: Any, zone: tzinfo = timezone.utc) -> str | None:
    """The URL's ``from``/``to``: the day, or the day at ``clock`` on the clocks of
    ``zone`` as a UTC instant."""
    if not day:
        return None
    seconds = clock_s(clock)
    if seconds is None:
        return day
    try:
        t = wall_clock(date.fromisoformat(day), int(seconds), zone).astimezone(timezone.utc)
    except OverflowError:  # the instant of a local clock past year 9999 (or before 1)
        return day
    return (f"{t.year:04d}-{t.month:02d}-{t.day:02d}"
            f"T{t.hour:02d}:{t.minute:02d}:{t.second:02d}Z")


def _on_clocks_of(day: str | None, clock: str | None, zone: tzinfo
                  ) -> tuple[str | None, str | None]:
    """(day, time of day) of the URL's UTC instant on the clocks of ``zone`` (what the
    time inputs show); a day without a time is left as it is (a whole UTC day)."""
    seconds = clock_s(clock)
    if not day or seconds is None or zone is timezone.utc:
        return day, clock
    try:
        t = wall_clock(date.fromisoformat(day), int(seconds), timezone.utc).astimezone(zone)
    except OverflowError:
        return day, clock
    return t.date().isoformat(), f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}"


def parse(search: Any, zone: Any = None) -> dict[str, Any]:
    """The URL's query -> the filters' values and what to open (each key always set); a
    day and time of day on the clocks of ``zone`` (the om-zone store; UTC for none)."""
    params = parse_qs(search[1:] if isinstance(search, str) and search.startswith("?")
                      else search if isinstance(search, str) else "")

    def one(name: str) -> str | None:
        values = params.get(name)
        value = values[-1].strip() if values else ""
        return value[:MAX_PARAM] or None

    span_id, trace_id, error = one("span_id"), one("trace_id"), one("error")
    start, end = one("from"), one("to")
    relative = RELATIVE.fullmatch(start or "")
    last = relative.group(1) if relative and relative.group(1) in PRESETS else None
    if last:
        start = end = None
    tz = zone_of(zone)
    (since, since_time), (until, until_time) = (_on_clocks_of(_day(start), _clock(start), tz),
                                                _on_clocks_of(_day(end), _clock(end), tz))
    return {"process": one("process"), "errors": one("errors") in ("1", "true", "yes"),
            "from": since, "to": until, "data": one("data"),
            "last": last, "from_time": since_time, "to_time": until_time,
            "service": one("service"), "feed": one("feed"),
            "tab": "slos" if one("tab") == "slos" or one("slo") else None,
            "error": error.lower() if error and FINGERPRINT.fullmatch(error) else None,
            "span_id": span_id.lower() if span_id and SPAN_ID.fullmatch(span_id) else None,
            "trace_id": trace_id.lower() if trace_id and TRACE_ID.fullmatch(trace_id)
            else None}


def unparse(process: Any = None, errors: Any = False, start: Any = None, end: Any = None,
            data: Any = None, service: Any = None, feed: Any = None, last: Any = None,
            time_from: Any = None, time_to: Any = None, zone: Any = None) -> str:
    """The filters -> the URL's query (``""`` for none), in a fixed order; a time of day
    is on the clocks of ``zone`` (the om-zone store; UTC for none)."""
    def text(value: Any) -> str | None:
        return value.strip() or None if isinstance(value, str) else None

    if isinstance(last, str) and last in PRESETS:
        since, until = f"now-{last}", None
    else:
        tz = zone_of(zone)
        since, until = (_instant(_day(text(start)), time_from, tz),
                        _instant(_day(text(end)), time_to, tz))
    params = {"process": text(process), "errors": "1" if errors is True else None,
              "from": since, "to": until, "data": text(data),
              "service": text(service), "feed": text(feed)}
    query = urlencode({k: v for k, v in params.items() if v})
    return "?" + query if query else ""


def to_open(queries: TraceQueries, span_id: str | None, trace_id: str | None
            ) -> dict[str, str] | None:
    """The call to open: the span given, else the first span of the trace given."""
    if span_id:
        return {"span_id": span_id}
    if trace_id:
        try:
            spans = queries.trace(trace_id)["spans"]
        except NotFound:
            return {"missing": f"no span of trace {trace_id} in the store"}
        roots = [s for s in spans if s["parent_span_id"] is None] or spans
        return {"span_id": roots[0]["span_id"]}
    return None


def feed_line(queries: TraceQueries, name: str | None) -> Any:
    """The line above the graph for ``?feed=``: that feed's status."""
    if not name:
        return no_update
    for f in queries.feeds():
        if f.get("name") == name:
            return describe({"kind": "feed", "name": name, "age_s": f.get("age_s"),
                             "stale": f.get("stale")})
    return f"feed {name}: not in the store"


# sync's outputs: the URL, the filters, the feed, what to open, the hover line, the two
# dropdowns' options, the time window.
OUTPUTS = 1 + len(FILTERS) + 3 + 2 + len(WINDOW)


def register(app: Dash, queries: TraceQueries) -> None:
    filter_outputs = [Output(cid, prop, allow_duplicate=True) for cid, prop in FILTERS]

    # A dropdown drops a value it has no option for: the options come with the value.
    options = [Output("om-process", "options", allow_duplicate=True),
               Output("om-service", "options", allow_duplicate=True)]

    @app.callback(Output("om-url", "search"), *filter_outputs, Output("om-feed", "data"),
                  Output("om-open", "data"), Output("om-graph-hover", "children",
                                                    allow_duplicate=True), *options,
                  *[Output(cid, prop, allow_duplicate=True) for cid, prop in WINDOW],
                  Input("om-url", "search"), *[Input(cid, prop) for cid, prop in FILTERS],
                  Input("om-search", "value"), *[Input(cid, prop) for cid, prop in WINDOW],
                  Input("om-zone", "data"), State("om-feed", "data"),
                  State("om-trace-state", "data"),
                  prevent_initial_call="initial_duplicate")
    def sync(search, process, errors, start, end, data, service, searched, last,
             time_from, time_to, zone, feed, shown):
        out = _sync(search, process, errors, start, end, data, service, searched, last,
                    time_from, time_to, zone, feed, shown)
        # Only the URL sets the time window's inputs: other answers leave them as they are.
        return out + (no_update,) * (OUTPUTS - len(out))

    # A URL naming a tab (?error=, ?tab=, ?slo=) is passed on to error_link; one without
    # leaves the tab be, here in the browser: no round trip (on load, most URLs).
    app.clientside_callback(
        """function(search) {
            var p = new URLSearchParams(search || "");
            return p.has("error") || p.has("tab") || p.has("slo") ? (search || "")
                                                                  : window.dash_clientside.no_update;
        }""",
        Output("om-url-tab", "data"), Input("om-url", "search"))

    # ?error=<fingerprint>: the Errors tab, listing every status, that group selected
    # (callbacks/errors.py selects it once listed); ?tab=slos or ?slo=<name>: the SLOs
    # tab. A URL without them leaves the tab be.
    @app.callback(Output("om-tabs", "active_tab"),
                  Output("om-errors-status", "value", allow_duplicate=True),
                  Output("om-error-wanted", "data", allow_duplicate=True),
                  Input("om-url-tab", "data"), prevent_initial_call=True)
    def error_link(search):
        asked = parse(search)
        fp = asked["error"]
        if fp is None:  # ?tab=slos (or ?slo=<name>: a burn-rate alert's link): the SLOs tab
            return ("slos" if asked["tab"] else no_update), no_update, no_update
        return "errors", "all", fp

    def _sync(search, process, errors, start, end, data, service, searched, last,
              time_from, time_to, zone, feed, shown):
        keep = [no_update] * len(FILTERS)
        same = (no_update, no_update)  # the dropdowns' options
        window = (last, time_from, time_to)
        trigger = ctx.triggered_id
        if trigger == "om-search":
            text = searched.strip()[:MAX_PARAM] if isinstance(searched, str) else ""
            if SPAN_ID.fullmatch(text) or TRACE_ID.fullmatch(text):
                opened = to_open(queries, text.lower() if len(text) == 16 else None,
                                 text.lower() if len(text) == 32 else None)
                return no_update, *keep, no_update, opened, no_update, *same
            if not text:
                return (no_update,) * (len(FILTERS) + 6)
            url = unparse(text, errors, start, end, data, service, feed, *window, zone)
            return (url, text, *keep[1:], no_update, no_update, no_update,
                    process_choices(queries, text), no_update)
        if trigger in {cid for cid, _ in FILTERS + WINDOW}:
            return (unparse(process, errors, start, end, data, service, feed, *window, zone),
                    *keep, no_update, no_update, no_update, *same)
        # The page's URL (on load, or the browser's back and forward), or the zone of the
        # time inputs (known once the page has loaded; then the UTC switch): set the
        # filters, the URL's instants on that zone's clocks (the window is unchanged).
        p = parse(search, zone)
        values = [p["process"], p["errors"], p["from"], p["to"], p["data"], p["service"]]
        # A value the input already has is not set again: setting it would fire the
        # grids' purge and fetch their first block twice on load.
        current = [process, errors, start, end, data, service]
        values = [no_update if v == c or (not v and not c) else v
                  for v, c in zip(values, current)]
        wanted = [p["last"] or "live", p["from_time"], p["to_time"]]
        window_values = [no_update if v == c or (not v and not c) or
                         (v == "live" and c is None) else v
                         for v, c in zip(wanted, window)]
        # A call the URL names opens once: not again when the UTC switch is turned after
        # a drill-down was shown.
        opened = no_update if trigger == "om-zone" and shown is not None else \
            to_open(queries, p["span_id"], p["trace_id"])
        # Nothing to open is no answer: the drill-down's callback is not fired for it (on
        # load, most URLs). A later call set fires it all the same (even the same one).
        opened = no_update if opened is None else opened
        return (no_update, *values, p["feed"], opened,
                feed_line(queries, p["feed"]), process_choices(queries, p["process"]),
                service_choices(queries, p["service"]), *window_values)
