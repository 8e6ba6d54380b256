"""Archive before purge (issue 17): calls past the retention window are written to Parquet
(one file per hour per writer, zstd, sorted by time, listed in a manifest with size and
sha256) and only then deleted; a crash between the two loses nothing and duplicates
nothing when read."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("pyarrow")

from exporters import SpanStore
from exporters.archive.layout import HOUR_NS, ArchiveLayout
from exporters.archive.reader import read_calls
from exporters.archive.writer import sha256_of
from exporters.retention import RetentionWorker
from exporter_helpers import insert_calls, scalar

BASE_NS = 1_700_000_000 * 10**9 - (1_700_000_000 * 10**9) % HOUR_NS  # an hour boundary


def _aged_store(db_path: str) -> tuple[list[str], list[str]]:
    """10 calls 6-8 h old over two hours of start time, 3 calls 1 h old."""
    store = SpanStore(db_path)
    try:
        old = insert_calls(store, [BASE_NS + i * 12 * 60 * 10**9 for i in range(10)],
                           args=(("n", "1"),))
        new = insert_calls(store, [BASE_NS + 7 * HOUR_NS + i for i in range(3)])
    finally:
        store.close()
    return old, new


def _run(db_path: str, archive_dir: Path) -> tuple[int, RetentionWorker]:
    worker = RetentionWorker(db_path, archive_dir=str(archive_dir))
    store = SpanStore(db_path)
    try:
        return worker.run_once(store, now_ns=BASE_NS + 8 * HOUR_NS), worker
    finally:
        store.close()


def test_purged_calls_are_archived_then_found_again(db_path, tmp_path):
    old, new = _aged_store(db_path)
    archive = tmp_path / "archive"
    deleted, worker = _run(db_path, archive)
    assert deleted == worker.archived == len(old)
    assert scalar(db_path, "SELECT count(*) FROM spans") == len(new)

    manifest = ArchiveLayout(archive).manifest()
    assert [e["hour_ns"] for e in manifest] == [BASE_NS, BASE_NS + HOUR_NS]
    assert sum(e["calls"] for e in manifest) == len(old)
    assert sum(e["rows"] for e in manifest) == 3 * len(old)  # key, n, return
    for entry in manifest:
        path = archive / entry["path"]
        assert "date=" in entry["path"] and "/hour=" in entry["path"]
        assert path.stat().st_size == entry["size"] and sha256_of(path) == entry["sha256"]

    rows = read_calls(archive, BASE_NS, BASE_NS + 2 * HOUR_NS)
    keys = [r["data_value"] for r in rows if r["data"] == "key"]
    assert keys == old  # every call, once, in time order
    first = [r for r in rows if r["data_value"] == old[0]][0]
    assert first["process"] == "app.price" and first["service"] == "svc"
    assert first["status"] == "OK" and first["seq"] == 0
    assert [r["seq"] for r in rows[:3]] == [0, 1, 2]
    # pushdown on time and process
    assert read_calls(archive, BASE_NS, BASE_NS + HOUR_NS, process="other") == []
    one_hour = read_calls(archive, BASE_NS + HOUR_NS, BASE_NS + 2 * HOUR_NS)
    assert {r["data_value"] for r in one_hour if r["data"] == "key"} == set(old[10 // 2:])


def test_a_call_without_data_rows_is_one_row_with_seq_null(db_path, tmp_path):
    store = SpanStore(db_path)
    try:
        insert_calls(store, [BASE_NS])
        store.db.execute_write("DELETE FROM data_values")
    finally:
        store.close()
    _run(db_path, tmp_path / "a")
    rows = read_calls(tmp_path / "a", BASE_NS, BASE_NS + HOUR_NS)
    assert len(rows) == 1 and rows[0]["seq"] is None and rows[0]["data"] is None


def test_unwritable_archive_deletes_nothing(db_path, tmp_path):
    old, new = _aged_store(db_path)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError):
        _run(db_path, blocker / "archive")
    assert scalar(db_path, "SELECT count(*) FROM spans") == len(old) + len(new)


_CHILD = textwrap.dedent("""
    import sys
    from exporters import SpanStore
    from exporters.retention import RetentionWorker
    db, archive, now = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cap = int(sys.argv[4]) if len(sys.argv) > 4 else None
    store = SpanStore(db)
    RetentionWorker(db, archive_dir=archive, max_bytes=cap).run_once(store, now_ns=now)
    store.close()
