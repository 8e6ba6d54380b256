"""The documented limits of the two webhook formats, as checks on a body as it was sent.

One function per format returns every limit the body breaks (an empty list: within all).
The numbers are the services' own, written here independently of the code under test:

* Slack Block Kit (a message through an incoming webhook): at most 50 blocks; a header's
  plain_text at most 150 characters; a section's text at most 3,000, its fields at most
  10, each at most 2,000; a context at most 10 elements, each text at most 3,000. Slack
  counts characters (code points) of the text as sent: escapes (``&amp;``) and link URLs
  (already percent-encoded) count in full. The top-level ``text`` is held to 3,000 too
  (Slack itself only truncates it past 40,000).
* PagerDuty Events API v2: the request body at most 512 KB (read as 512,000 bytes, the
  stricter reading, of the UTF-8 JSON actually sent); ``payload.summary`` at most 1,024
  characters; ``dedup_key`` at most 255.

Beyond the numbers, what a cut must not break: every mrkdwn ``&`` starts one of Slack's
three escapes (``&amp;`` ``&lt;`` ``&gt;``), ``<`` and ``>`` only frame a link or a
``<!date…>``, and every link (Slack's ``<url|label>``, PagerDuty's ``href`` and
``client_url``) is a whole URL: http(s), a host, only URL characters, every ``%``
followed by two hex digits.
"""
from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

SLACK_MAX_BLOCKS = 50
SLACK_HEADER_MAX = 150
SLACK_TEXT_MAX = 3000
SLACK_FIELD_MAX = 2000
SLACK_MAX_FIELDS = 10
SLACK_MAX_CONTEXT_ELEMENTS = 10

PD_BODY_MAX_BYTES = 512_000
PD_SUMMARY_MAX = 1024
PD_DEDUP_KEY_MAX = 255
PD_SEVERITIES = {"critical", "error", "warning", "info"}
PD_ACTIONS = {"trigger", "acknowledge", "resolve"}

_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ANGLED = re.compile(r"<([^<>]*)>")
_BAD_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")


