"""``otel-monitor merge`` end to end: legacy stores written by the brief's own decorator (in
their own processes) merged by the command (summary table, ``--json``, exit status), then
the merged store served by ``otel-monitor serve`` with the legacy calls in its table."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from otel_monitor import cli
from served_cli import served_cli

ROOT = Path(__file__).resolve().parents[2]
BRIEF_MVP = ROOT / "tests" / "exporters" / "brief_mvp.py"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.fixture(scope="module")
def legacy(tmp_path_factory) -> list[Path]:
    """Two stores of the brief's MVP: calls 0..19 and 10..29 (overlapping by 10)."""
    folder = tmp_path_factory.mktemp("logs")
    t0 = int(time.time()) - 1800
    paths = []
    for name, first, stop in (("desk_day1", 0, 20), ("desk_day2", 10, 30)):
        path = folder / f"{name}.db"
        subprocess.run([sys.executable, str(BRIEF_MVP), str(path), str(first), str(stop),
                        str(t0)], check=True, env=_env(), timeout=60, capture_output=True)
        paths.append(path)
    return paths


def _merge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otel_monitor.cli", "merge", *args],
                          env=_env(), capture_output=True, text=True, timeout=120)


def test_merge_json_then_served_with_the_legacy_calls(legacy, tmp_path):
    into = tmp_path / "core_logs.db"
    out = _merge(*map(str, legacy), "--into", str(into), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    # calls 0..29: 30 prices, 5 failed limit checks (0, 7, 14, 21, 28); day 2 repeats 10..19
    assert [s["calls"] for s in report["sources"]] == [20 + 3, 10 + 2]
    assert [s["duplicates"] for s in report["sources"]] == [0, 10 + 1]
    assert report["totals"]["calls"] == 35 and report["totals"]["rows"] == 30 * 4 + 5
    assert report["totals"]["skipped_sources"] == 0

    with served_cli(into, _env()) as served:
        r = httpx.get(f"{served.url}/api/rows",
                      params={"process": "desk.pricing.price", "limit": 1000}, timeout=10)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["total"] == 30 * 4
        spots = {row["Data Value"] for row in page["rows"] if row["Data"] == "spot"}
        assert spots == {repr(100.0 + i) for i in range(30)}
        assert {row["Data Value"] for row in page["rows"] if row["Data"] == "vol"} \
            == {"<HASHED>"}
        errors = httpx.get(f"{served.url}/api/rows", params={"errors_only": "true"},
                           timeout=10).json()["rows"]
        assert len(errors) == 5 and all("ValueError: limit breached" in row["Exception"]
                                        for row in errors)


def test_merge_prints_a_summary_and_exits_1_when_a_source_is_skipped(legacy, tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"garbage" * 1000)
    into = tmp_path / "core_logs.db"
    out = _merge(str(legacy[0]), str(bad), "--into", str(into))
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["source", "schema", "calls", "rows", "duplicates", "outside",
                                "retention", "error"]
    assert lines[1].split()[:6] == [str(legacy[0]), "brief", "(v0)", "23", "83", "0"]
    assert lines[2].startswith(str(bad)) and "not a database" in lines[2]
    assert lines[-1] == f"merged into {into}"
    assert f"skipped: {bad}" in out.stderr  # the plain progress lines


def test_dry_run_writes_nothing(legacy, tmp_path):
    into = tmp_path / "core_logs.db"
    out = _merge(*map(str, legacy), "--into", str(into), "--dry-run", "--json")
    assert out.returncode == 0 and not into.exists()
    # Each source against the destination as it is (none yet): the overlap is not seen.
    assert [s["calls"] for s in json.loads(out.stdout)["sources"]] == [23, 23]


def test_progress_bars_and_table_with_rich_on_a_terminal(legacy, tmp_path, monkeypatch, capsys):
    pytest.importorskip("rich")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    into = tmp_path / "core_logs.db"
    assert cli.main(["merge", str(legacy[0]), "--into", str(into)]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "merged into" in out and "duplicates" in out and "23" in out
