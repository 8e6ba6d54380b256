"""Webhook bodies: Slack incoming webhooks and PagerDuty Events API v2.

Slack: ``text`` (the notification and fallback line) and ``blocks`` (a header; the
process, group, exception, time and count as fields; the innermost part of the
traceback; a link to the UI filtered on the call). PagerDuty: ``routing_key``,
``event_action`` (trigger / resolve), ``dedup_key``, and for a trigger a
``payload`` with ``summary``, ``source``, ``severity``, ``timestamp``,
``component``, ``group``, ``class`` and ``custom_details``, plus ``links``.
"""
from __future__ import annotations

from typing import Any

from .model import EXCEPTION, FEED_LAG, RESOLVE, Alert, iso

SLACK_HEADER_MAX = 150
SLACK_TEXT_MAX = 3000
SLACK_FIELD_MAX = 2000
PD_SUMMARY_MAX = 1024

_ICONS = {"critical": ":red_circle:", "error": ":rotating_light:", "warning": ":warning:",
          "info": ":information_source:"}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _esc(text: str) -> str:
    """Slack mrkdwn: &, < and > are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_time(ns: int, iso_text: str) -> str:
    seconds = ns // 1_000_000_000
    return f"<!date^{seconds}^{{date_short_pretty}} {{time_secs}}|{iso_text}>"


def slack_body(alert: Alert) -> dict[str, Any]:
    icon = ":white_check_mark:" if alert.action == RESOLVE else _ICONS.get(alert.severity, "")
    text = _cut(f"{icon} {alert.summary}".strip(), SLACK_TEXT_MAX)
    fields: list[tuple[str, str]] = []
    if alert.process:
        fields.append(("Process", f"`{_esc(alert.process)}`"))
    if alert.process_group:
        fields.append(("Group", _esc(alert.process_group)))
    if alert.exception_type:
        message = alert.exception_message or ""
        fields.append(("Exception", f"`{_esc(alert.exception_type)}`"
                                    + (f": {_esc(message)}" if message else "")))
    if alert.feed:
        fields.append(("Feed", f"`{_esc(alert.feed)}`"))
    for name, value in alert.fields.items():
        fields.append((name, _esc(str(value))))
    fields.append(("Time", _slack_time(alert.time_ns, alert.timestamp)))
    if alert.count > 1:
        first = f" since {_slack_time(alert.since_ns, 'then')}" if alert.since_ns else ""
        fields.append(("Occurrences", f"{alert.count:,}{first}"))
    fields.append(("Source", _esc(f"{alert.source} (pid {alert.pid})")))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": _cut(alert.title, SLACK_HEADER_MAX)}},
    ]
    for i in range(0, len(fields), 10):  # Slack: at most 10 fields a section
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": _cut(f"*{name}*\n{value}", SLACK_FIELD_MAX)}
            for name, value in fields[i:i + 10]]})
    if alert.traceback:
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn",
            "text": "```" + _cut(_esc(alert.traceback), SLACK_TEXT_MAX - 6) + "```"}})
    if alert.link:
        what = "this call" if alert.span_id else ("this feed" if alert.feed else "otel-monitor")
        ids = f" · span `{alert.span_id}`" if alert.span_id else ""
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"<{alert.link}|Open {what} in otel-monitor>{ids}"}]})
    return {"text": text, "blocks": blocks}


def pagerduty_body(alert: Alert, routing_key: str) -> dict[str, Any]:
    body: dict[str, Any] = {"routing_key": routing_key, "event_action": alert.action,
                            "dedup_key": alert.key}
    if alert.action == RESOLVE:
        return body
    details: dict[str, Any] = {"rule": alert.rule, "count": alert.count}
    for name in ("process", "process_group", "exception_type", "exception_message",
                 "traceback", "span_id", "trace_id", "feed", "pid"):
        value = getattr(alert, name)
        if value is not None:
            details[name] = value
    if alert.since_ns:
        details["first_occurrence"] = iso(alert.since_ns)
    details.update({k.lower().replace(" ", "_"): v for k, v in alert.fields.items()})
    if alert.rule == EXCEPTION:
        component, group, klass = alert.process, alert.process_group, alert.exception_type
    elif alert.rule == FEED_LAG:
        component, group, klass = alert.feed, "feeds", "feed_lag"
    else:
        component, group, klass = "otel-monitor", "otel-monitor", alert.rule
    payload = {"summary": _cut(alert.summary, PD_SUMMARY_MAX), "source": alert.source,
               "severity": alert.severity, "timestamp": alert.timestamp,
               "custom_details": details}
    for name, value in (("component", component), ("group", group), ("class", klass)):
        if value:
            payload[name] = value
    body["payload"] = payload
    body["client"] = "otel-monitor"
    if alert.link:
        body["client_url"] = alert.link
        body["links"] = [{"href": alert.link, "text": "Open in otel-monitor"}]
    return body
