"""The Dash app: it builds; its callbacks, driven through Dash's HTTP endpoint, return
the right rows, ribbon levels and graph; everything it serves comes from 127.0.0.1."""
from __future__ import annotations

import json
import re
from urllib.parse import urljoin, urlparse

import httpx
import pytest

from bounded_store import NAME, QUIET, make_bounded_store
from conftest import SCRIPT
from dash_ui._theme import TOKENS
from dash_ui.app import create_dash_app


@pytest.fixture(scope="module")
def dash_app(recorded):
    return create_dash_app(recorded)


@pytest.fixture
def flask(dash_app):
    return dash_app.server.test_client()


def _prop(spec: str) -> dict:
    cid, prop = spec.split(".", 1)
    return {"id": cid, "property": prop}


def run_callback(flask, outputs: list[str], inputs: dict[str, object],
                 state: dict[str, object] | None = None,
                 changed: list[str] | None = None) -> dict:
    """POST /_dash-update-component as the browser does (``changed``: the inputs that
    fired it, all by default); the response's outputs by id."""
    outs = [_prop(o) for o in outputs]
    body = {
        "output": outputs[0] if len(outputs) == 1 else "..." .join(outputs).join(["..", ".."]),
        "outputs": outs[0] if len(outs) == 1 else outs,
        "inputs": [dict(_prop(k), value=v) for k, v in inputs.items()],
        "state": [dict(_prop(k), value=v) for k, v in (state or {}).items()],
        "changedPropIds": changed or list(inputs),
    }
    r = flask.post("/_dash-update-component", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()["response"]


DRILL_DOWN = ["om-modal.is_open", "om-modal-title.children", "om-modal-body.children",
              "om-trace.rowData", "om-trace-note.children", "om-trace-state.data",
              "om-trace.scrollTo"]


def open_drilldown(flask, cell=None, *, opened=None, trace_cell=None, shown=None,
                   picked=None, calls_cell=None) -> dict:
    """The drill-down's callback, fired by a table click (``cell``), a link or the search
    (``opened``: the om-open store), a click in the trace view (``trace_cell``) or in
    the calls view (``calls_cell``); ``picked``: the call picked to compare with."""
    fired = ("om-grid.cellClicked" if cell is not None else "om-open.data"
             if opened is not None else "om-calls.cellClicked" if calls_cell is not None
             else "om-trace.cellClicked")
    return run_callback(flask, DRILL_DOWN,
                        {"om-grid.cellClicked": cell, "om-open.data": opened,
                         "om-trace.cellClicked": trace_cell,
                         "om-calls.cellClicked": calls_cell},
                        {"om-trace-state.data": shown, "om-picked.data": picked},
                        changed=[fired])


# The time window's inputs and the zone of its times, unset (the grid's callback reads
# them as State).
NO_WINDOW = {"om-range.value": None, "om-time-from.value": None, "om-time-to.value": None,
             "om-zone.data": None}


def get_rows(flask, *, errors_only=False, process=None, data=None, start=0, end=100,
             sort_model=None, service=None, grid="om-grid", note="om-sort-note"):
    """A block of the seven-column grid (of the calls grid: ``grid="om-calls"``,
    ``note="om-calls-note"``)."""
    response = run_callback(
        flask, [f"{grid}.getRowsResponse", f"{note}.children"],
        {f"{grid}.getRowsRequest": {"startRow": start, "endRow": end,
                                    "sortModel": sort_model or [], "filterModel": {}}},
        {"om-dates.start_date": None, "om-dates.end_date": None, "om-process.value": process,
         "om-data.value": data, "om-errors-only.value": errors_only,
         "om-service.value": service, **NO_WINDOW})
    return response[grid]["getRowsResponse"]


def test_theme_tokens_are_the_designed_ones():
    # DESIGN.md's five, and grey for a feed outside its hours (issue 15)
    assert TOKENS == {"bg": "#0d1117", "accent": "#3e8ef7", "ok": "#2dc26b",
                      "err": "#e55353", "stale": "#f0ad4e", "closed": "#6e7681"}


def test_the_app_builds_with_local_assets_only(dash_app):
    assert dash_app.config.external_stylesheets == []
    assert dash_app.config.serve_locally is True
    for cid in ("om-ribbon", "om-banner", "om-dates", "om-process", "om-data",
                "om-errors-only", "om-grid", "om-graph", "om-tick"):
        assert dash_app.layout[cid] is not None
    grid = dash_app.layout["om-grid"]
    assert grid.rowModelType == "infinite"
    assert [c["field"] for c in grid.columnDefs][:7] == [
        "Process", "Data", "Data Type", "Data Value", "Timestamp", "Status", "Exception"]


def test_errors_only_returns_only_err_rows(flask):
    everything = get_rows(flask, end=500)
    errors = get_rows(flask, errors_only=True, end=500)
    assert {r["Status"] for r in everything["rowData"]} == {"OK", "ERR"}
    assert errors["rowData"] and {r["Status"] for r in errors["rowData"]} == {"ERR"}
    assert errors["rowCount"] == len(errors["rowData"])  # the last block ends the grid
    assert all(r["Process"] == "ui_workload.check_limit" for r in errors["rowData"])


def test_paging_sorting_and_the_process_filter(flask):
    first = get_rows(flask, start=0, end=5)["rowData"]
    second = get_rows(flask, start=5, end=10)["rowData"]
    assert len(first) == len(second) == 5
    keys = {(r["span_id"], r["seq"]) for r in first}
    assert not keys & {(r["span_id"], r["seq"]) for r in second}
    oldest = get_rows(flask, end=3, sort_model=[{"colId": "timestamp", "sort": "asc"}])
    newest = get_rows(flask, end=3)
    assert oldest["rowData"][0]["Timestamp"] <= newest["rowData"][0]["Timestamp"]
    price = get_rows(flask, process="ui_workload.price", end=1000)["rowData"]
    assert price and {r["Process"] for r in price} == {"ui_workload.price"}
    assert get_rows(flask, process="' OR '1'='1")["rowData"] == []  # a parameter, not SQL


def test_a_script_value_comes_back_as_text(flask, dash_app):
    rows = get_rows(flask, end=1000)["rowData"]
    assert any(SCRIPT in r["Data Value"] for r in rows)  # the stored string, unescaped
    grid = dash_app.layout["om-grid"]
    assert not getattr(grid, "dangerously_allow_code", False)
    # the only renderer is the status pill, which renders the value as a React text child
    assert [c.get("cellRenderer") for c in grid.columnDefs if c.get("cellRenderer")] == [
        "StatusPill"]


def test_ribbon_is_red_for_a_queue_depth_past_5000(flask):
    out = run_callback(flask, ["om-ribbon.children", "om-banner.children",
                              "om-recording.children"],
                       {"om-tick.n_intervals": 1})
    badges = {b["props"]["id"]: b["props"] for b in out["om-ribbon"]["children"]}
    assert badges["om-badge-QueueDepth"]["className"] == "om-level-red"
    assert badges["om-badge-QueueDepth"]["style"]["backgroundColor"] == TOKENS["err"]
    assert "6,000" in badges["om-badge-QueueDepth"]["children"]
    assert badges["om-badge-SQLiteWriteLag"]["className"] == "om-level-ok"
    assert badges["om-badge-LastFeedUpdate"]["className"] == "om-level-red"  # a stale feed
    assert "errors (5 min): 3" == badges["om-badge-errors"]["children"]
    assert "Backpressure: queue backpressure" in json.dumps(out["om-banner"]["children"])


def test_graph_has_square_processes_round_feeds_and_red_stale_edges(flask, dash_app):
    out = run_callback(flask, ["om-graph.elements"], {"om-tick.n_intervals": 1})
    elements = out["om-graph"]["elements"]
    nodes = {e["data"]["id"]: e["data"] for e in elements if "source" not in e["data"]}
    edges = {e["data"]["id"]: e["data"] for e in elements if "source" in e["data"]}
    assert nodes["ui_workload.check_limit"]["kind"] == "process"
    assert nodes["ui_workload.check_limit"]["errors"] == 3
    assert nodes["ui_workload.price"]["last_latency_ms"] is not None
    assert nodes["feed:bbg.fx"]["kind"] == "feed" and not nodes["feed:bbg.fx"]["stale"]
    assert edges["feed:refinitiv.rates->ui_workload.check_limit"]["stale"] is True
    assert edges["feed:bbg.fx->ui_workload.price"]["stale"] is False
    style = {s["selector"]: s["style"] for s in dash_app.layout["om-graph"].stylesheet}
    assert style['node[kind = "process"]']["shape"] == "rectangle"
    assert style['node[kind = "feed"]']["shape"] == "ellipse"
    assert style["edge[?stale]"]["line-color"] == TOKENS["err"]
    # laid out by assets/omGraph.js alone (the force layout: cose, in the browser tests)
    assert dash_app.layout["om-graph"].layout["name"] == "preset"
    assert dash_app.layout["om-graph"].autoRefreshLayout is False


def test_clicking_a_process_node_sets_the_process_filter(flask):
    out = run_callback(flask, ["om-process.value"], {
        "om-graph.tapNodeData": {"id": "ui_workload.price", "label": "ui_workload.price",
                                 "kind": "process"}})
    assert out["om-process"]["value"] == "ui_workload.price"
    hover = run_callback(flask, ["om-graph-hover.children"], {
        "om-graph.mouseoverNodeData": {"label": "p", "kind": "process",
                                       "last_latency_ms": 1.5, "errors": 2}})
    assert hover["om-graph-hover"]["children"] == "p: last latency 1.5 ms, errors (30 min): 2"


def test_page_and_every_asset_come_from_127_0_0_1(client):
    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    config = json.loads(re.search(r'<script id="_dash-config" type="application/json">'
                                  r'(.*?)</script>', html, re.S).group(1))
    assert not re.search(r"https?://", json.dumps(config))
    for host in re.findall(r"https?://([^/:\"'\s]+)", html):
        assert host == "127.0.0.1", host
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("bootstrap.min.css" in u for u in urls)
    assert any("dash_ag_grid" in u for u in urls) and any("cytoscape" in u for u in urls)
    for url in urls:
        full = urljoin(str(client.base_url) + "/", url)
        assert urlparse(full).hostname == "127.0.0.1", url
        assert client.get(full).status_code == 200, url
    css = client.get(next(u for u in urls if "bootstrap.min.css" in u)).text
    assert "fonts.googleapis" not in css and "@import" not in css
    assert "Licensed under MIT" in css
    assert client.get("/_dash-dependencies").status_code == 200
    layout = client.get("/_dash-layout")
    assert layout.status_code == 200 and "om-grid" in layout.text
    assert not re.search(r"https?://(?!127\.0\.0\.1)", layout.text.replace(
        "http://www.w3.org", ""))
    # the grid's lazily loaded chunk comes from the same place
    assert client.get("/_dash-component-suites/dash_ag_grid/async-community.js"
                      ).status_code == 200


def test_the_token_protects_the_ui_and_a_token_link_sets_a_cookie(recorded):
    from api_server import ServedApp
    from dash_ui.server import create_server_app

    with ServedApp(create_server_app(recorded, token="s3cret")) as served, \
            httpx.Client(base_url=served.url, timeout=10) as c:
        assert c.get("/").status_code == 401
        assert c.get("/?token=wrong").status_code == 401
        assert c.get("/", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        first = c.get("/?token=s3cret")
        assert first.status_code == 303 and first.headers["location"] == "/"
        assert c.get("/").status_code == 200  # the cookie now
        assert c.get("/api/health").status_code == 200  # the API takes the UI's cookie too
        assert httpx.get(served.url + "/api/health", timeout=10).status_code == 401


def test_callbacks_over_real_http_through_the_mounted_app(client):
    body = {"output": "..om-grid.getRowsResponse...om-sort-note.children..",
            "outputs": [_prop("om-grid.getRowsResponse"), _prop("om-sort-note.children")],
            "inputs": [{"id": "om-grid", "property": "getRowsRequest",
                        "value": {"startRow": 0, "endRow": 100, "sortModel": []}}],
            "state": [dict(_prop(k), value=v) for k, v in {
                "om-dates.start_date": None, "om-dates.end_date": None,
                "om-process.value": None, "om-data.value": None,
                "om-errors-only.value": True, "om-service.value": None,
                **NO_WINDOW}.items()],
            "changedPropIds": ["om-grid.getRowsRequest"]}
    r = client.post("/_dash-update-component", json=body)
    assert r.status_code == 200
    rows = r.json()["response"]["om-grid"]["getRowsResponse"]["rowData"]
    assert rows and {row["Status"] for row in rows} == {"ERR"}


def test_the_api_and_the_callbacks_call_one_query_service(recorded, monkeypatch):
    """The server builds one TraceQueries; the API's routes and the Dash callbacks both
    call it, so the table and the API cannot disagree."""
    from api_server import ServedApp
    from dash_ui import service
    from dash_ui.server import create_server_app

    built, asked = [], []

    class Recorded(service.TraceQueries):
        def __init__(self, path):
            super().__init__(path)
            built.append(self)

        def health(self, **kw):
            asked.append(self)
            return super().health(**kw)

    monkeypatch.setattr(service, "TraceQueries", Recorded)
    body = {"output": "..om-ribbon.children...om-banner.children...om-recording.children..",
            "outputs": [_prop("om-ribbon.children"), _prop("om-banner.children"),
                        _prop("om-recording.children")],
            "inputs": [dict(_prop("om-tick.n_intervals"), value=1)],
            "changedPropIds": ["om-tick.n_intervals"]}
    with ServedApp(create_server_app(recorded)) as served, \
            httpx.Client(base_url=served.url, timeout=10) as c:
        assert c.get("/api/health").status_code == 200
        assert c.post("/_dash-update-component", json=body).status_code == 200
    assert len(built) == 1 and asked == [built[0], built[0]]


def _texts(node) -> list[str]:
    """Every string in a serialised component tree."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [t for n in node for t in _texts(n)]
    if isinstance(node, dict):
        return [t for v in node.get("props", {}).values() for t in _texts(v)] \
            if "props" in node else []
    return []


def test_clicking_an_error_row_opens_the_drill_down(flask):
    row = get_rows(flask, errors_only=True)["rowData"][0]
    out = open_drilldown(flask, {"rowId": f"{row['span_id']}:{row['seq']}",
                                 "colId": "Process", "value": row["Process"]})
    assert out["om-modal"]["is_open"] is True
    assert out["om-modal-title"]["children"] == "ui_workload.check_limit"
    body = out["om-modal-body"]["children"]
    text = "".join(_texts(body))
    assert "def check_limit" in text                      # the source, as text spans
    assert "ValueError" in text                           # the traceback
    graph = json.dumps(body)
    assert '"om-sparkline"' in graph and '"type": "scatter"' in graph
    assert any("om-source" in json.dumps(b) for b in body)


def test_clicking_a_row_of_the_calls_view_opens_the_same_drill_down(flask):
    call = get_rows(flask, errors_only=True, grid="om-calls", note="om-calls-note"
                    )["rowData"][0]
    row = next(r for r in get_rows(flask, errors_only=True, end=1000)["rowData"]
               if r["span_id"] == call["span_id"])
    from_calls = open_drilldown(flask, calls_cell={"rowId": call["span_id"],
                                                   "colId": "inputs", "value": call["inputs"]})
    from_rows = open_drilldown(flask, {"rowId": f"{row['span_id']}:{row['seq']}",
                                       "colId": "Process", "value": row["Process"]})
    assert from_calls["om-modal"]["is_open"] is True
    assert from_calls["om-modal-title"]["children"] == call["process"] == \
        "ui_workload.check_limit"
    text = "".join(_texts(from_calls["om-modal-body"]["children"]))
    assert "def check_limit" in text and "ValueError" in text
    assert _texts(from_calls["om-modal-body"]["children"]) == \
        _texts(from_rows["om-modal-body"]["children"])
    for out in ("om-modal", "om-modal-title", "om-trace", "om-trace-note", "om-trace-state"):
        assert from_calls[out] == from_rows[out], out


def test_the_drill_down_shows_a_script_value_as_text(flask):
    rows = get_rows(flask, end=1000)["rowData"]
    row = next(r for r in rows if SCRIPT in r["Data Value"])
    out = open_drilldown(flask, {"rowId": f"{row['span_id']}:{row['seq']}"})
    texts = _texts(out["om-modal-body"]["children"])
    assert row["Data Value"] in texts                     # a Td's text child, not markup
    assert "dangerously" not in json.dumps(out)


def test_date_range_and_sort_model_map_to_the_query():
    from dash_ui.callbacks.table import row_filter, sort_key

    f = row_filter("2026-01-02", "2026-01-02", "", "  ", None)
    assert f.since_ns == 1767312000 * 10**9                 # 2026-01-02T00:00Z
    assert f.until_ns - f.since_ns == 86400 * 10**9         # the end day is included
    assert f.process is None and f.data is None and f.errors_only is False
    assert sort_key([{"colId": "duration_ms", "sort": "asc"}]) == "duration_ms"
    assert sort_key([{"colId": "process", "sort": "desc"}]) == "-process"
    assert sort_key([{"colId": "Data Value", "sort": "asc"}]) == "-timestamp"  # unsortable
    assert sort_key(None) == "-timestamp"


def test_rows_outside_the_date_range_are_left_out(flask):
    out = run_callback(
        flask, ["om-grid.getRowsResponse", "om-sort-note.children"],
        {"om-grid.getRowsRequest": {"startRow": 0, "endRow": 100, "sortModel": []}},
        {"om-dates.start_date": "2000-01-01", "om-dates.end_date": "2000-01-31",
         "om-process.value": None, "om-data.value": None, "om-errors-only.value": False,
         "om-service.value": None, **NO_WINDOW})
    assert out["om-grid"]["getRowsResponse"] == {"rowData": [], "rowCount": 0}


def test_the_ui_embeds_in_an_existing_dash_app(recorded):
    import importlib.util
    from pathlib import Path

    example = Path(__file__).parents[2] / "examples" / "embed_in_dash_app.py"
    spec = importlib.util.spec_from_file_location("embed_example", example)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    host = module.build(str(recorded))
    flask = host.server.test_client()
    page = flask.get("/").get_data(as_text=True)
    for name in ("bootstrap.min.css", "otel.css", "dashAgGridComponentFunctions.js"):
        url = f"/_otel-monitor/assets/{name}"
        assert url in page and flask.get(url).status_code == 200
    assert flask.get("/_otel-monitor/assets/../app.py").status_code == 404
    assert host.layout["om-grid"].rowModelType == "infinite"
    assert "My trading desk" in json.dumps(host.layout.to_plotly_json(), default=str)
    rows = get_rows(flask, errors_only=True)["rowData"]
    assert rows and {r["Status"] for r in rows} == {"ERR"}


def _reproduce_text(flask, row) -> str:
    out = open_drilldown(flask, {"rowId": f"{row['span_id']}:{row['seq']}"})
    pre = next(b for b in out["om-modal-body"]["children"]
               if b["props"].get("id") == "om-reproduce")
    return pre["props"]["children"]


def test_the_reproduce_snippet_reproduces_a_recorded_exception(flask, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    row = get_rows(flask, errors_only=True)["rowData"][0]
    code = _reproduce_text(flask, row)
    assert "fn = load('ui_workload.check_limit')" in code
    script = tmp_path / "repro.py"
    script.write_text(code)
    here = Path(__file__).parent  # the workload's module; this checkout's otel_monitor
    env = {"PYTHONPATH": f"{here}:{here.parents[1]}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 1
    assert "ValueError: negative limit for b" in done.stderr


def test_reproduce_stops_at_placeholders_for_masked_and_non_literal_values():
    """A value that cannot be rebuilt is never None: it is a named placeholder, with the
    recorded repr beside it, and the snippet stops before the call until it is filled."""
    from dash_ui.reproduce import snippet

    call = {"process": "m.f", "span_id": "0" * 16, "status": "ERR", "timestamp": "t",
            "values": [
                {"data": "a", "data_type": "INPUT", "data_value": "[1, 'x']"},
                {"data": "password", "data_type": "INPUT", "data_value": "<HASHED:0a1b>"},
                {"data": "obj", "data_type": "INPUT", "data_value": "<Obj at 0x1>"},
                {"data": "return", "data_type": "OUTPUT", "data_value": "1"}]}
    code = snippet(call)
    assert "result = call(fn, a=[1, 'x'], password=PASSWORD, obj=OBJ)" in code
    assert "PASSWORD = ...  # masked: <HASHED:0a1b>" in code
    assert "OBJ = ...  # recorded: <Obj at 0x1>" in code
    assert "require(PASSWORD=PASSWORD, OBJ=OBJ)" in code
    assert code.index("require(") < code.index("result = call(")
    assert "None" not in code
    compile(code, "<snippet>", "exec")


def test_graph_nodes_show_short_labels_and_keep_the_full_name():
    from dash_ui.callbacks.graph import elements

    graph = {"nodes": [
        {"id": "p:otel_monitor.demo.MarketDataClient.fetch_quote", "kind": "process",
         "name": "otel_monitor.demo.MarketDataClient.fetch_quote"},
        {"id": "p:otel_monitor.demo.black_scholes", "kind": "process",
         "name": "otel_monitor.demo.black_scholes"},
        {"id": "f:bbg.fx", "kind": "feed", "name": "bbg.fx", "stale": True}], "edges": []}
    labels = {e["data"]["name"]: e["data"]["label"] for e in elements(graph)}
    assert labels == {"otel_monitor.demo.MarketDataClient.fetch_quote":
                      "MarketDataClient.fetch_quote",
                      "otel_monitor.demo.black_scholes": "black_scholes",
                      "bbg.fx": "bbg.fx"}


def test_a_sparkline_without_calls_in_its_window_says_so():
    from dash_ui.callbacks.drilldown import sparkline

    empty = sparkline({"points": []})
    assert [a.text for a in empty.layout.annotations] == ["no calls in the last 30 min"]
    drawn = sparkline({"points": [{"start_ns": 10**18, "avg_ms": 2.0}]})
    assert not drawn.layout.annotations and list(drawn.data[0].y) == [2.0]


# -- the note of a page sorted within a bounded window of calls ----------------------

@pytest.fixture(scope="module")
def bounded_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("bounded") / "bounded.db"
    return (path, *make_bounded_store(path))


@pytest.fixture(scope="module")
def bounded_http(bounded_db):
    from api_server import ServedApp
    from dash_ui.server import create_server_app

    with ServedApp(create_server_app(bounded_db[0])) as served, \
            httpx.Client(base_url=served.url, timeout=30) as c:
        yield c


def _rows_and_note(c: httpx.Client, *, sort=None, process=None, data=NAME, start=0,
                   end=100):
    """The table's callback over HTTP: (the grid's block, the note or None if the
    response leaves the note line as it was)."""
    body = {"output": "..om-grid.getRowsResponse...om-sort-note.children..",
            "outputs": [_prop("om-grid.getRowsResponse"), _prop("om-sort-note.children")],
            "inputs": [dict(_prop("om-grid.getRowsRequest"),
                            value={"startRow": start, "endRow": end,
                                   "sortModel": sort or []})],
            "state": [dict(_prop(k), value=v) for k, v in {
                "om-dates.start_date": None, "om-dates.end_date": None,
                "om-process.value": process, "om-data.value": data,
                "om-errors-only.value": False, "om-service.value": None,
                **NO_WINDOW}.items()],
            "changedPropIds": ["om-grid.getRowsRequest"]}
    r = c.post("/_dash-update-component", json=body)
    assert r.status_code == 200, r.text
    out = r.json()["response"]
    return out["om-grid"]["getRowsResponse"], out.get("om-sort-note", {}).get("children")


def test_the_layout_has_a_note_line_under_the_grid(dash_app):
    note = dash_app.layout["om-sort-note"]
    assert "text-muted" in note.className and not note.children


def test_a_bounded_sort_is_stated_under_the_grid_and_cleared_when_exact(
        bounded_http, bounded_db):
    _, calls, window = bounded_db
    slowest = [{"colId": "duration_ms", "sort": "desc"}]
    block, note = _rows_and_note(bounded_http, sort=slowest)
    assert note and f"newest {window:,} calls" in note
    # The note is true: the order was taken within the newest calls, so the slowest
    # (oldest) calls of the store are not at the top.
    durations = [r["duration_ms"] for r in block["rowData"]]
    assert durations == sorted(durations, reverse=True)
    assert durations[0] == window < calls
    # A later block keeps the note on screen.
    assert _rows_and_note(bounded_http, sort=slowest, start=100, end=200)[1] == note
    # Back to the time order without the name filter: an exact page clears the line
    # (""), and its later blocks leave it as it is.
    block, note = _rows_and_note(bounded_http, data=None)
    assert note == "" and block["rowData"][0]["duration_ms"] == 1.0  # the newest call
    assert _rows_and_note(bounded_http, data=None, start=100, end=200)[1] is None
    # A process filter whose calls fit in the window: the duration order is exact.
    block, note = _rows_and_note(bounded_http, sort=slowest, process=QUIET)
    assert note == ""
    assert block["rowData"][0]["duration_ms"] == float(calls)  # the oldest, slowest call


def test_graph_hover_latency_has_three_significant_digits_in_a_unit_that_fits():
    from dash_ui.callbacks.graph import describe, latency, rate_level

    assert [latency(v) for v in (0.001, 0.1234, 0.9996, 1.5, 12.345, 999.96, 12345)] == [
        "1 µs", "123 µs", "1 ms", "1.5 ms", "12.3 ms", "1 s", "12.3 s"]
    assert describe({"name": "p", "kind": "process", "last_latency_ms": 0.001,
                     "errors": 87, "calls": 100, "error_rate": 0.87}) == \
        "p: last latency 1 µs, errors (30 min): 87 of 100 calls (87.0%)"
    assert [rate_level(r) for r in (None, 0, 0.01, 0.05, 0.9)] == [
        "ok", "ok", "stale", "err", "err"]


def _process_colours(app) -> dict[str, str]:
    """Each process node's colour as the graph draws it: its elements from the graph's
    callback, each node's level matched by the graph's stylesheet."""
    out = run_callback(app.server.test_client(), ["om-graph.elements"],
                       {"om-tick.n_intervals": 1})
    styles = {rule["selector"]: rule["style"] for rule in app.layout["om-graph"].stylesheet}
    return {e["data"]["name"]: styles[f'node[kind = "process"][level = "{e["data"]["level"]}"]'
                                      ]["background-color"]
            for e in out["om-graph"]["elements"] if e["data"].get("kind") == "process"}


def test_graph_colour_thresholds_come_from_the_settings(recorded, monkeypatch):
    failing = "ui_workload.check_limit"          # 3 of its 6 calls failed
    assert _process_colours(create_dash_app(recorded))[failing] == TOKENS["err"]
    monkeypatch.setenv("OTEL_MONITOR_GRAPH_ERROR_RATE_RED", "0.6")
    assert _process_colours(create_dash_app(recorded))[failing] == TOKENS["stale"]
    monkeypatch.setenv("OTEL_MONITOR_GRAPH_ERROR_RATE_AMBER", "0.5")
    colours = _process_colours(create_dash_app(recorded))
    assert colours[failing] == TOKENS["ok"]
    monkeypatch.setenv("OTEL_MONITOR_GRAPH_ERROR_RATE_RED", "0.5")
    assert _process_colours(create_dash_app(recorded))[failing] == TOKENS["err"]  # from it on


def test_each_ribbon_badge_explains_itself_on_hover(flask):
    out = run_callback(flask, ["om-ribbon.children", "om-banner.children",
                              "om-recording.children"],
                       {"om-tick.n_intervals": 1})
    badges = {b["props"]["id"]: b["props"] for b in out["om-ribbon"]["children"]}
    queue = badges["om-badge-QueueDepth"]["title"]
    assert "not yet written" in queue and "Amber from 1,000, red from 5,000." in queue
    assert re.search(r"Measured [\d.e+]+ s ago\.", queue)
    lag = badges["om-badge-SQLiteWriteLag"]["title"]
    assert "Amber from 500 ms, red from 2,000 ms." in lag
    feed = badges["om-badge-LastFeedUpdate"]["title"]
    # judged against the stale feed's own interval
    assert "Feed refinitiv.rates, its interval" in feed and "(1.5x)" in feed and "(2x)" in feed
    assert re.search(r"Last update [\d.e+]+ s ago\.", feed)
    assert "last 5 minutes" in badges["om-badge-errors"]["title"]


def test_ribbon_thresholds_come_from_the_settings(recorded, monkeypatch):
    from dash_ui.service import query_service

    monkeypatch.setenv("OTEL_MONITOR_RIBBON_QUEUE_RED", "100000")
    monkeypatch.setenv("OTEL_MONITOR_RIBBON_QUEUE_AMBER", "50000")
    monkeypatch.setenv("OTEL_MONITOR_RIBBON_FEED_RED_FACTOR", "1e9")
    monkeypatch.setenv("OTEL_MONITOR_RIBBON_FEED_AMBER_FACTOR", "1e8")
    health = query_service(recorded).health()
    assert health["badges"]["QueueDepth"]["thresholds"] == (50000, 100000)
    assert health["badges"]["QueueDepth"]["level"] == "ok"      # 6,000 queued
    assert health["badges"]["LastFeedUpdate"]["level"] == "ok"  # not 1e8 intervals old


def test_a_closed_feed_is_grey_in_the_graph_and_the_ribbon():
    """Issue 15: a feed outside its hours (level ``closed``) is drawn with the grey
    ``closed`` token, its edges grey and dashed; the ribbon colours that level grey."""
    from dash_ui._theme import LEVEL_COLOURS
    from dash_ui.callbacks.graph import describe, elements
    from dash_ui.layout import GRAPH_STYLE

    out = elements({"nodes": [{"id": "feed:lse.px", "name": "lse.px", "kind": "feed",
                               "stale": False, "closed": True, "age_s": 9000.0}],
                    "edges": [{"source": "feed:lse.px", "target": "risk.run", "kind": "feed",
                               "stale": False, "closed": True}]})
    assert out[0]["data"]["closed"] is True and out[1]["data"]["closed"] is True
    style = {s["selector"]: s["style"] for s in GRAPH_STYLE}
    assert style["node[?closed]"]["background-color"] == TOKENS["closed"]
    assert style["edge[?closed]"]["line-color"] == TOKENS["closed"]
    assert style["edge[?closed]"]["line-style"] == "dashed"
    assert LEVEL_COLOURS["closed"] == TOKENS["closed"]
    assert describe(out[0]["data"]).endswith("(closed: outside its hours)")


def test_the_calls_grid_is_not_in_the_page_until_its_view_is_shown(dash_app):
    """The calls view's grid is mounted (clientside) when that view is first shown: a
    page showing the rows view neither creates it nor asks for its first block
    (e2e/test_first_render.py watches the requests in Chromium)."""
    from dash_ui.layout import calls_grid

    layout = dash_app.layout
    with pytest.raises(KeyError):
        layout["om-calls"]
    assert layout["om-calls-view"]["om-calls-holder"].children is None
    mount = [c for c in dash_app._callback_list
             if c["output"] == "om-calls-holder.children"]
    assert len(mount) == 1 and mount[0].get("clientside_function")
    assert [i["id"] for i in mount[0]["inputs"]] == ["om-view"]
    # the grid it mounts is the layout's, whole (in the page's inline scripts)
    grid = json.dumps(calls_grid().to_plotly_json())
    assert any(grid in script for script in dash_app._inline_scripts)
    # callbacks naming it are checked against the validation layout, which has it
    assert dash_app.validation_layout["om-calls"].rowModelType == "infinite"


def test_the_page_loads_the_chunks_its_first_render_needs_with_its_bundles(flask):
    """The dropdowns', the date picker's and the grid's lazily loaded chunks are loaded
    with the page's bundles (async scripts: their import() is resolved by the time React
    first renders those components); each address is one the app serves."""
    page = flask.get("/").get_data(as_text=True)
    preloaded = re.findall(r'<script async src="([^"]+)"></script>', page)
    assert sorted(p.rsplit("/", 1)[-1] for p in preloaded) == [
        "async-community.js", "async-datepicker.js", "async-dropdown.js"]
    for address in preloaded:
        assert address.startswith("/_dash-component-suites/")
        assert flask.get(address).status_code == 200, address
