"""SpanStore: the one class that touches the SQLite file.

Writers hand it whole batches; each batch is one short ``BEGIN IMMEDIATE``
transaction of multi-row ``INSERT`` statements (up to 2,000 rows each). That
matters for more than speed: the stdlib driver releases the GIL once per
statement step, so ``executemany`` hands the GIL back and forth once per row, and
a writer thread then starves behind a CPU-bound caller (it waits a whole switch
interval, 5 ms, for each row). A statement of 2,000 rows releases it once.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Iterable, Sequence

from .errors import SchemaError, StoreError
from .schema import ensure_schema

MIN_SQLITE = (3, 38, 0)  # JSON functions built in (used by retention)

SPAN_COLUMNS = ("id", "span_id", "trace_id", "parent_span_id", "start_ns", "duration_ms",
                "process_id", "process_group", "service_name", "status", "outcome",
                "exception_type", "exception", "pid")
DATA_COLUMNS = ("span", "seq", "data", "data_type", "data_value")


_NEXT_ID = """SELECT max(coalesce((SELECT max(id) FROM spans), 0),
                        coalesce((SELECT CAST(value AS INTEGER) FROM meta
                                  WHERE key = 'span_id_high'), 0)) + 1"""


@functools.lru_cache(maxsize=64)
def _insert_sql(table: str, columns: tuple[str, ...], rows: int) -> str:
    """``INSERT … SELECT`` from a multi-row VALUES list; the first parameter is the
    batch's base row id, added to the batch-relative index in the first column."""
    picks = ", ".join(["column1 + ?"] + [f"column{i}" for i in range(2, len(columns) + 1)])
    row = "(" + ",".join("?" * len(columns)) + ")"
    return (f"INSERT INTO {table}({', '.join(columns)}) SELECT {picks} "
            f"FROM (VALUES {','.join([row] * rows)})")


@dataclass(frozen=True)
class ProcessEntry:
    name: str
    process_group: str | None = None
    file: str | None = None
    line: int | None = None
    source: str | None = None
    feeds: str | None = None


