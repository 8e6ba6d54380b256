"""OTLP/HTTP trace ingest: ``POST /v1/traces`` into the served store.

Any OpenTelemetry SDK, or a Collector's ``otlphttp`` exporter, can send here:

* bodies in protobuf (``application/x-protobuf``) or the OTLP JSON mapping
  (``application/json``: hex trace and span ids), optionally ``Content-Encoding: gzip``;
* at most ``max_bytes`` (``OTEL_MONITOR_INGEST_MAX_BYTES``, default 8 MiB), sent and
  after decompression: a larger body is a 413;
* a bearer token: ``OTEL_MONITOR_INGEST_TOKEN`` when set (a write-only credential for
  senders), else the server's UI token, so a server with a token never takes
  anonymous writes; without either, ingest is open (bind to 127.0.0.1 then);
* a body that cannot be read is a 400 whose ``google.rpc.Status`` message says why,
  with nothing written; spans that cannot be stored (bad ids, JSON ids that are not
  hex, already stored) are left out and counted in the response's ``partial_success``,
  per the OTLP spec, and the others are stored;
* input and output values are cut to ``OTEL_MONITOR_MAX_VALUE_LENGTH`` (default 1000)
  with local capture's marker, as a local call's values are;
* the spans of one request are written in one transaction, all or none; a store that
  stays locked by another writer for ``busy_timeout_s`` answers 503 (the sender retries);
* at most ``max_concurrent`` requests are read and written at once; past that a request
  waits up to ``wait_s`` for its turn before its body is read, then is answered 503 with
  ``Retry-After``, so memory stays bounded.

Responses are in the request's encoding: an ``ExportTraceServiceResponse``, or a
``google.rpc.Status`` on error.
"""
from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import os
import zlib
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.requests import ClientDisconnect
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from exporters.errors import StoreError
from exporters.self_health import IngestStats
from otel_monitor.settings import read_setting

from .ingest_spans import Converted, IngestWriter, convert
from .ingest_writer import DeferredWriter, open_or_defer
from .protojson import check_shapes

_log = logging.getLogger("otel_monitor")

# Requests read, decoded and written at once. One in hand holds its body and its decoded
# spans (~30x the body: ~200 MB for an 8 MiB body of small spans); decoding and writing
# are serialised by the GIL and the store's lock anyway, so more would only cost memory.
DEFAULT_MAX_CONCURRENT = 4
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


