"""The settings' one declaration: every setting has an ``OTEL_MONITOR_*`` variable, a
default that passes its own rule and a line of help; secrets stay out of ``repr`` and
error messages; one setting read alone (the UI and ingest tokens) fails only for itself."""
from __future__ import annotations

import pytest

import otel_monitor
from otel_monitor import ConfigError, Settings
from otel_monitor.settings import SETTINGS, load_settings, read_setting, resolve_settings

SECRET = "a-long-secret-value-WXYZ"


def test_every_setting_has_its_own_variable_a_valid_default_and_help():
    variables = [s.env for s in SETTINGS.values()]
    assert all(v.startswith("OTEL_MONITOR_") for v in variables)
    assert len(set(variables)) == len(variables)
    assert all(s.help for s in SETTINGS.values())
    assert Settings() == load_settings(environ={})  # the defaults meet their rules


def test_the_tokens_are_secret_settings():
    assert SETTINGS["ui_token"].env == "OTEL_MONITOR_UI_TOKEN"
    assert SETTINGS["ingest_token"].env == "OTEL_MONITOR_INGEST_TOKEN"
    assert SETTINGS["ui_token"].secret and SETTINGS["ingest_token"].secret


def test_configure_documents_every_setting_and_its_variable():
    for spec in SETTINGS.values():
        assert f"{spec.name} ({spec.env};" in otel_monitor.configure.__doc__


def test_secrets_stay_out_of_repr():
    secrets = {name: SECRET for name, spec in SETTINGS.items()
               if spec.secret and spec.type is str}
    settings = load_settings({**secrets, "alert_webhooks": [f"https://hooks.example/{SECRET}"]},
                             environ={})
    assert SECRET not in repr(settings)
    assert settings.ui_token == settings.ingest_token == SECRET


@pytest.mark.parametrize("bad", [{"mask_key": "short-SECRET"}, {"mask_key": 1234567890}])
def test_a_bad_secret_is_named_but_not_quoted(bad):
    with pytest.raises(ConfigError, match="mask_key") as raised:
        load_settings(bad, environ={})
    assert str(bad["mask_key"]) not in str(raised.value)


def test_a_secret_is_shown_by_its_last_four_characters_only_when_long():
    spec = SETTINGS["ui_token"]
    assert spec.show(SECRET) == "•••WXYZ"
    assert spec.show("short-WXYZ") == "•••"
    assert spec.show(None) == "none"


def test_each_value_says_where_it_comes_from():
    settings, sources = resolve_settings(
        {"db_path": "arg.db", "queue_size": None},  # None: not given
        environ={"OTEL_MONITOR_DB": "env.db", "OTEL_MONITOR_QUEUE_SIZE": "50",
                 "OTEL_MONITOR_UI_URL": ""})  # empty: unset
    assert (settings.db_path, sources["db_path"]) == ("arg.db", "argument")
    assert (settings.queue_size, sources["queue_size"]) == (50, "environment")
    assert (settings.ui_url, sources["ui_url"]) == ("http://127.0.0.1:8050", "default")


def test_reading_one_setting_ignores_a_bad_unrelated_variable():
    environ = {"OTEL_MONITOR_QUEUE_SIZE": "not-a-number", "OTEL_MONITOR_UI_TOKEN": SECRET}
    with pytest.raises(ConfigError, match="OTEL_MONITOR_QUEUE_SIZE"):
        load_settings(environ=environ)
    assert read_setting("ui_token", environ) == SECRET
    assert read_setting("ingest_token", environ) is None
    assert read_setting("ingest_max_bytes", environ) == SETTINGS["ingest_max_bytes"].default


@pytest.mark.parametrize("value,message", [("0", "ingest_max_bytes=0: must be >= 1"),
                                           ("8MB", "OTEL_MONITOR_INGEST_MAX_BYTES='8MB'")])
def test_reading_one_setting_checks_it(value, message):
    with pytest.raises(ConfigError, match=message):
        read_setting("ingest_max_bytes", {"OTEL_MONITOR_INGEST_MAX_BYTES": value})


def test_a_list_setting_takes_any_iterable_of_strings_or_a_comma_separated_string():
    assert load_settings({"alert_ignore_exceptions": "A, B"}, environ={}) \
        .alert_ignore_exceptions == ("A", "B")
    assert load_settings({"alert_ignore_exceptions": (n for n in ["C"])}, environ={}) \
        .alert_ignore_exceptions == ("C",)
