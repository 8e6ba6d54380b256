"""The page: status ribbon; three tabs: Calls (filters and search, trace table (ag-grid,
infinite row model), graph; the default), Errors (the error groups, their actions) and
SLOs (SLI, budget, burn rates and state of each SLO);
the drill-down modal (with its trace view), and the URL's state."""
from __future__ import annotations

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import dash_cytoscape as cyto
from dash import dcc, html

from ._theme import TOKENS
from .callbacks.graph import describe
from .callbacks.table import PRESET_LABELS

REFRESH_MS = 5_000
PAGE_SIZE = 100

# Sized to what each column shows; every column is resizable and the user's widths are
# kept in the browser (om-grid-columns, callbacks/table.py).
COLUMNS = [
    # `Class.method` or `function`; the dotted name (with its module) on hover
    {"field": "Process", "colId": "process", "sortable": True, "width": 270,
     "valueFormatter": {"function": "omProcessShort(params.value)"},
     "tooltipField": "Process"},
    {"field": "Data", "sortable": False, "width": 130},
    {"field": "Data Type", "sortable": False, "width": 105},
    {"field": "Data Value", "sortable": False, "flex": 2, "minWidth": 160},
    # HH:MM:SS.mmm in the browser's zone (or UTC, the switch above), the ISO value on hover
    {"field": "Timestamp", "colId": "timestamp", "sortable": True, "sort": "desc",
     "width": 135, "tooltipField": "Timestamp",
     "valueFormatter": {"function": "omClockCell(params.data && params.data.start_ns)"}},
    # the status pill; "archived" beside it for a row read from the cold archive
    {"field": "Status", "colId": "status", "sortable": True, "cellRenderer": "StatusPill",
     "width": 150},
    # `ExceptionType: message`; the traceback is in the drill-down
    {"field": "Exception", "sortable": False, "flex": 3, "minWidth": 200,
     "valueGetter": {"function": "params.data ? params.data.exception_summary : ''"},
     "tooltipValueGetter": {"function": "params.data ? params.data.exception_summary : ''"}},
    {"field": "duration_ms", "headerName": "ms", "colId": "duration_ms", "sortable": True,
     "width": 90, "type": "rightAligned",
     "valueFormatter": {"function": "params.value == null ? '' : d3.format('.3f')(params.value)"}},
]

# dash-ag-grid's documented Theming API form: a built-in theme with parameters
GRID_THEME = (f"themeQuartz.withParams({{backgroundColor: '{TOKENS['bg']}', "
              f"foregroundColor: '#c9d1d9', headerBackgroundColor: '#161b22', "
              f"accentColor: '{TOKENS['accent']}', browserColorScheme: 'dark'}})")

GRAPH_STYLE = [
    {"selector": "node", "style": {"label": "data(label)", "color": "#c9d1d9",
                                   "font-size": "12px", "background-color": TOKENS["accent"],
                                   # readable where an edge passes under the label
                                   "text-background-color": TOKENS["bg"],
                                   "text-background-opacity": 0.8,
                                   "text-background-padding": "2px"}},
    {"selector": 'node[kind = "process"]', "style": {"shape": "rectangle"}},
    # a process by its error rate in the window (callbacks/graph.py rate_level: the
    # graph_error_rate_* settings)
    {"selector": 'node[kind = "process"][level = "ok"]', "style": {"background-color": TOKENS["ok"]}},
    {"selector": 'node[kind = "process"][level = "stale"]',
     "style": {"background-color": TOKENS["stale"]}},
    {"selector": 'node[kind = "process"][level = "err"]', "style": {"background-color": TOKENS["err"]}},
    {"selector": 'node[kind = "feed"]', "style": {"shape": "ellipse",
                                                  "background-color": TOKENS["ok"]}},
    {"selector": "node[?stale]", "style": {"background-color": TOKENS["err"]}},
    # a feed outside its hours: grey, and so are its edges
    {"selector": "node[?closed]", "style": {"background-color": TOKENS["closed"]}},
    {"selector": "edge", "style": {"curve-style": "bezier", "target-arrow-shape": "triangle",
                                   "line-color": "#6e7681", "target-arrow-color": "#6e7681",
                                   "width": 2}},
    {"selector": "edge[?stale]", "style": {"line-color": TOKENS["err"],
                                           "target-arrow-color": TOKENS["err"]}},
    {"selector": "edge[?closed]", "style": {"line-color": TOKENS["closed"],
                                            "target-arrow-color": TOKENS["closed"],
                                            "line-style": "dashed"}},
]


