"""Webhook bodies: Slack incoming webhooks and PagerDuty Events API v2.

Slack: ``text`` (the notification and fallback line) and ``blocks`` (a header; the
process, group, exception, time and count as fields; the innermost part of the
traceback; a link to the UI filtered on the call). PagerDuty: ``routing_key``,
``event_action`` (trigger / resolve), ``dedup_key``, and for a trigger a
``payload`` with ``summary``, ``source``, ``severity``, ``timestamp``,
``component``, ``group``, ``class`` and ``custom_details``, plus ``links``.

Every body keeps within its service's documented limits, whatever the message or the
process name (a webhook answers a body past them with a 400, and the alert is lost):

* Slack (Block Kit): a header at most 150 characters, a section's text at most 3,000,
  at most 10 fields a section, each at most 2,000, a context element at most 3,000, at
  most 50 blocks; the top-level ``text`` is held to 3,000 too. Characters are counted
  as sent: after mrkdwn escaping (``&amp;``) and with link URLs percent-encoded.
* PagerDuty (Events v2): ``summary`` at most 1,024 characters, ``dedup_key`` at most
  255 (``model.dedup_key``), the body at most 512 KB, read as 512,000 bytes. Our own
  bounds: ``source``, ``component``, ``group`` and ``class`` at most 1,024 characters, a
  ``custom_details`` text at most 8,192 (halved, all alike, while the body is too big),
  the links at most 2,048.

A cut text keeps its start and ends with ``… [N more chars]``, N the characters left
out; it is cut before escaping, so an escape is never cut in two. A link too long
loses whole query parameters, the longest first (``model.shorter_link``): a call's link
then opens the UI on its span and trace ids without the process name, and its label
says what it opens.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .model import EXCEPTION, FEED_LAG, RESOLVE, SLO_BURN, Alert, clip, iso, shorter_link

SLACK_HEADER_MAX = 150
SLACK_TEXT_MAX = 3000
SLACK_FIELD_MAX = 2000
SLACK_MAX_FIELDS = 10   # a section's
SLACK_MAX_BLOCKS = 50
SLACK_NAME_MAX = 100    # a field's name (ours)
SLACK_TYPE_MAX = 300    # an exception type's share of its field (ours)
SLACK_VALUE_MAX = SLACK_FIELD_MAX - SLACK_NAME_MAX - len("**\n")  # a field's value
PD_SUMMARY_MAX = 1024
PD_BODY_MAX = 512_000   # bytes
PD_TEXT_MAX = 1024      # source, component, group, class (ours)
PD_DETAIL_MAX = 8192    # a custom_details text (ours)
PD_DETAIL_MIN = 64      # the least a custom_details text is cut to for the body's size
LINK_MAX = 2048         # PagerDuty's links and client_url (ours)

_ICONS = {"critical": ":red_circle:", "error": ":rotating_light:", "warning": ":warning:",
          "info": ":information_source:"}


def _esc(text: str) -> str:
    """Slack mrkdwn: &, < and > are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mrkdwn(raw: str, room: int, code: bool = False) -> str:
    """``raw`` escaped for mrkdwn in at most ``room`` characters (a code span's too)."""
    if code:
        return "`" + clip(raw, room - 2, _esc) + "`"
    return clip(raw, room, _esc)


def _slack_time(ns: int, iso_text: str) -> str:
    seconds = ns // 1_000_000_000
    return f"<!date^{seconds}^{{date_short_pretty}} {{time_secs}}|{iso_text}>"


def _label(link: str) -> str:
    """What a (possibly shortened) UI link opens."""
    query = parse_qs(urlsplit(link).query)
    if "span_id" in query:
        return "Open this call in otel-monitor"
    return "Open this feed in otel-monitor" if "feed" in query else "Open otel-monitor"


