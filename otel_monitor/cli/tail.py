"""``otel-monitor tail``: the newest rows of the store in the seven columns, and with
``--follow`` each new one as it arrives."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
from contextlib import closing
from typing import Any, Sequence, TextIO

from exporters.columns import SEVEN_COLUMNS
from exporters.database import Row
from exporters.errors import StoreError
from exporters.store import SpanStore

from ._common import EXIT_OK, add_db_option, count, fail

POLL_S = 0.5            # tail --follow
FOLLOW_PAGE = 20_000    # rows read per poll; more than that in one poll are skipped


def add_parser(commands: Any) -> None:
    tail = commands.add_parser(
        "tail", help="print the newest rows of the store",
        description="Print the newest rows in the seven columns, oldest first (in the "
                    "order calls finished). Long cells are cut to fit the terminal; the "
                    "Exception column shows the line naming the exception, not the whole "
                    "traceback. The store is opened read-only.")
    add_db_option(tail)
    tail.add_argument("--process", metavar="NAME",
                      help="only this process: its full name "
                           "(otel_monitor.demo.black_scholes) or a dotted suffix of it "
                           "(black_scholes, MarketDataClient.fetch_quote) that matches "
                           "one process")
    tail.add_argument("--errors", action="store_true", help="only rows of calls that raised")
    tail.add_argument("--follow", "-f", action="store_true",
                      help=f"keep printing new rows as they arrive (every {POLL_S:g} s) "
                           "until Ctrl-C")
    tail.add_argument("-n", type=count, default=20, metavar="N",
                      help="how many rows to print first (default: 20)")
    tail.set_defaults(func=run)


# Each column's width: (the least it is shrunk to for a narrow terminal, the most it takes)
_WIDTHS = {"Process": (16, 48), "Data": (6, 20), "Data Type": (9, 9), "Data Value": (12, 40),
           "Timestamp": (27, 27), "Status": (6, 6), "Exception": (12, 64)}
_SHRINK_ORDER = ("Exception", "Data Value", "Process", "Data")  # first to give up space
_GAP = "  "
_CUT = "…"
_CONTROL = {i: " " for i in range(32)}
# "ValueError: message" or "pkg.mod.StaleQuoteError: message": an exception's own line
_EXCEPTION_LINE = re.compile(r"(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*(?:: |:$))")


def exception_summary(text: str) -> str:
    """The line of a traceback that names the exception (its last such line, so a
    chained exception shows the one that escaped), without the type's module path;
    else the last non-blank line."""
    lines = [line.lstrip(" |") for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        found = _EXCEPTION_LINE.match(line)
        if found:
            return line[found.start(1):]
    return lines[-1] if lines else ""


def iso_timestamp(ns: int) -> str:
    """UTC, ISO-8601 with microseconds: the Timestamp column (as the trace_rows view)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1000:06d}Z"


def _cells(row: Row) -> list[str]:
    first, *more = str(row["Data Value"]).splitlines() or [""]
    return [row["Process"], row["Data"], row["Data Type"], first + _CUT if more else first,
            iso_timestamp(row["start_ns"]), row["Status"],
            exception_summary(row["Exception"] or "")]


def _fit(text: str, width: int, from_left: bool = False) -> str:
    text = text.translate(_CONTROL)
    if len(text) <= width:
        return text
    if from_left:  # keep the end of a dotted name: "…demo.black_scholes"
        return _CUT + text[len(text) - width + 1:]
    return text[:width - 1] + _CUT


