"""An Alert: what every rule produces and every webhook body is built from.

It holds texts that are safe to send: an exception's message and traceback come
from ``exporters.records.error_texts``, which scrubs the masked arguments' clear
values from them, and no argument value is ever part of an alert.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

# Rules
EXCEPTION = "exception"
FEED_LAG = "feed_lag"
BACKPRESSURE = "backpressure"

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


def dedup_key(*parts: str) -> str:
    key = "otel-monitor/" + "/".join(parts)
    return key if len(key) <= MAX_DEDUP_KEY else key[:MAX_DEDUP_KEY - 1] + "…"


def ui_link(ui_url: str, **query: str | None) -> str:
    """``<ui_url>/?process=…&span_id=…`` (or ``?feed=…``): the UI opened on a call or feed."""
    params = {k: v for k, v in query.items() if v}
    return ui_url.rstrip("/") + "/?" + urlencode(params)


def traceback_excerpt(text: str, limit: int = 2500) -> str:
    """The traceback as it is if it fits, else its header and as many of its last lines
    (the innermost frames and the exception) as fit in ``limit`` characters."""
    text = text.rstrip("\n")
    if len(text) <= limit:
        return text
    lines = text.splitlines()
    head = lines[0] if lines and lines[0].startswith("Traceback") else ""
    kept: list[str] = []
    size = len(head) + 4
    for line in reversed(lines[1:] if head else lines):
        if size + len(line) + 1 > limit:
            break
        kept.append(line)
        size += len(line) + 1
    if not kept:  # one huge line: its end
        return ("…" + text[-(limit - 1):])
    return "\n".join(([head] if head else []) + ["  …"] + kept[::-1])
