"""`otel-monitor slo rules` (Sloth's shape) and `slo dashboard`: promtool accepts the rules
of the test SLOs over both sources; the checked-in rules, the self-health rules and the
Grafana SLO dashboard are what the generator writes today (no drift); they are wired into
the shipped Prometheus config, compose and Grafana's provisioning; every metric name they
use exists."""
from __future__ import annotations

import json
import re
import subprocess

import pytest
from prometheus_client import generate_latest

from exporters.columns import DURATION_BUCKETS_MS
from otel_monitor.cli import main
from otel_monitor.slo import BURN_RULES_28D, SLO, load_slo_file
from otel_monitor.slo_rules import ALERT_NAME, DASHBOARD_UID, rules, windows
from stack_files import CONFIG, REPO, collector, compose, host_path, load_yaml

SLO_FILE = CONFIG / "slos.yaml"
SLO_RULES = CONFIG / "prometheus" / "slo-rules.yml"
SELF_RULES = CONFIG / "prometheus" / "selfmon-rules.yml"
SLO_DASHBOARD = CONFIG / "grafana" / "dashboards" / "otel-monitor-slos.json"
SLO_RECORDS = {f"slo:sli_error:ratio_rate{w}" for w in ("5m", "30m", "1h", "2h", "6h", "1d",
                                                        "3d")} | {
    "slo:objective:ratio", "slo:error_budget:ratio", "slo:time_period:days",
    "slo:current_burn_rate:ratio", "slo:period_burn_rate:ratio",
    "slo:period_error_budget_remaining:ratio"}

TEST_SLOS = """\
slos:
  - name: checkout
    process: shop.checkout
    kind: availability
    objective: 99.9
  - name: pricing-fast
    service: pricer
    kind: latency
    objective: 99
    threshold_ms: 2.5
    window: 7d
  - name: risk-1m
    process_group: risk
    kind: availability
    objective: 99
    window: 1m
"""


def promtool_check(promtool: str, path) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60)


def generate(tmp_path, *args: str) -> str:
    out = tmp_path / "out"
    assert main(["slo", *args, "--out", str(out)]) == 0
    return out.read_text()


