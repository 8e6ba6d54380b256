"""``exporters.merge``: the brief's MVP stores (written by the brief's own decorator, in
separate processes, three of them overlapping) and otel-monitor stores of schema version 1
and of the current version merge into one store with exact counts; a second merge changes
nothing; sources stay byte for byte as they were; unreadable sources are reported and
skipped; calls outside retention are skipped unless kept; a dry run writes nothing; a
store that a live process is writing to takes the merge without losing that process's
calls."""
from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import brief_mvp
from exporters import SpanStore
from exporters.merge import content_ids, merge_stores
from exporters.schema import SCHEMA_VERSION
from exporters.store import ProcessEntry

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# The three legacy stores' call ranges: A and B share 40..59, B and C share 90..99.
LEGACY = {"a": (0, 60), "b": (40, 100), "c": (90, 120)}
V1_CALLS = 15
CURRENT_CALLS = 25


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def make_brief_store(path: Path, first: int, stop: int, t0: int, journal: str = "wal") -> None:
    subprocess.run([sys.executable, str(HERE / "brief_mvp.py"), str(path), str(first),
                    str(stop), str(t0), "--journal", journal],
                   check=True, env=_env(), timeout=60, capture_output=True)


def make_current_store(path: Path, calls: int) -> None:
    """Recorded by otel-monitor's own decorator in its own process."""
    script = textwrap.dedent(f"""
        import otel_monitor
        otel_monitor.configure(db_path={str(path)!r}, flush_interval_s=0.05)

        @otel_monitor.monitor("now")
        def settle(trade, qty):
            return qty * 2

        for i in range({calls}):
            settle(f"t{{i}}", i)
        assert otel_monitor.force_flush(10)
        otel_monitor.shutdown()
    """)
    subprocess.run([sys.executable, "-c", script], check=True, env=_env(), timeout=60)


def make_v1_store(path: Path, calls: int, start_ns: int) -> None:
    """A store as schema version 1 had it: no state tables, no index of one process's
    failed calls, no OTLP health columns."""
    store = SpanStore(path)
    pid = store.process_ids([ProcessEntry("legacy.v1.job", "batch")])["legacy.v1.job"]
    spans, data = [], []
    for i in range(calls):
        spans += (i, 10_000 + i, f"{i:032x}", None, start_ns + i * 10**9, 1.5, pid, "batch",
                  "v1-service", "ERR" if i == 3 else "OK", "error" if i == 3 else "ok",
                  "KeyError" if i == 3 else None, "Traceback: KeyError" if i == 3 else None,
                  4242, None)
        data += (i, 0, "n", "INPUT", repr(i), i, 1, "return", "OUTPUT", repr(i * i))
    store.insert_calls(spans, data)
    store.close()
    conn = sqlite3.connect(path)
    conn.executescript("""
        DROP VIEW feed_status; DROP VIEW alert_log; DROP VIEW banners;
        DROP TABLE feeds; DROP TABLE feed_edges; DROP TABLE alerts; DROP TABLE flags;
        DROP INDEX spans_errors_by_process; DROP INDEX spans_by_duration;
        ALTER TABLE health DROP COLUMN otlp_exported; ALTER TABLE health DROP COLUMN otlp_failed;
        UPDATE meta SET value = '1' WHERE key = 'schema_version';
    """)
    conn.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _legacy_calls(ranges) -> set[tuple[int, str]]:
    return {(i, process) for first, stop in ranges for i in range(first, stop)
            for process in brief_mvp.calls_of(i)}


def _rows_of(process: str) -> int:
    return 4 if process == "desk.pricing.price" else 1


def _counts(path: Path) -> tuple[int, int, int]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT (SELECT count(*) FROM spans), "
                            "(SELECT count(*) FROM data_values), (SELECT max(id) FROM spans)"
                            ).fetchone()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sources")
    t0 = int(time.time()) - 3600  # an hour ago: inside the 6 h retention
    paths = {}
    for name, (first, stop) in LEGACY.items():
        paths[name] = folder / f"app_{name}.db"
        make_brief_store(paths[name], first, stop, t0)
    paths["v1"] = folder / "v1.db"
    make_v1_store(paths["v1"], V1_CALLS, (t0 + 200) * 10**9)
    paths["current"] = folder / "current.db"
    make_current_store(paths["current"], CURRENT_CALLS)
    return paths


