"""``otel-monitor config``: the settings in force here (arguments, else the environment,
else ``.env``, else the defaults), each with where its value comes from; secrets shown as
``•••`` and their last 4 characters, webhook URLs as their scheme and host. Its ``--help``
lists every setting, from their one declaration. ``otel-monitor config check`` (in
``config_check``) finds credentials written in clear in the project's files."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from exporters.errors import ConfigError

from ..settings import SETTINGS, resolve_settings, settings_help, settings_table_markdown
from . import config_check
from ._common import EXIT_OK, fail


def add_parser(commands: Any) -> None:
    config = commands.add_parser(
        "config", help="print the settings in force and where each comes from",
        description="Print every otel-monitor setting as a process started here would\n"
                    "have it: its value and its source (argument, environment, .env or\n"
                    "default). The .env file is ./.env, or $OTEL_MONITOR_ENV_FILE.\n"
                    "Secrets show as ••• and their last 4 characters, webhook URLs as\n"
                    "their scheme and host. A bad value is an error naming it.\n"
                    "`otel-monitor config check [PATHS]` looks for credentials in clear.",
        epilog="settings (environment variable; default): what it does\n\n"
               + settings_help("  ", width=80).replace("%", "%%"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    config.add_argument("--db", metavar="PATH", help="db_path, as the other commands take it")
    config.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting given as an argument, written as its environment "
                             "variable would be (repeatable)")
    config.add_argument("--markdown", action="store_true",
                        help="print the settings table of README.md instead")
    config.set_defaults(func=run)
    config_check.add_parser(config.add_subparsers(dest="config_command", metavar="check"))


def _arguments(args: argparse.Namespace) -> dict[str, Any]:
    given: dict[str, Any] = {}
    for item in args.set:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or name not in SETTINGS:
            raise ConfigError(f"--set {name!r}: expected NAME=VALUE, NAME one of "
                              f"{', '.join(SETTINGS)}")
        given[name] = SETTINGS[name].from_text(text, given_as=f"--set {name}")
    if args.db is not None:
        given["db_path"] = args.db
    return given


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        sys.stdout.write(settings_table_markdown())
        return EXIT_OK
    try:
        settings, sources = resolve_settings(_arguments(args))
    except ConfigError as exc:
        return fail("config", exc)
    rows = [("setting", "value", "source")]
    rows += [(name, spec.show(getattr(settings, name)), sources[name])
             for name, spec in SETTINGS.items()]
    widths = [max(len(row[i]) for row in rows) for i in (0, 1)]
    for name, value, source in rows:
        print(f"{name.ljust(widths[0])}  {value.ljust(widths[1])}  {source}")
    return EXIT_OK
