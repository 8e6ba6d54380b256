"""``configure()``: a bad value raises ``ConfigError`` and changes nothing; without
``configure`` the environment is used and the atexit flush writes everything; misuse
of ``@monitor`` is a clear ``TypeError`` at decoration."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

import otel_monitor
from otel_monitor import ConfigError, monitor

from monitor_helpers import Store


@monitor("config")
def echo(x):
    return x


def _assert_store_still_records(store: Store, marker: str) -> None:
    """The configuration in force before is untouched: calls land in the same store."""
    assert echo(marker) == marker
    values = [store.values(c)["x"] for c in store.calls(echo)]
    assert values[-1] == repr(marker)


BAD_SETTINGS = [
    ({"retention_hours": 0}, "retention_hours"),
    ({"purge_interval_s": -1}, "purge_interval_s"),
    ({"max_db_mb": 0}, "max_db_mb"),
    ({"max_value_length": 5}, "max_value_length"),
    ({"queue_size": 0}, "queue_size"),
    ({"flush_interval_s": 0}, "flush_interval_s"),
    ({"flush_interval_s": 61}, "flush_interval_s"),
    ({"otlp_protocol": "thrift"}, "otlp_protocol"),
    ({"db_path": ""}, "db_path"),
    ({"alert_webhooks": ["ftp://hooks.example/x"]}, "ftp://hooks.example/"),
    ({"alert_webhooks": "not-a-url"}, "not-a-url"),
    ({"no_such_setting": 1}, "no_such_setting"),
]


@pytest.mark.parametrize("bad,named", BAD_SETTINGS,
                         ids=["-".join(map(str, b.items())) for b, _ in BAD_SETTINGS])
def test_bad_configure_value_raises_config_error_naming_it_and_changes_nothing(store, bad,
                                                                               named):
    echo("before")
    with pytest.raises(ConfigError) as info:
        otel_monitor.configure(**bad)
    assert named in str(info.value)
    assert isinstance(info.value, ValueError)
    _assert_store_still_records(store, "after-bad-configure")


@pytest.mark.parametrize("bad", [{"queue_size": "ten"}, {"retention_hours": "6"},
                                 {"max_value_length": 20.5}],
                         ids=lambda d: "-".join(map(str, d.items())))
def test_configure_value_of_the_wrong_type_raises_config_error(store, bad):
    with pytest.raises(ConfigError):
        otel_monitor.configure(**bad)


def _blocked_db_path(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    return {"db_path": blocker / "sub" / "t.db"}


def _foreign_sqlite_file(tmp_path):
    path = tmp_path / "foreign.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.commit()
    con.close()
    return {"db_path": path}


@pytest.mark.parametrize("make_bad", [
    lambda tmp_path: {"mask_key": "short"},
    _blocked_db_path,
    _foreign_sqlite_file,
], ids=["short-mask-key", "uncreatable-db-path", "not-a-store"])
def test_configure_that_cannot_build_its_store_raises_config_error_and_changes_nothing(
        store, tmp_path, make_bad):
    echo("before")
    bad = make_bad(tmp_path)
    try:
        with pytest.raises(ConfigError):
            otel_monitor.configure(**bad)
        _assert_store_still_records(store, "after-failed-configure")
    finally:
        # while the bug stands, records are stranded in the process-wide queue: write
        # them to a throwaway store so they cannot reach the next test's store
        otel_monitor.configure(db_path=tmp_path / "drain.db", flush_interval_s=0.05)
        otel_monitor.force_flush()


def test_configure_returns_the_settings_in_force(tmp_path):
    try:
        settings = otel_monitor.configure(db_path=tmp_path / "s.db", max_value_length=64,
                                          queue_size=500, flush_interval_s=0.05)
        assert isinstance(settings, otel_monitor.Settings)
        assert settings.db_path == os.fspath(tmp_path / "s.db")
        assert settings.max_value_length == 64
        assert settings.queue_size == 500
        assert "mask_key" not in repr(otel_monitor.configure(
            db_path=tmp_path / "s.db", mask_key="a-very-secret-mask-key", flush_interval_s=0.05))
    finally:
        otel_monitor.shutdown()


def test_configure_arguments_override_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_MONITOR_DB", str(tmp_path / "env.db"))
    monkeypatch.setenv("OTEL_MONITOR_MAX_VALUE_LENGTH", "20")
    otel_monitor.configure(db_path=tmp_path / "arg.db", flush_interval_s=0.05)
    try:
        echo("y" * 30)
        values = [Store(tmp_path / "arg.db").values(c)["x"]
                  for c in Store(tmp_path / "arg.db").calls(echo)]
        assert values[-1].startswith("'yyyyyyyyyyyyyyyyyyy")
        assert "more chars" in values[-1]  # the environment's max_value_length still applies
        assert not (tmp_path / "env.db").exists()
    finally:
        otel_monitor.shutdown()


_ATEXIT_SCRIPT = textwrap.dedent("""
    from otel_monitor import monitor

    @monitor("cli")
    def price(spot, strike):
        return spot - strike

    @monitor("cli")
    def fail(x):
        raise ValueError("boom")

    for i in range(100):
        price(i, 1)
    try:
        fail(1)
    except ValueError:
        pass
    # no configure, no flush, no shutdown: a normal exit
""")


def test_environment_store_and_atexit_flush_without_configure_in_a_fresh_interpreter(tmp_path):
    db = tmp_path / "logs" / "from-env.db"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_MONITOR_", "OTEL_EXPORTER_OTLP"))}
    env.update(OTEL_MONITOR_DB=str(db), OTEL_MONITOR_MAX_VALUE_LENGTH="32",
               OTEL_MONITOR_FLUSH_INTERVAL_S="60", OTEL_SERVICE_NAME="cli-svc")
    proc = subprocess.run([sys.executable, "-c", _ATEXIT_SCRIPT], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert not (tmp_path / "logs" / "core_logs.db").exists()

    store = Store(db)
    prices = store.calls("__main__.price")
    assert len(prices) == 100  # written by the atexit flush: the writer waits 60 s otherwise
    assert {c["service_name"] for c in prices} == {"cli-svc"}
    assert store.values(prices[-1]) == {"spot": "99", "strike": "1", "return": "98"}
    (failed,) = store.calls("__main__.fail")
    assert failed["status"] == "ERR"
    assert "ValueError: boom" in failed["exception"]


# -- misuse of @monitor ----------------------------------------------------------------------

def test_bare_monitor_without_a_process_group_is_a_clear_type_error():
    with pytest.raises(TypeError, match="process group"):
        @monitor
        def f():
            return 1


@pytest.mark.parametrize("group", [42, None, b"pricing", "", "   "])
def test_process_group_that_is_not_a_non_empty_string_is_a_type_error(group):
    with pytest.raises(TypeError, match="process_group"):
        monitor(group)


def test_decorating_a_class_is_a_clear_type_error():
    with pytest.raises(TypeError, match="functions and methods"):
        @monitor("classes")
        class Pricer:
            pass


def test_decorating_a_non_callable_is_a_clear_type_error():
    with pytest.raises(TypeError, match="functions and methods"):
        monitor("values")(42)


def test_decorating_does_not_configure_or_touch_the_store(tmp_path, monkeypatch):
    otel_monitor.shutdown()
    monkeypatch.setenv("OTEL_MONITOR_DB", str(tmp_path / "untouched" / "t.db"))

    @monitor("lazy")
    def f():
        return 1

    assert not (tmp_path / "untouched").exists()
