"""The cold archive (issue 17), measured in one run:

    python benchmarks/bench_archive.py [--calls 1000000] [--days 30]
                                       [--calls-per-day 1000000] [--queries 20]
                                       [--reference] [--size-cap]

1. ``--calls`` calls (an INPUT and an OUTPUT row each) aged past the hot window are
   archived then purged by ``RetentionWorker.run_once`` (local directory destination),
   while a writer thread records batches of 100 new calls into the same store: prints
   archived == purged (exact, and the manifest's call count), the archive's size (MiB
   per million calls, bytes per call), the time to archive, and the writer's longest
   insert during it (its stall) against its median insert (the reference, same run).
   With ``--size-cap``: the calls are young (inside the hot window) and the store's size
   cap is half its used size: the cap's path archives (and deletes) about half of them.
2. An archive of ``--days`` days x ``--calls-per-day`` calls generated directly with
   pyarrow (one file per hour, as the writer lays them out), and a one-hour query as
   ``/api/rows`` runs it (``TraceQueries.count_rows`` + ``page``, limit 100, newest
   first) at ``--queries`` random hours: p50 and p95.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exporters import SpanStore  # noqa: E402
from exporters.archive.layout import COLUMNS, HOUR_NS, ArchiveLayout  # noqa: E402
from exporters.queries import COUNT_CAP, RowFilter, TraceQueries  # noqa: E402
from exporters.retention import RetentionWorker  # noqa: E402
from exporters.store import ProcessEntry  # noqa: E402

PROCESSES = [f"app.mod{i}.func{i}" for i in range(20)]


def _insert(store: SpanStore, pids: dict, first_sid: int, starts: list[int]) -> None:
    me = os.getpid()
    spans: list = []
    data: list = []
    for i, start in enumerate(starts):
        sid = first_sid + i
        err = sid % 50 == 0
        spans += (i, sid, "%032x" % sid, None, start, 0.5 + (sid % 97) / 10,
                  pids[PROCESSES[sid % len(PROCESSES)]], "bench", "svc",
                  "ERR" if err else "OK", "error" if err else "ok",
                  "ValueError" if err else None,
                  "Traceback...\nValueError: bad input" if err else None, me, None)
        data += (i, 0, "x", "INPUT", repr(sid % 10_000 * 1.25))
        if not err:
            data += (i, 1, "return", "OUTPUT", repr(sid % 1000))
    store.insert_calls(spans, data)


def archive_run(calls: int, tmp: Path, *, archive: bool = True, size_cap: bool = False) -> None:
    """``archive=False``: the same with the plain purge (the reference for the stall).
    ``size_cap``: young calls, deleted by the size cap (half the store's used size)."""
    tmp = tmp / (("archive-run" if archive else "plain-run") + ("-cap" if size_cap else ""))
    tmp.mkdir()
    db = str(tmp / "store.db")
    store = SpanStore(db)
    pids = store.process_ids([ProcessEntry(p, "bench") for p in PROCESSES])
    now = time.time_ns()
    # over the 90 minutes after: aged past 6 h (with size_cap: 3 h old, inside the window)
    old_start = now - (3 if size_cap else 8) * HOUR_NS
    step = max(1, 90 * 60 * 10**9 // calls)
    t0 = time.perf_counter()
    for off in range(0, calls, 20_000):
        n = min(20_000, calls - off)
        _insert(store, pids, off + 1, [old_start + (off + i) * step for i in range(n)])
    print(f"setup: {calls:,} {'young' if size_cap else 'aged'} calls inserted in "
          f"{time.perf_counter() - t0:.1f} s")
    max_bytes = store.used_bytes() // 2 if size_cap else None

    stop = threading.Event()
    inserts: list[float] = []

    def writer() -> None:
        wstore = SpanStore(db)
        sid = 10**9
        while not stop.is_set():
            t = time.perf_counter()
            _insert(wstore, pids, sid, [time.time_ns() + i for i in range(100)])
            inserts.append(time.perf_counter() - t)
            sid += 100
            time.sleep(0.01)
        wstore.close()

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.5)  # the reference: inserts without the archive
    before = len(inserts)
    worker = RetentionWorker(db, archive_dir=str(tmp / "archive") if archive else None,
                             max_bytes=max_bytes)
    t0 = time.perf_counter()
    purged = worker.run_once(store, now_ns=now)
    if size_cap:  # run_once returns the age path's count; the cap's is in .purged
        purged = worker.purged
        calls = purged
        lost = f"; calls lost (unarchived) {worker.archive_lost}" if archive else ""
        print(f"size cap {max_bytes / 2**20:.1f} MiB: the store now "
              f"{store.used_bytes() / 2**20:.1f} MiB{lost}")
    took = time.perf_counter() - t0
    during = inserts[before:]
    stop.set()
    thread.join()
    store.close()
    ref = statistics.median(inserts[:before]) if before else float("nan")
    if not archive:
        print(f"reference, plain purge of {purged:,} calls (no archive): {took:.1f} s; writer "
              f"longest insert {max(during) * 1000:.1f} ms, p99 "
              f"{sorted(during)[int(0.99 * (len(during) - 1))] * 1000:.1f} ms; median before "
              f"{ref * 1000:.2f} ms")
        return
    entries = ArchiveLayout(tmp / "archive").manifest()
    in_manifest = sum(e["calls"] for e in entries)
    size = sum(e["size"] for e in entries)
    print(f"archived {worker.archived:,} == purged {purged:,} == manifest {in_manifest:,}: "
          f"{worker.archived == purged == in_manifest == calls}")
    print(f"archive: {len(entries)} files, {size / 2**20:.1f} MiB = "
          f"{size / 2**20 / (calls / 1e6):.1f} MiB per million calls, "
          f"{size / calls:.1f} bytes per call")
    per_hour: dict[int, int] = {}
    for e in entries:
        per_hour[e["hour_ns"]] = per_hour.get(e["hour_ns"], 0) + 1
    cut_off = now - worker.retention_ns
    print("files per hour of start time: " + ", ".join(
        f"{time.strftime('%H:00', time.gmtime(h // 10**9))} {n}"
        + ("" if h + HOUR_NS <= cut_off else " (not complete: ends after the cut-off)")
        for h, n in sorted(per_hour.items())))
    print(f"time to archive+purge: {took:.1f} s ({calls / took:,.0f} calls/s)")
    print(f"writer (100-call inserts meanwhile): {len(during)} inserts, longest "
          f"{max(during) * 1000:.1f} ms, p99 "
          f"{sorted(during)[int(0.99 * (len(during) - 1))] * 1000:.1f} ms; median before "
          f"archiving {ref * 1000:.2f} ms")


def generate(root: Path, days: int, per_day: int, end_hour_ns: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from exporters.archive.writer import _schema
    per_hour = per_day // 24
    layout = ArchiveLayout(root)
    sids = range(per_hour)
    base_cols = {
        "process": [PROCESSES[i % len(PROCESSES)] for i in sids for _ in (0, 1)],
        "seq": [k for _ in sids for k in (0, 1)],
        "data": [d for _ in sids for d in ("x", "return")],
        "data_type": [d for _ in sids for d in ("INPUT", "OUTPUT")],
        "data_value": [v for i in sids for v in (repr(i * 1.25), repr(i % 1000))],
    }
    schema = _schema()
    hours = days * 24
    t0 = time.perf_counter()
    for h in range(hours):
        hour = end_hour_ns - (hours - h) * HOUR_NS
        first = h * per_hour
        starts = [hour + i * (HOUR_NS // per_hour) for i in sids for _ in (0, 1)]
        cols = {
            "id": [first + i for i in sids for _ in (0, 1)],
            "span_id": [f"{first + i + 1:016x}" for i in sids for _ in (0, 1)],
            "trace_id": [f"{first + i + 1:032x}" for i in sids for _ in (0, 1)],
            "parent_span_id": [None] * (2 * per_hour), "start_ns": starts,
            "duration_ms": [1.5] * (2 * per_hour), "process_group": ["bench"] * (2 * per_hour),
            "service": ["svc"] * (2 * per_hour), "status": ["OK"] * (2 * per_hour),
            "outcome": ["ok"] * (2 * per_hour), "exception_type": [None] * (2 * per_hour),
            "exception": [None] * (2 * per_hour), "pid": [1] * (2 * per_hour),
            "weight": [1.0] * (2 * per_hour), "error_group": [None] * (2 * per_hour),
            **base_cols}
        table = pa.table({c: pa.array(cols[c], type=schema.field(c).type) for c in COLUMNS},
                         schema=schema)
        path = layout.file_path(hour, "gen", first, first + per_hour - 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="zstd")
    print(f"generated {days} days x {per_day:,} calls/day ({hours} files) in "
          f"{time.perf_counter() - t0:.0f} s")


def query_run(days: int, per_day: int, queries: int, tmp: Path) -> None:
    db = str(tmp / "hot.db")
    SpanStore(db).close()
    end_hour = time.time_ns() - time.time_ns() % HOUR_NS - 6 * HOUR_NS
    generate(tmp / "cold", days, per_day, end_hour)
    q = TraceQueries(db)
    q.archive_dir = str(tmp / "cold")
    rng = random.Random(7)
    times = []
    for _ in range(queries):
        start = end_hour - rng.randrange(1, days * 24) * HOUR_NS
        f = RowFilter(since_ns=start, until_ns=start + HOUR_NS)
        t = time.perf_counter()
        total, _ = q.count_rows(f)
        page = q.page(f, sort="-timestamp", limit=100)
        times.append(time.perf_counter() - t)
        # (the count stops at COUNT_CAP, as the hot store's)
        assert page.rows and page.rows[0]["archived"]
        assert total == min(2 * (per_day // 24), COUNT_CAP), total
    times.sort()
    print(f"one-hour /api/rows over {days} days x {per_day:,}/day (count + page of 100, "
          f"{queries} queries): p50 {statistics.median(times) * 1000:.0f} ms, "
          f"p95 {times[int(0.95 * (len(times) - 1))] * 1000:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--calls-per-day", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--skip-archive", action="store_true")
    ap.add_argument("--skip-query", action="store_true")
    ap.add_argument("--reference", action="store_true",
                    help="also the plain purge of as many calls (the writer's stall then)")
    ap.add_argument("--size-cap", action="store_true",
                    help="young calls deleted by the size cap instead of the age")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        if not args.skip_archive:
            archive_run(args.calls, Path(d), size_cap=args.size_cap)
            if args.reference:
                archive_run(args.calls, Path(d), archive=False, size_cap=args.size_cap)
        if not args.skip_query:
            query_run(args.days, args.calls_per_day, args.queries, Path(d))


if __name__ == "__main__":
    main()
