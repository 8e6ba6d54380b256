"""The archive's S3-compatible destination (issue 17) against a real S3 API: moto's
standalone server, started by the fixture as a separate process on 127.0.0.1. Calls aged
past the window are archived, uploaded (verified) and purged, and found again; a bucket
that is down loses nothing (files wait in the bounded spool, the purge waits when it is
full; the 30 s outage: tests/dash_ui/test_api_rows_archived.py); objects past the archive
retention are deleted; credentials are never logged or stored."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("moto")

from exporters import SpanStore
from exporters.archive.reader import read_calls
from exporters.archive.remote import S3Target, spool_bytes
from exporters.retention import RetentionWorker
from exporter_helpers import insert_calls, scalar
from moto_s3 import SECRET, moto  # noqa: F401 (moto: the fixture)

HOUR_NS = 3600 * 10**9
BASE_NS = 1_700_000_000 * 10**9 - (1_700_000_000 * 10**9) % HOUR_NS




def _worker(db_path, spool, target, **kw) -> RetentionWorker:
    return RetentionWorker(db_path, archive_dir=str(spool), archive_target=target, **kw)


def _purge(worker: RetentionWorker, db_path: str, now_ns: int) -> int:
    store = SpanStore(db_path)
    try:
        return worker.run_once(store, now_ns=now_ns)
    finally:
        store.close()


def _insert(db_path: str, starts: list[int]) -> list[str]:
    store = SpanStore(db_path)
    try:
        return insert_calls(store, starts)
    finally:
        store.close()


def _keys(spool, target, start, end) -> list[str]:
    return [r["data_value"] for r in read_calls(spool, start, end, remote=target)
            if r["data"] == "key"]


def test_calls_are_uploaded_verified_purged_and_found_again(db_path, tmp_path, moto, caplog):
    old = _insert(db_path, [BASE_NS + i * 60 * 10**9 for i in range(90)])  # 1.5 hours
    target = moto.archive_target()
    worker = _worker(db_path, tmp_path / "spool", target)
    with caplog.at_level(logging.DEBUG):
        assert _purge(worker, db_path, BASE_NS + 8 * HOUR_NS) == len(old)
    assert scalar(db_path, "SELECT count(*) FROM spans") == 0
    assert spool_bytes(tmp_path / "spool") == 0 and not worker.archive_behind
    objects = target.filesystem().get_file_info(
        __import__("pyarrow.fs").fs.FileSelector("cold/otel/archive", recursive=True))
    assert sum(o.path.endswith(".parquet") for o in objects) == 2  # two hours
    assert _keys(tmp_path / "spool", target, BASE_NS, BASE_NS + 2 * HOUR_NS) == old
    # credentials never in the logs nor in the store
    assert SECRET not in caplog.text
    assert SECRET.encode() not in Path(db_path).read_bytes()
    for p in (tmp_path / "spool").rglob("*"):
        if p.is_file():
            assert SECRET.encode() not in p.read_bytes()


def test_a_full_spool_makes_the_purge_wait(db_path, tmp_path, moto):
    first = _insert(db_path, [BASE_NS + i for i in range(20)])
    target = moto.archive_target()
    spool = tmp_path / "spool"
    worker = _worker(db_path, spool, target, archive_spool_max_bytes=1)
    moto.stop()
    assert _purge(worker, db_path, BASE_NS + 8 * HOUR_NS) == len(first)  # spool was empty
    second = _insert(db_path, [BASE_NS + 100 + i for i in range(20)])
    assert _purge(worker, db_path, BASE_NS + 8 * HOUR_NS) == 0  # full: nothing deleted
    assert worker.archive_behind
    assert scalar(db_path, "SELECT count(*) FROM spans") == len(second)
    moto.start()
    assert _purge(worker, db_path, BASE_NS + 8 * HOUR_NS) == len(second)
    assert _keys(spool, target, BASE_NS, BASE_NS + HOUR_NS) == first + second


def test_objects_past_the_archive_retention_are_deleted(db_path, tmp_path, moto):
    old = _insert(db_path, [BASE_NS + i for i in range(5)])
    newer = _insert(db_path, [BASE_NS + 3 * HOUR_NS + i for i in range(5)])
    target = moto.archive_target()
    worker = _worker(db_path, tmp_path / "spool", target, archive_retention_days=1)
    _purge(worker, db_path, BASE_NS + 12 * HOUR_NS)
    assert _keys(tmp_path / "spool", target, BASE_NS, BASE_NS + 4 * HOUR_NS) == old + newer
    _purge(worker, db_path, BASE_NS + 26 * HOUR_NS)  # the first hour is past 1 day
    assert _keys(tmp_path / "spool", target, BASE_NS, BASE_NS + 4 * HOUR_NS) == newer


def _objects(target: S3Target) -> list[str]:
    import pyarrow.fs as pafs
    return sorted(i.path for i in target.filesystem().get_file_info(
        pafs.FileSelector(target.base, recursive=True, allow_not_found=True))
        if i.type == pafs.FileType.File)


def test_objects_are_kept_30_days_by_default_then_deleted(db_path, tmp_path, moto):
    """The default archive retention, 30 days from the end of each object's hour, judged
    on the bucket's own listing."""
    _insert(db_path, [BASE_NS + i for i in range(5)])
    _insert(db_path, [BASE_NS + 3 * HOUR_NS + i for i in range(5)])
    target = moto.archive_target()
    worker = _worker(db_path, tmp_path / "spool", target)  # the default: 30 days
    _purge(worker, db_path, BASE_NS + 10 * HOUR_NS)
    uploaded = _objects(target)
    assert len(uploaded) == 2 and spool_bytes(tmp_path / "spool") == 0
    _purge(worker, db_path, BASE_NS + 30 * 24 * HOUR_NS)  # the first hour ended 30 d - 1 h ago
    assert _objects(target) == uploaded
    _purge(worker, db_path, BASE_NS + 30 * 24 * HOUR_NS + HOUR_NS)  # now exactly 30 days
    assert _objects(target) == uploaded[1:]
    _purge(worker, db_path, BASE_NS + 30 * 24 * HOUR_NS + 4 * HOUR_NS)
    assert _objects(target) == []


