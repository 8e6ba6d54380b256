"""Debian's real prometheus, with the shipped otel-monitor scrape job (bearer token from a
credentials_file), scrapes a real `otel-monitor serve` over a store the decorator fills;
PromQL through Prometheus's HTTP API returns the calls and errors counted, per process."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest
import yaml

import otel_monitor
from recording import recording_into, settings_env_cleared
from stack_files import CONFIG, free_port, load_yaml

TOKEN = "scrape-s3cret"
JOB = "otel-monitor"


@otel_monitor.monitor("scrape-tests")
def fill(order_id: int) -> int:
    return order_id * 2


@otel_monitor.monitor("scrape-tests")
def refuse(order_id: int) -> None:
    raise KeyError(order_id)


FILL, REFUSE = f"{__name__}.fill", f"{__name__}.refuse"


def scrape_config(token_file, target: str) -> dict:
    """The shipped prometheus.yml's otel-monitor job as it is (path, authorization), aimed
    at the test's server and token file, scraped every second."""
    shipped = load_yaml(CONFIG / "prometheus" / "prometheus.yml")
    job = next(j for j in shipped["scrape_configs"] if j["job_name"] == JOB)
    assert job["authorization"]["credentials_file"].startswith("/run/secrets/")
    job["authorization"]["credentials_file"] = str(token_file)
    job["static_configs"] = [{"targets": [target]}]
    return {"global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": [str(CONFIG / "prometheus" / "rules.yml")],  # the shipped rules
            "scrape_configs": [job]}


def another_exporting_process(store, statement: str) -> None:
    """Run one SpanStore/StateStore write from a separate process (its own pid), as an
    instrumented app writing its health and feed rows does."""
    subprocess.run([sys.executable, "-c", "import sys, time\n"
                    "from exporters.state import FeedState, StateStore\n"
                    "s = StateStore(sys.argv[1])\n" + statement + "\ns.close()", str(store)],
                   check=True, timeout=30, cwd=str(CONFIG.parent))