class SpanStore:
    """Schema, writes, retention, health and reads of one store file.

    Open one per thread: a connection is not shared between threads.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 30.0,
                 readonly: bool = False) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreError(
                f"SQLite {sqlite3.sqlite_version} is too old; otel-monitor needs "
                f"{'.'.join(map(str, MIN_SQLITE))} or newer"
            )
        self.path = os.fspath(path)
        self.readonly = readonly
        self._busy_timeout_s = busy_timeout_s
        if readonly:
            if not os.path.exists(self.path):
                raise StoreError(f"{self.path}: no such store (nothing has been recorded yet?)")
            uri = "file:" + self.path + "?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout_s,
                                         isolation_level=None, check_same_thread=False)
        else:
            parent = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(parent, exist_ok=True)
            is_new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
            self._conn = sqlite3.connect(self.path, timeout=busy_timeout_s,
                                         isolation_level=None, check_same_thread=False)
        try:
            # WAL from the start for a new file (so processes creating one store together
            # do not contend for switching it), but only after the schema check for an
            # existing one: a refused file must stay exactly as it was.
            if not readonly and is_new:
                self._switch_to_wal()
            if not readonly:
                ensure_schema(self._conn, self.path)
                self._switch_to_wal()
            self._configure_connection()
            if not readonly:
                self._conn.execute("PRAGMA busy_timeout = 0")  # writes wait in _begin()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise SchemaError(f"{self.path}: cannot open as an otel-monitor store: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise
        self._process_ids: dict[str, int] = {}
        self._lock = threading.Lock()
        self._tx_lock = threading.Lock()
        self._max_params = self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        _OPEN_STORES.add(self)

    def _switch_to_wal(self) -> None:
        """journal_mode=WAL (a no-op once the file is in WAL). Switching needs the file
        to itself, and SQLite answers 'locked' at once rather than waiting: retry."""
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)
        if mode.lower() != "wal":
            raise StoreError(f"{self.path}: could not switch to WAL (journal_mode={mode})")

    def _configure_connection(self) -> None:
        c = self._conn
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute("PRAGMA temp_store=MEMORY")
        c.execute("PRAGMA cache_size=-32768")  # 32 MiB

    def close(self) -> None:
        self._conn.close()

    # -- writes ---------------------------------------------------------------

    def process_ids(self, entries: Iterable[ProcessEntry]) -> dict[str, int]:
        """The integer key of each process, creating catalog rows that are missing."""
        missing = [e for e in entries if e.name not in self._process_ids]
        if missing:
            self._execute_tx(
                "INSERT OR IGNORE INTO processes(name, process_group, updated_ns) VALUES (?, ?, ?)",
                [(e.name, e.process_group, time.time_ns()) for e in missing],
            )
            names = [e.name for e in missing]
            for chunk in _chunks(names, 500):
                marks = ",".join("?" * len(chunk))
                for name, pid in self._conn.execute(
                    f"SELECT name, id FROM processes WHERE name IN ({marks})", chunk
                ):
                    self._process_ids[name] = pid
        return self._process_ids

    def upsert_catalog(self, entries: Sequence[ProcessEntry]) -> None:
        """Record (or refresh) what the UI shows of each process: group, file, line, source."""
        now = time.time_ns()
        self._execute_tx(
            """INSERT INTO processes(name, process_group, file, line, source, feeds, updated_ns)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(name) DO UPDATE SET
                   process_group = coalesce(excluded.process_group, process_group),
                   file = coalesce(excluded.file, file),
                   line = coalesce(excluded.line, line),
                   source = coalesce(excluded.source, source),
                   feeds = coalesce(excluded.feeds, feeds),
                   updated_ns = excluded.updated_ns""",
            [(e.name, e.process_group, e.file, e.line, e.source, e.feeds, now) for e in entries],
        )

    def insert_calls(self, spans: list, data: list) -> int:
        """Insert one batch atomically; returns how many calls were written.

        Both lists are flat: ``spans`` holds ``SPAN_COLUMNS`` values call after call,
        ``data`` holds ``DATA_COLUMNS`` values row after row, and the first value of
        each (``id``, ``span``) is the call's index in the batch: the real row ids are
        assigned under the write lock, after the highest id ever given (kept in
        ``meta``, so ids never go back after a purge: readers page on them).
        """
        if not spans:
            return 0
        with self._write() as c:
            base = c.execute(_NEXT_ID).fetchone()[0]
            self._insert_flat("spans", SPAN_COLUMNS, spans, base)
            self._insert_flat("data_values", DATA_COLUMNS, data, base)
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('span_id_high', ?)",
                      (str(base + len(spans) // len(SPAN_COLUMNS) - 1),))
        return len(spans) // len(SPAN_COLUMNS)

    def _insert_flat(self, table: str, columns: tuple[str, ...], flat: list, base: int) -> None:
        # Many rows per statement: one GIL release per statement, not per row
        # (executemany steps once per row), and no per-row statement overhead.
        width = len(columns)
        rows_per = max(1, min(2000, (self._max_params - 1) // width))
        step = rows_per * width
        for offset in range(0, len(flat), step):
            part = flat[offset:offset + step]
            rows = len(part) // width
            sql = _insert_sql(table, columns, rows)
            self._conn.execute(sql, [base, *part])

    def write_health(self, *, queue_depth: int, queue_peak: int, dropped: int, written: int,
                     write_lag_ms: float | None, last_write_ns: int | None,
                     service_name: str | None, otlp_exported: int | None = None,
                     otlp_failed: int | None = None) -> None:
        self._execute_tx(
            """INSERT OR REPLACE INTO health(pid, host, service_name, queue_depth, queue_peak,
                   dropped, written, write_lag_ms, last_write_ns, updated_ns,
                   otlp_exported, otlp_failed)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [(os.getpid(), socket.gethostname(), service_name, queue_depth, queue_peak, dropped,
              written, write_lag_ms, last_write_ns, time.time_ns(), otlp_exported, otlp_failed)],
        )

    # -- retention ------------------------------------------------------------

    def purge(self, older_than_ns: int, *, max_tx_seconds: float = 0.02,
              max_bytes: int | None = None) -> int:
        """Delete calls that started before ``older_than_ns`` (and the oldest calls while
        the store's used size exceeds ``max_bytes``), in chunks: each chunk is its own
        short transaction, sized so that a writer waits at most ``max_tx_seconds`` or so.
        Returns the number of calls deleted."""
        deleted, chunk = 0, 500
        while True:
            t0 = time.perf_counter()
            n = self._purge_chunk(older_than_ns, chunk)
            if n == 0 and max_bytes is not None and self.used_bytes() > max_bytes:
                n = self._purge_chunk(None, chunk)
            if n == 0:
                return deleted
            deleted += n
            elapsed = time.perf_counter() - t0
            # Adapt the chunk so one transaction stays inside the budget.
            if elapsed > max_tx_seconds:
                chunk = max(50, int(chunk * max_tx_seconds / elapsed / 1.5))
            elif elapsed < max_tx_seconds / 3:
                chunk = min(20_000, chunk * 2)
            # Leave the lock free for longer than a chunk holds it: a writer waiting in
            # SQLite's busy handler retries after 1, 2, 5, 10, 15, 20, 25 ms… and would
            # miss a short gap again and again.
            time.sleep(max(0.02, elapsed))

    def _purge_chunk(self, older_than_ns: int | None, limit: int) -> int:
        with self._write() as c:
            if older_than_ns is None:  # size cap: oldest first, whatever their age
                top = c.execute("SELECT max(id) FROM (SELECT id FROM spans ORDER BY id LIMIT ?)",
                                (limit,)).fetchone()[0]
                if top is None:
                    return 0
                n = c.execute("DELETE FROM spans WHERE id <= ?", (top,)).rowcount
                c.execute("DELETE FROM data_values WHERE span <= ?", (top,))
                return n
            ids = [r[0] for r in c.execute(
                "SELECT id FROM spans WHERE start_ns < ? ORDER BY start_ns LIMIT ?",
                (older_than_ns, limit))]
            if not ids:
                return 0
            id_json = json.dumps(ids)
            c.execute("DELETE FROM data_values WHERE span IN (SELECT value FROM json_each(?))",
                      (id_json,))
            return c.execute("DELETE FROM spans WHERE id IN (SELECT value FROM json_each(?))",
                             (id_json,)).rowcount

    def used_bytes(self) -> int:
        c = self._conn
        pages = c.execute("PRAGMA page_count").fetchone()[0]
        free = c.execute("PRAGMA freelist_count").fetchone()[0]
        size = c.execute("PRAGMA page_size").fetchone()[0]
        return (pages - free) * size

    def claim_purge(self, interval_ns: int) -> bool:
        """True for the one process that should purge now: several writers share a store,
        one purge per interval is enough."""
        now = time.time_ns()
        with self._write() as c:
            row = c.execute("SELECT value FROM meta WHERE key = 'last_purge_ns'").fetchone()
            due = row is None or now - int(row[0]) >= interval_ns
            if due:
                c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('last_purge_ns', ?)",
                          (str(now),))
            return due

    # -- reads ----------------------------------------------------------------

    def query(self, sql: str, params: Sequence | dict = ()) -> list[sqlite3.Row]:
        """Run a parameterised read query; rows support access by column name."""
        cur = self._conn.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(sql, params).fetchall()

    def latest_rows(self, *, limit: int = 20, process: str | None = None,
                    errors_only: bool = False, after_span: int | None = None) -> list[sqlite3.Row]:
        """The newest rows in the seven columns, oldest first, with ``span`` for paging on."""
        where, params = [], []
        if process:
            where.append("p.name = ?")
            params.append(process)
        if errors_only:
            where.append("s.status = 'ERR'")
        if after_span is not None:
            where.append("s.id > ?")
            params.append(after_span)
        sql = f"""
            SELECT * FROM (
                SELECT s.id AS span, d.seq, p.name AS "Process", d.data AS "Data",
                       d.data_type AS "Data Type", d.data_value AS "Data Value",
                       s.start_ns, s.status AS "Status", coalesce(s.exception, '') AS "Exception"
                FROM spans s JOIN processes p ON p.id = s.process_id
                JOIN data_values d ON d.span = s.id
                {"WHERE " + " AND ".join(where) if where else ""}
                ORDER BY s.id DESC, d.seq DESC LIMIT ?
            ) ORDER BY span, seq"""
        params.append(limit)
        return self.query(sql, params)

    def process_names(self) -> list[str]:
        """Every process (monitored function or span name) in the catalog, sorted."""
        return [row[0] for row in self._conn.execute("SELECT name FROM processes ORDER BY name")]

    def call_counts(self, since_ns: int = 0) -> tuple[int, int]:
        """(calls, ERR calls) that started at or after ``since_ns``; each count reads
        one index only."""
        c = self._conn
        calls = c.execute("SELECT count(*) FROM spans WHERE start_ns >= ?", (since_ns,))
        errors = c.execute("SELECT count(*) FROM spans WHERE status = 'ERR' AND start_ns >= ?",
                           (since_ns,))
        return calls.fetchone()[0], errors.fetchone()[0]

    # -- helpers --------------------------------------------------------------

    def _execute_tx(self, sql: str, rows: list[tuple]) -> None:
        if rows:
            with self._write() as c:
                c.executemany(sql, rows)

    @contextlib.contextmanager
    def _write(self):
        """One write transaction. ``_lock`` serialises this store's threads; ``_tx_lock``
        is held from the moment SQLite grants the write lock until COMMIT/ROLLBACK, and
        fork waits for it (see ``_hold_all_stores``) — but never for a busy wait."""
        c = self._conn
        with self._lock:
            self._begin()
            try:
                yield c
            except BaseException:
                c.execute("ROLLBACK")
                raise
            else:
                c.execute("COMMIT")
            finally:
                self._tx_lock.release()

    def _begin(self) -> None:
        """BEGIN IMMEDIATE, waiting for other writers here rather than in SQLite's busy
        handler (whose sleeps grow to 100 ms): short polls, and ``_tx_lock`` taken in
        the same step as the write lock, so a fork never falls between the two."""
        deadline = time.monotonic() + self._busy_timeout_s
        delay = 0.001
        while True:
            self._tx_lock.acquire()
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                self._tx_lock.release()
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.01)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


_OPEN_STORES: "weakref.WeakSet[SpanStore]" = weakref.WeakSet()


def _hold_all_stores() -> None:
    """Before fork: wait until no store is inside a transaction. A fork taken mid-write
    would leave SQLite's in-process lock bookkeeping held in the child, and every
    connection the child opens to that file would then find it locked."""
    for store in list(_OPEN_STORES):
        store._tx_lock.acquire()


def _release_all_stores() -> None:
    for store in list(_OPEN_STORES):
        try:
            store._tx_lock.release()
        except RuntimeError:  # created while we held the others
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_hold_all_stores, after_in_parent=_release_all_stores,
                        after_in_child=_release_all_stores)


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]
