"""Deep links and URL state: ``?span_id=`` / ``?trace_id=`` open a drill-down on load,
the filter parameters set the filters, a filter change writes the URL anew, the search
box takes a span id, a trace id or a process name; the drill-down shows the call's trace
as a waterfall whose spans switch the drill-down and whose subtrees collapse."""
from __future__ import annotations

import time

import pytest

from dash_ui import trace_view
from dash_ui.app import create_dash_app
from dash_ui.callbacks.url import parse, unparse
from test_dash_app import get_rows, open_drilldown
from test_dash_bad_input import url_callback


@pytest.fixture(scope="module")
def dash_app(recorded):
    return create_dash_app(recorded)


@pytest.fixture(scope="module")
def flask(dash_app):
    return dash_app.server.test_client()


def outputs(response) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_json()["response"]


def nested_call(flask) -> dict:
    """A row of ui_workload.price, which calls fee: a trace of two spans."""
    return next(r for r in get_rows(flask, end=500)["rowData"]
                if r["Process"] == "ui_workload.price")


def test_the_url_and_the_filters_map_both_ways():
    search = "?process=a.b&errors=1&from=2026-01-02&to=2026-01-03T10:00:00Z&data=spot"
    p = parse(search)
    assert (p["process"], p["errors"], p["from"], p["to"], p["data"]) == \
        ("a.b", True, "2026-01-02", "2026-01-03", "spot")
    assert unparse("a.b", True, "2026-01-02", "2026-01-03", "spot") == \
        "?process=a.b&errors=1&from=2026-01-02&to=2026-01-03&data=spot"
    assert unparse() == ""
    assert parse("?span_id=" + "AB" * 8)["span_id"] == "ab" * 8
    assert parse("?span_id=xyz&trace_id=12")["span_id"] is None


def test_a_span_id_link_opens_its_drill_down_and_sets_the_filters(flask, dash_app):
    row = nested_call(flask)
    out = outputs(url_callback(flask, dash_app,
                               f"?process=ui_workload.price&errors=1&span_id={row['span_id']}"))
    assert out["om-process"]["value"] == "ui_workload.price"
    assert out["om-errors-only"]["value"] is True
    assert out["om-open"]["data"] == {"span_id": row["span_id"]}
    opened = open_drilldown(flask, opened=out["om-open"]["data"])
    assert opened["om-modal"]["is_open"] is True
    assert opened["om-modal-title"]["children"] == "ui_workload.price"
    rows = opened["om-trace"]["rowData"]
    assert [(r["process"], r["depth"], r["selected"]) for r in rows] == [
        ("ui_workload.price", 0, True), ("ui_workload.fee", 1, False)]


def test_a_trace_id_link_opens_the_drill_down_of_the_traces_first_span(flask, dash_app):
    row = nested_call(flask)
    out = outputs(url_callback(flask, dash_app, f"?trace_id={row['trace_id']}"))
    assert out["om-open"]["data"] == {"span_id": row["span_id"]}
    missing = outputs(url_callback(flask, dash_app, "?trace_id=" + "0" * 32))
    assert "missing" in missing["om-open"]["data"]


def test_a_filter_change_writes_the_url(flask, dash_app):
    out = outputs(url_callback(flask, dash_app, "?span_id=" + "a" * 16,
                               filters=["ui_workload.fee", True, "2026-01-02", None, None,
                                        None], fired=1))
    assert out["om-url"]["search"] == "?process=ui_workload.fee&errors=1&from=2026-01-02"


def test_the_search_box_takes_a_span_id_a_trace_id_or_a_process(flask, dash_app):
    row = nested_call(flask)
    by_span = outputs(url_callback(flask, dash_app, "", searched=row["span_id"].upper(),
                                   fired=7))
    assert by_span["om-open"]["data"] == {"span_id": row["span_id"]}
    by_trace = outputs(url_callback(flask, dash_app, "", searched=row["trace_id"], fired=7))
    assert by_trace["om-open"]["data"] == {"span_id": row["span_id"]}
    by_name = outputs(url_callback(flask, dash_app, "", searched=" ui_workload.fee ",
                                   fired=7))
    assert by_name["om-process"]["value"] == "ui_workload.fee"
    assert by_name["om-url"]["search"] == "?process=ui_workload.fee"


