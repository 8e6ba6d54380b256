"""``otel-monitor demo``: a live trading-risk workload recorded into the store, and with
``--serve`` the UI over it in a child process."""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import closing
from typing import Any

from exporters.errors import ConfigError, StoreError
from exporters.store import SpanStore

from .. import configure, shutdown
from ._common import EXIT_ERROR, EXIT_OK, add_db_option, fail, port_or_any, positive

PROGRESS_EVERY_S = 5.0
UI_START_TIMEOUT_S = 60.0  # --serve: the UI process has this long to listen
UI_STOP_TIMEOUT_S = 10.0   # ... and this long to stop before it is killed


def add_parser(commands: Any) -> None:
    demo = commands.add_parser(
        "demo", help="run a live trading-risk workload into the store",
        description="Run an instrumented equity-options risk desk (market data, pricing, "
                    "risk, reporting; nested, async and generator calls; a masked api_key; "
                    "~1.5% of calls raise) until Ctrl-C or --duration. Set "
                    "OTEL_EXPORTER_OTLP_ENDPOINT to also send its spans to a Collector.")
    add_db_option(demo)
    demo.add_argument("--duration", type=positive, metavar="SECONDS",
                      help="stop after this long (default: run until Ctrl-C)")
    demo.add_argument("--rate", type=positive, default=200.0, metavar="CALLS_PER_S",
                      help="monitored calls per second, roughly (default: 200)")
    demo.add_argument("--quiet", action="store_true",
                      help=f"print only the store's path, not a summary every "
                           f"{PROGRESS_EVERY_S:g} s")
    demo.add_argument("--serve", action="store_true",
                      help="also serve the UI over the store (otel-monitor serve, in a "
                           "child process) and print its URL; Ctrl-C stops both")
    demo.add_argument("--host", default="127.0.0.1",
                      help="with --serve: address to listen on (default: 127.0.0.1)")
    demo.add_argument("--port", type=port_or_any, default=8050,
                      help="with --serve: port (default: 8050; 0: any free port)")
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import demo  # the workload's functions are decorated at import: only when run

    os.environ.setdefault("OTEL_SERVICE_NAME", "risk-desk-demo")
    path = os.path.abspath(args.db)
    try:
        configure(db_path=path)
        counter = SpanStore(path, readonly=True)
    except (ConfigError, StoreError, OSError) as exc:
        return fail("demo", exc)
    stop = threading.Event()
    try:
        ui = _UIProcess(path, args.host, args.port, stop) if args.serve else None
    except OSError as exc:
        counter.close()
        shutdown()
        return fail("demo", f"cannot serve the UI on {args.host}:{args.port}: {exc}")
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