def test_merged_counts_are_exact_and_a_second_merge_changes_nothing(sources, tmp_path):
    order = ["a", "b", "c", "v1", "current"]
    before = {name: _digest(sources[name]) for name in order}
    into = tmp_path / "core_logs.db"

    results = merge_stores([sources[n] for n in order], into)

    by = dict(zip(order, results))
    assert all(r.error is None for r in results), [r.error for r in results]
    assert [r.schema for r in results] == ["brief (v0)"] * 3 + ["otel-monitor v1",
                                                                 f"otel-monitor v{SCHEMA_VERSION}"]
    seen: set = set()
    for name in ("a", "b", "c"):
        calls = _legacy_calls([LEGACY[name]])
        new = calls - seen
        assert (by[name].calls, by[name].duplicates) == (len(new), len(calls & seen)), name
        assert by[name].rows == sum(_rows_of(p) for _, p in new)
        seen |= calls
    assert by["b"].duplicates == 23 and by["c"].duplicates == 12  # 20 + 3 and 10 + 2 calls
    assert (by["v1"].calls, by["v1"].rows) == (V1_CALLS, 2 * V1_CALLS)
    assert (by["current"].calls, by["current"].rows) == (CURRENT_CALLS, 3 * CURRENT_CALLS)  # trade, qty, return
    legacy_rows = sum(_rows_of(p) for _, p in seen)
    counts = _counts(into)
    assert counts[:2] == (len(seen) + V1_CALLS + CURRENT_CALLS,
                          legacy_rows + 2 * V1_CALLS + 3 * CURRENT_CALLS)

    again = merge_stores([sources[n] for n in order], into)

    assert [r.calls for r in again] == [0] * 5 and [r.rows for r in again] == [0] * 5
    assert [r.duplicates for r in again] == [
        len(_legacy_calls([LEGACY[n]])) for n in ("a", "b", "c")] + [V1_CALLS, CURRENT_CALLS]
    assert _counts(into) == counts
    assert {name: _digest(sources[name]) for name in order} == before  # never changed
    with sqlite3.connect(sources["v1"]) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() \
            == ("1",)


def test_calls_keep_timestamps_processes_values_statuses_and_tracebacks(sources, tmp_path):
    into = tmp_path / "core_logs.db"
    merge_stores([sources[n] for n in ("a", "b", "c", "v1", "current")], into)
    merged = sqlite3.connect(into)
    legacy_data, legacy_calls = set(), set()
    for name in ("a", "b", "c"):
        with sqlite3.connect(sources[name]) as conn:
            legacy_data |= set(conn.execute("SELECT ts, process, data, data_type, data_value, "
                                            "status, exception FROM data_trace"))
            legacy_calls |= set(conn.execute("SELECT ts, process, status, duration_ms, "
                                             "exception FROM process_trace"))
    # The brief's timestamps are whole seconds; the views show microseconds.
    got_data = {(ts[:19], *rest) for ts, *rest in merged.execute(
        "SELECT ts, process, data, data_type, data_value, status, exception FROM data_trace "
        "WHERE process LIKE 'desk.%'")}
    got_calls = {(ts[:19], *rest) for ts, *rest in merged.execute(
        "SELECT ts, process, status, duration_ms, exception FROM process_trace "
        "WHERE process LIKE 'desk.%'")}
    assert got_data == legacy_data and got_calls == legacy_calls
    assert all(ts.endswith(".000000") for (ts,) in merged.execute(
        "SELECT ts FROM process_trace WHERE process LIKE 'desk.%'"))
    # A legacy call's variables keep their order; its ids are the ones from its content.
    first = merged.execute("SELECT ts, span_id, trace_id FROM process_trace "
                           "WHERE process = 'desk.pricing.price' ORDER BY start_ns LIMIT 1"
                           ).fetchone()
    names = [r[0] for r in merged.execute(
        "SELECT data FROM data_trace WHERE span_id = ? ORDER BY seq", (first[1],))]
    assert names == ["spot", "strike", "vol", "return"]
    with sqlite3.connect(sources["a"]) as conn:
        head = conn.execute("SELECT ts, process, status, duration_ms, exception FROM "
                            "process_trace WHERE ts = ? AND process = 'desk.pricing.price'",
                            (first[0][:19],)).fetchone()
        data = conn.execute("SELECT data, data_type, data_value FROM data_trace WHERE ts = ? "
                            "AND process = 'desk.pricing.price' ORDER BY rowid",
                            (first[0][:19],)).fetchall()
    span_id, trace_id = content_ids(*head, data)
    assert (f"{span_id:016x}", trace_id) == first[1:]
    # otel-monitor calls keep their span ids, groups, services and catalog.
    v1 = merged.execute("SELECT span_id, trace_id, process_group, service_name, status, "
                        "exception FROM process_trace WHERE process = 'legacy.v1.job' "
                        "AND status = 'ERR'").fetchall()
    assert v1 == [(f"{10_003:016x}", f"{3:032x}", "batch", "v1-service", "ERR",
                   "Traceback: KeyError")]
    catalog = "SELECT name, process_group, file, line, source, feeds FROM processes"
    with sqlite3.connect(sources["current"]) as conn:
        theirs = conn.execute(catalog).fetchall()
    assert theirs and set(theirs) <= set(merged.execute(catalog))


