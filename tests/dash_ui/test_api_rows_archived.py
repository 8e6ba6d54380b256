"""/api/rows over real HTTP for a range older than the hot store: answered from the cold
archive (issue 17), same columns, marked ``archived: true``, same filters."""
from __future__ import annotations

import collections
import logging
import time
from datetime import datetime, timezone

import httpx
import pytest

pytest.importorskip("pyarrow")

from api_server import ServedApp
from archived_calls import BASE_NS, HOUR_NS, archive_path, build
from archived_calls import insert as _insert
from exporters import SpanStore
from exporters.retention import RetentionWorker
from recording import settings_env_cleared
from moto_s3 import BUCKET, SECRET, moto  # noqa: F401 (moto: the fixture)


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat()


@pytest.fixture(scope="module")
def archived_store(tmp_path_factory):
    """20 calls archived (two hours, 8 h before the purge's now), then purged; 3 hot calls."""
    return build(str(tmp_path_factory.mktemp("archived") / "store.db"))


@pytest.fixture(scope="module")
def client(archived_store):
    from dash_ui.server import create_server_app

    with settings_env_cleared():
        app = create_server_app(archived_store)
    with ServedApp(app) as served, httpx.Client(base_url=served.url, timeout=10) as c:
        yield c


def _rows(client, **params):
    r = client.get("/api/rows", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_every_archived_call_is_found_again_marked_archived(client):
    page = _rows(client, **{"from": _iso(BASE_NS), "to": _iso(BASE_NS + 2 * HOUR_NS)},
                 limit=1000)
    keys = {r["Data Value"] for r in page["rows"] if r["Data"] == "key"}
    assert keys == {f"k{i}" for i in range(1, 21)}
    assert page["total"] == len(page["rows"]) == 20 + 16  # key each, return for the OK ones
    assert all(r["archived"] is True for r in page["rows"])
    first = page["rows"][0]
    assert {"Process", "Data", "Data Type", "Data Value", "Timestamp", "Status", "Exception",
            "span_id", "trace_id", "start_ns", "duration_ms", "exception_summary"} <= set(first)
    stamps = [r["Timestamp"] for r in page["rows"]]
    assert stamps == sorted(stamps, reverse=True)  # newest first, as the hot table
    assert first["Timestamp"].endswith("Z") and len(first["span_id"]) == 16


def test_archived_rows_take_the_same_filters_and_paging(client):
    rng = {"from": _iso(BASE_NS), "to": _iso(BASE_NS + 2 * HOUR_NS)}
    errs = _rows(client, **rng, errors_only=True, limit=1000)["rows"]
    assert errs and {r["Status"] for r in errs} == {"ERR"}
    assert {r["exception_summary"] for r in errs} == {"ValueError: bad"}
    fee = _rows(client, **rng, process="app.fee", limit=1000)["rows"]
    assert fee and {r["Process"] for r in fee} == {"app.fee"}
    one_hour = _rows(client, **{"from": _iso(BASE_NS), "to": _iso(BASE_NS + HOUR_NS)},
                     data="key", limit=1000)["rows"]
    assert len(one_hour) == 10
    p1 = _rows(client, **rng, limit=5, sort="timestamp")["rows"]
    p2 = _rows(client, **rng, limit=5, offset=5, sort="timestamp")["rows"]
    assert [r["start_ns"] for r in p1 + p2] == sorted(r["start_ns"] for r in p1 + p2)


def test_the_hot_range_is_still_the_store(client):
    page = _rows(client, **{"from": _iso(BASE_NS + 7 * HOUR_NS)}, limit=1000)
    assert page["total"] == 6 and not any(r.get("archived") for r in page["rows"])


def test_drill_down_and_reproduce_of_an_archived_call(client):
    r = client.get("/api/calls/0000000000000002")
    assert r.status_code == 200, r.text
    call = r.json()
    assert call["archived"] is True and call["process"] == "app.fee"
    assert call["status"] == "OK" and call["start_ns"] == BASE_NS + 6 * 60 * 10**9
    assert [(v["data"], v["data_value"]) for v in call["values"]] == [("key", "k2"),
                                                                     ("return", "None")]
    rep = client.get("/api/calls/0000000000000002/reproduce")
    assert rep.status_code == 200, rep.text
    assert "k2" in rep.text
    assert client.get("/api/calls/00000000000000ff").status_code == 404


def test_a_range_partly_archived_and_partly_hot_gets_both(client):
    """From the archived hours to after the hot calls: the archive for the part older than
    the hot store's oldest call, the store for the rest; one sort, one count, one paging."""
    rng = {"from": _iso(BASE_NS), "to": _iso(BASE_NS + 8 * HOUR_NS)}
    page = _rows(client, **rng, limit=1000)
    rows = page["rows"]
    assert page["total"] == len(rows) == 36 + 6  # 20 archived calls, 3 hot ones
    hot = [r for r in rows if not r.get("archived")]
    assert len(hot) == 6 and {r["Data Value"] for r in hot if r["Data"] == "key"} == {
        "k100", "k101", "k102"}
    assert sum(1 for r in rows if r.get("archived") is True) == 36
    assert rows[:6] == hot  # newest first: the hot calls, then the archive
    stamps = [r["start_ns"] for r in rows]
    assert stamps == sorted(stamps, reverse=True)
    assert len({(r["span_id"], r["Data"]) for r in rows}) == len(rows)
    # paging across the boundary: the same rows, in the same order
    pages = [_rows(client, **rng, limit=4, offset=o)["rows"] for o in range(0, 44, 4)]
    assert [r["span_id"] for p in pages for r in p] == [r["span_id"] for r in rows]
    oldest_first = _rows(client, **rng, limit=1000, sort="timestamp")["rows"]
    assert [r["start_ns"] for r in oldest_first] == sorted(stamps)
    assert not oldest_first[-1].get("archived") and oldest_first[0]["archived"] is True
    # the filters hold on both sides
    errs = _rows(client, **rng, errors_only=True, limit=1000)
    assert errs["total"] == len(errs["rows"]) == 4  # the hot calls are all OK
    assert {r["Status"] for r in errs["rows"]} == {"ERR"}
    fee = _rows(client, **rng, process="app.fee", limit=1000)["rows"]
    assert {r["Process"] for r in fee} == {"app.fee"}
    assert {r["Data Value"] for r in fee if not r.get("archived") and r["Data"] == "key"} == {
        "k101"}
    by_duration = _rows(client, **rng, limit=1000, sort="-duration_ms")["rows"]
    durations = [r["duration_ms"] for r in by_duration]
    assert durations == sorted(durations, reverse=True) and len(by_duration) == 42


def test_the_calls_view_over_a_range_partly_archived_gets_both(archived_store):
    """The calls view (one row per call) merges the archive and the store like the table:
    the same calls, one sort, one count, paging across the boundary."""
    from exporters.queries import RowFilter, TraceQueries

    q = TraceQueries(archived_store)
    q.archive_dir = archive_path(archived_store)
    f = RowFilter(since_ns=BASE_NS, until_ns=BASE_NS + 8 * HOUR_NS)
    calls = q.call_page(f, limit=1000).rows
    assert q.count_calls(f) == (23, True) and len(calls) == 23
    assert [c["span_id"] for c in calls[:3]] == ["%016x" % i for i in (102, 101, 100)]
    assert not any(c.get("archived") for c in calls[:3])
    assert all(c["archived"] is True for c in calls[3:])
    stamps = [c["start_ns"] for c in calls]
    assert stamps == sorted(stamps, reverse=True)
    paged = [c for o in range(0, 24, 5) for c in q.call_page(f, offset=o, limit=5).rows]
    assert [c["span_id"] for c in paged] == [c["span_id"] for c in calls]
    oldest_first = q.call_page(f, sort="timestamp", limit=1000).rows
    assert [c["start_ns"] for c in oldest_first] == sorted(stamps)
    by_duration = q.call_page(f, sort="-duration_ms", limit=1000).rows
    assert [c["duration_ms"] for c in by_duration] == sorted(
        (c["duration_ms"] for c in calls), reverse=True)
    errs = RowFilter(since_ns=BASE_NS, until_ns=BASE_NS + 8 * HOUR_NS, errors_only=True)
    assert {c["status"] for c in q.call_page(errs, limit=1000).rows} == {"ERR"}
    assert q.count_calls(errs) == (4, True)


OUTAGE_S = 30.0  # the "a bucket that goes down (server stopped) for 30 s"


def _wait_until(condition, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s:g} s: {what}"
        time.sleep(0.05)


def _bucket_keys(moto) -> collections.Counter:
    """Each call's key, counted over every object in the bucket (no dedupe: a call in
    two objects counts twice)."""
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    fs = moto.filesystem()
    objects = [i.path for i in fs.get_file_info(pafs.FileSelector(BUCKET, recursive=True))
               if i.path.endswith(".parquet")]
    table = ds.dataset(objects, format="parquet", filesystem=fs).to_table(
        columns=["data", "data_value"])
    return collections.Counter(v for d, v in zip(table.column("data").to_pylist(),
                                                 table.column("data_value").to_pylist())
                               if d == "key")


def test_a_bucket_down_for_30_s_loses_and_duplicates_nothing(tmp_path, moto, caplog):
    """A running retention (every 0.5 s) archives to moto; its server is killed for 30 s
    while calls keep arriving already past the hot window, are archived to the local
    spool and purged; then it starts again on the same port. Every call is in the bucket
    exactly once, and /api/rows over real HTTP answers every one, once, archived."""
    from dash_ui.server import create_server_app
    from exporters.archive.reader import read_calls
    from exporters.archive.remote import S3Target, spool_bytes

    db, spool = str(tmp_path / "store.db"), tmp_path / "spool"
    url = f"s3://{BUCKET}/otel/archive"
    target = S3Target.from_url(url, endpoint=moto.endpoint, timeout_s=1.0)
    worker = RetentionWorker(db, interval_s=0.5, archive_dir=str(spool), archive_target=target)
    store = SpanStore(db)
    sent: list[int] = []  # span ids; each call's key is f"k{id}"

    def aged_calls(n: int = 10) -> None:
        """n calls 7 h old by the clock: past the 6 h window as they land."""
        now = time.time_ns()
        _insert(store, [now - 7 * HOUR_NS + i for i in range(n)], len(sent) + 1)
        sent.extend(range(len(sent) + 1, len(sent) + 1 + n))

    def hot_calls() -> int:
        return store.query("SELECT count(*) FROM spans")[0][0]

    worker.start()
    try:
        with caplog.at_level(logging.WARNING, logger="otel_monitor"):
            aged_calls()
            _wait_until(lambda: hot_calls() == 0 and spool_bytes(spool) == 0,
                        "the first calls uploaded")
            moto.stop(keep_objects=True)
            down_at, batches = time.monotonic(), 0
            while time.monotonic() - down_at < OUTAGE_S:
                aged_calls()
                _wait_until(lambda: hot_calls() == 0, "calls archived to the spool, purged")
                batches += 1
            assert worker.archive_behind and spool_bytes(spool) > 0
            # meanwhile the spooled calls are readable from the spool alone
            now = time.time_ns()
            spooled = {r["data_value"] for r in read_calls(spool, now - 8 * HOUR_NS,
                                                           now - 6 * HOUR_NS)
                       if r["data"] == "key"}
            assert spooled == {f"k{i}" for i in sent[10:]}  # all but the first, uploaded
            moto.start()  # the same port
            _wait_until(lambda: spool_bytes(spool) == 0 and not worker.archive_behind,
                        "the spool uploaded")
    finally:
        worker.stop()
        store.close()
    assert batches >= 10  # purges kept running through the outage
    assert "archive upload failed" in caplog.text and SECRET not in caplog.text

    keys = [f"k{i}" for i in sent]
    in_bucket = _bucket_keys(moto)
    assert sorted(in_bucket) == sorted(keys) and set(in_bucket.values()) == {1}

    with settings_env_cleared(), pytest.MonkeyPatch.context() as mp:
        # the server finds the archive, as `otel-monitor serve` would, in its settings
        mp.setenv("OTEL_MONITOR_ARCHIVE_DIR", str(spool))
        mp.setenv("OTEL_MONITOR_ARCHIVE_URL", url)
        mp.setenv("OTEL_MONITOR_ARCHIVE_S3_ENDPOINT", moto.endpoint)
        app = create_server_app(db)
    now = time.time_ns()
    rng = {"from": _iso(now - 8 * HOUR_NS), "to": _iso(now - 6 * HOUR_NS)}
    with ServedApp(app) as served, httpx.Client(base_url=served.url, timeout=30) as c:
        rows: list[dict] = []
        while True:
            page = _rows(c, **rng, data="key", limit=500, offset=len(rows))["rows"]
            rows += page
            if len(page) < 500:
                break
    assert sorted(r["Data Value"] for r in rows) == sorted(keys)  # each once
    assert all(r["archived"] is True for r in rows)
