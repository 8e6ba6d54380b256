"""OTLP ingest keeps foreign spans whole (issue 12): spans from services that know
nothing of otel-monitor, sent to a real `otel-monitor serve`.

* every span makes at least one row in the seven columns (``trace_rows``);
* each attribute is an INPUT row (Data = the attribute key, the value rendered as the
  decorator renders one: ``repr``, bounded with local capture's marker);
* each event other than ``exception`` is an OUTPUT row ``event[i]:name`` whose value is
  its attributes;
* the resource's ``service.name``, ``host.name`` and ``process.pid`` are recorded (the
  sender's pid, not the server's) and shown by ``/api/calls/<id>``;
* a bad id in one span rejects that span only, via ``partialSuccess``.
"""
from __future__ import annotations

import copy
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from served_cli import served_cli
from test_ingest import JS, TOKEN, _clean_env, calls, json_body, json_span, values

HERE = Path(__file__).parent
EXAMPLE = HERE / "fixtures" / "otlp_example_trace.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("foreign") / "central.db"
    from exporters.store import SpanStore
    SpanStore(db).close()
    with served_cli(db, {**_clean_env(), "OTEL_MONITOR_INGEST_TOKEN": TOKEN}) as served:
        yield served.url, db
    assert "Traceback" not in served.stderr, served.stderr


def seven(db: Path, span_id: str) -> list[tuple]:
    """The call's rows in the seven-column view (trace_rows has no span id: match on
    the call's process and timestamp)."""
    con = sqlite3.connect(db)
    try:
        proc, ts = con.execute("SELECT process, start_ns FROM process_trace "
                               "WHERE span_id = ?", (span_id,)).fetchone()
        iso = con.execute("SELECT strftime('%Y-%m-%dT%H:%M:%S', ? / 1000000000, "
                          "'unixepoch') || printf('.%06dZ', ? / 1000 % 1000000)",
                          (ts, ts)).fetchone()[0]
        return con.execute('SELECT * FROM trace_rows WHERE "Process" = ? AND '
                           '"Timestamp" = ?', (proc, iso)).fetchall()
    finally:
        con.close()


def test_official_exporter_foreign_span_keeps_attributes_events_and_resource(server):
    url, db = server
    sent = subprocess.run([sys.executable, str(HERE / "otlp_foreign_sender.py"), url, TOKEN],
                          env=_clean_env(), capture_output=True, text=True, timeout=60,
                          check=False)
    assert sent.returncode == 0, sent.stderr
    ids = json.loads(sent.stdout.strip().splitlines()[-1])

    call, = calls(db, "span_id = ?", (ids["server"],))
    assert (call["process"], call["service_name"], call["status"], call["pid"]) == \
        ("foreign-svc: GET /items", "foreign-svc", "OK", 31337)
    got = values(db, ids["server"])
    assert {k: v for k, v in got.items() if k != "payload"} == {
        "http.request.method": ("INPUT", "'GET'"),
        "http.response.status_code": ("INPUT", "200"),
        "server.duration.ratio": ("INPUT", "0.25"),
        "feature.enabled": ("INPUT", "True"),
        "db.rows": ("INPUT", "[1, 2, 3]"),
        "user.tags": ("INPUT", "['a', 'b']"),
        "resource.host.name": ("INPUT", "'box-42'"),
        "event[0]:cache.miss": ("OUTPUT", "{'cache.key': 'items:1', 'attempt': 2}"),
        "event[1]:retry": ("OUTPUT", "{}"),
    }
    kind, payload = got["payload"]  # bounded like a local value, with the marker
    assert kind == "INPUT" and payload.startswith("'" + "x" * 900)
    assert payload.endswith("…<4002 more chars>") and len(payload) < 1100
    assert len(seven(db, ids["server"])) == len(got)

    # An OK span with no attribute and no event still makes a row.
    child, = calls(db, "span_id = ?", (ids["child"],))
    assert child["status"] == "OK" and child["parent_span_id"] == ids["server"]
    assert values(db, ids["child"]) == {"span.kind": ("INPUT", "'INTERNAL'"),
                                        "resource.host.name": ("INPUT", "'box-42'")}
    assert len(seven(db, ids["child"])) == 2

    # The drill-down's call: service, host and the sender's pid.
    detail = httpx.get(f"{url}/api/calls/{ids['server']}", timeout=10).json()
    assert (detail["service_name"], detail["host"], detail["pid"]) == \
        ("foreign-svc", "box-42", 31337)


