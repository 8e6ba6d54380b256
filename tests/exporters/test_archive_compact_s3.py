"""Compaction with an S3 destination (issue 17) against moto's standalone server: once an
hour is complete, a writer's objects of that hour are read back from the bucket, merged
into one, stored in the spool, uploaded and verified, and only then are the merged-away
objects deleted. A crash or the bucket going down at any step loses no call and shows
none twice; the next pass finishes."""
from __future__ import annotations

import logging

import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("moto")

from exporters import SpanStore
from exporters.archive.compact import compact_remote
from exporters.archive.layout import ArchiveLayout
from exporters.archive.reader import read_calls
from exporters.archive.remote import S3Target, spool_bytes, upload_pending
from exporters.archive.writer import ArchiveWriter
from exporters.retention import RetentionWorker
from exporter_helpers import insert_calls
from moto_s3 import moto  # noqa: F401 (moto: the fixture)

HOUR_NS = 3600 * 10**9
BASE_NS = 1_700_000_000 * 10**9 - (1_700_000_000 * 10**9) % HOUR_NS




def _objects(target: S3Target, hour_ns: int, writer: str | None = None) -> list[str]:
    import pyarrow.fs as pafs
    folder = ArchiveLayout("/x").hour_dir(hour_ns).relative_to("/x")
    return sorted(i.path for i in target.filesystem().get_file_info(
        pafs.FileSelector(f"{target.base}/{folder}", allow_not_found=True))
        if i.path.endswith(".parquet")
        and (writer is None or i.path.rsplit("/", 1)[1].startswith(f"{writer}-")))


def _span_ids(spool, target, start_ns: int, end_ns: int) -> list[str]:
    """Each call's span id once per time it is read back (its seq-0 row)."""
    return [r["span_id"] for r in read_calls(spool, start_ns, end_ns, remote=target)
            if r["seq"] == 0]


class Crash(Exception):
    pass


def _crash_at(step: str):
    def fault(at: str) -> None:
        if at == step:
            raise Crash(at)
    return fault


@pytest.fixture
def batched(db_path, tmp_path, moto):
    """30 calls of the complete hour 0 uploaded in 5 batches of 7 by the worker's writer,
    10 calls of hour 2 (incomplete at the cut-off) in 2 batches, and another writer's
    object in hour 0. Returns (worker, spool, target, hour-0 span ids, hour-2 objects,
    the other writer's object)."""
    store = SpanStore(db_path)
    try:
        insert_calls(store, [BASE_NS + i * 100 * 10**9 for i in range(30)])
        insert_calls(store, [BASE_NS + 2 * HOUR_NS + i * 60 * 10**9 for i in range(10)])
        rows = store.archive_rows(BASE_NS + 3 * HOUR_NS, 100)
        store.delete_calls(sorted({r[0] for r in rows}))  # archived: the pass has none left
    finally:
        store.close()
    spool, target = tmp_path / "spool", moto.archive_target()
    worker = RetentionWorker(db_path, archive_dir=str(spool), archive_target=target,
                             archive_batch_calls=7)
    me = worker.writer_id()
    writer = ArchiveWriter(spool, me)
    hour0 = [r for r in rows if r[4] < BASE_NS + HOUR_NS]
    hour2 = [r for r in rows if r[4] >= BASE_NS + HOUR_NS]
    for batch in (hour0, hour2):
        for offset in range(0, len(batch), 14):  # 7 calls (2 rows each) a batch
            writer.write(batch[offset:offset + 14])
    other_spool = tmp_path / "other"
    ArchiveWriter(other_spool, "otherhost1").write(hour0[:2])  # the same call: deduped
    assert upload_pending(spool, target) == 7 and upload_pending(other_spool, target) == 1
    assert len(_objects(target, BASE_NS, me)) == 5
    ids = sorted({r[1] for r in hour0})
    return (worker, spool, target, ids, _objects(target, BASE_NS + 2 * HOUR_NS),
            _objects(target, BASE_NS, "otherhost1"))


CUT_OFF = BASE_NS + 2 * HOUR_NS + HOUR_NS // 2  # hour 0 complete, hour 2 not


