"""Compaction: the retention worker archives in batches (``archive_batch_calls``), so an
hour of start time gets one file per batch. Once an hour is complete for a writer (no
call of it can still be archived by that writer: the hour ended before the purge's
cut-off), ``compact`` merges that writer's files of the hour into one (sorted by start
then span id, zstd, deduplicated by span id), stored as the writer stores a batch
(temporary name, fsync, rename, size and sha256 verified, manifest line), and only then
removes the merged files: a removal line in the manifest, then the file.

A crash at any step loses no call (the merged file is complete before any input goes)
and shows none twice (the reader dedupes by span id while both copies exist); the next
pass merges again under the same deterministic name, and ``compact`` first deletes any
file whose removal line was written but which was not yet deleted. Other writers' files
are never touched. Files only: no SQLite transaction is held."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .layout import HOUR_NS, ArchiveLayout
from .writer import _fsync_dir, _schema, store_table

if TYPE_CHECKING:
    import pyarrow as pa

Fault = Callable[[str], None]


def compact(root: str | Path, writer_id: str, complete_before_ns: int,
            fault: Fault | None = None) -> int:
    """Merge ``writer_id``'s files of each hour that ended by ``complete_before_ns``
    into one file per hour. ``fault(step)``: a test hook called between the steps.
    Returns the files merged away."""
    layout = ArchiveLayout(Path(root))
    fault = fault or (lambda step: None)
    for entry in layout.manifest(removed=True):  # a crash between removal line and unlink
        if entry.get("writer") == writer_id:
            (layout.root / entry["path"]).unlink(missing_ok=True)
    by_hour: dict[int, list[dict]] = defaultdict(list)
    for entry in layout.manifest():
        if (entry["writer"] == writer_id and entry["hour_ns"] + HOUR_NS <= complete_before_ns
                and (layout.root / entry["path"]).exists()):
            by_hour[entry["hour_ns"]].append(entry)
    merged = 0
    for hour_ns, entries in sorted(by_hour.items()):
        if len(entries) > 1:
            merged += _compact_hour(layout, writer_id, hour_ns, entries, fault)
    return merged


def _compact_hour(layout: ArchiveLayout, writer_id: str, hour_ns: int, entries: list[dict],
                  fault: Fault) -> int:
    import pyarrow.parquet as pq

    tables = [pq.read_table(layout.root / e["path"]).cast(_schema()) for e in entries]
    table = _without_duplicate_calls(tables)
    # the reader's order (seq NULL, a call without data rows, before any seq)
    table = table.sort_by([("start_ns", "ascending"), ("span_id", "ascending"),
                           ("seq", "ascending", "at_start")])
    path = layout.file_path(hour_ns, writer_id, min(e["first_id"] for e in entries),
                            max(e["last_id"] for e in entries))
    store_table(layout, path, table, hour_ns, writer_id,
                on_stored=lambda: fault("compact_stored"))
    fault("compacted")
    done = 0
    target = str(path.relative_to(layout.root))
    for entry in entries:
        if entry["path"] == target:  # this batch's name is the merged file's: replaced
            continue
        layout.mark_removed(entry)
        fault("compact_removing")
        (layout.root / entry["path"]).unlink(missing_ok=True)
        done += 1
    _fsync_dir(path.parent)
    return done


def _without_duplicate_calls(tables: list[pa.Table]) -> pa.Table:
    """The tables concatenated, each call's rows taken from the first table holding it
    (a call archived twice after a crash is the same call)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    whole = pa.concat_tables(tables)
    distinct = sum(pc.count_distinct(t.column("span_id")).as_py() for t in tables)
    if pc.count_distinct(whole.column("span_id")).as_py() == distinct:
        return whole  # the usual case: no call in two files
    seen: set[str] = set()
    kept = []
    for t in tables:
        ids = set(t.column("span_id").to_pylist())
        fresh = ids - seen
        seen |= ids
        kept.append(t.filter(pc.is_in(t.column("span_id"), value_set=pa.array(sorted(fresh),
                                                                            pa.string()))))
    return pa.concat_tables(kept)

