"""How long the test suite takes, per test directory: a reference run beside a new one.

    python benchmarks/bench_test_suite.py [--ref-tree DIR] [--ref-args "-n 0"]
                                          [--new-args ""] [--dirs exporters,...]

For each directory (tests/exporters, tests/otel_monitor, tests/dash_ui, and the rest of
tests/), runs ``python -m pytest -q -p no:cacheprovider`` twice, one right after the
other so that both meet the same load: first in the reference (``--ref-tree``, default
this tree, with ``--ref-args``; e.g. a checkout of main, or ``-n 0``: one process), then
in this tree with ``--new-args`` (none: pyproject's addopts). Prints each run's wall time,
its pass/fail line and the load average around it, then new / reference per directory
and in all. The interpreter is this one; PYTHONPATH is set to the tree run.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPLIT = ("exporters", "otel_monitor", "dash_ui")


def targets(directory: str) -> list[str]:
    if directory == "rest":
        return ["tests", *(f"--ignore=tests/{d}" for d in SPLIT)]
    return [f"tests/{directory}"]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(tree: Path, directory: str, extra: list[str]) -> tuple[float, str, str]:
    """(wall seconds, pytest's last line, load averages before -> after)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tree), *filter(None, [os.environ.get("BENCH_EXTRA_PYTHONPATH")])])}
    before = load()
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *targets(directory), *extra], cwd=tree, env=env,
                          capture_output=True, text=True)
    wall = time.monotonic() - t0
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    return wall, last, f"{before} -> {load()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref-tree", type=Path, default=ROOT)
    parser.add_argument("--ref-args", default="-n 0")
    parser.add_argument("--new-args", default="")
    parser.add_argument("--dirs", default="exporters,otel_monitor,dash_ui,rest")
    args = parser.parse_args()
    totals = [0.0, 0.0]
    print(f"reference: {args.ref_tree} {args.ref_args!r}; new: {ROOT} {args.new_args!r}; "
          f"{os.cpu_count()} CPUs", flush=True)
    for directory in args.dirs.split(","):
        ref = run(args.ref_tree, directory, shlex.split(args.ref_args))
        new = run(ROOT, directory, shlex.split(args.new_args))
        totals[0] += ref[0]
        totals[1] += new[0]
        for name, (wall, last, loads) in (("ref", ref), ("new", new)):
            print(f"{directory:13} {name} {wall:7.1f} s  load {loads}  | {last}", flush=True)
        print(f"{directory:13} new/ref {new[0] / ref[0]:.3f}", flush=True)
    print(f"{'all':13} ref {totals[0]:.1f} s, new {totals[1]:.1f} s, "
          f"new/ref {totals[1] / totals[0]:.3f}", flush=True)


if __name__ == "__main__":
    main()
