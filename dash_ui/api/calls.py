"""The processes and their calls: the process list, one call in detail, a process's
source and its durations (what the drill-down shows)."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from ..reproduce import reproduction
from .deps import MAX_TEXT, NOT_FOUND, Queries

router = APIRouter()


@router.get("/api/processes", summary="Processes with group, calls and errors in a window")
def processes(queries: Queries,
              window_s: Annotated[float, Query(gt=0, le=7 * 86400)] = 1800
              ) -> list[dict[str, Any]]:
    return queries.processes(window_s=window_s)


@router.get("/api/calls/{span_id}", summary="One call: inputs/outputs, traceback, "
                                            "parent and children", responses=NOT_FOUND)
def call(queries: Queries,
         span_id: Annotated[str, Path(pattern="^[0-9a-fA-F]{16}$")]) -> dict[str, Any]:
    return queries.call(span_id)


@router.get("/api/calls/{span_id}/reproduce",
            summary="Python that re-runs one call with its recorded inputs: a snippet, and "
                    "a pytest file asserting the recorded outcome", responses=NOT_FOUND)
def reproduce(queries: Queries,
              span_id: Annotated[str, Path(pattern="^[0-9a-fA-F]{16}$")]) -> dict[str, Any]:
    return reproduction(queries, span_id)


@router.get("/api/calls/{span_id}/last-good",
            summary="The most recent OK call of the same process before this one (to compare "
                    "a failed call's inputs with)", responses=NOT_FOUND)
def last_good(queries: Queries,
              span_id: Annotated[str, Path(pattern="^[0-9a-fA-F]{16}$")]) -> dict[str, Any]:
    return queries.last_good(span_id)


@router.get("/api/traces/{trace_id}", summary="Every span of a trace in the store, with "
                                             "parent ids (the trace view)",
            responses=NOT_FOUND)
def trace(queries: Queries,
          trace_id: Annotated[str, Path(pattern="^[0-9a-fA-F]{32}$")]) -> dict[str, Any]:
    return queries.trace(trace_id)


@router.get("/api/processes/{name:path}/source", summary="A process's source from the catalog",
            responses=NOT_FOUND)
def source(queries: Queries,
           name: Annotated[str, Path(max_length=MAX_TEXT)]) -> dict[str, Any]:
    return queries.source(name)


@router.get("/api/processes/{name:path}/durations",
            summary="A process's duration_ms over the last N minutes, bucketed",
            responses=NOT_FOUND)
def durations(queries: Queries,
              name: Annotated[str, Path(max_length=MAX_TEXT)],
              minutes: Annotated[float, Query(gt=0, le=24 * 60)] = 30,
              points: Annotated[int, Query(ge=1, le=600)] = 120) -> dict[str, Any]:
    return queries.durations(name, minutes=minutes, points=points)
