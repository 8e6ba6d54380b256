"""Writer throughput, call-to-row lag and drops, measured in one run.

    python benchmarks/bench_export.py [--calls 100000] [--rate 10000] [--seconds 5]
    python benchmarks/bench_export.py --onto-big-store [--calls 100000]
    python benchmarks/bench_export.py --rollups 7 [--calls 100000]

1. Throughput: calls/s that RecordWriter writes (1 call row + 5 data rows
   each, with the store's indexes), against plain ``executemany`` of the very
   same rows into the same schema, in batches of the same size.
2. Steady caller at --rate calls/s through the whole pipeline (decorator ->
   queue -> writer thread -> SQLite): p50/p99 lag from a call's return to its row
   being visible to another connection, and calls lost.
3. Tight loop for --seconds: calls made, written, dropped, and resident memory,
   which must stay bounded by the queue size.

``--rollups N`` measures only part 1's writer, with the per-minute rollups' upkeep and
with it replaced by a no-op, alternately N times each: their ratio (target >= 0.95).

``--onto-big-store`` measures only the writer, into copies of the 2,000,000-call store
benchmarks/bench_ui_queries.py caches (run it first, or with --generate-only): one copy
with the current schema, and as the reference one with the schema's sort indexes
(exporters.schema.SORT_INDEXES) dropped, written alternately in the same run. An index
whose insert position is random costs a page per call once the store outgrows the cache;
a fresh store hides that.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench_ui_queries

import otel_monitor  # noqa: E402
from exporters import RecordWriter  # noqa: E402
from exporters.processor import MAX_BATCH  # noqa: E402
from exporters.records import CallSite  # noqa: E402
from exporters.store import STORED_DATA_COLUMNS, STORED_SPAN_COLUMNS, SpanStore  # noqa: E402
from otel_monitor import monitor  # noqa: E402
from otel_monitor.pipeline import PIPELINE  # noqa: E402


SITE = CallSite("bench.price", "pricing", __file__, 1)


def make_records(n: int) -> list[tuple]:
    site = SITE
    names = ("spot", "strike", "vol", "t")
    now = time.time_ns()
    rnd = random.Random(5)
    out = []
    for i in range(n):
        values = (repr(100.0 + i % 50), "95.0", repr(0.2 + (i % 7) / 100), "0.5")
        start = now + i * 1000
        # Durations vary (0-50 ms) as real ones do: a duration index's insert position too.
        out.append((site.process, rnd.getrandbits(128), rnd.getrandbits(64),
                    rnd.getrandbits(64), start, start + rnd.randrange(50_000_000), "ok", None,
                    (names, values), repr(i * 0.5), None))  # weight None: 1
    return out


def throughput_exporter(path: str, records: list[tuple]) -> float:
    exporter = RecordWriter(path, sites={SITE.process: SITE})
    t0 = time.perf_counter()
    for i in range(0, len(records), MAX_BATCH):
        exporter.export(records[i:i + MAX_BATCH])
    elapsed = time.perf_counter() - t0
    exporter.shutdown()
    return len(records) / elapsed


def throughput_executemany(path: str, records: list[tuple]) -> float:
    """The same rows as the tables hold them (already flattened, names interned, trace ids
    as bytes: no Python work counted) with executemany."""
    store = SpanStore(path)
    process_id = store.process_ids([__import__("exporters.store").store.ProcessEntry(
        "bench.price", "pricing")])["bench.price"]
    db = store.db
    db.execute_write_many("INSERT OR IGNORE INTO data_names(name, kind) VALUES (?, ?)",
                          [(n, "INPUT") for n in records[0][8][0]] + [("return", "OUTPUT")])
    name_ids = {(n, k): i for i, n, k in db.execute("SELECT id, name, kind FROM data_names")}
    span_rows, data_rows = [], []
    pid = os.getpid()
    for i, (name, tid, sid, psid, start, end, outcome, _, (names, values), output, _w) in \
            enumerate(records, 1):
        span_rows.append((i, sid - (1 << 64) if sid >= 1 << 63 else sid, tid.to_bytes(16, "big"),
                          psid - (1 << 64) if psid >= 1 << 63 else psid, start,
                          (end - start) / 1e6, process_id, None, "OK",
                          None if outcome == "ok" else outcome, None, None, pid, None))
        for seq, (n, v) in enumerate(zip(names, values)):
            data_rows.append((i, seq, name_ids[(n, "INPUT")], v))
        data_rows.append((i, 4, name_ids[("return", "OUTPUT")], output))
    span_sql = (f"INSERT INTO spans({', '.join(STORED_SPAN_COLUMNS)}) "
                f"VALUES ({','.join('?' * len(STORED_SPAN_COLUMNS))})")
    data_sql = f"INSERT INTO data_values({', '.join(STORED_DATA_COLUMNS)}) VALUES (?,?,?,?)"
    t0 = time.perf_counter()
    for i in range(0, len(span_rows), MAX_BATCH):
        with db.transaction():
            db.execute_write_many(span_sql, span_rows[i:i + MAX_BATCH])
            db.execute_write_many(data_sql, data_rows[i * 5:(i + MAX_BATCH) * 5])
    elapsed = time.perf_counter() - t0
    store.close()
    return len(records) / elapsed


@monitor("pricing")
def price(spot: float, strike: float, vol: float, t: float) -> float:
    return spot * 0.5 + strike * 0.25 + vol * t


def steady_lag(path: str, rate: int, seconds: float) -> dict:
    otel_monitor.configure(db_path=path, flush_interval_s=0.2)
    returned_at: list[int] = []
    seen: list[tuple[int, int]] = []  # (max span id visible, time seen)
    stop = threading.Event()

    def watch() -> None:
        reader = sqlite3.connect(path)
        while not stop.is_set():
            row = reader.execute("SELECT coalesce(max(id), 0) FROM spans").fetchone()
            seen.append((row[0], time.time_ns()))
            time.sleep(0.005)
        reader.close()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    per_tick = max(1, rate // 1000)
    t0 = time.perf_counter()
    n = int(rate * seconds)
    done = 0
    while done < n:
        for _ in range(per_tick):
            price(100.0, 95.0, 0.2, 0.5)
            returned_at.append(time.time_ns())
        done += per_tick
        wait = t0 + done / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
    achieved = done / (time.perf_counter() - t0)
    otel_monitor.force_flush()
    time.sleep(0.05)
    stop.set()
    watcher.join()
    lags, j = [], 0
    for k, t_ret in enumerate(returned_at, 1):  # call k is visible once max(id) >= k
        while j < len(seen) and seen[j][0] < k:
            j += 1
        if j < len(seen):
            lags.append((seen[j][1] - t_ret) / 1e6)
    written = sqlite3.connect(path).execute("SELECT count(*) FROM spans").fetchone()[0]
    dropped = PIPELINE.processor.dropped
    otel_monitor.shutdown()
    lags.sort()
    return {"rate": achieved, "calls": done, "written": written, "dropped": dropped,
            "p50": statistics.median(lags), "p99": lags[int(len(lags) * 0.99) - 1]}


def tight_loop(path: str, seconds: float, queue_size: int) -> dict:
    otel_monitor.configure(db_path=path, queue_size=queue_size)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(1000):
            price(100.0, 95.0, 0.2, 0.5)
        calls += 1000
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = PIPELINE.processor.queue_peak
    otel_monitor.force_flush()
    written = sqlite3.connect(path).execute("SELECT count(*) FROM spans").fetchone()[0]
    dropped = PIPELINE.processor.dropped
    otel_monitor.shutdown()
    return {"calls": calls, "written": written, "dropped": dropped, "queue_peak": peak,
            "rss_growth_mb": (rss1 - rss0) / 1024}


def sort_index_names() -> list[str]:
    from exporters.schema import SORT_INDEXES

    return re.findall(r"CREATE INDEX IF NOT EXISTS (\w+)", SORT_INDEXES)


BIG_RUNS = 5  # writes into a big store vary more from run to run than into a fresh one


def onto_big_store(tmp: str, records: list[tuple], big_calls: int) -> None:
    """Writer calls/s into copies of the cached big store: current schema vs. the same
    without the sort indexes (the reference), alternately, median of BIG_RUNS batches each."""
    from bench_ui_queries import cached_store

    source = cached_store(big_calls)  # checkpointed, at this schema
    copies = {"current": os.path.join(tmp, "big_current.db"),
              "reference": os.path.join(tmp, "big_reference.db")}
    for path in copies.values():
        shutil.copyfile(source, path)
    dropped = sort_index_names()
    with sqlite3.connect(copies["reference"]) as conn:
        for name in dropped:
            conn.execute(f"DROP INDEX {name}")
    for path in copies.values():  # read once: time the writer, not a cold disk
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass
    per_run = len(records) // BIG_RUNS
    rates: dict[str, list[float]] = {k: [] for k in copies}
    for r in range(BIG_RUNS):  # alternate, so noise hits both alike; each appends new calls
        part = records[r * per_run:(r + 1) * per_run]
        for kind, path in copies.items():
            rates[kind].append(throughput_exporter(path, part))
    o, ref = statistics.median(rates["current"]), statistics.median(rates["reference"])
    print(f"writer into a copy of the {big_calls:,}-call store ({source}), "
          f"{per_run:,} calls x (1 call row + 5 data rows) per run, median of {BIG_RUNS}")
    best_o, best_ref = max(rates["current"]), max(rates["reference"])
    print(f"   current schema                            {o:10,.0f} calls/s  (target >= 50,000)"
          f"  {'PASS' if o >= 50_000 else 'FAIL'}   best run {best_o:,.0f}")
    print(f"   without the sort indexes ({', '.join(dropped)}) {ref:10,.0f} calls/s"
          f"   best run {best_ref:,.0f}")
    print(f"   ratio                                     {o / ref:10.2f}"
          f"   best runs {best_o / best_ref:.2f}")
    for path in copies.values():
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)


def rollups_cost(tmp: str, records: list[tuple], rounds: int) -> None:
    """Writer calls/s with the per-minute rollups' upkeep (exporters.rollups.maintain, in
    insert_calls' transaction) against the same writer with it replaced by a no-op,
    alternately in the same run (so load hits both alike)."""
    from exporters import rollups

    keep = rollups.maintain
    on, off = [], []
    spent = [0.0]

    def timed(db, spans, width):
        t0 = time.perf_counter()
        keep(db, spans, width)
        spent[0] += time.perf_counter() - t0

    on_cpu, off_cpu = [], []
    try:
        for r in range(rounds):
            rollups.maintain = timed
            c0 = time.process_time()
            on.append(throughput_exporter(os.path.join(tmp, f"on{r}.db"), records))
            on_cpu.append(len(records) / (time.process_time() - c0))
            rollups.maintain = lambda db, spans, width: None
            c0 = time.process_time()
            off.append(throughput_exporter(os.path.join(tmp, f"off{r}.db"), records))
            off_cpu.append(len(records) / (time.process_time() - c0))
    finally:
        rollups.maintain = keep
    o, f = statistics.median(on), statistics.median(off)
    oc, fc = statistics.median(on_cpu), statistics.median(off_cpu)
    print(f"writer throughput, {len(records)} calls x (1 call row + 5 data rows), median of "
          f"{rounds}, alternately")
    print(f"   with the rollups' upkeep                  {o:10,.0f} calls/s")
    print(f"   without it (no-op)                        {f:10,.0f} calls/s")
    print(f"   ratio with/without                        {o / f:10.3f}       (target >= 0.95)"
          f"  {'PASS' if o / f >= 0.95 else 'FAIL'}")
    print(f"   per CPU second (less sensitive to other processes): {oc:,.0f} / {fc:,.0f} = "
          f"{oc / fc:.3f}")
    per_call = spent[0] / (rounds * len(records))
    print(f"   the upkeep itself (timed in place)        {per_call * 1e6:10.3f} us/call = "
          f"{per_call * o:.1%} of a written call's time with it")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--queue-size", type=int, default=100_000)
    ap.add_argument("--onto-big-store", action="store_true",
                    help="writer calls/s into a copy of bench_ui_queries' cached store only")
    ap.add_argument("--big-calls", type=int, default=2_000_000,
                    help="which cached store (its --calls)")
    ap.add_argument("--rollups", type=int, metavar="ROUNDS", default=0,
                    help="only the writer with and without the rollups' upkeep, ROUNDS each")
    opts = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="otel-monitor-bench-")
    records = make_records(opts.calls)
    if opts.rollups:
        rollups_cost(tmp, records, opts.rollups)
        return
    if opts.onto_big_store:
        onto_big_store(tmp, records, opts.big_calls)
        return

    ours, plain = [], []
    for r in range(3):  # alternate, so noise hits both alike
        ours.append(throughput_exporter(os.path.join(tmp, f"ours{r}.db"), records))
        plain.append(throughput_executemany(os.path.join(tmp, f"plain{r}.db"), records))
    o, p = statistics.median(ours), statistics.median(plain)
    print(f"1. writer throughput, {opts.calls} calls x (1 call row + 5 data rows), median of 3")
    print(f"   RecordWriter (flattening included)       {o:10,.0f} calls/s  (target >= 50,000)"
          f"  {'PASS' if o >= 50_000 else 'FAIL'}")
    print(f"   plain executemany of the same rows       {p:10,.0f} calls/s")
    print(f"   ratio                                     {o / p:10.2f}       (target >= 0.60)"
          f"  {'PASS' if o / p >= 0.6 else 'FAIL'}")

    s = steady_lag(os.path.join(tmp, "steady.db"), opts.rate, opts.seconds)
    print(f"2. steady caller at {s['rate']:,.0f} calls/s for {opts.seconds:.0f} s: "
          f"{s['calls']} calls, {s['written']} written, {s['dropped']} dropped")
    print(f"   call-to-row lag p50 {s['p50']:.0f} ms, p99 {s['p99']:.0f} ms (target p99 <= 1000 ms,"
          f" nothing lost)  {'PASS' if s['p99'] <= 1000 and s['written'] == s['calls'] else 'FAIL'}")

    t = tight_loop(os.path.join(tmp, "tight.db"), opts.seconds, opts.queue_size)
    print(f"3. tight loop for {opts.seconds:.0f} s: {t['calls']:,} calls, {t['written']:,} written, "
          f"{t['dropped']:,} dropped (counted), queue peak {t['queue_peak']:,} "
          f"(bound {opts.queue_size:,}), max RSS growth {t['rss_growth_mb']:.0f} MiB")
    accounted = t["written"] + t["dropped"] == t["calls"]
    print(f"   every call written or counted as dropped: {'PASS' if accounted else 'FAIL'}")


if __name__ == "__main__":
    main()
