"""SQLiteSpanExporter: flattens spans into the seven-column store.

A standard OTel ``SpanExporter``: behind any span processor (the SDK's own
``BatchSpanProcessor`` included) it turns each ``ReadableSpan`` into one call row
and one row per ``monitor.input.*`` / ``monitor.output.return`` attribute; a span
from other instrumentation (no monitor attributes) becomes a call row with no data
rows. Exporting writes and does nothing else: retention is started by whoever owns
the store (``retention.RetentionWorker``).

``RecordWriter`` is the same writer for the decorator's pipeline: it also takes the
compact call records (``records.py``), which reach the same rows through the same
flattening (``flatten.py``) without the cost of building span objects.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Mapping, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .error_groups import GroupEvent, ToldEvents
from .errors import RowRejected, SchemaError, StoreBusy, StoreError, StoreFull
from .groups import DEFAULT_SPIKE_MIN_COUNT, DEFAULT_SPIKE_MULTIPLE, replayed_new_events
from .flatten import rows_of
from .records import CallSite
from .store import DATA_COLUMNS, SPAN_COLUMNS, SpanStore

_log = logging.getLogger("otel_monitor")

# Connections inherited over fork belong to the parent: never used, never closed
# (closing could touch the parent's WAL state), just kept from the garbage collector.
_INHERITED: list[Any] = []
# Connections to a store deleted or replaced under them (see SQLiteSpanExporter._recreate).
_REPLACED: list[Any] = []


class SQLiteSpanExporter(SpanExporter):
    """Writes spans to an otel-monitor store at ``db_path`` (created if missing)."""

    def __init__(self, db_path: str | os.PathLike[str], *, service_name: str | None = None,
                 busy_timeout_s: float = 30.0,
                 sites: Mapping[str, CallSite] | None = None,
                 open_timeout_s: float | None = None,
                 on_group_events: Callable[[list[GroupEvent]], None] | None = None,
                 spike_multiple: float = DEFAULT_SPIKE_MULTIPLE,
                 spike_min_count: int = DEFAULT_SPIKE_MIN_COUNT) -> None:
        """``open_timeout_s``: how long opening the store now may wait for a lock; past
        it (or on a full disk) the store is opened by the first export instead. None:
        wait ``busy_timeout_s`` and raise ``StoreBusy`` / ``StoreFull``. A file that is
        not a store, or a path that cannot hold one, raises at once either way.

        ``on_group_events`` is called with the error-group events (``GroupEvent``) of
        each batch once it is committed, on the writing thread, outside the writer's
        lock; what it raises is logged, never breaks the writer. ``spike_multiple`` and
        ``spike_min_count``: the spike rule (``exporters.groups``)."""
        self.on_group_events = on_group_events
        self.spike_multiple = spike_multiple
        self.spike_min_count = spike_min_count
        self.db_path = os.fspath(db_path)
        self.busy_timeout_s = busy_timeout_s  # how long a write waits for another writer
        self.service_name = service_name
        # The decorator's call sites by process name, for the catalog (source, file,
        # line) of its spans; other spans are cataloged without.
        self.sites: Mapping[str, CallSite] = {} if sites is None else sites
        # Callables returning extra health figures (keyword arguments of
        # SpanStore.write_health), read each time health is written.
        self.health_sources: list[Callable[[], dict[str, Any]]] = []
        self._lock = threading.Lock()
        # The files the store was opened on, (st_dev, st_ino) of the db and its -wal:
        # checked before and after each write, so calls never go to a deleted inode.
        self._identity: tuple[Any, Any] | None = None
        self.store_recreated = 0  # times the store was deleted or replaced under us
        self._store: SpanStore | None = None
        # Opened now, to fail early on a bad file; a lock only defers it.
        try:
            self._store = SpanStore(self.db_path, busy_timeout_s=busy_timeout_s
                                    if open_timeout_s is None else open_timeout_s)
        except (StoreBusy, StoreFull) as exc:  # passing conditions: the writer retries
            if open_timeout_s is None:
                raise
            # Info, not a warning: workers starting together contend for a new store's
            # lock for a moment, which is routine. A lock that outlasts the writer's own
            # wait is warned about by the export that meets it (_failed).
            _log.info("otel-monitor: %s; calls queue until it can be opened", exc)
            self._store = None
        else:
            self._store.db.busy_timeout_s = busy_timeout_s  # its writes wait this long
            self._configure_store(self._store)
        self._identity = self._stat_files() if self._store is not None else None
        self._cataloged: set[str] = set()
        self._pid = os.getpid()
        # The process whose calls this writes, for the rows' pid: None for this one; a
        # writer process (``writer_child``) sets its application's.
        self.origin_pid: int | None = None
        self._closed = False
        self.rejected = 0  # calls set aside: already stored, or unstorable
        self._told = ToldEvents()  # a resent batch's NEW events are told once
        # Why the last export failed (None after a success): a writer splits a batch
        # the store refused, except for a lock (StoreBusy), which a smaller batch
        # would not get past.
        self.last_error: StoreError | None = None

    # -- SpanExporter -------------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._write(spans)

    def _write(self, items: Sequence[Any]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        with self._lock:
            try:
                store = self._open()
            except StoreError as exc:  # locked, full, or not there yet: retried later
                self._failed(len(items), exc)
                return SpanExportResult.FAILURE
            events: list[GroupEvent] = []
            propagated: dict[int, int] = {}
            calls, data, catalog = self._flatten(items, store, propagated)
            if catalog:
                try:
                    store.upsert_catalog(catalog)
                    self._cataloged.update(e.name for e in catalog)
                except StoreError:
                    _log.warning("otel-monitor: catalog not written", exc_info=True)
            try:
                try:
                    store.insert_calls(calls, data, propagated)
                    events = store.last_group_events
                except (RowRejected, ValueError, TypeError, OverflowError):
                    # A span id already stored (a resent span), or a value SQLite cannot
                    # take: write the batch call by call, setting those calls aside.
                    events = self._insert_one_by_one(store, calls, data, propagated)
                if not self._same_files():
                    # Deleted or replaced while we wrote: the batch may have gone to
                    # the old inode. Not written: the retry goes to the new store.
                    raise StoreError(f"{self.db_path}: the store was replaced while writing")
            except StoreError as exc:
                self._failed(len(items), exc)
                return SpanExportResult.FAILURE
        if self.last_error is not None:
            _log.warning("otel-monitor: writing to %s again", self.db_path)
            if isinstance(self.last_error, StoreFull):
                _checkpoint(store)
            self.last_error = None
        if events and self.on_group_events is not None:
            self._tell(events)
        return SpanExportResult.SUCCESS

    def _tell(self, events: list[GroupEvent]) -> None:
        events = self._told.fresh(events)
        if events:
            tell_group_events(self.on_group_events, events)  # type: ignore[arg-type]

    def _failed(self, n: int, exc: StoreError) -> None:
        # Logged once per run of failures, not once per (split) attempt.
        log = _log.debug if self.last_error is not None else _log.warning
        log("otel-monitor: %d calls not written yet to %s: %s", n, self.db_path, exc)
        self.last_error = exc

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # every export is committed before it returns

    def shutdown(self) -> None:
        self._closed = True
        with self._lock:
            if self._store is not None and self._pid == os.getpid():
                self._store.close()
            self._store = None

    # -- health and fork --------------------------------------------------------

    def record_health(self, **figures: Any) -> None:
        for source in self.health_sources:  # e.g. the OTLP dual-write's export counts
            figures.update(source())
        figures.setdefault("store_recreated", self.store_recreated)
        with self._lock:
            if self._store is None and self.last_error is not None:
                return  # the store cannot be opened now: the next export tries again
            self._open().write_health(service_name=self.service_name, **figures)

    def after_fork_in_child(self) -> None:
        if self._store is not None:
            _INHERITED.append(self._store)
        self._store = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    # -- internals ------------------------------------------------------------------

    def _open(self) -> SpanStore:
        if self._pid != os.getpid():
            self.after_fork_in_child()
        if self._store is not None and not self._same_files():
            self._recreate()
        if self._store is None:
            self._store = SpanStore(self.db_path, busy_timeout_s=self.busy_timeout_s)
            self._configure_store(self._store)
            self._identity = self._stat_files()
        return self._store

    def _configure_store(self, store: SpanStore) -> None:
        """The error groups' spike rule, for the store this writer writes through."""
        store.spike_multiple = self.spike_multiple
        store.spike_min_count = self.spike_min_count

    # -- the store's identity -----------------------------------------------------

    def _stat_files(self) -> tuple[Any, Any]:
        """(st_dev, st_ino) of the db file and of its -wal (None for a missing one)."""
        out = []
        for path in (self.db_path, self.db_path + "-wal"):
            try:
                st = os.stat(path)
                out.append((st.st_dev, st.st_ino))
            except OSError:
                out.append(None)
        return out[0], out[1]

    def _same_files(self) -> bool:
        """Whether the files at db_path are still the ones our connection writes to (two
        stat calls). A -wal first seen after opening is adopted."""
        if self._identity is None:
            return True
        db, wal = self._stat_files()
        known_db, known_wal = self._identity
        if db != known_db:
            return False
        if known_wal is None:
            self._identity = (db, wal)
            return True
        return wal == known_wal

    def _recreate(self) -> None:
        """The store was deleted or replaced under us: let our connection go, move a
        file that is not a store aside (a new, timestamped name, never overwriting),
        and open (creating if need be) the store now at db_path. Logged, counted."""
        old, self._store = self._store, None
        known_wal = self._identity[1] if self._identity else None
        self._identity = None
        if old is not None:
            if known_wal is not None and self._stat_files()[1] == known_wal:
                # Our -wal is still at the path: it must go (closing checkpoints it into
                # the old inode), so the new store never reads its stale frames.
                try:
                    old.close()
                except Exception:
                    _log.debug("otel-monitor: closing the replaced store failed",
                               exc_info=True)
                if self._stat_files()[1] == known_wal:  # SQLite left it: ours, stale
                    for suffix in ("-wal", "-shm"):
                        try:
                            os.remove(self.db_path + suffix)
                        except FileNotFoundError:
                            pass
            else:
                # The -wal at the path (if any) is another connection's: closing ours
                # would delete it by name. Kept open, unused (a few descriptors).
                _REPLACED.append(old)
        self._cataloged.clear()  # the new file has no catalog yet
        moved = None
        try:
            store = SpanStore(self.db_path, busy_timeout_s=self.busy_timeout_s)
        except SchemaError:
            moved = _move_aside(self.db_path)
            store = SpanStore(self.db_path, busy_timeout_s=self.busy_timeout_s)
        self._configure_store(store)
        self._store = store
        self._identity = self._stat_files()
        self.store_recreated += 1
        _log.warning("otel-monitor: the store %s was deleted or replaced while recording; "
                     "recreated it%s", self.db_path,
                     f" (the file found there was moved to {moved})" if moved else "")

    def _flatten(self, items: Sequence[Any], store: SpanStore,
                 propagated: dict[int, int] | None = None) -> tuple[list, list, list]:
        """Flat rows for ``SpanStore.insert_calls``, plus catalog entries not yet written
        (``propagated`` filled as by ``flatten.flatten``)."""
        return rows_of(store, items, self.sites, service_name=self.service_name,
                       cataloged=self._cataloged, propagated=propagated,
                       pid=self.origin_pid)

    def _insert_one_by_one(self, store: SpanStore, calls: list, data: list,
                           propagated: dict[int, int] | None = None) -> list[GroupEvent]:
        """Write a batch call by call; a call already stored or that cannot be stored
        is skipped (and counted in ``rejected``) instead of blocking the others.
        Returns the group events of the calls written."""
        events: list[GroupEvent] = []
        set_aside: list = []
        width, dwidth = len(SPAN_COLUMNS), len(DATA_COLUMNS)
        data_of: dict[int, list] = {}
        for o in range(0, len(data), dwidth):
            data_of.setdefault(data[o], []).extend([0, *data[o + 1:o + dwidth]])
        for o in range(0, len(calls), width):
            call = [0, *calls[o + 1:o + width]]
            inner = propagated.get(calls[o]) if propagated else None
            try:
                store.insert_calls(call, data_of.get(calls[o], []),
                                   None if inner is None else {0: inner})
                events += store.last_group_events
            except (RowRejected, ValueError, TypeError, OverflowError):
                self.rejected += 1
                set_aside.extend(calls[o:o + width])
        if set_aside:  # some perhaps already stored: a resent batch (see replayed_new_events)
            try:
                events += replayed_new_events(store.db, set_aside, width)
            except StoreError:
                _log.warning("otel-monitor: a resent batch's new error groups not read",
                             exc_info=True)
        return events


