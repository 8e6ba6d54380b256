"""Alerts on error-group events, not on calls (issue 15), with the per-call fallback.

End to end: ``@monitor`` functions raise, the writer keeps their groups in the store and
hands the committed batches' events to the alert engine, which posts to a real HTTP
receiver on 127.0.0.1; group statuses are changed in the store as the API does. The
wording of each kind of event and storms of events are shown on an engine of their own,
given events directly."""
from __future__ import annotations

import re
import sqlite3
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

import otel_monitor
from alert_helpers import PD, ROUTING_KEY, SLACK, texts, wait_alerts
from exporters import SpanStore
from exporters.error_groups import NEW, REARMED, REGRESSION, RESOLVED, SNOOZED, SPIKE, GroupEvent
from exporters.writer_process import ProcessRecordWriter
from monitor_helpers import process_name
from otel_monitor import monitor
from otel_monitor.alerts.engine import AlertEngine
from otel_monitor._feeds import FeedRegistry
from otel_monitor.pipeline import PIPELINE
from otel_monitor.settings import load_settings


class PricingError(Exception):
    pass


@monitor("pricing")
def black_scholes(spot: float, vol: float) -> float:
    if vol <= 0:
        raise PricingError(f"implied vol must be > 0, got {vol!r}")
    return spot * vol


@monitor("fx")
def convert(pair: str) -> float:
    raise KeyError(f"no rate for {pair} ({uuid.uuid4()})")


@monitor("risk")
def var(book: int) -> float:
    raise ZeroDivisionError(f"book {book} has no positions")


KINDS = ((black_scholes, lambda i: (100.0 + i, -0.01 * (i + 1))),
         (convert, lambda i: (f"EUR{i:03d}",)),
         (var, lambda i: (i,)))


def fail(fn, *args) -> None:
    with pytest.raises(Exception):
        fn(*args)


def groups(store) -> dict[str, dict]:
    """The store's error groups by process (after a flush)."""
    assert otel_monitor.force_flush(10)
    return {r["process"]: r for r in store.query("SELECT * FROM error_groups")}


def set_status(path, fp: str, status: str, **kwargs) -> None:
    """As the API's resolve / snooze routes do."""
    s = SpanStore(path)
    try:
        s.set_group_status(fp, status, **kwargs)
    finally:
        s.close()


def settle() -> None:
    """Everything due has gone out (pending alerts are delivered at shutdown)."""
    otel_monitor.shutdown()


def kind_of(slack_post) -> str:
    return slack_post.json["text"].split(" ", 1)[1].split(":", 1)[0]


# -- the rows ------------------------------------------------------------------------

def test_a_thousand_failures_of_three_kinds_are_exactly_three_new_error_alerts(
        alerting, receiver):
    store = alerting()
    assert PIPELINE.alerts.group_events  # this writer keeps groups
    for i in range(1000):
        fn, args = KINDS[i % 3]
        fail(fn, *args(i))
    found = groups(store)
    assert sum(g["count"] for g in found.values()) == 1000 and len(found) == 3
    rows = wait_alerts(store.path, lambda r: len(r) == 6)
    settle()
    slack, pd = receiver.to(SLACK), receiver.to(PD)
    assert len(slack) == 3 and len(pd) == 3  # no alert per call, none per batch
    assert [kind_of(p) for p in slack] == ["New error"] * 3
    assert {p.json["dedup_key"] for p in pd} == {
        f"otel-monitor/group/{g['fingerprint']}" for g in found.values()}
    for post in pd:
        body = post.json
        assert body["routing_key"] == ROUTING_KEY and body["event_action"] == "trigger"
        assert body["payload"]["summary"].startswith("New error: ")
        assert body["payload"]["custom_details"]["event"] == NEW
    assert {(r["rule"], r["status"]) for r in rows} == {("exception", "sent")}


