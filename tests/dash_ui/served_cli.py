"""`otel-monitor serve` as a real subprocess on a free port, for tests over HTTP."""
from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServedCli:
    url: str
    stderr: str = ""  # what the server wrote, once it has stopped


@contextlib.contextmanager
def served_cli(db: Path, env: dict[str, str], *, ready_path: str = "/api/health",
               timeout_s: float = 60) -> Iterator[ServedCli]:
    """Start ``otel-monitor serve --db db`` under ``env``; yield once ``ready_path``
    answers (any status: a token may guard it); stop it on exit, keeping its stderr."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "otel_monitor.cli", "serve", "--db", str(db),
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    served = ServedCli(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                httpx.get(served.url + ready_path, timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[1]  # it must not exit
                assert time.monotonic() < deadline, "otel-monitor serve did not answer"
                time.sleep(0.1)
        yield served
    finally:
        proc.terminate()
        try:
            served.stderr = proc.communicate(timeout=10)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            served.stderr = proc.communicate()[1]
