"""The Dash callbacks take what a hand-made request sends: a bad grid block request, a
date that is not one or that the store cannot hold, a click of the wrong shape, a filter
value that is not text, a graph node of another shape. Each is answered with a harmless
result (200, or Dash's 204 for "nothing to update") or a 4xx, never a 500."""
from __future__ import annotations

import pytest

from dash_ui.app import create_dash_app

GOOD_BLOCK = {"startRow": 0, "endRow": 100, "sortModel": [], "filterModel": {}}


@pytest.fixture(scope="module")
def flask(recorded):
    return create_dash_app(recorded).server.test_client()


def _post(flask, outputs: list[dict], inputs: list[dict], state: list[dict]):
    names = [f"{o['id']}.{o['property']}" for o in outputs]
    body = {"output": names[0] if len(names) == 1 else ".." + "...".join(names) + "..",
            "outputs": outputs[0] if len(outputs) == 1 else outputs,
            "inputs": inputs, "state": state,
            "changedPropIds": [f"{i['id']}.{i['property']}" for i in inputs]}
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
                  {"id": "om-service", "property": "value", "value": None}])


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
    _harmless(_post(flask,
                    [{"id": "om-modal", "property": "is_open"},
                     {"id": "om-modal-title", "property": "children"},
                     {"id": "om-modal-body", "property": "children"}],
                    [{"id": "om-grid", "property": "cellClicked", "value": cell}], []))


def rows_filtered(flask, process=None, data=None, service=None, errors_only=False):
    return _post(flask,
                 [{"id": "om-grid", "property": "getRowsResponse"},
                  {"id": "om-sort-note", "property": "children"}],
                 [{"id": "om-grid", "property": "getRowsRequest", "value": GOOD_BLOCK}],
                 [{"id": "om-dates", "property": "start_date", "value": None},
                  {"id": "om-dates", "property": "end_date", "value": None},
                  {"id": "om-process", "property": "value", "value": process},
                  {"id": "om-data", "property": "value", "value": data},
                  {"id": "om-errors-only", "property": "value", "value": errors_only},
                  {"id": "om-service", "property": "value", "value": service}])


@pytest.mark.parametrize("value", [5, ["a"], {"a": 1}, 1.5, True])
def test_a_filter_value_that_is_not_text_is_harmless(flask, value):
    for name in ("process", "data", "service"):
        _harmless(rows_filtered(flask, **{name: value}))
    _harmless(rows_filtered(flask, errors_only=value))


@pytest.mark.parametrize("node", ["x", 5, [], {}, {"kind": "feed"}, {"kind": "process"},
                                  {"kind": "feed", "label": "f", "age_s": "old"},
                                  {"label": "p", "last_latency_ms": "slow"},
                                  {"kind": "process", "label": ["p"]}])
def test_a_bad_graph_node_is_harmless(flask, node):
    _harmless(_post(flask, [{"id": "om-graph-hover", "property": "children"}],
                    [{"id": "om-graph", "property": "mouseoverNodeData", "value": node}], []))
    _harmless(_post(flask, [{"id": "om-process", "property": "value"}],
                    [{"id": "om-graph", "property": "tapNodeData", "value": node}], []))
