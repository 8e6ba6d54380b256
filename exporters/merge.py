"""Merge stores into one: the brief's MVP stores (schema version 0) and otel-monitor
stores of every schema version, into an otel-monitor store that may be live.

Sources are opened read-only (``mode=ro``; not ``immutable``: a live source may be
written meanwhile) and never changed (to read a WAL-mode file SQLite may leave an empty
``-wal`` and a ``-shm`` beside it, as any reader does; the database file is not written). Each is read in chunks of calls by keyset (short
read statements: no snapshot held on a live source for the whole merge, and memory
bounded by the chunk, whatever the source's size), and each chunk is written to the
destination in one short write transaction through its ``Database`` (WAL, writers
waiting for each other), so live processes writing to it keep going.

Calls keep their timestamps, processes, values, statuses and tracebacks. An otel-monitor
call keeps its span id; a brief call (no span id) gets one derived from its content (its
text timestamp, process, status, duration, traceback and data rows), so a call merged
twice, or found in two overlapping files, is stored once: the second is counted as a
duplicate. A brief store is read the way ``schema``'s version-0 migration reads it:
one call per ``(ts, process)``, its variables in the order they were written, timestamps
through ``schema.BRIEF_TS_NS``. Versions 1 to ``SCHEMA_VERSION`` share the tables of calls
(``processes``, ``spans``, ``data_values``), which is all a merge reads of them.

A source that cannot be read (corrupt, locked for longer than ``source_busy_timeout_s``,
of an unknown or newer schema, or the destination itself) is reported in its
``SourceResult`` and skipped; the others are merged. Calls that started before the
retention window are skipped and counted unless ``keep_all``.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Protocol, Sequence

from .database import Database, Row
from .errors import StoreError
from .schema import BRIEF_TS_NS, OUTCOME, SCHEMA_VERSION, TRACE_HEX, stored_version
from .store import ProcessEntry, SpanStore

CHUNK_CALLS = 2000
_SPAN_ID_MASK = (1 << 63) - 1


@dataclass
class SourceResult:
    """What the merge did with one source."""
    source: str
    schema: str = ""              # "brief (v0)" or "otel-monitor v<N>"
    calls: int = 0                # calls merged (or that would be, with dry_run)
    rows: int = 0                 # their data rows
    duplicates: int = 0           # calls already in the destination (or earlier in this one)
    outside_retention: int = 0    # calls older than the retention window, skipped
    unreadable: int = 0           # brief calls whose timestamp is not a date, skipped
    error: str | None = None      # why the source was skipped (or stopped part-way)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Progress(Protocol):
    """What the merge reports as it goes (the CLI's progress bars or lines)."""

    def start(self, source: str, total_calls: int | None) -> None: ...

    def advance(self, calls: int) -> None: ...

    def finish(self, result: SourceResult) -> None: ...


class _Quiet:
    def start(self, source: str, total_calls: int | None) -> None:
        pass

    def advance(self, calls: int) -> None:
        pass

    def finish(self, result: SourceResult) -> None:
        pass


@dataclass
class _Call:
    """One call as read from a source, before it gets its destination row id."""
    span_id: int
    trace_id: str
    parent_span_id: int | None
    start_ns: int
    duration_ms: float
    process: str
    process_group: str | None
    service_name: str | None
    status: str
    outcome: str
    exception_type: str | None
    exception: str | None
    pid: int | None
    weight: float | None = None  # spans.weight (schema 8): NULL means 1.0
    data: list[tuple[int, str, str, str]] = field(default_factory=list)  # seq, name, type, value


def merge_stores(sources: Sequence[str | os.PathLike[str]], into: str | os.PathLike[str], *,
                 retention_hours: float = 6.0, keep_all: bool = False, dry_run: bool = False,
                 chunk_calls: int = CHUNK_CALLS, busy_timeout_s: float = 30.0,
                 source_busy_timeout_s: float = 5.0, progress: Progress | None = None,
                 now_ns: int | None = None) -> list[SourceResult]:
    """Merge each of ``sources`` into the store ``into`` (created if missing, unless
    ``dry_run``: then nothing is written and duplicates are those already in ``into``).
    Returns one ``SourceResult`` per source, in order."""
    progress = progress or _Quiet()
    into = os.fspath(into)
    cutoff = None if keep_all else (now_ns or time.time_ns()) - int(retention_hours * 3.6e12)
    store: SpanStore | None = None
    if not dry_run:
        store = SpanStore(into, busy_timeout_s=busy_timeout_s)
        store.host = None  # merged calls were recorded elsewhere: their groups name no host
    elif os.path.exists(into):
        store = SpanStore(into, readonly=True, busy_timeout_s=busy_timeout_s)
    try:
        return [_merge_one(os.fspath(src), into, store, cutoff, dry_run, chunk_calls,
                           source_busy_timeout_s, progress) for src in sources]
    finally:
        if store is not None:
            store.close()


def _merge_one(src: str, into: str, store: SpanStore | None, cutoff: int | None,
               dry_run: bool, chunk_calls: int, busy_timeout_s: float,
               progress: Progress) -> SourceResult:
    result = SourceResult(src)
    t0 = time.perf_counter()
    db = None
    try:
        if os.path.exists(src) and os.path.exists(into) and os.path.samefile(src, into):
            raise StoreError(f"{src}: is the destination itself")
        db = Database(src, readonly=True, busy_timeout_s=busy_timeout_s)
        version = stored_version(db, src)
        if version is None:
            raise StoreError(f"{src}: empty, not a store")
        if version > SCHEMA_VERSION:
            raise StoreError(f"{src}: store schema version {version} is newer than this "
                             f"otel-monitor understands ({SCHEMA_VERSION})")
        if version == 0:
            result.schema = "brief (v0)"
            total = db.scalar("SELECT count(*) FROM process_trace")
            chunks = _brief_calls(db, chunk_calls, result)
        else:
            result.schema = f"otel-monitor v{version}"
            total = db.scalar("SELECT count(*) FROM spans")
            if store is not None and not dry_run:
                store.upsert_catalog(_catalog(db))
            chunks = _store_calls(db, chunk_calls)
        progress.start(src, total)
        for calls in chunks:
            _write_chunk(store, calls, cutoff, dry_run, result)
            progress.advance(len(calls))
    except StoreError as exc:
        result.error = str(exc)
    finally:
        if db is not None:
            db.close()
        result.seconds = time.perf_counter() - t0
    progress.finish(result)
    return result


# -- reading a source --------------------------------------------------------------------------

def _brief_calls(db: Database, chunk: int, result: SourceResult) -> Iterator[list[_Call]]:
    """The calls of a brief store, ``chunk`` ``(ts, process)`` keys at a time, with their
    data rows (an orphan data row, whose process row was lost, still makes a call)."""
    start_ns = BRIEF_TS_NS.format(col="ts")
    after: tuple[str, str] | None = None
    while True:
        keyset = "" if after is None else "WHERE (ts, process) > (?, ?)"
        heads = db.execute(
            f"SELECT ts, process, status, duration_ms, exception, {start_ns} "
            f"FROM process_trace {keyset} ORDER BY ts, process LIMIT ?",
            [*(after or ()), chunk])
        last = (heads[-1][0], heads[-1][1]) if len(heads) == chunk else None
        where = [] if after is None else ["(ts, process) > (?, ?)"]
        if last is not None:
            where.append("(ts, process) <= (?, ?)")
        rows = db.execute(
            "SELECT ts, process, data, data_type, data_value, status, exception FROM data_trace "
            f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY ts, process, rowid",
            [*(after or ()), *(last or ())])
        if heads or rows:
            yield _brief_chunk(db, heads, rows, result)
        if last is None:
            return
        after = last


def _brief_chunk(db: Database, heads: list[Row], rows: list[Row],
                 result: SourceResult) -> list[_Call]:
    # (positional access: this runs once per row of a source)
    calls: dict[tuple[str, str], list[Any]] = {}
    for ts, process, status, duration, exception, start in heads:
        calls[(ts, process)] = [status, duration, exception, start, []]
    for ts, process, data, data_type, value, status, exception in rows:
        call = calls.get((ts, process))
        if call is None:  # data rows whose process row is missing: a call of their own
            start = db.scalar(f"SELECT {BRIEF_TS_NS.format(col='?1')}", (ts,))
            call = calls[(ts, process)] = [status, 0.0, exception, start, []]
        call[4].append((data, data_type, value))
    out = []
    for (ts, process), (status, duration, exception, start_ns, data) in calls.items():
        if start_ns is None:
            result.unreadable += 1
            continue
        span_id, trace_id = content_ids(ts, process, status, duration, exception, data)
        out.append(_Call(span_id, trace_id, None, start_ns, duration or 0.0, process, None,
                         None, status, "error" if status == "ERR" else "ok", None, exception,
                         None, data=[(seq, *d) for seq, d in enumerate(data)]))
    return out


def content_ids(ts: str, process: str, status: str, duration_ms: float | None,
                exception: str | None, data: Sequence[tuple[str, str, str]]) -> tuple[int, str]:
    """(span id, trace id) of a brief call, from its content: the same call read again,
    from any file, gets the same ids. The span id is 63 bits (positive as SQLite's
    signed integer); the trace id 32 hex digits."""
    digest = hashlib.blake2b(repr((ts, process, status, duration_ms, exception, tuple(data)))
                             .encode("utf-8", "surrogatepass"), digest_size=24,
                             person=b"otel-monitor-v0").digest()
    return int.from_bytes(digest[:8], "big") & _SPAN_ID_MASK or 1, digest[8:].hex()


def _catalog(db: Database) -> list[ProcessEntry]:
    return [ProcessEntry(r["name"], r["process_group"], r["file"], r["line"], r["source"],
                         r["feeds"])
            for r in db.execute("SELECT name, process_group, file, line, source, feeds "
                                "FROM processes")]


def _store_calls(db: Database, chunk: int) -> Iterator[list[_Call]]:
    """The calls of an otel-monitor store in row-id order, ``chunk`` at a time."""
    after = 0
    columns = {r[1] for r in db.execute("PRAGMA table_info(spans)")}
    weight = "s.weight" if "weight" in columns else "NULL"  # a store before schema 8 has none
    if "service_id" in columns:  # schema 9: keys and a binary trace id (schema.STORE_V9)
        trace, group = TRACE_HEX.format(col="s.trace_id"), "p.process_group"
        outcome = OUTCOME.format(s="s")
        service = "(SELECT name FROM services WHERE id = s.service_id)"
        values = ("SELECT v.span, v.seq, n.name, n.kind, v.data_value FROM data_values v "
                  "JOIN data_names n ON n.id = v.name_id "
                  "WHERE v.span > ? AND v.span <= ? ORDER BY v.span, v.seq")
    else:
        trace, group, service = "s.trace_id", "s.process_group", "s.service_name"
        outcome = "s.outcome"
        values = ("SELECT span, seq, data, data_type, data_value FROM data_values "
                  "WHERE span > ? AND span <= ? ORDER BY span, seq")
    while True:
        heads = db.execute(
            f"""SELECT s.id, s.span_id, {trace}, s.parent_span_id, s.start_ns, s.duration_ms,
                      coalesce(p.name, 'process-' || s.process_id), {group}, {service},
                      s.status, {outcome}, s.exception_type, s.exception, s.pid, {weight}
               FROM spans s LEFT JOIN processes p ON p.id = s.process_id
               WHERE s.id > ? ORDER BY s.id LIMIT ?""", (after, chunk))
        if not heads:
            return
        top = heads[-1][0]
        calls = {h[0]: _Call(*h[1:]) for h in heads}
        for span, seq, data, data_type, value in db.execute(values, (after, top)):
            call = calls.get(span)
            if call is not None:
                call.data.append((seq, data, data_type, value))
        yield list(calls.values())
        if len(heads) < chunk:
            return
        after = top


# -- writing -----------------------------------------------------------------------------------

def _write_chunk(store: SpanStore | None, calls: list[_Call], cutoff: int | None,
                 dry_run: bool, result: SourceResult) -> None:
    if cutoff is not None:
        kept = [c for c in calls if c.start_ns >= cutoff]
        result.outside_retention += len(calls) - len(kept)
        calls = kept
    unique: dict[int, _Call] = {}
    for call in calls:
        unique.setdefault(call.span_id, call)
    result.duplicates += len(calls) - len(unique)
    if not unique:
        return
    if store is None:  # a dry run into a store that does not exist yet
        _count(unique.values(), result)
        return
    ids = json.dumps(list(unique))
    if dry_run:
        new = _new_calls(store, unique, ids)
        result.duplicates += len(unique) - len(new)
        _count(new, result)
        return
    process_ids = store.process_ids(
        [ProcessEntry(c.process, c.process_group) for c in unique.values()])
    with store.db.transaction():  # the check and the insert see the same store
        new = _new_calls(store, unique, ids)
        spans: list[Any] = []
        data: list[Any] = []
        for i, c in enumerate(new):  # in store.SPAN_COLUMNS and DATA_COLUMNS order
            spans += (i, c.span_id, c.trace_id, c.parent_span_id, c.start_ns, c.duration_ms,
                      process_ids[c.process], c.process_group, c.service_name, c.status,
                      c.outcome, c.exception_type, c.exception, c.pid, c.weight)
            for seq, name, data_type, value in c.data:
                data += (i, seq, name, data_type, value)
        store.insert_calls(spans, data)
    result.duplicates += len(unique) - len(new)
    _count(new, result)


def _new_calls(store: SpanStore, unique: dict[int, _Call], ids: str) -> list[_Call]:
    stored = {r[0] for r in store.db.execute(
        "SELECT span_id FROM spans WHERE span_id IN (SELECT value FROM json_each(?))", (ids,))}
    return [c for span_id, c in unique.items() if span_id not in stored]


def _count(calls: Any, result: SourceResult) -> None:
    for c in calls:
        result.calls += 1
        result.rows += len(c.data)
