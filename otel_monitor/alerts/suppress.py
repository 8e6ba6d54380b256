"""Maintenance windows and silences: which alerts are held back, and why.

``Suppressor.why(alert, now_ns)`` is None for an alert to post, else the rule that
holds it: ``maintenance window Sat 06:00-12:00 Europe/London`` (every alert, while a
window of ``alert_maintenance_windows`` holds now) or ``silence process=… until=…
reason=…`` (an ``alert_silences`` entry not expired yet whose process, error group,
feed or SLO matches the alert). The engine records a held alert in the store with the outcome
``suppressed`` and that text, and posts nothing: an alert is never dropped silently.
Resolves are judged the same way as triggers.
"""
from __future__ import annotations

from ..schedules import Silence, Window, parse_silence, parse_window
from ..settings import Settings
from .model import Alert


class Suppressor:
    def __init__(self, windows: tuple[Window, ...] = (), silences: tuple[Silence, ...] = ()
                 ) -> None:
        self.windows = windows
        self.silences = silences

    @classmethod
    def from_settings(cls, settings: Settings) -> "Suppressor":
        return cls(tuple(parse_window(t) for t in settings.alert_maintenance_windows),
                   tuple(parse_silence(t) for t in settings.alert_silences))

    def __bool__(self) -> bool:
        return bool(self.windows or self.silences)

    def why(self, alert: Alert, now_ns: int) -> str | None:
        for w in self.windows:
            if w.occurrence(now_ns) is not None:
                return f"maintenance window {w.text}"
        for s in self.silences:
            if now_ns < s.until_ns and s.matches(process=alert.process,
                                                 group=alert.fingerprint, feed=alert.feed,
                                                 slo=alert.slo):
                return f"silence {s.text}"
        return None