def slack_body(alert: Alert) -> dict[str, Any]:
    icon = ":white_check_mark:" if alert.action == RESOLVE else _ICONS.get(alert.severity, "")
    text = clip(f"{icon} {alert.summary}".strip(), SLACK_TEXT_MAX, _esc)
    room = SLACK_VALUE_MAX
    values: list[tuple[str, str]] = []  # (name, mrkdwn value)
    if alert.process:
        values.append(("Process", _mrkdwn(alert.process, room, code=True)))
    if alert.process_group:
        values.append(("Group", _mrkdwn(alert.process_group, room)))
    if alert.exception_type:
        shown = _mrkdwn(alert.exception_type, SLACK_TYPE_MAX, code=True)
        message = alert.exception_message or ""
        values.append(("Exception", shown + (f": {_mrkdwn(message, room - len(shown) - 2)}"
                                             if message else "")))
    if alert.feed:
        values.append(("Feed", _mrkdwn(alert.feed, room, code=True)))
    for name, value in alert.fields.items():
        values.append((name, _mrkdwn(str(value), room)))
    values.append(("Time", _slack_time(alert.time_ns, alert.timestamp)))
    if alert.count > 1:
        first = f" since {_slack_time(alert.since_ns, 'then')}" if alert.since_ns else ""
        values.append(("Occurrences", f"{alert.count:,}{first}"))
    values.append(("Source", _mrkdwn(f"{alert.source} (pid {alert.pid})", room)))
    most = (SLACK_MAX_BLOCKS - 3) * SLACK_MAX_FIELDS  # beside the header, traceback, link
    if len(values) > most:
        values[most - 1:] = [("…", f"[{len(values) - most + 1} more fields]")]
    fields = [{"type": "mrkdwn", "text": f"*{_mrkdwn(name, SLACK_NAME_MAX)}*\n{value}"}
              for name, value in values]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": clip(alert.title, SLACK_HEADER_MAX)}},
    ]
    for i in range(0, len(fields), SLACK_MAX_FIELDS):
        blocks.append({"type": "section", "fields": fields[i:i + SLACK_MAX_FIELDS]})
    if alert.traceback:
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn",
            "text": "```" + clip(alert.traceback, SLACK_TEXT_MAX - 6, _esc) + "```"}})
    context: list[str] = []
    span = f"span `{alert.span_id}`" if alert.span_id else ""
    if alert.link:
        # room for the longest label: "<link|Open this call in otel-monitor> · span `…`"
        link = shorter_link(alert.link, SLACK_TEXT_MAX - len(span)
                            - len("<|Open this call in otel-monitor> · "))
        if link:
            context.append(f"<{link}|{_label(link)}>")
    if span:
        context.append(span)
    if context:
        blocks.append({"type": "context",
                       "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]})
    return {"text": text, "blocks": blocks}


def _details(alert: Alert, limit: int) -> dict[str, Any]:
    """``custom_details``, each text at most ``limit`` characters."""
    details: dict[str, Any] = {"rule": alert.rule, "count": alert.count}
    for name in ("process", "process_group", "exception_type", "exception_message",
                 "traceback", "span_id", "trace_id", "feed", "pid", "event", "fingerprint",
                 "slo"):
        value = getattr(alert, name)
        if value is not None:
            details[name] = value
    if alert.since_ns:
        details["first_occurrence"] = iso(alert.since_ns)
    details.update({clip(k.lower().replace(" ", "_"), PD_TEXT_MAX): v
                    for k, v in alert.fields.items()})
    return {k: clip(v, limit) if isinstance(v, str) else v for k, v in details.items()}


def _size(body: dict[str, Any]) -> int:
    """Bytes of ``body`` as JSON, at least what any JSON encoder sends: every non-ASCII
    character escaped (6 or 12 bytes, against 2 to 4 in UTF-8), spaces after separators."""
    return len(json.dumps(body))


def pagerduty_body(alert: Alert, routing_key: str) -> dict[str, Any]:
    body: dict[str, Any] = {"routing_key": routing_key, "event_action": alert.action,
                            "dedup_key": alert.key}
    if alert.action == RESOLVE:
        return body
    if alert.rule == EXCEPTION:
        component, group, klass = alert.process, alert.process_group, alert.exception_type
    elif alert.rule == FEED_LAG:
        component, group, klass = alert.feed, "feeds", "feed_lag"
    elif alert.rule == SLO_BURN:
        component, group, klass = alert.slo, "slos", "slo_burn"
    else:
        component, group, klass = "otel-monitor", "otel-monitor", alert.rule
    payload = {"summary": clip(alert.summary, PD_SUMMARY_MAX),
               "source": clip(alert.source, PD_TEXT_MAX),
               "severity": alert.severity, "timestamp": alert.timestamp}
    for name, value in (("component", component), ("group", group), ("class", klass)):
        if value:
            payload[name] = clip(value, PD_TEXT_MAX)
    body["payload"] = payload
    body["client"] = "otel-monitor"
    link = shorter_link(alert.link, LINK_MAX) if alert.link else None
    if link:
        body["client_url"] = link
        body["links"] = [{"href": link, "text": _label(link)}]
    limit = PD_DETAIL_MAX
    payload["custom_details"] = _details(alert, limit)
    while _size(body) > PD_BODY_MAX and limit > PD_DETAIL_MIN:
        limit //= 2
        payload["custom_details"] = _details(alert, limit)
    return body
