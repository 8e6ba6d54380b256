"""The writer's throughput while one application thread saturates a core (issue 19).

    python benchmarks/bench_writer_load.py [--seconds 5] [--rounds 3] [--calls 100000]

For each of ``writer_process`` off (the writer thread) and on (the writer process),
alternately, ``--rounds`` times, each measurement in a fresh process:

1. idle: the writer's own throughput, calls/s (1 call + 5 data rows each, the records
   of bench_export.py) exported in batches of MAX_BATCH into a fresh store by that
   mode's writer (``RecordWriter`` / ``ProcessRecordWriter``), nothing else running;
2. load: one application thread calls a monitored function (4 numeric arguments and a
   return value: 1 call + 5 data rows) in a tight loop for ``--seconds`` through the
   whole pipeline (default settings but the mode); the writer's calls/s written during
   the loop (between the first and the last batch written in it), and the
   application's calls/s.

Prints the medians: load / idle for each mode (target >= 0.8), the writer process
under load / the writer thread idle, and the application's calls/s with the writer
process / with the writer thread (target >= 0.9), with /proc/loadavg.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)


def idle(mode: str, calls: int) -> float:
    """The writer's calls/s exporting ``calls`` records into a fresh store."""
    from bench_export import SITE, make_records
    from exporters import RecordWriter
    from exporters.processor import MAX_BATCH
    from exporters.writer_process import ProcessRecordWriter

    records = [r + (None,) * (11 - len(r)) for r in make_records(calls)]  # weight: 1
    folder = tempfile.mkdtemp(prefix="bench-wload-")
    db = os.path.join(folder, "idle.db")
    kind = ProcessRecordWriter if mode == "on" else RecordWriter
    writer = kind(db, sites={SITE.process: SITE})
    writer.export(records[:10])  # the writer process started, the store opened
    t0 = time.perf_counter()
    for i in range(10, len(records), MAX_BATCH):
        writer.export(records[i:i + MAX_BATCH])
    elapsed = time.perf_counter() - t0
    writer.shutdown()
    shutil.rmtree(folder)  # ~50 MB a run
    return (len(records) - 10) / elapsed


def load(mode: str, seconds: float) -> dict:
    """One thread calling a monitored function for ``seconds``: calls/s made and written."""
    import otel_monitor
    from otel_monitor import monitor
    from otel_monitor.pipeline import PIPELINE

    @monitor("pricing")
    def price(spot: float, strike: float, vol: float, t: float) -> float:
        return spot - strike + vol * t

    folder = tempfile.mkdtemp(prefix="bench-wload-")
    db = os.path.join(folder, "load.db")
    otel_monitor.configure(db_path=db, writer_process=mode == "on")
    price(1.0, 2.0, 0.2, 0.5)
    assert otel_monitor.force_flush(30)  # the writer (and its process) running
    processor = PIPELINE.processor
    # Each batch as it is written (on the writer thread): the writer's rate is measured
    # between its first and last batch written during the loop, not in whole batches
    # of 20,000 per run.
    batches: list[tuple[float, int]] = []
    processor.observers.append(lambda batch: batches.append((time.perf_counter(), len(batch))))
    dropped0 = processor.dropped
    made = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        for i in range(1000):
            price(100.0 + i, 95.0, 0.2, 0.5)
        made += 1000
    elapsed = time.perf_counter() - t0
    dropped = processor.dropped - dropped0
    during = [(t, n) for t, n in batches if t0 < t <= t0 + elapsed]
    writer = (sum(n for _, n in during[1:]) / (during[-1][0] - during[0][0])
              if len(during) > 2 else float("nan"))
    otel_monitor.shutdown()
    shutil.rmtree(folder)  # ~100 MB a run
    return {"app": made / elapsed, "writer": writer, "dropped": dropped, "made": made,
            "batches": len(during)}


def _median(values: list[float]) -> float:
    """The median of the runs that measured something (a loop in which fewer than two
    batches were written gives no rate)."""
    found = [v for v in values if v == v]
    return statistics.median(found) if found else float("nan")


def measure(mode: str, what: str, args: argparse.Namespace) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, what,
                          "--seconds", str(args.seconds), "--calls", str(args.calls)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=100_000, help="records of the idle run")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "WHAT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, what = args.child
        result = ({"idle": idle(mode, args.calls)} if what == "idle"
                  else load(mode, args.seconds))
        print(json.dumps(result))
        return
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    print(f"load: one thread, {args.seconds:g} s; idle: {args.calls:,} records; "
          f"{args.rounds} rounds, off and on alternately")
    for r in range(args.rounds):
        for mode in ("off", "on"):
            got = measure(mode, "idle", args)
            got.update(measure(mode, "load", args))
            got["ratio"] = got["writer"] / got["idle"]
            runs[mode].append(got)
            print(f"  round {r + 1} writer_process {mode:3s}: idle {got['idle']:9,.0f} "
                  f"calls/s; under load writer {got['writer']:9,.0f} calls/s "
                  f"(= {got['ratio']:.2f} x idle), app {got['app']:9,.0f} calls/s, "
                  f"dropped {got['dropped']:,} of {got['made']:,}, "
                  f"{got['batches']} batches written; "
                  f"load {open('/proc/loadavg').read().split()[0]}")
    med = {mode: {k: _median([run[k] for run in runs[mode]])
                  for k in ("idle", "writer", "app", "ratio")} for mode in runs}
    print("medians:")
    for mode, name in (("off", "writer thread "), ("on", "writer process")):
        m = med[mode]
        print(f"  {name}: writer under load {m['writer']:9,.0f} / idle {m['idle']:9,.0f} "
              f"= {m['ratio']:.2f} (target >= 0.8); app {m['app']:9,.0f} calls/s")
    print(f"  writer process under load / writer thread idle = "
          f"{med['on']['writer'] / med['off']['idle']:.2f} (the thread's idle as the reference)")
    print(f"  app calls/s, writer process / writer thread = "
          f"{med['on']['app'] / med['off']['app']:.2f} (target >= 0.9); "
          f"loadavg {open('/proc/loadavg').read().strip()}")


if __name__ == "__main__":
    main()
