"""Database: the one owner of SQLite in otel-monitor.

Every connection to a store is opened here and every statement runs through here
(the store, its state tables, the UI's queries, the metrics, OTLP ingest, the CLI).
At this boundary SQLite's errors become otel-monitor's (``exporters.errors``):
``StoreBusy`` (locked), ``StoreFull``, ``SchemaError`` (not a store we can use),
``RowRejected`` (a constraint refused a row), else ``StoreError``; each names the
file and keeps SQLite's error as its ``__cause__``.

Writes are short ``BEGIN IMMEDIATE`` transactions that wait for other writers by
polling (``_begin``), and batches go in as multi-row ``INSERT`` statements (up to
2,000 rows each). That matters for more than speed: the stdlib driver releases the
GIL once per statement step, so ``executemany`` hands the GIL back and forth once per
row, and a writer thread then starves behind a CPU-bound caller (it waits a whole
switch interval, 5 ms, for each row). A statement of 2,000 rows releases it once.

One Database per thread: its connection is not shared between threads (writes are
serialised by a lock, so a writer shared under its owner's lock is safe too).
"""
from __future__ import annotations

import contextlib
import functools
# Imported before our at-fork hook is registered, so logging's (which takes its lock)
# runs after ours: a fork waiting at the gate must not hold it, or a transaction that
# logs would never end.
import logging  # noqa: F401
import os
import sqlite3
import threading
import time
import weakref
from typing import Any, Iterator, Sequence

from .errors import RowRejected, SchemaError, StepBudgetExceeded, StoreBusy, StoreError, StoreFull
from .schema import TABLES, ensure_schema

MIN_SQLITE = (3, 38, 0)  # JSON functions built in (used by retention)
_STEP_CHECK = 1_000      # fewest SQLite steps between checks of a read's step budget
# Each check is a call into Python: SQLite's thread takes the GIL back for it, and beside
# a busy Python thread waits up to the switch interval (5 ms) each time (a check every
# 1,000 steps made a 30 ms read take 3.1 s). So a read checks at most this many times,
# and stops within 1/_BUDGET_CHECKS past its budget.
_BUDGET_CHECKS = 16

Row = sqlite3.Row  # what ``execute`` returns: by index or by column name


def _add_functions(conn: sqlite3.Connection) -> None:
    # The 8 -> 9 migration stores each trace id as its bytes (SQLite 3.40 has no unhex).
    conn.create_function("otel_monitor_unhex", 1, bytes.fromhex, deterministic=True)