""")


def _child(db_path: str, archive: Path, env: dict, *cap: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CHILD, db_path, str(archive),
                             str(BASE_NS + 8 * HOUR_NS), *cap], env=env)


def _kill_at_fault_point(child: subprocess.Popen, marker: Path) -> None:
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, "the child ended before the fault point"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def test_kill_9_between_archive_and_delete_loses_and_duplicates_nothing(db_path, tmp_path):
    old, new = _aged_store(db_path)
    archive = tmp_path / "archive"
    marker = tmp_path / "stopped"
    env = dict(os.environ, OTEL_MONITOR_ARCHIVE_FAULT=f"archived:{marker}")
    _kill_at_fault_point(_child(db_path, archive, env), marker)
    files_before = sorted(p.relative_to(archive) for p in archive.rglob("*.parquet"))
    assert files_before and scalar(db_path, "SELECT count(*) FROM spans") == len(old) + len(new)

    env.pop("OTEL_MONITOR_ARCHIVE_FAULT")
    assert _child(db_path, archive, env).wait(timeout=120) == 0
    files_after = sorted(p.relative_to(archive) for p in archive.rglob("*.parquet"))
    assert files_after == files_before  # the same names, overwritten
    assert not list(archive.rglob("*.tmp*"))
    assert scalar(db_path, "SELECT count(*) FROM spans") == len(new)
    keys = [r["data_value"] for r in read_calls(archive, BASE_NS, BASE_NS + 2 * HOUR_NS)
            if r["data"] == "key"]
    assert keys == old
    assert len(ArchiveLayout(archive).manifest()) == len(files_after)


def test_read_dedupes_a_call_archived_in_two_files(db_path, tmp_path):
    """The second guard: the same call in two files (a re-archive under another name)."""
    from exporters.archive.writer import ArchiveWriter
    store = SpanStore(db_path)
    try:
        insert_calls(store, [BASE_NS + 1, BASE_NS + 2])
        rows = store.archive_rows(BASE_NS + HOUR_NS, 10)
    finally:
        store.close()
    ArchiveWriter(tmp_path, "w1").write(rows)
    ArchiveWriter(tmp_path, "w2").write(rows)
    got = read_calls(tmp_path, BASE_NS, BASE_NS + HOUR_NS)
    assert len(got) == len(rows) == 4


def test_archived_hours_past_the_archive_retention_are_deleted(db_path, tmp_path):
    old, _ = _aged_store(db_path)
    archive = tmp_path / "archive"
    _run(db_path, archive)
    assert len(ArchiveLayout(archive).manifest()) == 2
    worker = RetentionWorker(db_path, archive_dir=str(archive), archive_retention_days=1)
    store = SpanStore(db_path)
    try:  # a day and an hour later: the first hour is past 1 day, the second not yet
        worker.run_once(store, now_ns=BASE_NS + 25 * HOUR_NS + HOUR_NS // 2)
    finally:
        store.close()
    # (the 3 newer calls, past the hot window by now, were archived in their own hour)
    hours = [e["hour_ns"] for e in ArchiveLayout(archive).manifest()]
    assert hours == [BASE_NS + HOUR_NS, BASE_NS + 7 * HOUR_NS]
    assert len(list(archive.rglob("*.parquet"))) == 2
    keys = [r["data_value"] for r in read_calls(archive, BASE_NS, BASE_NS + 2 * HOUR_NS)
            if r["data"] == "key"]
    assert keys == old[5:]


def test_archive_files_are_kept_30_days_by_default_then_deleted(db_path, tmp_path):
    """The default archive retention, 30 days from the end of each file's hour, judged on
    the directory itself: a file goes with its manifest line and its emptied folders."""
    _aged_store(db_path)
    archive = tmp_path / "archive"
    _run(db_path, archive)
    first, second = files = sorted(archive.rglob("*.parquet"))  # hours 0 and 1
    worker = RetentionWorker(db_path, archive_dir=str(archive))  # the default: 30 days
    store = SpanStore(db_path)
    try:  # (this first pass also archives the 3 newer calls, in hour 7)
        worker.run_once(store, now_ns=BASE_NS + 30 * 24 * HOUR_NS)  # hour 0 ended 30 d - 1 h ago
        assert all(f.exists() for f in files)
        worker.run_once(store, now_ns=BASE_NS + 30 * 24 * HOUR_NS + HOUR_NS)  # now 30 days
        assert not first.exists() and not first.parent.exists() and second.exists()
        worker.run_once(store, now_ns=BASE_NS + 30 * 24 * HOUR_NS + 2 * HOUR_NS)
    finally:
        store.close()
    assert not second.exists()
    assert [e["hour_ns"] for e in ArchiveLayout(archive).manifest()] == [BASE_NS + 7 * HOUR_NS]
    assert list(archive.glob("date=*/hour=*")) == [
        ArchiveLayout(archive).hour_dir(BASE_NS + 7 * HOUR_NS)]


def test_the_size_cap_still_purges_when_the_archive_fails_and_counts_the_calls_lost(
        db_path, tmp_path):
    """The cap protects the disk: an archive that cannot be written does not stop it, but
    every call it deletes unarchived is counted, exactly, in the store's meta."""
    store = SpanStore(db_path)
    try:
        insert_calls(store, [BASE_NS + i for i in range(2000)], args=(("pad", "x" * 400),))
        blocker = tmp_path / "file"
        blocker.write_text("not a directory")
        worker = RetentionWorker(db_path, archive_dir=str(blocker / "a"), max_bytes=200_000)
        with pytest.raises(OSError):
            worker.run_once(store, now_ns=BASE_NS + 8 * HOUR_NS)
        left = scalar(db_path, "SELECT count(*) FROM spans")
        assert 0 < left < 2000 and worker.purged == 2000 - left
        assert worker.archive_lost == 2000 - left and worker.archived == 0
        assert worker.archive_behind
        # a second pass over the cap adds to the same counter
        insert_calls(store, [BASE_NS + 10**6 + i for i in range(500)], args=(("pad", "x" * 400),))
        with pytest.raises(OSError):
            worker.run_once(store, now_ns=BASE_NS + 8 * HOUR_NS + 1)
        lost = 2500 - scalar(db_path, "SELECT count(*) FROM spans")
    finally:
        store.close()
    assert worker.archive_lost == lost
    assert scalar(db_path, "SELECT value FROM meta WHERE key = 'archive_lost_calls'") == str(lost)
    assert scalar(db_path, "SELECT value FROM meta WHERE key = 'archive_lost_last_ns'") == \
        str(BASE_NS + 8 * HOUR_NS + 1)


