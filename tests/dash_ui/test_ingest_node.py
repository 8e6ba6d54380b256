"""Spans from the Node.js OpenTelemetry SDK (2.x: @opentelemetry/sdk-trace-base and the
OTLP proto and JSON exporters, pinned in node_otlp/package-lock.json and installed by
scripts/node-otlp-deps.sh, which `make test` runs) into a real `otel-monitor serve`:
every span is in the table with all its attributes, its event and its resource's host
and pid (issue 12). Skipped only where node or npm is not installed."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from served_cli import served_cli
from test_ingest import TOKEN, _clean_env, calls, values

NODE_DIR = Path(__file__).parent / "node_otlp"

if shutil.which("node") is None or shutil.which("npm") is None:
    pytest.skip("node/npm not installed (Debian's nodejs and npm): no Node.js SDK to send "
                "from", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not (NODE_DIR / "node_modules" / "@opentelemetry" / "sdk-trace-base").is_dir():
        pytest.fail("the Node.js OpenTelemetry SDK is not installed: run "
                    "scripts/node-otlp-deps.sh (make test runs it)")
    db = tmp_path_factory.mktemp("node") / "central.db"  # serve makes the store
    with served_cli(db, {**_clean_env(), "OTEL_MONITOR_INGEST_TOKEN": TOKEN}) as served:
        yield served.url, db
    assert "Traceback" not in served.stderr, served.stderr


@pytest.mark.parametrize("protocol", ["proto", "json"])
def test_node_sdk_spans_are_stored_whole(server, protocol):
    url, db = server
    sent = subprocess.run(["node", str(NODE_DIR / "send.mjs"), url, TOKEN, protocol],
                          capture_output=True, text=True, timeout=60, check=False,
                          env=_clean_env())
    assert sent.returncode == 0, sent.stderr
    ids = json.loads(sent.stdout.strip().splitlines()[-1])
    service = f"node-shop-{protocol}"

    stored = {c["span_id"]: c for c in calls(db, "service_name = ?", (service,))}
    assert set(stored) == {ids["server"], ids["child"], ids["failing"]}  # every span
    assert {c["pid"] for c in stored.values()} == {ids["pid"]}  # the sender's, not ours
    server_call, child, failing = (stored[ids[k]] for k in ("server", "child", "failing"))
    assert (server_call["process"], server_call["status"]) == \
        (f"{service}: GET /orders", "OK")
    assert child["parent_span_id"] == failing["parent_span_id"] == ids["server"]
    assert (failing["status"], failing["exception_type"]) == ("ERR", "TypeError")
    assert "card declined" in failing["exception"]

    assert values(db, ids["server"]) == {
        "http.request.method": ("INPUT", "'GET'"),
        "http.response.status_code": ("INPUT", "200"),
        "order.ratio": ("INPUT", "0.5"),
        "order.express": ("INPUT", "True"),
        "order.items": ("INPUT", "['apple', 'pear']"),
        "order.quantities": ("INPUT", "[1, 2]"),
        "event[0]:cache.miss": ("OUTPUT", "{'cache.key': 'orders:7'}"),
        "resource.host.name": ("INPUT", "'node-host'"),
    }
    assert values(db, ids["child"]) == {"span.kind": ("INPUT", "'INTERNAL'"),
                                        "resource.host.name": ("INPUT", "'node-host'")}

    # In the table (all three calls: the two OK ones too) and in the drill-down.
    rows = httpx.get(f"{url}/api/rows", params={"service": service}, timeout=10).json()
    assert {r["Process"] for r in rows["rows"]} == {
        f"{service}: GET /orders", f"{service}: db.query", f"{service}: charge"}
    detail = httpx.get(f"{url}/api/calls/{ids['server']}", timeout=10).json()
    assert (detail["service_name"], detail["host"], detail["pid"]) == \
        (service, "node-host", ids["pid"])
