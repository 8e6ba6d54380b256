"""Resolving an error group (issue 15): ``send_resolved`` posts PagerDuty ``resolve`` for
the group's dedup_key and a Slack follow-up, through the configured webhooks (a real
HTTP receiver on 127.0.0.1), as the ``serve`` process's resolve route does."""
from __future__ import annotations

import datetime as dt
import time

import pytest

from alert_helpers import PD, ROUTING_KEY, SLACK, texts, wait_alerts
from otel_monitor.alerts import resolution
from otel_monitor.settings import load_settings

GROUP = {"fingerprint": "9f2c1e0d4b7a66aa", "title": "PricingError: implied vol must be > 0",
         "process": "pricing.black_scholes", "exception_type": "pricing.PricingError",
         "count": 1042, "last_seen_ns": 1_796_000_000_000_000_000}


@pytest.fixture
def settings_for(tmp_path, receiver):
    def make(**extra):
        return load_settings(dict(
            db_path=str(tmp_path / "serve.db"),
            alert_webhooks=[receiver.url(SLACK),
                            f"pagerduty+{receiver.url(PD)}#routing_key={ROUTING_KEY}"],
            alert_backoff_s=0.05, alert_timeout_s=2.0, ui_url="http://ui.test:8050",
            **extra))

    yield make
    resolution.shutdown()


def test_resolving_a_group_resolves_its_pagerduty_incident_and_tells_slack(
        settings_for, receiver, tmp_path):
    settings = settings_for()
    resolution.send_resolved(settings, GROUP, wait_s=5)

    [pd] = receiver.wait(lambda p: len(p) == 1, path=PD)
    assert pd.json == {"routing_key": ROUTING_KEY, "event_action": "resolve",
                       "dedup_key": f"otel-monitor/group/{GROUP['fingerprint']}"}
    [slack] = receiver.wait(lambda p: len(p) == 1, path=SLACK)
    body = slack.json
    assert body["text"] == (":white_check_mark: Resolved: PricingError: implied vol must be "
                            "&gt; 0 in pricing.black_scholes (1,042 occurrences in all)")
    assert body["blocks"][0]["text"]["text"] == f"Resolved: {GROUP['title']}"
    shown = texts(body["blocks"])
    assert f"http://ui.test:8050/?error={GROUP['fingerprint']}" in shown
    rows = wait_alerts(tmp_path / "serve.db", lambda r: len(r) == 2)
    assert sorted((r["action"], r["target"].split()[0], r["status"]) for r in rows) == [
        ("resolve", "pagerduty", "sent"), ("resolve", "slack", "sent")]
    assert {r["key"] for r in rows} == {f"otel-monitor/group/{GROUP['fingerprint']}"}


def test_a_resolve_is_retried_like_any_alert(settings_for, receiver):
    settings = settings_for()
    receiver.script(PD, 503, 502)
    resolution.send_resolved(settings, GROUP, wait_s=5)
    posts = receiver.wait(lambda p: len(p) == 3, path=PD)
    assert {p.json["event_action"] for p in posts} == {"resolve"}


def test_a_resolve_in_a_maintenance_window_is_recorded_suppressed_and_not_posted(
        settings_for, receiver, tmp_path):
    settings = settings_for(alert_maintenance_windows=("daily 00:00-24:00 UTC",))
    resolution.send_resolved(settings, GROUP, wait_s=5)
    [row] = wait_alerts(tmp_path / "serve.db", lambda r: len(r) == 1)
    assert (row["action"], row["status"], row["error"]) == (
        "resolve", "suppressed", "maintenance window daily 00:00-24:00 UTC")
    time.sleep(0.2)
    assert receiver.posts == []


def test_a_group_silence_holds_its_resolve_too(settings_for, receiver, tmp_path):
    until = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%MZ")
    silence = f'group={GROUP["fingerprint"]} until={until} reason="being fixed"'
    settings = settings_for(alert_silences=(silence,))
    resolution.send_resolved(settings, GROUP, wait_s=5)
    resolution.send_resolved(settings, dict(GROUP, fingerprint="another"), wait_s=5)
    rows = wait_alerts(tmp_path / "serve.db", lambda r: len(r) == 3)
    held = [r for r in rows if r["status"] == "suppressed"]
    assert [r["error"] for r in held] == [f"silence {silence}"]
    assert [p.json["dedup_key"] for p in receiver.to(PD)] == ["otel-monitor/group/another"]


def test_nothing_is_sent_without_webhooks(tmp_path):
    settings = load_settings(dict(db_path=str(tmp_path / "x.db")))
    resolution.send_resolved(settings, GROUP, wait_s=1)  # no error, nothing to do
    assert resolution._resolvers == {}