def _span_ids(store: SpanStore) -> set[str]:
    return {r[0] for r in store.db.execute("SELECT printf('%016x', span_id) FROM spans")}


def test_calls_the_size_cap_deletes_are_archived_first(db_path, tmp_path):
    """Young calls (inside the hot window) over the store's size cap: the cap deletes the
    oldest, and every call it deletes is in the archive, once."""
    archive = tmp_path / "archive"
    store = SpanStore(db_path)
    try:  # 2,000 calls over hours 3-7 of 8: none past the 6 h window
        insert_calls(store, [BASE_NS + 3 * HOUR_NS + i * 7_000_000_000 for i in range(2000)],
                     args=(("pad", "x" * 400),))
        before = _span_ids(store)
        worker = RetentionWorker(db_path, archive_dir=str(archive), max_bytes=200_000)
        worker.run_once(store, now_ns=BASE_NS + 8 * HOUR_NS)
        after = _span_ids(store)
        assert store.used_bytes() <= 200_000
    finally:
        store.close()
    deleted = before - after
    assert deleted and after  # the cap deleted some, not all
    rows = read_calls(archive, BASE_NS, BASE_NS + 9 * HOUR_NS)
    archived = [r["span_id"] for r in rows if r["seq"] == 0]
    assert len(archived) == len(deleted) and set(archived) == deleted
    assert worker.archived == len(deleted) and worker.archive_lost == 0


