"""The shipped stack files, loaded once: the compose file, the Collector, Tempo and
Prometheus configs, Grafana's provisioning and the dashboard, and the helpers the stack
tests share (where compose mounts what, the dashboard's queries)."""
from __future__ import annotations

import json
import re
import socket
from functools import cache
from pathlib import Path
from typing import Any, Iterator

import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "collector-config"
COMPOSE_FILE = REPO / "docker-compose.otel.yml"
DASHBOARD_FILE = CONFIG / "grafana" / "dashboards" / "otel-monitor.json"
DATASOURCES_FILE = CONFIG / "grafana" / "provisioning" / "datasources" / "datasources.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@cache
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


@cache
def collector() -> dict[str, Any]:
    return load_yaml(CONFIG / "otelcol.yaml")


@cache
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text())


def datasources() -> list[dict[str, Any]]:
    return load_yaml(DATASOURCES_FILE)["datasources"]


def bind_mounts(service: str) -> dict[str, Path]:
    """{path in the container: file or folder in the repo} for a service's bind mounts
    (short syntax ``./src:/dst[:ro]``); named volumes are left out."""
    mounts = {}
    for entry in compose()["services"][service].get("volumes", []):
        source, target = entry.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (REPO / source).resolve()
    return mounts


def named_volumes(service: str) -> dict[str, str]:
    """{path in the container: volume name} for a service's named volumes."""
    out = {}
    for entry in compose()["services"][service].get("volumes", []):
        source, target = entry.split(":")[:2]
        if not source.startswith((".", "/")):
            out[target] = source
    return out


def host_path(service: str, container_path: str) -> Path:
    """The repo file a container path of ``service`` is bind-mounted from (a file, or a
    path under a mounted folder); AssertionError if nothing mounts it."""
    for target, source in bind_mounts(service).items():
        if container_path == target:
            return source
        if container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target.rstrip("/")) + 1:]
    raise AssertionError(f"{service}: nothing is mounted at {container_path}")


def panels() -> Iterator[dict[str, Any]]:
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def targets(datasource_type: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every query of the dashboard sent to that datasource type."""
    for panel in panels():
        for target in panel.get("targets", []):
            ds = target.get("datasource") or panel.get("datasource") or {}
            if ds.get("type") == datasource_type:
                yield panel, target


# Grafana's own variables, and the dashboard's, by what a real query would get.
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "30s", "__range": "1h",
                     "__range_s": "3600"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def substitute_variables(text: str, values: dict[str, str]) -> str:
    def value(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            raise AssertionError(f"unknown variable ${name} in {text!r}")
        return values[name]

    return _VARIABLE.sub(value, text)


def dashboard_variable_values() -> dict[str, str]:
    """Each template variable as its "All" value (a regex), plus Grafana's own."""
    values = dict(GRAFANA_VARIABLES)
    for var in dashboard()["templating"]["list"]:
        values[var["name"]] = var.get("allValue") or ".*"
    return values