class Rejected(Exception):
    """The request is refused as a whole: ``status`` and a message for the sender."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def ingest_token(ui_token: str | None) -> str | None:
    return read_setting("ingest_token") or ui_token


# -- reading the body ---------------------------------------------------------------


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, decompressed, refused past ``max_bytes`` before it is all read."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise Rejected(413, code_pb2.RESOURCE_EXHAUSTED,
                       f"request body of {declared} bytes exceeds the limit of {max_bytes}")
    parts, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise Rejected(413, code_pb2.RESOURCE_EXHAUSTED,
                               f"request body exceeds the limit of {max_bytes} bytes")
            parts.append(chunk)
    except ClientDisconnect:  # the sender hung up: nothing to write, no one to answer
        raise Rejected(400, code_pb2.CANCELLED, "the sender closed the connection before "
                       "the whole body arrived") from None
    body = b"".join(parts)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        return gunzip(body, max_bytes)
    if encoding not in ("", "identity"):
        raise Rejected(415, code_pb2.INVALID_ARGUMENT,
                       f"Content-Encoding {encoding!r} is not supported (gzip or none)")
    return body


def gunzip(body: bytes, max_bytes: int) -> bytes:
    """Decompress at most ``max_bytes`` (a small body that inflates past it is a 413);
    several gzip members one after the other are one body, as RFC 1952 allows."""
    too_big = Rejected(413, code_pb2.RESOURCE_EXHAUSTED,
                       f"decompressed body exceeds the limit of {max_bytes} bytes")
    out, rest = b"", body
    try:
        while True:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += inflater.decompress(rest, max_bytes + 1 - len(out))
            if inflater.unconsumed_tail or len(out) > max_bytes:
                raise too_big
            out += inflater.flush()
            if len(out) > max_bytes:
                raise too_big
            if not inflater.eof:
                raise Rejected(400, code_pb2.INVALID_ARGUMENT,
                               "body is not valid gzip: truncated")
            rest = inflater.unused_data
            if not rest:
                return out
    except zlib.error as exc:
        raise Rejected(400, code_pb2.INVALID_ARGUMENT, f"body is not valid gzip: {exc}") from None


def media_type(request: Request) -> str:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in (PROTOBUF, JSON):
        raise Rejected(415, code_pb2.INVALID_ARGUMENT,
                       f"Content-Type {kind or 'none'!r} is not supported; send "
                       f"{PROTOBUF} or {JSON}")
    return kind


def parse(body: bytes, kind: str) -> tuple[ExportTraceServiceRequest, list[str]]:
    """The request, and why the JSON spans left out of it (a trace, span, parent or link
    id that is not hex) cannot be stored: each is rejected alone, its neighbours kept.
    (A protobuf id of the wrong length is rejected per span by ``convert``.)"""
    if kind == PROTOBUF:
        try:
            return ExportTraceServiceRequest.FromString(body), []
        except DecodeError as exc:
            raise Rejected(400, code_pb2.INVALID_ARGUMENT,
                           f"body is not an OTLP ExportTraceServiceRequest: {exc}") from None
    try:
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError("the body must be a JSON object")
        check_shapes(document, ExportTraceServiceRequest.DESCRIPTOR)
        rejected = _hex_ids_to_base64(document)
        # Unknown fields are ignored, as the OTLP spec asks of receivers.
        return json_format.ParseDict(document, ExportTraceServiceRequest(),
                                     ignore_unknown_fields=True), rejected
    except (ValueError, json_format.ParseError) as exc:
        raise Rejected(400, code_pb2.INVALID_ARGUMENT,
                       f"body is not OTLP JSON: {exc}") from None
    except RecursionError:
        raise Rejected(400, code_pb2.INVALID_ARGUMENT,
                       "body is not OTLP JSON: nested too deeply") from None


def _hex_ids_to_base64(document: dict) -> list[str]:
    """OTLP JSON writes trace and span ids as hex; protobuf's JSON mapping wants base64.
    A span with an id (its own or a link's) that is not hex is taken out of the document:
    returns why, span by span."""
    rejected: list[str] = []
    for resource_spans in _list(document, "resourceSpans", "resource_spans"):
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
            spans = _list(scope_spans, "spans")
            kept = []
            for span in spans:
                try:
                    _convert_ids(span)
                    for link in _list(span, "links"):
                        _convert_ids(link)
                except _BadId as exc:
                    name = span.get("name")
                    rejected.append(f"span {str(name)[:100]!r}: {exc}")
                    continue
                kept.append(span)
            if len(kept) < len(spans):
                spans[:] = kept
    return rejected


class _BadId(ValueError):
    """An id that is not hex: its span is rejected, not the request."""


def _list(obj: Any, *keys: str) -> list:
    if not isinstance(obj, dict):
        raise ValueError(f"expected an object, got {type(obj).__name__}")
    for key in keys:
        value = obj.get(key)
        if value is not None:
            if not isinstance(value, list):
                raise ValueError(f"{key!r} must be a list")
            return value
    return []


def _convert_ids(obj: dict) -> None:
    for key in _ID_FIELDS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            try:
                obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise _BadId(f"{key} {value[:40]!r} is not hex") from None


# -- responses ------------------------------------------------------------------------


def encoded(message: Message, kind: str, status: int = 200) -> Response:
    if kind == JSON:
        return Response(json_format.MessageToJson(message, indent=None), status_code=status,
                        media_type=JSON)
    return Response(message.SerializeToString(), status_code=status, media_type=PROTOBUF)


def export_response(converted: Converted) -> ExportTraceServiceResponse:
    response = ExportTraceServiceResponse()
    if converted.rejected:
        response.partial_success.rejected_spans = converted.rejected
        response.partial_success.error_message = "; ".join(converted.reasons)
    return response


def refused(rejected: Rejected, kind: str) -> Response:
    status = status_pb2.Status(code=rejected.code, message=rejected.message)
    response = encoded(status, kind, rejected.status)
    if rejected.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    elif rejected.status == 503:  # OTLP senders retry a 503, after Retry-After if given
        response.headers["Retry-After"] = "1"
    return response


# -- the router -----------------------------------------------------------------------

# What /v1/traces takes and answers, for the OpenAPI document (the route reads its body
# itself). Every answer is in the request's encoding.
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_STATUS = {"application/json": {"schema": {
    "title": "google.rpc.Status", "type": "object",
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"},
                   "details": {"type": "array", "items": {"type": "object"}}}}},
    PROTOBUF: _BINARY}
_EXPORTED = {"application/json": {"schema": {
    "title": "ExportTraceServiceResponse", "type": "object",
    "properties": {"partialSuccess": {"type": "object", "properties": {
        # int64 in protobuf's JSON mapping: a decimal string
        "rejectedSpans": {"type": ["string", "integer"], "pattern": "^[0-9]+$"},
        "errorMessage": {"type": "string"}}}}}},
    PROTOBUF: _BINARY}
# The OTLP JSON body down to its spans, each field with its type, so that a body the
# document calls valid is one the parser reads (null: unset, as protobuf's JSON mapping
# reads it; unknown fields are ignored, as OTLP asks).
_OBJECT = {"type": ["object", "null"]}
_TEXT = {"type": ["string", "null"]}


def _list_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": ["array", "null"], "items": item}


_SCOPE_SPANS = {"type": "object", "properties": {
    "scope": _OBJECT, "spans": _list_of({"type": "object"}), "schemaUrl": _TEXT}}
_RESOURCE_SPANS = {"type": "object", "properties": {
    "resource": _OBJECT, "scopeSpans": _list_of(_SCOPE_SPANS), "schemaUrl": _TEXT}}
_OPENAPI_BODY = {"requestBody": {"required": True, "content": {
    PROTOBUF: {"schema": {"type": "string", "format": "binary",
                          "description": "an ExportTraceServiceRequest"}},
    JSON: {"schema": {"type": "object", "description": "an ExportTraceServiceRequest in "
                      "the OTLP JSON mapping (hex ids)",
                      "properties": {"resourceSpans": _list_of(_RESOURCE_SPANS)}}}}}}


def _answers(token: str | None) -> dict[int | str, dict[str, Any]]:
    answers: dict[int | str, dict[str, Any]] = {
        200: {"description": "Stored; spans that could not be are counted in "
                             "partialSuccess", "content": _EXPORTED},
        400: {"description": "The body cannot be read", "content": _STATUS},
        413: {"description": "The body is larger than OTEL_MONITOR_INGEST_MAX_BYTES",
              "content": _STATUS},
        415: {"description": "Not protobuf or JSON, or not gzip", "content": _STATUS},
        503: {"description": "Busy, or the store is locked: retry", "content": _STATUS,
              "headers": {"Retry-After": {"schema": {"type": "integer"}}}}}
    if token is not None:
        answers[401] = {"description": "No valid bearer token", "content": _STATUS}
    return answers


def ingest_router(writer: IngestWriter | DeferredWriter, *, token: str | None,
                  max_bytes: int, max_concurrent: int = DEFAULT_MAX_CONCURRENT,
                  wait_s: float = 5.0, stats: IngestStats | None = None) -> APIRouter:
    """``stats``: counts every answer by status (``/metrics``, the self-health badge)."""
    router = APIRouter()
    stats = stats if stats is not None else IngestStats()
    # A request waits up to wait_s for a turn, holding only its socket (its body unread):
    # a Collector's several export workers queue up instead of being refused at once.
    turns = asyncio.Semaphore(max_concurrent)

    def authorised(request: Request) -> bool:
        if token is None:
            return True
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.encode(),
                                                                  token.encode())

    def store(body: bytes, kind: str) -> Converted:
        message, rejected = parse(body, kind)
        try:
            converted = convert(message, max_value_length=writer.max_value_length,
                                rejected=rejected)
        except RecursionError:  # values nested past Python's recursion limit
            raise Rejected(400, code_pb2.INVALID_ARGUMENT,
                           "attribute values nested too deeply") from None
        writer.write(converted)
        return converted

    @router.post("/traces", summary="OTLP/HTTP trace export (protobuf or JSON, gzip)",
                 responses=_answers(token), openapi_extra=_OPENAPI_BODY,
                 response_class=Response)
    async def traces(request: Request) -> Response:
        response = await answer(request)
        stats.note(response.status_code)
        return response

    async def answer(request: Request) -> Response:
        kind = JSON if "json" in request.headers.get("content-type", "") else PROTOBUF
        admitted = False
        try:
            if not authorised(request):
                raise Rejected(401, code_pb2.UNAUTHENTICATED, "a valid bearer token is "
                               "required (Authorization: Bearer <token>)")
            kind = media_type(request)
            try:
                async with asyncio.timeout(wait_s):  # acquire() is cancellation-safe
                    await turns.acquire()
            except TimeoutError:
                raise Rejected(503, code_pb2.UNAVAILABLE, f"busy: {max_concurrent} requests "
                               f"have been in hand for {wait_s:g} s; retry") from None
            admitted = True
            body = await read_body(request, max_bytes)
            # Decoding a large body is CPU work: off the event loop, like the write.
            converted = await run_in_threadpool(store, body, kind)
        except Rejected as exc:
            return refused(exc, kind)
        except StoreError as exc:
            _log.warning("otel-monitor: OTLP spans not written: %s", exc)
            return refused(Rejected(503, code_pb2.UNAVAILABLE,
                                    f"the store cannot be written now: {exc}"), kind)
        finally:
            if admitted:
                turns.release()
        return encoded(export_response(converted), kind)

    return router


def create_ingest_app(db_path: str | os.PathLike[str], *, ui_token: str | None = None,
                      max_bytes: int | None = None, busy_timeout_s: float = 5.0,
                      max_concurrent: int = DEFAULT_MAX_CONCURRENT,
                      wait_s: float = 5.0) -> FastAPI:
    """An app with ``POST /traces`` only, mounted at ``/v1`` by ``create_server_app``
    beside the API: a sub-app, so it has its own token (see the module's docstring)
    rather than the API's. A bad setting raises ``StoreError`` naming it."""
    try:
        limit = max_bytes or read_setting("ingest_max_bytes")
        # Opened now; or at the first request, if another writer holds the lock now.
        writer = open_or_defer(db_path, busy_timeout_s=busy_timeout_s)
    except ValueError as exc:  # ConfigError too
        raise StoreError(f"OTLP ingest: {exc}") from None
    app = FastAPI(title="otel-monitor OTLP ingest", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.ingest_stats = IngestStats()  # the answers, for /metrics and the ribbon
    app.include_router(ingest_router(writer, token=ingest_token(ui_token), max_bytes=limit,
                                     max_concurrent=max_concurrent, wait_s=wait_s,
                                     stats=app.state.ingest_stats))
    return app