def test_kill_9_between_archive_and_delete_on_the_size_cap_path(db_path, tmp_path):
    """The size cap's archive batches are crash-safe as the age path's: killed after a
    file verified and before its calls were deleted, the next pass rewrites the same
    file and deletes them; each deleted call is archived once."""
    store = SpanStore(db_path)
    try:
        insert_calls(store, [BASE_NS + 3 * HOUR_NS + i * 10**9 for i in range(2000)],
                     args=(("pad", "x" * 400),))
        before = _span_ids(store)
    finally:
        store.close()
    archive, marker = tmp_path / "archive", tmp_path / "stopped"
    env = dict(os.environ, OTEL_MONITOR_ARCHIVE_FAULT=f"archived:{marker}")
    _kill_at_fault_point(_child(db_path, archive, env, "200000"), marker)
    files_before = sorted(p.relative_to(archive) for p in archive.rglob("*.parquet"))
    assert files_before and scalar(db_path, "SELECT count(*) FROM spans") == 2000

    env.pop("OTEL_MONITOR_ARCHIVE_FAULT")
    assert _child(db_path, archive, env, "200000").wait(timeout=120) == 0
    assert sorted(p.relative_to(archive) for p in archive.rglob("*.parquet"))[:1] == \
        files_before[:1]  # the first batch's file, rewritten under its name
    store = SpanStore(db_path)
    try:
        deleted = before - _span_ids(store)
    finally:
        store.close()
    archived = [r["span_id"] for r in read_calls(archive, BASE_NS, BASE_NS + 9 * HOUR_NS)
                if r["seq"] == 0]
    assert deleted and len(archived) == len(deleted) and set(archived) == deleted


def test_trace_queries_calls_view_answers_an_archived_range(db_path, tmp_path):
    from exporters.queries import RowFilter, TraceQueries
    old, new = _aged_store(db_path)
    archive = tmp_path / "archive"
    _run(db_path, archive)
    queries = TraceQueries(db_path)
    queries.archive_dir = str(archive)
    f = RowFilter(since_ns=BASE_NS, until_ns=BASE_NS + 2 * HOUR_NS)
    page = queries.call_page(f, sort="-timestamp", limit=100)
    assert queries.count_calls(f) == (len(old), True)
    assert len(page.rows) == len(old) and all(r["archived"] for r in page.rows)
    assert [r["inputs"] for r in page.rows] == [f"key={k}, n=1" for k in reversed(old)]
    assert {r["output"] for r in page.rows} == {"None"}
    assert queries.call_page(RowFilter(since_ns=BASE_NS, until_ns=BASE_NS + 2 * HOUR_NS,
                                       errors_only=True)).rows == []
    # the hot range is the store's
    hot = queries.call_page(RowFilter(since_ns=BASE_NS + 7 * HOUR_NS))
    assert len(hot.rows) == len(new) and not any(r.get("archived") for r in hot.rows)


def test_an_archived_range_without_a_start_begins_at_the_archive_s_earliest(db_path, tmp_path):
    from exporters.queries import RowFilter, TraceQueries
    old, _ = _aged_store(db_path)
    _run(db_path, tmp_path / "archive")
    queries = TraceQueries(db_path)
    queries.archive_dir = str(tmp_path / "archive")
    rows = queries.page(RowFilter(until_ns=BASE_NS + 2 * HOUR_NS, data="key"), limit=100).rows
    assert sorted(r["Data Value"] for r in rows) == sorted(old)


# Compaction (issue 17): an hour archived in several batches becomes one file per writer
# once no call of that hour can still be archived (the hour ended before this pass's cut-off).

def _files_of_hour(archive: Path, hour_ns: int) -> list[Path]:
    return sorted(ArchiveLayout(archive).hour_dir(hour_ns).glob("*.parquet"))


