"""otel-monitor watching itself, in process: alerts on its own health through the same
webhooks (``alert_self_health``).

The alert engine asks ``SelfMonitor.check(now)`` on its cycle (at most every
``check_every_s``); it judges the conditions of ``exporters.self_health`` with the same
limits as the ribbon's badge and the Prometheus rules (``collector-config/prometheus/
selfmon-rules.yml``):

* this process's writer: lag > 5 s, calls dropped in the last minute (its health row);
* the store: at 90 % of its size cap or more (``max_db_mb``), retention behind by more
  than 2 purge intervals;
* this process's webhook deliveries: any failed or dropped in the last 15 minutes
  (counted as the senders report them, ``note_delivery``: known even when the store
  cannot be written).

(Ingest refusals happen in the serving process, which has no alert engine: they are in
its ``/metrics``, the Prometheus rules and the ribbon.)

Each condition is an incident: a ``trigger`` when it turns bad, a ``resolve`` when it
is good again, keyed ``otel-monitor/self/<condition>/<host>/<pid>`` (the store's
conditions per store path instead). An alert's ``process`` is ``otel-monitor:<condition>``,
so ``alert_silences`` can hold them (``process=otel-monitor:*``); maintenance windows
hold them like every alert (the engine's ``_dispatch``).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import Any

from exporters.database import Database
from exporters.errors import StoreError
from exporters.self_health import (ARCHIVE_BEHIND, ARCHIVE_LOST, DROPS, RETENTION_BEHIND,
                                   STORE_SIZE, WEBHOOK_FAILING, WRITER_LAG, Condition,
                                   SelfHealth, SelfHealthLimits)

from ..settings import Settings
from .model import RESOLVE, TRIGGER, Alert, dedup_key, ui_link

_log = logging.getLogger("otel_monitor")

SELF_HEALTH = "self_health"   # the alerts' rule
PROCESS_PREFIX = "otel-monitor:"
CHECK_EVERY_S = 1.0
NS = 1_000_000_000
TITLES = {WRITER_LAG: "otel-monitor writer is behind",
          DROPS: "otel-monitor is dropping calls",
          STORE_SIZE: "otel-monitor store is near its size cap",
          RETENTION_BEHIND: "otel-monitor retention is behind",
          WEBHOOK_FAILING: "otel-monitor cannot deliver alerts",
          ARCHIVE_BEHIND: "otel-monitor archive is behind",
          ARCHIVE_LOST: "otel-monitor deleted calls without archiving them"}
FAILED_DELIVERY = ("failed", "dropped")


class SelfMonitor:
    def __init__(self, settings: Settings, *, service_name: str | None = None,
                 limits: SelfHealthLimits = SelfHealthLimits(),
                 check_every_s: float = CHECK_EVERY_S) -> None:
        self.settings = settings
        self.service_name = service_name
        self.health = SelfHealth(limits)
        self.limits = limits
        self.check_every_s = check_every_s
        self.enabled = settings.alert_self_health
        self._db: Database | None = None
        self._db_pid = 0
        self._next_ns = 0
        self._active: dict[str, Condition] = {}
        self._failures: deque[tuple[int, str]] = deque(maxlen=10_000)
        self._failing_targets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def note_delivery(self, status: str, target: str = "") -> None:
        """From the sender threads: how one delivery ended, to which target (its label)."""
        if status in FAILED_DELIVERY:
            with self._lock:
                self._failures.append((time.time_ns(), target))

    def _failed_since(self, since_ns: int) -> list[str]:
        """The targets of the deliveries failed or dropped since then, one per failure."""
        with self._lock:
            return [target for t, target in self._failures if t >= since_ns]

    def check(self, now_ns: int, host: str, pid: int) -> list[Alert]:
        """The alerts due now (triggers and resolves); none between checks."""
        if not self.enabled or now_ns < self._next_ns:
            return []
        self._next_ns = now_ns + int(self.check_every_s * NS)
        try:
            conditions = self._judge(now_ns, pid)
        except (StoreError, OSError):  # no store to read (yet): judge again next time
            _log.debug("otel-monitor: self-health not readable", exc_info=True)
            self.close()
            return []
        alerts = []
        for c in conditions:
            key = c.name
            if c.bad and key not in self._active:
                self._active[key] = c
                alerts.append(self._alert(c, TRIGGER, now_ns, host, pid))
            elif not c.bad and key in self._active:
                del self._active[key]
                alerts.append(self._alert(c, RESOLVE, now_ns, host, pid))
        return alerts

    def _judge(self, now_ns: int, pid: int) -> list[Condition]:
        if self._db is None or self._db_pid != os.getpid():  # a forked child opens its own
            self._db = Database(self.settings.db_path, readonly=True)
            self._db_pid = os.getpid()
        db = self._db
        rows = [dict(r) for r in db.execute("SELECT * FROM health WHERE pid = ?", (pid,))]
        conditions = self.health.judge(db, rows, now_ns, pids={pid})  # its own row
        failed = self._failed_since(now_ns - int(self.limits.webhook_window_s * NS))
        self._failing_targets = frozenset(failed)
        for c in conditions:
            if c.name == WEBHOOK_FAILING:  # this process's own deliveries
                c.bad, c.value = bool(failed), len(failed)
                c.text = f"{len(failed):,} failed or dropped"
                if failed:
                    c.text += f" ({', '.join(sorted(self._failing_targets))})"
        return conditions

    def _alert(self, c: Condition, action: str, now_ns: int, host: str, pid: int) -> Alert:
        where = (f"{host}/{pid}" if c.subject not in ("store", "ingest")
                 else os.path.abspath(self.settings.db_path))
        title = TITLES.get(c.name, c.name)
        if action == TRIGGER:
            summary = f"{title}: {c.text} (bad when {c.rule})"
        else:
            title = f"{title}: recovered"
            summary = f"{TITLES.get(c.name, c.name)} no more: {c.text} ({c.rule} is over)"
        fields: dict[str, Any] = {"Condition": c.name, "Measured": c.text,
                                  "Bad when": c.rule, "Where": where}
        # Failing targets are told nothing of their own failure: the others are.
        skip = self._failing_targets if c.name == WEBHOOK_FAILING else frozenset()
        return Alert(rule=SELF_HEALTH, action=action, skip_targets=skip,
                     key=dedup_key("self", c.name, host, str(pid)) if c.subject not in (
                         "store", "ingest") else dedup_key("self", c.name, where),
                     severity="warning" if action == TRIGGER else "info", title=title,
                     summary=summary, time_ns=now_ns, process=PROCESS_PREFIX + c.name,
                     link=ui_link(self.settings.ui_url), service=self.service_name,
                     host=host, pid=pid, fields=fields)

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close()
            except Exception:
                pass