@functools.lru_cache(maxsize=1)
def _new_store_tables() -> str:
    """The tables and indexes of a new store: those the migrations leave (schema.TABLES,
    run in an empty in-memory database and read back), made directly, so a new store
    holds no pages freed by the tables version 9 rebuilds."""
    conn = sqlite3.connect(":memory:")
    try:
        _add_functions(conn)
        conn.executescript(TABLES)
        return "".join(f"{sql};\n" for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid"))
    finally:
        conn.close()


@functools.lru_cache(maxsize=64)
def _insert_sql(table: str, columns: tuple[str, ...], rows: int) -> str:
    """``INSERT … SELECT`` from a multi-row VALUES list; the first parameter is the
    batch's base row id, added to the batch-relative index in the first column."""
    picks = ", ".join(["column1 + ?"] + [f"column{i}" for i in range(2, len(columns) + 1)])
    row = "(" + ",".join("?" * len(columns)) + ")"
    return (f"INSERT INTO {table}({', '.join(columns)}) SELECT {picks} "
            f"FROM (VALUES {','.join([row] * rows)})")


class Database:
    """One connection to the store at ``path``: read-only (``mode=ro``, never creates,
    never migrates), or read-write (created if missing, schema checked and migrated,
    WAL)."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False,
                 busy_timeout_s: float = 30.0) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreError(
                f"SQLite {sqlite3.sqlite_version} is too old; otel-monitor needs "
                f"{'.'.join(map(str, MIN_SQLITE))} or newer"
            )
        self.path = os.fspath(path)
        self.readonly = readonly
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()    # serialises this connection's transactions
        self._tx_depth = 0                # transaction() nesting (under _lock)
        self._closed = False
        self._open()
        self._conn.row_factory = sqlite3.Row
        try:
            self._prepare()
        except (StoreBusy, StoreFull, SchemaError):
            self.close()
            raise
        except StoreError as exc:  # anything else SQLite says of the file on opening
            self.close()
            raise SchemaError(f"{self.path}: cannot open as an otel-monitor store: "
                              f"{exc.__cause__ or exc}") from exc.__cause__
        except BaseException:
            self.close()
            raise
        self._max_params = self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)

    def _open(self) -> None:
        """Connect, and be known to the fork handlers in the same step: a connection a
        fork could not see would be inherited open by the child."""
        with _GATE:
            self._conn = self._connect_now()
            _OPEN_DATABASES.add(self)

    def _connect_now(self) -> sqlite3.Connection:
        try:
            if self.readonly:
                if not os.path.exists(self.path):
                    raise StoreError(
                        f"{self.path}: no such store (nothing has been recorded yet?)")
                return sqlite3.connect("file:" + self.path + "?mode=ro", uri=True,
                                       timeout=self.busy_timeout_s, isolation_level=None,
                                       check_same_thread=False)
            folder = os.path.dirname(os.path.abspath(self.path))
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as exc:  # a file in the way, no permission
                raise StoreError(f"{self.path}: cannot make its folder {folder}: "
                                 f"{exc.strerror or exc}") from exc
            # No busy handler: a write waits for the lock in _begin(), polling outside
            # SQLite; SQLite's handler would wait inside it, and hold up a fork.
            return sqlite3.connect(self.path, timeout=0,
                                   isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc

    def _prepare(self) -> None:
        _add_functions(self._conn)
        if not self.readonly:
            # WAL from the start for a new file (so processes creating one store together
            # do not contend for switching it), but only after the schema check for an
            # existing one: a refused file must stay exactly as it was.
            if os.path.getsize(self.path) == 0:
                self._switch_to_wal()
            with self.transaction():
                ensure_schema(self, self.path)
            self._switch_to_wal()
        try:
            with _GATE:
                self._tune()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc

    def _tune(self) -> None:
        """The connection's own settings (not kept in the file)."""
        for pragma in ("PRAGMA synchronous=NORMAL", "PRAGMA temp_store=MEMORY",
                       "PRAGMA cache_size=-32768"):  # 32 MiB
            self._conn.execute(pragma)
        if not self.readonly:
            self._conn.execute("PRAGMA busy_timeout = 0")  # writes wait in _begin()

    def _switch_to_wal(self) -> None:
        """journal_mode=WAL (a no-op once the file is in WAL). Switching needs the file
        to itself, and SQLite answers 'locked' at once rather than waiting: retry."""
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                with _GATE:
                    mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                break
            except sqlite3.Error as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise _translate(exc, self.path) from exc
                time.sleep(0.01)
        if mode.lower() != "wal":
            raise StoreError(f"{self.path}: could not switch to WAL (journal_mode={mode})")

    def close(self) -> None:
        with _GATE:  # (both in one step: a fork between them would leave it open)
            self._closed = True
            self._conn.close()

    def _close_for_fork(self) -> None:
        if not self._closed:
            self._conn.close()

    def _reopen_after_fork(self) -> None:
        """A fresh connection in place of the one closed for the fork (a store gone
        meanwhile: the closed one stays, and its next use raises StoreError)."""
        if self._closed:
            return
        try:  # (the gate is closed: this thread is the only one in SQLite)
            conn = self._connect_now()
            conn.row_factory = sqlite3.Row
            self._conn = conn
            self._tune()
        except (StoreError, sqlite3.Error):
            return

    # -- reads ----------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = (), *,
                max_steps: int | None = None) -> list[sqlite3.Row]:
        """Run one parameterised statement and return its rows. ``max_steps``: stop it
        with ``StepBudgetExceeded`` once SQLite has taken about that many steps (counted,
        not timed, so the outcome does not depend on the machine's load)."""
        if max_steps is None:
            try:
                with _GATE:
                    return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc
        taken = 0
        every = max(_STEP_CHECK, max_steps // _BUDGET_CHECKS)

        def over_budget() -> bool:
            nonlocal taken
            taken += every
            return taken > max_steps

        try:
            with _GATE:
                self._conn.set_progress_handler(over_budget, every)
                try:
                    return self._conn.execute(sql, params).fetchall()
                finally:
                    self._conn.set_progress_handler(None, 0)
        except sqlite3.Error as exc:
            if taken > max_steps:
                raise StepBudgetExceeded(
                    f"{self.path}: query stopped after {max_steps:,} steps") from exc
            raise _translate(exc, self.path) from exc

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        """The first column of the first row (None when there is no row)."""
        rows = self.execute(sql, params)
        return rows[0][0] if rows else None

    # -- writes ---------------------------------------------------------------

    def execute_write(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one write statement, in the current transaction or in its own; returns the
        number of rows it changed."""
        with self.transaction():
            try:
                with _GATE:
                    return self._conn.execute(sql, params).rowcount
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc

    def execute_write_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one write statement per row of parameters, all in one transaction (the
        current one, or its own). Nothing happens for no rows."""
        if not rows:
            return
        with self.transaction():
            try:
                with _GATE:
                    self._conn.executemany(sql, rows)
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc

    def insert_rows(self, table: str, columns: tuple[str, ...], flat: list[Any],
                    base: int = 0) -> None:
        """Insert rows given flat (``columns`` values row after row) with many rows per
        statement; ``base`` is added to each row's first value. In the current
        transaction, or in its own."""
        width = len(columns)
        rows_per = max(1, min(2000, (self._max_params - 1) // width))
        step = rows_per * width
        with self.transaction():
            try:
                for offset in range(0, len(flat), step):
                    part = flat[offset:offset + step]
                    sql = _insert_sql(table, columns, len(part) // width)
                    with _GATE:
                        self._conn.execute(sql, [base, *part])
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc

    def new_store_tables(self) -> str:
        """The tables and indexes of a new store (see ``_new_store_tables``)."""
        return _new_store_tables()

    def nested(self) -> bool:
        """Whether the current transaction() is inside another one of this Database
        (whose caller may still roll it back)."""
        return self._tx_depth > 1

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Database]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT, ROLLBACK on an exception).
        Inside one, the writes of this Database join it rather than nesting."""
        with self._lock:
            if self._tx_depth:
                self._tx_depth += 1
                try:
                    yield self
                finally:
                    self._tx_depth -= 1
                return
            self._tx_depth = 1
            try:  # (BEGIN inside: an exception between any two steps still ends it)
                self._begin()
                yield self
                self._end("COMMIT")
            except BaseException:
                if self._conn.in_transaction:  # (a failed COMMIT may have ended it)
                    self._end("ROLLBACK")
                raise
            finally:
                self._tx_depth = 0
                _GATE.transaction_ended(self)

    def _end(self, statement: str) -> None:
        try:
            with _GATE:
                self._conn.execute(statement)
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc

    def _begin(self) -> None:
        """BEGIN IMMEDIATE, waiting for other writers here rather than in SQLite's busy
        handler (whose sleeps grow to 100 ms): short polls. The gate counts the
        transaction in the same step as it begins, so a fork never falls between."""
        deadline = time.monotonic() + self.busy_timeout_s
        delay = 0.001
        while True:
            try:
                with _GATE:
                    self._conn.execute("BEGIN IMMEDIATE")
                    _GATE.transaction_began(self)
                return
            except sqlite3.Error as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise _translate(exc, self.path) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    # -- schema ---------------------------------------------------------------

    @staticmethod
    def split_script(script: str) -> list[str]:
        """A multi-statement script as its statements (comment lines between them
        dropped), for running them one by one inside a transaction: ``executescript``
        would COMMIT first."""
        statements, buf = [], ""
        for line in script.splitlines(keepends=True):
            if line.strip().startswith("--") and not buf.strip():
                continue
            buf += line
            if sqlite3.complete_statement(buf):
                statements.append(buf.strip())
                buf = ""
        if buf.strip():
            statements.append(buf.strip())
        return statements


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def _translate(exc: sqlite3.Error, path: str) -> StoreError:
    """SQLite's error as one of ours, naming the file."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    message = f"{path}: {exc}"
    if _is_busy(exc):
        return StoreBusy(message)
    if primary == sqlite3.SQLITE_FULL:
        return StoreFull(message)
    if primary in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return SchemaError(message)
    if isinstance(exc, sqlite3.IntegrityError):
        return RowRejected(message)
    return StoreError(message)


_OPEN_DATABASES: "weakref.WeakSet[Database]" = weakref.WeakSet()


class _SqliteGate:
    """Counts the threads inside SQLite and the write transactions open; a fork waits
    until there are none of either, and lets none begin until its connections are
    reopened.

    SQLite keeps process-wide state for each open file: the unix VFS's mutex (taken while
    a connection opens, closes or locks a file) and each file's lock and shared-memory
    bookkeeping. A child inherits that state as it was at the fork, describing locks the
    child does not hold (POSIX locks are not inherited): a child whose parent had a thread
    inside SQLite hung on that mutex opening the store, and one whose parent later closed
    its last connection lost the WAL index under it (SIGBUS). So at a fork no thread is
    inside SQLite and every connection is closed; both sides then reopen theirs. A
    transaction open at that moment would be cut in two by the closing: a thread inside
    one goes on entering SQLite while a fork waits for it to end."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._inside = 0
        self._transactions: dict[Database, int] = {}  # open ones -> their thread's id
        self._forking = False

    def __enter__(self) -> None:
        with self._cond:
            while self._forking and threading.get_ident() not in self._transactions.values():
                self._cond.wait()
            self._inside += 1

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._inside -= 1
            if not self._inside:
                self._cond.notify_all()

    def transaction_began(self, db: Database) -> None:
        """Called inside the gate, once BEGIN has succeeded."""
        with self._cond:
            self._transactions[db] = threading.get_ident()

    def transaction_ended(self, db: Database) -> None:
        """Called once the transaction is over, or did not begin (then a no-op)."""
        with self._cond:
            if self._transactions.pop(db, None) is not None and not self._transactions:
                self._cond.notify_all()

    def close(self) -> None:
        """Wait until no thread is inside SQLite and no transaction is open; keep it so
        (held through the fork)."""
        self._cond.acquire()
        self._forking = True
        while self._inside or self._transactions:
            self._cond.wait()

    def open_in_parent(self) -> None:
        self._forking = False
        self._cond.notify_all()
        self._cond.release()

    def open_in_child(self) -> None:
        # the parent's other threads (inside, in a transaction, waiting) do not exist here
        self.__init__()  # type: ignore[misc]


_GATE = _SqliteGate()


def _before_fork() -> None:
    """Wait until no thread is inside SQLite and no transaction is open (``_SqliteGate``);
    close every connection."""
    _GATE.close()
    for db in list(_OPEN_DATABASES):
        db._close_for_fork()


def _after_fork(in_child: bool) -> None:
    for db in list(_OPEN_DATABASES):
        db._reopen_after_fork()
    if in_child:
        _GATE.open_in_child()
    else:
        _GATE.open_in_parent()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork,
                        after_in_parent=lambda: _after_fork(in_child=False),
                        after_in_child=lambda: _after_fork(in_child=True))
