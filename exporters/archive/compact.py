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
are never touched. Files only: no SQLite transaction is held.

``compact_remote`` does the same for an S3 destination, on the bucket's objects after
their upload (the bounded spool never holds an hour of batches)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .layout import HOUR_NS, ArchiveLayout
from .remote import S3Target, upload_file, writer_objects
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

    table = merged_table([pq.read_table(layout.root / e["path"]) for e in entries])
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


def merged_table(tables: list[pa.Table]) -> pa.Table:
    """One hour's files of one writer as one table: each call once, sorted as the reader
    sorts (start, span id, then seq with NULL, a call without data rows, first)."""
    table = _without_duplicate_calls([t.cast(_schema()) for t in tables])
    return table.sort_by([("start_ns", "ascending"), ("span_id", "ascending"),
                          ("seq", "ascending", "at_start")])


def compact_remote(root: str | Path, target: S3Target, writer_id: str,
                   complete_before_ns: int, fs=None, fault: Fault | None = None) -> int:
    """``compact`` for an S3 destination, whose batches left the spool once uploaded: for
    each hour that ended by ``complete_before_ns`` with more than one of ``writer_id``'s
    objects, read them back, merge them (``merged_table``), store the result in the spool
    (``store_table``), upload and verify it (``upload_file``), and only then delete the
    merged-away objects (a removal line in the manifest first). One hour at a time (the
    memory bound). A crash or an OSError (the bucket unreachable) at any step loses no call
    and shows none twice (the reader dedupes while both copies exist); the next pass lists
    the bucket again, merges the merged object with what is left under the same name, and
    finishes. Returns the objects merged away; raises OSError."""
    layout = ArchiveLayout(Path(root))
    fault = fault or (lambda step: None)
    fs = fs or target.filesystem()
    # an hour with a batch still waiting in the spool waits too (merged once it is up)
    waiting = {e["hour_ns"] for e in layout.manifest()
               if e["writer"] == writer_id and (layout.root / e["path"]).exists()}
    merged = 0
    for hour_ns, keys in sorted(writer_objects(target, fs, writer_id).items()):
        if len(keys) > 1 and hour_ns + HOUR_NS <= complete_before_ns and hour_ns not in waiting:
            merged += _compact_remote_hour(layout, target, fs, writer_id, hour_ns, keys, fault)
    return merged


def _compact_remote_hour(layout: ArchiveLayout, target: S3Target, fs, writer_id: str,
                         hour_ns: int, keys: list[str], fault: Fault) -> int:
    import pyarrow.parquet as pq

    table = merged_table([pq.read_table(key, filesystem=fs) for key in keys])
    ids = [_ids_of(key) for key in keys]
    path = layout.file_path(hour_ns, writer_id, min(i[0] for i in ids), max(i[1] for i in ids))
    entry = store_table(layout, path, table, hour_ns, writer_id,
                        on_stored=lambda: fault("compact_stored"))
    fault("compacted")
    upload_file(layout, entry, target, fs)  # verified, then the local copy goes
    fault("compact_uploaded")
    target_key = f"{target.base}/{entry['path']}"
    done = 0
    for key in keys:
        if key == target_key:  # the merged object of an interrupted pass: replaced
            continue
        layout.mark_removed({"path": key[len(target.base) + 1:], "hour_ns": hour_ns,
                             "writer": writer_id})
        fault("compact_removing")
        fs.delete_file(key)
        done += 1
    return done


def _ids_of(key: str) -> tuple[int, int]:
    """First and last row id from an object's name, ``<writer>-<first>-<last>.parquet``."""
    first, last = key.rsplit("/", 1)[1][:-len(".parquet")].split("-")[-2:]
    return int(first), int(last)


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

