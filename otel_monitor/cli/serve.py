"""``otel-monitor serve``: the UI and its JSON API over the store. The UI package is
imported only when the command runs, by module name, so that ``otel_monitor.cli`` (and
``otel_monitor``) stay free of dash, plotly, fastapi and uvicorn."""
from __future__ import annotations

import argparse
import functools
import gc
import importlib
import os
import sys
from typing import Any, Callable

from exporters.errors import ConfigError, StoreError

from ._common import EXIT_OK, add_db_option, fail, port

UI_MODULE = "dash_ui.server"  # imported only when `serve` runs (otel_monitor stays light)


def add_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve", help="serve the UI and its JSON API over the store",
        description="Serve the JSON API (and the UI) over the store, read-only, with "
                    "uvicorn. Set OTEL_MONITOR_UI_TOKEN to require "
                    "'Authorization: Bearer <token>'. Needs the ui extra.")
    add_db_option(serve)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=port, default=8050, help="port (default: 8050)")
    serve.add_argument("--fd", type=int, help=argparse.SUPPRESS)  # demo --serve's socket
    serve.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        server = importlib.import_module(UI_MODULE)
    except ImportError as exc:
        return fail("serve", f"the UI is not installed ({exc}); install it with "
                             "pip install 'otel-monitor[ui]'")
    path = os.path.abspath(args.db)
    try:
        slos = slo_file_slos(path)
    except ConfigError as exc:
        return fail("serve", exc)
    try:
        app = server.create_server_app(path, on_resolved=resolve_hook(path), slos=slos)
    except StoreError as exc:
        return fail("serve", exc)
    import uvicorn  # installed with the UI (its extra), so present once dash_ui imported

    # What start-up made (dash, plotly, the app: ~110k objects) lives as long as the
    # server: out of the garbage collector's full passes, which otherwise scan it all
    # again and again while requests allocate (OTLP ingest: ~3 of its ~15 ms per 1,000
    # spans, benchmarks/bench_ingest.py).
    gc.freeze()
    if args.fd is not None:  # a socket bound by the parent (demo --serve)
        uvicorn.run(app, fd=args.fd, log_level="warning")
        return EXIT_OK
    print(f"otel-monitor serve: {path} on http://{args.host}:{args.port}/ "
          f"(API docs: /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return EXIT_OK


def slo_file_slos(db_path: str) -> tuple[Any, ...]:
    """The SLOs of the settings' ``slo_file`` (none without one), shown by ``/api/slos``
    and the SLOs tab; ``ConfigError`` for a bad file (``serve`` refuses to start). The
    server shows them; the process that registers them alerts on them."""
    from ..settings import load_settings
    from ..slo import load_slo_file

    settings = load_settings({"db_path": db_path})
    return load_slo_file(settings.slo_file) if settings.slo_file else ()


def resolve_hook(db_path: str) -> Callable[[dict[str, Any]], None] | None:
    """What resolving an error group (the API, the Errors tab) calls: PagerDuty
    ``resolve`` for the group's incident and a Slack follow-up, through the webhooks the
    settings name (``alerts.resolution.send_resolved``; it returns at once). None without
    webhooks; a bad alert setting is reported and the UI served without the hook."""
    from ..alerts.resolution import send_resolved
    from ..settings import load_settings

    try:
        settings = load_settings({"db_path": db_path})
    except ConfigError as exc:
        print(f"otel-monitor serve: resolving error groups will not alert: {exc}",
              file=sys.stderr, flush=True)
        return None
    if not settings.alert_webhooks or not settings.alert_exceptions:
        return None
    return functools.partial(send_resolved, settings)
