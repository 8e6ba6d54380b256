"""The cold archive: calls the retention purge is about to delete, kept as Parquet files
(one per hour of start time per writer, zstd, sorted by time) with a manifest, so that a
purge no longer deletes for good.

- ``layout``: where a file goes (hive-style ``date=YYYY-MM-DD/hour=HH/``), its
  deterministic name, the manifest (JSON lines).
- ``writer``: ``ArchiveWriter`` writes, fsyncs, renames and verifies a batch's file per hour.
- ``reader``: ``read_calls`` reads them back (deduplicated by span id).
- ``compact``: merges a writer's batch files of a complete hour into one (local
  files; ``compact_remote``: the objects of an S3 destination).

pyarrow is imported lazily (by ``writer``/``reader``), never by ``import otel_monitor``.
"""
from __future__ import annotations

from .layout import COLUMNS, ArchiveLayout

__all__ = ["COLUMNS", "ArchiveLayout"]