def wait_for(url: str, proc: subprocess.Popen, what: str, **kw) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url, timeout=2, **kw).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, f"{what} exited: {proc.communicate()}"
        assert time.monotonic() < deadline, f"{what} did not answer at {url}"
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Stack(tuple):
    """(store path, Prometheus URL), and ``serve``: the otel-monitor server's URL."""

    serve: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory, prometheus_bin):
    """(store path, Prometheus URL): serve started on a store that exists, Prometheus
    scraping its /metrics every second with the bearer token from a file."""
    tmp = tmp_path_factory.mktemp("scrape")
    store = tmp / "store.db"
    with settings_env_cleared(), recording_into(store):
        fill(0)  # the store exists before serve opens it; this call predates the server
        assert otel_monitor.force_flush(10)
        procs: list[subprocess.Popen] = []
        try:
            serve_port, prom_port = free_port(), free_port()
            env = {**os.environ, "OTEL_MONITOR_UI_TOKEN": TOKEN}
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "otel_monitor.cli", "serve", "--db", str(store),
                 "--port", str(serve_port)], env=env, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True))
            wait_for(f"http://127.0.0.1:{serve_port}/metrics", procs[-1], "otel-monitor serve",
                     headers={"Authorization": f"Bearer {TOKEN}"})
            (tmp / "token").write_text(TOKEN + "\n")
            (tmp / "prometheus.yml").write_text(yaml.safe_dump(scrape_config(
                tmp / "token", f"127.0.0.1:{serve_port}")))
            procs.append(subprocess.Popen(
                [prometheus_bin, f"--config.file={tmp / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
            prom = f"http://127.0.0.1:{prom_port}"
            wait_for(f"{prom}/-/ready", procs[-1], "prometheus")
            # Targets reach the scrape loop a few seconds after start; up == 1 also says the
            # bearer token from the credentials_file was accepted.
            assert eventually(prom, f'up{{job="{JOB}"}}', {"": 1.0}) == {"": 1.0}
            running = Stack((store, prom))
            running.serve = f"http://127.0.0.1:{serve_port}"
            yield running
        finally:
            for proc in reversed(procs):
                stop(proc)


def query(prom: str, promql: str) -> dict[str, float]:
    """An instant query's vector as {process label: value}."""
    r = httpx.get(f"{prom}/api/v1/query", params={"query": promql}, timeout=10)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", body
    return {s["metric"].get("process", ""): float(s["value"][1]) for s in body["data"]["result"]}


def eventually(prom: str, promql: str, expected: dict[str, float]) -> dict[str, float]:
    """The query's answer once it equals ``expected`` (scrapes are every second), else the
    last answer after 30 s."""
    deadline = time.monotonic() + 30
    while True:
        got = query(prom, promql)
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def test_promql_returns_the_calls_and_errors_counted_per_process(stack):
    _, prom = stack
    for i in range(7):
        fill(i)
    for i in range(3):
        with pytest.raises(KeyError):
            refuse(i)
    assert otel_monitor.force_flush(10)
    calls = f'sum by (process) (otel_monitor_calls_total{{job="{JOB}"}})'
    assert eventually(prom, calls, {FILL: 7.0, REFUSE: 3.0}) == {FILL: 7.0, REFUSE: 3.0}
    errors = f'sum by (process) (otel_monitor_call_errors_total{{job="{JOB}"}})'
    assert query(prom, errors) == {FILL: 0.0, REFUSE: 3.0}
    durations = f'sum by (process) (otel_monitor_call_duration_seconds_count{{job="{JOB}"}})'
    assert query(prom, durations) == {FILL: 7.0, REFUSE: 3.0}


def alerts(prom: str) -> list[dict]:
    body = httpx.get(f"{prom}/api/v1/alerts", timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]["alerts"]


def until(probe, seconds: float = 30):
    """probe()'s first truthy answer within ``seconds`` (Prometheus scrapes and evaluates
    every second), else its last answer."""
    deadline = time.monotonic() + seconds
    while True:
        answer = probe()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.5)


def test_feed_ages_health_and_the_shipped_rules_reach_prometheus(stack):
    """Another process's feed and health rows arrive as gauges; the shipped recording
    rules evaluate, and OtlpExportFailing fires once that process's failures go up."""
    store, prom = stack
    health = ("s.write_health(queue_depth=7, queue_peak=9, dropped=0, written=5, "
              "write_lag_ms=12.0, last_write_ns=time.time_ns(), service_name='feeder', "
              "otlp_exported=5, otlp_failed={})")
    # One process: a fresh feed, its health with no OTLP failure, and 3 s later (a few
    # scrapes) three failures; it lives on for a few scrapes more, as an app does (the
    # series of a process that has exited leave /metrics).
    another_exporting_process(store, "s.write_feeds([FeedState('bbg.fx', 1.0, 10.0, "
                              "time.time_ns() - 4 * 10**9, 3, False)])\n"
                              + health.format(0) + "\ntime.sleep(3)\n" + health.format(3)
                              + "\ntime.sleep(4)")
    ages = until(lambda: query(prom, 'otel_monitor_feed_age_seconds{feed="bbg.fx"} > 4'))
    assert len(ages) == 1
    assert query(prom, 'otel_monitor_exporter_queue_depth{service="feeder"}') == {"": 7.0}
    firing = until(lambda: [a for a in alerts(prom) if a["state"] == "firing"
                            and a["labels"]["alertname"] == "OtlpExportFailing"
                            and a["labels"].get("service") == "feeder"])
    assert len(firing) == 1
    # The recording rule's rate: the counter must be seen before it goes up (a series
    # that first appears at 1 shows no increase), so call, wait for a scrape, call again.
    fill(1)
    assert otel_monitor.force_flush(10)
    assert until(lambda: query(prom, f'otel_monitor_calls_total{{process="{FILL}"}}'))
    fill(2)
    assert otel_monitor.force_flush(10)
    rate = until(lambda: query(prom, f'process:otel_monitor_calls:rate5m{{process="{FILL}"}} > 0'))
    assert list(rate) == [FILL]


def test_promtool_check_metrics_passes_on_a_real_scrape(stack, promtool):
    """The exposition /metrics serves, with every kind of series in it (calls, errors and
    durations, a feed's age, another process's health and OTLP figures, alerts), and label
    values that need escaping (quotes, backslashes, a newline, non-ASCII: a service name
    sent over OTLP), passes `promtool check metrics`: no format error, no lint problem."""
    store, _ = stack
    fill(3)
    with pytest.raises(KeyError):
        refuse(3)
    assert otel_monitor.force_flush(10)
    another_exporting_process(store, "s.write_feeds([FeedState('lint.feed', 1.0, 10.0, "
                              "time.time_ns(), 1, False)])\n"
                              "s.write_health(queue_depth=1, queue_peak=2, dropped=0, "
                              "written=1, write_lag_ms=1.0, last_write_ns=time.time_ns(), "
                              "service_name='lint-svc', otlp_exported=1, otlp_failed=0)")
    now = time.time_ns()
    odd = 'we"ird\\svc\nü'
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": odd}}]},
        "scopeSpans": [{"spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "name": 'GET "/x"\\y', "startTimeUnixNano": str(now - 10**6),
            "endTimeUnixNano": str(now), "status": {"code": 2}}]}]}]}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    sent = httpx.post(f"{stack.serve}/v1/traces", json=body, headers=auth, timeout=10)
    assert sent.status_code == 200 and sent.json() == {}, sent.text
    scraped = httpx.get(f"{stack.serve}/metrics", headers=auth, timeout=10)
    assert scraped.status_code == 200
    text = scraped.text
    for series in ("otel_monitor_calls_total", "otel_monitor_call_errors_total",
                   "otel_monitor_call_duration_seconds_bucket",
                   "otel_monitor_feed_age_seconds", "otel_monitor_exporter_queue_depth"):
        assert f"\n{series}{{" in text, series
    assert 'service="we\\"ird\\\\svc\\nü"' in text  # escaped as the format says
    checked = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                             capture_output=True, timeout=60, check=False)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")
