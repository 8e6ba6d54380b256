"""Resolving an error group in a real ``otel-monitor serve`` tells the webhooks (issue
15): PagerDuty ``resolve`` for the group's incident and a Slack "Resolved: <title>",
posted to a real receiver on 127.0.0.1, the outcomes in the store's alerts table."""
from __future__ import annotations

import importlib.util
import os
import sqlite3
import sys
import time
from pathlib import Path

import httpx
import pytest

from otel_monitor import monitor
from recording import recording_into, settings_env_cleared
from served_cli import served_cli

ROUTING_KEY = "R0UT1NGKEY0000000000000000000000"  # a fake one; otel-monitor: allow


def _receiver_module():
    """The alert tests' webhook receiver (tests/otel_monitor/webhook_receiver.py)."""
    path = Path(__file__).resolve().parents[1] / "otel_monitor" / "webhook_receiver.py"
    spec = importlib.util.spec_from_file_location("webhook_receiver_for_serve", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@monitor("orders")
def missing_order(n: int) -> dict:
    raise KeyError(f"order {n} not found")


@pytest.fixture
def receiver():
    r = _receiver_module().start_receiver()
    yield r
    r.close()


def _alert_rows(db: Path) -> list[dict]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM alerts WHERE action = 'resolve'")]
    finally:
        con.close()


def test_resolving_a_group_in_serve_resolves_its_incident_and_tells_slack(tmp_path,
                                                                        receiver):
    db = tmp_path / "served.db"
    with settings_env_cleared(), recording_into(db):
        for n in range(3):
            with pytest.raises(KeyError):
                missing_order(n)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_MONITOR_", "OTEL_EXPORTER_OTLP"))}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[2]),
               OTEL_MONITOR_WEBHOOKS=f"{receiver.url('/slack')},"
                                     f"pagerduty+{receiver.url('/pd')}#routing_key={ROUTING_KEY}",
               OTEL_MONITOR_UI_URL="http://ui.test:8050")
    with served_cli(db, env) as served:
        with httpx.Client(base_url=served.url, timeout=10) as api:
            [group] = api.get("/api/errors").json()["groups"]
            fp = group["fingerprint"]
            assert api.post(f"/api/errors/{fp}/resolve").status_code == 200
            [pd] = receiver.wait(lambda p: len(p) == 1, path="/pd", timeout=10)
            [slack] = receiver.wait(lambda p: len(p) == 1, path="/slack", timeout=10)
            deadline = time.monotonic() + 10
            while len(_alert_rows(db)) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
    assert pd.json == {"routing_key": ROUTING_KEY, "event_action": "resolve",
                       "dedup_key": f"otel-monitor/group/{fp}"}
    text = slack.json["text"]
    assert text.startswith(":white_check_mark: Resolved: KeyError: ")
    assert "missing_order (3 occurrences in all)" in text
    assert f"http://ui.test:8050/?error={fp}" in str(slack.json["blocks"])
    rows = _alert_rows(db)
    assert sorted((r["target"].split()[0], r["status"]) for r in rows) == [
        ("pagerduty", "sent"), ("slack", "sent")]
