"""docker-compose.otel.yml against the Compose Specification's schema, its mounts and
build inputs present in the repo; the Collector config's structure and its wiring to the
other services (ports, hosts)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from stack_files import (CONFIG, REPO, bind_mounts, collector, compose, host_path,
                         load_yaml, named_volumes)

SCHEMA = Path(__file__).with_name("compose-spec.schema.json")
STACK = {"otel-collector", "tempo", "prometheus", "grafana", "otel-monitor"}


# -- compose ------------------------------------------------------------------------------

def test_compose_file_follows_the_compose_spec_schema():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)  # its $schema: draft-07
    validator = jsonschema.Draft7Validator(schema)
    validator.validate(compose())
    broken = {**compose(), "services": {"x": {"image": "a", "ports": "not-a-list"}}}
    with pytest.raises(jsonschema.ValidationError):  # the schema does reject bad files
        validator.validate(broken)


def test_compose_brings_up_the_whole_stack_with_pinned_images():
    services = compose()["services"]
    assert STACK <= set(services)
    for name, service in services.items():
        image = service.get("image", "")
        if "build" not in service:
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", image) and not image.endswith(":latest"), \
                f"{name}: image {image!r} is not pinned to a tag"
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector-contrib:")
    assert services["grafana"]["environment"]["GF_INSTALL_PLUGINS"] == "frser-sqlite-datasource"


def test_every_bind_mount_source_exists_in_the_repo():
    mounted = 0
    for name in compose()["services"]:
        for target, source in bind_mounts(name).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) is missing"
            assert REPO in source.parents, f"{name}: {source} is outside the repository"
            mounted += 1
    assert mounted >= 7


def test_named_volumes_are_declared_and_the_store_is_shared():
    declared = set(compose()["volumes"])
    for name in compose()["services"]:
        assert set(named_volumes(name).values()) <= declared, name
    # Grafana's SQLite datasource reads the file otel-monitor writes: same volume, same path.
    store = named_volumes("otel-monitor")["/data"]
    assert named_volumes("grafana")["/data"] == store
    assert compose()["services"]["otel-monitor"]["environment"]["OTEL_MONITOR_DB"] \
        .startswith("/data/")


def test_otel_monitor_image_builds_from_files_in_the_repo():
    build = compose()["services"]["otel-monitor"]["build"]
    context = REPO / build["context"]
    dockerfile = context / build["dockerfile"]
    assert dockerfile.is_file()
    copies = re.findall(r"^COPY\s+(.+?)\s+\S+$", dockerfile.read_text(), re.M)
    assert copies
    for sources in copies:
        for source in sources.split():
            assert (context / source).exists(), f"COPY {source}: missing"
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore").read_text()
    kept = {line[1:].rstrip("/") for line in ignore.splitlines() if line.startswith("!")}
    assert {s.rstrip("/") for c in copies for s in c.split()} <= kept  # not ignored
    entrypoint = (CONFIG / "otel-monitor" / "entrypoint.sh").read_text()
    assert "otel-monitor serve" in entrypoint and "--host 0.0.0.0" in entrypoint
    assert "--port 8050" in entrypoint
    # serve makes the store on a new volume itself: no `python -c` creating it first
    assert "python" not in entrypoint and "python -c" not in dockerfile.read_text()


# -- the Collector ------------------------------------------------------------------------

def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1].split("/")[0])


def _host(endpoint: str) -> str:
    return endpoint.split("://")[-1].rsplit(":", 1)[0]


def test_every_pipeline_component_is_defined_and_every_defined_one_used():
    config = collector()
    pipelines = config["service"]["pipelines"]
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for name, pipeline in pipelines.items():
        assert name.split("/")[0] in {"traces", "metrics", "logs"}, name
        assert pipeline.get("receivers") and pipeline.get("exporters"), name
        for kind in used:
            for component in pipeline.get(kind, []):
                defined = set(config.get(kind) or {})
                if kind != "processors":
                    defined |= set(config.get("connectors") or {})
                assert component in defined, f"pipeline {name}: {kind[:-1]} {component} undefined"
                used[kind].add(component)
    for kind in used:
        assert set(config.get(kind) or {}) <= used[kind], f"{kind} defined but unused"


def test_each_connector_exports_from_traces_and_receives_into_metrics():
    config = collector()
    pipelines = config["service"]["pipelines"]
    assert set(config["connectors"]) == {"spanmetrics", "servicegraph"}
    for connector in config["connectors"]:
        as_exporter = [n for n, p in pipelines.items() if connector in p["exporters"]]
        as_receiver = [n for n, p in pipelines.items() if connector in p["receivers"]]
        assert len(as_exporter) == 1 and len(as_receiver) == 1, connector
        assert as_exporter[0].split("/")[0] == "traces", connector
        assert as_receiver[0].split("/")[0] == "metrics", connector
        assert as_exporter != as_receiver


def test_collector_ports_and_where_it_sends():
    config = collector()
    protocols = config["receivers"]["otlp"]["protocols"]
    assert _port(protocols["grpc"]["endpoint"]) == 4317
    assert _port(protocols["http"]["endpoint"]) == 4318
    assert _port(config["exporters"]["prometheus"]["endpoint"]) == 8889
    traces = config["service"]["pipelines"]["traces"]
    assert "batch" in traces["processors"]
    # Tempo: its OTLP gRPC receiver, by its compose service name.
    tempo_endpoint = config["exporters"]["otlp/tempo"]["endpoint"]
    tempo = load_yaml(host_path("tempo", "/etc/tempo.yaml"))
    assert _host(tempo_endpoint) == "tempo" and "tempo" in compose()["services"]
    assert _port(tempo_endpoint) == \
        _port(tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"])
    # otel-monitor: its OTLP/HTTP ingest (otlphttp appends /v1/traces), with the token.
    to_monitor = config["exporters"]["otlphttp/otel-monitor"]
    assert to_monitor["endpoint"] == "http://otel-monitor:8050"
    assert to_monitor["headers"]["Authorization"] == "Bearer ${env:OTEL_MONITOR_UI_TOKEN}"
    assert {"otlp/tempo", "otlphttp/otel-monitor", "spanmetrics", "servicegraph"} <= \
        set(traces["exporters"])


def test_compose_mounts_the_collector_config_and_publishes_its_ports():
    service = compose()["services"]["otel-collector"]
    config_arg = next(a for a in service["command"] if a.startswith("--config="))
    assert host_path("otel-collector", config_arg.split("=", 1)[1]) == \
        (CONFIG / "otelcol.yaml").resolve()
    published = {int(p.rsplit(":", 1)[1]) for p in service["ports"]}
    assert published == {4317, 4318, 8889}
    assert "OTEL_MONITOR_UI_TOKEN" in service["environment"]
