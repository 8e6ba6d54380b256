"""Workloads the exporter tests run in real child processes.

    python workload.py calls TAG N          N monitored calls, then a normal exit (no flush)
    python workload.py fork TAG N           N calls, os.fork(); parent and child N more each
    python workload.py mp METHOD TAG N K    N calls, then K multiprocessing children (METHOD:
                                            fork or spawn) making N calls each
    python workload.py pool METHOD TAG      a ``with Pool(3) as pool: pool.map(...)`` of 12 jobs of
                                            50 calls each (the context manager terminates
                                            the workers on exit)
    python workload.py sigterm-in-flush     a forked child gets SIGTERM while its main thread is
                                            inside force_flush (as in a multiprocessing exit
                                            finalizer); the parent reports how it ended
    python workload.py sigterm-main-blocked a forked child's main thread waits on a
                                            multiprocessing lock that is never released when
                                            SIGTERM comes, and cannot run a Python handler
                                            (SIGTERM masked on it, as when the signal lands
                                            just before the wait); the parent reports how
                                            the child ended
    python workload.py sigterm-reconfigured the same, in a child that configures again after
                                            the fork (its new writer is the one to flush)
    python workload.py fork-while-locked    os.fork() while another connection holds the store's
                                            write lock for 2 s and the writer waits on it
    python workload.py forkbusy K           a thread keeps the writer busy while K children are
                                            forked; each makes 10 calls and force_flushes
    python workload.py reader STOPFILE      poll the store's row counts until STOPFILE exists

Every call records one unique INPUT value (``key``), so a test can count each call's
rows exactly: a key stored twice is a double, a key missing is a loss. The store is
the one named by OTEL_MONITOR_DB (the first monitored call configures from it),
unless CONFIGURE=1, when the parent calls ``otel_monitor.configure`` itself, or
CONFIGURE=import, when every process configures as this module is imported (as a script
that calls ``configure`` at its top does: a spawned worker then configures while its
bootstrap imports the main module).
"""
from __future__ import annotations

import os
import sqlite3
import sys
import time

import otel_monitor
from otel_monitor import monitor


@monitor("workload")
def record(key: str) -> int:
    return len(key)


def calls(tag: str, n: int) -> None:
    for i in range(n):
        record(f"{tag}-{i}")


def pool_job(tag: str) -> str:
    calls(tag, 50)
    return tag


def _pending() -> int:
    """Calls recorded but not yet written (a premise the fork tests check: the parent
    still has calls queued when it forks)."""
    from otel_monitor.pipeline import PIPELINE

    return len(PIPELINE.processor.queue) if PIPELINE.processor is not None else 0


def _wait_for(pid: int, timeout_s: float) -> int | str:
    """The child's exit status (negative: the signal it died of), or "hung" (then it is
    killed) if it has not ended within ``timeout_s``."""
    import signal

    deadline = time.monotonic() + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "hung"
        time.sleep(0.05)


if os.environ.get("CONFIGURE") == "import":
    otel_monitor.configure(db_path=os.environ["OTEL_MONITOR_DB"])


def _configure_if_asked() -> None:
    if os.environ.get("CONFIGURE") == "1":
        otel_monitor.configure(db_path=os.environ["OTEL_MONITOR_DB"])


