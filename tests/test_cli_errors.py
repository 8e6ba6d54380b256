"""``otel-monitor errors``, run as the real command in a subprocess on a store recorded
through the real decorator: the table, ``--status``, ``--process``, ``--sort``, ``--json``,
and a missing store."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from exporters import SpanStore
from otel_monitor import monitor
from recording import recording_into, settings_env_cleared

COMMAND = [sys.executable, "-m", "otel_monitor.cli", "errors"]
ENV = {k: v for k, v in os.environ.items()
       if not k.startswith(("OTEL_MONITOR_", "OTEL_EXPORTER_OTLP_"))}
ENV["COLUMNS"] = "250"


@monitor("cli")
def settle(trade_id: int) -> None:
    raise ValueError(f"trade {trade_id} cannot settle")


@monitor("cli")
def book(trade_id: int) -> None:
    raise KeyError(f"book for trade {trade_id}")


def errors(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=60,
                          env=ENV)


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-errors") / "e.db"
    with settings_env_cleared(), recording_into(path):
        for i in range(4):
            with pytest.raises(ValueError):
                settle(i)
        with pytest.raises(KeyError):
            book(1)
    store = SpanStore(path)
    fp = store.query("SELECT fingerprint FROM error_groups WHERE process LIKE '%book'")[0][0]
    store.set_group_status(fp, "resolved")
    store.close()
    return path


def test_the_table_lists_each_group_newest_first(grouped):
    done = errors("--db", str(grouped))
    assert done.returncode == 0, done.stderr
    header, rule, *rows = done.stdout.splitlines()
    assert header.split() == ["Fingerprint", "Status", "Count", "Last", "hour", "Last",
                              "seen", "Process", "Title"]
    assert set(rule) <= {"-", " "}
    assert len(rows) == 2
    assert rows[0].split()[1:3] == ["resolved", "1"] and rows[0].endswith("KeyError: <str>")
    assert rows[1].split()[1:3] == ["open", "4"]
    assert rows[1].endswith("ValueError: trade <n> cannot settle")


def test_status_process_and_sort_narrow_and_order(grouped):
    only_open = errors("--db", str(grouped), "--status", "open").stdout.splitlines()[2:]
    assert len(only_open) == 1 and "settle" in only_open[0]
    by_count = errors("--db", str(grouped), "--sort", "count").stdout.splitlines()[2:]
    assert [r.split()[2] for r in by_count] == ["4", "1"]
    name = f"{book.__module__}.book"
    one = json.loads(errors("--db", str(grouped), "--process", name, "--json").stdout)
    assert [g["process"] for g in one] == [name]


def test_json_prints_every_field(grouped):
    done = errors("--db", str(grouped), "--json", "--status", "open")
    groups = json.loads(done.stdout)
    assert len(groups) == 1
    g = groups[0]
    assert (g["count"], g["status"], g["title"]) == (4, "open", "ValueError: trade <n> cannot "
                                                                 "settle")
    assert {"fingerprint", "first_seen", "last_seen", "count_last_hour", "services", "hosts",
            "last_span_id", "last_trace_id"} <= set(g)


def test_bad_arguments_and_a_missing_store_exit_2(tmp_path):
    missing = errors("--db", str(tmp_path / "none.db"))
    assert missing.returncode == 2 and "no such store" in missing.stderr
    assert not (tmp_path / "none.db").exists()
    assert errors("--status", "closed").returncode == 2
    assert errors("--limit", "0").returncode == 2
