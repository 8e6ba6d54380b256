"""`otel-monitor demo` and `otel-monitor tail`, run as the real command in a subprocess."""
from __future__ import annotations

import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

import otel_monitor
from child_signals import restore_sigint
from exporters.columns import SEVEN_COLUMNS
from exporters.store import SpanStore
from otel_monitor import monitor
from otel_monitor.cli.tail import exception_summary, match_processes

COMMAND = [sys.executable, "-m", "otel_monitor.cli"]
ENV = {k: v for k, v in os.environ.items()
       if not k.startswith(("OTEL_MONITOR_", "OTEL_EXPORTER_OTLP_"))}
ENV["COLUMNS"] = "250"  # wide enough that no cell the tests read is cut
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=60,
                          env=ENV, cwd=cwd)


def table(stdout: str) -> list[dict[str, str]]:
    """The rows of tail's table, cut at the header's column offsets."""
    lines = stdout.splitlines()
    header, rule = lines[0], lines[1]
    assert set(rule) <= {"-", " "}
    starts = [header.index(name) for name in SEVEN_COLUMNS]
    ends = starts[1:] + [None]
    return [{name: line[s:e].strip() for name, s, e in zip(SEVEN_COLUMNS, starts, ends)}
            for line in lines[2:]]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    """A store that three seconds of the demo wrote."""
    path = tmp_path_factory.mktemp("demo") / "risk.db"
    done = cli("demo", "--db", str(path), "--duration", "3", "--rate", "1000", "--quiet",
               cwd=path.parent)
    assert done.returncode == 0, done.stderr
    return path, done


def query(path, sql: str, params=()) -> list[tuple]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute(sql, params).fetchall()


# -- demo -------------------------------------------------------------------------------


def test_demo_prints_the_store_path_and_exits_0(demo_db):
    path, done = demo_db
    assert str(path) in done.stdout
    assert len(done.stdout.splitlines()) == 1  # --quiet: no summaries
    assert "Traceback" not in done.stderr


def test_demo_records_several_process_groups(demo_db):
    path, _ = demo_db
    groups = {g for (g,) in query(path, "SELECT DISTINCT process_group FROM process_trace")}
    assert groups == {"marketdata", "pricing", "risk", "reporting"}


def test_demo_records_errors_with_their_traceback(demo_db):
    path, _ = demo_db
    errors = query(path, "SELECT process, data_type, exception FROM data_trace "
                         "WHERE status = 'ERR'")
    assert errors
    assert all(e.startswith("Traceback (most recent call last):") for _, _, e in errors)
    assert any("StaleQuoteError" in e for _, _, e in errors)
    assert {t for _, t, _ in errors} == {"INPUT"}  # a call that raised has no OUTPUT row
    calls, failed = SpanStore(path, readonly=True).call_counts()
    assert 0 < failed / calls < 0.05


def test_demo_masks_the_api_key(demo_db):
    from otel_monitor.demo import VENDOR_API_KEY

    path, _ = demo_db
    keys = {v for (v,) in query(path, "SELECT data_value FROM data_trace WHERE data = 'api_key'")}
    assert keys and all(re.fullmatch(r"<HASHED:[0-9a-f]+>", v) for v in keys)
    clear = query(path, "SELECT count(*) FROM data_trace WHERE instr(data_value, ?) "
                        "OR instr(coalesce(exception, ''), ?)", (VENDOR_API_KEY,) * 2)
    assert clear == [(0,)]


def test_demo_nests_calls_sync_async_and_generator(demo_db):
    path, _ = demo_db
    edges = {(parent.rsplit(".", 1)[-1], child.rsplit(".", 1)[-1]) for parent, child in query(
        path, """SELECT p.process, c.process FROM process_trace c
                 JOIN process_trace p ON p.span_id = c.parent_span_id
                 AND p.trace_id = c.trace_id""")}
    assert {("run_risk", "price_position"), ("price_position", "black_scholes"),
            ("refresh_fx_rates", "fetch_fx_rate"), ("stream_quotes", "fetch_quote")} <= edges


