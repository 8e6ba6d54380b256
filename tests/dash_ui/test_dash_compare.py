"""A failed call's drill-down compares its inputs with the most recent OK call of the same
process, and any drill-down with a call picked before ("Pick to compare"): the values
that differ are highlighted (GET /api/calls/<id>/last-good serves the last OK call)."""
from __future__ import annotations

import httpx

from dash_ui.compare import diff
from test_dash_app import _texts, get_rows, open_drilldown
from test_dash_app import dash_app, flask  # noqa: F401  (fixtures, used by name)


def _find(node, component_id):
    if isinstance(node, list):
        return next((f for n in node if (f := _find(n, component_id)) is not None), None)
    if isinstance(node, dict) and "props" in node:
        if node["props"].get("id") == component_id:
            return node
        return _find(list(node["props"].values()), component_id)
    return None


def test_inputs_are_diffed_by_name():
    this = [{"data": "a", "data_type": "INPUT", "data_value": "1"},
            {"data": "b", "data_type": "INPUT", "data_value": "2"},
            {"data": "return", "data_type": "OUTPUT", "data_value": "9"}]
    other = [{"data": "b", "data_type": "INPUT", "data_value": "3"},
             {"data": "c", "data_type": "INPUT", "data_value": "4"}]
    assert diff(this, other) == [
        {"data": "a", "this": "1", "other": None, "changed": True},
        {"data": "b", "this": "2", "other": "3", "changed": True},
        {"data": "c", "this": None, "other": "4", "changed": True}]
    assert not any(r["changed"] for r in diff(this, this))


def test_a_failed_calls_drill_down_highlights_what_changed_since_the_last_ok_call(flask):
    row = get_rows(flask, errors_only=True)["rowData"][0]
    body = open_drilldown(flask, {"rowId": f"{row['span_id']}:0"})["om-modal-body"]["children"]
    table = _find(body, "om-compare")
    assert table is not None
    rows = table["props"]["children"][1]["props"]["children"]
    by_name = {r["props"]["children"][0]["props"]["children"]: r for r in rows}
    assert by_name["limit"]["props"]["className"] == "om-changed"
    assert [_texts(td)[0] for td in by_name["limit"]["props"]["children"]] == ["limit", "-1", "5"]
    assert by_name["book"]["props"].get("className") is None   # the same book


def test_an_ok_calls_drill_down_has_no_comparison(flask):
    row = next(r for r in get_rows(flask, end=500)["rowData"] if r["Status"] == "OK")
    body = open_drilldown(flask, {"rowId": f"{row['span_id']}:0"})["om-modal-body"]["children"]
    assert _find(body, "om-compare") is None


def test_the_last_good_call_is_served(client):
    row = client.get("/api/rows", params={"errors_only": "true"}).json()["rows"][0]
    r = client.get(f"/api/calls/{row['span_id']}/last-good")
    assert r.status_code == 200, r.text
    assert r.json()["process"] == row["Process"] and r.json()["status"] == "OK"
    assert client.get(f"/api/calls/{'0' * 16}/last-good").status_code == 404


def test_a_call_picked_before_is_compared_with_the_next_one_opened(flask):
    from test_dash_app import run_callback

    calls = {}
    for r in get_rows(flask, end=500)["rowData"]:
        calls.setdefault(r["Process"], r["span_id"])
    first = open_drilldown(flask, {"rowId": f"{calls['ui_workload.price']}:0"})
    picked = run_callback(flask, ["om-picked.data", "om-picked-note.children"],
                          {"om-pick.n_clicks": 1},
                          {"om-trace-state.data": first["om-trace-state"]["data"]})
    assert picked["om-picked"]["data"] == calls["ui_workload.price"]
    body = open_drilldown(flask, {"rowId": f"{calls['ui_workload.fee']}:0"},
                          picked=picked["om-picked"]["data"])["om-modal-body"]["children"]
    table = _find(body, "om-compare")
    rows = table["props"]["children"][1]["props"]["children"]
    names = [r["props"]["children"][0]["props"]["children"] for r in rows]
    assert names == ["qty", "symbol"]                        # fee's inputs, then price's
    assert all(r["props"]["className"] == "om-changed" for r in rows[1:])