def main(argv: list[str]) -> int:
    mode = argv[0]
    if mode == "calls":
        _configure_if_asked()
        calls(argv[1], int(argv[2]))
        return 0  # no force_flush, no shutdown: the exit must write what is queued
    if mode == "fork":
        _configure_if_asked()
        tag, n = argv[1], int(argv[2])
        calls(f"{tag}-parent-before", n)  # still queued when the fork happens
        print(f"pending_at_fork={_pending()}", flush=True)
        pid = os.fork()
        if pid == 0:
            calls(f"{tag}-child", n)
            sys.exit(0)  # a normal exit of the child: atexit runs
        calls(f"{tag}-parent-after", n)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    if mode == "mp":
        import multiprocessing

        _configure_if_asked()
        method, tag, n, k = argv[1], argv[2], int(argv[3]), int(argv[4])
        calls(f"{tag}-parent-before", n)  # still queued when the children fork
        print(f"pending_at_fork={_pending()}", flush=True)
        ctx = multiprocessing.get_context(method)
        children = [ctx.Process(target=calls, args=(f"{tag}-child{j}", n)) for j in range(k)]
        for child in children:
            child.start()
        calls(f"{tag}-parent-during", n)
        for child in children:
            child.join(60)
        return max(abs(child.exitcode or 0) for child in children)
    if mode == "pool":
        import multiprocessing

        _configure_if_asked()
        method, tag = argv[1], argv[2]
        with multiprocessing.get_context(method).Pool(3) as pool:
            done = pool.map(pool_job, [f"{tag}-job{j}" for j in range(12)])
        print(f"jobs={len(done)}", flush=True)
        return 0
    if mode == "sigterm-in-flush":
        import inspect
        import signal
        import threading

        from otel_monitor.pipeline import PIPELINE

        _configure_if_asked()
        calls("parent", 5)
        pid = os.fork()
        if pid == 0:
            calls("child", 20)
            # Where a multiprocessing worker is when Pool.terminate() catches it exiting:
            # its exit finalizer is in force_flush, waking the writer thread, inside
            # Event.set with the event's lock held. A trace function sends SIGTERM right
            # there (the handler runs before Event.set returns).
            event_set = threading.Event.set
            source, first = inspect.getsourcelines(event_set)
            inside = first + next(i for i, line in enumerate(source) if "self._flag = True" in line)
            fired: list[int] = []

            def in_event_set(frame, event, arg):
                if event == "line" and frame.f_lineno == inside and not fired:
                    fired.append(1)
                    os.kill(os.getpid(), signal.SIGTERM)
                return in_event_set

            def trace(frame, event, arg):
                return in_event_set if frame.f_code is event_set.__code__ else None

            sys.settrace(trace)
            PIPELINE.processor.force_flush()  # what the multiprocessing exit finalizer runs
            sys.settrace(None)
            os._exit(0)
        print(f"child_status={_wait_for(pid, 5)}", flush=True)
        return 0
    if mode in ("sigterm-main-blocked", "sigterm-reconfigured"):
        import multiprocessing
        import signal

        _configure_if_asked()
        calls("parent", 5)
        reconfigure = mode == "sigterm-reconfigured"
        held = multiprocessing.Lock()
        held.acquire()  # by the parent, for good: what a terminated sibling leaves
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            if reconfigure:
                otel_monitor.configure(db_path=os.environ["OTEL_MONITOR_DB"])
            calls("child", 20)
            # A Python handler runs on the main thread only; here it never can: SIGTERM
            # lands on another thread while the main one waits in C (sem_wait).
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            os.write(ready_w, b"1")
            held.acquire()  # an idle Pool worker's wait for its task queue
            os._exit(0)
        os.read(ready_r, 1)
        os.kill(pid, signal.SIGTERM)
        print(f"child_status={_wait_for(pid, 20)}", flush=True)
        return 0
    if mode == "fork-while-locked":
        import threading

        db = os.environ["OTEL_MONITOR_DB"]
        otel_monitor.configure(db_path=db, flush_interval_s=0.05)
        calls("warm", 5)
        otel_monitor.force_flush()
        other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # e.g. another process writing for a while
        threading.Timer(2.0, lambda: other.execute("COMMIT")).start()
        calls("waiting", 5)
        time.sleep(0.3)  # the writer thread now waits for the lock
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        # Still inside the other connection's transaction: fork did not wait for it.
        print(f"lock_held_after_fork={int(other.in_transaction)}", flush=True)
        os.waitpid(pid, 0)
        return 0
    if mode == "forkbusy":
        import threading

        otel_monitor.configure(db_path=os.environ["OTEL_MONITOR_DB"], flush_interval_s=0.001)
        stop = threading.Event()

        def busy() -> None:  # the parent's writer is inside a write transaction most of the time
            n = 0
            while not stop.is_set():
                calls(f"bg{n}", 200)
                n += 1
                time.sleep(0.0005)

        thread = threading.Thread(target=busy)
        thread.start()
        time.sleep(0.3)
        children = []
        for k in range(int(argv[1])):
            pid = os.fork()
            if pid == 0:
                calls(f"kid{k}", 10)
                ok = otel_monitor.force_flush(timeout_s=3)
                print(f"kid{k} flushed={ok}", flush=True)
                os._exit(0 if ok else 3)
            children.append(pid)
            time.sleep(0.05)
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
        stop.set()
        thread.join()
        print(f"children={codes}", flush=True)
        return max(codes)
    if mode == "reader":
        stop_file = argv[1]
        db = os.environ["OTEL_MONITOR_DB"]
        polls = 0
        while not os.path.exists(stop_file):
            if os.path.exists(db):
                try:
                    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
                    try:
                        conn.execute("SELECT count(*) FROM spans").fetchone()
                        conn.execute("SELECT count(*) FROM data_trace").fetchone()
                    finally:
                        conn.close()
                    polls += 1
                except sqlite3.OperationalError as exc:
                    if "no such table" not in str(exc):  # the store is still being created
                        raise
            time.sleep(0.01)
        print(f"polls={polls}")
        return 0
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