def test_a_new_error_alert_says_so_links_to_the_call_and_names_its_group(alerting, receiver):
    store = alerting()
    fail(black_scholes, 101.5, -0.2)
    [group] = groups(store).values()
    [call] = store.calls(black_scholes)
    [post] = receiver.wait(lambda p: len(p) == 1, path=SLACK)
    body = post.json
    # the call's own message (mrkdwn-escaped); the group's title is its normalised form
    assert body["text"] == (f":rotating_light: New error: {__name__}.PricingError in "
                            f"{process_name(black_scholes)}: implied vol must be &gt; 0, "
                            "got -0.2")
    assert group["title"] == "PricingError: implied vol must be > <n>, got <n>"
    assert body["blocks"][0]["text"]["text"] == (
        "New error: PricingError in test_alerts_groups.black_scholes")
    shown = texts(body["blocks"])
    assert "*Error event*\nNew error" in shown
    assert "*Error group*\nPricingError: implied vol must be &gt; &lt;n&gt;" in shown
    assert f"*Fingerprint*\n{group['fingerprint']}" in shown
    assert "implied vol must be &gt; 0, got -0.2" in shown       # the call's own message
    assert 'raise PricingError(f"implied vol' in shown           # its traceback
    link = re.search(r"<(http://ui\.test:8050/\?[^|>]+)\|", shown).group(1)
    query = parse_qs(urlsplit(link.replace("&amp;", "&")).query)
    assert query == {"process": [process_name(black_scholes)], "error": [group["fingerprint"]],
                     "span_id": [call["span_id"]], "trace_id": [call["trace_id"]]}
    [pd] = receiver.wait(lambda p: len(p) == 1, path=PD)
    assert pd.json["payload"]["custom_details"]["fingerprint"] == group["fingerprint"]
    assert pd.json["payload"]["custom_details"]["span_id"] == call["span_id"]


def test_a_resolved_group_failing_again_is_one_regression_alert(alerting, receiver):
    store = alerting()
    fail(black_scholes, 1.0, 0.0)
    [group] = groups(store).values()
    receiver.wait(lambda p: len(p) == 1, path=PD)
    set_status(store.path, group["fingerprint"], RESOLVED)
    for _ in range(3):  # the same failure, three times
        fail(black_scholes, 1.0, 0.0)
    posts = receiver.wait(lambda p: len(p) == 2, path=PD)
    summary = posts[1].json["payload"]["summary"]
    assert summary.startswith(f"Regression: {__name__}.PricingError in ")
    assert "(was resolved; " in summary
    assert posts[1].json["dedup_key"] == posts[0].json["dedup_key"]  # the same incident
    settle()
    assert [kind_of(p) for p in receiver.to(SLACK)] == ["New error", "Regression"]
    assert len(receiver.to(PD)) == 2


def test_a_snoozed_group_keeps_quiet_then_its_expiry_says_so(alerting, receiver):
    store = alerting()
    fail(var, 1)
    [group] = groups(store).values()
    receiver.wait(lambda p: len(p) == 1, path=PD)
    until = time.time_ns() + 2 * 10**9
    set_status(store.path, group["fingerprint"], SNOOZED, until_ns=until)
    fail(var, 2)
    otel_monitor.force_flush()
    assert len(receiver.to(PD)) == 1  # snoozed: counted, not alerted
    while time.time_ns() <= until:
        time.sleep(0.05)
    fail(var, 3)
    posts = receiver.wait(lambda p: len(p) == 2, path=PD)
    assert posts[1].json["payload"]["summary"].startswith("Snooze expired: ZeroDivisionError in")
    slack = receiver.wait(lambda p: len(p) == 2, path=SLACK)
    assert kind_of(slack[1]) == "Snooze expired"


def test_ignored_exception_types_make_no_alert_from_their_groups(alerting, receiver):
    store = alerting(alert_ignore_exceptions=("KeyError",))
    fail(convert, "EURUSD")
    fail(var, 2)
    assert len(groups(store)) == 2  # both grouped all the same
    receiver.wait(lambda p: len(p) == 1, path=PD)
    settle()
    assert ["ZeroDivisionError" in p.json["payload"]["summary"] for p in receiver.to(PD)] \
        == [True]


# -- the per-call fallback ---------------------------------------------------------------

class locked_store:
    """Another connection holds the store's write lock (as another process would)."""

    def __init__(self, path) -> None:
        self.path = path

    def __enter__(self):
        self.holder = sqlite3.connect(self.path, isolation_level=None)
        self.holder.execute("BEGIN EXCLUSIVE")
        return self

    def __exit__(self, *exc) -> None:
        self.holder.execute("ROLLBACK")
        self.holder.close()


