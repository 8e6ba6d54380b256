"""Sending alerts: one worker per webhook, so a slow or dead one delays no other.

* A bounded queue of pending alerts per webhook: when full, the oldest is dropped
  (reported as ``dropped``, and counted).
* Each POST has a timeout. A timeout, a connection error, a 5xx or a 408 is retried
  with exponential backoff (``backoff_s``, doubling, at most ``MAX_BACKOFF_S``); a
  429 waits what its ``Retry-After`` says (seconds or an HTTP date, at most
  ``MAX_RETRY_AFTER_S``); another 4xx is final (retrying would not help). After
  ``max_attempts`` the alert is reported ``failed`` with the last error: a refusal's
  reason (Slack's text, PagerDuty's message and errors), clipped to ``ERROR_MAX``.
* Nothing here raises into, or waits for, the instrumented code: ``submit`` appends
  to the worker's inbox under a lock held for no I/O.
* Each sender is a ``BackgroundWorker`` ("otel-monitor-webhook-<kind>"), started
  at its first alert.

httpx is imported when the first sender is built, i.e. only when a webhook is set.
"""
from __future__ import annotations

import email.utils
import json
import logging
import socket
import threading
import time
from collections import deque
from typing import Any, Callable

from exporters.errors import ConfigError
from exporters.state import DROPPED, FAILED, SENT
from exporters.worker import BackgroundWorker

from .model import Alert, clip
from .payloads import pagerduty_body, slack_body
from ..webhooks import PAGERDUTY, Target

_log = logging.getLogger("otel_monitor")

MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 300.0
USER_AGENT = "otel-monitor"
ERROR_MAX = 1024  # a delivery's error as the alerts table keeps it (clipped, marked)

# (alert, target, status, attempts, error) -> None
Report = Callable[[Alert, Target, str, int, "str | None"], None]


def body_for(target: Target, alert: Alert) -> dict[str, Any]:
    if target.kind == PAGERDUTY:
        return pagerduty_body(alert, target.routing_key or "")
    return slack_body(alert)


def refusal_reason(response: Any) -> str:
    """Why a webhook refused a body: Slack answers plain text (``invalid_blocks``,
    ``invalid_payload``…); PagerDuty JSON ``{"status", "message", "errors": [...]}``,
    read as the message and every error joined. Anything else: the text as sent."""
    text = response.text.strip()
    if text.startswith("{"):
        try:
            answer = json.loads(text)
        except ValueError:
            return text
        if isinstance(answer, dict) and ("message" in answer or "errors" in answer):
            errors = answer.get("errors")
            errors = errors if isinstance(errors, list) else [] if errors is None else [errors]
            parts = [str(answer.get("message") or answer.get("status") or "refused")]
            if errors:
                parts.append("; ".join(str(e) for e in errors))
            return ": ".join(parts)
    return text


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def _import_httpx() -> Any:
    try:
        import httpx
    except ImportError as exc:  # the optional extra is not installed
        raise ConfigError("otel-monitor alert_webhooks need httpx: "
                          "pip install 'otel-monitor[alerts]'") from exc
    return httpx


