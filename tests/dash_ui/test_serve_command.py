"""`otel-monitor serve`: runs the server with uvicorn; a clear error without the UI."""
from __future__ import annotations

import os

import httpx

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


def test_serve_on_a_missing_store_fails_clearly(tmp_path, capsys):
    assert cli.main(["serve", "--db", str(tmp_path / "none.db")]) == cli.EXIT_ERROR
    assert "no such store" in capsys.readouterr().err