def _give_up_on_locks_soon(exporter) -> None:
    """The writer waits 0.2 s for a lock, then fails the batch (30 s by default)."""
    if isinstance(exporter, ProcessRecordWriter):  # its next writer process waits so long
        exporter._settings["busy_timeout_s"] = 0.2
        exporter.stop_process()
    else:
        exporter._store.db.busy_timeout_s = 0.2


@pytest.mark.parametrize("writer_process", [False, True], ids=["thread", "process"])
def test_a_call_the_writer_cannot_write_alerts_per_call_then_its_group_once_written(
        alerting, receiver, writer_process):
    store = alerting(writer_process=writer_process)
    otel_monitor.force_flush()  # the store exists
    engine = PIPELINE.alerts
    _give_up_on_locks_soon(PIPELINE.exporter)  # failing, not waiting
    assert engine.fallback_after_s >= 10  # so it is the failing writer that releases it
    # (the early judgement is a later test's: left at 0.3 s it raced the failing writer,
    # whose lock wait, cycle and the engine's next check took longer under load)
    engine.early_after_s = 3600.0
    with locked_store(store.path):
        fail(black_scholes, 1.0, -3.0)
        [post] = receiver.wait(lambda p: len(p) == 1, path=SLACK, timeout=10)
        assert PIPELINE.processor.failing  # the writer said so first
        assert len(receiver.to(SLACK)) == 1
    body = post.json
    assert "PricingError" in body["text"] and "New error" not in body["text"]
    assert "*Alerted per call*\nthe store could not be written" in texts(body["blocks"])
    [pd] = receiver.wait(lambda p: len(p) >= 1, path=PD)[:1]
    assert pd.json["dedup_key"] == (f"otel-monitor/exception/{process_name(black_scholes)}/"
                                    f"{__name__}.PricingError")
    assert engine.fallback_alerts == 1
    # the lock gone, the call is written and its group is new: that alert follows
    slack = receiver.wait(lambda p: len(p) == 2, path=SLACK)
    assert kind_of(slack[1]) == "New error"
    assert [c["status"] for c in store.calls(black_scholes)] == ["ERR"]
    assert getattr(PIPELINE.exporter, "in_process", True) is not writer_process


def test_a_writer_stuck_on_a_lock_past_the_fallback_delay_alerts_per_call(alerting,
                                                                         receiver):
    store = alerting()
    otel_monitor.force_flush()
    engine = PIPELINE.alerts
    engine.fallback_after_s = 0.3  # the writer itself waits 30 s for the lock
    engine.early_after_s = 3600.0  # (the early judgement is the next test's)
    with locked_store(store.path):
        fail(convert, "EURUSD")
        [post] = receiver.wait(lambda p: len(p) == 1, path=SLACK, timeout=10)
        assert not PIPELINE.processor.failing  # still waiting, not failed yet
    assert "*Alerted per call*" in texts(post.json["blocks"])
    assert "KeyError" in post.json["text"]


def test_a_writer_behind_does_not_delay_a_new_groups_alert_nor_repeat_it(alerting,
                                                                        receiver):
    """Calls queued behind others (here: a writer waiting for a lock, not failing): after
    ``early_after_s`` the engine judges the group from the store itself."""
    store = alerting()
    fail(var, 1)  # a first group, written: it exists
    [known] = groups(store).values()
    receiver.wait(lambda p: len(p) == 1, path=PD)
    set_status(store.path, known["fingerprint"], RESOLVED)
    engine = PIPELINE.alerts
    assert engine.fallback_after_s >= 10
    # (the first group's own call may have been judged early, on a loaded machine)
    early_before = engine.early_alerts
    with locked_store(store.path):
        fail(black_scholes, 1.0, -2.0)  # a new group
        fail(var, 2)                    # a resolved group failing again
        posts = receiver.wait(lambda p: len(p) == 3, path=PD, timeout=10)
        assert not PIPELINE.processor.failing  # the writer still waits: nothing written
        assert engine.early_alerts - early_before == 2 and engine.fallback_alerts == 0
    found = groups(store)  # the lock gone, both written, their events handed on
    assert sorted(p.json["payload"]["summary"].split(":", 1)[0] for p in posts[1:]) == [
        "New error", "Regression"]
    assert {p.json["dedup_key"] for p in posts} == {
        f"otel-monitor/group/{g['fingerprint']}" for g in found.values()}  # the same keys
    settle()
    assert len(receiver.to(PD)) == 3 and len(receiver.to(SLACK)) == 3  # none repeated


