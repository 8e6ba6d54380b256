"""``writer_process``: the pipeline's writer in a process of its own, end to end through
``@monitor`` and ``configure`` (the writer's own guarantees: tests/exporters/
test_writer_process.py)."""
from __future__ import annotations

import enum
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import otel_monitor
from alert_helpers import SLACK
from exporters import RecordWriter
from exporters.writer_process import ProcessRecordWriter
from monitor_helpers import Store, process_name
from otel_monitor import monitor
from otel_monitor.pipeline import PIPELINE
from otel_monitor.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


class LedgerError(Exception):
    pass


@monitor("ledger", mask=("secret",))
def post(amount: int, secret: str) -> int:
    if amount < 0:
        raise LedgerError(f"negative amount {amount} for {secret}")
    return amount * 2


@monitor("ledger")
def entries(n: int):
    yield from range(n)


def test_on_by_default_and_read_from_the_environment(monkeypatch):
    assert load_settings({}).writer_process is True
    monkeypatch.setenv("OTEL_MONITOR_WRITER_PROCESS", "off")
    assert load_settings({}).writer_process is False


def test_the_setting_off_keeps_the_writer_thread(tmp_path):
    otel_monitor.configure(db_path=tmp_path / "s.db", writer_process=False)
    try:
        assert type(PIPELINE.exporter) is RecordWriter
    finally:
        otel_monitor.shutdown()


def test_calls_are_written_by_the_writer_process_as_the_applications(tmp_path):
    otel_monitor.configure(db_path=tmp_path / "s.db", writer_process=True,
                           flush_interval_s=0.05)
    store = Store(tmp_path / "s.db")
    try:
        assert post(21, "hunter22") == 42
        with pytest.raises(LedgerError):
            post(-1, "hunter22")
        assert list(entries(2)) == [0, 1]
        exporter = PIPELINE.exporter
        assert isinstance(exporter, ProcessRecordWriter)
        calls = store.calls(post)
        assert exporter._child is not None and exporter._child.pid != os.getpid()
        assert [c["status"] for c in calls] == ["OK", "ERR"]
        assert {c["pid"] for c in calls} == {os.getpid()}
        assert "hunter22" not in calls[1]["exception"]
        assert store.values(calls[0])["return"] == "42"
        assert store.values(store.call(entries)) == {
            "n": "2", "yield[0]": "0", "yield[1]": "1", "yield_count": "2", "return": "None"}
        [health] = store.health()
        assert health["pid"] == os.getpid()
        child = exporter._child
    finally:
        otel_monitor.shutdown()
    assert child.poll() is not None  # shutdown ended it


def test_a_new_error_alert_goes_out_through_the_writer_process(alerting, receiver):
    store = alerting(writer_process=True)
    with pytest.raises(LedgerError):
        post(-5, "hunter22")
    [post_] = receiver.wait(lambda p: len(p) == 1, path=SLACK)
    assert "New error" in post_.json["text"] and process_name(post) in post_.json["text"]
    assert isinstance(PIPELINE.exporter, ProcessRecordWriter)
    assert len(store.query("SELECT * FROM error_groups")) == 1


def test_a_new_error_alerts_when_the_answer_to_its_commit_was_lost(alerting, receiver,
                                                                      monkeypatch):
    # The writer process commits the failure's batch and its answer is lost (as when it
    # is killed right after the commit): the resent batch finds the call stored, and the
    # group's New-error alert must still go out.
    answer, answers, lost = ProcessRecordWriter._answer, [], []

    def lose_the_first_batch_answer(self, conn):
        message = answer(self, conn)
        answers.append(self._child.pid)
        if len(answers) == 2:  # the first child's first batch (after its "config")
            lost.append(self._child.pid)
            raise TimeoutError("the answer is lost")
        return message

    monkeypatch.setattr(ProcessRecordWriter, "_answer", lose_the_first_batch_answer)
    store = alerting(writer_process=True)
    with pytest.raises(LedgerError):
        post(-5, "hunter22")
    # The failed batch may first be alerted per call (the writer failing: the fallback,
    # as for a locked store); the group's own New-error alert follows the resend.
    posts = receiver.wait(lambda p: any("New error" in x.json["text"] for x in p),
                          path=SLACK, timeout=10)
    [new] = [p for p in posts if "New error" in p.json["text"]]
    assert process_name(post) in new.json["text"]
    assert lost and PIPELINE.exporter._child.pid != lost[0]  # the answer was lost
    assert otel_monitor.force_flush(10)
    assert len(store.query("SELECT * FROM spans WHERE status = 'ERR'")) == 1


