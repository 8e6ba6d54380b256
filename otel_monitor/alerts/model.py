"""An Alert: what every rule produces and every webhook body is built from.

It holds texts that are safe to send: an exception's message and traceback come
from ``exporters.records.error_texts``, which scrubs the masked arguments' clear
values from them, and no argument value is ever part of an alert.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlencode

# Rules
EXCEPTION = "exception"
FEED_LAG = "feed_lag"
BACKPRESSURE = "backpressure"
SLO_BURN = "slo_burn"

# Actions (PagerDuty's event_action)
TRIGGER = "trigger"
RESOLVE = "resolve"

MAX_DEDUP_KEY = 255  # PagerDuty's limit


@dataclass
class Alert:
    rule: str
    action: str
    key: str                      # dedup key: per process + exception type, per feed, ...
    severity: str                 # critical | error | warning | info (PagerDuty's)
    title: str                    # a headline
    summary: str                  # one line: Slack's text, PagerDuty's payload.summary
    time_ns: int                  # when the condition happened (the call ended, the feed
                                  # passed its threshold, ...)
    count: int = 1                # occurrences this alert stands for
    since_ns: int | None = None   # the first of them, when more than one
    process: str | None = None
    process_group: str | None = None
    exception_type: str | None = None
    exception_message: str | None = None
    traceback: str | None = None  # the innermost part of the traceback, bounded
    span_id: str | None = None    # 16 hex digits
    trace_id: str | None = None   # 32 hex digits
    feed: str | None = None
    link: str | None = None       # the UI, filtered on the call (or the feed)
    service: str | None = None
    host: str | None = None
    pid: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # rule-specific, shown as they are
    # targets (labels) not to post to: "alerts cannot be delivered" goes to the others
    skip_targets: frozenset[str] = frozenset()
    event: str | None = None      # an error group's event (exporters.error_groups: new,
                                  # regression, spike, rearmed); None for a call's alert
    fingerprint: str | None = None  # the error group's
    slo: str | None = None        # an SLO's name (rule slo_burn)

    @property
    def timestamp(self) -> str:
        return iso(self.time_ns)

    @property
    def source(self) -> str:
        """Where it happened: ``service@host``."""
        return f"{self.service or 'unknown_service'}@{self.host or 'unknown-host'}"


def iso(ns: int) -> str:
    """UTC, ISO-8601 with milliseconds and a Z."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1_000_000:03d}Z"


def clip(text: str, limit: int, render: Callable[[str], str] = str) -> str:
    """``render(text)`` if it is at most ``limit`` characters long, else ``render`` of as
    much of its start as fits followed by ``… [N more chars]``, N the characters of
    ``text`` left out. ``render`` (an escaping) may lengthen a text but not shorten it:
    cutting before it, never a rendered escape is cut in two."""
    shown = render(text)
    if len(shown) <= limit:
        return shown

    def cut(keep: int) -> str:
        return render(text[:keep]) + f"… [{len(text) - keep:,} more chars]"

    if len(cut(0)) > limit:  # no room for the mark: the shortest one
        return "…"[:limit]
    low, high = 0, min(len(text), limit)  # ``cut(low)`` fits; nothing past ``high`` can
    while low < high:
        mid = (low + high + 1) // 2
        if len(cut(mid)) <= limit:
            low = mid
        else:
            high = mid - 1
    return cut(low)


def dedup_key(*parts: str) -> str:
    """``otel-monitor/<part>/<part>…``; past PagerDuty's 255, its start and a digest of the
    whole, so two long keys that differ only at their end stay two keys. Counted in UTF-8
    bytes, which bounds the characters too whichever PagerDuty counts."""
    key = "otel-monitor/" + "/".join(parts)
    data = key.encode("utf-8")
    if len(data) <= MAX_DEDUP_KEY:
        return key
    digest = "…#" + hashlib.sha256(data).hexdigest()[:16]
    room = MAX_DEDUP_KEY - len(digest.encode("utf-8"))
    return data[:room].decode("utf-8", "ignore") + digest


def ui_link(ui_url: str, **query: str | None) -> str:
    """``<ui_url>/?process=…&span_id=…`` (or ``?feed=…``): the UI opened on a call or feed."""
    params = {k: v for k, v in query.items() if v}
    return ui_url.rstrip("/") + "/?" + urlencode(params)


def shorter_link(link: str, limit: int) -> str | None:
    """``link`` if it is at most ``limit`` characters long; else the same UI filtered on
    fewer parameters, the longest (percent-encoded) left out first: a call's link keeps
    its ``span_id`` and ``trace_id`` when its ``process`` is too long. Whole parameters
    go, so no percent-escape is ever cut. None when not even the bare UI address fits."""
    base, _, query = link.partition("?")
    params = [p for p in query.split("&") if p]
    while params and len(base) + 1 + len("&".join(params)) > limit:
        params.remove(max(params, key=len))
    if params:
        return base + "?" + "&".join(params)
    return base if len(base) <= limit else None


def traceback_excerpt(text: str, limit: int = 2500) -> str:
    """The traceback as it is if it fits, else its header and as many of its last lines
    (the innermost frames and the exception) as fit in ``limit`` characters. A line
    longer than a quarter of ``limit`` (a huge message) keeps its start only, so the
    frames above it still fit."""
    text = text.rstrip("\n")
    if len(text) <= limit:
        return text
    lines = [clip(line, limit // 4) for line in text.splitlines()]
    if sum(len(line) + 1 for line in lines) - 1 <= limit:
        return "\n".join(lines)
    head = lines[0] if lines and lines[0].startswith("Traceback") else ""
    kept: list[str] = []
    size = len(head) + 4
    for line in reversed(lines[1:] if head else lines):
        if size + len(line) + 1 > limit:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(([head] if head else []) + ["  …"] + kept[::-1])
