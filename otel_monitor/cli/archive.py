"""``otel-monitor archive ls|export``: the cold archive's files (from its manifest, with
where each is now: local, the spool, or the S3 bucket), and the archived calls of a time
range (from the directory and, with ``archive_url``, the bucket) written out for offline
analysis as Parquet, CSV or OTLP JSON (``ExportTraceServiceRequest``, one resource per
service)."""
from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import datetime, timezone
from typing import Any, TextIO

from ._common import EXIT_OK, add_db_option, fail

FORMATS = ("parquet", "csv", "otlp-json")


def add_parser(commands: Any) -> None:
    archive = commands.add_parser(
        "archive", help="list or export the cold archive",
        description="The cold archive: Parquet files of the calls the purge deleted "
                    "(archive_dir, by default <store>-archive beside the store).")
    verbs = archive.add_subparsers(dest="verb", metavar="VERB", required=True)
    ls = verbs.add_parser("ls", help="the archive's files, oldest hour first")
    export = verbs.add_parser("export", help="the calls of a time range, to a file")
    for p in (ls, export):
        add_db_option(p)
        p.add_argument("--dir", metavar="PATH",
                       help="the archive's directory (default: the settings' archive_dir)")
    ls.add_argument("--json", action="store_true", help="the manifest entries as JSON")
    ls.set_defaults(func=run_ls)
    export.add_argument("--from", dest="from_", required=True, type=_instant,
                        metavar="ISO", help="start (inclusive; UTC if no offset)")
    export.add_argument("--to", required=True, type=_instant, metavar="ISO",
                        help="end (exclusive)")
    export.add_argument("--format", choices=FORMATS, default="parquet")
    export.add_argument("--process", metavar="NAME", help="only this process")
    export.add_argument("--out", metavar="FILE", required=True, help="the file to write")
    export.set_defaults(func=run_export)


def _instant(text: str) -> int:
    try:
        t = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {text!r}") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return int(t.timestamp()) * 10**9 + t.microsecond * 1000


def _archive_dir(args: argparse.Namespace) -> str | None:
    if args.dir:
        return args.dir
    from ..settings import load_settings
    return load_settings({"db_path": args.db}).archive_path


def _remote(args: argparse.Namespace) -> Any:
    """The settings' S3 destination (``archive_url``), or None: with one, the archive
    directory is only the spool of files not uploaded yet, so the bucket is read too."""
    from exporters.archive.remote import target_from

    from ..settings import load_settings
    settings = load_settings({"db_path": args.db})
    return target_from(settings.archive_url, settings.archive_s3_endpoint,
                       settings.archive_s3_region)


def _location(root: str, entry: dict[str, Any], remote: Any) -> str:
    """Where a manifest entry's file is now: the spool (or the local archive), the bucket
    once uploaded (the upload deletes the verified local copy), or gone (expired)."""
    import os

    if os.path.exists(os.path.join(root, entry["path"])):
        return "spool" if remote is not None else "local"
    return f"s3://{remote.base}/{entry['path']}" if remote is not None else "missing"


def run_ls(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from exporters.archive.layout import ArchiveLayout

    out = sys.stdout if out is None else out
    root = _archive_dir(args)
    if root is None:
        return fail("archive", "archiving is off (archive_enabled) and no --dir given")
    remote = _remote(args)
    entries = ArchiveLayout(root).manifest()  # type: ignore[arg-type]
    for e in entries:
        e["location"] = _location(root, e, remote)
    if args.json:
        json.dump(entries, out, indent=2)
        out.write("\n")
        return EXIT_OK
    out.write(f"{'Hour (UTC)':<17} {'Calls':>9} {'Rows':>10} {'Bytes':>12}  Path\n")
    for e in entries:
        hour = datetime.fromtimestamp(e["hour_ns"] / 1e9, timezone.utc).strftime("%Y-%m-%d %H:00")
        where = "" if e["location"] == "local" else f"  ({e['location']})"
        out.write(f"{hour:<17} {e['calls']:>9} {e['rows']:>10} {e['size']:>12}  "
                  f"{e['path']}{where}\n")
    out.write(f"{len(entries)} files, {sum(e['calls'] for e in entries)} calls, "
              f"{sum(e['size'] for e in entries)} bytes\n")
    return EXIT_OK


def run_export(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from exporters.archive.layout import COLUMNS
    from exporters.archive.reader import read_calls

    out = sys.stdout if out is None else out
    root = _archive_dir(args)
    if root is None:
        return fail("archive", "archiving is off (archive_enabled) and no --dir given")
    if args.from_ > args.to:
        return fail("archive", "--from must not be after --to")
    rows = read_calls(root, args.from_, args.to, process=args.process, remote=_remote(args))
    if args.format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        table = pa.Table.from_pylist(rows) if rows else pa.table({c: [] for c in COLUMNS})
        pq.write_table(table, args.out, compression="zstd")
    elif args.format == "csv":
        with open(args.out, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    else:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(otlp_json(rows), f)
    calls = len({r["span_id"] for r in rows})
    out.write(f"{calls} calls ({len(rows)} rows) written to {args.out}\n")
    return EXIT_OK


def otlp_json(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rows as an OTLP/JSON ExportTraceServiceRequest: one span per call, its
    variables as ``monitor.input.<name>`` / ``monitor.output.<name>`` attributes."""
    spans: dict[str, dict[str, Any]] = {}
    services: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        span = spans.get(r["span_id"])
        if span is None:
            end = r["start_ns"] + int(round((r["duration_ms"] or 0) * 1e6))
            span = spans[r["span_id"]] = {
                "traceId": r["trace_id"], "spanId": r["span_id"], "name": r["process"],
                "kind": 1, "startTimeUnixNano": str(r["start_ns"]),
                "endTimeUnixNano": str(end), "attributes": [],
                "status": {"code": 2 if r["status"] == "ERR" else 1}}
            if r["parent_span_id"]:
                span["parentSpanId"] = r["parent_span_id"]
            if r["status"] == "ERR":
                span["status"]["message"] = r["exception_type"] or ""
                span["events"] = [{"name": "exception", "timeUnixNano": str(end),
                                   "attributes": [
                                       _attr("exception.type", r["exception_type"] or ""),
                                       _attr("exception.stacktrace", r["exception"] or "")]}]
            services.setdefault(r["service"] or "", []).append(span)
        if r["seq"] is not None and r["data_type"] in ("INPUT", "OUTPUT"):
            side = "input" if r["data_type"] == "INPUT" else "output"
            span["attributes"].append(_attr(f"monitor.{side}.{r['data']}", r["data_value"] or ""))
    return {"resourceSpans": [
        {"resource": {"attributes": [_attr("service.name", service)]},
         "scopeSpans": [{"scope": {"name": "otel_monitor.archive"}, "spans": group}]}
        for service, group in services.items()]}


def _attr(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}
