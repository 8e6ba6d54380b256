"""Grafana provisioning: fixed datasource uids that the dashboard uses, the dashboard's
panels, and its SQLite (frser-sqlite-datasource) queries run with sqlite3 on a real store
written by the decorator and the state writers."""
from __future__ import annotations

import sqlite3
import time

import pytest

import otel_monitor
from exporters.columns import SEVEN_COLUMNS
from exporters.state import FeedState, StateStore
from recording import recording_into, settings_env_cleared
from stack_files import (CONFIG, compose, dashboard, datasources, host_path, load_yaml, panels,
                         targets)

EXPECTED_UIDS = {"prometheus": "otel-prometheus", "tempo": "otel-tempo",
                 "frser-sqlite-datasource": "otel-sqlite"}


def test_datasources_have_fixed_uids_and_point_at_the_stack():
    by_type = {d["type"]: d for d in datasources()}
    assert {t: d["uid"] for t, d in by_type.items()} == EXPECTED_UIDS
    services = compose()["services"]
    tempo = load_yaml(host_path("tempo", "/etc/tempo.yaml"))
    assert by_type["prometheus"]["url"] == "http://prometheus:9090" and "prometheus" in services
    assert by_type["tempo"]["url"] == f"http://tempo:{tempo['server']['http_listen_port']}"
    assert by_type["tempo"]["jsonData"]["serviceMap"]["datasourceUid"] == "otel-prometheus"
    # The SQLite file is on the volume otel-monitor writes, where it writes it.
    db = by_type["frser-sqlite-datasource"]["jsonData"]["path"]
    assert db == compose()["services"]["otel-monitor"]["environment"]["OTEL_MONITOR_DB"]


def test_grafana_mounts_the_provisioning_and_the_dashboards():
    provider = load_yaml(host_path("grafana", "/etc/grafana/provisioning/dashboards/"
                                              "dashboards.yaml"))["providers"][0]
    folder = host_path("grafana", provider["options"]["path"])
    assert (folder / "otel-monitor.json").is_file()
    assert host_path("grafana", "/etc/grafana/provisioning/datasources/datasources.yaml") \
        == (CONFIG / "grafana/provisioning/datasources/datasources.yaml").resolve()
    environment = compose()["services"]["grafana"]["environment"]
    home = environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path("grafana", home).is_file()


def test_every_datasource_the_dashboard_names_is_provisioned():
    provisioned = {(d["type"], d["uid"]) for d in datasources()}
    used = set()
    for panel in panels():
        refs = [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]
        for ref in filter(None, refs):
            used.add((ref["type"], ref["uid"]))
    for var in dashboard()["templating"]["list"]:
        used.add((var["datasource"]["type"], var["datasource"]["uid"]))
    assert used == provisioned  # all three used, none unknown


def test_dashboard_has_red_service_graph_errors_feeds_and_the_seven_columns():
    by_type: dict[str, list[str]] = {}
    for panel in panels():
        by_type.setdefault(panel["type"], []).append(panel["title"])
    exprs = [t["expr"] for _, t in targets("prometheus")]
    assert any("traces_span_metrics_calls_total" in e and "rate(" in e for e in exprs)
    assert any('status_code="STATUS_CODE_ERROR"' in e for e in exprs)
    assert any("traces_span_metrics_duration_milliseconds_bucket" in e for e in exprs)
    assert any("otel_monitor_feed_age_seconds" in e for e in exprs)
    assert any("otel_monitor_call_errors_total" in e for e in exprs)
    node_graph = [t for p, t in targets("tempo") if p["type"] == "nodeGraph"]
    assert node_graph and node_graph[0]["queryType"] == "serviceMap"
    assert len({p["id"] for p in panels()}) == len(list(panels()))  # ids unique
    assert dashboard()["uid"] == "otel-monitor-overview"


# -- the SQLite panels on a real store ---------------------------------------------------

@otel_monitor.monitor("grafana-tests")
def book(trade_id: int, qty: float) -> float:
    return qty * 2


@otel_monitor.monitor("grafana-tests")
def settle(trade_id: int) -> None:
    raise RuntimeError(f"cannot settle {trade_id}")


@otel_monitor.monitor("grafana-tests")
def halt() -> None:
    raise SystemError("halted")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("grafana") / "store.db"
    with settings_env_cleared():
        with recording_into(path):
            for i in range(6):
                book(i, 1.5)
            for i in range(2):
                with pytest.raises(RuntimeError):
                    settle(i)
            with pytest.raises(SystemError):
                halt()  # a failed call without variables: one row, empty Data
        state = StateStore(path)
        state.write_feeds([FeedState("bbg.fx", 1.0, 10.0, time.time_ns() - 3 * 10**9, 4,
                                     False)])
        state.close()
        yield path


def sqlite_panels() -> dict[str, str]:
    return {p["title"]: t["rawQueryText"] for p, t in targets("frser-sqlite-datasource")}


def run_panel(path, query: str, *, plan: bool = False):
    """The query as Grafana sends it for "last hour" ($__from/$__to: ms since the epoch)."""
    now_ms = int(time.time() * 1000)
    sql = query.replace("$__from", str(now_ms - 3_600_000)).replace("$__to", str(now_ms + 1000))
    assert "$" not in sql, sql
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if plan:
            return " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql))
        cur = conn.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()
    finally:
        conn.close()


def panel_query(word: str) -> str:
    [query] = [q for title, q in sqlite_panels().items() if word in title]
    return query


def test_the_seven_column_panel_shows_the_trace_rows(store):
    columns, rows = run_panel(store, panel_query("seven columns"))
    assert tuple(columns) == tuple(SEVEN_COLUMNS)
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    trace_rows = conn.execute("SELECT * FROM trace_rows").fetchall()
    conn.close()
    assert len(rows) == len(trace_rows) == 6 * 3 + 2 * 1 + 1  # a raise has no output row
    assert sorted(rows) == sorted(trace_rows)  # the same rows, exactly
    assert rows[0][4] == max(r[4] for r in trace_rows)  # newest first
    assert {r[5] for r in rows if r[0].endswith(".settle")} == {"ERR"}
    [halted] = [r for r in rows if r[0].endswith(".halt")]
    assert halted[1:4] == ("", "", "") and "SystemError: halted" in halted[6]


def test_the_seven_column_panel_reads_the_time_index(store):
    assert "spans_by_time" in run_panel(store, panel_query("seven columns"), plan=True)


def test_the_error_panel_lists_each_failed_call(store):
    columns, rows = run_panel(store, panel_query("errors"))
    assert columns[:4] == ["Timestamp", "Process", "Type", "Exception"]
    assert len(rows) == 3
    assert sorted(r[2] for r in rows) == ["RuntimeError", "RuntimeError", "SystemError"]
    assert "spans_errors_by_time" in run_panel(store, panel_query("errors"), plan=True)


def test_the_feeds_panel_shows_each_feed_with_its_age(store):
    columns, rows = run_panel(store, panel_query("Feeds"))
    # Feeds this test process ticked elsewhere are in the store too (the pipeline's
    # registry is the process's): the panel's row for the one written here.
    [row] = [dict(zip(columns, r)) for r in rows if r[columns.index("Feed")] == "bbg.fx"]
    assert row["Ticks"] == 4
    assert 2 <= row["Age (s)"] < 120
