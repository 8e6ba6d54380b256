"""pytest in a child process, as a user without this project's test plugins runs it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_pytest(target: str | Path, *, cwd: Path, env: dict[str, str],
               timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m pytest -q target`` with no plugin loaded from entry points: the files
    the UI lets users download need pytest alone, and loading the plugins installed for
    this suite (Playwright, Schemathesis, Hypothesis, ...) cost seconds per run."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(target)], cwd=cwd,
                          env={**env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
                          capture_output=True, text=True, timeout=timeout)
