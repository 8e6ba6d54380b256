"""A real ``otel-monitor serve`` subprocess for the benchmarks that measure over HTTP
(bench_ingest.py, bench_api_load.py), and the helpers to start any server: a free port,
waiting until a URL answers, an environment without the caller's OTEL_/PHOENIX_ settings."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import IO, Iterator

import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 180) -> None:
    """Until ``url`` answers below 500; SystemExit if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode})")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer")
        time.sleep(0.2)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("OTEL_", "PHOENIX_"))}


@contextmanager
def otel_monitor_server(db: str, *, env: dict[str, str] | None = None,
                        stderr: IO[str] | None = None) -> Iterator[tuple[str, int]]:
    """``otel-monitor serve --db db`` on a free port (``env``: added to a clean
    environment; ``stderr``: where its stderr goes, else nowhere); yields its base URL
    and pid once ``/api/health`` answers; stops it on exit."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "otel_monitor.cli", "serve", "--db", db,
                             "--port", str(port)], env={**clean_env(), **(env or {})},
                            cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=stderr if stderr is not None else subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base + "/api/health", proc)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
