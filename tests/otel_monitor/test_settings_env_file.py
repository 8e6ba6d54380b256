"""Settings from a ``.env`` file: precedence ``configure()`` arguments > process environment >
``.env`` > defaults, checked in fresh processes (the file is read where the process runs);
``OTEL_MONITOR_ENV_FILE`` moves it; standard ``OTEL_*`` variables reach the SDK unless the
environment sets them; ``os.environ`` never gets the ``OTEL_MONITOR_*`` ones; a readable-by-
others ``.env`` is warned about; ``.env.example`` is the one rendered from the settings."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from otel_monitor.settings import SETTINGS, env_example, read_env_file, resolve_settings

ROOT = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent("""
    import json, os, sys
    import otel_monitor
    from opentelemetry import trace
    from otel_monitor.settings import resolve_settings
    args = json.loads(sys.argv[1])
    settings = otel_monitor.configure(**args)
    _, sources = resolve_settings(args)
    resource = trace.get_tracer_provider().resource.attributes
    print(json.dumps({
        "queue_size": settings.queue_size, "retention_hours": settings.retention_hours,
        "flush_interval_s": settings.flush_interval_s, "db_path": settings.db_path,
        "alert_backoff_s": settings.alert_backoff_s, "sources": sources,
        "service": resource.get("service.name"),
        "monitor_vars_in_environ": sorted(k for k in os.environ if k.startswith("OTEL_MONITOR_")),
    }))
    otel_monitor.shutdown()
""")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return {**env, **extra}


def _probe(cwd: Path, args: dict, **env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], cwd=cwd,
                         env=_clean_env(**env), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def _write_env(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    path.chmod(0o600)
    return path


def test_precedence_arguments_environment_env_file_defaults(tmp_path):
    _write_env(tmp_path / ".env", """
        OTEL_MONITOR_QUEUE_SIZE=11
        OTEL_MONITOR_RETENTION_HOURS=3
        OTEL_MONITOR_FLUSH_INTERVAL_S=0.5
        OTEL_MONITOR_DB=from-dotenv.db
        OTEL_SERVICE_NAME=svc-from-dotenv
    """)
    got = _probe(tmp_path, {"queue_size": 22}, OTEL_MONITOR_RETENTION_HOURS="4")
    assert got["queue_size"] == 22 and got["sources"]["queue_size"] == "argument"
    assert got["retention_hours"] == 4 and got["sources"]["retention_hours"] == "environment"
    assert got["flush_interval_s"] == 0.5 and got["sources"]["flush_interval_s"] == ".env"
    # (a relative path is resolved once, against the directory configure() ran in)
    assert os.path.realpath(got["db_path"]) == os.path.realpath(tmp_path / "from-dotenv.db")
    assert got["sources"]["db_path"] == ".env"
    assert got["alert_backoff_s"] == 0.5 and got["sources"]["alert_backoff_s"] == "default"
    assert got["service"] == "svc-from-dotenv"  # the SDK saw the standard variable
    # Only the variable the test's own environment set is in os.environ.
    assert got["monitor_vars_in_environ"] == ["OTEL_MONITOR_RETENTION_HOURS"]
    assert (tmp_path / "from-dotenv.db").exists()


def test_the_process_environment_wins_for_standard_otel_variables_too(tmp_path):
    _write_env(tmp_path / ".env", "OTEL_SERVICE_NAME=svc-from-dotenv\n")
    got = _probe(tmp_path, {"db_path": str(tmp_path / "x.db")}, OTEL_SERVICE_NAME="svc-from-env")
    assert got["service"] == "svc-from-env"


def test_otel_monitor_env_file_names_another_file(tmp_path):
    _write_env(tmp_path / ".env", "OTEL_MONITOR_QUEUE_SIZE=11\n")
    other = _write_env(tmp_path / "prod.env", "OTEL_MONITOR_QUEUE_SIZE=33\n")
    got = _probe(tmp_path, {"db_path": str(tmp_path / "x.db")},
                 OTEL_MONITOR_ENV_FILE=str(other))
    assert got["queue_size"] == 33 and got["sources"]["queue_size"] == ".env"


def test_no_env_file_means_defaults(tmp_path):
    got = _probe(tmp_path, {"db_path": str(tmp_path / "x.db")})
    assert got["queue_size"] == SETTINGS["queue_size"].default
    assert got["sources"]["queue_size"] == "default"


def test_a_bad_value_in_env_file_names_the_variable_and_the_file(tmp_path):
    env = _write_env(tmp_path / ".env", "OTEL_MONITOR_QUEUE_SIZE=ten\n")
    try:
        resolve_settings(environ={"OTEL_MONITOR_ENV_FILE": str(env)})
    except ValueError as exc:
        assert "OTEL_MONITOR_QUEUE_SIZE in .env" in str(exc)
    else:
        raise AssertionError("a bad .env value was accepted")


def test_an_env_file_wider_than_0600_is_warned_about(tmp_path, caplog):
    private = _write_env(tmp_path / "private.env", "OTEL_MONITOR_QUEUE_SIZE=5\n")
    shared = _write_env(tmp_path / "shared.env", "OTEL_MONITOR_QUEUE_SIZE=6\n")
    shared.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        assert read_env_file(private) == {"OTEL_MONITOR_QUEUE_SIZE": "5"}
        assert not caplog.records
        assert read_env_file(shared) == {"OTEL_MONITOR_QUEUE_SIZE": "6"}
    assert len(caplog.records) == 1 and "shared.env" in caplog.text and "644" in caplog.text
    executable = _write_env(tmp_path / "x.env", "OTEL_MONITOR_QUEUE_SIZE=7\n")
    executable.chmod(0o700)  # wider than 0600 too
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        read_env_file(executable)
    assert len(caplog.records) == 2 and "700" in caplog.records[-1].getMessage()


def test_env_example_lists_every_setting_and_is_the_rendered_one():
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert text == env_example(), (
        ".env.example drifted from otel_monitor/settings.py: regenerate it with "
        "python -c 'from otel_monitor.settings import env_example; "
        "open(\".env.example\", \"w\").write(env_example())'")
    for spec in SETTINGS.values():
        assert f"# {spec.env}=" in text
