"""``otel-monitor config``: every setting in force with its source (argument, environment,
default), secrets masked; its help lists every setting; ``--markdown`` is README's table."""
from __future__ import annotations

import os

import pytest

from otel_monitor import cli
from otel_monitor.settings import SETTINGS, settings_table_markdown

TOKEN = "ui-token-0123456789-LAST"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for var in list(os.environ):
        if var.startswith("OTEL_MONITOR_"):
            monkeypatch.delenv(var)


def _printed(capsys) -> dict[str, tuple[str, str]]:
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["setting", "value", "source"]
    rows = {}
    for line in lines[1:]:
        name, *value, source = line.split()
        rows[name] = (" ".join(value), source)
    return rows


def test_config_prints_every_setting_with_its_value_and_source(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("OTEL_MONITOR_UI_TOKEN", TOKEN)
    monkeypatch.setenv("OTEL_MONITOR_RETENTION_HOURS", "2")
    monkeypatch.setenv("OTEL_MONITOR_QUEUE_SIZE", "50")
    db = str(tmp_path / "arg.db")
    assert cli.main(["config", "--db", db, "--set", "queue_size=70"]) == cli.EXIT_OK
    rows = _printed(capsys)
    assert list(rows) == list(SETTINGS)
    assert rows["db_path"] == (db, "argument")
    assert rows["queue_size"] == ("70", "argument")  # an argument wins over the environment
    assert rows["retention_hours"] == ("2", "environment")
    assert rows["ui_token"] == ("•••LAST", "environment")
    assert rows["ingest_token"] == ("none", "default")
    assert rows["alert_exceptions"] == ("on", "default")


def test_config_never_prints_a_secret(monkeypatch, capsys):
    monkeypatch.setenv("OTEL_MONITOR_UI_TOKEN", TOKEN)
    monkeypatch.setenv("OTEL_MONITOR_WEBHOOKS", f"https://hooks.example/{TOKEN}")
    assert cli.main(["config"]) == cli.EXIT_OK
    assert TOKEN not in capsys.readouterr().out


@pytest.mark.parametrize("args,env,named", [
    ([], {"OTEL_MONITOR_QUEUE_SIZE": "ten"}, "OTEL_MONITOR_QUEUE_SIZE"),
    (["--set", "flush_interval_s=99"], {}, "flush_interval_s"),
    (["--set", "no_such_setting=1"], {}, "no_such_setting"),
])
def test_a_bad_setting_is_an_error_naming_it(monkeypatch, capsys, args, env, named):
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert cli.main(["config", *args]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("otel-monitor config: ") and named in err


def test_config_help_lists_every_setting_and_its_variable(capsys):
    with pytest.raises(SystemExit):
        cli.main(["config", "--help"])
    out = capsys.readouterr().out
    for spec in SETTINGS.values():
        assert f"{spec.name} ({spec.env};" in out


def test_config_markdown_is_readmes_settings_table(capsys):
    assert cli.main(["config", "--markdown"]) == cli.EXIT_OK
    assert capsys.readouterr().out == settings_table_markdown()
