"""The API under load: 8 clients reading while another process records 5,000 calls/s.

    python benchmarks/bench_api_load.py [--seconds 20] [--clients 8] [--rate 5000]
        [--calls 2000000] [--db PATH]

``otel-monitor serve`` runs on a copy of bench_ui_queries.py's store (2,000,000 calls x
5 data rows over 6 hours, cached under the temp dir and generated first if missing; its
``cached_store``). Meanwhile:

- a recorder, a process of its own, makes ``--rate`` calls/s of a real ``@monitor``
  function (4 arguments and a return) into the same store through the decorator's own
  writer, counting the calls it made; at the end it flushes, and the calls stored under
  its process group are counted in SQLite: made - stored is the writer's loss (its
  retention is set past the store's oldest call: no purge of the cached store's old
  calls runs meanwhile);
- ``--clients`` client processes, each with one httpx keep-alive connection, ask back to
  back, for ``--seconds``, in turn: ``/api/rows`` with no filter, with a 1-hour
  ``from``/``to`` range, ``?process=``, ``?data=`` (a variable name), ``?errors_only=true``
  and ``?service=``, then ``/api/graph``, ``/api/health`` and ``/`` (the Dash page).

It prints, per endpoint and over all requests, the count, p50, p99 and max request time
and the errors (a status other than 200, or no answer), the p99 as a ratio to the
250 ms target (issue 19), the recorder's calls made, dropped and stored (lost), the
server's time over the run (per thread, /proc/<pid>/task/*/schedstat: on a CPU, and
runnable but waiting for one), the machine's busy time (/proc/stat) split into the
server, the clients, the recorder and the rest (other work; the parts and the total come
from different clocks, so a rest near 0 may print slightly negative), and the load
average before and after (the machine is shared: say so beside the figures).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # served, bench_ui_queries

TARGET_P99_MS = 250.0
GROUP = "apiload"  # the recorder's process group: its calls are counted by it
SERVICES = ("bench", "apiload")  # bench_ui_queries.py's calls', the recorder's
MAX_SECONDS = 300


# -- the recorder (a process of its own: ``--record``) ---------------------------------

def record(db: str, rate: int, seconds: float) -> None:
    """Make ``rate`` calls/s of a monitored function for ``seconds``; print one JSON
    line with the calls made, dropped, and the rate reached."""
    import otel_monitor
    from otel_monitor import monitor
    from otel_monitor.pipeline import PIPELINE

    @monitor(GROUP)
    def price(spot: float, strike: float, vol: float, t: float) -> float:
        return spot * 0.5 + strike * 0.25 + vol * t

    otel_monitor.configure(db_path=db)
    print("ready", flush=True)
    per_tick = max(1, rate // 1000)  # paced in 1 ms ticks
    made, t0 = 0, time.perf_counter()
    while made < rate * seconds:
        for i in range(per_tick):
            price(100.0 + made % 50, 95.0, 0.2 + i / 100, 0.5)
        made += per_tick
        wait = t0 + made / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
    achieved = made / (time.perf_counter() - t0)
    otel_monitor.force_flush()
    dropped = PIPELINE.processor.dropped
    otel_monitor.shutdown()
    print(json.dumps({"made": made, "dropped": dropped, "rate": achieved}), flush=True)


def stored_calls(db: str) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT count(*) FROM spans WHERE process_id IN "
                           "(SELECT id FROM processes WHERE process_group = ?)",
                           (GROUP,)).fetchone()[0]


# -- the clients -------------------------------------------------------------------------

def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def endpoint_mix(first_ns: int, last_ns: int, seed: int) -> list[tuple[str, Callable[[], str]]]:
    """(label, make the path) for each endpoint of the mix, in the order asked."""
    from bench_ui_queries import NAMES, PROCESSES

    rnd = random.Random(seed)
    hour = 3600 * 10**9

    def date_range() -> str:
        a = rnd.randrange(first_ns, max(first_ns + 1, last_ns - hour))
        return f"/api/rows?from={iso(a)}&to={iso(a + hour)}"

    return [
        ("rows", lambda: "/api/rows"),
        ("rows ?from&to (1 h)", date_range),
        ("rows ?process=", lambda: f"/api/rows?process={rnd.choice(PROCESSES)}"),
        ("rows ?data=", lambda: f"/api/rows?data={rnd.choice(NAMES)}"),
        ("rows ?errors_only=true", lambda: "/api/rows?errors_only=true"),
        # the store's service (its calls older than the recorder's) and the recorder's
        ("rows ?service=", lambda: f"/api/rows?service={rnd.choice(SERVICES)}"),
        ("graph", lambda: "/api/graph"),
        ("health", lambda: "/api/health"),
        ("/ (Dash page)", lambda: "/"),
    ]


def client(base: str, first_ns: int, last_ns: int, k: int, until: float,
           out: mp.Queue) -> None:
    """Ask the mix in turn (starting at endpoint ``k``) until ``until`` (monotonic)."""
    import httpx

    mix = endpoint_mix(first_ns, last_ns, seed=k)
    results: list[tuple[str, float, int]] = []  # (label, seconds, status; 0: no answer)
    i = k
    with httpx.Client(base_url=base, timeout=60) as http:
        while time.monotonic() < until:
            label, path = mix[i % len(mix)]
            i += 1
            url = path()
            t0 = time.perf_counter()
            try:
                status = http.get(url).status_code
            except httpx.HTTPError:
                status = 0
            results.append((label, time.perf_counter() - t0, status))
    out.put(results)


# -- where the server's time goes ------------------------------------------------------

def thread_times(pid: int) -> dict[int, tuple[float, float]]:
    """Each of ``pid``'s threads: tid -> (seconds on a CPU, seconds runnable but waiting
    for one), from /proc/<pid>/task/<tid>/schedstat."""
    times = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                on_cpu, waiting, _ = f.read().split()
        except (OSError, ValueError):
            continue
        times[int(tid)] = (int(on_cpu) / 1e9, int(waiting) / 1e9)
    return times


def time_split(before: dict, after: dict) -> tuple[int, float, float, list[float]]:
    """Over the run: threads, seconds on a CPU, seconds waiting for one, and each
    thread's seconds on a CPU (most first)."""
    on = {t: a[0] - before.get(t, (0.0, 0.0))[0] for t, a in after.items()}
    waiting = sum(a[1] - before.get(t, (0.0, 0.0))[1] for t, a in after.items())
    return len(after), sum(on.values()), waiting, sorted(on.values(), reverse=True)


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores; /proc/stat)."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def pct(sorted_s: list[float], q: float) -> float:
    return sorted_s[min(len(sorted_s) - 1, int(q * len(sorted_s)))] * 1000


