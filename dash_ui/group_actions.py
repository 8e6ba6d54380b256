"""Status changes of error groups (resolve, ignore, snooze), the one place the API's
``POST /api/errors/{fp}/...`` routes and the UI's Errors tab both call: one read-write
connection to the store, and the ``on_resolved(group)`` hook called once a resolve is
committed (the alert side sends PagerDuty's ``resolve`` and a Slack follow-up from it);
what the hook raises is logged, never the caller's answer."""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable

from exporters.error_groups import RESOLVED, SNOOZED
from exporters.errors import ConfigError
from exporters.store import SpanStore

_log = logging.getLogger("otel_monitor")

OnResolved = Callable[[dict[str, Any]], None]


class GroupActions:
    """Status changes of the store's error groups: one read-write ``SpanStore``, opened
    at the first change, shared by the request threads under a lock."""

    def __init__(self, db_path: str | os.PathLike[str],
                 on_resolved: OnResolved | None = None) -> None:
        self.db_path = os.fspath(db_path)
        self.on_resolved = on_resolved
        self._store: SpanStore | None = None
        self._lock = threading.Lock()

    def set_status(self, fingerprint: str, status: str, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            if self._store is None:
                self._store = SpanStore(self.db_path)
            group = self._store.set_group_status(fingerprint, status, **kwargs)
        if status == RESOLVED and self.on_resolved is not None:
            try:
                self.on_resolved(group)
            except Exception:
                _log.warning("otel-monitor: the on_resolved hook failed for group %s",
                             fingerprint, exc_info=True)
        return group

    def snooze(self, fingerprint: str, *, for_s: float | None = None,
               until_ns: int | None = None, occurrences: int | None = None
               ) -> dict[str, Any]:
        """Snooze for ``for_s`` seconds from now, until ``until_ns``, or for
        ``occurrences`` more failures (exactly one)."""
        if for_s is not None:
            if until_ns is not None:
                raise ConfigError("a snooze takes exactly one of: for a time, until a time, "
                                  "for N occurrences")
            until_ns = time.time_ns() + int(for_s * 1e9)
        return self.set_status(fingerprint, SNOOZED, until_ns=until_ns,
                               occurrences=occurrences)

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
            self._store = None
