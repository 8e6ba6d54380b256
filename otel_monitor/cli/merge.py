"""``otel-monitor merge SOURCE... --into PATH``: many stores into one (``exporters.merge``).

Progress: with ``rich`` importable and a terminal on stdout, a progress bar per source and
a table at the end; otherwise (no rich, a pipe, a script) one plain line per source on
stderr and a plain table. rich is not a dependency of otel-monitor (an instrumented
application would carry it): install it for the bars. ``--json`` prints the results only.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from exporters.errors import StoreError
from exporters.merge import SourceResult, merge_stores

from ..settings import SETTINGS, read_setting
from ._common import EXIT_OK, fail, positive

EXIT_SKIPPED = 1  # merged what could be, but some source was skipped (or stopped part-way)
COLUMNS = ("source", "schema", "calls", "rows", "duplicates", "outside retention", "error")


def add_parser(commands: Any) -> None:
    db = SETTINGS["db_path"]
    merge = commands.add_parser(
        "merge", help="merge stores (the brief's logs/*.db, otel-monitor stores) into one",
        description="Merge SQLite stores into one: the brief's MVP stores (process_trace and\n"
                    "data_trace tables) and otel-monitor stores of any schema version.\n"
                    "Sources are opened read-only and never changed; one that is corrupt,\n"
                    "locked, of an unknown schema, or the destination itself is reported and\n"
                    "skipped. Calls of the brief's stores get ids from their content, so a\n"
                    "merge run twice, or overlapping files, store each call once (the rest are\n"
                    "counted as duplicates). The destination may be live: it is written in\n"
                    "short transactions (WAL).\n\n"
                    "Calls older than the retention window (retention_hours) are skipped and\n"
                    "counted unless --keep-all. There is no archive yet (issue 17) to send them\n"
                    "to; and a process recording into the destination purges them again by\n"
                    "the same rule, so --keep-all is for a store nothing purges (a copy to\n"
                    "read, or one served with a longer retention).\n\n"
                    "Exit status: 0 all merged, 1 some source skipped, 2 the destination\n"
                    "cannot be used.",
        epilog="Progress bars need `rich` (optional) and a terminal; otherwise plain lines.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    merge.add_argument("sources", nargs="+", metavar="SOURCE", help="stores to merge from")
    merge.add_argument("--into", default=None, metavar="PATH",
                       help=f"the store to merge into (default: ${db.env}, else {db.default})")
    merge.add_argument("--keep-all", action="store_true",
                       help="keep calls older than the retention window too")
    merge.add_argument("--retention-hours", type=positive, default=None, metavar="H",
                       help="the window (default: the retention_hours setting)")
    merge.add_argument("--dry-run", action="store_true",
                       help="write nothing; count what would be merged (duplicates are those "
                            "already in the destination: not across the sources themselves)")
    merge.add_argument("--json", action="store_true", help="print the results as JSON")
    merge.add_argument("--source-timeout", type=positive, default=5.0, metavar="S",
                       help="how long to wait for a locked source before skipping it "
                            "(default 5)")
    merge.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    into = args.into or read_setting("db_path")
    retention = args.retention_hours or read_setting("retention_hours")
    progress = _progress(args)
    try:
        with progress:
            results = merge_stores(args.sources, into, retention_hours=retention,
                                   keep_all=args.keep_all, dry_run=args.dry_run,
                                   source_busy_timeout_s=args.source_timeout,
                                   progress=progress)
    except StoreError as exc:
        return fail("merge", exc)
    if args.json:
        json.dump({"into": into, "dry_run": args.dry_run, "keep_all": args.keep_all,
                   "sources": [r.as_dict() for r in results], "totals": _totals(results)},
                  sys.stdout, indent=2)
        print()
    else:
        progress.table(results, into, args.dry_run)
    return EXIT_SKIPPED if any(r.error for r in results) else EXIT_OK


def _totals(results: list[SourceResult]) -> dict[str, Any]:
    return {"calls": sum(r.calls for r in results), "rows": sum(r.rows for r in results),
            "duplicates": sum(r.duplicates for r in results),
            "outside_retention": sum(r.outside_retention for r in results),
            "skipped_sources": sum(1 for r in results if r.error),
            "seconds": round(sum(r.seconds for r in results), 3)}


def _cells(r: SourceResult) -> list[str]:
    return [r.source, r.schema or "-", f"{r.calls:,}", f"{r.rows:,}", f"{r.duplicates:,}",
            f"{r.outside_retention:,}", r.error or ""]


def _progress(args: argparse.Namespace) -> "_Plain":
    if not args.json and sys.stdout.isatty():
        try:
            import rich.progress  # noqa: F401  (optional)
        except ImportError:
            pass
        else:
            return _Rich()
    return _Plain(quiet=args.json)


class _Plain:
    """A line per source on stderr; the summary as a plain table."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def __enter__(self) -> "_Plain":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def start(self, source: str, total_calls: int | None) -> None:
        if not self.quiet:
            print(f"merging {source} ({total_calls:,} calls)", file=sys.stderr, flush=True)

    def advance(self, calls: int) -> None:
        pass

    def finish(self, result: SourceResult) -> None:
        if self.quiet:
            return
        if result.error:
            print(f"skipped: {result.error}", file=sys.stderr, flush=True)
        else:
            print(f"merged {result.source}: {result.calls:,} calls, {result.rows:,} rows, "
                  f"{result.duplicates:,} duplicates skipped in {result.seconds:.1f} s",
                  file=sys.stderr, flush=True)

    def table(self, results: list[SourceResult], into: str, dry_run: bool) -> None:
        totals = _totals(results)
        rows = [list(COLUMNS)] + [_cells(r) for r in results]
        rows.append(["total", "", f"{totals['calls']:,}", f"{totals['rows']:,}",
                     f"{totals['duplicates']:,}", f"{totals['outside_retention']:,}",
                     f"{totals['skipped_sources']} skipped" if totals["skipped_sources"] else ""])
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
        for row in rows:
            print("  ".join([c.ljust(w) if i < 2 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(row, widths))] + [row[-1]]).rstrip())
        print(f"{'would merge' if dry_run else 'merged'} into {into}")


