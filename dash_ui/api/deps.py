"""What the routes share: the app's query service (one per app, set by ``create_api``)
and the bound on text parameters."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from exporters.queries import TraceQueries

MAX_TEXT = 1_000  # longest filter value accepted


def _queries(request: Request) -> TraceQueries:
    return request.app.state.queries


Queries = Annotated[TraceQueries, Depends(_queries)]
Text = Annotated[str | None, Query(max_length=MAX_TEXT)]