class Table:
    """The seven columns as aligned text. Widths are set once (from the first rows, or
    the column maxima when rows will follow) and shrunk to the terminal's width."""

    def __init__(self, out: TextIO, first_rows: list[list[str]], *, follow: bool,
                 max_width: int) -> None:
        self.out = out
        self.widths = []
        for i, name in enumerate(SEVEN_COLUMNS):
            low, high = _WIDTHS[name]
            natural = high if follow else max([len(name), *(len(r[i]) for r in first_rows)])
            self.widths.append(max(len(name), min(high, natural)))
        if max_width > 0:
            self._shrink(max_width)

    def _shrink(self, max_width: int) -> None:
        over = sum(self.widths) + len(_GAP) * (len(self.widths) - 1) - max_width
        while over > 0:
            slack = [(self.widths[SEVEN_COLUMNS.index(n)] - max(_WIDTHS[n][0], len(n)), n)
                     for n in _SHRINK_ORDER]  # negative: already narrower than its floor
            room, name = max(slack)
            if room <= 0:
                return
            take = min(room, over)
            self.widths[SEVEN_COLUMNS.index(name)] -= take
            over -= take

    def _line(self, cells: Sequence[str]) -> str:
        parts = [_fit(c, w, from_left=(i == 0)).ljust(w)
                 for i, (c, w) in enumerate(zip(cells, self.widths))]
        return _GAP.join(parts).rstrip()

    def header(self) -> None:
        self.out.write(self._line(SEVEN_COLUMNS) + "\n")
        self.out.write(_GAP.join("-" * w for w in self.widths) + "\n")

    def rows(self, rows: list[list[str]]) -> None:
        self.out.write("".join(self._line(r) + "\n" for r in rows))
        self.out.flush()


def match_processes(names: Sequence[str], wanted: str) -> list[str]:
    """``wanted`` itself if it is a process name, else every name it is a dotted suffix of."""
    if wanted in names:
        return [wanted]
    return [n for n in names if n.endswith("." + wanted)]


class _Ambiguous(Exception):
    pass


def _resolve(store: SpanStore, wanted: str | None) -> tuple[bool, str | None]:
    """(resolved, the process name to filter on); raises _Ambiguous."""
    if wanted is None:
        return True, None
    found = match_processes(store.process_names(), wanted)
    if len(found) > 1:
        raise _Ambiguous(f"--process {wanted!r} matches {len(found)} processes: "
                         f"{', '.join(found)}; give more of the name")
    return (True, found[0]) if found else (False, None)


def run(args: argparse.Namespace) -> int:
    try:
        store = SpanStore(args.db, readonly=True)
    except StoreError as exc:
        return fail("tail", exc)
    with closing(store):
        try:
            return _tail(store, args, sys.stdout)
        except _Ambiguous as exc:
            return fail("tail", exc)
        except StoreError as exc:  # its message names the file
            return fail("tail", f"cannot read it as an otel-monitor store: {exc}")
        except KeyboardInterrupt:
            return EXIT_OK
        except BrokenPipeError:  # `otel-monitor tail | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK


def _tail(store: SpanStore, args: argparse.Namespace, out: TextIO) -> int:
    resolved, process = _resolve(store, args.process)
    if not resolved and not args.follow:
        print(f"otel-monitor tail: no process named {args.process!r} or ending in "
              f".{args.process} in {args.db}", file=sys.stderr)
    rows = []
    if resolved:  # one row at least: its span is where --follow pages on from
        rows = store.latest_rows(limit=max(args.n, 1), process=process, errors_only=args.errors)
    cursor = rows[-1]["span"] if rows else None
    shown = [_cells(r) for r in rows[-args.n:]] if args.n else []
    table = Table(out, shown, follow=args.follow,
                  max_width=shutil.get_terminal_size((0, 0)).columns)
    table.header()
    table.rows(shown)
    while args.follow:
        time.sleep(POLL_S)
        if not resolved:
            resolved, process = _resolve(store, args.process)
            if not resolved:
                continue
        rows = store.latest_rows(limit=FOLLOW_PAGE, process=process, errors_only=args.errors,
                                 after_span=cursor)
        if len(rows) == FOLLOW_PAGE:
            print(f"otel-monitor tail: more than {FOLLOW_PAGE} new rows in {POLL_S} s; "
                  "older ones skipped", file=sys.stderr)
        if rows:
            table.rows([_cells(r) for r in rows])
            cursor = rows[-1]["span"]
    return EXIT_OK

