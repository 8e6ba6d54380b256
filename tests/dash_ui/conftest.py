"""Fixtures for the API tests: one store recorded through the real decorator (and the
state writers), served by uvicorn on 127.0.0.1; clients talk to it over HTTP."""
from __future__ import annotations

import time

import httpx
import pytest

from api_server import ServedApp
from exporters.state import AlertRecord, FeedState, StateStore, FLAG_BACKPRESSURE
from recording import recording_into, settings_env_cleared

SCRIPT = "<script>alert(1)</script>"
INJECTIONS = ["' OR '1'='1", "x'; DROP TABLE spans; --", '" OR 1=1 --', "%", "_",
              "1) UNION SELECT name, sql FROM sqlite_master --"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A store with calls (nested, failing, a <script> value, injection strings as values),
    a fresh and a stale feed, an alert, a raised backpressure flag and a health row."""
    path = tmp_path_factory.mktemp("ui") / "ui.db"
    with settings_env_cleared():
        with recording_into(path):
            import ui_workload as w

            for i in range(30):
                w.price("AAPL", i)
            for book in ("b1", "b2", "b3"):
                w.check_limit(book, 5)
                with pytest.raises(ValueError):
                    w.check_limit(book, -1)
            w.render(SCRIPT)
            w.render_markup(SCRIPT)
            for text in INJECTIONS:
                w.render(text)
        write_state(path)
        yield path


def write_state(path) -> None:
    """A fresh and a stale feed, an alert, a raised backpressure flag, a health row."""
    state = StateStore(path)
    now = time.time_ns()
    state.write_feeds([
        FeedState("bbg.fx", 1.0, 10.0, now, 5, False),
        FeedState("refinitiv.rates", 1.0, 10.0, now - 30 * 10**9, 5, True),
    ])
    state.write_feed_edges([("bbg.fx", "ui_workload.price", True, False),
                            ("refinitiv.rates", "ui_workload.check_limit", False, True)])
    state.record_alerts([AlertRecord(now, "exception", "trigger", "k1", "slack https://h/…",
                                     "sent", 1, 1, f"ValueError {SCRIPT}")])
    state.set_flag(FLAG_BACKPRESSURE, raised=True, since_ns=now, value=6000,
                   message="queue backpressure")
    state.write_health(queue_depth=6000, queue_peak=6000, dropped=3, written=100,
                       write_lag_ms=10.0, last_write_ns=now, service_name="ui-tests")
    state.close()


@pytest.fixture(scope="module")
def server(recorded):
    from dash_ui.server import create_server_app

    with ServedApp(create_server_app(recorded)) as served:
        yield served


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c
