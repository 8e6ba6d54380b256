"""OTLP ingest at POST /v1/traces of a real `otel-monitor serve` process.

Senders: the official OTLP/HTTP exporter in another process (``otlp_sender.py``),
otel-monitor's own dual-write from another process (``otlp_workload.py``), and hand
made bodies over httpx for JSON, gzip and every way a body can be refused. What was
stored is read back from the SQLite file and through /api/rows.
"""
from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1 import trace_pb2

from exporters.store import SpanStore
from served_cli import served_cli

HERE = Path(__file__).parent
WORKLOAD = HERE.parent / "otel_monitor" / "otlp_workload.py"
TOKEN = "ingest-s3cret"
MAX_BYTES = 64 * 1024
AUTH = {"authorization": f"Bearer {TOKEN}"}
PB = {"content-type": "application/x-protobuf", **AUTH}
JS = {"content-type": "application/json", **AUTH}


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("OTEL_MONITOR_", "OTEL_EXPORTER_OTLP", "OTEL_SERVICE_NAME",
                                 "OTEL_RESOURCE_ATTRIBUTES"))}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`otel-monitor serve` on a free port with an ingest token and a 64 KiB limit."""
    db = tmp_path_factory.mktemp("ingest") / "central.db"
    SpanStore(db).close()  # serve reads an existing store
    env = {**_clean_env(), "OTEL_MONITOR_INGEST_TOKEN": TOKEN,
           "OTEL_MONITOR_INGEST_MAX_BYTES": str(MAX_BYTES)}
    with served_cli(db, env) as served:
        yield served.url, db
    assert "Traceback" not in served.stderr, served.stderr  # it never crashed on a request


def calls(db: Path, where: str = "1", params: tuple = ()) -> list[dict]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(
            f"SELECT * FROM process_trace WHERE {where} ORDER BY id", params)]
    finally:
        con.close()


def values(db: Path, span_id: str) -> dict[str, tuple[str, str]]:
    con = sqlite3.connect(db)
    try:
        return {d: (t, v) for d, t, v in con.execute(
            "SELECT data, data_type, data_value FROM data_trace WHERE span_id = ? ORDER BY seq",
            (span_id,))}
    finally:
        con.close()


def counts(db: Path) -> tuple[int, int, int]:
    con = sqlite3.connect(db)
    try:
        return tuple(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                     for t in ("spans", "data_values", "processes"))
    finally:
        con.close()


def json_span(span_id: str, name: str, **extra) -> dict:
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": span_id, "name": name,
            "kind": 1, "startTimeUnixNano": str(time.time_ns() - 2_000_000),
            "endTimeUnixNano": str(time.time_ns())}
    span.update(extra)
    return span


def json_body(service: str, *spans: dict) -> dict:
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name",
                                     "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "hand-made"}, "spans": list(spans)}]}]}


def assert_still_serving(url: str) -> None:
    assert httpx.get(f"{url}/api/health", timeout=10).status_code == 200


# -- the official exporter, another process ------------------------------------------


def test_official_otlp_exporter_from_another_process_writes_rows(server):
    url, db = server
    sent = subprocess.run([sys.executable, str(HERE / "otlp_sender.py"), url, TOKEN],
                          env=_clean_env(), capture_output=True, text=True, timeout=60, check=False)
    assert sent.returncode == 0, sent.stderr
    ids = json.loads(sent.stdout.strip().splitlines()[-1])

    add, = calls(db, "span_id = ?", (ids["add"],))
    assert (add["process"], add["process_group"], add["service_name"], add["status"]) == \
        ("shop.cart.add", "cart", "checkout-svc", "OK")
    assert values(db, ids["add"]) == {"item": ("INPUT", "'apple'"), "qty": ("INPUT", "3"),
                                      "return": ("OUTPUT", "True")}
    # A span without monitor attributes: a call of "<service>: <span name>", its
    # attributes and its resource's host as rows (test_ingest_foreign_spans.py).
    get, = calls(db, "span_id = ?", (ids["get"],))
    assert (get["process"], get["service_name"], get["parent_span_id"]) == \
        ("checkout-svc: GET /cart", "checkout-svc", ids["add"])
    assert get["trace_id"] == add["trace_id"] and values(db, ids["get"]) == {
        "http.request.method": ("INPUT", "'GET'"), "resource.host.name": ("INPUT", "'h1'")}
    pay, = calls(db, "span_id = ?", (ids["pay"],))
    assert pay["status"] == "ERR" and pay["exception_type"] == "RuntimeError"
    assert "card declined" in pay["exception"]
    charge, = calls(db, "span_id = ?", (ids["charge"],))  # sent gzip-compressed
    assert (charge["process"], charge["service_name"]) == ("billing.charge", "billing-svc")

    # Through the API, filtered by service.
    rows = httpx.get(f"{url}/api/rows", params={"service": "billing-svc"}, timeout=10).json()
    assert {(r["Process"], r["Data"], r["Data Value"]) for r in rows["rows"]} == \
        {("billing.charge", "amount", "42"), ("billing.charge", "return", "'ok'")}
    rows = httpx.get(f"{url}/api/rows", params={"service": "checkout-svc"}, timeout=10).json()
    # The plain OK span is in the table too (issue 12: it made no row before).
    assert {r["Process"] for r in rows["rows"]} == {"shop.cart.add", "shop.cart.pay",
                                                    "checkout-svc: GET /cart"}


def test_otel_monitor_dual_write_lands_like_the_local_store(server, tmp_path):
    """An otel-monitor app dual-writing to the server: the same calls, ids, values and
    service name (from OTEL_SERVICE_NAME, carried in the OTLP resource) in both stores."""
    url, db = server
    local = tmp_path / "app.db"
    env = {**_clean_env(), "OTEL_MONITOR_DB": str(local), "OTEL_SERVICE_NAME": "orders-svc",
           "OTEL_EXPORTER_OTLP_ENDPOINT": url,
           "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {TOKEN}"}
    ran = subprocess.run([sys.executable, str(WORKLOAD), "--orders", "4"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode == 0, ran.stderr
    mine = calls(local)
    assert len(mine) == json.loads(ran.stdout.strip().splitlines()[-1])["calls"] == 9
    for call in mine:
        there, = calls(db, "span_id = ?", (call["span_id"],))
        keys = ("process", "process_group", "trace_id", "parent_span_id", "status",
                "exception_type", "service_name", "start_ns")
        assert {k: there[k] for k in keys} == {k: call[k] for k in keys}
        assert there["service_name"] == "orders-svc"
        assert values(db, call["span_id"]) == values(local, call["span_id"])
    failed, = [c for c in calls(db, "service_name = 'orders-svc'") if c["status"] == "ERR"]
    assert "negative quantity -1" in failed["exception"]


def rows_of(db: Path, span_id: str) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT seq, data, data_type, data_value FROM data_trace "
                           "WHERE span_id = ? ORDER BY seq", (span_id,)).fetchall()
    finally:
        con.close()


def test_a_generators_yield_rows_over_otlp_are_the_local_ones(server, tmp_path):
    """Monitored generators (run past the yield bound, closed early, raising, async) with
    otel_span=True: the span's monitor.output.yield[i] / yield_count / return attributes
    become the same OUTPUT rows, in the same order, as the decorator's local record."""
    url, db = server
    local = tmp_path / "gen.db"
    env = {**_clean_env(), "OTEL_MONITOR_DB": str(local), "OTEL_SERVICE_NAME": "gen-svc",
           "OTEL_EXPORTER_OTLP_ENDPOINT": url,
           "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {TOKEN}"}
    ran = subprocess.run([sys.executable, str(WORKLOAD), "--orders", "0", "--generators"],
                         env=env, capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode == 0, ran.stderr
    mine = [c for c in calls(local) if c["process_group"] == "streams"]
    assert len(mine) == 4
    outputs = set()
    for call in mine:
        here = rows_of(local, call["span_id"])
        assert rows_of(db, call["span_id"]) == here
        outputs.add(tuple(r[1] for r in here if r[2] == "OUTPUT"))
    yields = tuple(f"yield[{i}]" for i in range(10))
    assert outputs == {
        yields + ("yield_count", "return"),                          # 13 rows, run to the end
        ("yield[0]", "yield[1]", "yield[2]", "yield_count"),         # closed after 3
        ("yield[0]", "yield[1]", "yield_count"),                     # raised after 2
        ("yield[0]", "yield[1]", "yield[2]", "yield_count", "return"),  # async, 3
    }


# -- hand-made bodies -----------------------------------------------------------------


def test_json_body_with_hex_ids_and_partial_success(server):
    url, db = server
    good = json_span("1a2b3c4d5e6f7081", "json.handler", attributes=[
        {"key": "monitor.input.x", "value": {"intValue": "7"}},
        {"key": "monitor.output.return", "value": {"stringValue": "'seven'"}}])
    bad = json_span("00000000000000ff", "bad.ids", traceId="00")  # a 1-byte trace id
    r = httpx.post(f"{url}/v1/traces", headers=JS, timeout=10,
                   content=json.dumps(json_body("json-svc", good, bad)))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    partial = r.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "trace_id must be 16 bytes" in \
        partial["errorMessage"]
    row, = calls(db, "span_id = '1a2b3c4d5e6f7081'")
    assert (row["process"], row["service_name"], row["trace_id"]) == \
        ("json.handler", "json-svc", "5b8efff798038103d269b633813fc60c")
    assert values(db, "1a2b3c4d5e6f7081") == {"x": ("INPUT", "7"),
                                              "return": ("OUTPUT", "'seven'")}
    assert calls(db, "span_id = '00000000000000ff'") == []

    # Sent again (a sender's retry): rejected as already stored, not written twice.
    r = httpx.post(f"{url}/v1/traces", headers=JS, timeout=10,
                   content=json.dumps(json_body("json-svc", good)))
    assert r.status_code == 200
    assert r.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert "already stored" in r.json()["partialSuccess"]["errorMessage"]
    assert len(calls(db, "span_id = '1a2b3c4d5e6f7081'")) == 1


def test_gzip_protobuf_body_and_protobuf_response(server):
    url, db = server
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "gzip-svc"
    span = rs.scope_spans.add().spans.add(
        trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
        span_id=bytes.fromhex("b7ad6b7169203331"), name="queue.consume",
        start_time_unix_nano=time.time_ns() - 1000, end_time_unix_nano=time.time_ns())
    span.status.code = trace_pb2.Status.STATUS_CODE_OK
    r = httpx.post(f"{url}/v1/traces", content=gzip.compress(request.SerializeToString()),
                   headers={**PB, "content-encoding": "gzip"}, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(r.content).HasField("partial_success")
    row, = calls(db, "span_id = 'b7ad6b7169203331'")
    assert (row["process"], row["service_name"]) == ("gzip-svc: queue.consume", "gzip-svc")

    # Two gzip members one after the other are one body (RFC 1952).
    body = json.dumps(json_body("gzip-svc", json_span("c7ad6b7169203331", "two.members")))
    half = len(body) // 2
    r = httpx.post(f"{url}/v1/traces", timeout=10, headers={**JS, "content-encoding": "gzip"},
                   content=gzip.compress(body[:half].encode()) + gzip.compress(
                       body[half:].encode()))
    assert r.status_code == 200 and len(calls(db, "span_id = 'c7ad6b7169203331'")) == 1


def test_a_sampled_spans_weight_is_stored_as_the_calls_weight(server):
    # monitor.sample.weight (a call kept by @monitor(sample="auto") in another process)
    # is how many calls the span stands for: spans.weight, which /metrics and the
    # rollups sum.
    url, db = server
    kept = json_span("5a5a5a5a5a5a5a01", "sampled.handler", attributes=[
        {"key": "monitor.sample.weight", "value": {"doubleValue": 37.5}},
        {"key": "monitor.input.x", "value": {"intValue": "1"}}])
    plain = json_span("5a5a5a5a5a5a5a02", "sampled.handler")
    r = httpx.post(f"{url}/v1/traces", headers=JS, timeout=10,
                   content=json.dumps(json_body("sampled-svc", kept, plain)))
    assert r.status_code == 200
    con = sqlite3.connect(db)
    try:
        weights = dict(con.execute(
            "SELECT printf('%016x', span_id & 0xFFFFFFFFFFFFFFFF), weight FROM spans "
            "WHERE span_id IN (?, ?)", (0x5a5a5a5a5a5a5a01, 0x5a5a5a5a5a5a5a02)))
    finally:
        con.close()
    assert weights == {"5a5a5a5a5a5a5a01": 37.5, "5a5a5a5a5a5a5a02": None}
    assert values(db, "5a5a5a5a5a5a5a01") == {"x": ("INPUT", "1")}


def _big_json(n_spans: int) -> bytes:
    spans = [json_span(f"{i + 1:016x}", "big", attributes=[
        {"key": "monitor.input.pad", "value": {"stringValue": "x" * 200}}])
        for i in range(0xA000, 0xA000 + n_spans)]
    return json.dumps(json_body("big-svc", *spans)).encode()


def _deep_attribute(levels: int) -> bytes:
    value = '{"stringValue": "x"}'
    for _ in range(levels):
        value = '{"kvlistValue": {"values": [{"key": "k", "value": %s}]}}' % value
    span = json.dumps(json_span("3a2b3c4d5e6f7081", "deep", attributes=[]))
    return json.dumps(json_body("x")).replace(
        '"spans": []', '"spans": [%s]' % span.replace(
            '"attributes": []', '"attributes": [{"key": "deep", "value": %s}]' % value)).encode()


REFUSED = [
    # (case, headers, body, status, words in the message)
    ("garbage protobuf", PB, b"\xff\xff\xff\xff not protobuf", 400, "not an OTLP"),
    ("JSON that is not JSON", JS, b"{not json", 400, "not OTLP JSON"),
    ("JSON list", JS, b"[1, 2]", 400, "must be a JSON object"),
    ("JSON of the wrong shape", JS, b'{"resourceSpans": {"a": 1}}', 400, "must be a list"),
    ("JSON with a wrong field type", JS,
     json.dumps(json_body("x", json_span("2a2b3c4d5e6f7081", "n", startTimeUnixNano="soon"))).encode(),
     400, "not OTLP JSON"),
    ("JSON nested past the recursion limit", JS, b"[" * 50_000, 400, "nested too deeply"),
    ("attribute values nested too deeply", JS, _deep_attribute(1000), 400,
     "nested too deeply"),
    ("truncated gzip", {**PB, "content-encoding": "gzip"},
     gzip.compress(b"x" * 1000)[:20], 400, "not valid gzip"),
    ("not gzip at all", {**PB, "content-encoding": "gzip"}, b"plain", 400, "not valid gzip"),
    ("unsupported encoding", {**PB, "content-encoding": "br"}, b"x", 415, "br"),
    ("unsupported media type", {"content-type": "text/plain", **AUTH}, b"x", 415,
     "text/plain"),
    ("too large as sent", JS, _big_json(400), 413, "exceeds the limit"),
    ("too large once decompressed", {**JS, "content-encoding": "gzip"},
     gzip.compress(_big_json(400)), 413, "decompressed body exceeds"),
    ("no token", {"content-type": "application/json"}, _big_json(2), 401, "bearer token"),
    ("wrong token", {"content-type": "application/json", "authorization": "Bearer nope"},
     _big_json(2), 401, "bearer token"),
]


@pytest.mark.parametrize("case, headers, body, status, words", REFUSED,
                         ids=[c[0] for c in REFUSED])
def test_refused_bodies_write_nothing_and_the_server_goes_on(server, case, headers, body,
                                                             status, words):
    url, db = server
    before = counts(db)
    r = httpx.post(f"{url}/v1/traces", content=body, headers=headers, timeout=10)
    assert r.status_code == status, r.text
    if "json" in headers.get("content-type", ""):
        message = r.json()["message"]
    else:
        message = status_pb2.Status.FromString(r.content).message
    assert words in message
    assert counts(db) == before
    assert_still_serving(url)
    if case == "too large once decompressed":
        assert len(gzip.compress(_big_json(400))) < MAX_BYTES  # small as sent


def test_a_chunked_body_without_a_length_is_cut_off_at_the_limit(server):
    """No Content-Length to refuse early: the limit holds while the body is read."""
    url, db = server
    before = counts(db)
    body = _big_json(400)
    chunks = (body[i:i + 4096] for i in range(0, len(body), 4096))
    r = httpx.post(f"{url}/v1/traces", content=chunks, headers=JS, timeout=10)
    assert r.status_code == 413 and "exceeds the limit" in r.json()["message"]
    assert "content-length" not in r.request.headers and counts(db) == before


def test_ingest_needs_its_token_even_where_the_api_is_open(server):
    url, _ = server
    # The server has no UI token here: the API is open, ingest needs its own token (that
    # the ingest token does not open the API: test_ingest_auth.py).
    r = httpx.post(f"{url}/v1/traces", headers={"content-type": "application/json"},
                   content=b"{}", timeout=10)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = httpx.post(f"{url}/v1/traces", headers=JS, content=b"{}", timeout=10)
    assert r.status_code == 200 and r.json() == {}  # an empty export is a success


def test_failed_ingested_spans_are_grouped_by_the_same_writer(server):
    url, db = server
    failing = [json_span(f"77{n:014x}", "remote.settle", status={"code": 2}, events=[{
        "name": "exception", "timeUnixNano": str(time.time_ns()), "attributes": [
            {"key": "exception.type", "value": {"stringValue": "shop.SettleError"}},
            {"key": "exception.message",
             "value": {"stringValue": f"trade {n * 97} failed"}}]}]) for n in range(1, 6)]
    r = httpx.post(f"{url}/v1/traces", headers=JS, timeout=10,
                   content=json.dumps(json_body("settle-svc", *failing)))
    assert r.status_code == 200, r.text
    con = sqlite3.connect(db)
    try:
        groups = con.execute("SELECT fingerprint, title, count, services, hosts FROM error_groups "
                             "WHERE process = 'settle-svc: remote.settle'").fetchall()
        named = con.execute("SELECT count(*) FROM spans WHERE error_group = ?",
                            (groups[0][0],)).fetchone()[0]
    finally:
        con.close()
    # no stack trace: grouped on process and type; the message's numbers normalised
    assert [g[1:] for g in groups] == [("SettleError: trade <n> failed", 5, '["settle-svc"]',
                                        "[]")]
    assert named == 5


def test_an_error_passed_on_through_ingested_spans_is_one_group(server):
    """Spans of nested monitored calls (``otel_span=True`` in another process): the
    callers' spans name the innermost failed call (``monitor.error.propagated_from``)
    and take its group, uncounted, whether it came in the same request or before."""
    url, db = server

    def failed(span_id: str, name: str, trace: str, parent: str | None = None,
               passed_from: str | None = None) -> dict:
        attrs = [{"key": "monitor.process_group", "value": {"stringValue": "risk"}}]
        if passed_from:
            attrs.append({"key": "monitor.error.propagated_from",
                          "value": {"stringValue": passed_from}})
        text = ('Traceback (most recent call last):\n  File "/srv/risk/pricing.py", line 9, '
                f'in black_scholes\nValueError: no implied vol for {span_id}\n')
        span = json_span(span_id, name, traceId=trace, attributes=attrs, status={"code": 2},
                         events=[{"name": "exception", "timeUnixNano": str(time.time_ns()),
                                  "attributes": [
                                      {"key": "exception.type",
                                       "value": {"stringValue": "ValueError"}},
                                      {"key": "exception.stacktrace",
                                       "value": {"stringValue": text}}]}])
        if parent:
            span["parentSpanId"] = parent
        return span

    first, later = [], []
    for n in range(1, 4):
        trace = f"{n:032x}"
        inner, middle, outer = f"a1{n:014x}", f"a2{n:014x}", f"a3{n:014x}"
        first += [failed(inner, "remote.black_scholes", trace, middle),
                  failed(middle, "remote.price_position", trace, outer, inner)]
        # the outermost arrives in a later request: its inner call is in the store
        later.append(failed(outer, "remote.run_risk", trace, None, inner))
    for spans in (first, later):
        r = httpx.post(f"{url}/v1/traces", headers=JS, timeout=10,
                       content=json.dumps(json_body("risk-svc", *spans)))
        assert r.status_code == 200, r.text
    con = sqlite3.connect(db)
    try:
        groups = con.execute("SELECT fingerprint, process, count FROM error_groups "
                             "WHERE process LIKE 'remote.%'").fetchall()
        named = con.execute(
            "SELECT s.error_group FROM spans s JOIN processes p ON p.id = s.process_id "
            "WHERE p.name LIKE 'remote.%'").fetchall()
    finally:
        con.close()
    assert [g[1:] for g in groups] == [("remote.black_scholes", 3)]
    assert len(named) == 9 and {n[0] for n in named} == {groups[0][0]}
