"""Spans whose fields parse as OTLP but cannot be stored as they are: each is left out
(or its field turned into text) and the request answered 200 with partial_success —
never a 500, and never a 503 that a sender would retry for ever. The ingest app is
served by uvicorn in this process (``ServedApp``)."""
from __future__ import annotations

import json
import sqlite3
import time

import httpx
import pytest

from api_server import ServedApp
from dash_ui.ingest import create_ingest_app
from dash_ui.ingest_spans import MAX_NAME
from exporters.store import SpanStore

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def span(span_id: str, **extra) -> dict:
    now = time.time_ns()
    out = {"traceId": TRACE, "spanId": span_id, "name": "op",
           "startTimeUnixNano": str(now - 1000), "endTimeUnixNano": str(now)}
    out.update(extra)
    return out


def attr(key: str, value: dict) -> dict:
    return {"key": key, "value": value}


def post(url: str, *spans: dict) -> httpx.Response:
    body = {"resourceSpans": [{
        "resource": {"attributes": [attr("service.name", {"stringValue": "hostile"})]},
        "scopeSpans": [{"spans": list(spans)}]}]}
    return httpx.post(f"{url}/traces", content=json.dumps(body),
                      headers={"content-type": "application/json"}, timeout=30)


def stored(db, span_id: str) -> dict | None:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        row = con.execute("SELECT * FROM process_trace WHERE span_id = ?", (span_id,)).fetchone()
        return dict(row) if row else None
    finally:
        con.close()


def serve_ingest(tmp_path_factory, **env: str):
    """An open ingest app (no token) on a new store, its writer built under ``env``."""
    db = tmp_path_factory.mktemp("ingest") / "s.db"
    SpanStore(db).close()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("OTEL_MONITOR_INGEST_TOKEN", raising=False)
        for name, value in env.items():
            mp.setenv(name, value)
        app = create_ingest_app(db)
    with ServedApp(app) as server:
        yield server.url, db


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    yield from serve_ingest(tmp_path_factory)


KVLIST = {"kvlistValue": {"values": [attr("a", {"intValue": "1"})]}}

REJECTED = [
    # (case, span fields, words in partial_success's message)
    ("local parent id not hex",
     {"attributes": [attr("monitor.local_parent_span_id", {"stringValue": "zz"})]},
     "monitor.local_parent_span_id"),
    ("local parent id past 64 bits",
     {"attributes": [attr("monitor.local_parent_span_id", {"stringValue": "f" * 40})]},
     "monitor.local_parent_span_id"),
    ("start time past what SQLite holds",
     {"startTimeUnixNano": str(2**64 - 2), "endTimeUnixNano": str(2**64 - 1)},
     "out of range"),
]


@pytest.mark.parametrize("n, fields, words", [(n, *c[1:]) for n, c in enumerate(REJECTED)],
                         ids=[c[0] for c in REJECTED])
def test_a_span_that_cannot_be_stored_is_rejected_and_the_rest_written(served, n, fields,
                                                                       words):
    url, db = served
    bad_id, good_id = f"{0xb00 + 2 * n:016x}", f"{0xb01 + 2 * n:016x}"
    r = post(url, span(bad_id, **fields), span(good_id))
    assert r.status_code == 200, r.text
    partial = r.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and words in partial["errorMessage"]
    assert stored(db, bad_id) is None and stored(db, good_id) is not None


def test_fields_of_another_type_are_stored_as_text(served):
    url, db = served
    r = post(url, span("00000000000000d1", status={"code": 2}, attributes=[
        attr("monitor.process_group", KVLIST), attr("monitor.outcome", {"intValue": "3"})],
        events=[{"name": "exception", "timeUnixNano": str(time.time_ns()), "attributes": [
            attr("exception.type", KVLIST),
            attr("exception.stacktrace", {"arrayValue": {"values": [
                {"stringValue": "line 1"}]}})]}]))
    assert r.status_code == 200 and r.json() == {}, r.text
    row = stored(db, "00000000000000d1")
    assert row["process_group"] == "{'a': 1}" and row["outcome"] == "3"
    assert (row["exception_type"], row["exception"]) == ("{'a': 1}", "['line 1']")


