"""Time the UI's read queries (exporters.queries.TraceQueries) on a 10,000,000-row store.

    .venv/bin/python benchmarks/bench_ui_queries.py [--calls 2000000] [--runs 50]

Generates 2,000,000 calls x 5 data rows through SpanStore.insert_calls in big batches
(cached under the temp dir and reused when present), then times each query over
``--runs`` runs with varied parameters and prints p50/p95 beside its EXPLAIN QUERY PLAN.
Targets (issue 4): each filter's page query <= 50 ms p95; the graph <= 200 ms p95.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from exporters.store import ProcessEntry, SpanStore  # noqa: E402

ROWS_PER_CALL = 5
SPAN_SECONDS = 6 * 3600          # calls spread over the last 6 h (the retention window)
PROCESSES = [f"bench.group{g}.step{i}" for g in range(5) for i in range(10)]
NAMES = ["spot", "strike", "vol", "rate", "tenor", "qty", "book", "ccy", "curve", "sym",
         "price", "delta", "gamma", "notional", "api_key", "trade_id", "desk", "limit",
         "venue", "side"]
BATCH_CALLS = 20_000
ERROR_SHARE = 0.02
CHAIN = 4                        # calls per trace: a parent/child chain


def generate(path: str, calls: int) -> None:
    rnd = random.Random(7)
    store = SpanStore(path)
    ids = store.process_ids([ProcessEntry(p, p.rsplit(".", 1)[0]) for p in PROCESSES])
    store.upsert_catalog([ProcessEntry(p, p.rsplit(".", 1)[0], "/bench/app.py", 10 + i,
                                       f"def {p.rsplit('.', 1)[1]}(x):\n    return x\n")
                          for i, p in enumerate(PROCESSES)])
    start = time.time_ns() - SPAN_SECONDS * 10**9
    step = SPAN_SECONDS * 10**9 // calls
    span_id = 1
    for first in range(0, calls, BATCH_CALLS):
        spans, data = [], []
        for k in range(min(BATCH_CALLS, calls - first)):
            n = first + k
            pos = n % CHAIN
            proc = PROCESSES[(n // CHAIN + pos) % len(PROCESSES)]
            err = rnd.random() < ERROR_SHARE
            parent = None if pos == 0 else span_id - 1
            spans += [k, span_id, f"{n // CHAIN:032x}", parent, start + n * step,
                      rnd.random() * 50, ids[proc], proc.rsplit(".", 1)[0], "bench",
                      "ERR" if err else "OK", "error" if err else "ok",
                      "ValueError" if err else None,
                      "Traceback (most recent call last):\nValueError: bad" if err else None, 1]
            base = (n * 7) % len(NAMES)
            for seq in range(ROWS_PER_CALL):
                last = seq == ROWS_PER_CALL - 1
                data += [k, seq, "return" if last else NAMES[(base + seq) % len(NAMES)],
                         "OUTPUT" if last else "INPUT", repr(rnd.random() * 100)]
            span_id += 1
        store.insert_calls(spans, data)
    store.close()


def percentile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--db", default=None)
    ap.add_argument("--generate-only", action="store_true")
    args = ap.parse_args()
    path = args.db or os.path.join(tempfile.gettempdir(),
                                   f"otel_monitor_bench_ui_{args.calls}.db")
    if os.path.exists(path):
        print(f"store: {path} (cached; delete it to regenerate)")
    else:
        t0 = time.perf_counter()
        generate(path + ".part", args.calls)
        os.replace(path + ".part", path)
        for suffix in ("-wal", "-shm"):
            if os.path.exists(path + ".part" + suffix):
                os.remove(path + ".part" + suffix)
        print(f"store: {path} generated in {time.perf_counter() - t0:.1f} s "
              f"({args.calls:,} calls, {args.calls * ROWS_PER_CALL:,} data rows)")
    SpanStore(path).close()  # a store cached by an older version: migrated to this schema
    if args.generate_only:
        return 0
    from exporters.queries import RowFilter, TraceQueries

    q = TraceQueries(path)
    now = q.latest_start_ns() or time.time_ns()
    rnd = random.Random(1)
    hour = 3600 * 10**9

    def date_range() -> RowFilter:
        a = now - rnd.randrange(1, 6) * hour
        return RowFilter(since_ns=a, until_ns=a + hour)

    cases = {
        "page: no filter": lambda: RowFilter(),
        "page: date range (1 h)": date_range,
        "page: process": lambda: RowFilter(process=rnd.choice(PROCESSES)),
        "page: data (variable name)": lambda: RowFilter(data=rnd.choice(NAMES)),
        "page: errors only": lambda: RowFilter(errors_only=True),
        "page: service": lambda: RowFilter(service="bench"),
        "page: process + errors": lambda: RowFilter(process=rnd.choice(PROCESSES),
                                                    errors_only=True),
    }
    print(f"{'query':40} {'p50 ms':>8} {'p95 ms':>8}   plan")
    for label, make in cases.items():
        def run():
            q.rows(make(), offset=rnd.choice([0, 0, 50, 100, 500, 1000]), limit=100)
        report(label, run, args.runs, q.explain_rows(make()))
        report(label.replace("page:", "count:"), lambda: q.count_rows(make()), args.runs,
               q.explain_count(make()))
    for sort in ("duration_ms", "process"):
        report(f"page: sort {sort}, 1 h range",
               lambda: q.rows(date_range(), sort=sort, limit=100), args.runs,
               q.explain_rows(date_range(), sort=sort))
    report("processes (30 min window)", lambda: q.processes(window_s=1800, now_ns=now),
           args.runs, "")
    sid = q.rows(RowFilter(), limit=1)[0]["span_id"]
    report("call detail", lambda: q.call(sid), args.runs, "")
    report("durations (30 min, bucketed)",
           lambda: q.durations(rnd.choice(PROCESSES), minutes=30, now_ns=now), args.runs,
           q.explain_durations())
    report("graph (30 min)", lambda: q.graph(window_s=1800, now_ns=now), args.runs,
           q.explain_graph())
    report("health", q.health, args.runs, "")
    report("feeds", q.feeds, args.runs, "")
    report("alerts (50)", lambda: q.alerts(limit=50), args.runs, "")
    report("banners", q.banners, args.runs, "")
    return 0


def report(label: str, fn, runs: int, plan: str) -> None:
    fn()  # warm
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    plan_lines = plan.splitlines() or [""]
    print(f"{label:40} {percentile(times, .5):8.2f} {percentile(times, .95):8.2f}   "
          f"{plan_lines[0]}")
    for line in plan_lines[1:]:
        print(f"{'':60}{line}")


if __name__ == "__main__":
    sys.exit(main())
