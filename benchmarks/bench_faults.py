"""Faults against the real decorator pipeline (issue 10): per fault, calls made, rows
stored, losses counted, time to resume after the fault cleared, and the longest time one
application call took while it lasted.

    python benchmarks/bench_faults.py [--lock-s 35] [--overload-s 3]

Runs in one process (the locked start in a child process, since it is about the first
call): disk full then freed (a 2 MiB tmpfs when mounting is allowed, else SQLite's
max_page_count), store deleted then garbage put in its place, a store locked at start-up
by another process for --lock-s, and an overload of --overload-s with a small queue
(reading the health row during it). Times are wall-clock of this machine, for the report,
not for a test.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import otel_monitor  # noqa: E402
from otel_monitor import monitor  # noqa: E402
from otel_monitor.pipeline import PIPELINE  # noqa: E402

PAD = "x" * 300


@monitor("faults")
def work(i, pad=PAD):
    return i


def stored(db: str) -> int:
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute("SELECT count(*) FROM spans").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        con.close()


def timed_calls(n: int, start: int = 0) -> float:
    longest = 0.0
    for i in range(start, start + n):
        t0 = time.perf_counter()
        work(i)
        longest = max(longest, time.perf_counter() - t0)
    return longest


def wait(predicate, timeout: float = 60.0) -> float:
    t0 = time.perf_counter()
    while not predicate():
        if time.perf_counter() - t0 > timeout:
            raise SystemExit("timed out")
        time.sleep(0.001)
    return time.perf_counter() - t0


def report(name: str, made: int, db: str, resume_s: float | None, longest_s: float,
           extra: str = "") -> None:
    written, pending, dropped = PIPELINE.processor.accounts()
    rows = stored(db)
    print(f"{name:34s} made {made:>7,}  stored {rows:>7,}  lost (counted) {dropped:>6,}  "
          f"pending {pending}  made==stored+lost: {made == rows + dropped}  "
          f"resume {'-' if resume_s is None else f'{resume_s * 1000:,.0f} ms'}  "
          f"longest call {longest_s * 1000:,.2f} ms {extra}")


def disk_full(tmp: str) -> None:
    fs = os.path.join(tmp, "fs")
    os.mkdir(fs)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", fs],
                             capture_output=True).returncode == 0
    db = os.path.join(fs, "store.db")
    filler = os.path.join(fs, "filler")
    try:
        otel_monitor.configure(db_path=db, flush_interval_s=0.05, queue_size=100_000)
        made = 100
        longest = timed_calls(100)
        assert otel_monitor.force_flush(10)
        exporter = PIPELINE.exporter
        if mounted:
            with open(filler, "wb", buffering=0) as fh:
                try:
                    while True:
                        fh.write(b"\0" * 65536)
                except OSError:
                    pass
            os.truncate(filler, os.path.getsize(filler) - 128 * 1024)
        else:
            con = exporter._open().db
            con.execute(f"PRAGMA max_page_count = {con.scalar('PRAGMA page_count') + 32}")
        longest = max(longest, timed_calls(2000, made))
        made += 2000
        wait(lambda: PIPELINE.processor.failed_batches > 0)
        longest = max(longest, timed_calls(500, made))
        made += 500
        t_free = time.perf_counter()
        if mounted:
            os.remove(filler)
        else:
            exporter._open().db.execute("PRAGMA max_page_count = 2147483647")
        wait(lambda: PIPELINE.processor.pending() == 0)
        resume = time.perf_counter() - t_free
        assert otel_monitor.force_flush(10)
        report("1. disk full (" + ("tmpfs 2 MiB" if mounted else "max_page_count") + ")",
               made, db, resume, longest)
        otel_monitor.shutdown()
    finally:
        if mounted:
            subprocess.run(["umount", "-l", fs])


def store_replaced(tmp: str) -> None:
    db = os.path.join(tmp, "replaced.db")
    otel_monitor.configure(db_path=db, flush_interval_s=0.05)
    longest = timed_calls(1000)
    assert otel_monitor.force_flush(10)
    for suffix in ("", "-wal", "-shm"):
        os.remove(db + suffix)
    with open(db, "wb") as fh:
        fh.write(b"garbage\n" * 100)
    t_fault = time.perf_counter()
    longest = max(longest, timed_calls(1000, 1000))
    resume = wait(lambda: stored(db) > 0) + (time.perf_counter() - t_fault) * 0
    assert otel_monitor.force_flush(10)
    # made after the fault == stored in the new file (the old file's rows went with it)
    written, pending, dropped = PIPELINE.processor.accounts()
    rows = stored(db)
    print(f"{'2. store deleted, garbage in place':34s} made {1000:>7,} after the fault  "
          f"stored {rows:>7,}  lost (counted) {dropped}  pending {pending}  "
          f"made==stored+lost: {1000 == rows + dropped}  "
          f"resume {resume * 1000:,.0f} ms (fault to first row in the new file)  "
          f"longest call {longest * 1000:,.2f} ms  store_recreated "
          f"{PIPELINE.exporter.store_recreated}")
    otel_monitor.shutdown()


LOCKED_APP = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, sys.argv[3])
    import otel_monitor
    from otel_monitor import monitor
    from otel_monitor.pipeline import PIPELINE

    @monitor("faults")
    def work(i):
        return i

    longest = 0.0
    for i in range(1001):
        t0 = time.perf_counter()
        work(i)
        longest = max(longest, time.perf_counter() - t0)
    open(sys.argv[2], "w").close()  # calls done
    otel_monitor.force_flush(120)
    done = time.perf_counter()
    print(json.dumps(dict(longest=longest, accounts=PIPELINE.processor.accounts(),
                          flushed_at=time.time())))
""")


