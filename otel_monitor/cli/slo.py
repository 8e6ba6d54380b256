"""``otel-monitor slo rules`` and ``otel-monitor slo dashboard``: the SLOs for Prometheus
and Grafana (``otel_monitor.slo_rules``).

    otel-monitor slo rules [--slo-file F] [--source metrics|spanmetrics] [--out FILE]
    otel-monitor slo rules --self [--out FILE]
    otel-monitor slo dashboard [--out FILE]

``rules`` reads the SLO file (``--slo-file``, default the ``slo_file`` setting) and writes
Prometheus recording and alerting rules in Sloth's shape over otel-monitor's ``/metrics``
(``--source metrics``) or the Collector's spanmetrics; ``promtool check rules`` accepts
them. ``dashboard`` writes the Grafana SLO dashboard that reads those rules. Both write to
stdout unless ``--out``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from exporters.errors import ConfigError

from ..settings import SETTINGS, read_setting
from ..slo import load_slo_file, parse_window, window_text
from ..slo_rules import (DEFAULT_MIN_RANGE_S, SOURCES, dashboard_text, rules_text,
                         selfmon_rules_text)
from ._common import EXIT_OK, fail


def add_parser(commands: Any) -> None:
    slo = commands.add_parser(
        "slo", help="the SLOs as Prometheus rules and a Grafana dashboard",
        description="The SLOs of the SLO file as Prometheus recording and alerting rules\n"
                    "(Sloth's shape: slo:sli_error:ratio_rate5m ... and the multi-window,\n"
                    "multi-burn-rate alerts SLOErrorBudgetBurn, severity page|ticket), and the\n"
                    "Grafana dashboard that reads them.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = slo.add_subparsers(dest="slo_command", metavar="SUBCOMMAND", required=True)
    setting = SETTINGS["slo_file"]
    rules = sub.add_parser("rules", help="Prometheus rules for the SLOs")
    rules.add_argument("--slo-file", default=None, metavar="F",
                       help=f"the SLO file (default: ${setting.env}, the slo_file setting)")
    rules.add_argument("--source", choices=SOURCES, default="metrics",
                       help="the series the SLIs are computed from: otel-monitor's /metrics "
                            "(default) or the Collector's spanmetrics")
    rules.add_argument("--min-range", type=window_seconds, default=DEFAULT_MIN_RANGE_S,
                       metavar="W", help="the shortest range of a rate() (default 1m: 4 "
                                         "scrapes at 15 s; a scaled window shorter than "
                                         "this reads this long)")
    rules.add_argument("--self", dest="self_health", action="store_true",
                       help="instead: the rules of otel-monitor's own health (writer lag, "
                            "drops, store size, retention, webhooks, ingest); no SLO file")
    rules.add_argument("--out", default=None, metavar="FILE", help="write here, not stdout")
    rules.set_defaults(func=run_rules)
    dash = sub.add_parser("dashboard", help="the Grafana SLO dashboard (JSON)")
    dash.add_argument("--out", default=None, metavar="FILE", help="write here, not stdout")
    dash.set_defaults(func=run_dashboard)


def window_seconds(text: str) -> float:
    try:
        return parse_window(text, "--min-range")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _write(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    path = Path(out)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_rules(args: argparse.Namespace) -> int:
    if args.self_health:
        _write(selfmon_rules_text(), args.out)
        return EXIT_OK
    path = args.slo_file or read_setting("slo_file")
    if not path:
        return fail("slo rules", "no SLO file: give --slo-file or set "
                                 f"{SETTINGS['slo_file'].env}")
    try:
        specs = load_slo_file(path)
        shown = [f"--slo-file {args.slo_file}"] if args.slo_file else []
        if args.source != "metrics":
            shown.append(f"--source {args.source}")
        if args.min_range != DEFAULT_MIN_RANGE_S:
            shown.append(f"--min-range {window_text(args.min_range)}")
        text = rules_text(specs, args.source, args=" ".join([""] + shown),
                          min_range_s=args.min_range)
    except (ConfigError, OSError) as exc:
        return fail("slo rules", exc)
    _write(text, args.out)
    return EXIT_OK


def run_dashboard(args: argparse.Namespace) -> int:
    _write(dashboard_text(), args.out)
    return EXIT_OK