def ribbon() -> html.Div:
    return html.Div([
        html.Div(id="om-banner"),
        html.Div(id="om-recording"),  # "Recording stopped" (callbacks.ribbon)
        html.Div(id="om-ribbon", className="om-ribbon d-flex align-items-center py-2"),
    ])


def filters() -> dbc.Row:
    return dbc.Row([
        # the time window: a preset, or dates with times of day (in the browser's zone,
        # or UTC with the switch on: named beside them)
        dbc.Col(dcc.Dropdown(id="om-range", value="live", clearable=False, searchable=False,
                             options=[{"label": v, "value": k}
                                      for k, v in PRESET_LABELS.items()],
                             className="text-dark"), md=2),
        dbc.Col(dcc.DatePickerRange(id="om-dates", clearable=True), md=3),
        dbc.Col(dbc.InputGroup([
            dbc.Input(id="om-time-from", type="time", step=1, debounce=True),
            dbc.Input(id="om-time-to", type="time", step=1, debounce=True),
            dbc.InputGroupText("UTC", id="om-time-zone")], size="sm"), md=3),
        dbc.Col(dcc.Dropdown(id="om-process", placeholder="process", clearable=True,
                             className="text-dark"), md=4),
        dbc.Col(dcc.Dropdown(id="om-service", placeholder="service", clearable=True,
                             className="text-dark"), md=2),
        dbc.Col(dbc.Input(id="om-data", placeholder="data (variable name)", debounce=True,
                          maxLength=1000), md=2),
        dbc.Col(dbc.Input(id="om-search", placeholder="search: span id, trace id or process",
                          debounce=True, maxLength=1000, type="search"), md=4),
        dbc.Col(dbc.Switch(id="om-errors-only", label="errors only", value=False), md=2),
    ], className="g-2 mb-2 align-items-center")


def utc_switch() -> dbc.Switch:
    """Times (the trace table's Timestamp, the error groups' first/last seen) in UTC or
    the browser's zone; beside the tabs, as both tabs show times."""
    return dbc.Switch(id="om-utc", label="times in UTC", value=False, persistence=True,
                      persistence_type="local", className="mb-2")


def table() -> dag.AgGrid:
    return dag.AgGrid(
        id="om-grid",
        rowModelType="infinite",
        columnDefs=COLUMNS,
        defaultColDef={"resizable": True, "filter": False},
        dashGridOptions={"cacheBlockSize": PAGE_SIZE, "maxBlocksInCache": 20,
                         "rowSelection": {"mode": "singleRow", "enableClickSelection": True,
                                          "checkboxes": False},
                         "theme": {"function": GRID_THEME}, "tooltipShowDelay": 300},
        getRowId="params.data.span_id + ':' + params.data.seq",
        style={"height": "55vh"},
    )


CALL_COLUMNS = [
    {"field": "process", "colId": "process", "headerName": "Process", "sortable": True,
     "width": 270, "valueFormatter": {"function": "omProcessShort(params.value)"},
     "tooltipField": "process"},
    {"field": "timestamp", "colId": "timestamp", "headerName": "Timestamp", "sortable": True,
     "sort": "desc", "width": 135, "tooltipField": "timestamp",
     "valueFormatter": {"function": "omClockCell(params.data && params.data.start_ns)"}},
    {"field": "inputs", "headerName": "Inputs", "sortable": False, "flex": 3, "minWidth": 200,
     "tooltipField": "inputs"},
    {"field": "output", "headerName": "Output", "sortable": False, "flex": 1, "minWidth": 120,
     "tooltipField": "output"},
    {"field": "duration_ms", "headerName": "ms", "colId": "duration_ms", "sortable": True,
     "width": 90, "type": "rightAligned",
     "valueFormatter": {"function": "params.value == null ? '' : d3.format('.3f')(params.value)"}},
    {"field": "status", "colId": "status", "headerName": "Status", "sortable": True,
     "cellRenderer": "StatusPill", "width": 150},  # with the "archived" badge
    {"field": "exception_summary", "headerName": "Exception", "sortable": False, "flex": 2,
     "minWidth": 180, "tooltipField": "exception_summary"},
]


