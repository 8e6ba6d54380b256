"""The ``otel-monitor`` command.

    otel-monitor demo [--db PATH] [--duration S] [--rate CALLS_PER_S] [--quiet]
                      [--serve [--host 127.0.0.1] [--port 8050]]
    otel-monitor tail [--db PATH] [--process NAME] [--errors] [--follow] [-n N]
    otel-monitor serve [--db PATH] [--host 127.0.0.1] [--port 8050]

Each subcommand is a ``_cmd_*`` function registered in ``build_parser``; a command
that needs the UI (``serve``) must import it only when run, and never from
``otel_monitor`` itself (``import otel_monitor`` stays free of dash, plotly,
fastapi and uvicorn).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import closing
from typing import Sequence, TextIO

from exporters.columns import SEVEN_COLUMNS
from exporters.database import Row
from exporters.errors import SchemaError, StoreError
from exporters.store import SpanStore

from . import configure, shutdown
from ._config import DEFAULT_DB_PATH, ENVIRONMENT, ConfigError

EXIT_OK = 0
EXIT_ERROR = 2          # usage, or a store that cannot be read
POLL_S = 0.5            # tail --follow
FOLLOW_PAGE = 20_000    # rows read per poll; more than that in one poll are skipped
PROGRESS_EVERY_S = 5.0  # demo
UI_START_TIMEOUT_S = 60.0  # demo --serve: the UI process has this long to listen
UI_STOP_TIMEOUT_S = 10.0   # ... and this long to stop before it is killed


def default_db() -> str:
    return os.environ.get(ENVIRONMENT["db_path"][0]) or DEFAULT_DB_PATH


# -- demo -------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import demo  # the workload's functions are decorated at import: only when run

    os.environ.setdefault("OTEL_SERVICE_NAME", "risk-desk-demo")
    path = os.path.abspath(args.db)
    try:
        configure(db_path=path)
        counter = SpanStore(path, readonly=True)
    except (ConfigError, StoreError, SchemaError, OSError) as exc:
        return _fail("demo", exc)
    stop = threading.Event()
    try:
        ui = _UIProcess(path, args.host, args.port, stop) if args.serve else None
    except OSError as exc:
        counter.close()
        shutdown()
        return _fail("demo", f"cannot serve the UI on {args.host}:{args.port}: {exc}")
    print(f"otel-monitor demo: recording to {path} "
          f"({'for %g s' % args.duration if args.duration else 'Ctrl-C to stop'})", flush=True)

    started_ns, started = time.time_ns(), time.monotonic()

    def summary(prefix: str) -> None:
        calls, errors = counter.call_counts(started_ns)
        elapsed = time.monotonic() - started
        share = f" ({errors / calls:.1%})" if calls else ""
        print(f"{prefix}[{elapsed:6.1f} s] {calls:,} calls recorded "
              f"({calls / max(elapsed, 1e-9):,.0f}/s), {errors:,} ERR{share}", flush=True)

    on_main_thread = threading.current_thread() is threading.main_thread()
    if on_main_thread:  # `kill`, `docker stop`: stop as Ctrl-C does
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if ui is not None:
            ui.start()
        demo.run(demo.RiskDesk(), rate=args.rate, duration_s=args.duration, stop=stop,
                 progress=None if args.quiet else lambda: summary(""),
                 progress_every_s=PROGRESS_EVERY_S)
    except KeyboardInterrupt:
        pass
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
        ui_ok = ui.stop() if ui is not None else True
        shutdown()  # everything recorded is in SQLite after this
    with closing(counter):
        if not args.quiet:
            summary("stopped ")
    return EXIT_OK if ui_ok else EXIT_ERROR


class _UIProcess:
    """``otel-monitor serve`` over the demo's store, as a child process (the UI stays
    responsive whatever the workload does to this one's GIL). This process binds the
    port and hands the socket over, so a taken port fails here at once, and the URL
    printed is surely the child's. The child runs in its own session so a terminal's
    Ctrl-C reaches only the demo, which stops it once with SIGTERM; if it stops or does
    not answer in time, the demo stops too."""

    def __init__(self, path: str, host: str, port: int, stop: threading.Event) -> None:
        self._socket = socket.create_server((host, port))  # OSError: taken, or no such host
        self.url = f"http://{host}:{self._socket.getsockname()[1]}/"
        self._command = [sys.executable, "-m", "otel_monitor.cli", "serve", "--db", path,
                         "--fd", str(self._socket.fileno())]
        self._stop = stop
        self._proc: subprocess.Popen | None = None
        self._failed = False

    def start(self) -> None:
        try:
            self._proc = subprocess.Popen(self._command, stdout=subprocess.DEVNULL,
                                          pass_fds=(self._socket.fileno(),),
                                          start_new_session=True)
        finally:
            self._socket.close()  # the child has its own copy
        threading.Thread(target=self._announce, name="otel-monitor-ui-wait",
                         daemon=True).start()

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.url + "api/health", timeout=2).close()
        except urllib.error.HTTPError:  # 401 without the token: it answers all the same
            pass
        except OSError:
            return False
        return True

    def _announce(self) -> None:
        deadline = time.monotonic() + UI_START_TIMEOUT_S
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            if self._answers():
                print(f"otel-monitor demo: UI on {self.url} (Ctrl-C stops the workload "
                      "and the UI)", flush=True)
                self._proc.wait()  # the UI stopping by itself stops the demo too
                if self._stop.is_set():
                    return
                break
            time.sleep(0.2)
        if not self._stop.is_set():
            print(f"otel-monitor demo: the UI on {self.url} did not start or stopped "
                  "(see above); stopping", file=sys.stderr, flush=True)
            self._failed = True
            self._stop.set()

    def stop(self) -> bool:
        """Stop the UI; whether it ran and stopped cleanly."""
        self._stop.set()  # a deliberate stop, not the UI failing
        if self._proc is None:
            self._socket.close()
            return True
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(UI_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
                return False
        return not self._failed and self._proc.returncode in (0, -signal.SIGTERM)


# -- tail -------------------------------------------------------------------------

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


def _cmd_tail(args: argparse.Namespace) -> int:
    try:
        store = SpanStore(args.db, readonly=True)
    except (StoreError, SchemaError) as exc:
        return _fail("tail", exc)
    with closing(store):
        try:
            return _tail(store, args, sys.stdout)
        except _Ambiguous as exc:
            return _fail("tail", exc)
        except StoreError as exc:
            return _fail("tail", f"{args.db}: cannot read it as an otel-monitor store: {exc}")
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


# -- serve ------------------------------------------------------------------------------

UI_MODULE = "dash_ui.server"  # imported only when `serve` runs (otel_monitor stays light)


def _cmd_serve(args: argparse.Namespace) -> int:
    import importlib

    try:
        server = importlib.import_module(UI_MODULE)
    except ImportError as exc:
        return _fail("serve", f"the UI is not installed ({exc}); install it with "
                              "pip install 'otel-monitor[ui]'")
    path = os.path.abspath(args.db)
    try:
        app = server.create_server_app(path)
    except (StoreError, SchemaError) as exc:
        return _fail("serve", exc)
    import uvicorn  # installed with the UI (its extra), so present once dash_ui imported

    if args.fd is not None:  # a socket bound by the parent (demo --serve)
        uvicorn.run(app, fd=args.fd, log_level="warning")
        return EXIT_OK
    print(f"otel-monitor serve: {path} on http://{args.host}:{args.port}/ "
          f"(API docs: /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return EXIT_OK


# -- the command line -----------------------------------------------------------------


def _fail(command: str, problem: object) -> int:
    print(f"otel-monitor {command}: {problem}", file=sys.stderr)
    return EXIT_ERROR


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"must be a port number 1-65535, got {text!r}")
    return value


def _port_or_any(text: str) -> int:
    return 0 if text.strip() == "0" else _port(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-monitor",
        description="Live observability for Python services: record a demo workload, "
                    "read the store.")
    try:
        from importlib.metadata import version
        parser.add_argument("--version", action="version",
                            version=f"%(prog)s {version('otel-monitor')}")
    except Exception:  # not installed as a distribution
        pass
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    db_help = ("the SQLite store (default: $OTEL_MONITOR_DB, else "
               f"{DEFAULT_DB_PATH}; now {default_db()})").replace("%", "%%")

    demo = commands.add_parser(
        "demo", help="run a live trading-risk workload into the store",
        description="Run an instrumented equity-options risk desk (market data, pricing, "
                    "risk, reporting; nested, async and generator calls; a masked api_key; "
                    "~1.5% of calls raise) until Ctrl-C or --duration. Set "
                    "OTEL_EXPORTER_OTLP_ENDPOINT to also send its spans to a Collector.")
    demo.add_argument("--db", default=default_db(), metavar="PATH", help=db_help)
    demo.add_argument("--duration", type=_positive, metavar="SECONDS",
                      help="stop after this long (default: run until Ctrl-C)")
    demo.add_argument("--rate", type=_positive, default=200.0, metavar="CALLS_PER_S",
                      help="monitored calls per second, roughly (default: 200)")
    demo.add_argument("--quiet", action="store_true",
                      help=f"print only the store's path, not a summary every "
                           f"{PROGRESS_EVERY_S:g} s")
    demo.add_argument("--serve", action="store_true",
                      help="also serve the UI over the store (otel-monitor serve, in a "
                           "child process) and print its URL; Ctrl-C stops both")
    demo.add_argument("--host", default="127.0.0.1",
                      help="with --serve: address to listen on (default: 127.0.0.1)")
    demo.add_argument("--port", type=_port_or_any, default=8050,
                      help="with --serve: port (default: 8050; 0: any free port)")
    demo.set_defaults(func=_cmd_demo)

    tail = commands.add_parser(
        "tail", help="print the newest rows of the store",
        description="Print the newest rows in the seven columns, oldest first (in the "
                    "order calls finished). Long cells are cut to fit the terminal; the "
                    "Exception column shows the line naming the exception, not the whole "
                    "traceback. The store is opened read-only.")
    tail.add_argument("--db", default=default_db(), metavar="PATH", help=db_help)
    tail.add_argument("--process", metavar="NAME",
                      help="only this process: its full name "
                           "(otel_monitor.demo.black_scholes) or a dotted suffix of it "
                           "(black_scholes, MarketDataClient.fetch_quote) that matches "
                           "one process")
    tail.add_argument("--errors", action="store_true", help="only rows of calls that raised")
    tail.add_argument("--follow", "-f", action="store_true",
                      help=f"keep printing new rows as they arrive (every {POLL_S:g} s) "
                           "until Ctrl-C")
    tail.add_argument("-n", type=_count, default=20, metavar="N",
                      help="how many rows to print first (default: 20)")
    tail.set_defaults(func=_cmd_tail)

    serve = commands.add_parser(
        "serve", help="serve the UI and its JSON API over the store",
        description="Serve the JSON API (and the UI) over the store, read-only, with "
                    "uvicorn. Set OTEL_MONITOR_UI_TOKEN to require "
                    "'Authorization: Bearer <token>'. Needs the ui extra.")
    serve.add_argument("--db", default=default_db(), metavar="PATH", help=db_help)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=_port, default=8050, help="port (default: 8050)")
    serve.add_argument("--fd", type=int, help=argparse.SUPPRESS)  # demo --serve's socket
    serve.set_defaults(func=_cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
