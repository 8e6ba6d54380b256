"""Error groups: what the writer tells the alert engine, and the words both use.

Every failed call belongs to one group, keyed by its fingerprint (process,
exception type, the top in-application frames). The writer keeps the groups in
the store, in the same transaction as the calls, and reports what a batch changed
as ``GroupEvent``s; the alert engine turns those into alerts.
"""
from __future__ import annotations

from dataclasses import dataclass

# A group's status
OPEN = "open"
RESOLVED = "resolved"
IGNORED = "ignored"
SNOOZED = "snoozed"
STATUSES = (OPEN, RESOLVED, IGNORED, SNOOZED)

# What happened to a group in a written batch
NEW = "new"                # its first failure ever (in this store)
REGRESSION = "regression"  # a resolved group failed again: it is open again
SPIKE = "spike"            # its 5-minute rate reached the spike multiple of its hourly rate
REARMED = "rearmed"        # a snooze ran out (time passed or N occurrences seen): open again
EVENT_KINDS = (NEW, REGRESSION, SPIKE, REARMED)


@dataclass(frozen=True)
class GroupEvent:
    kind: str                  # one of EVENT_KINDS
    fingerprint: str           # the group's key (hex digest)
    process: str               # dotted module.qualname
    exception_type: str        # fully-qualified
    title: str                 # "ExceptionType: normalised message"
    count: int                 # the group's exact count after this batch
    first_seen_ns: int
    last_seen_ns: int
    span_id: str               # the call that caused the event: 16 hex digits
    trace_id: str              # 32 hex digits
    message: str               # that call's message (scrubbed, as stored)
    traceback: str             # that call's traceback text (scrubbed, as stored)
    service: str | None = None
    process_group: str | None = None
    pid: int | None = None
    rate_5m: float | None = None     # SPIKE: failures per minute over the last 5 minutes
    rate_1h: float | None = None     # SPIKE: failures per minute over the last hour


class ToldEvents:
    """The NEW events a writer has handed on (bounded): a batch resent after its answer
    was lost is told its groups' NEW events again (``groups.replayed_new_events``), and
    one already told is dropped here, so each is told once."""

    LIMIT = 4096

    def __init__(self) -> None:
        self._told: dict[tuple[str, str], None] = {}

    def fresh(self, events: list[GroupEvent]) -> list[GroupEvent]:
        out = []
        for event in events:
            if event.kind == NEW:
                key = (event.fingerprint, event.span_id)
                if key in self._told:
                    continue
                self._told[key] = None
                if len(self._told) > self.LIMIT:
                    del self._told[next(iter(self._told))]  # the oldest
            out.append(event)
        return out