# -- the run -------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0,
                    help=f"how long the clients ask (1-{MAX_SECONDS})")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rate", type=int, default=5000, help="the recorder's calls/s")
    ap.add_argument("--calls", type=int, default=2_000_000, help="the store's size")
    ap.add_argument("--db", default=None, help="the store to copy (default: the cache)")
    ap.add_argument("--record", nargs=3, metavar=("DB", "RATE", "SECONDS"),
                    help=argparse.SUPPRESS)  # the recorder subprocess
    args = ap.parse_args()
    if args.record:
        record(args.record[0], int(args.record[1]), float(args.record[2]))
        return 0
    if not 1 <= args.seconds <= MAX_SECONDS:
        ap.error(f"--seconds must be 1-{MAX_SECONDS}")
    from bench_ui_queries import cached_store
    from served import clean_env, otel_monitor_server

    source = cached_store(args.calls, args.db)
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "load.db")
        t0 = time.perf_counter()
        shutil.copyfile(source, db)  # (also brings it into the page cache)
        with sqlite3.connect(db) as con:
            first_ns, last_ns = con.execute("SELECT min(start_ns), max(start_ns) "
                                            "FROM spans").fetchone()
        # The cached store's calls are as old as the cache: the recorder's retention is
        # set past its oldest call, so that its purge (and archive) of hours of calls is
        # not part of the run, as it is not of a store in its steady state.
        retention_h = (time.time_ns() - first_ns) / 3600e9 + 1
        print(f"copied to {db} in {time.perf_counter() - t0:.1f} s; {os.cpu_count()} "
              f"cores (shared with other work); load average before "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        stderr = open(os.path.join(tmp, "serve.stderr"), "w+")
        with otel_monitor_server(db, stderr=stderr) as (base, pid):
            import httpx

            for _, path in endpoint_mix(first_ns, last_ns, seed=0):  # imports, caches
                httpx.get(base + path(), timeout=60)
            recorder = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--record", db,
                 str(args.rate), str(args.seconds + 2)],
                env={**clean_env(), "OTEL_SERVICE_NAME": SERVICES[1],
                     "OTEL_MONITOR_RETENTION_HOURS": str(retention_h)}, cwd=ROOT,
                stdout=subprocess.PIPE, text=True)
            if recorder.stdout.readline().strip() != "ready":
                raise SystemExit("the recorder did not start")
            ctx = mp.get_context("fork")
            out: mp.Queue = ctx.Queue()
            cpu0, machine0, ours0 = thread_times(pid), machine_busy_s(), os.times()
            rec0 = thread_times(recorder.pid)
            until = time.monotonic() + args.seconds
            clients = [ctx.Process(target=client, args=(base, first_ns, last_ns, k, until, out))
                       for k in range(args.clients)]
            for c in clients:
                c.start()
            results = [r for _ in clients for r in out.get(timeout=args.seconds + 600)]
            for c in clients:
                c.join()
            cpu1, machine1, clients_cpu = thread_times(pid), machine_busy_s(), os.times()
            recorder_s = time_split(rec0, thread_times(recorder.pid))[1]
            clients_s = (clients_cpu.children_user + clients_cpu.children_system
                         - ours0.children_user - ours0.children_system)
            report = json.loads(recorder.communicate(timeout=120)[0].strip().splitlines()[-1])
        stored = stored_calls(db)
        stderr.seek(0)
        errors_logged = stderr.read()
    load_after = os.getloadavg()

    by_label: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    for label, s, status in results:
        by_label[label].append(s)
        errors[label] += status != 200
    print(f"\n{args.clients} clients for {args.seconds:g} s; recorder at "
          f"{args.rate:,} calls/s; {args.calls:,}-call store")
    print(f"{'endpoint':26} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'errors':>6}")
    order = [label for label, _ in endpoint_mix(first_ns, last_ns, 0)]
    for label in order:
        s = sorted(by_label[label])
        if s:
            print(f"{label:26} {len(s):8} {pct(s, .5):8.1f} {pct(s, .99):8.1f} "
                  f"{s[-1] * 1000:8.1f} {errors[label]:6}")
    every = sorted(s for _, s, _ in results)
    total_errors = sum(errors.values())
    print(f"{'all':26} {len(every):8} {pct(every, .5):8.1f} {pct(every, .99):8.1f} "
          f"{every[-1] * 1000:8.1f} {total_errors:6}   "
          f"({len(every) / args.seconds:.1f} requests/s)")
    worst = max(order, key=lambda lb: pct(sorted(by_label[lb]), .99) if by_label[lb] else 0)
    print(f"\nrecorder: {report['made']:,} calls made at {report['rate']:,.0f} calls/s, "
          f"{report['dropped']} dropped, {stored:,} stored: lost {report['made'] - stored}")
    threads, on_cpu, waiting, per_thread = time_split(cpu0, cpu1)
    print(f"server over the run ({args.seconds:g} s): {on_cpu:.1f} s on a CPU, {waiting:.1f} s "
          f"runnable but waiting for a CPU; {threads} threads, the busiest "
          + ", ".join(f"{s:.1f}" for s in per_thread[:4]) + " s on a CPU")
    busy = machine1 - machine0
    print(f"machine: {busy:.1f} s busy of {os.cpu_count() * args.seconds:g} s "
          f"({os.cpu_count()} cores); the server {on_cpu:.1f} s, the clients {clients_s:.1f} s, "
          f"the recorder {recorder_s:.1f} s, the rest (other work) "
          f"{busy - on_cpu - clients_s - recorder_s:.1f} s")
    if errors_logged.strip():
        print("server stderr (last lines):\n  "
              + "\n  ".join(errors_logged.strip().splitlines()[-10:]))
    print(f"load average after {' '.join(f'{x:.2f}' for x in load_after)}")
    p99 = pct(every, .99)
    print(f"\np99 over all requests {p99:.0f} ms = {p99 / TARGET_P99_MS:.2f} x target "
          f"{TARGET_P99_MS:g} ms; worst endpoint {worst!r} p99 "
          f"{pct(sorted(by_label[worst]), .99):.0f} ms = "
          f"{pct(sorted(by_label[worst]), .99) / TARGET_P99_MS:.2f} x target; "
          f"errors {total_errors}; writer lost {report['made'] - stored}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
