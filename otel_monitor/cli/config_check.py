"""``otel-monitor config check [PATHS]``: credentials written in clear in the project's files.

Three kinds are looked for, each shaped precisely enough that placeholders, variable
references and short test values are not reported:

- Slack incoming-webhook URLs: ``hooks.slack.com/services/T…/B…/<secret>`` with real-sized
  workspace, channel and secret parts;
- PagerDuty Events API v2 routing (integration, service) keys: exactly 32 letters and
  digits, assigned to a name that says so (``routing_key=``, ``"integration_key": "…"``,
  ``#routing_key=`` in a webhook URL, ``OTEL_MONITOR_PAGERDUTY_ROUTING_KEY=``);
- ``OTEL_MONITOR_*_TOKEN`` and the other secret settings (``OTEL_MONITOR_MASK_KEY``) given
  a literal value of 8 characters or more (not ``$VAR``, ``${VAR}``, ``<placeholder>``;
  in Python only a quoted literal counts: ``TOKEN`` or ``os.environ[...]`` is code).

Each finding is printed as ``file:line: kind: value`` with the value redacted (its first
and last 4 characters at most); the exit status is 1 when anything is found, so it can
run as a pre-commit hook. A line that must keep such a value (a documented example)
says so with the marker ``otel-monitor: allow`` in a comment on the same line.
"""
from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..settings import SECRET_SHOWN, SETTINGS
from ._common import EXIT_OK

EXIT_FOUND = 1
# Not .env: that is where the secrets belong (kept out of git, mode 0600).
PATTERNS = ("*.py", "*.toml", "*.yaml", "*.yml", "*.json", "*.ini", "*.cfg")
SKIPPED_DIRS = {".venv", ".git", "node_modules", "__pycache__", ".tox", ".mypy_cache",
                ".pytest_cache", "build", "dist"}
ALLOW_MARKER = "otel-monitor: allow"
_MAX_BYTES = 5 * 2**20  # a bigger file is data, not configuration

_SLACK = re.compile(r"hooks\.slack\.com/services/(T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{16,})")
_PAGERDUTY = re.compile(
    r"(?i:routing[_-]?key|integration[_-]?key|service[_-]?key)[\"']?\s*[:=]\s*[\"']?"
    r"(?<![A-Za-z0-9])([A-Za-z0-9]{32})(?![A-Za-z0-9])")
# The secret settings that are not URLs (the webhooks are found by their shape above).
_TOKEN_NAMES = sorted({s.env for s in SETTINGS.values() if s.secret and "WEBHOOK" not in s.env}
                      - {"OTEL_MONITOR_PAGERDUTY_ROUTING_KEY"})
_TOKEN_NAME = r"(?:OTEL_MONITOR_\w*_TOKEN|" + "|".join(map(re.escape, _TOKEN_NAMES)) + r")\b"
_QUOTED_TOKEN = re.compile(_TOKEN_NAME + r"[\"']?\s*[:=]\s*([\"'])([^\"'\s]{8,})\1")
_BARE_TOKEN = re.compile(_TOKEN_NAME + r"[\"']?\s*[:=]\s*([^\s\"'#,;}]{8,})")
_REFERENCE = re.compile(r"^(\$|<|%\(|\{\{)")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}: {redact(self.value)}"


def redact(value: str) -> str:
    """Enough of a value to find it again, not enough to use it."""
    if len(value) < 16:
        return SECRET_SHOWN
    return f"{value[:4]}{SECRET_SHOWN}{value[-4:]}"


def scan_line(text: str, *, python: bool) -> Iterator[tuple[str, str]]:
    """(kind, value) of each credential on one line."""
    if ALLOW_MARKER in text:
        return
    for m in _SLACK.finditer(text):
        yield "Slack webhook URL", m[1]
    for m in _PAGERDUTY.finditer(text):
        yield "PagerDuty routing key", m[1]
    tokens = [m[2] for m in _QUOTED_TOKEN.finditer(text)]
    if not python:
        tokens += [m[1] for m in _BARE_TOKEN.finditer(text)]
    for value in dict.fromkeys(tokens):
        if not _REFERENCE.match(value):
            yield "otel-monitor token", value


def scan_file(path: Path, shown: str | None = None) -> list[Finding]:
    try:
        if path.stat().st_size > _MAX_BYTES:
            return []
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    python = path.suffix == ".py"
    return [Finding(shown or str(path), number, kind, value)
            for number, line in enumerate(text.splitlines(), 1)
            for kind, value in scan_line(line, python=python)]


def project_files(root: Path) -> Iterator[Path]:
    """The files ``config check`` reads under ``root`` by default, in a stable order."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info"))
        for name in sorted(files):
            path = Path(folder, name)
            if any(path.match(pattern) for pattern in PATTERNS):
                yield path


def scan(paths: Iterable[str | os.PathLike[str]]) -> list[Finding]:
    """Findings in the given files, and in the project files under the given folders."""
    findings: list[Finding] = []
    for given in paths:
        path = Path(given)
        files = project_files(path) if path.is_dir() else [path]
        for file in files:
            findings += scan_file(file, os.path.relpath(file) if path.is_dir() else str(file))
    return findings


def add_parser(config_commands: Any) -> None:
    check = config_commands.add_parser(
        "check", help="find webhook URLs, routing keys and tokens written in clear",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("paths", nargs="*", metavar="PATH",
                       help="files or folders (default: the current folder's "
                            + ", ".join(PATTERNS)
                            + f" files, skipping {', '.join(sorted(SKIPPED_DIRS))})")
    check.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    findings = scan(args.paths or ["."])
    for finding in findings:
        print(finding)
    if findings:
        print(f"otel-monitor config check: {len(findings)} credential(s) in clear; move them "
              "to .env (chmod 600, not committed) or the environment")
        return EXIT_FOUND
    return EXIT_OK
