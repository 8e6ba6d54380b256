"""``GET /api/rows``: a page of the trace table, with its filters, sort and count."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from exporters.queries import COUNT_CAP, SORTS, RowFilter

from .deps import Queries, Text

MAX_PAGE = 1_000
MAX_OFFSET = 1_000_000

SortKey = Literal[tuple(SORTS)]  # type: ignore[valid-type]

router = APIRouter()


def _ns(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp() * 1_000_000) * 1000


@router.get("/api/rows", summary="A page of trace rows (seven columns), newest first")
def rows(
    queries: Queries,
    from_: Annotated[datetime | None, Query(alias="from", description="ISO 8601; UTC "
                                            "if no offset")] = None,
    to: Annotated[datetime | None, Query(description="ISO 8601, exclusive")] = None,
    process: Text = None,
    data: Text = None,
    errors_only: bool = False,
    service: Text = None,
    sort: SortKey = "-timestamp",
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> dict[str, Any]:
    f = RowFilter(since_ns=_ns(from_), until_ns=_ns(to), process=process, data=data,
                  errors_only=errors_only, service=service)
    if f.since_ns is not None and f.until_ns is not None and f.since_ns > f.until_ns:
        raise HTTPException(422, "'from' must not be after 'to'")
    total, exact = queries.count_rows(f)
    page = queries.page(f, sort=sort, offset=offset, limit=limit)
    return {"rows": page.rows, "offset": offset, "limit": limit, "total": total,
            "total_exact": exact, "count_cap": COUNT_CAP,
            # Set when the page took the bounded strategy: the UI shows the note.
            "sorted_within_calls": page.window_calls, "note": page.note}
