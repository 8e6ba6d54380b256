"""Fault injection through the real decorator, each in its own process (issue 10):
recording never stops silently, and every call is stored or counted as lost."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# -- 3. a store locked at start-up -----------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sqlite3, sys, time
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.execute("COMMIT")
""")

APP = textwrap.dedent("""
    import json, sqlite3, sys, time
    import otel_monitor
    from otel_monitor import monitor

    db, how, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def lock_held():
        con = sqlite3.connect(db, timeout=0, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            con.close()

    @monitor("faults")
    def work(i):
        return i

    longest = 0.0
    if how == "configure":  # explicit: must neither block on the lock nor raise
        t0 = time.perf_counter()
        otel_monitor.configure(db_path=db, flush_interval_s=0.05)
        longest = time.perf_counter() - t0
    for i in range(calls):
        t0 = time.perf_counter()
        work(i)  # the first one configures from the environment (implicit start)
        longest = max(longest, time.perf_counter() - t0)
    held_after_calls = lock_held()
    flushed_while_locked = otel_monitor.force_flush(0.2)
    flushed = otel_monitor.force_flush(120)
    from otel_monitor.pipeline import PIPELINE
    p = PIPELINE.processor
    written, pending, dropped = p.accounts()
    print(json.dumps(dict(made=calls, held_after_calls=held_after_calls,
                          flushed_while_locked=flushed_while_locked, flushed=flushed,
                          written=written, pending=pending, dropped=dropped,
                          longest_call_s=longest)))
""")


def _env(db: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_MONITOR_", "OTEL_EXPORTER_OTLP"))}
    env.update(PYTHONPATH=str(ROOT), OTEL_MONITOR_DB=str(db),
               OTEL_MONITOR_FLUSH_INTERVAL_S="0.05")
    return env


def test_a_store_locked_for_35_s_at_start_up_never_blocks_calls_and_loses_none(tmp_path):
    db = tmp_path / "store.db"
    from exporters import SpanStore
    SpanStore(db).close()
    (tmp_path / "holder.py").write_text(HOLDER)
    (tmp_path / "app.py").write_text(APP)
    holder = subprocess.Popen([sys.executable, str(tmp_path / "holder.py"), str(db), "35"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        apps = {how: subprocess.Popen([sys.executable, str(tmp_path / "app.py"), str(db),
                                       how, "1001"], stdout=subprocess.PIPE, text=True,
                                      env=_env(db))
                for how in ("implicit", "configure")}
        results = {how: json.loads(app.communicate(timeout=180)[0].splitlines()[-1])
                   for how, app in apps.items()}
    finally:
        holder.wait(timeout=60)
    con = sqlite3.connect(db)
    stored = con.execute("SELECT count(*) FROM spans").fetchone()[0]
    con.close()
    for how, r in results.items():
        print(how, r)
        # Every call (and configure) returned while the other process still held the lock.
        assert r["held_after_calls"] is True, how
        assert r["flushed_while_locked"] is False, how  # not in the store yet: not True
        assert r["flushed"] is True, how
        assert (r["written"], r["pending"], r["dropped"]) == (r["made"], 0, 0), how
    assert stored == sum(r["made"] for r in results.values())


# -- 5. calls at interpreter exit -----------------------------------------------------------

EXIT_APP = textwrap.dedent("""
    import atexit, sys
    import otel_monitor
    from otel_monitor import monitor

    @monitor("exit")
    def work(i):
        return i

    def early_handler():  # registered before configure: runs after the monitor's own
        for i in range(50):
            work(("atexit", i))

    atexit.register(early_handler)
    otel_monitor.configure(db_path=sys.argv[1], flush_interval_s=0.05)

    for i in range(100):
        work(i)
    # The exit handlers run here as at exit (CPython gives no guarantee that a module
    # global's __del__ runs at all, so a finaliser's calls are made by hand after them).
    atexit._run_exitfuncs()
    for i in range(7):  # after the final flush: as a finaliser at module teardown
        work(("finaliser", i))
""")


def test_calls_made_at_exit_are_recorded_or_counted_as_lost(tmp_path):
    db = tmp_path / "store.db"
    (tmp_path / "exit_app.py").write_text(EXIT_APP)
    done = subprocess.run([sys.executable, str(tmp_path / "exit_app.py"), str(db)],
                          env=_env(db), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    con = sqlite3.connect(db)
    try:
        stored = con.execute("SELECT count(*) FROM spans").fetchone()[0]
        dropped = con.execute("SELECT sum(dropped) FROM health").fetchone()[0]
    finally:
        con.close()
    made = 100 + 50 + 7
    # The atexit handler's calls are recorded (the monitor's flush runs last);
    # the finaliser's, made after it, are counted as lost.
    assert stored == 150
    assert (stored, dropped) == (150, made - 150)


# -- 6. health during a sustained overload ----------------------------------------------------

FLOOD = textwrap.dedent("""
    import sys, time
    import otel_monitor
    from otel_monitor import monitor

    db, seconds = sys.argv[1], float(sys.argv[2])
    # The default queue (100,000) is deeper than one batch: the writer drains batch after
    # batch while the caller refills it.
    otel_monitor.configure(db_path=db, flush_interval_s=0.05)

    @monitor("flood")
    def work(i):
        return i

    print("flooding", flush=True)
    calls, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:  # one thread saturating a core with monitored calls
        for i in range(1000):
            work(i)
        calls += 1000
    print("done", calls, flush=True)
    otel_monitor.force_flush(30)
    print("flushed", flush=True)
""")


def _health(db: Path, pid: int) -> tuple[int, int] | None:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = con.execute("SELECT updated_ns, dropped FROM health WHERE pid = ?",
                          (pid,)).fetchone()
    except sqlite3.OperationalError:  # not created yet
        return None
    finally:
        con.close()
    return row


def test_health_is_written_during_a_sustained_overload_with_the_drops_so_far(tmp_path):
    """Issue 10, case 6: a 10 s overload used to leave the health row at dropped 0 until
    the writer caught up. Read from another process while the flood still runs, the row
    must move on, its drop count growing, and at the end count every call not stored."""
    db = tmp_path / "flood.db"
    flood = subprocess.Popen([sys.executable, "-c", FLOOD, str(db), "10"], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)},
                             stdout=subprocess.PIPE, text=True)
    try:
        assert flood.stdout.readline().strip() == "flooding"
        seen: list[tuple[int, int]] = []
        while flood.poll() is None:
            row = _health(db, flood.pid)
            if row is not None and (not seen or row != seen[-1]):
                seen.append(row)
            if len(seen) >= 4:
                break
            time.sleep(0.2)
        still_flooding = flood.poll() is None
        done = flood.stdout.readline().split()
        assert done[0] == "done"
        calls = int(done[1])
        assert flood.stdout.readline().strip() == "flushed"
        assert flood.wait(60) == 0
    finally:
        if flood.poll() is None:
            flood.kill()
    # Four distinct health rows were read while the process was still flooding.
    assert still_flooding and len(seen) >= 4, seen
    drops = [d for _, d in seen]
    assert drops == sorted(drops) and drops[-1] > drops[0], seen
    stored = sqlite3.connect(db).execute("SELECT count(*) FROM spans").fetchone()[0]
    final = _health(db, flood.pid)
    assert stored + final[1] == calls