def test_trace_queries_read_the_bucket(db_path, tmp_path, moto):
    from exporters.queries import RowFilter, TraceQueries
    old = _insert(db_path, [BASE_NS + i * 10**9 for i in range(30)])
    hot = _insert(db_path, [BASE_NS + 7 * HOUR_NS])
    target = moto.archive_target()
    _purge(_worker(db_path, tmp_path / "spool", target), db_path, BASE_NS + 8 * HOUR_NS)
    assert spool_bytes(tmp_path / "spool") == 0  # all in the bucket
    queries = TraceQueries(db_path)
    queries.archive_dir, queries.archive_target = str(tmp_path / "spool"), target
    f = RowFilter(since_ns=BASE_NS, until_ns=BASE_NS + HOUR_NS, data="key")
    rows = queries.page(f, sort="timestamp", limit=100).rows
    assert [r["Data Value"] for r in rows] == old and all(r["archived"] for r in rows)
    assert queries.count_rows(f) == (len(old), True)
    call = queries.call(rows[3]["span_id"])
    assert call["archived"] and call["values"][0]["data_value"] == old[3]
    assert len(hot) == 1


def test_the_store_s_health_figures_say_the_archive_is_behind(db_path, tmp_path, moto):
    from exporters.database import Database
    from exporters.self_health import store_figures
    _insert(db_path, [BASE_NS + i for i in range(10)])
    worker = _worker(db_path, tmp_path / "spool", moto.archive_target())
    moto.stop()
    _purge(worker, db_path, BASE_NS + 8 * HOUR_NS)
    db = Database(db_path, readonly=True)
    try:
        figures = store_figures(db, BASE_NS + 8 * HOUR_NS + 60 * 10**9)
        assert figures["archive_behind_s"] == 60.0 and figures["archive_spool_bytes"] > 0
        moto.start()
        _purge(worker, db_path, BASE_NS + 9 * HOUR_NS)
        figures = store_figures(db, BASE_NS + 9 * HOUR_NS)
        assert figures["archive_behind_s"] is None and figures["archive_spool_bytes"] == 0
    finally:
        db.close()


def _padded(db_path: str, starts: list[int]) -> set[str]:
    """Calls of ~0.5 KiB each (to push a store over a small size cap); their span ids."""
    store = SpanStore(db_path)
    try:
        insert_calls(store, starts, args=(("pad", "x" * 400),))
        return _span_ids(store)
    finally:
        store.close()


def _span_ids(store: SpanStore) -> set[str]:
    return {r[0] for r in store.db.execute("SELECT printf('%016x', span_id) FROM spans")}


def test_size_cap_deletions_wait_in_the_spool_or_are_counted_lost(db_path, tmp_path, moto):
    """Over the size cap with the bucket down, the oldest calls go to the spool before
    they are deleted, and reach the bucket once it is back; with the spool at its bound,
    the cap deletes anyway and counts every call it could not archive."""
    young = BASE_NS + 5 * HOUR_NS  # inside the 6 h window at BASE_NS + 8 h
    before = _padded(db_path, [young + i * 10**9 for i in range(2000)])
    target, spool = moto.archive_target(), tmp_path / "spool"
    worker = _worker(db_path, spool, target, max_bytes=200_000)
    moto.stop()
    _purge(worker, db_path, BASE_NS + 8 * HOUR_NS)
    store = SpanStore(db_path)
    try:
        first = before - _span_ids(store)
    finally:
        store.close()
    assert first and worker.archive_lost == 0 and worker.archive_behind
    assert spool_bytes(spool) > 0  # the spool was empty: the batch waits there

    # the spool at its bound: the next pass over the cap deletes unarchived
    worker.archive_spool_max_bytes = spool_bytes(spool)
    more = _padded(db_path, [young + 3000 * 10**9 + i * 10**6 for i in range(1000)])
    now = BASE_NS + 8 * HOUR_NS + 60 * 10**9
    _purge(worker, db_path, now)
    store = SpanStore(db_path)
    try:
        lost = more - _span_ids(store)
    finally:
        store.close()
    assert lost and worker.archive_lost == len(lost)
    assert scalar(db_path, "SELECT value FROM meta WHERE key = 'archive_lost_calls'") == \
        str(len(lost))

    moto.start()
    _purge(worker, db_path, now)
    assert spool_bytes(spool) == 0 and not worker.archive_behind
    archived = [r["span_id"] for r in read_calls(spool, young, young + 2 * HOUR_NS,
                                                  remote=target) if r["seq"] == 0]
    assert len(archived) == len(first) and set(archived) == first


