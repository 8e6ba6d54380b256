"""``otel-monitor config check``: planted credentials are found and reported redacted with
file:line, exit 1; placeholders and short test values are not; the repository itself is
clean. ``otel-monitor config`` names ``.env`` as a source and shows webhooks by origin."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from otel_monitor import cli
from otel_monitor.cli.config_check import EXIT_FOUND, scan

ROOT = Path(__file__).resolve().parents[1]

# Built at run time so this file holds no credential-shaped literal itself.
SLACK_SECRET = "Zq9" + "x7Lw2Vb8Nc4Md1Kf6Hj3Pr0"
SLACK_URL = "https://hooks.slack.com/services/" + "T0ABCDEF12/B0ABCDEF34/" + SLACK_SECRET
PD_KEY = "e93facc04764012d7bfb002500d5d1a6"[::-1]
TOKEN = "tok-" + "8f2d9c41b7e6a053"


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "alerts.py").write_text(
        "import os\n"
        f"WEBHOOK = {SLACK_URL!r}\n"
        "UI = os.environ['OTEL_MONITOR_UI_TOKEN']\n"          # code, not a value
        f"PD = {{'routing_key': {PD_KEY!r}}}\n")
    (tmp_path / "deploy.yaml").write_text(
        "env:\n"
        f"  OTEL_MONITOR_UI_TOKEN: {TOKEN}\n"
        "  OTEL_MONITOR_INGEST_TOKEN: ${INGEST_TOKEN}\n"      # a reference
        f"  pagerduty: https://events.pagerduty.com/v2/enqueue#routing_key={PD_KEY}\n")
    (tmp_path / "settings.ini").write_text(f"[x]\nOTEL_MONITOR_INGEST_TOKEN = {TOKEN}\n"
                                           "routing_key = short\n")
    (tmp_path / "notes.md").write_text(f"{SLACK_URL}\n")      # not a scanned kind of file
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "lib.py").write_text(f"X = {SLACK_URL!r}\n")  # skipped folder
    (tmp_path / "example.toml").write_text(f"hook = '{SLACK_URL}'  # otel-monitor: allow\n")
    (tmp_path / ".env").write_text(f"OTEL_MONITOR_UI_TOKEN={TOKEN}\n")  # where it belongs
    return tmp_path


def test_planted_credentials_are_found_with_file_line_and_redacted(planted, monkeypatch, capsys):
    monkeypatch.chdir(planted)
    assert cli.main(["config", "check"]) == EXIT_FOUND
    out = capsys.readouterr().out
    found = sorted(line.split(": ")[0] + " " + line.split(": ")[1]
                   for line in out.splitlines() if not line.startswith("otel-monitor"))
    assert found == sorted([
        os.path.join("app", "alerts.py") + ":2 Slack webhook URL",
        os.path.join("app", "alerts.py") + ":4 PagerDuty routing key",
        "deploy.yaml:2 otel-monitor token",
        "deploy.yaml:4 PagerDuty routing key",
        "settings.ini:2 otel-monitor token",
    ])
    for secret in (SLACK_SECRET, PD_KEY, TOKEN):
        assert secret not in out
    assert "4 credential(s)" not in out and "5 credential(s) in clear" in out


def test_given_paths_only_are_read(planted, capsys):
    assert cli.main(["config", "check", str(planted / "settings.ini")]) == EXIT_FOUND
    assert [f.line for f in scan([planted / "settings.ini"])] == [2]
    # A file named is read whatever its kind.
    assert cli.main(["config", "check", str(planted / "notes.md")]) == EXIT_FOUND
    assert "notes.md:1: Slack webhook URL" in capsys.readouterr().out


def test_the_repository_itself_is_clean():
    out = subprocess.run([sys.executable, "-m", "otel_monitor.cli", "config", "check"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stdout + out.stderr


def test_config_names_env_file_and_shows_webhooks_by_origin(tmp_path, monkeypatch, capsys):
    for var in list(os.environ):
        if var.startswith("OTEL_MONITOR_"):
            monkeypatch.delenv(var)
    env = tmp_path / "my.env"
    env.write_text(f"OTEL_MONITOR_WEBHOOKS={SLACK_URL}\nOTEL_MONITOR_UI_TOKEN={TOKEN}\n")
    env.chmod(0o600)
    monkeypatch.setenv("OTEL_MONITOR_ENV_FILE", str(env))
    assert cli.main(["config"]) == cli.EXIT_OK
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert rows["alert_webhooks"] == ["https://hooks.slack.com/•••", ".env"]
    assert rows["ui_token"] == ["•••" + TOKEN[-4:], ".env"]
