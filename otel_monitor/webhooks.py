"""Which webhook URLs are Slack and which PagerDuty.

Each entry of ``alert_webhooks`` (``OTEL_MONITOR_WEBHOOKS``, comma-separated) is a
URL, optionally prefixed by its kind as ``kind+``::

    https://hooks.slack.com/services/T0/B0/XXXX          Slack: any host but PagerDuty's
    slack+https://chat.example.com/hooks/abc             Slack-compatible, said explicitly
    https://events.pagerduty.com/v2/enqueue              PagerDuty, recognised by its host
    pagerduty+https://pd-proxy.internal/v2/enqueue       PagerDuty, said explicitly

A PagerDuty URL takes its routing key from the ``pagerduty_routing_key`` setting
(``OTEL_MONITOR_PAGERDUTY_ROUTING_KEY``), or from its own fragment,
``…/v2/enqueue#routing_key=R0UT1NGKEY``, when several services are paged. A fragment
is never sent over HTTP; it is stripped here and the key goes in the JSON body.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from exporters.errors import ConfigError

SLACK = "slack"
PAGERDUTY = "pagerduty"
KINDS = (SLACK, PAGERDUTY)
PAGERDUTY_HOST_SUFFIX = "pagerduty.com"


@dataclass(frozen=True)
class Target:
    kind: str                                       # slack | pagerduty
    url: str = field(repr=False)                    # what is POSTed to (no prefix, no fragment)
    routing_key: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"Target({self.label!r})"

    @property
    def label(self) -> str:
        """The kind and the URL's origin: for the store and the logs, which must not
        hold the secret part of a webhook URL (a Slack hook's path is its password)."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return f"{self.kind} {parts.scheme}://{host}/…"


def _shown(entry: str) -> str:
    """An entry as an error may quote it: up to its host, not its secret path or key."""
    scheme, sep, rest = entry.strip().partition("://")
    host = re.split(r"[/?#]", rest if sep else scheme, maxsplit=1)[0]
    return f"{scheme}://{host}/…" if sep else f"{host}/…"


def parse_webhook(entry: str, default_routing_key: str | None = None) -> Target:
    """One ``alert_webhooks`` entry as a ``Target``; ``ConfigError`` naming it (its
    secret part left out) if unusable."""
    text = entry.strip()
    kind = None
    scheme, sep, rest = text.partition("://")
    if sep and "+" in scheme:
        kind, _, scheme = scheme.partition("+")
        kind = kind.lower()
        if kind not in KINDS:
            raise ConfigError(f"otel-monitor alert webhook {_shown(entry)!r}: unknown kind "
                              f"{kind!r} (prefix the URL with {' or '.join(k + '+' for k in KINDS)})")
        text = scheme + "://" + rest
    if scheme.lower() not in ("http", "https") or not sep:
        raise ConfigError(f"otel-monitor alert webhook {_shown(entry)!r}: must be an http(s) URL, "
                          "optionally prefixed slack+ or pagerduty+")
    url, _, fragment = text.partition("#")
    host = (urlsplit(url).hostname or "").lower()
    if not host:
        raise ConfigError(f"otel-monitor alert webhook {_shown(entry)!r}: the URL has no host")
    if kind is None:
        is_pd = host == PAGERDUTY_HOST_SUFFIX or host.endswith("." + PAGERDUTY_HOST_SUFFIX)
        kind = PAGERDUTY if is_pd else SLACK
    routing_key = None
    if kind == PAGERDUTY:
        keys = parse_qs(fragment).get("routing_key") if fragment else None
        routing_key = keys[0] if keys else default_routing_key
        if not routing_key:
            label = Target(kind, url).label
            raise ConfigError(
                f"otel-monitor alert webhook {label}: a PagerDuty webhook needs a routing key: "
                "set pagerduty_routing_key (OTEL_MONITOR_PAGERDUTY_ROUTING_KEY) or end the URL "
                "with #routing_key=…")
    return Target(kind, url, routing_key)


def parse_webhooks(entries: tuple[str, ...],
                   default_routing_key: str | None = None) -> tuple[Target, ...]:
    return tuple(parse_webhook(e, default_routing_key) for e in entries)