def _check_compacted(worker, spool, target, ids, hour2, other) -> None:
    me = worker.writer_id()
    [merged] = _objects(target, BASE_NS, me)
    assert merged.endswith(f"{me}-{1:012d}-{30:012d}.parquet")
    assert _objects(target, BASE_NS + 2 * HOUR_NS) == hour2  # incomplete: untouched
    assert _objects(target, BASE_NS, "otherhost1") == other  # never another writer's
    assert sorted(_span_ids(spool, target, BASE_NS, BASE_NS + HOUR_NS)) == ids
    assert spool_bytes(spool) == 0  # the merged file left the spool once uploaded
    # the manifest lists the merged file and the incomplete hour's batches only
    listed = sorted(e["path"] for e in ArchiveLayout(spool).manifest())
    assert listed == sorted(o.split("/", 3)[3] for o in [merged] + hour2)
    entry = [e for e in ArchiveLayout(spool).manifest() if e["hour_ns"] == BASE_NS][0]
    assert entry["calls"] == 30 and entry["rows"] == 60


def test_a_complete_hour_s_objects_become_one_per_writer(batched):
    worker, spool, target, ids, hour2, other = batched
    assert sorted(_span_ids(spool, target, BASE_NS, BASE_NS + HOUR_NS)) == ids
    assert compact_remote(spool, target, worker.writer_id(), CUT_OFF) == 5
    _check_compacted(*batched)
    import pyarrow.parquet as pq
    table = pq.read_table(_objects(target, BASE_NS, worker.writer_id())[0],
                          filesystem=target.filesystem())
    starts = table.column("start_ns").to_pylist()
    assert starts == sorted(starts) and table.num_rows == 60
    assert compact_remote(spool, target, worker.writer_id(), CUT_OFF) == 0  # done



def _retention_pass(worker: RetentionWorker, db_path: str) -> None:
    """One pass of ``worker`` after the cut-off: every batch's hour but the last complete."""
    store = SpanStore(db_path)
    try:
        worker.run_once(store, now_ns=CUT_OFF + worker.retention_ns)
    finally:
        store.close()

def test_the_retention_pass_compacts_the_bucket(batched, db_path):
    worker, spool, target, ids, hour2, other = batched
    _retention_pass(worker, db_path)
    _check_compacted(*batched)


@pytest.mark.parametrize("step", ["compact_stored", "compacted", "compact_uploaded",
                                  "compact_removing"])
def test_a_crash_at_each_step_loses_and_duplicates_nothing(batched, step):
    """Stopped after the merged file is stored in the spool but not listed, after it is
    listed, after it is uploaded and verified, or after the first removal line before its
    object is deleted: every call is read back once meanwhile; the next pass (upload of
    the spool, then compaction) ends with one object for the hour."""
    worker, spool, target, ids, hour2, other = batched
    with pytest.raises(Crash):
        compact_remote(spool, target, worker.writer_id(), CUT_OFF, fault=_crash_at(step))
    assert len(_objects(target, BASE_NS, worker.writer_id())) >= 4
    assert sorted(set(_span_ids(spool, target, BASE_NS, BASE_NS + HOUR_NS))) == ids
    assert len(_span_ids(spool, target, BASE_NS, BASE_NS + HOUR_NS)) == 30

    upload_pending(spool, target)
    compact_remote(spool, target, worker.writer_id(), CUT_OFF)
    _check_compacted(*batched)


@pytest.mark.parametrize("step", ["compacted", "compact_uploaded"])
def test_the_bucket_down_during_compaction_loses_nothing(batched, moto, db_path, caplog,
                                                        step):
    """The bucket stops before the merged file's upload, or before the merged-away objects
    are deleted: the retention pass logs it and goes on; once the bucket is back the next
    pass finishes the compaction."""
    worker, spool, target, ids, hour2, other = batched

    def stop_bucket(at: str) -> None:
        if at == step:
            moto.stop(keep_objects=True)

    with pytest.raises(OSError):
        compact_remote(spool, target, worker.writer_id(), CUT_OFF, fault=stop_bucket)
    # the pass with the bucket down: compaction skipped, logged, never raised
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        _retention_pass(worker, db_path)
    assert "archive compaction skipped" in caplog.text
    moto.start()
    assert sorted(set(_span_ids(spool, target, BASE_NS, BASE_NS + HOUR_NS))) == ids
    _retention_pass(worker, db_path)
    _check_compacted(*batched)
