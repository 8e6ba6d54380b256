"""Resolving an error group: PagerDuty ``resolve`` for its incident and a Slack follow-up.

``send_resolved(settings, group)`` is what the process that resolves a group calls
(``otel-monitor serve``'s resolve route, through its hook): ``group`` is the group as
the store reads it (``fingerprint``, ``title``, ``process``, ``exception_type``,
``count``, ``last_seen_ns``). It builds one ``resolve`` alert keyed
``dedup_key("group", fingerprint)`` (the key the group's trigger alerts carried), so
PagerDuty closes that incident, and Slack is told "Resolved: <title>".

Delivery is the engine's: one ``WebhookSender`` per configured webhook (retries,
backoff, a bounded queue), kept per settings for the life of the process and started
at the first resolve, and every outcome recorded in the store's alerts table by a
``StateWriter``. A maintenance window or a silence holds a resolve as it holds a
trigger: recorded ``suppressed`` with its rule, posted nowhere. The call returns at
once (``wait_s``: wait up to that long for the deliveries and their records).
"""
from __future__ import annotations

import atexit
import os
import threading
import time
from typing import Any, Mapping

from exporters.state import SUPPRESSED, SUPPRESSED_TARGET, AlertRecord

from ..settings import Settings
from ..webhooks import Target, parse_webhooks
from .delivery import WebhookSender
from .model import EXCEPTION, RESOLVE, Alert, clip, dedup_key, iso, ui_link
from .payloads import PD_SUMMARY_MAX
from .persist import StateWriter
from .suppress import Suppressor

RESOLVED = "resolved"  # the alert's ``event``


class _NoFeeds:
    """The serve process ticks no feed: its StateWriter writes alert outcomes only."""

    feeds: Mapping[str, Any] = {}

    def edges(self) -> set:
        return set()


def resolved_alert(settings: Settings, group: Mapping[str, Any],
                   now_ns: int | None = None) -> Alert:
    """The ``resolve`` alert for ``group`` (a dict as the store reads it)."""
    fingerprint = str(group["fingerprint"])
    title = str(group.get("title") or group.get("exception_type") or fingerprint)
    process = group.get("process")
    count = int(group.get("count") or 0)
    now = now_ns if now_ns is not None else time.time_ns()
    summary = f"Resolved: {title}" + (f" in {process}" if process else "")
    if count:
        summary += f" ({count:,} occurrences in all)"
    fields: dict[str, Any] = {"Error group": fingerprint}
    if group.get("last_seen_ns"):
        fields["Last seen"] = iso(int(group["last_seen_ns"]))
    return Alert(rule=EXCEPTION, action=RESOLVE, key=dedup_key("group", fingerprint),
                 severity="info", title=f"Resolved: {title}", summary=summary, time_ns=now,
                 count=max(count, 1), process=process,
                 exception_type=group.get("exception_type"),
                 link=ui_link(settings.ui_url, error=fingerprint),
                 service=group.get("service"), pid=os.getpid(), fields=fields,
                 event=RESOLVED, fingerprint=fingerprint)


class Resolver:
    """The senders and the state writer that resolves of one ``Settings`` go through."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.targets: tuple[Target, ...] = parse_webhooks(settings.alert_webhooks,
                                                          settings.pagerduty_routing_key)
        self.suppressor = Suppressor.from_settings(settings)
        self.state = StateWriter(settings.db_path, _NoFeeds(), service_name=None,
                                 default_stale_after_s=settings.feed_stale_after_s,
                                 retention_hours=settings.retention_hours)
        self.senders = [WebhookSender(t, self._report, queue_size=settings.alert_queue_size,
                                      timeout_s=settings.alert_timeout_s,
                                      max_attempts=settings.alert_max_attempts,
                                      backoff_s=settings.alert_backoff_s)
                        for t in self.targets]

    def send(self, alert: Alert) -> None:
        why = self.suppressor.why(alert, time.time_ns()) if self.suppressor else None
        if why is not None:
            self._record(alert, SUPPRESSED_TARGET, SUPPRESSED, 0, why)
            return
        for sender in self.senders:
            sender.submit(alert)

    def _report(self, alert: Alert, target: Target, status: str, attempts: int,
                error: str | None) -> None:
        self._record(alert, target.label, status, attempts, error)

    def _record(self, alert: Alert, target: str, status: str, attempts: int,
                error: str | None) -> None:
        self.state.add_result(AlertRecord(
            ts_ns=alert.time_ns, rule=alert.rule, action=alert.action, key=alert.key,
            target=target, status=status, attempts=attempts, count=alert.count,
            summary=clip(alert.summary, PD_SUMMARY_MAX), error=error, process=alert.process,
            done_ns=time.time_ns()))

    def idle(self) -> bool:
        return self.state.idle() and all(s.idle() for s in self.senders)

    def wait(self, timeout_s: float) -> bool:
        """Until every pending resolve is delivered (or given up) and recorded."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(s.idle() for s in self.senders):
                if self.state.worker.flush(max(0.0, deadline - time.monotonic())) \
                        and self.idle():
                    return True
            time.sleep(0.01)
        return self.idle()

    def shutdown(self, grace_s: float = 3.0) -> None:
        deadline = time.monotonic() + grace_s
        for sender in self.senders:
            sender.request_stop(deadline)
        for sender in self.senders:
            sender.finish(deadline)
        self.state.shutdown()


_resolvers: dict[Settings, Resolver] = {}
_lock = threading.Lock()


def _resolver(settings: Settings) -> Resolver:
    with _lock:
        found = _resolvers.get(settings)
        if found is None:
            if not _resolvers:
                atexit.register(shutdown)
            found = _resolvers[settings] = Resolver(settings)
        return found


def send_resolved(settings: Settings, group: Mapping[str, Any], *,
                  wait_s: float | None = None) -> None:
    """Tell the webhooks ``group`` is resolved (see the module's doc). Nothing is sent
    without webhooks, or with ``alert_exceptions`` off."""
    if not settings.alert_webhooks or not settings.alert_exceptions:
        return
    resolver = _resolver(settings)
    resolver.send(resolved_alert(settings, group))
    if wait_s is not None:
        resolver.wait(wait_s)


def shutdown() -> None:
    """Deliver what is pending (a few seconds at most) and close: at exit, and in tests."""
    with _lock:
        resolvers = list(_resolvers.values())
        _resolvers.clear()
    for r in resolvers:
        r.shutdown()
