"""The server's OTLP writer, opened as it starts, or at the first request when another
process holds the store's write lock then.

Opening the writer checks (and migrates) the store's schema, which takes the write lock.
While another writer holds that lock the server can still start: its API and UI only
read (WAL readers do not wait for a writer), so if the schema they read is already the
current one, the writer is opened by the first ingest request instead. A store in an
older schema must be migrated first, so it still fails to open while locked.
"""
from __future__ import annotations

import logging
import os
import threading

from exporters.database import Database
from exporters.errors import StoreBusy, StoreError
from exporters.schema import SCHEMA_VERSION

from .ingest_spans import Converted, IngestWriter, open_writer

_log = logging.getLogger("otel_monitor")


def schema_is_current(db_path: str | os.PathLike[str], busy_timeout_s: float) -> bool:
    """Whether the store's schema version is this build's, read without the write lock."""
    try:
        db = Database(db_path, readonly=True, busy_timeout_s=busy_timeout_s)
    except StoreError:
        return False
    try:
        version = db.scalar("SELECT value FROM meta WHERE key = 'schema_version'")
    except StoreError:  # no meta table, or a journal a writer locks readers out of
        return False
    finally:
        db.close()
    return str(version) == str(SCHEMA_VERSION)


class DeferredWriter:
    """Stands in for the IngestWriter until a request opens it. A request that finds the
    store still locked fails as a locked write does (``StoreBusy``: the sender is answered
    503 and retries)."""

    def __init__(self, db_path: str | os.PathLike[str], *, busy_timeout_s: float,
                 max_value_length: int) -> None:
        self._db_path = db_path
        self._busy_timeout_s = busy_timeout_s
        self.max_value_length = max_value_length
        self._writer: IngestWriter | None = None
        self._lock = threading.Lock()

    def write(self, converted: Converted) -> None:
        with self._lock:
            if self._writer is None:
                self._writer = open_writer(self._db_path,
                                           busy_timeout_s=self._busy_timeout_s)
        self._writer.write(converted)


def open_or_defer(db_path: str | os.PathLike[str], *, busy_timeout_s: float
                  ) -> IngestWriter | DeferredWriter:
    """``open_writer``; or, when another writer holds the lock for ``busy_timeout_s``
    and the schema is current, a DeferredWriter."""
    try:
        return open_writer(db_path, busy_timeout_s=busy_timeout_s)
    except StoreBusy:
        if not schema_is_current(db_path, busy_timeout_s):
            raise
        _log.warning("otel-monitor: %s is locked by another writer; serving reads now, "
                     "OTLP ingest opens the store at its first request", db_path)
    from otel_monitor.settings import load_settings

    settings = load_settings({"db_path": os.fspath(db_path)})
    return DeferredWriter(db_path, busy_timeout_s=busy_timeout_s,
                          max_value_length=settings.max_value_length)