def _keys_read(archive: Path, start_ns: int, end_ns: int) -> list[str]:
    return [r["data_value"] for r in read_calls(archive, start_ns, end_ns) if r["data"] == "key"]


def _batched_worker(db_path: str, archive: Path) -> RetentionWorker:
    return RetentionWorker(db_path, archive_dir=str(archive), archive_batch_calls=7)


def test_a_complete_hour_archived_in_batches_is_compacted_to_one_file_per_writer(
        db_path, tmp_path):
    store = SpanStore(db_path)
    try:  # 30 calls in hour 0 (5 batches of 7), 20 in hour 2, one every 3 min
        hour0 = insert_calls(store, [BASE_NS + i * 100 * 10**9 for i in range(30)],
                             args=(("n", "1"),))
        hour2 = insert_calls(store, [BASE_NS + 2 * HOUR_NS + i * 180 * 10**9
                                     for i in range(20)])
    finally:
        store.close()
    archive = tmp_path / "archive"
    # another writer's file in hour 0 (another host, the same directory): never touched
    from exporters.archive.writer import ArchiveWriter
    other_store = SpanStore(str(tmp_path / "other.db"))
    try:
        insert_calls(other_store, [BASE_NS + 5], key_prefix="other")
        other_rows = other_store.archive_rows(BASE_NS + HOUR_NS, 10)
    finally:
        other_store.close()
    other = ArchiveWriter(archive, "otherhost1").write(other_rows)[0]

    worker = _batched_worker(db_path, archive)
    store = SpanStore(db_path)
    try:  # cut-off 2 h 30 min: hour 0 complete, hour 2 archived up to its middle only
        worker.run_once(store, now_ns=BASE_NS + 8 * HOUR_NS + HOUR_NS // 2)
        mine = [p for p in _files_of_hour(archive, BASE_NS)
                if p.name.startswith(worker.writer_id())]
        assert len(mine) == 1
        assert (archive / other["path"]).exists()
        # its first 10 calls, in batches of 7 and 3: not complete, left as they are
        assert len(_files_of_hour(archive, BASE_NS + 2 * HOUR_NS)) == 2
        # the next pass archives the rest of hour 2, which is then complete
        worker.run_once(store, now_ns=BASE_NS + 9 * HOUR_NS)
    finally:
        store.close()
    assert len(_files_of_hour(archive, BASE_NS + 2 * HOUR_NS)) == 1
    assert len(_files_of_hour(archive, BASE_NS)) == 2  # mine and the other writer's
    manifest = ArchiveLayout(archive).manifest()
    assert sorted(e["path"] for e in manifest) == sorted(
        str(p.relative_to(archive)) for p in archive.rglob("*.parquet"))
    for entry in manifest:
        path = archive / entry["path"]
        assert path.stat().st_size == entry["size"] and sha256_of(path) == entry["sha256"]
    merged = [e for e in manifest if e["writer"] == worker.writer_id()]
    assert [(e["calls"], e["rows"]) for e in merged] == [(30, 90), (20, 40)]
    # every call read back exactly once, in time order (the other writer's too)
    other_key = other_rows[0][-1]  # its INPUT key, seq 0
    assert _keys_read(archive, BASE_NS, BASE_NS + 3 * HOUR_NS) == \
        hour0[:1] + [other_key] + hour0[1:] + hour2
    # the merged file is sorted by start time then span id, zstd
    import pyarrow.parquet as pq
    table = pq.read_table(archive / merged[0]["path"])
    starts = table.column("start_ns").to_pylist()
    assert starts == sorted(starts)
    assert pq.ParquetFile(archive / merged[0]["path"]).metadata.row_group(0).column(0) \
        .compression == "ZSTD"


_COMPACT_CHILD = textwrap.dedent("""
    import sys
    from exporters import SpanStore
    from exporters.retention import RetentionWorker
    db, archive, now = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = SpanStore(db)
    RetentionWorker(db, archive_dir=archive, archive_batch_calls=7).run_once(store, now_ns=now)
    store.close()
""")


@pytest.mark.parametrize("step", ["compact_stored", "compacted", "compact_removing"])
def test_kill_9_during_compaction_loses_and_duplicates_nothing(db_path, tmp_path, step):
    """Killed after the merged file is stored but not listed, after it is listed, or
    after the first batch file's removal line but before its unlink: every call is read
    back once meanwhile, and the next pass ends with one listed file for the hour."""
    store = SpanStore(db_path)
    try:
        old = insert_calls(store, [BASE_NS + i * 100 * 10**9 for i in range(30)])
    finally:
        store.close()
    archive, marker = tmp_path / "archive", tmp_path / "stopped"

    def child(env: dict) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", _COMPACT_CHILD, db_path, str(archive),
                                 str(BASE_NS + 8 * HOUR_NS)], env=env)

    env = dict(os.environ, OTEL_MONITOR_ARCHIVE_FAULT=f"{step}:{marker}")
    _kill_at_fault_point(child(env), marker)
    assert scalar(db_path, "SELECT count(*) FROM spans") == 0  # archived, then deleted
    assert len(_files_of_hour(archive, BASE_NS)) >= 5  # the 5 batches (or 4) and the merge
    assert _keys_read(archive, BASE_NS, BASE_NS + HOUR_NS) == old
    assert all((archive / e["path"]).exists() for e in ArchiveLayout(archive).manifest())

    env.pop("OTEL_MONITOR_ARCHIVE_FAULT")
    assert child(env).wait(timeout=120) == 0
    files = _files_of_hour(archive, BASE_NS)
    assert len(files) == 1 and not list(archive.rglob("*.tmp*"))
    [entry] = ArchiveLayout(archive).manifest()
    assert archive / entry["path"] == files[0] and entry["calls"] == 30
    assert files[0].stat().st_size == entry["size"] and sha256_of(files[0]) == entry["sha256"]
    assert _keys_read(archive, BASE_NS, BASE_NS + HOUR_NS) == old