class _Rich(_Plain):
    """rich's progress bars (one per source) and table."""

    def __enter__(self) -> "_Rich":
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeRemainingColumn)

        self.console = Console()
        self.bars = Progress(TextColumn("{task.description}"), BarColumn(),
                             MofNCompleteColumn(), TimeRemainingColumn(), console=self.console)
        self.bars.__enter__()
        self.task: Any = None
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.__exit__(*exc)

    def start(self, source: str, total_calls: int | None) -> None:
        self.task = self.bars.add_task(source, total=total_calls)

    def advance(self, calls: int) -> None:
        if self.task is not None:
            self.bars.advance(self.task, calls)

    def finish(self, result: SourceResult) -> None:
        if result.error:
            self.bars.console.print(f"[red]skipped:[/] {result.error}")
        self.task = None

    def table(self, results: list[SourceResult], into: str, dry_run: bool) -> None:
        from rich.table import Table

        table = Table(title=f"{'would merge' if dry_run else 'merged'} into {into}")
        for i, name in enumerate(COLUMNS):
            table.add_column(name, justify="right" if 2 <= i < len(COLUMNS) - 1 else "left",
                             style="red" if name == "error" else None)
        for r in results:
            table.add_row(*_cells(r))
        totals = _totals(results)
        table.add_row("total", "", f"{totals['calls']:,}", f"{totals['rows']:,}",
                      f"{totals['duplicates']:,}", f"{totals['outside_retention']:,}",
                      f"{totals['skipped_sources']} skipped" if totals["skipped_sources"]
                      else "", style="bold")
        self.console.print(table)
