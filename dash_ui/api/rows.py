"""``GET /api/rows``: a page of the trace table, with its filters, sort and count."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, WithJsonSchema

from exporters.queries import COUNT_CAP, SORTS, RowFilter

from ..instants import EARLIEST, LATEST, parse_iso
from .deps import Queries, Text

MAX_PAGE = 1_000
MAX_OFFSET = 1_000_000

SortKey = Literal[tuple(SORTS)]  # type: ignore[valid-type]

# A date-time as a string only (a number is not read as a Unix time), turned into the
# store's ns; one the store cannot hold is refused here, as any bad parameter is.
Instant = Annotated[str, AfterValidator(parse_iso),
                    WithJsonSchema({"type": "string", "format": "date-time"})]
_RANGE = (f"An ISO 8601 date-time string (UTC if it has no offset; a number is not a "
          f"date), from {EARLIEST:%Y-%m-%dT%H:%M:%S}Z to {LATEST:%Y-%m-%dT%H:%M:%S}Z, the "
          f"range the store can hold.")

router = APIRouter()


@router.get("/api/rows", summary="A page of trace rows (seven columns), newest first",
            description="Each row has the seven columns (``Exception``: the traceback), "
                        "``exception_summary`` (``ExceptionType: message``, one bounded "
                        "line; empty for an OK call), span and trace id, ``start_ns`` and "
                        "``duration_ms``.")
def rows(
    queries: Queries,
    from_: Annotated[Instant | None, Query(alias="from", description=_RANGE + " Inclusive; "
                                           "not after 'to'.")] = None,
    to: Annotated[Instant | None, Query(description=_RANGE + " Exclusive.")] = None,
    process: Text = None,
    data: Text = None,
    errors_only: bool = False,
    service: Text = None,
    sort: SortKey = "-timestamp",
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> dict[str, Any]:
    since_ns: int | None = from_  # type: ignore[assignment]  # parsed by Instant
    until_ns: int | None = to  # type: ignore[assignment]
    if since_ns is not None and until_ns is not None and since_ns > until_ns:
        raise RequestValidationError([{"type": "value_error", "loc": ("query", "from"),
                                       "msg": "'from' must not be after 'to'"}])
    f = RowFilter(since_ns=since_ns, until_ns=until_ns, process=process, data=data,
                  errors_only=errors_only, service=service)
    total, exact = queries.count_rows(f)
    page = queries.page(f, sort=sort, offset=offset, limit=limit)
    return {"rows": page.rows, "offset": offset, "limit": limit, "total": total,
            "total_exact": exact, "count_cap": COUNT_CAP,
            # Set when the page took the bounded strategy: the UI shows the note.
            "sorted_within_calls": page.window_calls, "note": page.note}
