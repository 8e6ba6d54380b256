"""What ``sample="auto"`` stores of the demo's pricing function called at full speed.

    python benchmarks/bench_sampling.py [--seconds 5] [--target 200]

The demo's ``black_scholes`` (its body, decorated here with ``sample="auto"``) is called
in a tight loop for ``--seconds`` on the real clock, with a bad vol (``ValueError``) on
one call in 500. Prints the calls made, the calls stored (share, and against the
target x the loop's length), the errors made and stored, and the sum of the stored
weights against the calls made (the estimate's error). Figures, not a test: the
calls made per second depend on the machine.
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import otel_monitor  # noqa: E402
from otel_monitor import demo, monitor  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--target", type=float, default=200.0)
    opts = ap.parse_args()
    db = os.path.join(tempfile.mkdtemp(prefix="otel-monitor-sampling-"), "s.db")
    otel_monitor.configure(db_path=db, queue_size=1_000_000)
    price = monitor("pricing", sample="auto", target_per_s=opts.target)(
        demo.black_scholes.__wrapped__)
    calls = errors = 0
    t0 = time.perf_counter()
    deadline = t0 + opts.seconds
    while time.perf_counter() < deadline:
        for i in range(500):
            try:
                price(100.0 + i * 0.01, 95.0, None if i == 250 else 0.2, 0.5, 0.03)
            except ValueError:
                errors += 1
        calls += 500
    looped = time.perf_counter() - t0
    otel_monitor.force_flush()
    with sqlite3.connect(db) as conn:
        stored, stored_errors, estimate = conn.execute(
            "SELECT count(*), sum(status = 'ERR'), sum(coalesce(weight, 1.0)) FROM spans"
        ).fetchone()
    otel_monitor.shutdown()
    print(f"calls made      {calls:>12,} in {looped:.2f} s ({calls / looped:,.0f}/s)")
    print(f"calls stored    {stored:>12,} ({stored / calls:.3%} of the calls; "
          f"{stored / (opts.target * looped):.2f} x target x duration)")
    print(f"errors          {errors:>12,} made, {stored_errors:,} stored")
    print(f"estimate        {estimate:>12,.0f} (sum of weights; error "
          f"{(estimate - calls) / calls:+.2%})")


if __name__ == "__main__":
    main()