def sent_bytes(body: Any) -> bytes:
    """A body as httpx sends ``json=body``: compact UTF-8 JSON."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def url_problems(url: Any, where: str) -> list[str]:
    if not isinstance(url, str) or not url:
        return [f"{where}: no URL"]
    problems = []
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append(f"{where}: not an http(s) URL: {url[:80]!r}")
    if not _URL_CHARS.fullmatch(url):
        problems.append(f"{where}: characters a URL cannot hold: {url[:80]!r}")
    if _BAD_ESCAPE.search(url):
        problems.append(f"{where}: a '%' not followed by two hex digits (cut escape?)")
    return problems


def _mrkdwn_problems(text: str, where: str) -> list[str]:
    problems = []
    outside = _ANGLED.sub("", text)
    labels = []
    for target in _ANGLED.findall(text):
        url, _, label = target.partition("|")
        labels.append(label)
        if not url.startswith("!"):  # not <!date^…|…>, <!here>
            problems += url_problems(url, f"{where} link")
    # a URL's own '&' separates its parameters; the text around it and its label are text
    if any(_BAD_ENTITY.search(t) for t in [outside] + labels):
        problems.append(f"{where}: an '&' that starts no escape (unescaped or cut)")
    if "<" in outside or ">" in outside:
        problems.append(f"{where}: a '<' or '>' outside a link (unescaped or cut)")
    return problems


def _text_object_problems(obj: Any, limit: int, where: str,
                          kinds: tuple[str, ...] = ("plain_text", "mrkdwn")) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        return [f"{where}: not a text object of type {kinds}: {str(obj)[:80]}"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"{where}: empty text"]
    problems = []
    if len(text) > limit:
        problems.append(f"{where}: {len(text):,} chars > {limit:,}")
    if obj["type"] == "mrkdwn":
        problems += _mrkdwn_problems(text, where)
    return problems


def slack_problems(body: Any) -> list[str]:
    """Every Slack limit ``body`` (the parsed JSON) breaks."""
    problems: list[str] = []
    text = body.get("text")
    if not isinstance(text, str) or not text:
        problems.append("text: missing")
    else:
        if len(text) > SLACK_TEXT_MAX:
            problems.append(f"text: {len(text):,} chars > {SLACK_TEXT_MAX:,}")
        problems += _mrkdwn_problems(text, "text")
    blocks = body.get("blocks")
    if not isinstance(blocks, list) or not blocks:
        return problems + ["blocks: missing"]
    if len(blocks) > SLACK_MAX_BLOCKS:
        problems.append(f"blocks: {len(blocks)} > {SLACK_MAX_BLOCKS}")
    for i, block in enumerate(blocks):
        kind = block.get("type")
        where = f"blocks[{i}] ({kind})"
        if kind == "header":
            problems += _text_object_problems(block.get("text"), SLACK_HEADER_MAX,
                                              f"{where}.text", ("plain_text",))
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"{where}: neither text nor fields")
            if "text" in block:
                problems += _text_object_problems(block["text"], SLACK_TEXT_MAX,
                                                  f"{where}.text")
            fields = block.get("fields", [])
            if len(fields) > SLACK_MAX_FIELDS:
                problems.append(f"{where}.fields: {len(fields)} > {SLACK_MAX_FIELDS}")
            for j, item in enumerate(fields):
                problems += _text_object_problems(item, SLACK_FIELD_MAX,
                                                  f"{where}.fields[{j}]")
        elif kind == "context":
            elements = block.get("elements", [])
            if not elements or len(elements) > SLACK_MAX_CONTEXT_ELEMENTS:
                problems.append(f"{where}.elements: {len(elements)} not in 1.."
                                f"{SLACK_MAX_CONTEXT_ELEMENTS}")
            for j, item in enumerate(elements):
                problems += _text_object_problems(item, SLACK_TEXT_MAX,
                                                  f"{where}.elements[{j}]")
        else:
            problems.append(f"{where}: a block type these checks do not know")
    return problems


def pagerduty_problems(raw: bytes) -> list[str]:
    """Every PagerDuty Events v2 limit the body ``raw`` (the bytes sent) breaks."""
    problems: list[str] = []
    if len(raw) > PD_BODY_MAX_BYTES:
        problems.append(f"body: {len(raw):,} bytes > {PD_BODY_MAX_BYTES:,}")
    body = json.loads(raw)
    if not body.get("routing_key"):
        problems.append("routing_key: missing")
    action = body.get("event_action")
    if action not in PD_ACTIONS:
        problems.append(f"event_action: {action!r}")
    key = body.get("dedup_key")
    if key is not None and (not isinstance(key, str) or len(key) > PD_DEDUP_KEY_MAX):
        problems.append(f"dedup_key: {len(str(key))} chars > {PD_DEDUP_KEY_MAX}")
    if action == "trigger":
        payload = body.get("payload") or {}
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary:
            problems.append("payload.summary: missing")
        elif len(summary) > PD_SUMMARY_MAX:
            problems.append(f"payload.summary: {len(summary):,} chars > {PD_SUMMARY_MAX:,}")
        if not payload.get("source"):
            problems.append("payload.source: missing")
        if payload.get("severity") not in PD_SEVERITIES:
            problems.append(f"payload.severity: {payload.get('severity')!r}")
        if not isinstance(payload.get("custom_details", {}), dict):
            problems.append("payload.custom_details: not an object")
    if "client_url" in body:
        problems += url_problems(body["client_url"], "client_url")
    for i, link in enumerate(body.get("links", [])):
        problems += url_problems(link.get("href"), f"links[{i}].href")
    return problems


def longest_text(body: Any) -> int:
    """The longest ``text`` of a Slack body, in characters (the top-level one included)."""
    best = 0

    def walk(node: Any) -> None:
        nonlocal best
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    best = max(best, len(value))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(body)
    return best