def test_a_writer_behind_alerts_a_new_group_ahead_of_it_once_however_many_calls_wait(
        alerting, receiver):
    """Failures of one new group keep coming while the writer is behind: each wait is
    judged early, the group is still absent from the store each time, and it was
    alerted as new twice or more (the storm's follow-up then said "2 error events")."""
    store = alerting()
    engine = PIPELINE.alerts
    engine.early_after_s = 0.05

    def judged() -> bool:  # no error of ours held: the engine has judged the last one
        deadline = time.monotonic() + 10
        while engine._held and time.monotonic() < deadline:
            time.sleep(0.01)
        return not engine._held

    with locked_store(store.path):
        for i in range(3):
            fail(black_scholes, 1.0, -2.0 - i)
            assert judged()
        receiver.wait(lambda p: len(p) == 1, path=PD, timeout=10)
        assert not PIPELINE.processor.failing  # still waiting, not failed
        assert engine.early_alerts == 1 and engine.fallback_alerts == 0
    assert len(groups(store)) == 1
    settle()
    assert len(receiver.to(PD)) == 1 and len(receiver.to(SLACK)) == 1


def test_errors_are_held_until_written_whichever_comes_first_then_dropped(alerting,
                                                                        receiver):
    """The writer may write a call before its error reaches the engine, or after."""
    store = alerting()
    engine = PIPELINE.alerts
    for i in range(20):
        fail(black_scholes, 1.0, -1.0 - i)
        if i % 2:
            otel_monitor.force_flush()
    otel_monitor.force_flush()
    deadline = time.monotonic() + 5
    while engine._held and time.monotonic() < deadline:  # judged by the engine's checks
        time.sleep(0.02)
    assert engine._held == {} and engine._unconfirmed == {}
    settle()
    assert engine.fallback_alerts == 0
    assert [p.json["dedup_key"].split("/")[1] for p in receiver.to(PD)] == ["group"]


# -- the engine on its own: each kind of event, storms of events ----------------------------

EVENT = GroupEvent(kind=NEW, fingerprint="5c1f" * 8, process="pricing.black_scholes",
                   exception_type="pricing.PricingError",
                   title="PricingError: implied vol must be > 0, got <num>", count=1,
                   first_seen_ns=1_796_000_000_000_000_000,
                   last_seen_ns=1_796_000_000_000_000_000, span_id="00f1" * 4,
                   trace_id="0a0b" * 8, message="implied vol must be > 0, got -0.2",
                   traceback="Traceback (most recent call last):\n  ...\nPricingError: x",
                   process_group="pricing", pid=4242)


@pytest.fixture
def engine_for(tmp_path, receiver):
    """An engine of its own (not the pipeline's), group events given to it directly."""
    made = []

    def make(**extra) -> AlertEngine:
        settings = load_settings(dict(
            db_path=str(tmp_path / "own.db"), ui_url="http://ui.test:8050",
            alert_webhooks=[receiver.url(SLACK),
                            f"pagerduty+{receiver.url(PD)}#routing_key={ROUTING_KEY}"],
            alert_backoff_s=0.05, **extra))
        engine = AlertEngine(settings, FeedRegistry({}), group_events=True)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.shutdown()


