"""The ``otel-monitor`` command, one module per subcommand.

    otel-monitor demo [--db PATH] [--duration S] [--rate CALLS_PER_S] [--quiet]
                      [--serve [--host 127.0.0.1] [--port 8050]]
    otel-monitor tail [--db PATH] [--process NAME] [--errors] [--follow] [-n N]
    otel-monitor errors [--db PATH] [--status open] [--process P] [--service S]
                        [--sort last_seen|count] [--limit N] [--json]
    otel-monitor serve [--db PATH] [--host 127.0.0.1] [--port 8050]
    otel-monitor config [--db PATH] [--set NAME=VALUE]... [--markdown]
    otel-monitor config check [PATH]...
    otel-monitor merge SOURCE... [--into PATH] [--keep-all] [--dry-run] [--json]
    otel-monitor slo rules [--slo-file F] [--source metrics|spanmetrics] [--min-range W]
                           [--out FILE]
    otel-monitor slo rules --self [--out FILE]
    otel-monitor slo dashboard [--out FILE]
    otel-monitor --version

Each module has ``add_parser(commands)``, which registers its subcommand with its
``run(args)``. A command that needs the UI (``serve``) imports it only when run, and
never from ``otel_monitor`` itself (``import otel_monitor`` stays free of dash, plotly,
fastapi and uvicorn).
"""
from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Sequence

from . import archive, config, demo, errors, merge, serve, slo, tail
from ._common import EXIT_ERROR, EXIT_OK

__all__ = ["EXIT_ERROR", "EXIT_OK", "build_parser", "main"]

SUBCOMMANDS = (demo, tail, errors, serve, config, merge, slo, archive)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-monitor",
        description="Live observability for Python services: record a demo workload, "
                    "read the store and its error groups, serve the UI, show the settings, "
                    "merge stores.")
    try:
        parser.add_argument("--version", action="version",
                            version=f"%(prog)s {version('otel-monitor')}")
    except PackageNotFoundError:  # not installed as a distribution
        pass
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for subcommand in SUBCOMMANDS:
        subcommand.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    return args.func(args)
