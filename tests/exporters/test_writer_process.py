"""The writer in a process of its own (``ProcessRecordWriter`` + ``writer_child``): real
child processes, real SQLite files, real signals.

Rows written through the child are the in-process ``RecordWriter``'s for the same
batch; the processor's guarantees (nothing lost, retries, exact accounts) hold when
the child dies, hangs or meets a store that refuses the batch.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import traceback
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from child_signals import restore_sigint
from exporters import MonitorSpanProcessor, RecordWriter, StoreBusy
from exporters.flatten import SpanFields, span_fields
from exporters.records import CallSite, Outputs
from exporters import writer_process
from exporters.writer_process import ProcessRecordWriter
from exporter_helpers import read, wait_until
from test_store_faults import PAD, fill, small_tmpfs

ROOT = Path(__file__).resolve().parents[2]
NOW = time.time_ns()
SITES = {"shop.pay": CallSite("shop.pay", "shop", "shop.py", 10, feeds=("orders",)),
         "shop.gen": CallSite("shop.gen", "shop", "shop.py", 20)}


def record(sid: int, name: str = "shop.pay", *, inputs=None, output="'ok'", error=None,
           outcome: str = "ok", weight=None, parent=None) -> tuple:
    return (name, 0xABC, sid, parent, NOW + sid, NOW + sid + 1500, outcome, error, inputs,
            output, weight)


def failure(message: str, secrets: list, propagated=None) -> tuple:
    try:
        raise ValueError(message)
    except ValueError as exc:
        snapshot = traceback.TracebackException.from_exception(exc)
    return ("ValueError", snapshot, message, secrets, propagated)


class Kept(SpanExporter):
    def __init__(self) -> None:
        self.spans: list = []

    def export(self, spans):
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def foreign_spans() -> list:
    """ReadableSpans of other instrumentation (and one carrying monitor attributes)."""
    kept = Kept()
    provider = TracerProvider(resource=Resource.create({"service.name": "other"}))
    provider.add_span_processor(SimpleSpanProcessor(kept))
    tracer = provider.get_tracer("tests.foreign")
    with tracer.start_as_current_span("http.get", attributes={"http.url": "/x"}):
        pass
    try:
        with tracer.start_as_current_span("shop.pay", attributes={
                "monitor.input.amount": 12, "monitor.output.yield[0]": "a",
                "monitor.output.yield_count": 1, "monitor.sample.weight": 2.0}):
            raise KeyError("gone")
    except KeyError:
        pass
    provider.shutdown()
    return kept.spans


def every_kind_of_item() -> list:
    scalars = (("text", "n", "x", "flag", "none", "z", "vec", "huge"),
               ("'abc'", 7, 2.5, True, None, 1 + 2j, (1.0, None, True, 3), 2**2000))
    gen = Outputs((("yield[0]", "yield[1]", "yield_count", "return"), (1, "'b'", 2, None)))
    spans = foreign_spans()
    return [
        record(1, inputs=scalars, output=42),
        record(2, "shop.gen", output=gen),
        record(3, inputs=(("token",), ("<masked:1f2e>",)), outcome="error",
               error=failure("bad token hunter22!", [("hunter22", "<masked:1f2e>")])),
        record(4, outcome="error", parent=3,
               error=failure("bad token hunter22!", [("hunter22", "<masked:1f2e>")], 3)),
        record(5, outcome="error", error=failure("cvv 731 refused", [("731", None)]),
               inputs=(("cvv",), ("<masked:99aa>",))),
        record(6, weight=4.0, output=(1.5, 2.5)),
        record(7, "shop.gen", output=Outputs((("yield_count",), (0,))), weight=2.0),
        *spans,
        SpanFields(span_fields(spans[0])[:3] + (0x77,) + span_fields(spans[0])[4:]),
    ]


def dump(db: str) -> dict:
    """Every row the writer wrote but the time it wrote it (``updated_ns``)."""
    tables = {}
    for table in ("spans", "data_values", "processes", "error_groups", "call_rollups"):
        rows = [dict(r) for r in read(db, f"SELECT * FROM {table}")]
        tables[table] = sorted(tuple(v for k, v in r.items() if k != "updated_ns")
                               for r in rows)
    return tables


class Amount(int):
    """An int subclass: marshal refuses it (the application renders the item's values)."""


def long_batch() -> list:
    """Every kind of item across the boundary of two marshal chunks (writer_wire.CHUNK),
    among plain records, one of them holding a value marshal refuses."""
    plain = [record(sid, inputs=(("n",), (sid,)), output=sid * 0.5)
             for sid in range(1000, 3400)]
    plain[1500] = record(2500, inputs=(("n",), (Amount(7),)))
    return plain[:995] + every_kind_of_item() + plain[995:]


@pytest.mark.parametrize("make", [every_kind_of_item, long_batch])
def test_rows_written_by_the_child_are_the_in_process_writers_rows(tmp_path, make):
    here, there = str(tmp_path / "here.db"), str(tmp_path / "there.db")
    batch = make()
    events_here, events_there = [], []
    local = RecordWriter(here, service_name="svc", sites=SITES,
                         on_group_events=events_here.extend)
    remote = ProcessRecordWriter(there, service_name="svc", sites=SITES,
                                 on_group_events=events_there.extend)
    try:
        assert local.export(batch) is SpanExportResult.SUCCESS
        assert remote.export(batch) is SpanExportResult.SUCCESS
        assert not remote.in_process and remote._child.pid != os.getpid()
    finally:
        local.shutdown()
        remote.shutdown()
    assert dump(there) == dump(here)
    pids = {r[0] for r in read(there, "SELECT DISTINCT pid FROM spans")}
    assert pids == {os.getpid()}  # the application's, not the writer process's
    stored = " ".join(str(r[0]) for r in read(there, "SELECT exception FROM process_trace "
                                                      "WHERE exception IS NOT NULL"))
    assert "hunter22" not in stored and "731" not in stored and "<masked:1f2e>" in stored
    assert [e.kind for e in events_there] == [e.kind for e in events_here] != []
    assert events_there == events_here


def test_catalog_and_health_name_the_application(tmp_path):
    db = str(tmp_path / "s.db")
    writer = ProcessRecordWriter(db, service_name="svc", sites=SITES)
    try:
        assert writer.export([record(1)]) is SpanExportResult.SUCCESS
        writer.record_health(queue_depth=0, queue_peak=3, dropped=0, written=1,
                             write_lag_ms=1.0, last_write_ns=NOW, failed_batches=0,
                             recording=True)
    finally:
        writer.shutdown()
    [health] = read(db, "SELECT pid, host, written FROM health")
    assert tuple(health) == (os.getpid(), os.uname().nodename, 1)
    [proc] = read(db, "SELECT file, line, feeds FROM processes WHERE name = 'shop.pay'")
    assert tuple(proc) == ("shop.py", 10, "orders")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def stored_sids(db: str) -> list[int]:
    return sorted(r[0] for r in read(db, "SELECT span_id FROM spans"))


def test_a_child_killed_mid_run_loses_nothing_and_is_replaced(tmp_path):
    db = str(tmp_path / "s.db")
    writer = ProcessRecordWriter(db, service_name="svc", sites=SITES)
    processor = MonitorSpanProcessor(writer, flush_interval_s=0.02)
    processor.start()
    try:
        for sid in range(1, 501):
            processor.submit(record(sid))
        assert processor.force_flush(20_000)
        first = writer._child.pid
        os.kill(first, signal.SIGKILL)
        assert wait_until(lambda: not alive(first))
        for sid in range(501, 1001):
            processor.submit(record(sid))
        assert processor.force_flush(20_000)
        assert writer._child is not None and writer._child.pid != first
        assert stored_sids(db) == list(range(1, 1001))
        assert processor.accounts() == (1000, 0, 0)
    finally:
        processor.shutdown()


def test_a_hung_child_fails_the_batch_which_a_new_child_writes(tmp_path, monkeypatch):
    # The answer timeout's own path: the child stopped, but not seen as stopped (as
    # where /proc does not say), stands for one that hangs while running.
    monkeypatch.setattr(writer_process, "_stopped", lambda child: False)
    db = str(tmp_path / "s.db")
    writer = ProcessRecordWriter(db, service_name="svc", sites=SITES, busy_timeout_s=0.2)
    writer.answer_timeout_s = 1.0  # a child that does not answer within it is hung
    try:
        assert writer.export([record(1)]) is SpanExportResult.SUCCESS
        hung = writer._child.pid
        os.kill(hung, signal.SIGSTOP)
        assert writer.export([record(2)]) is SpanExportResult.FAILURE  # after the timeout
        assert not alive(hung)  # ended, not left stopped
        assert writer.export([record(2)]) is SpanExportResult.SUCCESS
    finally:
        writer.shutdown()
    assert stored_sids(db) == [1, 2]


def test_a_stopped_child_is_replaced_at_once_not_after_the_answer_timeout(tmp_path):
    # SIGSTOP (or a debugger) leaves the child alive but silent: the application used
    # to wait the whole answer timeout (2 x busy timeout + 10 s: 70 s by default) for
    # it, at exit too. Nothing is lost either way.
    db = str(tmp_path / "s.db")
    writer = ProcessRecordWriter(db, service_name="svc", sites=SITES)
    assert writer.answer_timeout_s == 70
    try:
        assert writer.export([record(1)]) is SpanExportResult.SUCCESS
        stopped = writer._child.pid
        os.kill(stopped, signal.SIGSTOP)
        asked = time.monotonic()
        assert writer.export([record(2)]) is SpanExportResult.FAILURE
        assert time.monotonic() - asked < 15  # seen stopped, not waited for 70 s
        assert not alive(stopped)
        assert writer.export([record(2)]) is SpanExportResult.SUCCESS
    finally:
        writer.shutdown()
    assert stored_sids(db) == [1, 2]


def test_a_batch_resent_after_its_answer_was_lost_tells_its_new_group_once(tmp_path,
                                                                           monkeypatch):
    # The window the review found: the child commits, then dies (or its answer is
    # lost) before the application reads the answer. The batch is resent and its calls
    # are already stored, so the writer used to make no event: the group's "New error"
    # never reached the alerts. It is told now, and told once.
    db = str(tmp_path / "s.db")
    told: list = []
    writer = ProcessRecordWriter(db, service_name="svc", sites=SITES)
    writer.on_group_events = lambda events: told.extend((e.kind, e.span_id) for e in events)
    answer = ProcessRecordWriter._answer
    lose = {"next": False}

    def answered_then_lost(self, conn):
        message = answer(self, conn)
        if lose["next"]:
            lose["next"] = False
            raise TimeoutError("the answer is lost")  # committed, never heard of
        return message

    monkeypatch.setattr(ProcessRecordWriter, "_answer", answered_then_lost)
    failed = record(5, outcome="error", error=failure("card declined", []))
    try:
        assert writer.export([record(1)]) is SpanExportResult.SUCCESS
        first_child = writer._child.pid
        lose["next"] = True
        assert writer.export([record(2), failed]) is SpanExportResult.FAILURE
        assert told == []
        assert stored_sids(db) == [1, 2, 5]  # the lost answer's batch was committed
        assert writer.export([record(2), failed]) is SpanExportResult.SUCCESS  # resent
        assert writer._child.pid != first_child
        assert told == [("new", "%016x" % 5)]
        assert writer.export([record(2), failed]) is SpanExportResult.SUCCESS  # again
        assert told == [("new", "%016x" % 5)]  # once
    finally:
        writer.shutdown()
    assert stored_sids(db) == [1, 2, 5]


def test_a_locked_store_keeps_the_batches_until_it_clears(tmp_path):
    """StoreBusy comes back as StoreBusy: the processor keeps the batch whole and
    retries it; force_flush says False while stuck, True once all is written."""
    db = str(tmp_path / "s.db")
    writer = ProcessRecordWriter(db, service_name="svc", sites=SITES, busy_timeout_s=0.1)
    processor = MonitorSpanProcessor(writer, flush_interval_s=0.02)
    processor.start()
    try:
        processor.submit(record(1))
        assert processor.force_flush(20_000)
        lock = sqlite3.connect(db, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        for sid in range(2, 102):
            processor.submit(record(sid))
        assert not processor.force_flush(1_000)
        assert isinstance(writer.last_error, StoreBusy)
        assert processor.pending() == 100 and processor.failing
        lock.execute("ROLLBACK")
        lock.close()
        assert processor.force_flush(20_000)
        assert writer.last_error is None
        assert stored_sids(db) == list(range(1, 102))
        assert processor.accounts() == (101, 0, 0)
    finally:
        processor.shutdown()


def test_a_full_disk_splits_the_batches_and_writing_resumes_once_freed(tmp_path):
    """A real 2 MiB tmpfs filled up under the child: what fits is written, the rest is
    kept (force_flush False), and all of it is written once space is freed."""
    with small_tmpfs(tmp_path / "fs") as fs:
        db = str(fs / "s.db")
        writer = ProcessRecordWriter(db, service_name="svc", sites=SITES, busy_timeout_s=1.0)
        processor = MonitorSpanProcessor(writer, flush_interval_s=0.02)
        processor.start()
        pad = (("pad",), (PAD,))
        try:
            processor.submit(record(1, inputs=pad))
            assert processor.force_flush(20_000)
            fill(fs / "filler", leave_bytes=128 * 1024)
            for sid in range(2, 1002):
                processor.submit(record(sid, inputs=pad))
            assert not processor.force_flush(2_000)
            assert processor.pending() > 0 and processor.failing
            os.remove(fs / "filler")
            assert processor.force_flush(20_000)
            assert stored_sids(db) == list(range(1, 1002))
            assert processor.accounts() == (1001, 0, 0)
        finally:
            processor.shutdown()


def test_a_forked_application_process_writes_its_own_calls_in_itself(tmp_path):
    db = str(tmp_path / "s.db")
    writer = ProcessRecordWriter(db, service_name="svc", sites=SITES)
    processor = MonitorSpanProcessor(writer, flush_interval_s=0.02)
    os.register_at_fork(after_in_child=processor.after_fork_in_child)
    processor.start()
    try:
        processor.submit(record(1))
        assert processor.force_flush(20_000)
        parent_child = writer._child.pid
        pid = os.fork()
        if pid == 0:  # the forked application process
            code = 1
            try:
                processor.start()
                processor.submit(record(2))
                ok = processor.force_flush(20_000)
                code = 0 if ok and writer.in_process and writer._child is None else 3
            finally:
                os._exit(code)
        assert os.waitpid(pid, 0)[1] == 0
        assert alive(parent_child) and writer._child.pid == parent_child
        processor.submit(record(3))
        assert processor.force_flush(20_000)
    finally:
        processor.shutdown()
    assert stored_sids(db) == [1, 2, 3]
    assert {r[0] for r in read(db, "SELECT pid FROM spans WHERE span_id = 2")} == {pid}
    assert not alive(parent_child)


APP = textwrap.dedent("""
    import os, sys, time
    from exporters import MonitorSpanProcessor
    from exporters.records import CallSite
    from exporters.writer_process import ProcessRecordWriter
    import atexit

    writer = ProcessRecordWriter(sys.argv[1], service_name="svc",
                                 sites={"app.f": CallSite("app.f", "app", None, None)})
    processor = MonitorSpanProcessor(writer, flush_interval_s=0.05)
    processor.start()
    atexit.register(processor.shutdown)
    # runs first: the writer process then is the one that ran before the Ctrl-C
    atexit.register(lambda: print(processor.force_flush(20_000) and writer._child.pid,
                                  flush=True))
    now = time.time_ns()
    for sid in range(1, 2001):
        processor.submit(("app.f", 1, sid, None, now, now + 1, "ok", None, None, None, None))
        if sid == 1000:
            processor.force_flush(20_000)
            print(writer._child.pid, flush=True)
    if sys.argv[2] == "sigint":
        os.killpg(0, __import__("signal").SIGINT)  # Ctrl-C: the whole group
        time.sleep(5)
""")


@pytest.mark.parametrize("ending", ["exit", "sigint"])
def test_at_exit_everything_is_written_and_no_writer_process_is_left(tmp_path, ending):
    """At exit (a normal one, or a Ctrl-C to the process group: the writer process
    ignores it) the app's final flush writes every call, then the child exits."""
    db = str(tmp_path / "s.db")
    done = subprocess.run([sys.executable, "-c", APP, db, ending], capture_output=True,
                          text=True, timeout=60, start_new_session=True,
                          preexec_fn=restore_sigint, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == (0 if ending == "exit" else -signal.SIGINT), done.stderr
    if ending == "sigint":
        assert "KeyboardInterrupt" in done.stderr
    child, at_exit = map(int, done.stdout.split())
    assert at_exit == child  # not killed by the Ctrl-C: the same one wrote the rest
    assert not alive(child)
    assert stored_sids(db) == list(range(1, 2001))


def test_a_child_that_cannot_start_means_writing_in_process_with_one_warning(
        tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(sys, "executable", "")
    db = str(tmp_path / "s.db")
    writer = ProcessRecordWriter(db, service_name="svc", sites=SITES)
    try:
        assert writer.export([record(1)]) is SpanExportResult.SUCCESS
        assert writer.export([record(2)]) is SpanExportResult.SUCCESS
        assert writer.in_process and writer._child is None
    finally:
        writer.shutdown()
    assert stored_sids(db) == [1, 2]
    assert len([r for r in caplog.records if "no writer process" in r.message]) == 1


def test_the_wire_rebuilds_spans_and_outputs_and_renders_what_marshal_refuses():
    import marshal

    from exporters.writer_wire import decode_batch, encode_batch

    batch = long_batch()
    _, items = decode_batch(marshal.loads(encode_batch(batch, [], SITES)))
    assert len(items) == len(batch)
    kinds = [(type(a).__name__, type(b).__name__) for a, b in zip(batch, items)]
    assert ("ReadableSpan", "SpanFields") in kinds
    assert kinds.count(("SpanFields", "SpanFields")) == 1
    outputs = [type(b[9] if type(b) is tuple else b[11]) for b in items]
    assert outputs.count(Outputs) == 3  # two records' and the foreign generator span's
    [amount] = [b for b in items if type(b) is tuple and b[2] == 2500]
    assert amount[8] == (("n",), ("7",))  # rendered in the application
    assert all(type(b[8][1][0]) is int for b in items[:995])  # the others left as they are


class FeedMarker(int):
    """Like otel_monitor._feeds.FeedParent: the parent id of a call made directly in a
    feed's tick handler is an int subclass naming the feed (read by an observer in the
    application). marshal refuses it."""


def test_a_parent_id_of_an_int_subclass_crosses_the_wire_as_its_value(tmp_path):
    """Found by running the whole suite with writer_process on: a feed handler's calls
    made every batch that held one unwritable, for ever."""
    batch = [record(1), record(2, parent=FeedMarker(0)), record(3, parent=FeedMarker(1)),
             record(4, outcome="error", parent=FeedMarker(1),
                    error=failure("boom", []))]
    here, there = str(tmp_path / "here.db"), str(tmp_path / "there.db")
    local = RecordWriter(here, service_name="svc", sites=SITES)
    remote = ProcessRecordWriter(there, service_name="svc", sites=SITES)
    try:
        assert local.export(batch) is SpanExportResult.SUCCESS
        assert remote.export(batch) is SpanExportResult.SUCCESS
    finally:
        local.shutdown()
        remote.shutdown()
    assert dump(there) == dump(here)


SIGPIPE_APP = textwrap.dedent("""
    import os, signal, sys, time
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # as CLI tools do, for `| head`
    from exporters import MonitorSpanProcessor
    from exporters.records import CallSite
    from exporters.writer_process import ProcessRecordWriter

    writer = ProcessRecordWriter(sys.argv[1], service_name="svc",
                                 sites={"app.f": CallSite("app.f", "app", None, None)})
    processor = MonitorSpanProcessor(writer, flush_interval_s=0.05)
    processor.start()
    now = time.time_ns()
    processor.submit(("app.f", 1, 1, None, now, now + 1, "ok", None, None, None, None))
    assert processor.force_flush(20_000)
    os.kill(writer._child.pid, signal.SIGKILL)  # the OOM killer, say
    writer._child.wait()
    for sid in range(2, 12):
        processor.submit(("app.f", 1, sid, None, now, now + 1, "ok", None, None, None, None))
    print(processor.force_flush(20_000), flush=True)
    processor.shutdown()
""")


def test_an_application_with_sigpipe_at_its_default_outlives_its_writer_process(tmp_path):
    """Writing to the dead child's socket must be an error the writer handles, not a
    SIGPIPE that kills the application."""
    db = str(tmp_path / "s.db")
    done = subprocess.run([sys.executable, "-c", SIGPIPE_APP, db], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert done.stdout.split() == ["True"]
    assert stored_sids(db) == list(range(1, 12))