class WebhookSender:
    """Delivers alerts to one webhook from its own worker thread."""

    def __init__(self, target: Target, report: Report, *, queue_size: int = 1000,
                 timeout_s: float = 5.0, max_attempts: int = 5, backoff_s: float = 0.5) -> None:
        self.httpx = _import_httpx()
        self.target = target
        self.report = report
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.sent = self.failed = self.dropped = 0
        self.worker = BackgroundWorker(f"otel-monitor-webhook-{target.kind}", self._job,
                                       interval_s=None, inbox_size=queue_size,
                                       on_fork=self._init_state)
        self._pending: deque[Alert] = self.worker.inbox
        self._init_state()

    def _init_state(self) -> None:
        """Also in a forked child: the parent sends what it had pending; the child starts
        empty, with a client of its own (the parent's connections stay the parent's)."""
        self._lock = threading.Lock()
        self._deadline = float("inf")  # monotonic: past it, a stopping sender gives up
        self._busy = False
        # Built here, on the configuring thread (or the child's first user), not on the
        # sender's: it imports httpcore lazily, and a fork in the middle of an import on
        # another thread would leave the module half-initialised in the child.
        self._client = self._new_client()

    # -- the engine's side ------------------------------------------------------

    def _new_client(self) -> Any:
        httpx = self.httpx
        # TCP_NODELAY: a request goes out as headers then body; with Nagle's algorithm the
        # body would wait for the peer's delayed ACK of the headers (40 ms on Linux).
        transport = httpx.HTTPTransport(
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        return httpx.Client(timeout=httpx.Timeout(self.timeout_s), transport=transport,
                            headers={"User-Agent": USER_AGENT})

    def submit(self, alert: Alert) -> None:
        self.worker.reset_if_forked()  # a forked child does not drop the parent's alerts
        with self._lock:
            if len(self._pending) >= self.queue_size:
                oldest = self._pending.popleft()
                self.dropped += 1
                self.report(oldest, self.target, DROPPED, 0,
                            f"pending queue full ({self.queue_size} alerts): oldest dropped")
            self.worker.put(alert)

    def idle(self) -> bool:
        with self._lock:
            return not self._pending and not self._busy

    def request_stop(self, deadline: float) -> None:
        """Stop taking alerts; deliver what is pending until ``deadline`` (monotonic)."""
        self._deadline = deadline
        self.worker.kill()

    def finish(self, deadline: float) -> None:
        """Wait for the thread until ``deadline``, then report what is left dropped."""
        self.worker.stop(max(0.0, deadline - time.monotonic()) + 0.2)
        with self._lock:
            left = list(self._pending)
            self._pending.clear()
        for alert in left:
            self.dropped += 1
            self.report(alert, self.target, DROPPED, 0, "not sent before the process stopped")
        if not self.worker.running:
            self._client.close()

    # -- the sender's job ----------------------------------------------------------

    def _job(self, *, final: bool, flushing: bool) -> None:
        while True:
            with self._lock:
                if not self._pending or time.monotonic() >= self._deadline:
                    return
                alert = self._pending.popleft()
                self._busy = True
            try:
                self._deliver(self._client, alert)
            except Exception:  # a bug here must not end deliveries
                _log.exception("otel-monitor: delivering an alert failed")
            finally:
                with self._lock:
                    self._busy = False

    def _deliver(self, client: Any, alert: Alert) -> None:
        httpx = self.httpx
        body = body_for(self.target, alert)
        error: str | None = None
        attempts = 0
        while attempts < self.max_attempts:
            attempts += 1
            delay = min(MAX_BACKOFF_S, self.backoff_s * 2 ** (attempts - 1))
            try:
                response = client.post(self.target.url, json=body)
            except httpx.TimeoutException:
                error = f"timed out after {self.timeout_s:g} s"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    self.sent += 1
                    self.report(alert, self.target, SENT, attempts, None)
                    return
                error = clip(f"HTTP {status}: {refusal_reason(response)}", ERROR_MAX)
                if status == 429:
                    wait = retry_after_s(response.headers.get("Retry-After"))
                    if wait is not None:
                        delay = min(wait, MAX_RETRY_AFTER_S)
                elif status < 500 and status != 408:
                    break  # the webhook refuses this body: retrying would not help
            if attempts < self.max_attempts and not self._wait(delay):
                break
        self.failed += 1
        _log.warning("otel-monitor: alert %r not delivered to %s after %d attempt(s): %s",
                     alert.key, self.target.label, attempts, error)
        self.report(alert, self.target, FAILED, attempts, error)

    def _wait(self, delay: float) -> bool:
        """Sleep ``delay`` before a retry; False when stopping leaves no time for it."""
        end = time.monotonic() + delay
        while True:
            now = time.monotonic()
            if self.worker.stopping and end >= self._deadline:
                return False
            if now >= end:
                return True
            if self.worker.stopping:  # still time before the deadline: wait it out
                time.sleep(end - now)
            else:
                self.worker.sleep(end - now)  # returns early when asked to stop
