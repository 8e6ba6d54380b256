"""How long a live writer waits for an insert while retention purges old calls.

    python benchmarks/bench_retention.py [--old-calls 200000] [--rounds 2]

A store holds --old-calls calls 7 h old (five data rows each, like the design's example
call). A writer thread inserts a batch of 20 calls every 10 ms on its own connection.
Measured in the same run, on fresh copies of the same store:

* reference: the writer's insert times for a while with no purge running;
* purge: the writer's insert times while another connection purges everything older
  than 6 h (``SpanStore.purge``, chunked so a writer waits ~20 ms at most per chunk).

Printed: p50/p99/max of each, the ratio purge/reference, and the worst wait against
the 100 ms target.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from exporters.store import ProcessEntry, SpanStore  # noqa: E402

HOUR_NS = 3600 * 10**9
BATCH = 20
ARGS = (("spot", "101.25"), ("strike", "100.0"), ("vol", "0.2"))
TARGET_S = 0.100
_next_span_id = [0]


def insert(store: SpanStore, process_id: int, starts_ns: list[int]) -> None:
    """Calls with a key input, ARGS and an output: five data rows each."""
    me = os.getpid()
    for offset in range(0, len(starts_ns), 20_000):
        spans: list = []
        data: list = []
        for i, start in enumerate(starts_ns[offset:offset + 20_000]):
            _next_span_id[0] += 1
            sid = _next_span_id[0]
            spans += (i, sid, "%032x" % sid, None, start, 0.25, process_id, "bench", "svc",
                      "OK", "ok", None, None, me, None)
            data += (i, 0, "key", "INPUT", f"k{sid}")
            for seq, (name, value) in enumerate(ARGS, 1):
                data += (i, seq, name, "INPUT", value)
            data += (i, len(ARGS) + 1, "return", "OUTPUT", "None")
        store.insert_calls(spans, data)


def writer(db: str, stop: threading.Event, started: threading.Event,
           waits: list[float]) -> None:
    store = SpanStore(db)
    pid = store.process_ids([ProcessEntry("bench.live", "bench")])["bench.live"]
    try:
        while not stop.is_set():
            t0 = time.perf_counter()
            insert(store, pid, [time.time_ns()] * BATCH)
            waits.append(time.perf_counter() - t0)
            started.set()
            time.sleep(0.01)
    finally:
        store.close()


def measure(db: str, purge: bool, seconds: float) -> tuple[list[float], int]:
    """The writer's insert times while purging (or, as the reference, for ``seconds``)."""
    stop, started = threading.Event(), threading.Event()
    waits: list[float] = []
    thread = threading.Thread(target=writer, args=(db, stop, started, waits))
    thread.start()
    store = SpanStore(db)
    deleted = 0
    try:
        assert started.wait(10), "the writer did not start"
        before = len(waits)
        if purge:
            deleted = store.purge(time.time_ns() - 6 * HOUR_NS)
        else:
            time.sleep(seconds)
        during = waits[before:]
    finally:
        stop.set()
        thread.join(30)
        store.close()
    return during, deleted


def summary(waits: list[float]) -> str:
    ms = sorted(w * 1000 for w in waits)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (f"{len(ms):5d} inserts  p50 {statistics.median(ms):7.2f} ms  "
            f"p99 {p99:7.2f} ms  max {ms[-1]:7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_retention_") as work:
        template = os.path.join(work, "template.db")
        store = SpanStore(template)
        pid = store.process_ids([ProcessEntry("bench.old", "bench")])["bench.old"]
        old = time.time_ns() - 7 * HOUR_NS
        insert(store, pid, [old + i * 1000 for i in range(args.old_calls)])
        store.close()
        print(f"store: {args.old_calls:,} calls 7 h old, 5 data rows each; writer: "
              f"{BATCH} calls every 10 ms on its own connection")
        worst_purge, worst_ref = 0.0, 0.0
        for n in range(args.rounds):
            db = os.path.join(work, f"round{n}.db")
            shutil.copyfile(template, db)
            t0 = time.perf_counter()
            purge_waits, deleted = measure(db, purge=True, seconds=0)
            took = time.perf_counter() - t0
            shutil.copyfile(template, db)
            ref_waits, _ = measure(db, purge=False, seconds=took)
            assert deleted == args.old_calls, (deleted, args.old_calls)
            print(f"round {n + 1}: purge of {deleted:,} calls took {took:.2f} s")
            print(f"  reference (no purge): {summary(ref_waits)}")
            print(f"  during the purge:     {summary(purge_waits)}")
            worst_purge = max(worst_purge, max(purge_waits))
            worst_ref = max(worst_ref, max(ref_waits))
        print(f"worst insert wait during a purge: {worst_purge * 1000:.2f} ms "
              f"(target {TARGET_S * 1000:.0f} ms: {'pass' if worst_purge <= TARGET_S else 'FAIL'}); "
              f"ratio to the worst without a purge: {worst_purge / worst_ref:.2f}")


if __name__ == "__main__":
    main()
