"""What the subcommands share: exit codes, failing with a message, argument types and
the ``--db`` option."""
from __future__ import annotations

import argparse
import sys

from ..settings import SETTINGS, read_setting

EXIT_OK = 0
EXIT_ERROR = 2          # usage, or a store that cannot be read


def fail(command: str, problem: object) -> int:
    print(f"otel-monitor {command}: {problem}", file=sys.stderr)
    return EXIT_ERROR


def add_db_option(parser: argparse.ArgumentParser) -> None:
    db = SETTINGS["db_path"]
    now = read_setting("db_path")
    parser.add_argument("--db", default=now, metavar="PATH",
                        help=(f"the SQLite store (default: ${db.env}, else {db.default}; "
                              f"now {now})").replace("%", "%%"))


def positive(text: str) -> float:
    value = float(text)
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"must be a port number 1-65535, got {text!r}")
    return value


def port_or_any(text: str) -> int:
    return 0 if text.strip() == "0" else port(text)
