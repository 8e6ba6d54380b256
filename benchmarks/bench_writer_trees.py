"""The writer's throughput (bench_export.py part 1: RecordWriter, 1 call row + 5 data rows
a call) of two source trees, e.g. this one against an earlier commit, in alternating
processes of their own:

    git archive <commit> | tar -x -C /tmp/base
    python benchmarks/bench_writer_trees.py /tmp/base . [--rounds 9] [--calls 50000]

Each process imports its tree's ``benchmarks/bench_export.py`` (PYTHONPATH = the tree)
and writes ``--calls`` calls three times into fresh stores; the median calls per wall
second and per CPU second (``process_time``: less sensitive to other processes on shared
cores) of each. Printed: each tree's medians over the rounds, their ratio (second /
first), and the median of the pairwise ratios.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CHILD = r"""
import os, statistics, sys, tempfile, time
sys.path.insert(0, os.path.join(os.environ["PYTHONPATH"], "benchmarks"))
import bench_export as b
n = int(sys.argv[1])
records = b.make_records(n)
tmp = tempfile.mkdtemp()
wall, cpu = [], []
for i in range(3):
    c0 = time.process_time()
    wall.append(b.throughput_exporter(os.path.join(tmp, f"w{i}.db"), records))
    cpu.append(n / (time.process_time() - c0))
print(statistics.median(wall), statistics.median(cpu))
"""


def run(tree: str, calls: int) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(calls)], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("first")
    ap.add_argument("second")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--calls", type=int, default=50_000)
    opts = ap.parse_args()
    first, second = [], []
    for _ in range(opts.rounds):
        first.append(run(opts.first, opts.calls))
        second.append(run(opts.second, opts.calls))
    print(f"writer throughput, {opts.calls:,} calls x (1 call row + 5 data rows), "
          f"{opts.rounds} alternating processes each")
    for i, what in ((0, "per wall second"), (1, "per CPU second ")):
        a = statistics.median(r[i] for r in first)
        b = statistics.median(r[i] for r in second)
        pairs = statistics.median(y[i] / x[i] for x, y in zip(first, second))
        print(f"   calls {what}: {opts.first} {a:10,.0f}  {opts.second} {b:10,.0f}  "
              f"ratio {b / a:.3f} (pairwise median {pairs:.3f})")


if __name__ == "__main__":
    main()
