"""The design's import rules: instrumented apps stay light, and the packages depend
on each other in one direction only (dash_ui -> otel_monitor -> exporters), without
cycles or imports of another package's private modules: the import-linter contracts
in pyproject.toml."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_importing_otel_monitor_pulls_in_no_ui_or_web_framework():
    probe = ("import sys, otel_monitor, otel_monitor.cli\n"
             "heavy = {'dash', 'plotly', 'fastapi', 'uvicorn', 'flask', 'dash_ui'}\n"
             "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout.strip()
    assert out == "[]"


def test_import_linter_contracts_hold():
    # The venv's lint-imports, on this checkout's packages (its directory first on the
    # path, before an installed copy), with the contracts from pyproject.toml.
    lint = shutil.which("lint-imports", path=os.path.dirname(sys.executable))
    assert lint, "lint-imports is missing: pip install 'otel-monitor[test]'"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