def test_the_readme_s_bucket_lifecycle_rule_is_valid_and_covers_the_archive(db_path, tmp_path,
                                                                            moto):
    """README's lifecycle rule, as `aws s3api put-bucket-lifecycle-configuration` would send
    it: accepted by the S3 API, expiring after the default archive retention, and its
    prefix covering every object otel-monitor writes (with PREFIX the URL's prefix)."""
    import json
    import re

    import boto3

    from otel_monitor.settings import load_settings
    from recording import settings_env_cleared
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## The cold archive"):]
    section = section[:section.index("\n## ", 1)]
    assert "put-bucket-lifecycle-configuration" in section
    config = json.loads(re.search(r"```json\n(.*?)```", section, re.S)[1]
                        .replace("PREFIX", "otel/archive"))
    s3 = boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1")
    s3.put_bucket_lifecycle_configuration(Bucket="cold", LifecycleConfiguration=config)
    [rule] = s3.get_bucket_lifecycle_configuration(Bucket="cold")["Rules"]
    assert rule["Status"] == "Enabled"
    with settings_env_cleared():
        assert rule["Expiration"]["Days"] == load_settings({}).archive_retention_days == 30

    _insert(db_path, [BASE_NS + i * 10**9 for i in range(10)])
    target = moto.archive_target()
    _purge(_worker(db_path, tmp_path / "spool", target), db_path, BASE_NS + 8 * HOUR_NS)
    keys = [path.split("/", 1)[1] for path in _objects(target)]  # without the bucket
    assert keys and all(k.startswith(rule["Filter"]["Prefix"]) for k in keys)


def test_with_a_bucket_a_complete_hour_s_batches_become_one_object(db_path, tmp_path, moto):
    """Each batch is uploaded and leaves the spool at once; the same pass then compacts
    the complete hour in the bucket (exporters.archive.compact.compact_remote; its steps
    and faults: test_archive_compact_s3.py). Every call is read back once."""
    old = _insert(db_path, [BASE_NS + i * 100 * 10**9 for i in range(20)])
    target = moto.archive_target()
    worker = _worker(db_path, tmp_path / "spool", target, archive_batch_calls=7)
    assert _purge(worker, db_path, BASE_NS + 8 * HOUR_NS) == len(old)  # 3 batches
    assert len(_objects(target)) == 1 and spool_bytes(tmp_path / "spool") == 0
    assert _keys(tmp_path / "spool", target, BASE_NS, BASE_NS + HOUR_NS) == old


def test_a_batch_file_marked_removed_is_never_uploaded(db_path, tmp_path, moto):
    """Compaction stopped (a crash) after a batch file's removal line, before its unlink,
    in a directory that becomes a spool (archive_url set later): the upload reads the
    manifest's removal lines and sends the merged file only."""
    from exporters.archive.compact import compact
    from exporters.archive.layout import ArchiveLayout
    from exporters.archive.remote import upload_pending
    from exporters.archive.writer import ArchiveWriter
    old = _insert(db_path, [BASE_NS + i * 100 * 10**9 for i in range(20)])
    store = SpanStore(db_path)
    try:
        rows = store.archive_rows(BASE_NS + HOUR_NS, 100)
    finally:
        store.close()
    spool = tmp_path / "spool"
    for offset in range(0, len(rows), 14):  # 7 calls (2 rows each) a batch
        ArchiveWriter(spool, "w1").write(rows[offset:offset + 14])

    class Crash(Exception):
        pass

    def crash_at(step: str) -> None:
        if step == "compact_removing":
            raise Crash(step)

    with pytest.raises(Crash):
        compact(spool, "w1", BASE_NS + HOUR_NS, fault=crash_at)
    assert len(list(spool.rglob("*.parquet"))) == 4  # 3 batches (one marked removed), merged
    assert len(ArchiveLayout(spool).manifest()) == 3
    target = moto.archive_target()
    assert upload_pending(spool, target) == 3  # not the removed one
    assert len(_objects(target)) == 3
    assert _keys(spool, target, BASE_NS, BASE_NS + HOUR_NS) == old
