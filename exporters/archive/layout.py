"""The archive's layout: hive-style folders by hour of start time, deterministic file
names (hour, writer id, first and last row id: a re-archive after a crash between writing
and deleting overwrites the same file), and the manifest, a JSON-lines file listing each
file written (the last line for a path wins; a line with ``"removed": true`` says the
file was merged away by compaction, ``exporters.archive.compact``)."""
from __future__ import annotations

import calendar
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

HOUR_NS = 3600 * 10**9
MANIFEST = "manifest.jsonl"

# One row per data row of a call, denormalised with the call's fields; a call without
# data rows is one row with seq NULL.
COLUMNS = ("id", "span_id", "trace_id", "parent_span_id", "start_ns", "duration_ms",
           "process", "process_group", "service", "status", "outcome", "exception_type",
           "exception", "pid", "weight", "error_group", "seq", "data", "data_type",
           "data_value")


def hour_of(start_ns: int) -> int:
    """The hour (ns since the epoch, floored) a call's start falls in."""
    return start_ns - start_ns % HOUR_NS


@dataclass(frozen=True)
class ArchiveLayout:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))  # a str is taken too

    def hour_dir(self, hour_ns: int) -> Path:
        t = time.gmtime(hour_ns // 10**9)
        return self.root / f"date={t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}" / f"hour={t.tm_hour:02d}"

    def file_path(self, hour_ns: int, writer_id: str, first_id: int, last_id: int) -> Path:
        return self.hour_dir(hour_ns) / f"{writer_id}-{first_id:012d}-{last_id:012d}.parquet"

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def append_manifest(self, entry: dict) -> None:
        """Append one line, fsynced (a torn last line is skipped when read)."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, sort_keys=True) + "\n"
        with open(self.manifest_path, "a+b") as f:
            end = f.seek(0, os.SEEK_END)
            if end:
                f.seek(end - 1)
                if f.read(1) != b"\n":
                    line = "\n" + line  # after a torn line: never glued onto it
            f.write(line.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())

    def manifest(self, *, removed: bool = False) -> list[dict]:
        """The files listed, one entry per path (the last line wins), by hour then path;
        a path whose last line is a removal (``mark_removed``) is left out, or with
        ``removed`` it is the only kind given."""
        entries: dict[str, dict] = {}
        for entry in self._lines():
            entries[entry["path"]] = entry
        return sorted((e for e in entries.values() if bool(e.get("removed")) == removed),
                      key=lambda e: (e["hour_ns"], e["path"]))

    def mark_removed(self, entry: dict) -> None:
        """A line saying ``entry``'s file is gone (merged into another by compaction)."""
        self.append_manifest({"path": entry["path"], "hour_ns": entry["hour_ns"],
                              "writer": entry.get("writer"), "removed": True})

    def _lines(self) -> Iterator[dict]:
        try:
            text = self.manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        for line in text.splitlines():
            try:
                yield json.loads(line)
            except ValueError:
                continue  # a line torn by a crash: its file is rewritten by the re-archive


def expire(root: str | Path, before_ns: int) -> int:
    """Delete the files of the hours that ended before ``before_ns`` (archive retention)
    and their manifest lines (the manifest is rewritten under a temporary name, fsynced,
    renamed). Returns the files deleted."""
    import shutil

    layout = ArchiveLayout(Path(root))
    if not layout.root.is_dir():
        return 0
    deleted = 0
    for day in sorted(layout.root.glob("date=*")):
        for folder in sorted(day.glob("hour=*")):
            try:
                t = time.strptime(f"{day.name[5:]} {folder.name[5:]}", "%Y-%m-%d %H")
            except ValueError:
                continue
            hour_ns = int(calendar.timegm(t)) * 10**9
            if hour_ns + HOUR_NS <= before_ns:
                deleted += sum(1 for _ in folder.glob("*.parquet"))
                shutil.rmtree(folder)
        if day.is_dir() and not any(day.iterdir()):
            day.rmdir()
    kept = [e for e in layout._lines() if e["hour_ns"] + HOUR_NS > before_ns]
    if deleted or len(kept) != sum(1 for _ in layout._lines()):
        tmp = layout.manifest_path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(e, sort_keys=True) + "\n" for e in kept)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, layout.manifest_path)
    return deleted