@pytest.mark.parametrize("source", ["metrics", "spanmetrics"])
def test_promtool_accepts_the_rules_of_the_test_slos(promtool, tmp_path, source):
    (tmp_path / "slos.yaml").write_text(TEST_SLOS)
    text = generate(tmp_path, "rules", "--slo-file", str(tmp_path / "slos.yaml"),
                    "--source", source)
    (tmp_path / "rules.yml").write_text(text)
    result = promtool_check(promtool, tmp_path / "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = load_yaml(tmp_path / "rules.yml")
    found = [r for g in doc["groups"] for r in g["rules"]]
    assert f"SUCCESS: {len(found)} rules found" in result.stdout
    for name in ("checkout", "pricing-fast", "risk-1m"):
        mine = [r for r in found if r["labels"]["slo"] == name]
        assert {r["record"] for r in mine if "record" in r} >= SLO_RECORDS
        assert sorted(r["labels"]["severity"] for r in mine if "alert" in r) == ["page",
                                                                                 "ticket"]
    exprs = " ".join(r["expr"] for r in found)
    if source == "metrics":
        assert "otel_monitor_call_errors_total{process=\"shop.checkout\"}" in exprs
        assert "otel_monitor_call_duration_seconds_bucket{service=\"pricer\", " \
               "le=\"0.0025\"}" in exprs
        assert "otel_monitor_calls_total{process_group=\"risk\"}" in exprs
    else:
        assert ('traces_span_metrics_calls_total{span_name="shop.checkout", '
                'status_code="STATUS_CODE_ERROR"}') in exprs
        assert "traces_span_metrics_duration_milliseconds_bucket{service_name=\"pricer\", " \
               "le=\"2.5\"}" in exprs
        assert "monitor_process_group=\"risk\"" in exprs


def test_the_page_and_ticket_alerts_have_the_workbook_pairs():
    spec = SLO("checkout", process="shop.checkout", objective=99.9)
    alerts = {r["labels"]["severity"]: r["expr"] for g in rules([spec])["groups"]
              for r in g["rules"] if r.get("alert") == ALERT_NAME}
    page, ticket = alerts["page"], alerts["ticket"]
    for window, factor in (("1h", "14.4"), ("5m", "14.4"), ("6h", "6"), ("30m", "6")):
        assert f'slo:sli_error:ratio_rate{window}{{slo="checkout"}} > ({factor} * 0.001)' \
            in page
    for window in ("3d", "6h"):
        assert f'slo:sli_error:ratio_rate{window}{{slo="checkout"}} > (1 * 0.001)' in ticket
    assert page.count(" and\n") + page.count("\nand\n") == 2 and "\nor\n" in page


def test_windows_scale_with_the_slo_window_as_in_process():
    """A 7-day SLO's ranges are the 28-day ones / 4 (slo.burn_rules scales the same way);
    none is shorter than the minimum range."""
    week = SLO("w", process="p", window="7d")
    assert windows(week) == {"5m": "1m15s", "30m": "7m30s", "1h": "15m", "2h": "30m",
                             "6h": "1h30m", "1d": "6h", "3d": "18h"}
    by_name = windows(week, min_range_s=1)
    names = {300: "5m", 1800: "30m", 3600: "1h", 21600: "6h", 259200: "3d"}
    for base, rule in zip(BURN_RULES_28D, week.burn_rules):
        assert _seconds(by_name[names[base.long_s]]) == rule.long_s
        assert _seconds(by_name[names[base.short_s]]) == rule.short_s
    assert set(windows(SLO("m", process="p", window="1m")).values()) == {"1m"}
    short = windows(SLO("m", process="p", window="1m"), min_range_s=4)
    assert short.pop("3d") == "6s" and set(short.values()) == {"4s"}  # 3d x 1m/28d: 6.4 s


def _seconds(text: str) -> float:
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhms])", text))


# -- the checked-in files ----------------------------------------------------------------

