"""Alert configuration: which webhooks are Slack and which PagerDuty, routing keys,
thresholds and rules from ``configure(...)`` and ``OTEL_MONITOR_*`` variables, and what
``import otel_monitor`` costs an application that sets no webhook."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import otel_monitor
from alert_helpers import PD, SLACK
from otel_monitor import ConfigError, monitor
from otel_monitor.settings import load_settings
from otel_monitor.webhooks import PAGERDUTY, SLACK as SLACK_KIND, parse_webhook
from webhook_receiver import closed_port_url

ROOT = Path(__file__).resolve().parents[2]


# -- which URL is which -------------------------------------------------------------------

@pytest.mark.parametrize("entry,kind,url", [
    ("https://hooks.slack.com/services/T0/B0/XXX", SLACK_KIND,
     "https://hooks.slack.com/services/T0/B0/XXX"),
    ("https://chat.example.com/hooks/abc", SLACK_KIND, "https://chat.example.com/hooks/abc"),
    ("slack+https://chat.example.com/hooks/abc", SLACK_KIND, "https://chat.example.com/hooks/abc"),
    ("https://events.pagerduty.com/v2/enqueue", PAGERDUTY,
     "https://events.pagerduty.com/v2/enqueue"),
    ("https://events.eu.pagerduty.com/v2/enqueue", PAGERDUTY,
     "https://events.eu.pagerduty.com/v2/enqueue"),
    ("PagerDuty+http://pd-proxy.internal:8080/v2/enqueue", PAGERDUTY,
     "http://pd-proxy.internal:8080/v2/enqueue"),
])
def test_a_webhook_is_slack_unless_its_host_or_prefix_says_pagerduty(entry, kind, url):
    target = parse_webhook(entry, default_routing_key="DEFAULTKEY")
    assert (target.kind, target.url) == (kind, url)
    assert target.routing_key == ("DEFAULTKEY" if kind == PAGERDUTY else None)


def test_a_pagerduty_url_can_carry_its_own_routing_key_in_its_fragment():
    target = parse_webhook("https://events.pagerduty.com/v2/enqueue#routing_key=SERVICEKEY",
                           default_routing_key="DEFAULTKEY")
    assert target.routing_key == "SERVICEKEY"
    assert target.url == "https://events.pagerduty.com/v2/enqueue"  # the fragment is not sent


def test_a_webhooks_label_hides_its_secret_path():
    target = parse_webhook("https://hooks.slack.com/services/T0/B0/SECRETTOKEN")
    assert target.label == "slack https://hooks.slack.com/…"
    assert "SECRETTOKEN" not in repr(target) + target.label + str(target)


@pytest.mark.parametrize("entry,named", [
    ("teams+https://x.example/hook", "unknown kind 'teams'"),
    ("ftp://hooks.example/x", "must be an http(s) URL"),
    ("hooks.slack.com/services/x", "must be an http(s) URL"),
    ("https://events.pagerduty.com/v2/enqueue", "needs a routing key"),
])
def test_unusable_webhooks_are_config_errors(entry, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        load_settings({"alert_webhooks": [entry]}, environ={})


def test_a_pagerduty_webhook_without_a_routing_key_changes_nothing(alerting, receiver):
    store = alerting()
    with pytest.raises(ConfigError, match="pagerduty_routing_key"):
        otel_monitor.configure(db_path=store.path,
                               alert_webhooks=["https://events.pagerduty.com/v2/enqueue"])

    @monitor("pricing")
    def still_alerting():
        raise ValueError("after the bad configure")

    with pytest.raises(ValueError):
        still_alerting()
    receiver.wait(lambda p: len(p) == 1, path=SLACK)


# -- settings from the environment ----------------------------------------------------------

def test_alert_settings_come_from_otel_monitor_variables():
    environ = {
        "OTEL_MONITOR_WEBHOOKS":
            "https://hooks.slack.com/services/a, pagerduty+https://p.example/e",
        "OTEL_MONITOR_PAGERDUTY_ROUTING_KEY": "ENVKEY",
        "OTEL_MONITOR_UI_URL": "https://monitor.desk.example",
        "OTEL_MONITOR_ALERT_EXCEPTIONS": "off",
        "OTEL_MONITOR_ALERT_IGNORE_EXCEPTIONS": "StaleQuoteError,KeyboardInterrupt",
        "OTEL_MONITOR_ALERT_FEED_LAG": "yes",
        "OTEL_MONITOR_FEED_STALE_AFTER_S": "4.5",
        "OTEL_MONITOR_BACKPRESSURE_DEPTH": "2000",
        "OTEL_MONITOR_BACKPRESSURE_FOR_S": "10",
        "OTEL_MONITOR_ALERT_BACKPRESSURE": "1",
        "OTEL_MONITOR_ALERT_GROUP_WINDOW_S": "30",
        "OTEL_MONITOR_ALERT_QUEUE_SIZE": "50",
        "OTEL_MONITOR_ALERT_TIMEOUT_S": "2.5",
        "OTEL_MONITOR_ALERT_MAX_ATTEMPTS": "3",
        "OTEL_MONITOR_ALERT_BACKOFF_S": "0.25",
    }
    s = load_settings(environ=environ)
    assert s.alert_webhooks == ("https://hooks.slack.com/services/a",
                                "pagerduty+https://p.example/e")
    assert s.pagerduty_routing_key == "ENVKEY" and "ENVKEY" not in repr(s)
    assert s.ui_url == "https://monitor.desk.example"
    assert (s.alert_exceptions, s.alert_feed_lag, s.alert_backpressure) == (False, True, True)
    assert s.alert_ignore_exceptions == ("StaleQuoteError", "KeyboardInterrupt")
    assert (s.feed_stale_after_s, s.backpressure_depth, s.backpressure_for_s) == (4.5, 2000, 10.0)
    assert (s.alert_group_window_s, s.alert_queue_size, s.alert_timeout_s,
            s.alert_max_attempts, s.alert_backoff_s) == (30.0, 50, 2.5, 3, 0.25)


def test_configure_arguments_win_over_the_environment():
    s = load_settings({"feed_stale_after_s": 2, "alert_exceptions": True},
                      environ={"OTEL_MONITOR_FEED_STALE_AFTER_S": "9",
                               "OTEL_MONITOR_ALERT_EXCEPTIONS": "0"})
    assert (s.feed_stale_after_s, s.alert_exceptions) == (2, True)


@pytest.mark.parametrize("var,value", [
    ("OTEL_MONITOR_ALERT_EXCEPTIONS", "maybe"),
    ("OTEL_MONITOR_FEED_STALE_AFTER_S", "ten"),
    ("OTEL_MONITOR_BACKPRESSURE_DEPTH", "5k"),
])
def test_a_bad_alert_variable_is_a_config_error_naming_it(var, value):
    with pytest.raises(ConfigError, match=var):
        load_settings(environ={var: value})


@pytest.mark.parametrize("bad", [
    {"feed_stale_after_s": 0}, {"backpressure_depth": 0}, {"alert_group_window_s": 0},
    {"alert_queue_size": 0}, {"alert_timeout_s": -1}, {"alert_max_attempts": 0},
    {"alert_exceptions": "yes"}, {"ui_url": "monitor.example"},
    {"alert_ignore_exceptions": [ValueError]},
])
def test_bad_alert_settings_are_config_errors_naming_them(bad):
    [name] = bad
    with pytest.raises(ConfigError, match=name):
        load_settings(bad, environ={})


def test_webhooks_from_the_environment_alert_with_the_routing_key_from_the_environment(
        receiver, monkeypatch, tmp_path):
    monkeypatch.setenv("OTEL_MONITOR_WEBHOOKS", f"pagerduty+{receiver.url(PD)}")
    monkeypatch.setenv("OTEL_MONITOR_PAGERDUTY_ROUTING_KEY", "FROM-THE-ENVIRONMENT")
    monkeypatch.setenv("OTEL_MONITOR_UI_URL", "https://monitor.desk.example/")
    otel_monitor.configure(db_path=tmp_path / "env.db")
    try:
        @monitor("pricing")
        def fails():
            raise ArithmeticError("overflow")

        with pytest.raises(ArithmeticError):
            fails()
        [post] = receiver.wait(lambda p: len(p) == 1, path=PD)
        assert post.json["routing_key"] == "FROM-THE-ENVIRONMENT"
        assert post.json["links"][0]["href"].startswith("https://monitor.desk.example/?process=")
    finally:
        otel_monitor.shutdown()


# -- staying light --------------------------------------------------------------------------

@pytest.mark.parametrize("with_webhook", [False, True])
def test_httpx_is_imported_only_when_a_webhook_is_configured(tmp_path, with_webhook):
    webhooks = [closed_port_url()] if with_webhook else []
    probe = (
        "import sys, otel_monitor\n"
        f"otel_monitor.configure(db_path={str(tmp_path / 'p.db')!r}, alert_webhooks={webhooks!r}, "
        "alert_max_attempts=1)\n"
        "@otel_monitor.monitor('g')\n"
        "def f(): raise ValueError\n"
        "try: f()\n"
        "except ValueError: pass\n"
        "otel_monitor.tick('bbg.fx')\n"
        "print('httpx' in sys.modules)\n"
        "otel_monitor.shutdown()\n")
    env = {"PATH": "/usr/bin:/bin", "OTEL_MONITOR_DB": str(tmp_path / "env.db")}
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(with_webhook)


@pytest.mark.parametrize("entry", [
    "slak+https://hooks.slack.com/services/T0/B0/SECRETTOKEN",
    "hooks.slack.com/services/T0/B0/SECRETTOKEN",
    "ftp://hooks.example/SECRETTOKEN#routing_key=SECRETTOKEN",
    "https:///services/SECRETTOKEN",
])
def test_an_unusable_webhooks_error_does_not_quote_its_secret_path(entry):
    # The error is logged when the environment configures the first call.
    with pytest.raises(ConfigError) as raised:
        load_settings({"alert_webhooks": [entry]}, environ={})
    assert "SECRETTOKEN" not in str(raised.value)
