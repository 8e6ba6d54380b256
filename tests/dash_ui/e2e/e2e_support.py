"""What the browser tests share: the workload processes that fill a store through the
real decorator, and ``otel-monitor serve`` run as a subprocess on a free port."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from served_cli import served_cli

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
# The test run's own pictures, outside the work tree: `make test` must leave `git status`
# clean (README's pictures of the demo are taken on purpose, not by every test run).
SCREENSHOTS = Path(os.environ.get("OTEL_MONITOR_TEST_SCREENSHOTS")
                   or Path(tempfile.gettempdir()) / "otel-monitor-e2e-screenshots")
SERVICES = {"pricing": "e2e-pricing", "risk": "e2e-risk"}
# Recorded by e2e_workload (imported only in its own processes: it declares feeds).
SCRIPT = ('<script>alert(1); window.__omInjected = 1</script>'
          '<img src="x" onerror="alert(2); window.__omInjected = 2">')
FAILING_BOOKS = ("b1", "b2", "b3")


def workload_env(**extra: str) -> dict[str, str]:
    """The environment of a workload process: no otel-monitor settings of the caller's."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_MONITOR_", "OTEL_EXPORTER_OTLP", "OTEL_SERVICE_NAME"))}
    # HERE.parent: served_cli, which this module (imported by the workload) imports.
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), str(ROOT)])
    return {**env, **extra}


def workload(db: Path, part: str, *args: str, service: str = "e2e", **popen) -> subprocess.Popen:
    """Run e2e_workload.main(db, part, ...) imported (not as __main__), so the recorded
    process names are ``e2e_workload.<function>``, importable by the Reproduce snippet."""
    code = "import sys, e2e_workload; e2e_workload.main(sys.argv[1:])"
    return subprocess.Popen([sys.executable, "-c", code, str(db), part, *args],
                            env=workload_env(OTEL_SERVICE_NAME=service), text=True, **popen)


@contextlib.contextmanager
def serve(db: Path, *, token: str | None = None) -> Iterator[str]:
    """``otel-monitor serve --db db --port <free>`` as a subprocess; yields its URL."""
    env = workload_env(**({"OTEL_MONITOR_UI_TOKEN": token} if token else {}))
    with served_cli(db, env, timeout_s=30) as served:
        yield served.url
