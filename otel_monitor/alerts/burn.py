"""Burn-rate alerts of SLOs (issue 16), evaluated in the process that registered them.

``BurnRateRule.check(now)`` runs on the alert engine's thread at every cycle and, every
``slo_eval_interval_s``, reads each registered SLO's status from the store's per-minute
rollups (``exporters.queries.slos.slo_status``: the same reads as ``/api/slos``) and
returns the alerts to dispatch:

- a **page** holds when both windows of a page pair burn at or above the pair's factor
  (14.4x over 1 h and 5 min, or 6x over 6 h and 30 min, for a 28-day SLO; scaled to
  the SLO's window, see ``otel_monitor.slo``); a **ticket** likewise with its pair
  (1x over 3 d and 6 h);
- each severity of each SLO triggers once when it starts to hold (one ``slo_burn``
  alert, keyed ``dedup_key("slo", name, severity)``, PagerDuty severity ``critical``
  for a page, ``warning`` for a ticket) and resolves when none of its pairs holds any
  more (or the SLO is no longer registered);
- the engine dispatches them as any alert: maintenance windows and ``slo=`` silences
  hold them back (recorded ``suppressed``), the webhook senders post them.

Only the process that registered the SLOs evaluates them (``SLORegistry.owner_pid``):
a forked child (a pre-fork server's worker) inherits the registry but does not page
again. The store is read through a read-only connection of the engine's thread; a
store that cannot be read yet (not created, locked) is tried again at the next
interval, keeping the alerts' state.
"""
from __future__ import annotations

import logging
import os
import socket
from typing import Any, Callable, Sequence

from exporters.database import Database
from exporters.queries.slos import slo_status

from ..slo import PAGE, SEVERITIES, SLO, TICKET, window_text
from .model import RESOLVE, SLO_BURN, TRIGGER, Alert, dedup_key, ui_link

_log = logging.getLogger("otel_monitor")
_NS = 1_000_000_000
PD_SEVERITY = {PAGE: "critical", TICKET: "warning"}


def _rate(x: float) -> str:
    return f"{x:.1f}x" if x < 100 else f"{x:,.0f}x"


class BurnRateRule:
    def __init__(self, db_path: str, slos: Callable[[], Sequence[SLO]], *,
                 interval_s: float, ui_url: str, service_name: str | None = None,
                 owner_pid: Callable[[], int | None] = lambda: None) -> None:
        self.db_path = db_path
        self.slos = slos
        self.interval_ns = int(interval_s * _NS)
        self.ui_url = ui_url
        self.service_name = service_name
        self.owner_pid = owner_pid
        self.reset()

    def reset(self) -> None:
        """Also in a forked child: its alerts are its own (none)."""
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._db: Database | None = None
        self._next_ns = 0
        self.active: dict[tuple[str, str], SLO] = {}   # (name, severity) triggered
        self.statuses: dict[str, dict[str, Any]] = {}  # the last status of each SLO
        self.evaluations = 0
        self.failures = 0

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close()
            except Exception:
                pass

    def wanted(self) -> bool:
        """SLOs registered by this very process (not inherited over a fork)."""
        owner = self.owner_pid()
        return owner is not None and owner == os.getpid() and bool(self.slos())

    def check(self, now: int) -> list[Alert]:
        if now < self._next_ns:
            return []
        self._next_ns = now + self.interval_ns
        if self.pid != os.getpid():
            self.reset()
            self._next_ns = now + self.interval_ns
        slos = self.slos() if self.owner_pid() == os.getpid() else ()
        by_name = {s.name: s for s in slos}
        alerts: list[Alert] = []
        # An SLO no longer registered (or changed): its open alerts resolve.
        for (name, severity), slo in list(self.active.items()):
            if by_name.get(name) != slo:
                del self.active[(name, severity)]
                alerts.append(self._alert(slo, severity, RESOLVE, now, None,
                                          note="no longer registered"))
        if not slos:
            return alerts
        try:
            if self._db is None:
                self._db = Database(self.db_path, readonly=True)
            statuses = {s.name: slo_status(self._db, s.target, s.window_s, s.rule_tuples,
                                           now_ns=now) for s in slos}
        except Exception:  # not created yet, locked, replaced: the next interval
            self.failures += 1
            self.close()
            _log.debug("otel-monitor: SLO evaluation failed", exc_info=True)
            return alerts
        self.evaluations += 1
        self.statuses = statuses
        for slo in slos:
            status = statuses[slo.name]
            for severity in SEVERITIES:
                holds = any(b["holds"] for b in status["burn_rates"]
                            if b["severity"] == severity)
                key = (slo.name, severity)
                if holds and key not in self.active:
                    self.active[key] = slo
                    alerts.append(self._alert(slo, severity, TRIGGER, now, status))
                elif not holds and key in self.active:
                    del self.active[key]
                    alerts.append(self._alert(slo, severity, RESOLVE, now, status))
        return alerts

    def _alert(self, slo: SLO, severity: str, action: str, now: int,
               status: dict[str, Any] | None, note: str | None = None) -> Alert:
        kind = (f"{slo.objective:g}% of calls under {slo.threshold_ms:g} ms"
                if slo.threshold_ms is not None else f"{slo.objective:g}% of calls not failing")
        key, value = slo.selector
        fields: dict[str, Any] = {"SLO": slo.name, "Objective": f"{kind} over {slo.window}",
                                  "Selector": f"{key}={value}"}
        worst = None
        if status is not None:
            rules = [b for b in status["burn_rates"] if b["severity"] == severity]
            worst = max(rules, key=lambda b: min(b["long_burn_rate"], b["short_burn_rate"]))
            fields["Burn rates"] = "; ".join(
                f"{_rate(b['long_burn_rate'])} over {window_text(b['long_window_s'])}, "
                f"{_rate(b['short_burn_rate'])} over {window_text(b['short_window_s'])} "
                f"(threshold {b['factor']:g}x)" for b in rules)
            if status["sli"] is not None:
                fields["SLI"] = f"{status['sli']:.3f}% over {slo.window}"
            fields["Budget remaining"] = f"{status['budget_remaining']:.1%}"
        word = "Page" if severity == PAGE else "Ticket"
        if action == TRIGGER:
            assert worst is not None
            title = f"{word}: SLO {slo.name} burning its error budget"
            summary = (f"SLO {slo.name} ({kind}, {slo.window}) burns its error budget at "
                       f"{_rate(worst['long_burn_rate'])} over "
                       f"{window_text(worst['long_window_s'])} and "
                       f"{_rate(worst['short_burn_rate'])} over "
                       f"{window_text(worst['short_window_s'])} "
                       f"(threshold {worst['factor']:g}x)")
        else:
            title = f"Resolved ({word.lower()}): SLO {slo.name}"
            summary = (f"SLO {slo.name}: burn rate back under its {word.lower()} thresholds"
                       + (f" ({note})" if note else ""))
        return Alert(rule=SLO_BURN, action=action, key=dedup_key("slo", slo.name, severity),
                     severity=PD_SEVERITY[severity] if action == TRIGGER else "info",
                     title=title, summary=summary, time_ns=now,
                     process=slo.process, process_group=slo.process_group,
                     link=ui_link(self.ui_url, tab="slos", slo=slo.name),
                     service=slo.service or self.service_name, host=self.host, pid=self.pid,
                     fields=fields, event=severity, slo=slo.name)


__all__ = ["BurnRateRule", "PD_SEVERITY"]
