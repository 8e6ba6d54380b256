"""Browser fixtures: Debian's Chromium driven by pytest-playwright (no `playwright
install`), the UI served by a real ``otel-monitor serve`` process over a store that the
real decorator filled in processes of its own (tests/dash_ui/e2e/e2e_workload.py)."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
SERVICES = {"pricing": "e2e-pricing", "risk": "e2e-risk"}


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed (scripts/install-system-deps.sh)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking"]}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    # one size, so the screenshots in docs/ look alike from run to run
    return {**browser_context_args, "viewport": {"width": 1400, "height": 900}}


def workload_env(**extra: str) -> dict[str, str]:
    """The environment of a workload process: no otel-monitor settings of the caller's."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_MONITOR_", "OTEL_EXPORTER_OTLP", "OTEL_SERVICE_NAME"))}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT)])
    return {**env, **extra}


def workload(db: Path, part: str, *args: str, service: str = "e2e", **popen) -> subprocess.Popen:
    """Run e2e_workload.main(db, part, ...) imported (not as __main__), so the recorded
    process names are ``e2e_workload.<function>``, importable by the Reproduce snippet."""
    code = "import sys, e2e_workload; e2e_workload.main(sys.argv[1:])"
    return subprocess.Popen([sys.executable, "-c", code, str(db), part, *args],
                            env=workload_env(OTEL_SERVICE_NAME=service), text=True, **popen)


@pytest.fixture(scope="session")
def e2e_store(tmp_path_factory) -> Path:
    """Two services recorded at once: pricing (with a fresh feed) and risk (failing
    calls, a <script> value, a feed ticked once and stale soon after)."""
    db = tmp_path_factory.mktemp("e2e") / "e2e.db"
    first = workload(db, "pricing", service=SERVICES["pricing"])
    first.wait(60)  # creates the store; the second one then opens it
    second = workload(db, "risk", service=SERVICES["risk"])
    assert first.returncode == 0 and second.wait(60) == 0
    return db


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(db: Path, *, token: str | None = None) -> Iterator[str]:
    """``otel-monitor serve --db db --port <free>`` as a subprocess; yields its URL."""
    port = free_port()
    env = workload_env(**({"OTEL_MONITOR_UI_TOKEN": token} if token else {}))
    proc = subprocess.Popen([sys.executable, "-m", "otel_monitor.cli", "serve", "--db", str(db),
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/api/health", headers=headers, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "otel-monitor serve did not answer"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def ui_url(e2e_store) -> Iterator[str]:
    with serve(e2e_store) as url:
        yield url
