"""``GET /api/graph``: the dependency graph's nodes and edges."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from .deps import Queries

router = APIRouter()


@router.get("/api/graph", summary="Dependency graph: process and feed nodes and edges")
def graph(queries: Queries,
          window_s: Annotated[float, Query(gt=0, le=86400)] = 1800) -> dict[str, Any]:
    return queries.graph(window_s=window_s)
