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


def _fork_a_child_that_exits(pids: list[int]) -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    pids.append(pid)


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


def test_forks_while_a_thread_opens_stores_and_writes_transactions_break_none(tmp_path):
    """A store opened while a fork is being prepared is a store the fork must wait out
    too: the fork released a transaction lock it had not taken (that thread's, mid-open:
    ``RuntimeError: release unlocked lock``), and a transaction begun in that window could
    be cut in two by the fork's closing of its connection."""
    db_path = str(tmp_path / "fork-tx.db")
    SpanStore(db_path).close()
    stop = threading.Event()
    errors: list[BaseException] = []
    done = [0]

    def opener_writer() -> None:  # open, write two rows in one transaction, close
        while not stop.is_set():
            try:
                db = Database(db_path)
                with db.transaction():
                    for part in ("a", "b"):
                        db.execute_write("INSERT INTO meta(key, value) VALUES (?, 'x')",
                                         (f"{part}-{done[0]}",))
                db.close()
                done[0] += 1
            except BaseException as exc:  # noqa: BLE001 (any is the defect)
                errors.append(exc)
                return

    writer = threading.Thread(target=opener_writer, daemon=True)
    writer.start()
    try:
        for _ in range(60):
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            assert _wait_exit(pid, 10) == 0
    finally:
        stop.set()
        writer.join(10)
    assert not errors, repr(errors[0])
    db = Database(db_path, readonly=True)
    keys = {r[0] for r in db.execute("SELECT key FROM meta WHERE key LIKE 'a-%' "
                                     "OR key LIKE 'b-%'")}
    db.close()
    assert keys == {f"{p}-{i}" for i in range(done[0]) for p in "ab"}
    assert done[0] > 0


def test_an_exception_between_begin_and_its_count_leaves_no_transaction_open_or_counted(
        tmp_path, monkeypatch):
    """A KeyboardInterrupt (or an application handler's SystemExit) can land between any
    two steps: between BEGIN and the gate counting it, the transaction stayed open,
    uncounted (the store locked for every other connection, a fork free to cut it);
    between the count and the block that ends it, it stayed counted (the next fork
    waited for ever)."""
    from exporters import database

    db_path = str(tmp_path / "interrupted.db")
    db = Database(db_path)
    began = database._GATE.transaction_began

    def interrupted_after_begin(*owner):
        raise KeyboardInterrupt

    def interrupted_after_count(*owner):
        began(*owner)
        raise KeyboardInterrupt

    for step in (interrupted_after_begin, interrupted_after_count):
        monkeypatch.setattr(database._GATE, "transaction_began", step)
        try:
            with db.transaction():
                pass
        except KeyboardInterrupt:
            pass
        monkeypatch.setattr(database._GATE, "transaction_began", began)
        assert not db._conn.in_transaction, step.__name__
        other = Database(db_path, busy_timeout_s=1)  # the store is not held locked
        other.execute_write("INSERT INTO meta(key, value) VALUES (?, 'x')", (step.__name__,))
        other.close()
        pids: list[int] = []
        forker = threading.Thread(target=_fork_a_child_that_exits, args=(pids,), daemon=True)
        forker.start()
        forker.join(10)
        assert not forker.is_alive(), f"{step.__name__}: the next fork waits for ever"
        assert _wait_exit(pids[0], 10) == 0
    db.close()