# -- value lengths: the bounds of local capture --------------------------------------


@pytest.fixture(scope="module")
def short_values(tmp_path_factory):
    """An ingest app on a store whose writers keep values of at most 40 characters."""
    yield from serve_ingest(tmp_path_factory, OTEL_MONITOR_MAX_VALUE_LENGTH="40")


def data_values(db, span_id: str) -> dict[str, str]:
    con = sqlite3.connect(db)
    try:
        return dict(con.execute("SELECT data, data_value FROM data_trace WHERE span_id = ?",
                                (span_id,)))
    finally:
        con.close()


def test_values_are_cut_to_max_value_length_with_the_local_marker(short_values):
    url, db = short_values
    r = post(url, span("00000000000000e1", attributes=[
        attr("monitor.input.big", {"stringValue": "x" * 2_000_000}),
        attr("monitor.input.items", {"arrayValue": {"values": [{"intValue": "7"}] * 100}}),
        attr("monitor.input.small", {"stringValue": "'ok'"}),
        attr("monitor.output.return", {"stringValue": "y" * 50})]))
    assert r.status_code == 200 and r.json() == {}, r.text
    assert data_values(db, "00000000000000e1") == {
        "big": "x" * 40 + "…<1999960 more chars>",
        "items": "[7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, …<260 more chars>",
        "small": "'ok'",
        "return": "y" * 40 + "…<10 more chars>"}


def test_a_huge_service_name_is_not_copied_into_every_span(short_values):
    url, db = short_values
    spans = [span(f"{0xe10 + i:016x}") for i in range(20)]
    body = {"resourceSpans": [{
        "resource": {"attributes": [attr("service.name", {"stringValue": "s" * 500_000})]},
        "scopeSpans": [{"spans": spans}]}]}
    r = httpx.post(f"{url}/traces", content=json.dumps(body),
                   headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 200 and r.json() == {}, r.text
    row = stored(db, f"{0xe10:016x}")
    # Cut like a process name (an identifier: no marker), not per value length.
    assert row["service_name"] == "s" * MAX_NAME and row["process"] == "s" * MAX_NAME


def test_a_retry_of_a_span_id_past_2_63_is_rejected_as_already_stored(served):
    """The store keeps ids as signed 64-bit integers: the retry check must look up the
    same signed form, or the retry would hit the unique index (a 503 for ever)."""
    url, db = served
    for attempt in (1, 2):
        r = post(url, span("f00000000000000f"))
        assert r.status_code == 200, r.text
    assert "already stored" in r.json()["partialSuccess"]["errorMessage"]
    assert stored(db, "f00000000000000f") is not None


@pytest.mark.parametrize("framing", [b"Content-Length: 100000\r\n\r\n" + b"{" * 1000,
                                     b"Transfer-Encoding: chunked\r\n\r\n10\r\n" + b"{" * 16],
                         ids=["content-length", "chunked"])
def test_a_sender_that_hangs_up_mid_body_is_no_server_error(served, caplog, framing):
    import logging
    import socket

    url, db = served
    port = int(url.rsplit(":", 1)[1])
    with caplog.at_level(logging.ERROR):
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(b"POST /traces HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\n" + framing)
            time.sleep(0.2)  # the server is reading the body when the sender hangs up
        assert post(url, span("00000000000000f1")).status_code == 200  # still serving
    assert not [r for r in caplog.records if r.exc_info], caplog.text


def test_names_kept_per_call_are_cut_like_a_process_name(short_values):
    """Process group, outcome and exception type are names: a sender's megabyte in one
    of them is not a megabyte in every row that carries it."""
    url, db = short_values
    big = {"stringValue": "g" * 1_000_000}
    r = post(url, span("00000000000000e2", status={"code": 2}, attributes=[
        attr("monitor.process_group", big), attr("monitor.outcome", big)],
        events=[{"name": "exception", "timeUnixNano": str(time.time_ns()),
                 "attributes": [attr("exception.type", big)]}]))
    assert r.status_code == 200 and r.json() == {}, r.text
    row = stored(db, "00000000000000e2")
    assert row["process_group"] == row["outcome"] == row["exception_type"] == "g" * MAX_NAME