APP = textwrap.dedent("""
    import sys
    import otel_monitor
    from otel_monitor import monitor
    from otel_monitor.pipeline import PIPELINE

    @monitor("app")
    def work(i: int) -> int:
        return i

    otel_monitor.configure(db_path=sys.argv[1], writer_process=True)
    for i in range(3000):
        work(i)
    otel_monitor.force_flush(20)
    print(PIPELINE.exporter._child.pid, flush=True)
    for i in range(3000, 6000):
        work(i)
""")


def test_at_exit_every_call_is_written_and_the_writer_process_is_gone(tmp_path):
    db = tmp_path / "s.db"
    done = subprocess.run([sys.executable, "-c", APP, str(db)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    child = int(done.stdout.split()[0])
    assert not Path(f"/proc/{child}").exists()  # ended and reaped before the app exited
    store = Store(db)
    assert store.query("SELECT count(*) AS n FROM process_trace")[0]["n"] == 6000


class Group(str, enum.Enum):  # the pre-3.11 spelling of a string enum
    PRICING = "pricing"


class Feed(str, enum.Enum):
    ORDERS = "orders"


@pytest.mark.parametrize("writer_process", [False, True], ids=["thread", "process"])
def test_a_string_enum_group_and_feed_are_stored_as_their_values(tmp_path, writer_process):
    """Found by review: marshal refused the enum (the writer process lost the call site
    for good), and str() of a (str, Enum) member is 'Group.PRICING', not its value."""
    @monitor(Group.PRICING, feeds=(Feed.ORDERS,))
    def quote(x: int) -> int:
        if x % 2:
            raise ValueError("odd")
        return x

    otel_monitor.configure(db_path=tmp_path / "s.db", writer_process=writer_process)
    try:
        for i in range(4):
            try:
                quote(i)
            except ValueError:
                pass
        assert otel_monitor.force_flush(20)
    finally:
        otel_monitor.shutdown()
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("SELECT DISTINCT status, process_group FROM process_trace ORDER BY 1"
                      ).fetchall() == [("ERR", "pricing"), ("OK", "pricing")]
    [(group, line, feeds)] = db.execute("SELECT process_group, line, feeds FROM processes"
                                        ).fetchall()
    assert (group, feeds) == ("pricing", "orders") and line is not None


@pytest.mark.parametrize("writer_process", [False, True], ids=["thread", "process"])
def test_a_relative_store_path_is_the_one_configure_saw_after_a_chdir(tmp_path, monkeypatch,
                                                                      writer_process):
    """The default db_path (logs/core_logs.db) is relative. Found by review: after the
    application changed directory, a new writer process (or a reopened connection)
    wrote to a second store there."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    otel_monitor.configure(db_path="calls.db", writer_process=writer_process)
    try:
        assert post(1, "s") == 2
        assert otel_monitor.force_flush(20)
        monkeypatch.chdir(second)
        exporter = PIPELINE.exporter
        if writer_process:
            exporter.stop_process()  # as if it had died: the next export starts another
        assert post(2, "s") == 4
        assert otel_monitor.force_flush(20)
    finally:
        otel_monitor.shutdown()
    assert not (second / "calls.db").exists()
    assert len(Store(first / "calls.db").calls(post)) == 2