def view_toggle() -> dbc.RadioItems:
    """The seven-column view (one row per variable) or the calls view (one per call)."""
    return dbc.RadioItems(id="om-view", value="rows", inline=True, persistence=True,
                          persistence_type="local", className="mb-1",
                          options=[{"label": "rows (one per variable)", "value": "rows"},
                                   {"label": "calls (one per call)", "value": "calls"}])


def calls_grid() -> dag.AgGrid:
    """The calls view's grid, with the trace table's filters, sorts and paging. Not in
    the page's layout: mounted into ``om-calls-holder`` when the calls view is first
    shown (callbacks/table.py), so a page that shows the rows view does not create it
    nor ask for its first block."""
    return dag.AgGrid(
        id="om-calls",
        rowModelType="infinite",
        columnDefs=CALL_COLUMNS,
        defaultColDef={"resizable": True, "filter": False},
        dashGridOptions={"cacheBlockSize": PAGE_SIZE, "maxBlocksInCache": 20,
                         "theme": {"function": GRID_THEME}, "tooltipShowDelay": 300},
        getRowId="params.data.span_id",
        style={"height": "55vh"},
    )


def calls_table() -> html.Div:
    """The calls view: the holder its grid (``calls_grid``) is mounted into, its note."""
    return html.Div([html.Div(id="om-calls-holder"),
                     html.Div(id="om-calls-note", className="small text-muted",
                              role="status")],
                    id="om-calls-view", style={"display": "none"})


def column_memory() -> html.Div:
    """The user's column widths and order, kept in the browser across reloads, and the
    one-shot trigger that puts them back on load."""
    return html.Div([dcc.Store(id="om-grid-columns", storage_type="local"),
                     dcc.Store(id="om-grid-boot", data=1)])


def graph_toggle() -> dbc.RadioItems:
    """The graph's layout: force (positions kept) or layered left to right."""
    return dbc.RadioItems(id="om-graph-mode", value="force", inline=True, persistence=True,
                          persistence_type="local", className="small",
                          options=[{"label": "force", "value": "force"},
                                   {"label": "layered (left to right)", "value": "layered"}])


def graph() -> cyto.Cytoscape:
    # assets/omGraph.js lays out every update (label-aware cose, seeded from the kept
    # positions; callbacks/graph.py). dash-cytoscape must never lay out by itself: its
    # autoRefreshLayout re-runs the layout prop 100 ms after any add or remove, which
    # would move every kept node after omGraph.js placed them; "preset" keeps positions.
    return cyto.Cytoscape(id="om-graph", layout={"name": "preset", "fit": False},
                          autoRefreshLayout=False,
                          stylesheet=GRAPH_STYLE, elements=[],
                          style={"height": "40vh", "width": "100%",
                                 "background": TOKENS["bg"]})


TRACE_COLUMNS = [
    {"field": "toggle", "headerName": "", "colId": "toggle", "width": 90,
     "cellClass": "om-trace-toggle", "headerTooltip": "fold or unfold a span's children"},
    {"field": "process", "colId": "process", "cellRenderer": "TraceName", "minWidth": 260,
     "flex": 2, "tooltipField": "process"},
    {"field": "start_ms", "headerName": "start ms", "width": 100, "type": "rightAligned"},
    {"field": "duration_ms", "headerName": "ms", "width": 100, "type": "rightAligned",
     "valueFormatter": {"function": "d3.format('.3f')(params.value)"}},
    {"field": "status", "cellRenderer": "StatusPill", "width": 90},
    {"field": "pid", "width": 90},
    {"headerName": "timeline", "colId": "bar", "cellRenderer": "TraceBar", "flex": 3},
]


def trace_view() -> html.Div:
    """The call's trace as a waterfall; rows are virtualised by the grid."""
    return html.Div([
        html.H6("Trace", className="mt-1"),
        html.Div(id="om-trace-note", className="small text-muted"),
        dag.AgGrid(id="om-trace", columnDefs=TRACE_COLUMNS, rowData=[],
                   defaultColDef={"resizable": True, "sortable": False, "filter": False},
                   getRowId="params.data.span_id",
                   rowClassRules={"om-trace-selected": "params.data.selected"},
                   dashGridOptions={"rowHeight": 26, "theme": {"function": GRID_THEME},
                                    "suppressCellFocus": True},
                   style={"height": "30vh"}),
    ], id="om-trace-view", className="mb-3")


