"""Error groups: ``GET /api/errors`` (filters, sorts, pages), ``GET /api/errors/{fp}``,
and the status changes ``POST /api/errors/{fp}/resolve|ignore|snooze``.

The reads go through the app's query service; the writes through ``GroupActions``, the
app's one read-write connection to the store (opened at the first write). With a token
set, every ``/api`` route needs it (``create_api``), these writes too. Resolving calls
the app's ``on_resolved(group)`` hook once the change is committed (the alert side sends
PagerDuty's ``resolve`` and a Slack follow-up from it); what the hook raises is logged,
never the request's answer.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Annotated, Any, Callable, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import (
    BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError,
)
from starlette.concurrency import run_in_threadpool

from exporters.error_groups import IGNORED, RESOLVED, SNOOZED, STATUSES
from exporters.errors import ConfigError
from exporters.store import SpanStore

from .deps import Queries, Text, answer
from .rows import Instant

_log = logging.getLogger("otel_monitor")

MAX_PAGE = 500
MAX_OFFSET = 1_000_000
MAX_SNOOZE_S = 366 * 86400
MAX_OCCURRENCES = 1_000_000_000

Status = Literal[tuple(STATUSES)]  # type: ignore[valid-type]
Fingerprint = Annotated[str, Path(pattern="^[0-9a-f]{32}$",
                                  description="the group's fingerprint: 32 hex digits")]
OnResolved = Callable[[dict[str, Any]], None]
_NO_GROUP = answer("No such error group")

router = APIRouter()


class GroupActions:
    """Status changes of the store's error groups: one read-write ``SpanStore``, opened
    at the first change, shared by the request threads under a lock."""

    def __init__(self, db_path: str | os.PathLike[str],
                 on_resolved: OnResolved | None = None) -> None:
        self.db_path = os.fspath(db_path)
        self.on_resolved = on_resolved
        self._store: SpanStore | None = None
        self._lock = threading.Lock()

    def set_status(self, fingerprint: str, status: str, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            if self._store is None:
                self._store = SpanStore(self.db_path)
            group = self._store.set_group_status(fingerprint, status, **kwargs)
        if status == RESOLVED and self.on_resolved is not None:
            try:
                self.on_resolved(group)
            except Exception:
                _log.warning("otel-monitor: the on_resolved hook failed for group %s",
                             fingerprint, exc_info=True)
        return group

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
            self._store = None


def _change(request: Request, fingerprint: str, status: str, **kwargs: Any
            ) -> dict[str, Any]:
    actions: GroupActions = request.app.state.group_actions
    try:
        return actions.set_status(fingerprint, status, **kwargs)
    except ConfigError as exc:  # e.g. an until time that passed meanwhile
        raise RequestValidationError([{"type": "value_error", "loc": ("body",),
                                       "msg": str(exc)}]) from exc


@router.get("/api/errors", summary="Error groups, newest last failure (or highest count) "
                                   "first, with their count in the last hour")
def error_groups(
        queries: Queries,
        status: Annotated[Status | None, Query(description="shown status (an expired "
                                                           "snooze shows open)")] = None,
        process: Text = None, service: Text = None,
        since: Annotated[Instant | None, Query(description="groups last seen at or after "
                                                           "this ISO 8601 date-time")] = None,
        sort: Literal["last_seen", "count"] = "last_seen",
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> dict[str, Any]:
    since_ns: int | None = since  # type: ignore[assignment]  # parsed by Instant
    return queries.error_groups(status=status, process=process, service=service,
                                since_ns=since_ns, sort=sort, limit=limit, offset=offset)


@router.get("/api/errors/{fingerprint}", summary="One error group, with a 6-hour "
                                                  "sparkline and its latest call",
            responses={404: _NO_GROUP})
def error_group(queries: Queries, fingerprint: Fingerprint) -> dict[str, Any]:
    return queries.error_group(fingerprint)


@router.post("/api/errors/{fingerprint}/resolve",
             summary="Resolve a group: its next failure is a regression",
             responses={404: _NO_GROUP})
def resolve(request: Request, fingerprint: Fingerprint) -> dict[str, Any]:
    return _change(request, fingerprint, RESOLVED)


@router.post("/api/errors/{fingerprint}/ignore",
             summary="Ignore a group: counted, never alerted on",
             responses={404: _NO_GROUP})
def ignore(request: Request, fingerprint: Fingerprint) -> dict[str, Any]:
    return _change(request, fingerprint, IGNORED)


class _Snooze(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SnoozeFor(_Snooze):
    for_s: float = Field(gt=0, le=MAX_SNOOZE_S, description="snooze for this many seconds")


class SnoozeUntil(_Snooze):
    until: Instant = Field(description="snooze until this ISO 8601 date-time (in the "
                                       "future, else a 422)")


def _whole(value: Any) -> Any:
    """A JSON number with no fraction (``3`` or ``3.0``), as JSON Schema's integer; never a
    string or a boolean."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class SnoozeOccurrences(_Snooze):
    occurrences: Annotated[int, BeforeValidator(_whole)] = Field(
        ge=1, le=MAX_OCCURRENCES, description="snooze for this many more failures")


# Exactly one of the three: each body names one and forbids the others.
Snooze = SnoozeFor | SnoozeUntil | SnoozeOccurrences
_SNOOZE = TypeAdapter(Snooze)
# The body read by the route itself (so a body that is not JSON is a 422 like any bad
# input, not FastAPI's 400), documented as FastAPI would.
_SNOOZE_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "oneOf": [
        {"type": "object", "title": "SnoozeFor", "required": ["for_s"],
         "additionalProperties": False,
         "properties": {"for_s": {"type": "number", "exclusiveMinimum": 0,
                                  "maximum": MAX_SNOOZE_S,
                                  "description": "snooze for this many seconds"}}},
        {"type": "object", "title": "SnoozeUntil", "required": ["until"],
         "additionalProperties": False,
         "properties": {"until": {"type": "string", "format": "date-time",
                                  "description": "snooze until this ISO 8601 date-time "
                                                 "(in the future, else a 422)"}}},
        {"type": "object", "title": "SnoozeOccurrences", "required": ["occurrences"],
         "additionalProperties": False,
         "properties": {"occurrences": {"type": "integer", "minimum": 1,
                                        "maximum": MAX_OCCURRENCES,
                                        "description": "snooze for this many more "
                                                       "failures"}}}]}}}}}


@router.post("/api/errors/{fingerprint}/snooze",
             summary="Snooze a group for a time, until a time, or for N more failures; "
                     "it re-arms when the snooze runs out",
             description="The body names exactly one of ``for_s`` (seconds), ``until`` "
                         "(an ISO 8601 date-time in the future) and ``occurrences``.",
             responses={404: _NO_GROUP},
             openapi_extra=_SNOOZE_BODY)
async def snooze(request: Request, fingerprint: Fingerprint) -> dict[str, Any]:
    try:
        body = _SNOOZE.validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(
            include_url=False, include_context=False, include_input=False)]) from None
    if isinstance(body, SnoozeOccurrences):
        return await run_in_threadpool(_change, request, fingerprint, SNOOZED,
                                       occurrences=body.occurrences)
    if isinstance(body, SnoozeFor):
        until_ns = time.time_ns() + int(body.for_s * 1e9)
    else:
        until_ns = body.until  # type: ignore[assignment]  # parsed by Instant
    return await run_in_threadpool(_change, request, fingerprint, SNOOZED, until_ns=until_ns)
