"""`otel-monitor serve`: runs the server with uvicorn; a clear error without the UI."""
from __future__ import annotations

import os
import sqlite3
import stat
import time

import httpx

from exporters.schema import SCHEMA_VERSION
from exporters.store import SpanStore

from otel_monitor import cli
from otel_monitor.cli import serve as serve_command
from served_cli import served_cli


def test_serve_runs_the_api_over_the_store(recorded):
    env = {k: v for k, v in os.environ.items() if k != "OTEL_MONITOR_UI_TOKEN"}
    with served_cli(recorded, env) as served:
        r = httpx.get(f"{served.url}/api/health", timeout=10)
        assert r.status_code == 200 and r.json()["badges"]["QueueDepth"]["level"] == "red"
        page = httpx.get(f"{served.url}/", timeout=10)
        assert page.status_code == 200 and 'id="_dash-config"' in page.text  # the UI


def test_serve_without_the_ui_extra_says_how_to_install_it(recorded, monkeypatch, capsys):
    monkeypatch.setattr(serve_command, "UI_MODULE", "dash_ui_not_installed_here")
    assert cli.main(["serve", "--db", str(recorded)]) == cli.EXIT_ERROR
    assert "otel-monitor[ui]" in capsys.readouterr().err


def test_serve_on_a_new_path_creates_the_store_and_takes_otlp_at_once(tmp_path):
    """A central receiver on a path where nothing was recorded yet (issue 12): the store
    is made at the current schema, its file and folder with the same modes as the
    decorator's writer makes them (same umask), and a span sent at once is stored."""
    new = tmp_path / "central" / "new.db"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_MONITOR_", "OTEL_EXPORTER_OTLP"))}
    with served_cli(new, env) as served:
        assert httpx.get(f"{served.url}/api/health", timeout=10).status_code == 200
        body = {"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "name": "first.span", "startTimeUnixNano": str(time.time_ns() - 1000),
            "endTimeUnixNano": str(time.time_ns())}]}]}]}
        r = httpx.post(f"{served.url}/v1/traces", json=body, timeout=10)
        assert r.status_code == 200 and r.json() == {}, r.text
        rows = httpx.get(f"{served.url}/api/rows", timeout=10).json()["rows"]
        assert [r["Process"] for r in rows] == ["first.span"]
    con = sqlite3.connect(new)
    try:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                           ).fetchone() == (str(SCHEMA_VERSION),)
    finally:
        con.close()
    local = tmp_path / "local" / "app.db"
    SpanStore(local).close()  # what the decorator's writer makes (same code, same umask)
    assert stat.S_IMODE(new.stat().st_mode) == stat.S_IMODE(local.stat().st_mode)
    assert stat.S_IMODE(new.parent.stat().st_mode) == \
        stat.S_IMODE(local.parent.stat().st_mode)


def test_serve_on_a_path_it_cannot_create_fails_clearly(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert cli.main(["serve", "--db", str(blocker / "x.db")]) == cli.EXIT_ERROR
    assert str(blocker) in capsys.readouterr().err
