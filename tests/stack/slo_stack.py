"""An SLO end to end through Prometheus: a workload recording into a store with the real
decorator, a real ``otel-monitor serve`` on it, Debian's ``prometheus`` (a plain
process) scraping its ``/metrics`` every second and evaluating the rules
``otel-monitor slo rules`` writes for the SLO every second. Used by
``test_slo_prometheus.py`` and ``benchmarks/bench_slo_prometheus.py`` (which reports the
detection time)."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

import otel_monitor
from otel_monitor.cli import main as cli
from otel_monitor.slo_rules import ALERT_NAME

REPO = Path(__file__).resolve().parents[2]
GROUP = "slo-e2e"
INTERVAL = "1s"  # scrape and rule evaluation
MIN_RANGE = "4s"  # a rate() range holds 4 scrapes


@otel_monitor.monitor(GROUP)
def checkout(order: int, fail: bool) -> int:
    if fail:
        raise ConnectionError(f"payment gateway refused order {order}")
    return order


class Workload(threading.Thread):
    """Calls ``checkout`` at about ``rate`` calls/s until stopped; they fail while
    ``failing`` is set."""

    def __init__(self, rate: float = 50.0) -> None:
        super().__init__(name="slo-workload", daemon=True)
        self.pause = 1.0 / rate
        self.failing = threading.Event()
        self.stopped = threading.Event()
        self.calls = 0

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                checkout(self.calls, self.failing.is_set())
            except ConnectionError:
                pass
            self.calls += 1
            self.stopped.wait(self.pause)


def wait_for(probe, what: str, timeout_s: float = 30.0, every_s: float = 0.1):
    """probe()'s first truthy answer, polled until ``timeout_s``; AssertionError after."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = probe()
        if answer:
            return answer
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:g} s"
        time.sleep(every_s)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@dataclass
class SloStack:
    prom: str
    serve: str
    slo: str
    rules_file: Path

    def query(self, promql: str) -> list[dict]:
        r = httpx.get(f"{self.prom}/api/v1/query", params={"query": promql}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", body
        return body["data"]["result"]

    def firing(self, alertname: str) -> list[dict]:
        body = httpx.get(f"{self.prom}/api/v1/alerts", timeout=10).json()
        assert body["status"] == "success", body
        return [a for a in body["data"]["alerts"]
                if a["labels"].get("alertname") == alertname and a["state"] == "firing"]

    def alerts(self, severity: str, state: str = "firing") -> list[dict]:
        body = httpx.get(f"{self.prom}/api/v1/alerts", timeout=10).json()
        assert body["status"] == "success", body
        return [a for a in body["data"]["alerts"]
                if a["labels"].get("alertname") == ALERT_NAME
                and a["labels"].get("slo") == self.slo
                and a["labels"].get("severity") == severity and a["state"] == state]

    def detect(self, workload: Workload, severity: str = "page",
               timeout_s: float = 60.0) -> float:
        """Start failing every call; seconds from then until the burn-rate alert of
        ``severity`` is firing in Prometheus (polled every 0.1 s)."""
        workload.failing.set()
        start = time.monotonic()
        wait_for(lambda: self.alerts(severity), f"{ALERT_NAME} {severity} firing", timeout_s)
        return time.monotonic() - start

    def recover(self, workload: Workload, severity: str = "page",
                timeout_s: float = 60.0) -> float:
        """Stop failing; seconds until the alert is no longer firing nor pending."""
        workload.failing.clear()
        start = time.monotonic()
        wait_for(lambda: not self.alerts(severity) and not self.alerts(severity, "pending"),
                 f"{ALERT_NAME} {severity} resolved", timeout_s)
        return time.monotonic() - start


SLO_FILE = """\
slos:
  - name: {name}
    process_group: {group}
    kind: availability
    objective: {objective}
    window: {window}
"""


@contextlib.contextmanager
def slo_stack(tmp: Path, prometheus_bin: str, *, name: str = "checkout-1m",
              window: str = "1m", objective: float = 99.0,
              extra_rules: tuple[Path, ...] = ()) -> Iterator[SloStack]:
    """The whole chain running, the workload's SLO's rules loaded and recording (its
    5m-class ratio evaluated at least once): yields the ``SloStack``. The caller records
    (``otel_monitor`` configured on ``tmp / "store.db"``) and runs the workload."""
    store = tmp / "store.db"
    checkout(0, False)  # the store exists before serve opens it
    assert otel_monitor.force_flush(10)
    (tmp / "slos.yaml").write_text(SLO_FILE.format(name=name, group=GROUP, window=window,
                                                   objective=objective))
    rules = tmp / "slo-rules.yml"
    assert cli(["slo", "rules", "--slo-file", str(tmp / "slos.yaml"), "--min-range",
                MIN_RANGE, "--out", str(rules)]) == 0
    procs: list[subprocess.Popen] = []
    try:
        serve_port, prom_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_MONITOR_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "otel_monitor.cli", "serve", "--db", str(store),
             "--port", str(serve_port)], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True))
        serve = f"http://127.0.0.1:{serve_port}"

        def answers(url: str, proc: subprocess.Popen) -> bool:
            assert proc.poll() is None, proc.communicate()
            try:
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(lambda: answers(f"{serve}/metrics", procs[0]), "otel-monitor serve", 60)
        config = {"global": {"scrape_interval": INTERVAL, "scrape_timeout": INTERVAL,
                             "evaluation_interval": INTERVAL},
                  "rule_files": [str(rules), *map(str, extra_rules)],
                  "scrape_configs": [{"job_name": "otel-monitor", "metrics_path": "/metrics",
                                      "static_configs": [
                                          {"targets": [f"127.0.0.1:{serve_port}"]}]}]}
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        procs.append(subprocess.Popen(
            [prometheus_bin, f"--config.file={tmp / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        prom = f"http://127.0.0.1:{prom_port}"
        wait_for(lambda: answers(f"{prom}/-/ready", procs[1]), "prometheus", 60)
        yield SloStack(prom=prom, serve=serve, slo=name, rules_file=rules)
    finally:
        for proc in reversed(procs):
            _stop(proc)


def recording_ok(stack: SloStack, timeout_s: float = 60.0) -> float:
    """Wait until the SLO's 5m-class error ratio is recorded and 0 (calls flowing, none
    failing); returns it."""
    def ratio():
        got = stack.query(f'slo:sli_error:ratio_rate5m{{slo="{stack.slo}"}}')
        return got and float(got[0]["value"][1]) == 0.0 and got

    found = wait_for(ratio, "the SLO's error ratio recorded", timeout_s)
    return float(found[0]["value"][1])
