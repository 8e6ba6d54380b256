"""Writes calls to the archive: per batch, one Parquet file per hour of start time (zstd,
sorted by time), written under a temporary name, fsynced, renamed, then verified (size
and sha256 read back) and listed in the manifest. Only a verified file lets the purge
delete its rows (``exporters.retention``). ``store_table`` is that protocol, shared with
compaction (``compact``), which merges a complete hour's batch files into one."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Sequence

from .layout import COLUMNS, ArchiveLayout, hour_of


class ArchiveError(OSError):
    """A file could not be stored durably or did not verify: its rows stay in the store."""


def _schema():
    import pyarrow as pa
    s, i64, f64 = pa.string(), pa.int64(), pa.float64()
    types = {"id": i64, "span_id": s, "trace_id": s, "parent_span_id": s, "start_ns": i64,
             "duration_ms": f64, "process": s, "process_group": s, "service": s, "status": s,
             "outcome": s, "exception_type": s, "exception": s, "pid": i64, "weight": f64,
             "error_group": s, "seq": i64, "data": s, "data_type": s, "data_value": s}
    return pa.schema([(name, types[name]) for name in COLUMNS])


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ArchiveWriter:
    def __init__(self, root: str | Path, writer_id: str) -> None:
        self.layout = ArchiveLayout(Path(root))
        self.writer_id = writer_id

    def write(self, rows: Sequence[tuple]) -> list[dict]:
        """Archive ``rows`` (tuples in ``COLUMNS`` order, sorted by start, id, seq): one
        file per hour. Returns the manifest entries of the files, all verified; raises
        ``ArchiveError`` otherwise."""
        by_hour: dict[int, list[tuple]] = {}
        start = COLUMNS.index("start_ns")
        for row in rows:
            by_hour.setdefault(hour_of(row[start]), []).append(row)
        return [self._write_hour(hour, hour_rows) for hour, hour_rows in sorted(by_hour.items())]

    def _write_hour(self, hour_ns: int, rows: list[tuple]) -> dict:
        import pyarrow as pa

        ids = [r[0] for r in rows]
        path = self.layout.file_path(hour_ns, self.writer_id, min(ids), max(ids))
        columns = list(zip(*rows))
        table = pa.Table.from_arrays(
            [pa.array(col, type=field.type) for col, field in zip(columns, _schema())],
            schema=_schema())
        return store_table(self.layout, path, table, hour_ns, self.writer_id)


def store_table(layout: ArchiveLayout, path: Path, table, hour_ns: int, writer_id: str,
                on_stored: Callable[[], None] | None = None) -> dict:
    """Write ``table`` (sorted by start) to ``path`` durably: a temporary name, fsync,
    rename, fsync of the folder, then size and sha256 verified; then its manifest line.
    Returns the manifest entry; raises ``ArchiveError``. ``on_stored``: called between
    the rename and the manifest line (a test's fault point)."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f, compression="zstd")
            f.flush()
            os.fsync(f.fileno())
        size, digest = tmp.stat().st_size, sha256_of(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ArchiveError(f"archive file {path} not written: {exc}") from exc
    if path.stat().st_size != size or sha256_of(path) != digest:
        raise ArchiveError(f"archive file {path} did not verify")
    if on_stored is not None:
        on_stored()
    import pyarrow.compute as pc

    ids = pc.min_max(table.column("id"))
    starts = table.column("start_ns")
    entry = {"path": str(path.relative_to(layout.root)), "hour_ns": hour_ns,
             "writer": writer_id, "rows": table.num_rows,
             "calls": pc.count_distinct(table.column("id")).as_py(),
             "first_id": ids["min"].as_py(), "last_id": ids["max"].as_py(),
             "min_start_ns": starts[0].as_py(), "max_start_ns": starts[-1].as_py(),
             "size": size, "sha256": digest}
    layout.append_manifest(entry)
    return entry