def modal() -> dbc.Modal:
    return dbc.Modal([dbc.ModalHeader(dbc.ModalTitle(id="om-modal-title")),
                      dbc.ModalBody([trace_view(), html.Div(id="om-modal-body")]),
                      dbc.ModalFooter([
                          html.Span(id="om-picked-note", className="small text-muted"),
                          dbc.Button("Pick to compare", id="om-pick", size="sm",
                                     color="secondary", outline=True)])],
                     id="om-modal", size="xl", is_open=False, scrollable=True)


def state() -> html.Div:
    """The URL (pushed, not reloaded), what it asks to open, the trace view's state, the
    zone of the time filter's times of day, and the download of a Reproduce test."""
    return html.Div([dcc.Location(id="om-url", refresh=False), dcc.Store(id="om-open"),
                     dcc.Store(id="om-url-tab"),  # a URL naming a tab (callbacks/url.py)
                     dcc.Store(id="om-feed"), dcc.Store(id="om-trace-state"),
                     dcc.Store(id="om-picked"), dcc.Store(id="om-zone"),
                     dcc.Download(id="om-download")])


# The Errors tab's grid: one row per error group (callbacks/errors.py).
ERROR_COLUMNS = [
    # "ExceptionType: normalised message"; a click opens the group's latest call
    {"field": "title", "colId": "title", "headerName": "Error", "flex": 3, "minWidth": 260,
     "tooltipField": "title", "cellClass": "om-link"},
    {"field": "process", "colId": "process", "headerName": "Process", "width": 240,
     "valueFormatter": {"function": "omProcessShort(params.value)"},
     "tooltipField": "process"},
    {"field": "count", "headerName": "Count", "width": 95, "type": "rightAligned"},
    {"field": "count_last_hour", "headerName": "Last hour", "width": 105,
     "type": "rightAligned"},
    # failures per 5 minutes over the last 6 hours (assets/dashAgGridComponentFunctions.js)
    {"field": "spark", "colId": "spark", "headerName": "6 h", "width": 170,
     "cellRenderer": "CountSparkline"},
    {"field": "first_seen", "colId": "first_seen", "headerName": "First seen", "width": 135,
     "tooltipField": "first_seen",
     "valueFormatter": {"function": "omClockCell(params.data && params.data.first_seen_ns)"}},
    {"field": "last_seen", "colId": "last_seen", "headerName": "Last seen", "width": 135,
     "tooltipField": "last_seen",
     "valueFormatter": {"function": "omClockCell(params.data && params.data.last_seen_ns)"}},
    {"field": "status", "colId": "status", "headerName": "Status", "width": 110,
     "cellRenderer": "StatusPill"},
]
ERROR_STATUSES = {"open": "open", "resolved": "resolved", "ignored": "ignored",
                  "snoozed": "snoozed", "all": "any status"}


def tabs() -> dbc.Tabs:
    """Calls (the trace table and the graph; the default), Errors (the error groups) or
    SLOs (each SLO's SLI, budget, burn rates and state)."""
    return dbc.Tabs([dbc.Tab(label="Calls", tab_id="calls"),
                     dbc.Tab(label="Errors", tab_id="errors"),
                     dbc.Tab(label="SLOs", tab_id="slos")],
                    id="om-tabs", active_tab="calls", className="mb-2 flex-grow-1")


def errors_grid() -> dag.AgGrid:
    """The Errors tab's grid: one row per error group. Not in the page's layout: mounted
    into ``om-errors-holder`` when the tab is first shown (callbacks/errors.py), so a page
    that opens on the Calls tab does not create a second grid on its first render."""
    return dag.AgGrid(
        id="om-errors-grid", rowData=[], columnDefs=ERROR_COLUMNS,
        defaultColDef={"resizable": True, "sortable": False, "filter": False},
        getRowId="params.data.fingerprint",
        dashGridOptions={"rowSelection": {"mode": "singleRow",
                                          "enableClickSelection": True,
                                          "checkboxes": False},
                         "theme": {"function": GRID_THEME}, "tooltipShowDelay": 300,
                         "overlayNoRowsTemplate": "no error group matches"},
        style={"height": "45vh"})