def tell_group_events(handler: Callable[[list[GroupEvent]], None],
                      events: list[GroupEvent]) -> None:
    """Hand a committed batch's group events on; a failure there is the receiver's."""
    try:
        handler(events)
    except Exception:
        _log.warning("otel-monitor: the error-group event handler failed", exc_info=True)


def _checkpoint(store: SpanStore) -> None:
    """Once writing again after a full disk: move the WAL into the database and truncate
    it. The WAL could not be checkpointed while the disk was full and would otherwise
    only grow (the automatic checkpoint waits for 1,000 pages), filling the space freed."""
    try:
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except StoreError:
        _log.debug("otel-monitor: checkpoint after a full disk failed", exc_info=True)


def _move_aside(path: str) -> str:
    """Rename ``path`` to ``<path>.bad-<UTC time>[-n]``; never replaces a file."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(1000):
        target = f"{path}.bad-{stamp}" + (f"-{n}" if n else "")
        try:
            os.link(path, target)  # fails if target exists: nothing is overwritten
        except FileExistsError:
            continue
        os.unlink(path)
        return target
    raise StoreError(f"{path}: cannot move the file aside")


class RecordWriter(SQLiteSpanExporter):
    """The decorator pipeline's writer: exports ReadableSpans and call records alike
    (``records.py``), ``sites`` naming the records' processes."""

    def export(self, batch: Sequence[Any]) -> SpanExportResult:
        return self._write(batch)