def test_the_checked_in_slo_rules_are_what_the_generator_writes(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the command line the file's header names, run from the root
    header = SLO_RULES.read_text().splitlines()[0]
    command = re.search(r"`otel-monitor (slo rules [^`]*)`", header)[1].split()
    assert command[:4] == ["slo", "rules", "--slo-file", "collector-config/slos.yaml"]
    assert generate(tmp_path, *command[1:]) == SLO_RULES.read_text(), \
        "regenerate: otel-monitor " + " ".join(command) + f" --out {SLO_RULES}"
    assert load_slo_file(SLO_FILE)  # the example file is a valid SLO file


def test_the_checked_in_self_health_rules_and_dashboard_are_current(tmp_path):
    assert generate(tmp_path, "rules", "--self") == SELF_RULES.read_text(), \
        f"regenerate: otel-monitor slo rules --self --out {SELF_RULES}"
    assert generate(tmp_path, "dashboard") == SLO_DASHBOARD.read_text(), \
        f"regenerate: otel-monitor slo dashboard --out {SLO_DASHBOARD}"


def test_every_self_health_condition_has_its_alert_in_the_checked_in_rules():
    """The self-health rules alert on each condition of exporters.self_health (the
    archive falling behind too, issue 17) with the same limit of purge intervals."""
    from exporters.self_health import ARCHIVE_BEHIND, CONDITIONS, SelfHealthLimits

    groups = load_yaml(SELF_RULES)["groups"]
    alerts = {r["labels"]["condition"]: r for g in groups for r in g["rules"] if "alert" in r}
    assert set(alerts) == set(CONDITIONS)
    record = next(r for g in groups for r in g["rules"]
                  if r.get("labels", {}).get("condition") == ARCHIVE_BEHIND and "record" in r)
    assert record["expr"] == ("otel_monitor_archive_behind_seconds > bool on (job, instance) "
                              f"({SelfHealthLimits().archive_intervals:g} * "
                              "otel_monitor_retention_interval_seconds)")
    lost = next(r for g in groups for r in g["rules"]
                if r.get("labels", {}).get("condition") == "archive_lost" and "record" in r)
    assert lost["expr"] == "increase(otel_monitor_archive_lost_calls_total[15m]) > bool 0"


@pytest.mark.parametrize("path", [SLO_RULES, SELF_RULES], ids=lambda p: p.name)
def test_promtool_accepts_the_checked_in_rules(promtool, path):
    result = promtool_check(promtool, path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_loads_them_as_compose_mounts_them():
    shipped = load_yaml(CONFIG / "prometheus" / "prometheus.yml")["rule_files"]
    mounted = {host_path("prometheus", p) for p in shipped}
    assert {SLO_RULES.resolve(), SELF_RULES.resolve()} <= mounted
    assert "prometheus" in compose()["services"]


def test_the_slo_dashboard_is_provisioned_beside_the_overview():
    provider = load_yaml(host_path("grafana", "/etc/grafana/provisioning/dashboards/"
                                              "dashboards.yaml"))["providers"][0]
    folder = host_path("grafana", provider["options"]["path"])
    assert (folder / SLO_DASHBOARD.name).resolve() == SLO_DASHBOARD.resolve()
    assert (folder / "otel-monitor.json").is_file()
    slo = json.loads(SLO_DASHBOARD.read_text())
    overview = json.loads((folder / "otel-monitor.json").read_text())
    assert slo["uid"] == DASHBOARD_UID != overview["uid"]
    titles = {p["title"] for p in slo["panels"]}
    assert {"Error budget remaining", "Burn rate per window", "SLI over the window"} <= titles
    datasources = {(t["datasource"]["type"], t["datasource"]["uid"])
                   for p in slo["panels"] for t in p.get("targets", [])}
    provisioned = {(d["type"], d["uid"]) for d in load_yaml(
        CONFIG / "grafana/provisioning/datasources/datasources.yaml")["datasources"]}
    assert datasources and datasources <= provisioned
    assert [v["name"] for v in slo["templating"]["list"]] == ["slo"]


def test_every_promql_of_the_slo_dashboard_parses(promtool, tmp_path):
    slo = json.loads(SLO_DASHBOARD.read_text())
    exprs = [t["expr"].replace("$slo", "checkout") for p in slo["panels"]
             for t in p.get("targets", [])]
    variable = slo["templating"]["list"][0]["query"]["query"]
    exprs.append(re.fullmatch(r"label_values\((.+),\s*slo\)", variable)[1])
    path = tmp_path / "dashboard.yml"
    path.write_text(json.dumps({"groups": [{"name": "d", "rules": [
        {"record": f"dashboard:expr_{i}", "expr": e} for i, e in enumerate(exprs)]}]}))
    result = promtool_check(promtool, path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_the_metric_names_exist_and_the_buckets_agree(tmp_path):
    """Every otel_monitor_* name of the generated rules is one /metrics exposes; the
    Collector's spanmetrics buckets include every bound an SLO threshold may take."""
    from dash_ui.metrics import metrics_registry
    from exporters.store import SpanStore

    SpanStore(tmp_path / "s.db").close()
    text = generate_latest(metrics_registry(tmp_path / "s.db")).decode()
    exposed = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        exposed |= {f"{name}_{s}" for s in ("bucket", "sum", "count")} \
            if kind == "histogram" else {name}
    used = set(re.findall(r"(?<![:\w])otel_monitor_\w+(?![:\w])",
                          SLO_RULES.read_text() + SELF_RULES.read_text()))
    assert used and used <= exposed, used - exposed
    units = {"ms": 1, "s": 1000, "us": 0.001}
    buckets = set()
    for b in collector()["connectors"]["spanmetrics"]["histogram"]["explicit"]["buckets"]:
        n, unit = re.fullmatch(r"([\d.]+)(ms|s|us)", b).groups()
        buckets.add(float(n) * units[unit])
    assert set(DURATION_BUCKETS_MS) <= buckets, set(DURATION_BUCKETS_MS) - buckets