def test_compaction_keeps_one_copy_of_a_call_archived_in_two_files(db_path, tmp_path):
    """A batch re-archived under another name after a crash (more calls were due the
    second time): the merged file holds each call's rows once, from one file."""
    from exporters.archive.compact import compact
    from exporters.archive.writer import ArchiveWriter
    store = SpanStore(db_path)
    try:
        keys = insert_calls(store, [BASE_NS + 1, BASE_NS + 2, BASE_NS + 3])
        rows = store.archive_rows(BASE_NS + HOUR_NS, 10)
    finally:
        store.close()
    writer = ArchiveWriter(tmp_path, "w1")
    writer.write(rows[:4])  # the first two calls
    writer.write(rows)  # all three: another name
    ArchiveWriter(tmp_path, "w2").write(rows[:2])  # another writer's: left alone
    assert compact(tmp_path, "w1", BASE_NS + HOUR_NS - 1) == 0  # the hour not over yet
    assert compact(tmp_path, "w1", BASE_NS + HOUR_NS) == 1
    mine = [e for e in ArchiveLayout(tmp_path).manifest() if e["writer"] == "w1"]
    assert [(e["calls"], e["rows"]) for e in mine] == [(3, 6)]
    import pyarrow.parquet as pq
    table = pq.read_table(tmp_path / mine[0]["path"])
    assert table.column("data_value").to_pylist() == [v for k in keys for v in (k, "None")]
    assert len(_files_of_hour(tmp_path, BASE_NS)) == 2  # w1's merged file, w2's


def test_a_line_appended_after_a_torn_manifest_line_is_kept(tmp_path):
    """A crash mid-append leaves a last line without its newline; the next line (a
    compaction's merged file or removal, a batch's file) must not be glued onto it."""
    layout = ArchiveLayout(tmp_path)
    layout.append_manifest({"path": "a.parquet", "hour_ns": BASE_NS})
    with open(layout.manifest_path, "a", encoding="utf-8") as f:
        f.write('{"path": "b.parq')  # torn
    layout.append_manifest({"path": "c.parquet", "hour_ns": BASE_NS})
    assert [e["path"] for e in layout.manifest()] == ["a.parquet", "c.parquet"]
