"""An S3-compatible destination for the archive (``archive_url = s3://bucket/prefix``),
through pyarrow's ``S3FileSystem`` (already a dependency with pyarrow, speaks any
S3-compatible endpoint, does multipart uploads, listing and deletes; nothing more is
needed). Endpoint and region come from the settings or the standard AWS variables
(``AWS_ENDPOINT_URL``, ``AWS_REGION``); credentials only from the standard AWS
variables/profile chain, read by the AWS SDK inside pyarrow: never passed through, logged
or stored by otel-monitor.

The local archive directory is the spool: ``upload_pending`` uploads its files, verifies
each (size, then sha256 of the object read back), then deletes the local copy. A bucket
that cannot be reached leaves the files in the spool (the retention worker stops
archiving when the spool is full: the hot purge waits, up to the store's size cap)."""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .layout import HOUR_NS, ArchiveLayout

_log = logging.getLogger("otel_monitor")


@dataclass(frozen=True)
class S3Target:
    bucket: str
    prefix: str
    endpoint: str | None = None
    region: str | None = None
    timeout_s: float = 5.0

    @classmethod
    def from_url(cls, url: str, *, endpoint: str | None = None, region: str | None = None,
                 timeout_s: float = 5.0) -> S3Target:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"archive_url must be s3://bucket/prefix, got {url!r}")
        return cls(parsed.netloc, parsed.path.strip("/"), endpoint, region, timeout_s)

    @property
    def base(self) -> str:
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket

    def filesystem(self):
        import pyarrow.fs as pafs

        kwargs: dict = {"connect_timeout": self.timeout_s, "request_timeout": self.timeout_s,
                        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=2)}
        endpoint = self.endpoint or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            parsed = urlparse(endpoint)
            kwargs["endpoint_override"] = parsed.netloc or parsed.path
            kwargs["scheme"] = parsed.scheme or "https"
        region = self.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            kwargs["region"] = region
        return pafs.S3FileSystem(**kwargs)


def target_from(url: str | None, endpoint: str | None = None,
                region: str | None = None) -> S3Target | None:
    """The destination of the ``archive_url`` setting (None: local directory only)."""
    return None if not url else S3Target.from_url(url, endpoint=endpoint, region=region)


def spool_bytes(root: str | Path) -> int:
    """Bytes of archive files waiting in the local spool."""
    root = Path(root)
    return sum(p.stat().st_size for p in root.rglob("*.parquet")) if root.is_dir() else 0


def upload_pending(root: str | Path, target: S3Target, fs=None) -> int:
    """Upload each spooled file, verify it (size, sha256 read back), then delete the local
    copy. Returns the files uploaded; raises OSError on the first failure (the rest wait)."""
    layout = ArchiveLayout(Path(root))
    fs = fs or target.filesystem()
    done = 0
    for entry in layout.manifest():
        if (layout.root / entry["path"]).exists():  # else uploaded already, or expired
            upload_file(layout, entry, target, fs)
            done += 1
    return done


def upload_file(layout: ArchiveLayout, entry: dict, target: S3Target, fs) -> None:
    """Upload the spooled file of manifest ``entry``, verify the object (size, sha256 read
    back), then delete the local copy; raises OSError (the file stays) otherwise."""
    local = layout.root / entry["path"]
    key = f"{target.base}/{entry['path']}"
    with open(local, "rb") as src, fs.open_output_stream(key) as out:
        for block in iter(lambda: src.read(1 << 20), b""):
            out.write(block)
    info = fs.get_file_info(key)
    digest = hashlib.sha256()
    with fs.open_input_stream(key) as back:
        for block in iter(lambda: back.read(1 << 20), b""):
            digest.update(block)
    if info.size != entry["size"] or digest.hexdigest() != entry["sha256"]:
        raise OSError(f"archive object {key} did not verify; the local file stays")
    local.unlink()


def expire_remote(target: S3Target, before_ns: int, fs=None) -> int:
    """Delete the objects of the hours that ended before ``before_ns``."""
    import calendar
    import time

    import pyarrow.fs as pafs

    fs = fs or target.filesystem()
    deleted = 0
    for day in fs.get_file_info(pafs.FileSelector(target.base, allow_not_found=True)):
        name = day.path.rsplit("/", 1)[-1]
        if day.type != pafs.FileType.Directory or not name.startswith("date="):
            continue
        for hour in fs.get_file_info(pafs.FileSelector(day.path, allow_not_found=True)):
            hname = hour.path.rsplit("/", 1)[-1]
            try:
                t = time.strptime(f"{name[5:]} {hname[5:]}", "%Y-%m-%d %H")
            except ValueError:
                continue
            if int(calendar.timegm(t)) * 10**9 + HOUR_NS <= before_ns:
                objects = fs.get_file_info(pafs.FileSelector(hour.path, recursive=True))
                for obj in objects:
                    if obj.type == pafs.FileType.File:
                        fs.delete_file(obj.path)
                        deleted += 1
    return deleted


def remote_hour_files(target: S3Target, fs, from_ns: int, to_ns: int) -> list[str]:
    """The objects of the hours [from_ns, to_ns) touches (one listing per hour)."""
    import pyarrow.fs as pafs

    layout = ArchiveLayout(Path("/"))
    files: list[str] = []
    hour = from_ns - from_ns % HOUR_NS
    while hour < to_ns:
        rel = str(layout.hour_dir(hour).relative_to("/"))
        for info in fs.get_file_info(pafs.FileSelector(f"{target.base}/{rel}",
                                                       allow_not_found=True)):
            if info.type == pafs.FileType.File and info.path.endswith(".parquet"):
                files.append(info.path)
        hour += HOUR_NS
    return sorted(files)


def writer_objects(target: S3Target, fs, writer_id: str) -> dict[int, list[str]]:
    """``writer_id``'s objects by hour of start time (one recursive listing of the
    bucket's prefix; another writer's objects are left out)."""
    import calendar
    import time

    import pyarrow.fs as pafs

    by_hour: dict[int, list[str]] = {}
    for info in fs.get_file_info(pafs.FileSelector(target.base, recursive=True,
                                                   allow_not_found=True)):
        parts = info.path[len(target.base) + 1:].split("/")
        if (info.type != pafs.FileType.File or len(parts) != 3
                or not parts[2].startswith(f"{writer_id}-") or not parts[2].endswith(".parquet")
                or not parts[0].startswith("date=") or not parts[1].startswith("hour=")):
            continue
        try:
            t = time.strptime(f"{parts[0][5:]} {parts[1][5:]}", "%Y-%m-%d %H")
        except ValueError:
            continue
        by_hour.setdefault(int(calendar.timegm(t)) * 10**9, []).append(info.path)
    return {hour: sorted(keys) for hour, keys in by_hour.items()}
