"""A fork while another thread is inside SQLite (issue 7's fork safety, found by CI): the
child must be able to open and write the store. SQLite's process-wide mutexes (the unix
VFS's, taken while a connection opens, closes or locks a file) held by a parent thread
at the fork would stay held in the child for ever, and its first open would hang."""
from __future__ import annotations

import os
import threading
import time

from exporters.database import Database
from exporters.store import SpanStore


def _child_writes(db_path: str) -> None:
    code = 1
    try:
        store = SpanStore(db_path)
        store.db.execute_write("INSERT INTO meta(key, value) VALUES (?, ?) "
                               "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                               (f"child-{os.getpid()}", "ok"))
        store.close()
        code = 0
    finally:
        os._exit(code)


def _wait_exit(pid: int, timeout_s: float) -> int | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


def test_a_child_forked_while_threads_open_and_read_the_store_can_write_it(tmp_path):
    db_path = str(tmp_path / "fork.db")
    SpanStore(db_path).close()
    stop = threading.Event()

    def busy_reader() -> None:  # opens, reads, closes: in and out of SQLite all the time
        while not stop.is_set():
            db = Database(db_path, readonly=True)
            db.execute("SELECT count(*) FROM spans")
            db.close()

    readers = [threading.Thread(target=busy_reader, daemon=True) for _ in range(2)]
    for t in readers:
        t.start()
    hung = 0
    try:
        for _ in range(60):
            pid = os.fork()
            if pid == 0:
                _child_writes(db_path)
            code = _wait_exit(pid, 10)
            if code is None:
                hung += 1
            else:
                assert code == 0
    finally:
        stop.set()
        for t in readers:
            t.join(10)
    assert hung == 0, f"{hung} of 60 forked children hung opening the store"
