"""Reads the archive back: the rows of the calls that started in ``[from_ns, to_ns)``,
optionally of one process, through a pyarrow dataset over the hive-style folders (only the
hours asked are opened; start time and process are pushed down to the row groups).
Deduplicated by span id: a file archived twice after a crash (a different name, when
more calls were due the second time) never shows a call twice."""
from __future__ import annotations

from pathlib import Path

from .layout import COLUMNS, HOUR_NS, ArchiveLayout, hour_of


def _hour_files(layout: ArchiveLayout, from_ns: int, to_ns: int) -> list[str]:
    files: list[str] = []
    hour = hour_of(from_ns)
    while hour < to_ns:
        folder = layout.hour_dir(hour)
        if folder.is_dir():
            files += sorted(str(p) for p in folder.glob("*.parquet"))
        hour += HOUR_NS
    return files


def read_calls(root: str | Path, from_ns: int, to_ns: int, *,
               process: str | None = None, remote=None) -> list[dict]:
    """Rows (dicts keyed by ``COLUMNS``) sorted by start, span id, seq; one call's rows
    taken from one file only. ``remote``: an ``S3Target`` whose objects are read too
    (the local directory is then the spool of files not uploaded yet)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    sources = []
    files = _hour_files(ArchiveLayout(Path(root)), from_ns, to_ns)
    if files:
        sources.append(ds.dataset(files, format="parquet"))
    if remote is not None:
        from .remote import remote_hour_files
        fs = remote.filesystem()
        objects = remote_hour_files(remote, fs, from_ns, to_ns)
        if objects:
            sources.append(ds.dataset(objects, format="parquet", filesystem=fs))
    if not sources:
        return []
    expr = (pc.field("start_ns") >= from_ns) & (pc.field("start_ns") < to_ns)
    if process is not None:
        expr = expr & (pc.field("process") == process)
    seen: dict[str, int] = {}
    rows: list[dict] = []
    fragments = [f for dataset in sources for f in dataset.get_fragments()]
    for index, fragment in enumerate(fragments):
        for row in fragment.to_table(filter=expr, columns=list(COLUMNS)).to_pylist():
            owner = seen.setdefault(row["span_id"], index)
            if owner == index:
                rows.append(row)
    rows.sort(key=lambda r: (r["start_ns"], r["span_id"], -1 if r["seq"] is None else r["seq"]))
    return rows


def find_call(root: str | Path, span_id: str, start_ns: int | None = None,
              remote=None) -> list[dict]:
    """The rows of call ``span_id`` (by seq; [] when not archived). With ``start_ns`` only
    that hour's files are read; without, every file's span_id column is scanned."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    layout = ArchiveLayout(Path(root))
    if start_ns is not None:
        files = _hour_files(layout, start_ns, start_ns + 1)
    else:
        files = [str(layout.root / e["path"]) for e in layout.manifest()
                 if (layout.root / e["path"]).exists()]
    sources = [ds.dataset(files, format="parquet")] if files else []
    if remote is not None:
        import pyarrow.fs as pafs
        fs = remote.filesystem()
        objects = sorted(i.path for i in fs.get_file_info(
            pafs.FileSelector(remote.base, recursive=True, allow_not_found=True))
            if i.path.endswith(".parquet"))
        if objects:
            sources.append(ds.dataset(objects, format="parquet", filesystem=fs))
    expr = pc.field("span_id") == span_id
    for fragment in (f for d in sources for f in d.get_fragments()):
        rows = fragment.to_table(filter=expr, columns=list(COLUMNS)).to_pylist()
        if rows:  # one file's copy (a call archived twice is the same call)
            return sorted(rows, key=lambda r: -1 if r["seq"] is None else r["seq"])
    return []
