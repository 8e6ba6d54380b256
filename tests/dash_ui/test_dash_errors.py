"""The Errors tab, its callbacks driven through Dash's HTTP endpoint: it lists the store's
error groups (open ones by default) with their 6-hour sparklines, filtered by status,
process and service and sorted by last seen or count; resolve / ignore / snooze change
the group in the store through the server's GroupActions (resolve calls on_resolved),
and need the access token when one is set; a title click opens the group's latest call;
``?error=<fp>`` opens the tab on that group, and a failed call's drill-down links there.
The Calls tab stays the default."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dash_ui.app import create_dash_app
from dash_ui.callbacks.errors import TOKEN_REFUSED, tomorrow_at
from dash_ui.group_actions import GroupActions
from exporters.queries import RowFilter, TraceQueries

SERVICE = "errors-tab-tests"


E2E = Path(__file__).parent / "e2e"


def record(path) -> None:
    """Two groups: 5 ValueErrors of check_limit (after 5 calls that return), then 2
    KeyErrors of route_order (newer). Recorded by a process of its own: the service name
    comes from its environment, which a process that already has a tracer provider (an
    earlier test's) would not read again."""
    env = {**os.environ, "OTEL_SERVICE_NAME": SERVICE,
           "PYTHONPATH": os.pathsep.join([str(E2E), os.environ.get("PYTHONPATH", "")])}
    for name in [k for k in env if k.startswith("OTEL_MONITOR_")]:
        del env[name]
    done = subprocess.run(
        [sys.executable, "-c", "import sys, errors_workload; errors_workload.main(sys.argv[1])",
         str(path)], input="ok 5\nlimit 5\norder 2\n\n", env=env, capture_output=True,
        text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.split() == ["done"] * 3, done.stderr


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "errors.db"
    record(path)
    return path


class Tab:
    """The app over ``store`` with its Flask test client; ``resolved``: what its
    on_resolved hook was called with."""

    def __init__(self, store, token=None):
        self.resolved: list[dict] = []
        self.app = create_dash_app(store, token=token, token_resolved=True,
                                   group_actions=GroupActions(store, self.resolved.append))
        self.flask = self.app.server.test_client()
        self.queries = TraceQueries(store)

    def call(self, output: str, inputs: dict, state: dict | None = None,
             changed: str | None = None, headers: dict | None = None) -> dict | None:
        """The callback whose outputs include ``output`` ("id.prop") and whose inputs
        ``changed`` (the first input by default), posted as the browser does, that input
        firing it; its outputs by "id.prop", None
        when it updated nothing."""
        changed = changed or next(iter(inputs))
        key = next(k for k, spec in self.app.callback_map.items()
                   if output in [o.split("@")[0] for o in k.strip(".").split("...")]
                   and changed in [f"{i['id']}.{i['property']}" for i in spec["inputs"]])
        spec = self.app.callback_map[key]
        names = key.strip(".").split("...")

        def fill(items, values):
            return [{**i, "value": values.get(f"{i['id']}.{i['property']}")} for i in items]

        body = {"output": key,
                "outputs": [dict(zip(("id", "property"), n.split(".", 1))) for n in names]
                if len(names) > 1 else dict(zip(("id", "property"), names[0].split(".", 1))),
                "inputs": fill(spec["inputs"], inputs),
                "state": fill(spec["state"], state or {}),
                "changedPropIds": [changed]}
        r = self.flask.post("/_dash-update-component", json=body, headers=headers or {})
        if r.status_code == 204:
            return None
        assert r.status_code == 200, r.get_data(as_text=True)[:500]
        out = {f"{cid}.{prop.split('@')[0]}": value
               for cid, props in r.get_json()["response"].items()
               for prop, value in props.items()}
        return out or None

    def listed(self, status="open", process=None, service=None, sort="last_seen",
               wanted=None) -> dict:
        return self.call("om-errors-rows.data", {
            "om-tick.n_intervals": 1, "om-tabs.active_tab": "errors",
            "om-errors-status.value": status, "om-errors-process.value": process,
            "om-errors-service.value": service, "om-errors-sort.value": sort,
            "om-errors-changed.data": 0, "om-error-wanted.data": wanted},
            changed="om-tick.n_intervals")

    def rows(self, **filters) -> list[dict]:
        return self.listed(**filters)["om-errors-rows.data"]

    def act(self, button: str, group: dict, n=None, zone=None, utc=False,
            headers=None) -> dict | None:
        ids = ["om-errors-resolve", "om-errors-ignore", "om-errors-snooze-hour",
               "om-errors-snooze-morning", "om-errors-snooze-count"]
        return self.call("om-errors-action-note.children",
                         {f"{i}.n_clicks": 1 if i == button else None for i in ids},
                         {"om-errors-grid.selectedRows": [group] if group else [],
                          "om-errors-snooze-n.value": n, "om-tz.data": zone,
                          "om-utc.value": utc, "om-errors-changed.data": 3},
                         changed=f"{button}.n_clicks", headers=headers)

    def stored(self, fp: str) -> dict:
        return self.queries.error_group(fp)


def by_process(rows: list[dict]) -> dict[str, dict]:
    return {r["process"].rsplit(".", 1)[-1]: r for r in rows}


def test_the_calls_tab_is_the_default_and_the_errors_tab_is_hidden(store):
    layout = Tab(store).app.layout
    assert layout["om-tabs"].active_tab == "calls"
    assert [t.tab_id for t in layout["om-tabs"].children] == ["calls", "errors", "slos"]
    assert layout["om-errors-tab"].style == {"display": "none"}
    # the Calls content, in its tab (the calls view's grid, om-calls, is mounted into
    # its holder when that view is first shown: test_dash_app's lazy mount test)
    for cid in ("om-grid", "om-calls-holder", "om-graph"):
        assert layout["om-calls-tab"][cid] is not None


def test_the_tab_lists_open_groups_with_counts_and_sparklines(store):
    tab = Tab(store)
    out = tab.listed()
    rows = out["om-errors-rows.data"]
    assert [r["process"].rsplit(".", 1)[-1] for r in rows] == ["route_order", "check_limit"]
    groups = by_process(rows)
    assert (groups["check_limit"]["count"], groups["route_order"]["count"]) == (5, 2)
    assert groups["check_limit"]["count_last_hour"] == 5
    assert groups["check_limit"]["title"] == "ValueError: negative limit <n> for b<n>"
    for row in rows:
        assert len(row["spark"]) == 72 and sum(row["spark"]) == row["count"]
        assert row["status"] == "open" and row["first_seen_ns"] <= row["last_seen_ns"]
    assert out["om-errors-note.children"] == "2 error groups"
    assert {o["value"] for o in out["om-errors-process.options"]} == \
        {r["process"] for r in rows}
    assert [o["value"] for o in out["om-errors-service.options"]] == [SERVICE]


def test_the_grid_is_not_in_the_page_until_the_tab_is_shown(store):
    """The tab's grid is mounted (clientside) when the tab is first shown: a page opening
    on the Calls tab does not create a second grid on its first render. list_groups
    fills stores the grid is fed from, and runs again once the grid is mounted."""
    from dash_ui.layout import errors_grid

    app = Tab(store).app
    with pytest.raises(KeyError):
        app.layout["om-errors-grid"]
    assert app.layout["om-errors-tab"]["om-errors-holder"].children is None
    mount = [c for c in app._callback_list
             if c["output"].startswith("..om-errors-holder.children...")]
    assert len(mount) == 1 and mount[0].get("clientside_function")
    assert [i["id"] for i in mount[0]["inputs"]] == ["om-tabs"]
    assert json.dumps(errors_grid().to_plotly_json()) in "".join(app._inline_scripts)
    assert app.validation_layout["om-errors-grid"].getRowId == "params.data.fingerprint"
    feed = [c for c in app._callback_list
            if c["output"] == "..om-errors-grid.rowData...om-errors-grid.selectedRows.."]
    assert len(feed) == 1 and feed[0].get("clientside_function")
    assert [i["id"] for i in feed[0]["inputs"]] == ["om-errors-rows", "om-errors-select"]
    listing = next(spec for key, spec in app.callback_map.items()
                   if key.startswith("..om-errors-rows.data..."))
    assert {"id": "om-errors-mounted", "property": "data"} in \
        [{k: i[k] for k in ("id", "property")} for i in listing["inputs"]]


def test_a_hidden_tab_is_not_listed(store):
    tab = Tab(store)
    assert tab.call("om-errors-rows.data", {
        "om-tick.n_intervals": 1, "om-tabs.active_tab": "calls"},
        changed="om-tick.n_intervals") is None


def test_filters_and_sorts(store):
    tab = Tab(store)
    rows = tab.rows()
    limit = by_process(rows)["check_limit"]
    assert [r["fingerprint"] for r in tab.rows(process=limit["process"])] == \
        [limit["fingerprint"]]
    assert len(tab.rows(service=SERVICE)) == 2
    assert tab.rows(service="elsewhere") == []
    assert tab.listed(service="elsewhere")["om-errors-note.children"] == \
        "no error group matches"
    assert [r["count"] for r in tab.rows(sort="count")] == [5, 2]
    assert tab.rows(status="resolved") == []
    assert len(tab.rows(status="all")) == 2
    assert len(tab.rows(status="not-a-status", sort="not-a-sort")) == 2  # the defaults


def test_resolve_changes_the_store_and_calls_the_hook(store):
    tab = Tab(store)
    group = by_process(tab.rows())["check_limit"]
    out = tab.act("om-errors-resolve", group)
    assert out["om-errors-action-note.children"].endswith(": resolved")
    assert out["om-errors-changed.data"] == 4  # the list is read again
    assert tab.stored(group["fingerprint"])["status"] == "resolved"
    assert [g["fingerprint"] for g in tab.resolved] == [group["fingerprint"]]
    assert [r["fingerprint"] for r in tab.rows(status="resolved")] == [group["fingerprint"]]
    assert group["fingerprint"] not in {r["fingerprint"] for r in tab.rows()}


def test_ignore_and_the_three_snoozes(store):
    tab = Tab(store)
    groups = by_process(tab.rows())
    limit, order = groups["check_limit"], groups["route_order"]

    tab.act("om-errors-ignore", order)
    assert tab.stored(order["fingerprint"])["status"] == "ignored"
    assert tab.resolved == []

    before = datetime.now(timezone.utc)
    tab.act("om-errors-snooze-hour", limit)
    after = datetime.now(timezone.utc)
    stored = tab.stored(limit["fingerprint"])
    until = datetime.fromtimestamp(stored["snooze_until_ns"] / 1e9, timezone.utc)
    assert stored["status"] == "snoozed"
    assert before + timedelta(hours=1) - timedelta(seconds=1) <= until \
        <= after + timedelta(hours=1) + timedelta(seconds=1)

    london = ZoneInfo("Europe/London")
    before = datetime.now(london)
    out = tab.act("om-errors-snooze-morning", limit, zone="Europe/London")
    after = datetime.now(london)
    until = datetime.fromtimestamp(tab.stored(limit["fingerprint"])["snooze_until_ns"] / 1e9,
                                   london)
    assert until in {tomorrow_at(before), tomorrow_at(after)}
    assert (until.hour, until.minute) == (7, 0)
    assert "snoozed until" in out["om-errors-action-note.children"]

    tab.act("om-errors-snooze-morning", limit, zone="Europe/London", utc=True)  # UTC shown
    until = datetime.fromtimestamp(tab.stored(limit["fingerprint"])["snooze_until_ns"] / 1e9,
                                   timezone.utc)
    assert (until.hour, until.minute) == (7, 0)

    out = tab.act("om-errors-snooze-count", limit, n=3)
    stored = tab.stored(limit["fingerprint"])
    assert (stored["status"], stored["snooze_remaining"], stored["snooze_until_ns"]) == \
        ("snoozed", 3, None)
    assert out["om-errors-action-note.children"].endswith("snoozed for 3 more failures")
    assert {r["fingerprint"] for r in tab.rows(status="snoozed")} == {limit["fingerprint"]}


@pytest.mark.parametrize("n", [0, -2, 1.5, "3", True, None, 10**12])
def test_a_bad_n_is_said_and_changes_nothing(store, n):
    tab = Tab(store)
    group = by_process(tab.rows())["check_limit"]
    out = tab.act("om-errors-snooze-count", group, n=n)
    assert out["om-errors-action-note.children"].startswith("snooze for N failures: N must")
    assert "om-errors-changed.data" not in out
    assert tab.stored(group["fingerprint"])["status"] == "open"


def test_an_action_without_a_selected_group_asks_for_one(store):
    out = Tab(store).act("om-errors-resolve", None)
    assert out["om-errors-action-note.children"] == "select a group first"


def test_a_group_gone_from_the_store_is_said(store):
    tab = Tab(store)
    group = {**by_process(tab.rows())["check_limit"], "fingerprint": "f" * 32}
    out = tab.act("om-errors-resolve", group)
    assert out["om-errors-action-note.children"] == f"resolve: no error group {'f' * 32}"


def test_the_actions_need_the_token_when_one_is_set(store):
    tab = Tab(store, token="s3cret")
    group = by_process(tab.rows())["check_limit"]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": "otel_monitor_token=x"}):
        out = tab.act("om-errors-resolve", group, headers=headers)
        assert out["om-errors-action-note.children"] == TOKEN_REFUSED
        assert tab.stored(group["fingerprint"])["status"] == "open"
    assert tab.resolved == []
    tab.act("om-errors-ignore", group, headers={"Authorization": "Bearer s3cret"})
    assert tab.stored(group["fingerprint"])["status"] == "ignored"
    tab.flask.set_cookie("otel_monitor_token", "s3cret")  # as ?token= sets it
    tab.act("om-errors-resolve", group)
    assert tab.stored(group["fingerprint"])["status"] == "resolved"
    assert len(tab.resolved) == 1


def test_a_title_click_or_the_button_opens_the_latest_call(store):
    tab = Tab(store)
    group = by_process(tab.rows())["route_order"]
    fp = group["fingerprint"]
    out = tab.call("om-open.data", {"om-errors-grid.cellClicked": {
        "colId": "title", "rowId": fp, "value": group["title"]}},
        {"om-errors-grid.selectedRows": []})
    assert out == {"om-open.data": {"span_id": group["last_span_id"]}}
    assert tab.call("om-open.data", {"om-errors-grid.cellClicked": {
        "colId": "count", "rowId": fp}}) is None  # other cells only select
    out = tab.call("om-open.data", {"om-errors-open.n_clicks": 1},
                   {"om-errors-grid.selectedRows": [group]}, changed="om-errors-open.n_clicks")
    assert out == {"om-open.data": {"span_id": group["last_span_id"]}}
    # the drill-down opens on om-open as for a link: the call is the group's
    call = tab.queries.call(group["last_span_id"])
    assert call["status"] == "ERR" and call["process"] == group["process"]


def test_the_error_link_opens_the_tab_and_selects_the_group(store):
    tab = Tab(store)
    group = by_process(tab.rows())["check_limit"]
    fp = group["fingerprint"]
    tab.act("om-errors-resolve", group)  # listed all the same: the link sets any status
    out = tab.call("om-tabs.active_tab", {"om-url-tab.data": f"?error={fp}&span_id="
                   f"{group['last_span_id']}&trace_id={group['last_trace_id']}"})
    assert out == {"om-tabs.active_tab": "errors", "om-errors-status.value": "all",
                   "om-error-wanted.data": fp}
    assert tab.call("om-tabs.active_tab", {"om-url-tab.data": "?process=x"}) is None
    assert tab.call("om-tabs.active_tab", {"om-url-tab.data": "?error=nothex"}) is None
    out = tab.listed(status="all", wanted=fp)
    assert out["om-errors-select.data"] == {"ids": [fp]}
    assert out["om-error-wanted.data"] is None  # asked once
    # an unknown group is not selected, and still wanted (it may be written soon)
    out = tab.listed(status="all", wanted="e" * 32)
    assert "om-errors-select.data" not in out and "om-error-wanted.data" not in out


def test_the_selected_group_is_named():
    from dash_ui.callbacks.errors import selected_group

    assert selected_group([{"fingerprint": "a" * 32, "title": "T"}])["title"] == "T"
    for rows in (None, [], [{"fingerprint": "x"}], [None], "a" * 32):
        assert selected_group(rows) is None


def test_tomorrow_at_seven_is_wall_clock_time_across_a_dst_change():
    london = ZoneInfo("Europe/London")
    # the night the clocks go forward (29 March 2026): 07:00 BST is 06:00 UTC
    until = tomorrow_at(datetime(2026, 3, 28, 23, 30, tzinfo=london))
    assert until.isoformat() == "2026-03-29T07:00:00+01:00"
    assert tomorrow_at(datetime(2026, 12, 31, 0, 5, tzinfo=timezone.utc)).isoformat() == \
        "2027-01-01T07:00:00+00:00"


def test_the_status_pills_and_the_sparkline_use_the_theme_colours():
    from pathlib import Path

    import dash_ui
    from dash_ui._theme import TOKENS

    assets = Path(dash_ui.__file__).with_name("assets")
    css = (assets / "otel.css").read_text()
    for status, token in {"open": "err", "resolved": "ok", "ignored": "closed",
                          "snoozed": "stale"}.items():
        assert f".om-pill-{status} {{ background: {TOKENS[token]}; }}" in css
    js = (assets / "dashAgGridComponentFunctions.js").read_text()
    assert f'stroke: "{TOKENS["err"]}"' in js


def test_a_failed_calls_drill_down_links_to_its_group(store):
    tab = Tab(store)
    group = by_process(tab.rows())["route_order"]
    out = tab.call("om-modal.is_open", {"om-open.data": {"span_id": group["last_span_id"]}},
                   {"om-trace-state.data": None, "om-picked.data": None},
                   changed="om-open.data")
    assert out["om-modal.is_open"] is True
    body = json.dumps(out["om-modal-body.children"])
    assert f'"href": "?error={group["fingerprint"]}"' in body
    ok = tab.queries.page(RowFilter(process="errors_workload.check_limit"), limit=50).rows
    ok_span = next(r["span_id"] for r in ok if r["Status"] == "OK")
    out = tab.call("om-modal.is_open", {"om-open.data": {"span_id": ok_span}},
                   {"om-trace-state.data": None, "om-picked.data": None},
                   changed="om-open.data")
    assert "om-call-group" not in json.dumps(out["om-modal-body.children"])
