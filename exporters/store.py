"""SpanStore: the calls of one store file — their writes, retention, health and reads.

Every statement runs through its ``Database`` (``exporters.database``), which owns the
connection, the write transactions and the batched multi-row inserts.
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from . import groups, rollups
from .database import Database, Row
from .error_groups import GroupEvent
from .schema import OUTCOME, TRACE_HEX

SPAN_COLUMNS = ("id", "span_id", "trace_id", "parent_span_id", "start_ns", "duration_ms",
                "process_id", "process_group", "service_name", "status", "outcome",
                "exception_type", "exception", "pid", "weight")
# weight (schema 8): how many calls the call stands for (1/p of the sampling that kept
# it); None (NULL) means 1.0.
DATA_COLUMNS = ("span", "seq", "data", "data_type", "data_value")
# What the tables hold of them (schema 9, see schema.STORE_V9): the trace id as its
# bytes, the service and the variable's (name, Data Type) as integer keys, no
# process_group (the process's, in processes).
STORED_SPAN_COLUMNS = ("id", "span_id", "trace_id", "parent_span_id", "start_ns",
                       "duration_ms", "process_id", "service_id", "status", "outcome",
                       "exception_type", "exception", "pid", "weight")
STORED_DATA_COLUMNS = ("span", "seq", "name_id", "data_value")


_NEXT_ID = """SELECT max(coalesce((SELECT max(id) FROM spans), 0),
                        coalesce((SELECT CAST(value AS INTEGER) FROM meta
                                  WHERE key = 'span_id_high'), 0)) + 1"""


@dataclass(frozen=True)
class ProcessEntry:
    name: str
    process_group: str | None = None
    file: str | None = None
    line: int | None = None
    source: str | None = None
    feeds: str | None = None


class SpanStore:
    """Writes, retention, health and reads of the calls in one store file, through its
    ``db`` (which opens, checks and migrates the file).

    Open one per thread: a connection is not shared between threads.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 30.0,
                 readonly: bool = False) -> None:
        self.db = Database(path, readonly=readonly, busy_timeout_s=busy_timeout_s)
        self.path = self.db.path
        self.readonly = readonly
        self._process_ids: dict[str, int] = {}
        # Interned keys (schema 9): never deleted from the store, so kept for its life.
        self._service_ids: dict[str, int] = {}
        self._name_ids: dict[tuple[str, str], int] = {}
        self._process_names: set[tuple[int, int]] = set()  # pairs known stored
        self._grouped: set[int] = set()  # processes known to have a process_group
        # Error groups (exporters.groups): the host named in the groups this store's
        # writes touch (None: name none, e.g. OTLP ingest, whose calls come from
        # elsewhere), the spike rule, and the events of the last committed batch.
        self.host: str | None = socket.gethostname()
        self.spike_multiple = groups.DEFAULT_SPIKE_MULTIPLE
        self.spike_min_count = groups.DEFAULT_SPIKE_MIN_COUNT
        self.last_group_events: list[GroupEvent] = []

    def close(self) -> None:
        self.db.close()

    # -- writes ---------------------------------------------------------------

    def process_ids(self, entries: Iterable[ProcessEntry]) -> dict[str, int]:
        """The integer key of each process, creating catalog rows that are missing."""
        missing = [e for e in entries if e.name not in self._process_ids]
        if missing:
            self.db.execute_write_many(
                "INSERT OR IGNORE INTO processes(name, process_group, updated_ns) VALUES (?, ?, ?)",
                [(e.name, e.process_group, time.time_ns()) for e in missing],
            )
            names = [e.name for e in missing]
            for chunk in _chunks(names, 500):
                marks = ",".join("?" * len(chunk))
                for name, pid in self.db.execute(
                    f"SELECT name, id FROM processes WHERE name IN ({marks})", chunk
                ):
                    self._process_ids[name] = pid
        return self._process_ids

    def upsert_catalog(self, entries: Sequence[ProcessEntry]) -> None:
        """Record (or refresh) what the UI shows of each process: group, file, line, source."""
        now = time.time_ns()
        self.db.execute_write_many(
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

    def insert_calls(self, spans: list, data: list,
                     propagated: dict[int, int] | None = None) -> int:
        """Insert one batch atomically; returns how many calls were written.

        Both lists are flat: ``spans`` holds ``SPAN_COLUMNS`` values call after call,
        ``data`` holds ``DATA_COLUMNS`` values row after row, and the first value of
        each (``id``, ``span``) is the call's index in the batch: the real row ids are
        assigned under the write lock, after the highest id ever given (kept in
        ``meta``, so ids never go back after a purge: readers page on them).
        The per-minute rollups (``rollups.maintain``) and the failed calls' error groups
        are kept in the same transaction (``groups.maintain``); the batch's group events are in ``last_group_events`` once
        it is committed (empty after a batch that failed; inside a caller's own
        ``db.transaction()``, e.g. merge's, they stand for the caller's commit).
        ``propagated``: ``{index in the batch: span id}`` of the failed calls that only
        passed on an exception of a monitored call further down, that call's (signed) span
        id (``flatten.flatten`` fills it): they take its group, uncounted.
        """
        self.last_group_events = []
        if not spans:
            return 0
        _clamp_future_starts(spans)
        db = self.db
        width = len(SPAN_COLUMNS)
        try:
            stored, stored_columns = self._stored_spans(spans)
            stored_data, pairs = self._stored_data(spans, data)
            groups_of = {p: g for p, g in zip(spans[_PROCESS::width], spans[_GROUP::width])
                         if g is not None and p not in self._grouped}
            with db.transaction():
                outermost = not db.nested()
                base = db.scalar(_NEXT_ID)
                db.insert_rows("spans", stored_columns, stored, base)
                db.insert_rows("data_values", STORED_DATA_COLUMNS, stored_data, base)
                if pairs:
                    db.execute_write_many("INSERT OR IGNORE INTO process_names(process_id, "
                                          "name_id) VALUES (?, ?)", list(pairs))
                if groups_of:  # a call's group is its process's (a first one is kept)
                    db.execute_write_many(
                        "UPDATE processes SET process_group = ? "
                        "WHERE id = ? AND process_group IS NULL",
                        [(g, p) for p, g in groups_of.items()])
                db.execute_write("INSERT OR REPLACE INTO meta(key, value) "
                                 "VALUES ('span_id_high', ?)",
                                 (str(base + len(spans) // width - 1),))
                rollups.maintain(db, spans, width)
                events = groups.maintain(db, spans, width, base, host=self.host,
                                         spike_multiple=self.spike_multiple,
                                         spike_min_count=self.spike_min_count,
                                         propagated=propagated)
        except BaseException:
            self._forget_keys()  # a rolled back batch may have interned some
            raise
        if outermost:
            self._process_names.update(pairs)
            self._grouped.update(groups_of)
        else:  # the caller's transaction may still roll back what this one wrote
            self._forget_keys()
        self.last_group_events = events
        return len(spans) // width

    def _stored_spans(self, spans: list) -> tuple[list, tuple[str, ...]]:
        """The calls as the spans table holds them (STORED_SPAN_COLUMNS, the weight
        column left out when no call is weighted), and the columns."""
        width = len(SPAN_COLUMNS)
        stored = spans.copy()
        stored[_TRACE::width] = [bytes.fromhex(t) for t in spans[_TRACE::width]]
        services = spans[_SERVICE::width]
        known = self._service_ids
        if not all(s in known for s in services if s is not None):
            self._intern_services({s for s in services if s is not None})
        stored[_SERVICE::width] = [None if s is None else known[s] for s in services]
        stored[_OUTCOME::width] = [
            None if outcome == ("error" if status == "ERR" else "ok") else outcome
            for status, outcome in zip(spans[_STATUS::width], spans[_OUTCOME::width])]
        del stored[_GROUP::width]
        if spans[_WEIGHT::width].count(None) == len(spans) // width:
            # No call weighted (no sampling): the insert names no weight column, as
            # version 7's did (binding a NULL per call cost the insert about 5%).
            del stored[width - 2::width - 1]  # the last column of each call
            return stored, STORED_SPAN_COLUMNS[:-1]
        return stored, STORED_SPAN_COLUMNS

    def _stored_data(self, spans: list, data: list) -> tuple[list, set[tuple[int, int]]]:
        """The data rows as data_values holds them (STORED_DATA_COLUMNS), and the
        (process, name) pairs of process_names they add."""
        if not data:
            return [], set()
        width, dwidth = len(SPAN_COLUMNS), len(DATA_COLUMNS)
        keys = list(zip(data[2::dwidth], data[3::dwidth]))
        known = self._name_ids
        if not all(k in known for k in keys):
            self._intern_names(set(keys))
        name_ids = [known[k] for k in keys]
        stored = [None] * (len(keys) * len(STORED_DATA_COLUMNS))
        stored[0::4], stored[1::4] = data[0::dwidth], data[1::dwidth]
        stored[2::4], stored[3::4] = name_ids, data[4::dwidth]
        process_of = dict(zip(spans[0::width], spans[_PROCESS::width]))
        pairs = {(process_of[k], n) for k, n in zip(data[0::dwidth], name_ids)}
        return stored, pairs - self._process_names

    def _intern_services(self, names: set[str]) -> None:
        self._intern("services", ("name",), [(n,) for n in names], self._service_ids,
                     lambda r: r[1])

    def _intern_names(self, keys: set[tuple[str, str]]) -> None:
        bad = [k for k in keys if not (isinstance(k[0], str) and isinstance(k[1], str))]
        if bad:
            raise TypeError(f"a variable's name and Data Type are text, not {bad[0]!r}")
        self._intern("data_names", ("name", "kind"), list(keys), self._name_ids,
                     lambda r: (r[1], r[2]))

    def _intern(self, table: str, columns: tuple[str, ...], keys: list[tuple],
                cache: dict, key_of) -> None:
        """Add the missing ``keys`` to ``table`` (several writers may add the same: the
        first wins) and read their ids into ``cache``. In sorted order: the same batches
        give the same ids, whatever the process's hash seed."""
        names = ", ".join(columns)
        marks = ", ".join("?" * len(columns))
        self.db.execute_write_many(f"INSERT OR IGNORE INTO {table}({names}) VALUES ({marks})",
                                   sorted(k for k in keys if key_of((None, *k)) not in cache))
        for row in self.db.execute(f"SELECT id, {names} FROM {table}"):
            cache[key_of(row)] = row[0]

    def _forget_keys(self) -> None:
        self._service_ids.clear()
        self._name_ids.clear()
        self._process_names.clear()
        self._grouped.clear()

    def set_group_status(self, fingerprint: str, status: str, *, until_ns: int | None = None,
                         occurrences: int | None = None) -> dict[str, Any]:
        """Resolve, ignore, snooze or reopen an error group (``groups.set_status``);
        returns the group after the change."""
        return groups.set_status(self.db, fingerprint, status, until_ns=until_ns,
                                 occurrences=occurrences)

    def write_health(self, *, queue_depth: int, queue_peak: int, dropped: int, written: int,
                     write_lag_ms: float | None, last_write_ns: int | None,
                     service_name: str | None, otlp_exported: int | None = None,
                     otlp_failed: int | None = None, failed_batches: int | None = None,
                     store_recreated: int | None = None,
                     recording: bool | None = None, pid: int | None = None,
                     host: str | None = None) -> None:
        """The writing process's health row; ``pid`` and ``host`` name the process whose
        calls these figures count (None: this one; a writer process passes its
        application's)."""
        self.db.execute_write_many(
            """INSERT OR REPLACE INTO health(pid, host, service_name, queue_depth, queue_peak,
                   dropped, written, write_lag_ms, last_write_ns, updated_ns,
                   otlp_exported, otlp_failed, failed_batches, store_recreated, recording)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [(os.getpid() if pid is None else pid, host or socket.gethostname(),
              service_name, queue_depth, queue_peak, dropped,
              written, write_lag_ms, last_write_ns, time.time_ns(), otlp_exported, otlp_failed,
              failed_batches, store_recreated, None if recording is None else int(recording))],
        )

    # -- retention ------------------------------------------------------------

    def purge(self, older_than_ns: int, *, max_tx_seconds: float = 0.02,
              max_bytes: int | None = None, lost_at_ns: int | None = None) -> int:
        """Delete calls that started before ``older_than_ns`` (and the oldest calls while
        the store's used size exceeds ``max_bytes``), in chunks: each chunk is its own
        short transaction, sized so that a writer waits at most ``max_tx_seconds`` or so.
        With ``lost_at_ns`` (an archive could not take them), the calls the size cap
        deletes are added to ``meta.archive_lost_calls`` (and ``archive_lost_last_ns``
        set to it) in the chunk's own transaction: exact across a crash. Returns the number of calls deleted."""
        deleted, chunk = 0, 500
        while True:
            t0 = time.perf_counter()
            n = self._purge_chunk(older_than_ns, chunk)
            if n == 0 and max_bytes is not None:
                over = self.calls_over_cap(max_bytes)
                if over:
                    n = self._purge_chunk(None, min(chunk, over), lost_at_ns=lost_at_ns)
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

    def purge_groups(self, groups_before_ns: int, minutes_before_ns: int, *,
                     rollups_before_ns: int | None = None,
                     max_tx_seconds: float = 0.02) -> int:
        """Delete error groups last seen before ``groups_before_ns`` (with their minute
        buckets), minute buckets older than ``minutes_before_ns`` and (when given) call
        rollups of minutes before ``rollups_before_ns``, in short transactions like
        ``purge``. Purging calls never deletes a group or a rollup. Returns the rows
        deleted."""
        deleted, chunk = 0, 500
        while True:
            t0 = time.perf_counter()
            n = groups.purge_chunk(self.db, groups_before_ns, minutes_before_ns, chunk)
            if rollups_before_ns is not None:
                n += rollups.purge_chunk(self.db, rollups_before_ns, chunk)
            if n == 0:
                return deleted
            deleted += n
            elapsed = time.perf_counter() - t0
            if elapsed > max_tx_seconds:
                chunk = max(50, int(chunk * max_tx_seconds / elapsed / 1.5))
            elif elapsed < max_tx_seconds / 3:
                chunk = min(20_000, chunk * 2)
            time.sleep(max(0.02, elapsed))

    def archive_rows(self, older_than_ns: int, limit: int) -> list[tuple]:
        """The oldest ``limit`` calls that started before ``older_than_ns``, denormalised
        for the archive (``exporters.archive.COLUMNS``): one tuple per data row, a call
        without data rows as one tuple with seq NULL; sorted by start, id, seq. A read:
        it holds no write lock."""
        return [tuple(r) for r in self.db.execute(
            f"""SELECT s.id, printf('%016x', s.span_id), {TRACE_HEX.format(col="s.trace_id")},
                      CASE WHEN s.parent_span_id IS NULL THEN NULL
                           ELSE printf('%016x', s.parent_span_id) END,
                      s.start_ns, s.duration_ms, p.name, p.process_group, v.name,
                      s.status, {OUTCOME.format(s="s")},
                      s.exception_type, s.exception, s.pid, s.weight,
                      s.error_group, d.seq, n.name, n.kind, d.data_value
               FROM (SELECT * FROM spans WHERE start_ns < ? ORDER BY start_ns, id LIMIT ?) s
               JOIN processes p ON p.id = s.process_id
               LEFT JOIN services v ON v.id = s.service_id
               LEFT JOIN data_values d ON d.span = s.id
               LEFT JOIN data_names n ON n.id = d.name_id
               ORDER BY s.start_ns, s.id, d.seq""", (older_than_ns, limit))]

    def delete_calls(self, ids: Sequence[int], *, max_tx_seconds: float = 0.02) -> int:
        """Delete the calls ``ids`` (with their data rows) in short transactions, sized as
        ``purge``'s. Returns the calls deleted."""
        ids = list(ids)
        deleted, chunk, offset = 0, 500, 0
        while offset < len(ids):
            part = ids[offset:offset + chunk]
            offset += len(part)
            t0 = time.perf_counter()
            id_json = json.dumps(part)
            with self.db.transaction():
                self.db.execute_write("DELETE FROM data_values WHERE span IN "
                                      "(SELECT value FROM json_each(?))", (id_json,))
                deleted += self.db.execute_write("DELETE FROM spans WHERE id IN "
                                                 "(SELECT value FROM json_each(?))", (id_json,))
            elapsed = time.perf_counter() - t0
            if elapsed > max_tx_seconds:
                chunk = max(50, int(chunk * max_tx_seconds / elapsed / 1.5))
            elif elapsed < max_tx_seconds / 3:
                chunk = min(20_000, chunk * 2)
            if offset < len(ids):
                time.sleep(max(0.02, elapsed))
        return deleted

    def _purge_chunk(self, older_than_ns: int | None, limit: int, *,
                     lost_at_ns: int | None = None) -> int:
        db = self.db
        with db.transaction():
            if older_than_ns is None:  # size cap: oldest first, whatever their age
                top = db.scalar("SELECT max(id) FROM (SELECT id FROM spans ORDER BY id LIMIT ?)",
                                (limit,))
                if top is None:
                    return 0
                n = db.execute_write("DELETE FROM spans WHERE id <= ?", (top,))
                db.execute_write("DELETE FROM data_values WHERE span <= ?", (top,))
                if lost_at_ns is not None and n:
                    db.execute_write(
                        "INSERT INTO meta(key, value) VALUES ('archive_lost_calls', ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + ?",
                        (str(n), n))
                    db.execute_write("INSERT OR REPLACE INTO meta(key, value) "
                                     "VALUES ('archive_lost_last_ns', ?)", (str(lost_at_ns),))
                return n
            ids = [r[0] for r in db.execute(
                "SELECT id FROM spans WHERE start_ns < ? ORDER BY start_ns LIMIT ?",
                (older_than_ns, limit))]
            if not ids:
                return 0
            id_json = json.dumps(ids)
            db.execute_write("DELETE FROM data_values WHERE span IN "
                             "(SELECT value FROM json_each(?))", (id_json,))
            return db.execute_write("DELETE FROM spans WHERE id IN "
                                    "(SELECT value FROM json_each(?))", (id_json,))

    def calls_over_cap(self, max_bytes: int) -> int:
        """How many of the oldest calls to delete next to come down to ``max_bytes``: the
        excess in bytes over the bytes per call (so a chunk never overshoots the cap by
        much, whatever the machine's speed), never more than half the calls left (so
        the cap never empties the store: the newest call always stays)."""
        used = self.used_bytes()
        if used <= max_bytes:
            return 0
        # two subqueries: SQLite reads an index's end only for a lone min() or max();
        # both in one SELECT scan every call (45 ms on 200k, before every chunk)
        low, high = self.db.execute("SELECT (SELECT min(id) FROM spans), "
                                    "(SELECT max(id) FROM spans)")[0]
        if low is None:
            return 0
        calls = high - low + 1  # ids are dense but for purged gaps: at most this many
        estimate = -(-calls * (used - max_bytes) // used)  # ceil
        return max(0, min(estimate, calls // 2))

    def used_bytes(self) -> int:
        db = self.db
        pages = db.scalar("PRAGMA page_count")
        free = db.scalar("PRAGMA freelist_count")
        return (pages - free) * db.scalar("PRAGMA page_size")

    def claim_purge(self, interval_ns: int, *, retention_ns: int | None = None,
                    max_bytes: int | None = None) -> bool:
        """True for the one process that should purge now: several writers share a store,
        one purge per interval is enough. Also notes the purging settings in ``meta``
        (``purge_interval_ns``, ``retention_ns``, ``size_cap_bytes``: 0 for none), for
        the readers that judge the store's health (``exporters.self_health``)."""
        db = self.db
        with db.transaction():
            notes = [("purge_interval_ns", interval_ns)]
            if retention_ns is not None:
                notes += [("retention_ns", retention_ns), ("size_cap_bytes", max_bytes or 0)]
            db.execute_write_many("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                                  [(k, str(v)) for k, v in notes])
            now = time.time_ns()  # under the lock: the last claim was taken before it
            last = db.scalar("SELECT value FROM meta WHERE key = 'last_purge_ns'")
            # A stamp further in the future than an interval (a clock that ran ahead,
            # here or on another host) is stale: honouring it would stop every purge
            # until that time.
            due = last is None or not -interval_ns <= now - int(last) < interval_ns
            if due:
                db.execute_write("INSERT OR REPLACE INTO meta(key, value) "
                                 "VALUES ('last_purge_ns', ?)", (str(now),))
            return due

    # -- reads ----------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        """Run a parameterised read query; rows support access by column name."""
        return self.db.execute(sql, params)

    def latest_rows(self, *, limit: int = 20, process: str | None = None,
                    errors_only: bool = False, after_span: int | None = None) -> list[Row]:
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
                SELECT s.id AS span, d.seq, p.name AS "Process", n.name AS "Data",
                       n.kind AS "Data Type", d.data_value AS "Data Value",
                       s.start_ns, s.status AS "Status", coalesce(s.exception, '') AS "Exception"
                FROM spans s JOIN processes p ON p.id = s.process_id
                JOIN data_values d ON d.span = s.id JOIN data_names n ON n.id = d.name_id
                {"WHERE " + " AND ".join(where) if where else ""}
                ORDER BY s.id DESC, d.seq DESC LIMIT ?
            ) ORDER BY span, seq"""
        params.append(limit)
        return self.query(sql, params)

    def process_names(self) -> list[str]:
        """Every process (monitored function or span name) in the catalog, sorted."""
        return [row[0] for row in self.db.execute("SELECT name FROM processes ORDER BY name")]

    def call_counts(self, since_ns: int = 0) -> tuple[int, int]:
        """(calls, ERR calls) that started at or after ``since_ns``; each count reads
        one index only."""
        db = self.db
        calls = db.scalar("SELECT count(*) FROM spans WHERE start_ns >= ?", (since_ns,))
        errors = db.scalar("SELECT count(*) FROM spans WHERE status = 'ERR' AND start_ns >= ?",
                           (since_ns,))
        return calls, errors

# Calls starting later than this past their receive time are dated by a clock that ran
# ahead: they are stored at their receive time (else they would stay on top of every
# page and outlive retention).
FUTURE_TOLERANCE_NS = 60 * 10**9
_START = SPAN_COLUMNS.index("start_ns")
_TRACE = SPAN_COLUMNS.index("trace_id")
_PROCESS = SPAN_COLUMNS.index("process_id")
_GROUP = SPAN_COLUMNS.index("process_group")
_SERVICE = SPAN_COLUMNS.index("service_name")
_STATUS = SPAN_COLUMNS.index("status")
_OUTCOME = SPAN_COLUMNS.index("outcome")
_WEIGHT = SPAN_COLUMNS.index("weight")
assert _WEIGHT == len(SPAN_COLUMNS) - 1  # insert_calls drops it by stride
assert _GROUP + 1 == _SERVICE  # _stored_spans drops the group after naming the service


def _clamp_future_starts(spans: list) -> None:
    width = len(SPAN_COLUMNS)
    now = time.time_ns()
    starts = spans[_START::width]
    if max(starts) <= now + FUTURE_TOLERANCE_NS:
        return
    for i, start in enumerate(starts):
        if start > now + FUTURE_TOLERANCE_NS:
            spans[i * width + _START] = now


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]
