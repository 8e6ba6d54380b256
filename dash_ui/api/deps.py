"""What the routes share: the app's query service (one per app, set by ``create_api``),
the bound on text parameters, and the documented error answers."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request
from exporters.queries import TraceQueries

MAX_TEXT = 1_000  # longest filter value accepted


# An error's answer: what went wrong, in words (a JSON body whatever the route's own
# media type, e.g. /metrics's 401).
_MESSAGE = {"title": "Message", "type": "object", "required": ["detail"],
            "properties": {"detail": {"type": "string"}}}


def answer(description: str) -> dict[str, Any]:
    """One entry of a route's ``responses=``: an error status answered with a message."""
    return {"description": description, "content": {"application/json": {"schema": _MESSAGE}}}


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: answer("No such process, call or trace")}


def _queries(request: Request) -> TraceQueries:
    return request.app.state.queries


Queries = Annotated[TraceQueries, Depends(_queries)]
Text = Annotated[str | None, Query(max_length=MAX_TEXT)]