def test_the_otlp_examples_trace_json_shape(server):
    """``examples/trace.json`` of open-telemetry/opentelemetry-proto (upper-case hex ids,
    integer times, scope attributes), with host.name and process.pid added to its
    resource; its 2018 times are moved to now so retention keeps the span."""
    url, db = server
    body = json.loads(EXAMPLE.read_text())
    span = body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    shift = time.time_ns() - 5_000_000_000 - span["startTimeUnixNano"]
    span["startTimeUnixNano"] += shift
    span["endTimeUnixNano"] += shift
    r = httpx.post(f"{url}/v1/traces", headers=JS, content=json.dumps(body), timeout=10)
    assert r.status_code == 200 and r.json() == {}, r.text
    call, = calls(db, "span_id = 'eee19b7ec3c1b174'")
    assert (call["process"], call["service_name"], call["parent_span_id"], call["pid"],
            call["trace_id"], call["duration_ms"]) == \
        ("my.service: I'm a server span", "my.service", "eee19b7ec3c1b173", 4242,
         "5b8efff798038103d269b633813fc60c", 1000.0)
    assert values(db, "eee19b7ec3c1b174") == {
        "my.span.attr": ("INPUT", "'some value'"),
        "resource.host.name": ("INPUT", "'node-7'")}
    detail = httpx.get(f"{url}/api/calls/eee19b7ec3c1b174", timeout=10).json()
    assert (detail["host"], detail["pid"]) == ("node-7", 4242)


@pytest.mark.parametrize("field, bad", [("parentSpanId", "abc"), ("spanId", "zz2b3c4d5e6f7081"),
                                        ("traceId", "not-hex")])
def test_a_bad_id_rejects_that_span_only(server, field, bad):
    url, db = server
    good_id = {"parentSpanId": "4a2b3c4d5e6f7081", "spanId": "4b2b3c4d5e6f7081",
               "traceId": "4c2b3c4d5e6f7081"}[field]
    good = json_span(good_id, "beside.the.bad")
    wrong = json_span("4d2b3c4d5e6f7081", "bad.id", **{field: bad})
    r = httpx.post(f"{url}/v1/traces", headers=JS, timeout=10,
                   content=json.dumps(json_body("bad-ids", wrong, good)))
    assert r.status_code == 200, r.text
    partial = r.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "not hex" in partial["errorMessage"]
    assert field in partial["errorMessage"]
    assert len(calls(db, "span_id = ?", (good_id,))) == 1
    assert calls(db, "span_id = '4d2b3c4d5e6f7081'") == []


def test_a_bad_link_id_rejects_its_span_only(server):
    url, db = server
    good = json_span("5b2b3c4d5e6f7081", "beside.the.bad.link")
    wrong = json_span("5d2b3c4d5e6f7081", "bad.link", links=[
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "xyz"}])
    r = httpx.post(f"{url}/v1/traces", headers=JS, timeout=10,
                   content=json.dumps(json_body("bad-ids", copy.deepcopy(wrong), good)))
    assert r.status_code == 200 and r.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert len(calls(db, "span_id = '5b2b3c4d5e6f7081'")) == 1
    assert calls(db, "span_id = '5d2b3c4d5e6f7081'") == []


def test_the_drill_down_shows_service_host_and_pid(server):
    """The drill-down of a received span names where it ran (after the examples test)."""
    from dash_ui.callbacks.drilldown import body
    from exporters.queries import TraceQueries

    _, db = server
    _, parts, _ = body(TraceQueries(db), "eee19b7ec3c1b174")
    origin, = [p for p in parts if getattr(p, "id", None) == "om-call-origin"]
    assert origin.children == "service my.service · host node-7 · pid 4242"