def test_unreadable_sources_are_reported_and_skipped_and_the_rest_merged(sources, tmp_path):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is no SQLite file\n" * 400)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    newer = tmp_path / "newer.db"
    SpanStore(newer).close()
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                     (str(SCHEMA_VERSION + 1),))
    locked = tmp_path / "locked.db"
    make_brief_store(locked, 0, 5, int(time.time()) - 60, journal="delete")
    into = tmp_path / "core_logs.db"
    SpanStore(into).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sqlite3, sys, time
            conn = sqlite3.connect({str(locked)!r}, isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
            print("locked", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        given = [corrupt, locked, foreign, newer, into, tmp_path / "missing.db", sources["a"]]
        results = merge_stores(given, into, source_busy_timeout_s=0.5)
    finally:
        holder.kill()
        holder.wait()
    errors = {Path(r.source).name: r.error for r in results}
    assert "not a database" in errors["corrupt.db"]
    assert "locked" in errors["locked.db"]
    assert "not an otel-monitor store" in errors["foreign.db"]
    assert "newer" in errors["newer.db"]
    assert "destination itself" in errors["core_logs.db"]
    assert "no such store" in errors["missing.db"]
    assert errors["app_a.db"] is None
    assert results[-1].calls == len(_legacy_calls([LEGACY["a"]]))
    assert _counts(into)[0] == results[-1].calls
    assert sum(r.calls for r in results[:-1]) == 0
    # Once free, the locked source merges like any other.
    again = merge_stores([locked], into)
    assert again[0].error is None and again[0].calls == len(_legacy_calls([(0, 5)]))


def test_calls_outside_retention_are_skipped_unless_kept(tmp_path):
    old = tmp_path / "old.db"
    make_brief_store(old, 0, 10, int(time.time()) - 10 * 86400)  # ten days ago
    expected = len(_legacy_calls([(0, 10)]))

    skipped = merge_stores([old], tmp_path / "hot.db", retention_hours=6)[0]
    kept = merge_stores([old], tmp_path / "all.db", keep_all=True)[0]

    assert (skipped.calls, skipped.outside_retention) == (0, expected)
    assert (kept.calls, kept.outside_retention) == (expected, 0)
    assert _counts(tmp_path / "hot.db")[0] == 0 and _counts(tmp_path / "all.db")[0] == expected


def test_a_dry_run_counts_and_writes_nothing(sources, tmp_path):
    into = tmp_path / "core_logs.db"
    dry = merge_stores([sources["a"], sources["v1"]], into, dry_run=True)
    assert not into.exists()
    assert [(r.calls, r.duplicates) for r in dry] == [(len(_legacy_calls([LEGACY["a"]])), 0),
                                                     (V1_CALLS, 0)]
    merge_stores([sources["a"]], into)
    before = _digest(into)
    dry = merge_stores([sources["a"], sources["b"]], into, dry_run=True)
    assert dry[0].calls == 0 and dry[0].duplicates == len(_legacy_calls([LEGACY["a"]]))
    assert dry[1].duplicates == 23  # what store A already holds of B
    assert _digest(into) == before


def test_merging_into_a_store_a_live_process_writes_to_loses_nothing(sources, tmp_path):
    into = tmp_path / "live.db"
    script = textwrap.dedent(f"""
        import sys, time
        import otel_monitor
        otel_monitor.configure(db_path={str(into)!r}, flush_interval_s=0.02)

        @otel_monitor.monitor("live")
        def tick(n):
            return n

        print("ready", flush=True)
        n, deadline = 0, time.monotonic() + 60
        while sys.stdin.readline().strip() != "stop" and time.monotonic() < deadline:
            for _ in range(200):
                tick(n)
                n += 1
            print("more", flush=True)
        assert otel_monitor.force_flush(10)
        otel_monitor.shutdown()
        print(n, flush=True)
    """)
    live = subprocess.Popen([sys.executable, "-c", script], env=_env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "ready"

        class Nudge:  # the live process records more between the merge's chunks
            def start(self, source, total):
                pass

            def advance(self, calls):
                live.stdin.write("go\n")
                live.stdin.flush()
                assert live.stdout.readline().strip() == "more"

            def finish(self, result):
                pass

        results = merge_stores([sources[n] for n in ("a", "b", "c", "v1")], into,
                               chunk_calls=16, progress=Nudge())
        live.stdin.write("stop\n")
        live.stdin.flush()
        ticked = int(live.stdout.read().split()[-1])
    finally:
        live.kill()
        live.wait()
    assert all(r.error is None for r in results)
    merged = sum(r.calls for r in results)
    assert merged == len(_legacy_calls(LEGACY.values())) + V1_CALLS
    with sqlite3.connect(into) as conn:
        assert conn.execute("SELECT count(*) FROM process_trace WHERE process LIKE '%tick'"
                            ).fetchone() == (ticked,)
        assert conn.execute("SELECT count(*) FROM spans").fetchone() == (merged + ticked,)