def test_each_kind_of_event_says_which_it_is(engine_for, receiver):
    engine = engine_for()
    engine.on_group_events([
        EVENT,
        GroupEvent(**{**EVENT.__dict__, "kind": REGRESSION, "count": 41,
                      "fingerprint": "1" * 32}),
        GroupEvent(**{**EVENT.__dict__, "kind": SPIKE, "rate_5m": 42.0, "rate_1h": 3.0,
                      "fingerprint": "2" * 32}),
        GroupEvent(**{**EVENT.__dict__, "kind": REARMED, "count": 7,
                      "fingerprint": "3" * 32}),
    ])
    posts = receiver.wait(lambda p: len(p) == 4, path=PD)
    summaries = {p.json["dedup_key"].rsplit("/", 1)[1]: p.json["payload"]["summary"]
                 for p in posts}
    tail = "pricing.PricingError in pricing.black_scholes: implied vol must be > 0, got -0.2"
    assert summaries == {
        EVENT.fingerprint: f"New error: {tail}",
        "1" * 32: f"Regression: {tail} (was resolved; 41 occurrences in all)",
        "2" * 32: f"Spike: 42/min vs 3/min hourly: {tail}",
        "3" * 32: f"Snooze expired: {tail} (snooze over; 7 occurrences in all)"}
    slack = receiver.wait(lambda p: len(p) == 4, path=SLACK)
    spike = next(p.json for p in slack if "Spike" in p.json["text"])
    assert "*Rate (5 min)*\n42/min" in texts(spike["blocks"])
    assert "*Rate (1 h)*\n3/min" in texts(spike["blocks"])


def test_new_groups_of_one_process_and_type_in_a_storm_are_one_alert_then_a_count(
        engine_for, receiver):
    engine = engine_for(alert_group_window_s=1.0)
    engine.on_group_events([EVENT])
    receiver.wait(lambda p: len(p) == 1, path=PD)
    # four more new groups of it (other code paths) within the window, and a regression
    engine.on_group_events([GroupEvent(**{**EVENT.__dict__, "fingerprint": f"{i:032x}"})
                            for i in range(4)]
                           + [GroupEvent(**{**EVENT.__dict__, "kind": REGRESSION})])
    posts = receiver.wait(lambda p: len(p) == 3, path=PD, timeout=5)
    assert posts[1].json["payload"]["summary"].startswith("Regression: ")  # not held back
    digest = posts[2].json
    assert digest["payload"]["custom_details"]["count"] == 4
    assert "4 error event(s) of pricing.PricingError" in digest["payload"]["summary"]
    engine.shutdown()
    assert len(receiver.to(PD)) == 3


def test_the_first_group_event_switches_an_engine_to_groups(tmp_path, receiver):
    settings = load_settings(dict(db_path=str(tmp_path / "own.db"),
                                  alert_webhooks=[receiver.url(SLACK)]))
    engine = AlertEngine(settings, FeedRegistry({}))
    try:
        assert engine.group_events is False  # a writer that keeps no groups: per call
        engine.on_group_events([])
        assert engine.group_events is True
    finally:
        engine.shutdown()


def test_a_call_failing_after_its_groups_held_calls_were_written_is_held_from_its_own_time(
        engine_for, monkeypatch):
    """The writer hands a batch's group events on, then strikes its failed calls off the
    held errors (``on_batch_written``); the emptied hold is dropped at the engine's next
    check. A call of the same process and type failing before that check is held on its
    own: from its own end and its own wait, not the written call's (whose older end made
    an early judgement take a regression of a group resolved in between for a failure
    from before the resolve, and say nothing; and whose older wait shortened the
    fallback delay)."""
    import traceback
    from exporters.records import CallSite, exception_type_name

    engine = engine_for()
    engine.early_after_s = 3600.0  # (the early judgement reads a store: not this test's)
    monkeypatch.setattr(engine.worker, "wake", lambda: None)  # checks run when _cycle is called
    site = CallSite("risk.var", "risk", None, None)
    try:
        var(1)
    except ZeroDivisionError as exc:
        error = (exception_type_name(ZeroDivisionError),
                 traceback.TracebackException.from_exception(exc), str(exc), (), None)

    def record(span_id: int, end_ns: int) -> tuple:
        return (site.process, 7, span_id, None, end_ns - 1000, end_ns, "ERR", error, None, None)

    first_end = time.time_ns()
    engine.submit_error(site, (7, 1), first_end, error)
    engine.on_batch_written([record(1, first_end)])  # written: its group spoke for it
    time.sleep(0.05)  # the second call fails later than the first was held
    second_end = time.time_ns()
    engine.submit_error(site, (7, 2), second_end, error)
    late = int(engine.fallback_after_s * 1e9)
    engine._cycle(second_end + late - 1)  # not yet fallback_after_s after the second
    assert engine.fallback_alerts == 0
    engine._cycle(time.time_ns() + late)      # past it: alerted per call, once
    assert engine.fallback_alerts == 1
