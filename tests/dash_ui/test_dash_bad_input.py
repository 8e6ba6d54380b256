"""The Dash callbacks take what a hand-made request sends: a bad grid block request, a
date that is not one or that the store cannot hold, a click of the wrong shape, a filter
value that is not text, a graph node of another shape. Each is answered with a harmless
result (200, or Dash's 204 for "nothing to update") or a 4xx, never a 500."""
from __future__ import annotations

import pytest

from dash_ui.app import create_dash_app

GOOD_BLOCK = {"startRow": 0, "endRow": 100, "sortModel": [], "filterModel": {}}


@pytest.fixture(scope="module")
def dash_app(recorded):
    return create_dash_app(recorded)


@pytest.fixture(scope="module")
def flask(dash_app):
    return dash_app.server.test_client()


def url_callback(flask, dash_app, search, filters=None, searched=None, fired=0, zone=None,
                 window=None, shown=None):
    """The URL's callback (its outputs named as the app registered them: some are
    shared with other callbacks, so they carry a suffix), fired by input number
    ``fired`` (0: the URL, 1..6: a filter, 7: the search box, 8..10: the time window,
    11: the zone of the time inputs); ``window``: the time window's values, ``shown``:
    the trace view's state (a drill-down was shown)."""
    from dash_ui.callbacks.url import FILTERS, WINDOW

    key = next(k for k in dash_app.callback_map if k.startswith("..om-url.search"))
    outputs = [dict(zip(("id", "property"), o.split(".", 1)))
               for o in key.strip(".").split("...")]
    values = filters or [None] * len(FILTERS)
    inputs = [{"id": "om-url", "property": "search", "value": search}] + [
        {"id": cid, "property": prop, "value": v} for (cid, prop), v in zip(FILTERS, values)
    ] + [{"id": "om-search", "property": "value", "value": searched}] + [
        {"id": cid, "property": prop, "value": v}
        for (cid, prop), v in zip(WINDOW, window or [None] * len(WINDOW))] + [
        {"id": "om-zone", "property": "data", "value": zone}]
    body = {"output": key, "outputs": outputs, "inputs": inputs,
            "state": [{"id": "om-feed", "property": "data", "value": None},
                      {"id": "om-trace-state", "property": "data", "value": shown}],
            "changedPropIds": [f"{inputs[fired]['id']}.{inputs[fired]['property']}"]}
    return flask.post("/_dash-update-component", json=body)


def _post(flask, outputs: list[dict], inputs: list[dict], state: list[dict],
          changed: int | None = None):
    """``changed``: the index of the one input that fired (all by default)."""
    names = [f"{o['id']}.{o['property']}" for o in outputs]
    body = {"output": names[0] if len(names) == 1 else ".." + "...".join(names) + "..",
            "outputs": outputs[0] if len(outputs) == 1 else outputs,
            "inputs": inputs, "state": state,
            "changedPropIds": [f"{i['id']}.{i['property']}" for i in
                               (inputs if changed is None else inputs[changed:changed + 1])]}
    return flask.post("/_dash-update-component", json=body)


def rows(flask, request, start_date=None, end_date=None):
    return _post(flask,
                 [{"id": "om-grid", "property": "getRowsResponse"},
                  {"id": "om-sort-note", "property": "children"}],
                 [{"id": "om-grid", "property": "getRowsRequest", "value": request}],
                 [{"id": "om-dates", "property": "start_date", "value": start_date},
                  {"id": "om-dates", "property": "end_date", "value": end_date},
                  {"id": "om-process", "property": "value", "value": None},
                  {"id": "om-data", "property": "value", "value": None},
                  {"id": "om-errors-only", "property": "value", "value": False},
                  {"id": "om-service", "property": "value", "value": None},
                  {"id": "om-range", "property": "value", "value": None},
                  {"id": "om-time-from", "property": "value", "value": None},
                  {"id": "om-time-to", "property": "value", "value": None},
                  {"id": "om-zone", "property": "data", "value": None}])


def _harmless(r) -> None:
    assert r.status_code in (200, 204) or 400 <= r.status_code < 500, (
        r.status_code, r.get_data(as_text=True)[:300])


@pytest.mark.parametrize("start", [-1, -10**6, "abc", "1e3", 2**63, 10**30, 1.5, None,
                                   [], {"a": 1}, True, float("nan")])
def test_a_bad_start_row_is_harmless(flask, start):
    _harmless(rows(flask, {**GOOD_BLOCK, "startRow": start}))


@pytest.mark.parametrize("end", [-1, "x", 2**63, 10**30, [], 0])
def test_a_bad_end_row_is_harmless(flask, end):
    _harmless(rows(flask, {**GOOD_BLOCK, "endRow": end}))


@pytest.mark.parametrize("request_", ["x", 5, [], {"sortModel": "desc"},
                                      {"sortModel": [5, "x", {"colId": []}]}])
def test_a_bad_block_request_is_harmless(flask, request_):
    _harmless(rows(flask, request_))


@pytest.mark.parametrize("day", ["yesterday", "2026-13-01", "9999-12-31", "0001-01-01",
                                 "1600-01-01", "2262-04-12", 5, ["2026-01-01"], ""])
