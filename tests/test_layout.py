"""The design's import rules: instrumented apps stay light, and the packages depend
on each other in one direction only (dash_ui -> otel_monitor -> exporters), without
cycles or imports of another package's private modules or names: the import-linter
contracts in pyproject.toml, and grimp (import-linter's graph) for cycles through a
package's own __init__."""
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


def test_no_module_imports_itself_through_others():
    # The acyclic_siblings contract looks at cycles between the children of a package;
    # this one also sees a module and its own package's __init__ in a cycle.
    import grimp

    graph = grimp.build_graph("otel_monitor", "exporters", "dash_ui", cache_dir=None)
    cycles = [" -> ".join([importer, *graph.find_shortest_chain(importer=imported,
                                                                 imported=importer)])
              for importer in sorted(graph.modules)
              for imported in sorted(graph.find_modules_directly_imported_by(importer))
              if graph.chain_exists(importer=imported, imported=importer)]
    assert not cycles, "\n".join(cycles)
