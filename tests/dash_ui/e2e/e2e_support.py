"""What the browser tests share: the workload processes that fill a store through the
real decorator, and ``otel-monitor serve`` run as a subprocess on a free port."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
SERVICES = {"pricing": "e2e-pricing", "risk": "e2e-risk"}
# Recorded by e2e_workload (imported only in its own processes: it declares feeds).
SCRIPT = ('<script>alert(1); window.__omInjected = 1</script>'
          '<img src="x" onerror="alert(2); window.__omInjected = 2">')
FAILING_BOOKS = ("b1", "b2", "b3")


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
