"""SLOs in the server (issue 16): ``GET /api/slos`` (each SLO's SLI now, budget left,
burn rate per alert window, state) over a real store's rollups, served by uvicorn; the
SLOs tab beside Calls and Errors, its callback driven through Dash's HTTP endpoint with
the API's figures; ``otel-monitor serve`` reading the settings' ``slo_file`` (and
refusing a bad one)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from api_server import ServedApp
from exporters import SpanStore
from exporters.store import ProcessEntry
from otel_monitor.slo import SLO
from served_cli import served_cli

PROCESS = "svc.quote"
SLOS = (SLO("quote-availability", process=PROCESS, objective=99.0, window="1h"),
        SLO("quote-latency", service="pricer", kind="latency", objective=90.0,
            threshold_ms=100, window="28d"),
        SLO("idle", process_group="nobody", objective=99.9))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """100 calls of svc.quote (service pricer) now: 20 failed, 30 slower than 100 ms."""
    path = tmp_path_factory.mktemp("slos") / "slos.db"
    st = SpanStore(path)
    pid = st.process_ids([ProcessEntry(PROCESS, "pricing")])[PROCESS]
    now = time.time_ns()
    spans: list = []
    for i in range(100):
        failed = i < 20
        spans += (i, 5_000 + i, "%032x" % i, None, now - i * 10**6,
                  500.0 if 20 <= i < 50 else 3.0, pid, "pricing", "pricer",
                  "ERR" if failed else "OK", "error" if failed else "ok", None,
                  "boom" if failed else None, 1, None)
    st.insert_calls(spans, [])
    st.close()
    return path


@pytest.fixture(scope="module")
def queries(store):
    """The store's reads as of the instant its calls were written: the 1-hour SLO's page
    windows (scaled to seconds) read the calls' minute at minute resolution, so read a
    minute later they would find none, and the state would depend on when a test ran."""
    from exporters.queries import TraceQueries

    reads = TraceQueries(store)
    written = reads.db.scalar("SELECT max(start_ns) FROM spans")
    reads.clock = lambda: written
    return reads


@pytest.fixture(scope="module")
def served(store, queries):
    from dash_ui.server import create_server_app

    with ServedApp(create_server_app(store, slos=SLOS)) as app:
        app.app.state.queries.clock = queries.clock
        yield app


def test_api_slos_gives_each_slo_now(served):
    with httpx.Client(base_url=served.url, timeout=10) as c:
        r = c.get("/api/slos")
    assert r.status_code == 200
    got = {s["name"]: s for s in r.json()}
    assert list(got) == ["quote-availability", "quote-latency", "idle"]
    avail = got["quote-availability"]
    assert avail["selector"] == {"process": PROCESS} and avail["window"] == "1h"
    assert avail["sli"] == pytest.approx(80.0) and avail["calls"] == 100.0
    assert avail["budget_remaining"] == pytest.approx(1 - 20.0)   # 20% bad / 1% budget
    assert [(b["severity"], b["factor"]) for b in avail["burn_rates"]] == \
        [("page", 14.4), ("page", 6.0), ("ticket", 1.0)]
    first = avail["burn_rates"][0]
    assert first["long_burn_rate"] == pytest.approx(20.0) and first["holds"]
    assert first["long_window_s"] == pytest.approx(3600 * 3600 / (28 * 86400))  # scaled
    assert avail["state"] == "page"
    latency = got["quote-latency"]
    assert latency["sli"] == pytest.approx(70.0)  # 30 slow; the failed ones were fast
    # 3x its budget: under both page factors, over the ticket's
    assert latency["threshold_ms"] == 100.0 and latency["state"] == "ticket"
    idle = got["idle"]
    assert (idle["sli"], idle["calls"], idle["budget_remaining"], idle["state"]) \
        == (None, 0.0, 1.0, "ok")


def test_the_slos_tab_is_the_third_and_lists_the_apis_figures(queries):
    from dash_ui.app import create_dash_app
    from test_dash_errors import Tab

    tab = Tab.__new__(Tab)
    tab.app = create_dash_app(queries, token_resolved=True, slos=lambda: SLOS)
    tab.flask = tab.app.server.test_client()
    layout = tab.app.layout
    assert [t.tab_id for t in layout["om-tabs"].children] == ["calls", "errors", "slos"]
    assert layout["om-slos-tab"].style == {"display": "none"}
    hidden = tab.call("om-slos-body.children", {"om-tick.n_intervals": 1,
                                                 "om-tabs.active_tab": "calls"})
    assert hidden is None   # a hidden tab is not listed
    out = tab.call("om-slos-body.children", {"om-tick.n_intervals": 1,
                                              "om-tabs.active_tab": "slos"})
    rows = out["om-slos-body.children"]
    assert len(rows) == 3
    text = repr(rows)
    for shown in ("quote-availability", "80.000%", "-1900.0%", "process=svc.quote",
                  "page ≥14.4x: 20.00x over", "'data-state': 'page'", "no calls",
                  "'data-state': 'ok'", "'data-state': 'ticket'", "70.000%"):
        assert shown in text, shown
    assert out["om-slos-note.children"].startswith("3 SLO(s): 1 paging, 1 ticket")


def test_serve_shows_the_slo_file_of_its_settings_and_refuses_a_bad_one(store, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_MONITOR_")}
    good = tmp_path / "slos.yaml"
    # 28 days: its page windows (1 h and 5 min) hold the calls written minutes ago
    # whenever the served process reads them (its clock is the wall clock)
    good.write_text(f"slos:\n  - name: quote-availability\n    process: {PROCESS}\n"
                    "    objective: 99\n    window: 28d\n")
    with served_cli(store, {**env, "OTEL_MONITOR_SLO_FILE": str(good)}) as server:
        got = httpx.get(server.url + "/api/slos", timeout=10).json()
    assert [(s["name"], s["state"], round(s["sli"], 3)) for s in got] \
        == [("quote-availability", "page", 80.0)]
    bad = tmp_path / "bad.yaml"
    bad.write_text("slos:\n  - name: x\n    process: p\n    objective: 100\n")
    done = subprocess.run([sys.executable, "-m", "otel_monitor.cli", "serve", "--db",
                           str(store), "--port", "9"], env={**env,
                           "OTEL_MONITOR_SLO_FILE": str(bad)}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "objective" in done.stderr


def test_a_burn_rate_alerts_link_opens_the_slos_tab(store):
    from dash_ui.app import create_dash_app
    from otel_monitor.alerts.model import ui_link
    from test_dash_errors import Tab

    tab = Tab.__new__(Tab)
    tab.app = create_dash_app(store, token_resolved=True, slos=lambda: SLOS)
    tab.flask = tab.app.server.test_client()
    link = ui_link("http://ui.test", tab="slos", slo="quote-availability")  # burn.py's
    out = tab.call("om-tabs.active_tab", {"om-url-tab.data": "?" + link.split("?", 1)[1]})
    assert out["om-tabs.active_tab"] == "slos"
    assert tab.call("om-tabs.active_tab", {"om-url-tab.data": "?tab=calls"}) is None
