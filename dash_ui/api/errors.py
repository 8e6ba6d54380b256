"""Error groups: ``GET /api/errors`` (filters, sorts, pages), ``GET /api/errors/{fp}``,
and the status changes ``POST /api/errors/{fp}/resolve|ignore|snooze``.

The reads go through the app's query service; the writes through ``GroupActions``
(``dash_ui.group_actions``, shared with the UI's Errors tab), the app's one read-write
connection to the store (opened at the first write). With a token
set, every ``/api`` route needs it (``create_api``), these writes too. Resolving calls
the app's ``on_resolved(group)`` hook once the change is committed (the alert side sends
PagerDuty's ``resolve`` and a Slack follow-up from it); what the hook raises is logged,
never the request's answer.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import (
    BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError,
)
from starlette.concurrency import run_in_threadpool

from exporters.error_groups import IGNORED, RESOLVED, SNOOZED, STATUSES
from exporters.errors import ConfigError

from ..group_actions import GroupActions
from .deps import Queries, Text, answer
from .rows import Instant

MAX_PAGE = 500
MAX_OFFSET = 1_000_000
MAX_SNOOZE_S = 366 * 86400
MAX_OCCURRENCES = 1_000_000_000

Status = Literal[tuple(STATUSES)]  # type: ignore[valid-type]
Fingerprint = Annotated[str, Path(pattern="^[0-9a-f]{32}$",
                                  description="the group's fingerprint: 32 hex digits")]
_NO_GROUP = answer("No such error group")

router = APIRouter()


def _change(request: Request, fingerprint: str, status: str, **kwargs: Any
            ) -> dict[str, Any]:
    actions: GroupActions = request.app.state.group_actions
    try:
        if status == SNOOZED:
            return actions.snooze(fingerprint, **kwargs)
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
        how: dict[str, Any] = {"occurrences": body.occurrences}
    elif isinstance(body, SnoozeFor):
        how = {"for_s": body.for_s}
    else:
        how = {"until_ns": body.until}  # parsed by Instant
    return await run_in_threadpool(_change, request, fingerprint, SNOOZED, **how)