def test_a_bad_date_is_harmless(flask, day):
    _harmless(rows(flask, GOOD_BLOCK, start_date=day))
    _harmless(rows(flask, GOOD_BLOCK, end_date=day))


def test_dates_past_the_range_the_store_holds_keep_every_call(flask):
    r = rows(flask, GOOD_BLOCK, start_date="1000-01-01", end_date="9999-12-31")
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    assert r.get_json()["response"]["om-grid"]["getRowsResponse"]["rowData"]


def test_a_good_block_still_has_rows(flask):
    r = rows(flask, GOOD_BLOCK)
    assert r.status_code == 200
    assert r.get_json()["response"]["om-grid"]["getRowsResponse"]["rowData"]


@pytest.mark.parametrize("cell", ["x", 5, [], {"rowId": 5}, {"rowId": ["a"]},
                                  {"rowId": "zzzzzzzzzzzzzzzz:1"}, {"rowId": None},
                                  {"rowId": "ffffffffffffffff"}, {"rowId": "-" * 16}])
def test_a_bad_cell_click_is_harmless(flask, cell):
    _harmless(open_drilldown(flask, cell))


@pytest.mark.parametrize("cell", ["x", 5, [], {"rowId": 5}, {"rowId": ["a"]},
                                  {"rowId": "zzzzzzzzzzzzzzzz"}, {"rowId": None},
                                  {"rowId": "ffffffffffffffff"}, {"rowId": "f" * 16 + ":0"},
                                  {"rowId": "-" * 16}])
def test_a_bad_calls_view_click_is_harmless(flask, cell):
    _harmless(open_drilldown(flask, calls_cell=cell, fired=3))


def open_drilldown(flask, cell=None, opened=None, trace_cell=None, shown=None, fired=0,
                   picked=None, calls_cell=None):
    """The drill-down's callback, fired by its input number ``fired`` (0: a table click,
    1: a link or the search, 2: a click in the trace view, 3: in the calls view)."""
    outputs = [{"id": i, "property": p} for i, p in (
        ("om-modal", "is_open"), ("om-modal-title", "children"),
        ("om-modal-body", "children"), ("om-trace", "rowData"),
        ("om-trace-note", "children"), ("om-trace-state", "data"), ("om-trace", "scrollTo"))]
    r = _post(flask, outputs,
              [{"id": "om-grid", "property": "cellClicked", "value": cell},
               {"id": "om-open", "property": "data", "value": opened},
               {"id": "om-trace", "property": "cellClicked", "value": trace_cell},
               {"id": "om-calls", "property": "cellClicked", "value": calls_cell}],
              [{"id": "om-trace-state", "property": "data", "value": shown},
               {"id": "om-picked", "property": "data", "value": picked}], changed=fired)
    return r


@pytest.mark.parametrize("opened", ["x", 5, [], {"span_id": 5}, {"span_id": "zz" * 8},
                                    {"missing": ["a"]}, {"span_id": "f" * 16}, None])
def test_a_bad_open_request_is_harmless(flask, opened):
    _harmless(open_drilldown(flask, opened=opened, fired=1))


@pytest.mark.parametrize("picked", [5, [], {"a": 1}, "zz", "f" * 16, "a" * 5000])
def test_a_bad_picked_call_is_harmless(flask, picked):
    _harmless(open_drilldown(flask, {"rowId": "f" * 16 + ":0"}, picked=picked))


@pytest.mark.parametrize("cell, shown", [
    ({"rowId": "f" * 16, "colId": "toggle"}, None), ({"rowId": "f" * 16}, {"x": 1}),
    ({"rowId": "f" * 16, "colId": "toggle"}, {"trace_id": 5, "selected": None}),
    ({"rowId": "f" * 16, "colId": "toggle"}, {"trace_id": "ab" * 16, "selected": "x",
                                              "collapsed": 7}),
    ({"rowId": 5}, {"trace_id": "ab" * 16}), ("x", None), ({"rowId": "f" * 16}, "x")])
def test_a_bad_trace_view_click_is_harmless(flask, cell, shown):
    _harmless(open_drilldown(flask, trace_cell=cell, shown=shown, fired=2))


@pytest.mark.parametrize("search", [5, None, [], "?span_id=zz&trace_id=1", "?errors=2&from=x",
                                    "?process=" + "a" * 5000, "?trace_id=" + "ab" * 16,
                                    "span_id=" + "f" * 16, "?from=9999-99-99"])
def test_a_bad_url_is_harmless(flask, dash_app, search):
    _harmless(url_callback(flask, dash_app, search))


@pytest.mark.parametrize("searched", [5, [], {"a": 1}, "", "   ", "z" * 16, "a" * 5000])
def test_a_bad_search_is_harmless(flask, dash_app, searched):
    _harmless(url_callback(flask, dash_app, "", searched=searched, fired=7))


@pytest.mark.parametrize("value", [5, [], {"a": 1}, "x" * 5000, True])
def test_a_bad_filter_value_makes_a_harmless_url(flask, dash_app, value):
    _harmless(url_callback(flask, dash_app, "", filters=[value] * 6, fired=1))