def locked_start(tmp: str, lock_s: float) -> None:
    from exporters import SpanStore
    db = os.path.join(tmp, "locked.db")
    SpanStore(db).close()
    app = os.path.join(tmp, "locked_app.py")
    with open(app, "w") as fh:
        fh.write(LOCKED_APP)
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    marker = os.path.join(tmp, "calls-done")
    env = dict(os.environ, OTEL_MONITOR_DB=db, OTEL_MONITOR_FLUSH_INTERVAL_S="0.05")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, app, db, marker, root], env=env,
                            stdout=subprocess.PIPE, text=True)
    t_start = time.time()
    while not os.path.exists(marker):
        time.sleep(0.01)
    calls_done_while_locked = True
    time.sleep(max(0.0, lock_s - (time.time() - t_start)))
    con.execute("COMMIT")
    released = time.time()
    con.close()
    out = json.loads(proc.communicate(timeout=300)[0].splitlines()[-1])
    written, pending, dropped = out["accounts"]
    rows = stored(db)
    print(f"{f'3. store locked {lock_s:g} s at start':34s} made {1001:>7,}  stored {rows:>7,}  "
          f"lost (counted) {dropped}  pending {pending}  "
          f"made==stored+lost: {1001 == rows + dropped}  "
          f"resume {(out['flushed_at'] - released) * 1000:,.0f} ms (release to flushed)  "
          f"longest call {out['longest'] * 1000:,.2f} ms (first call included; all "
          f"made while locked: {calls_done_while_locked})")


def overload(tmp: str, seconds: float) -> None:
    db = os.path.join(tmp, "overload.db")
    otel_monitor.configure(db_path=db, flush_interval_s=0.05, queue_size=5_000)
    made, longest, health_seen = 0, 0.0, []
    end = time.perf_counter() + seconds
    next_read = time.perf_counter() + 0.5
    while time.perf_counter() < end:
        longest = max(longest, timed_calls(1000, made))
        made += 1000
        if time.perf_counter() >= next_read:
            next_read += 0.5
            con = sqlite3.connect(db, timeout=30)
            row = con.execute("SELECT dropped, queue_depth FROM health WHERE pid = ?",
                              (os.getpid(),)).fetchone()
            con.close()
            if row:
                health_seen.append(row[0])
    assert otel_monitor.force_flush(30)
    report(f"6. overload {seconds:g} s, queue 5,000", made, db, None, longest,
           f" health 'dropped' read during it: {health_seen[:3]}...{health_seen[-1:]}")
    otel_monitor.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lock-s", type=float, default=35.0)
    ap.add_argument("--overload-s", type=float, default=3.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        disk_full(tmp)
        store_replaced(tmp)
        overload(tmp, args.overload_s)
        locked_start(tmp, args.lock_s)


if __name__ == "__main__":
    main()
