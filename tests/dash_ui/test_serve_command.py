"""`otel-monitor serve`: runs the server with uvicorn; a clear error without the UI."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

from otel_monitor import cli


def test_serve_runs_the_api_over_the_store(recorded):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "OTEL_MONITOR_UI_TOKEN"}
    proc = subprocess.Popen([sys.executable, "-m", "otel_monitor.cli", "serve", "--db",
                             str(recorded), "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "serve did not answer"
                time.sleep(0.1)
        assert r.status_code == 200 and r.json()["badges"]["QueueDepth"]["level"] == "red"
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and 'id="_dash-config"' in page.text  # the UI
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_without_the_ui_extra_says_how_to_install_it(recorded, monkeypatch, capsys):
    monkeypatch.setattr(cli, "UI_MODULE", "dash_ui_not_installed_here")
    assert cli.main(["serve", "--db", str(recorded)]) == cli.EXIT_ERROR
    assert "otel-monitor[ui]" in capsys.readouterr().err


def test_serve_on_a_missing_store_fails_clearly(tmp_path, capsys):
    assert cli.main(["serve", "--db", str(tmp_path / "none.db")]) == cli.EXIT_ERROR
    assert "no such store" in capsys.readouterr().err
