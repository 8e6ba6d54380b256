"""The design's import rules: instrumented apps stay light, and the packages depend
on each other in one direction only (dash_ui -> exporters <- otel_monitor)."""
from __future__ import annotations

import ast
import pathlib
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


def _imports(package: str) -> set[str]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_otel_monitor_never_imports_dash_ui():
    assert "dash_ui" not in _imports("otel_monitor")


def test_exporters_know_nothing_of_the_decorator_or_the_ui():
    assert not {"otel_monitor", "dash_ui", "dash", "fastapi"} & _imports("exporters")
