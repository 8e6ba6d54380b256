"""``otel-monitor errors``: the store's error groups, newest last failure first (or by
count), as a table or as JSON."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from typing import Any, TextIO

from exporters.error_groups import STATUSES
from exporters.errors import StoreError
from exporters.queries import TraceQueries
from exporters.queries.groups import MAX_LIMIT, SORTS

from ._common import EXIT_OK, add_db_option, fail

_HEADERS = ("Fingerprint", "Status", "Count", "Last hour", "Last seen", "Process", "Title")


def add_parser(commands: Any) -> None:
    errors = commands.add_parser(
        "errors", help="list the error groups of the store",
        description="List the error groups (failed calls grouped by process, exception "
                    "type and top application frames), newest last failure first. The "
                    "store is opened read-only.")
    add_db_option(errors)
    errors.add_argument("--status", choices=STATUSES,
                        help="only groups with this status (an expired snooze is open)")
    errors.add_argument("--process", metavar="NAME", help="only this process (full name)")
    errors.add_argument("--service", metavar="NAME", help="only groups seen in this service")
    errors.add_argument("--sort", choices=SORTS, default="last_seen",
                        help="last_seen (default) or count, highest first")
    errors.add_argument("--limit", type=_limit, default=50, metavar="N",
                        help=f"at most N groups (1-{MAX_LIMIT}, default 50)")
    errors.add_argument("--json", action="store_true",
                        help="print the groups as a JSON array (every field)")
    errors.set_defaults(func=run)


def _limit(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be 1-{MAX_LIMIT}, got {text!r}")
    return value


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    try:
        queries = TraceQueries(args.db)
        page = queries.error_groups(status=args.status, process=args.process,
                                    service=args.service, sort=args.sort, limit=args.limit)
    except StoreError as exc:  # its message names the file
        return fail("errors", exc)
    groups = page["groups"]
    if args.json:
        json.dump(groups, out, indent=2)
        out.write("\n")
        return EXIT_OK
    rows = [(g["fingerprint"], g["status"], str(g["count"]), str(g["count_last_hour"]),
             g["last_seen"], g["process"], g["title"]) for g in groups]
    width = shutil.get_terminal_size((160, 24)).columns
    sizes = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(_HEADERS)]
    fixed = sum(sizes[:-1]) + 2 * (len(sizes) - 1)
    sizes[-1] = max(len(_HEADERS[-1]), min(sizes[-1], width - fixed))

    def line(cells: tuple[str, ...]) -> str:
        parts = []
        for cell, size in zip(cells, sizes):
            cell = cell.replace("\n", " ")
            parts.append((cell if len(cell) <= size else cell[:size - 1] + "…").ljust(size))
        return "  ".join(parts).rstrip()

    out.write(line(_HEADERS) + "\n")
    out.write(line(tuple("-" * s for s in sizes)) + "\n")
    for row in rows:
        out.write(line(row) + "\n")
    if page["total"] > len(groups):
        out.write(f"({len(groups)} of {page['total']} groups; --limit for more)\n")
    return EXIT_OK