def test_clicking_a_span_of_the_trace_switches_and_its_toggle_collapses(flask):
    row = nested_call(flask)
    first = open_drilldown(flask, {"rowId": f"{row['span_id']}:0"})
    shown = first["om-trace-state"]["data"]
    child = first["om-trace"]["rowData"][1]["span_id"]
    switched = open_drilldown(flask, trace_cell={"rowId": child, "colId": "process"},
                              shown=shown)
    assert switched["om-modal-title"]["children"] == "ui_workload.fee"
    assert [r["selected"] for r in switched["om-trace"]["rowData"]] == [False, True]
    folded = open_drilldown(flask, trace_cell={"rowId": row["span_id"], "colId": "toggle"},
                            shown=shown)
    assert [r["span_id"] for r in folded["om-trace"]["rowData"]] == [row["span_id"]]
    assert folded["om-trace"]["rowData"][0]["collapsed"] is True
    assert "om-modal-body" not in folded  # the drill-down itself stays


def _spans(n: int, fanout: int) -> list[dict]:
    """A trace of ``n`` spans, each the child of span (i - 1) // fanout."""
    return [{"span_id": "%016x" % i, "parent_span_id": None if i == 0 else
             "%016x" % ((i - 1) // fanout), "process": f"p{i % 7}", "start_ns": i * 1000,
             "duration_ms": 0.5, "status": "ERR" if i % 97 == 0 else "OK", "pid": 1}
            for i in range(n)]


def test_a_10000_span_trace_opens_collapsed_off_the_selected_path_quickly():
    spans = _spans(10_000, 4)
    selected = "%016x" % 9_999
    began = time.perf_counter()
    collapsed = trace_view.initially_collapsed(spans, selected)
    rows = trace_view.rows(spans, selected, collapsed)
    assert time.perf_counter() - began < 1.0
    assert rows[-1]["selected"] or any(r["selected"] for r in rows)
    assert len(rows) < 100                               # only the path and its siblings
    everything = trace_view.rows(spans, selected)        # all expanded: still one pass
    assert len(everything) == 10_000
    assert all(0 <= r["left"] and r["left"] + r["width"] <= 100.001 for r in everything)


def test_a_10000_deep_chain_and_an_orphan_are_rows_too():
    spans = _spans(10_000, 1) + [{"span_id": "f" * 16, "parent_span_id": "e" * 16,
                                  "process": "orphan", "start_ns": 5, "duration_ms": 0.0,
                                  "status": "OK", "pid": 2}]
    rows = trace_view.rows(spans, None)
    assert len(rows) == 10_001 and rows[-2]["depth"] == 9_999
    assert rows[-1]["process"] == "orphan" and rows[-1]["depth"] == 0


def test_the_time_window_in_the_url_both_ways():
    p = parse("?from=2026-01-02T09:30:00Z&to=2026-01-02T10:15:30Z")
    assert (p["from"], p["from_time"], p["to"], p["to_time"], p["last"]) == \
        ("2026-01-02", "09:30:00", "2026-01-02", "10:15:30", None)
    assert unparse(start="2026-01-02", end="2026-01-02", time_from="09:30",
                   time_to="10:15:30") == "?from=2026-01-02T09%3A30%3A00Z&to=2026-01-02T10%3A15%3A30Z"
    preset = parse("?from=now-15m")
    assert (preset["last"], preset["from"], preset["to"]) == ("15m", None, None)
    assert unparse(last="15m", start="2026-01-02") == "?from=now-15m"
    assert unparse(last="live", start="2026-01-02") == "?from=2026-01-02"
    assert parse("?from=now-7m")["last"] is None           # not a preset
    assert parse("?from=2026-01-02T25:00:00Z")["from_time"] is None


def test_the_url_sets_the_time_window(flask, dash_app):
    out = outputs(url_callback(flask, dash_app, "?from=now-1h"))
    assert out["om-range"]["value"] == "1h"
    out = outputs(url_callback(flask, dash_app, "?from=2026-01-02T09:30:00Z"))
    assert "om-range" not in out      # no preset: the dropdown stays as it is (live)
    assert out["om-time-from"]["value"] == "09:30:00"
    assert out["om-dates"]["start_date"] == "2026-01-02"


def test_a_preset_and_times_of_day_make_the_row_filter():
    from dash_ui.callbacks.table import row_filter

    now = 1_767_312_000 * 10**9 + 12 * 3600 * 10**9          # 2026-01-02T12:00Z
    f = row_filter("2000-01-01", "2000-01-02", None, None, False, last="15m", now_ns=now)
    assert (f.since_ns, f.until_ns) == (now - 900 * 10**9, None)  # the dates unused
    f = row_filter("2026-01-02", "2026-01-02", None, None, False, time_from="09:30",
                   time_to="10:00:00.5")
    day = 1_767_312_000 * 10**9
    assert f.since_ns == day + 9.5 * 3600 * 10**9
    assert f.until_ns == day + 10 * 3600 * 10**9 + 500_000_000
    f = row_filter("2026-01-02", None, None, None, False, last="live", time_from="bad")
    assert (f.since_ns, f.until_ns) == (day, None)


KOLKATA = "Asia/Kolkata"   # UTC+05:30 all year


def test_times_of_day_are_read_on_the_clocks_of_the_zone_shown():
    """The browser's zone (the UTC switch off) or UTC: the window's instants follow it; a
    day without a time stays a whole UTC day; an unknown zone is read as UTC."""
    from dash_ui.callbacks.table import row_filter

    day = 1_767_312_000 * 10**9                              # 2026-01-02T00:00Z
    f = row_filter("2026-01-02", "2026-01-02", None, None, False, time_from="02:00",
                   time_to="10:00:00.5", zone=KOLKATA)
    assert f.since_ns == day - 3.5 * 3600 * 10**9            # 2026-01-01T20:30Z
    assert f.until_ns == day + 4.5 * 3600 * 10**9 + 500_000_000
    for utc in ("UTC", None, "Not/A_Zone", "../../etc/passwd", 5, "x" * 100):
        f = row_filter("2026-01-02", None, None, None, False, time_from="02:00", zone=utc)
        assert f.since_ns == day + 2 * 3600 * 10**9, utc
    f = row_filter("2026-01-02", "2026-01-02", None, None, False, zone=KOLKATA)
    assert (f.since_ns, f.until_ns) == (day, day + 24 * 3600 * 10**9)


def test_the_url_keeps_utc_instants_whatever_the_zone_of_the_inputs():
    assert unparse(start="2026-01-02", end="2026-01-02", time_from="02:00",
                   time_to="10:15:30", zone=KOLKATA) == \
        "?from=2026-01-01T20%3A30%3A00Z&to=2026-01-02T04%3A45%3A30Z"
    p = parse("?from=2026-01-01T20:30:00Z&to=2026-01-02T04:45:30Z", KOLKATA)
    assert (p["from"], p["from_time"], p["to"], p["to_time"]) == \
        ("2026-01-02", "02:00:00", "2026-01-02", "10:15:30")
    p = parse("?from=2026-01-01T20:30:00Z&to=2026-01-02", "UTC")
    assert (p["from"], p["from_time"], p["to"], p["to_time"]) == \
        ("2026-01-01", "20:30:00", "2026-01-02", None)
    assert unparse(start="2026-01-02", zone=KOLKATA) == "?from=2026-01-02"  # a whole day


def test_the_utc_switch_shows_the_same_window_on_the_other_clocks(flask, dash_app):
    search = "?from=2026-01-01T20:30:00Z&span_id=" + "a" * 16
    local = outputs(url_callback(flask, dash_app, search, zone=KOLKATA, fired=11))
    assert (local["om-dates"]["start_date"], local["om-time-from"]["value"]) == \
        ("2026-01-02", "02:00:00")
    assert "om-url" not in local                      # the window itself is unchanged
    assert local["om-open"]["data"] == {"span_id": "a" * 16}   # on load: opened
    utc = outputs(url_callback(flask, dash_app, search, zone="UTC", fired=11,
                               filters=[None, False, "2026-01-02", None, None, None],
                               window=["live", "02:00:00", None], shown={"trace_id": "x"}))
    assert (utc["om-dates"]["start_date"], utc["om-time-from"]["value"]) == \
        ("2026-01-01", "20:30:00")
    assert "om-open" not in utc and "om-url" not in utc    # not opened again
    # a time typed on the browser's clocks goes into the URL as its UTC instant
    typed = outputs(url_callback(flask, dash_app, "", zone=KOLKATA, fired=9,
                                 filters=[None, False, "2026-01-02", None, None, None],
                                 window=["live", "02:00", None]))
    assert typed["om-url"]["search"] == "?from=2026-01-01T20%3A30%3A00Z"


def test_the_url_on_load_leaves_the_inputs_it_agrees_with(flask, dash_app):
    """Setting an input to the value it has would purge the grids and fetch twice."""
    out = outputs(url_callback(flask, dash_app, "?errors=1"))
    assert out["om-errors-only"]["value"] is True
    set_values = {(cid, prop) for cid, props in out.items() for prop in props}
    assert not {("om-process", "value"), ("om-dates", "start_date"), ("om-dates", "end_date"),
                ("om-data", "value"), ("om-service", "value"), ("om-range", "value"),
                ("om-time-from", "value"), ("om-time-to", "value")} & set_values
    back = outputs(url_callback(flask, dash_app, "", filters=[None, True, None, None, None,
                                                              None]))
    assert back["om-errors-only"]["value"] is False       # back to a URL without it


def test_a_url_naming_no_call_leaves_the_drill_down_be(flask, dash_app):
    """On load (and for any URL naming no call) the URL's callback does not touch
    om-open: the drill-down's callback is not fired for nothing."""
    out = outputs(url_callback(flask, dash_app, "?process=ui_workload.fee"))
    assert out["om-process"]["value"] == "ui_workload.fee"
    assert "om-open" not in out
    assert "om-open" not in outputs(url_callback(flask, dash_app, ""))


def test_on_load_the_server_answers_only_what_the_first_render_shows(dash_app):
    """The server callbacks that fire on load (all inputs as in the layout): the ribbon,
    the graph and the URL's (filters, options). Hidden tabs, the drill-down, the tab
    link (?error=, ?tab=: a clientside check passes those on) and the calls grid (not
    mounted) wait for what shows or asks for them."""
    on_load = sorted(c["output"].strip(".").split("...")[0].split("@")[0]
                     for c in dash_app._callback_list
                     if not c.get("clientside_function")
                     and c.get("prevent_initial_call") in (None, False, "initial_duplicate"))
    # (the ribbon's badges, banners and recording banner: one request, one health read)
    assert on_load == ["om-graph.elements", "om-ribbon.children", "om-url.search"]
    # and in the browser, on load, only what the layout cannot say: the zone (and the
    # UTC switch's times), the view and the column widths kept in the browser, the URL
    # naming a tab. Each is a renderer cycle on the first render's path.
    in_browser = sorted(c["output"].strip(".").split("...")[0].split("@")[0]
                        for c in dash_app._callback_list if c.get("clientside_function")
                        and c.get("prevent_initial_call") in (None, False,
                                                              "initial_duplicate"))
    assert in_browser == ["om-calls-holder.children", "om-grid.columnState",
                          "om-rows-view.style", "om-url-tab.data", "om-zone.data"]
    tab_link = next(c for c in dash_app._callback_list
                    if c["output"].startswith("..om-tabs.active_tab"))
    assert [f"{i['id']}.{i['property']}" for i in tab_link["inputs"]] == ["om-url-tab.data"]
