"""promtool on the shipped Prometheus config and rules, and on every PromQL expression of
the dashboard; the metric names used there exist (otel-monitor's /metrics, the
Collector's spanmetrics as configured)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from prometheus_client import generate_latest

from stack_files import (CONFIG, collector, compose, dashboard, dashboard_variable_values,
                         host_path, load_yaml, substitute_variables, targets)

PROMETHEUS_YML = CONFIG / "prometheus" / "prometheus.yml"
RULES_YML = CONFIG / "prometheus" / "rules.yml"


def run_tool(tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_shipped_config(promtool, tmp_path):
    """The config as the prometheus container sees it: container paths replaced by the
    repo files compose mounts there, and the token secret by a file of the same kind."""
    config = load_yaml(PROMETHEUS_YML)
    config["rule_files"] = [str(host_path("prometheus", p)) for p in config["rule_files"]]
    secrets = set(compose()["services"]["prometheus"]["secrets"])
    for job in config["scrape_configs"]:
        if "authorization" in job:
            secret_path = job["authorization"]["credentials_file"]
            assert secret_path.startswith("/run/secrets/")
            assert secret_path.rsplit("/", 1)[1] in secrets  # compose hands that secret over
            token = tmp_path / "token"
            token.write_text("a-token\n")
            job["authorization"]["credentials_file"] = str(token)
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config))
    result = run_tool(promtool, "check", "config", str(checked))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_prometheus_scrapes_the_collector_and_otel_monitor():
    jobs = {j["job_name"]: j for j in load_yaml(PROMETHEUS_YML)["scrape_configs"]}
    services = compose()["services"]
    collector_port = collector()["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]
    assert jobs["otel-collector"]["static_configs"][0]["targets"] == \
        [f"otel-collector:{collector_port}"]
    assert jobs["otel-monitor"]["metrics_path"] == "/metrics"
    assert jobs["otel-monitor"]["static_configs"][0]["targets"] == ["otel-monitor:8050"]
    assert {"otel-collector", "otel-monitor"} <= set(services)


def test_promtool_accepts_the_shipped_rules(promtool):
    result = run_tool(promtool, "check", "rules", str(RULES_YML))
    assert result.returncode == 0, result.stdout + result.stderr
    rules = [r for g in load_yaml(RULES_YML)["groups"] for r in g["rules"]]
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
    assert {r["alert"] for r in rules if "alert" in r} >= {"MonitoredCallErrors", "FeedStale",
                                                           "ExportQueueBackpressure"}


def dashboard_promql() -> list[tuple[str, str]]:
    """(where, expression) for every PromQL query of the dashboard: panel targets, and the
    series selectors inside the template variables' label_values(...)."""
    out = [(f"panel {p['title']!r} {t['refId']}", t["expr"]) for p, t in targets("prometheus")]
    for var in dashboard()["templating"]["list"]:
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert m, f"variable {var['name']}: unexpected query {query!r}"
        out.append((f"variable {var['name']}", m.group(1)))
    return out


def check_as_rules(tool: str, exprs: list[str], path: Path) -> subprocess.CompletedProcess:
    """Each expression as a recording rule of one group: promtool parses them all."""
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr_{i}", "expr": e} for i, e in enumerate(exprs)]}]}))
    return run_tool(tool, "check", "rules", str(path))


def test_every_promql_expression_of_the_dashboard_parses(promtool, tmp_path):
    values = dashboard_variable_values()
    found = dashboard_promql()
    assert len(found) >= 12
    exprs = [substitute_variables(e, values) for _, e in found]
    result = check_as_rules(promtool, exprs, tmp_path / "dashboard-rules.yml")
    assert result.returncode == 0, "\n".join(
        [result.stdout, result.stderr] + [f"{w}: {e}" for w, e in found])
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_the_promql_check_rejects_a_broken_expression(promtool, tmp_path):
    """The check above can fail: one unbalanced expression among good ones is refused."""
    good = substitute_variables(dashboard_promql()[0][1], dashboard_variable_values())
    result = check_as_rules(promtool, [good, "sum by (process) (rate(x[1m])"],
                            tmp_path / "broken.yml")
    assert result.returncode != 0


def metric_names(exprs: list[str], prefix: str) -> set[str]:
    """Metric names with that prefix (not the recording rules' level:name:operation)."""
    return set(re.findall(rf"(?<![:\w]){prefix}\w+(?![:\w])", " ".join(exprs)))


def all_promql() -> list[str]:
    rules = [r["expr"] for g in load_yaml(RULES_YML)["groups"] for r in g["rules"]]
    return rules + [e for _, e in dashboard_promql()]


def test_spanmetrics_names_follow_the_collector_config():
    """namespace traces.span.metrics and unit ms, as otelcol.yaml sets them, make the
    Prometheus names the dashboard uses."""
    spanmetrics = collector()["connectors"]["spanmetrics"]
    base = spanmetrics["namespace"].replace(".", "_")
    unit = {"ms": "milliseconds", "s": "seconds"}[spanmetrics["histogram"]["unit"]]
    produced = {f"{base}_calls_total"} | {f"{base}_duration_{unit}_{s}"
                                          for s in ("bucket", "sum", "count")}
    used = metric_names(all_promql(), "traces_span_metrics_")
    assert used and used <= produced, used - produced


def test_otel_monitor_names_exist_in_its_metrics(tmp_path):
    """Every otel_monitor_* name in the dashboard and the rules is one /metrics exposes
    (read from a real registry's exposition on a fresh store)."""
    from dash_ui.metrics import metrics_registry
    from exporters.store import SpanStore

    SpanStore(tmp_path / "s.db").close()
    text = generate_latest(metrics_registry(tmp_path / "s.db")).decode()
    exposed = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        exposed |= {f"{name}_{s}" for s in ("bucket", "sum", "count")} \
            if kind == "histogram" else {name}
    used = metric_names(all_promql(), "otel_monitor_")
    assert used and used <= exposed, used - exposed