def test_demo_ticks_its_feeds_into_the_store_with_their_edges(demo_db):
    path, _ = demo_db
    feeds = {name: ticks for name, ticks in query(path, "SELECT name, ticks FROM feed_status")}
    assert set(feeds) == {"bbg.fx", "bbg.equities", "refinitiv.rates"}
    assert feeds["bbg.fx"] > 10 and feeds["refinitiv.rates"] >= 2  # 3 s: ~1 a second
    edges = {(f, p.rsplit(".", 1)[-1], d, c) for f, p, d, c in query(
        path, "SELECT feed, process, declared, called FROM feed_edges")}
    assert {("bbg.fx", "refresh_fx_rates", 0, 1), ("bbg.equities", "stream_quotes", 0, 1),
            ("refinitiv.rates", "black_scholes", 1, 0)} <= edges


def test_demo_rates_feed_goes_silent_past_its_threshold_on_a_schedule():
    from otel_monitor.demo import rates_silent

    assert not rates_silent(0) and not rates_silent(39.9)
    assert rates_silent(40) and rates_silent(59.9)      # 20 s: stale after 10, then resolves
    assert not rates_silent(60) and not rates_silent(129.9)
    assert rates_silent(130)


def test_demo_stops_on_ctrl_c_with_everything_flushed(tmp_path):
    path = tmp_path / "ctrl_c.db"
    proc = subprocess.Popen([*COMMAND, "demo", "--db", str(path), "--rate", "500"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, cwd=tmp_path, preexec_fn=restore_sigint)
    try:
        assert str(path) in proc.stdout.readline()  # running
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    recorded = int(re.search(r"([\d,]+) calls recorded", out).group(1).replace(",", ""))
    assert recorded > 0
    assert SpanStore(path, readonly=True).call_counts()[0] == recorded


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_demo_serve_runs_the_workload_and_the_ui_and_stops_both_cleanly(tmp_path, stop_signal):
    import httpx

    path = tmp_path / "served.db"
    proc = subprocess.Popen([*COMMAND, "demo", "--serve", "--port", "0", "--db", str(path),
                             "--rate", "500", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, cwd=tmp_path, preexec_fn=restore_sigint)
    try:
        assert str(path) in proc.stdout.readline()
        announced = proc.stdout.readline()  # once the UI listens
        url = re.search(r"UI on (http://127\.0\.0\.1:(\d+)/)", announced).group(1)
        port = int(url.rsplit(":", 1)[1].rstrip("/"))
        with httpx.Client(base_url=url, timeout=10) as http:
            page = http.get("/")
            assert page.status_code == 200 and 'id="_dash-config"' in page.text
            deadline = time.monotonic() + 20
            while not (rows := http.get("/api/rows").json()["rows"]):
                assert time.monotonic() < deadline, "no demo rows served"
                time.sleep(0.2)
        assert all(r["Process"].startswith("otel_monitor.demo.") for r in rows)
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Error" not in err, err
    with pytest.raises(OSError):  # the UI process is gone too
        import socket

        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_demo_serve_on_a_taken_port_stops_with_exit_2(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli("demo", "--serve", "--port", str(port), "--db", str(tmp_path / "t.db"),
                   "--duration", "30", "--quiet", cwd=tmp_path)
    assert done.returncode == 2
    assert f"cannot serve the UI on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr and not done.stdout


# -- tail -------------------------------------------------------------------------------


def test_tail_prints_the_newest_n_rows_oldest_first_under_the_seven_headers(demo_db):
    path, _ = demo_db
    done = cli("tail", "--db", str(path), "-n", "5")
    assert done.returncode == 0, done.stderr
    header = re.split(r"\s{2,}", done.stdout.splitlines()[0].strip())
    assert tuple(header) == SEVEN_COLUMNS
    rows = table(done.stdout)
    assert len(rows) == 5
    newest = SpanStore(path, readonly=True).latest_rows(limit=5)
    assert [(r["Process"], r["Data"]) for r in rows] == [(r["Process"], r["Data"])
                                                         for r in newest]
    for row in rows:
        assert TIMESTAMP.fullmatch(row["Timestamp"])
        assert query(path, 'SELECT 1 FROM trace_rows WHERE "Timestamp" = ? LIMIT 1',
                     (row["Timestamp"],))  # the same text as the trace_rows view


def test_tail_errors_prints_only_err_rows_with_the_exception_line(demo_db):
    path, _ = demo_db
    done = cli("tail", "--db", str(path), "--errors", "-n", "30")
    rows = table(done.stdout)
    assert rows and {r["Status"] for r in rows} == {"ERR"}
    for row in rows:
        assert re.match(r"(StaleQuoteError|ValueError): ", row["Exception"])
        assert "Traceback" not in row["Exception"]


def test_tail_process_takes_a_full_name_or_a_dotted_suffix(demo_db):
    path, _ = demo_db
    full = cli("tail", "--db", str(path), "--process", "otel_monitor.demo.black_scholes")
    short = cli("tail", "--db", str(path), "--process", "black_scholes")
    assert full.stdout == short.stdout
    rows = table(short.stdout)
    assert len(rows) == 20
    assert {r["Process"] for r in rows} == {"otel_monitor.demo.black_scholes"}


def test_match_processes_prefers_the_exact_name_and_matches_whole_dotted_parts():
    names = ["a.price", "b.price", "price", "c.reprice", "d.Book.price"]
    assert match_processes(names, "price") == ["price"]
    assert match_processes(names[:2] + names[3:], "price") == ["a.price", "b.price",
                                                               "d.Book.price"]
    assert match_processes(names, "Book.price") == ["d.Book.price"]


def test_exception_summary_is_the_line_naming_the_exception():
    try:
        try:
            raise KeyError("AAPL")
        except KeyError as exc:
            raise ValueError("no quote\nfor AAPL") from exc
    except ValueError as exc:
        import traceback
        text = "".join(traceback.format_exception(exc))
    assert exception_summary(text) == "ValueError: no quote"


def test_tail_of_a_missing_store_exits_2_with_one_line(tmp_path):
    missing = tmp_path / "nothing-here.db"
    done = cli("tail", "--db", str(missing))
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert str(missing) in done.stderr and "Traceback" not in done.stderr
    assert not missing.exists()  # read-only: nothing created


@monitor("feeds")
def quote_tick(symbol: str, px: float) -> float:
    return px


def test_tail_follow_prints_rows_written_after_it_started(store_path):
    proc = None
    try:
        quote_tick("BEFORE", 1.0)
        assert otel_monitor.force_flush()
        proc = subprocess.Popen([*COMMAND, "tail", "--db", str(store_path), "--follow", "-n", "0",
                                 "--process", "quote_tick"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=ENV)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()

        def next_line() -> str:
            return lines.get(timeout=10)

        assert next_line().startswith("Process")  # started: its cursor is set
        next_line()
        quote_tick("AFTER1", 2.0)
        quote_tick("AFTER2", 3.0)
        assert otel_monitor.force_flush()
        printed = [next_line() for _ in range(6)]  # 2 calls x (symbol, px, return)
        assert [line.split()[1:4] for line in printed] == [
            ["symbol", "INPUT", "'AFTER1'"], ["px", "INPUT", "2.0"], ["return", "OUTPUT", "2.0"],
            ["symbol", "INPUT", "'AFTER2'"], ["px", "INPUT", "3.0"], ["return", "OUTPUT", "3.0"]]
        assert all(line.split()[0].endswith(".quote_tick") for line in printed)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    assert "BEFORE" not in proc.stdout.read()


def test_cli_and_demo_import_no_ui_package():
    code = ("import sys, otel_monitor.cli, otel_monitor.demo; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'dash_ui', 'dash', 'plotly', 'fastapi', 'uvicorn'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=ENV, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
