"""What the status ribbon and the banners show: health badges, feeds, alerts, banner
flags."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from .deps import Queries

router = APIRouter()


@router.get("/api/health", summary="Status ribbon: badges with levels, per-process health")
def health(queries: Queries) -> dict[str, Any]:
    return queries.health()


@router.get("/api/feeds", summary="Feeds with age, level and stale flag")
def feeds(queries: Queries) -> list[dict[str, Any]]:
    return queries.feeds()


@router.get("/api/alerts", summary="The latest alerts, newest first")
def alerts(queries: Queries,
           limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict[str, Any]]:
    return queries.alerts(limit=limit)


@router.get("/api/banners", summary="Raised banner flags (backpressure)")
def banners(queries: Queries,
            fresh_within_s: Annotated[float, Query(gt=0, le=86400)] = 10.0
            ) -> list[dict[str, Any]]:
    return queries.banners(fresh_within_s=fresh_within_s)