def errors_tab() -> html.Div:
    """The error groups: filters, the grid, and the actions on the selected group."""
    return html.Div([
        dbc.Row([
            dbc.Col(dcc.Dropdown(id="om-errors-status", value="open", clearable=False,
                                 searchable=False, className="text-dark",
                                 options=[{"label": v, "value": k}
                                          for k, v in ERROR_STATUSES.items()]), md=2),
            dbc.Col(dcc.Dropdown(id="om-errors-process", placeholder="process",
                                 clearable=True, className="text-dark"), md=4),
            dbc.Col(dcc.Dropdown(id="om-errors-service", placeholder="service",
                                 clearable=True, className="text-dark"), md=2),
            dbc.Col(dbc.RadioItems(id="om-errors-sort", value="last_seen", inline=True,
                                   options=[{"label": "newest last seen",
                                             "value": "last_seen"},
                                            {"label": "highest count", "value": "count"}]),
                    md=4),
        ], className="g-2 mb-2 align-items-center"),
        # the grid (errors_grid) is mounted here when the tab is first shown; until
        # then the rows and the selection wait in these stores
        html.Div(id="om-errors-holder"),
        dcc.Store(id="om-errors-rows"), dcc.Store(id="om-errors-select"),
        dcc.Store(id="om-errors-mounted"),
        html.Div(id="om-errors-note", className="small text-muted", role="status"),
        html.Div([
            html.Span("no group selected", id="om-errors-selected",
                      className="small me-2"),
            dbc.Button("Open latest call", id="om-errors-open", size="sm",
                       color="secondary", outline=True, className="me-1"),
            dbc.Button("Resolve", id="om-errors-resolve", size="sm", color="success",
                       className="me-1"),
            dbc.Button("Ignore", id="om-errors-ignore", size="sm", color="secondary",
                       className="me-1"),
            dbc.Button("Snooze 1 h", id="om-errors-snooze-hour", size="sm",
                       color="warning", outline=True, className="me-1"),
            dbc.Button("Snooze until tomorrow 07:00", id="om-errors-snooze-morning",
                       size="sm", color="warning", outline=True, className="me-1"),
            dbc.InputGroup([
                dbc.Input(id="om-errors-snooze-n", type="number", min=1, step=1, value=10,
                          style={"maxWidth": "6em"}),
                dbc.Button("Snooze for N failures", id="om-errors-snooze-count",
                           color="warning", outline=True)],
                size="sm", className="d-inline-flex w-auto"),
        ], className="d-flex flex-wrap align-items-center gap-1 mt-2"),
        html.Div(id="om-errors-action-note", className="small mt-1", role="status"),
        dcc.Store(id="om-errors-changed", data=0),  # bumped by an action: list again
        dcc.Store(id="om-error-wanted"),            # a group to select (?error=)
        dcc.Store(id="om-tz"),                      # the browser's time zone
    ], id="om-errors-tab", style={"display": "none"})


def slos_tab() -> html.Div:
    """The SLOs (callbacks/slos.py): one row each, listed at every tick while shown."""
    from .callbacks.slos import HEADERS

    return html.Div([
        html.Div(id="om-slos-note", className="small text-muted mb-2", role="status"),
        dbc.Table([html.Thead(html.Tr([html.Th(h) for h in HEADERS])),
                   html.Tbody(id="om-slos-body")],
                  id="om-slos-table", bordered=False, hover=True, size="sm",
                  className="table-dark"),
    ], id="om-slos-tab", style={"display": "none"})


def page() -> dbc.Container:
    return dbc.Container([
        dcc.Interval(id="om-tick", interval=REFRESH_MS),
        state(),
        ribbon(),
        html.H4("otel-monitor", className="mt-2", style={"color": TOKENS["accent"]}),
        html.Div([tabs(), utc_switch()],
                 className="d-flex justify-content-between align-items-end"),
        html.Div([
            filters(),
            view_toggle(),
            html.Div(table(), id="om-rows-view"),
            calls_table(),
            column_memory(),
            # Set when the table's order was computed within a bounded window of calls.
            html.Div(id="om-sort-note", className="small text-muted", role="status"),
            html.Div(describe(None), id="om-graph-hover", className="small text-muted mt-3"),
            graph_toggle(),
            graph(),
            dcc.Store(id="om-graph-laid-out"),
        ], id="om-calls-tab"),
        errors_tab(),
        slos_tab(),
        modal(),
    ], fluid=True, style={"background": TOKENS["bg"], "minHeight": "100vh"})
