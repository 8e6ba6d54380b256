"""Alerts on error-group events, not on calls (issue 15), with the per-call fallback.

The writer hands the engine ``GroupEvent``s after each committed batch
(``AlertEngine.on_group_events``); here the events are built from real failures
(their span, trace and traceback as stored) and given to the pipeline's engine the way
the writer does. The webhooks are a real HTTP server on 127.0.0.1."""
from __future__ import annotations

import hashlib
import sqlite3
import time
from urllib.parse import parse_qs, urlsplit

import pytest

import otel_monitor
from alert_helpers import PD, ROUTING_KEY, SLACK, texts, wait_alerts
from exporters.error_groups import NEW, REARMED, REGRESSION, SPIKE, GroupEvent
from monitor_helpers import process_name
from otel_monitor import monitor
from otel_monitor.pipeline import PIPELINE


class PricingError(Exception):
    pass


@monitor("pricing")
def black_scholes(spot: float, vol: float) -> float:
    if vol <= 0:
        raise PricingError(f"implied vol must be > 0, got {vol!r}")
    return spot * vol


@monitor("fx")
def convert(pair: str) -> float:
    raise KeyError(pair)


@monitor("risk")
def var(book: int) -> float:
    return 1 / (book - book)


def _raise(fn, *args) -> None:
    with pytest.raises(Exception):
        fn(*args)


def fingerprint(process: str, exc_type: str) -> str:
    return hashlib.sha256(f"{process}|{exc_type}".encode()).hexdigest()[:32]


def event_of(store, fn, kind: str, *, count: int = 1, **extra) -> GroupEvent:
    """The event the writer would report for ``fn``'s latest failure, as stored."""
    call = store.calls(fn)[-1]
    assert call["status"] == "ERR"
    text = call["exception"]
    last_line = text.strip().splitlines()[-1]
    exc_type, _, message = last_line.partition(": ")
    row = store.query("SELECT start_ns FROM spans WHERE span_id = ?", (call["span_id"],))
    seen = row[0]["start_ns"] if row else time.time_ns()
    short = exc_type.rsplit(".", 1)[-1]  # the traceback names it qualified, or a builtin
    return GroupEvent(kind=kind, fingerprint=fingerprint(process_name(fn), exc_type),
                      process=process_name(fn), exception_type=exc_type,
                      title=f"{short}: {message}", count=count, first_seen_ns=seen,
                      last_seen_ns=seen, span_id=call["span_id"], trace_id=call["trace_id"],
                      message=message, traceback=text, process_group="pricing",
                      pid=None, **extra)


def grouping(alerting, **settings):
    """The pipeline configured as with a writer that keeps error groups."""
    store = alerting(**settings)
    PIPELINE.alerts.group_events = True
    return store, PIPELINE.alerts


def settle(receiver) -> None:
    """Everything due has gone out (pending alerts are delivered at shutdown)."""
    otel_monitor.shutdown()


# -- one alert per event -----------------------------------------------------------------

def test_three_new_groups_are_three_new_error_alerts_and_their_calls_alert_no_more(
        alerting, receiver):
    store, engine = grouping(alerting)
    for _ in range(5):  # many failures of three kinds: the calls themselves do not alert
        _raise(black_scholes, 1.0, -0.1)
        _raise(convert, "EURUSD")
        _raise(var, 3)
    otel_monitor.force_flush()
    events = [event_of(store, fn, NEW) for fn in (black_scholes, convert, var)]
    engine.on_group_events(events)

    slack = receiver.wait(lambda p: len(p) == 3, path=SLACK)
    pd = receiver.wait(lambda p: len(p) == 3, path=PD)
    rows = wait_alerts(store.path, lambda r: len(r) == 6)
    settle(receiver)
    assert len(receiver.to(SLACK)) == 3 and len(receiver.to(PD)) == 3  # nothing per call
    assert all(p.json["text"].split(" ", 1)[1].startswith("New error: ") for p in slack)
    assert {p.json["dedup_key"] for p in pd} == {
        f"otel-monitor/group/{e.fingerprint}" for e in events}
    for post in pd:
        body = post.json
        assert body["routing_key"] == ROUTING_KEY and body["event_action"] == "trigger"
        assert body["payload"]["summary"].startswith("New error: ")
        assert body["payload"]["custom_details"]["event"] == NEW
    assert {r["status"] for r in rows} == {"sent"}
    assert {r["rule"] for r in rows} == {"exception"}


def test_a_new_error_alert_links_to_the_call_and_names_its_group(alerting, receiver):
    store, engine = grouping(alerting)
    _raise(black_scholes, 101.5, -0.2)
    otel_monitor.force_flush()
    ev = event_of(store, black_scholes, NEW)
    engine.on_group_events([ev])

    [post] = receiver.wait(lambda p: len(p) == 1, path=SLACK)
    body = post.json
    assert body["text"].endswith(
        f"New error: PricingError: implied vol must be &gt; 0, got -0.2 in "
        f"{process_name(black_scholes)}")
    shown = texts(body["blocks"])
    assert "New error: PricingError in" in body["blocks"][0]["text"]["text"]  # the header
    assert "*Error event*\nNew error" in shown and ev.fingerprint in shown
    assert 'raise PricingError(f"implied vol' in shown  # the traceback
    link = shown.split("<http://ui.test:8050/?", 1)[1].split("|", 1)[0]
    query = parse_qs(urlsplit("http://x/?" + link).query)
    assert query == {"error": [ev.fingerprint], "span_id": [ev.span_id],
                     "trace_id": [ev.trace_id]}
    [pd] = receiver.wait(lambda p: len(p) == 1, path=PD)
    assert pd.json["links"][0]["href"] == "http://ui.test:8050/?" + link.replace("&amp;", "&")
    assert pd.json["payload"]["custom_details"]["fingerprint"] == ev.fingerprint


def test_a_regression_is_one_regression_alert(alerting, receiver):
    store, engine = grouping(alerting)
    _raise(black_scholes, 1.0, 0.0)
    otel_monitor.force_flush()
    engine.on_group_events([event_of(store, black_scholes, REGRESSION, count=41)])
    [post] = receiver.wait(lambda p: len(p) == 1, path=PD)
    summary = post.json["payload"]["summary"]
    assert summary.startswith("Regression: PricingError: ")
    assert "was resolved; 41 occurrences in all" in summary
    [slack] = receiver.wait(lambda p: len(p) == 1, path=SLACK)
    assert "Regression: " in slack.json["text"]
    settle(receiver)
    assert len(receiver.to(PD)) == 1 and len(receiver.to(SLACK)) == 1


def test_a_spike_says_its_rates_and_a_rearmed_group_says_its_snooze_expired(
        alerting, receiver):
    store, engine = grouping(alerting)
    _raise(convert, "GBPUSD")
    _raise(var, 1)
    otel_monitor.force_flush()
    engine.on_group_events([event_of(store, convert, SPIKE, rate_5m=42.0, rate_1h=3.0),
                            event_of(store, var, REARMED, count=7)])
    posts = receiver.wait(lambda p: len(p) == 2, path=PD)
    summaries = sorted(p.json["payload"]["summary"] for p in posts)
    assert summaries[0].startswith("Snooze expired: ZeroDivisionError")
    assert "snooze over; 7 occurrences in all" in summaries[0]
    assert summaries[1].startswith("Spike: 42/min vs 3/min hourly: KeyError")
    slack = receiver.wait(lambda p: len(p) == 2, path=SLACK)
    spike = next(p.json for p in slack if "Spike" in p.json["text"])
    assert "*Rate (5 min)*\n42/min" in texts(spike["blocks"])


def test_events_of_one_process_and_type_in_a_storm_are_one_alert_then_a_count(
        alerting, receiver):
    store, engine = grouping(alerting, alert_group_window_s=1.0)
    _raise(black_scholes, 1.0, 0.0)
    otel_monitor.force_flush()
    first = event_of(store, black_scholes, NEW)
    engine.on_group_events([first])
    receiver.wait(lambda p: len(p) == 1, path=PD)
    # four more events of the same (process, type) within the window: other groups of
    # it (other frames), a spike...
    more = [GroupEvent(**{**first.__dict__, "fingerprint": f"{i:032x}", "kind": NEW})
            for i in range(3)] + [GroupEvent(**{**first.__dict__, "kind": SPIKE,
                                                 "rate_5m": 9.0, "rate_1h": 1.0})]
    engine.on_group_events(more)
    posts = receiver.wait(lambda p: len(p) == 2, path=PD, timeout=5)
    digest = posts[1].json
    assert digest["payload"]["custom_details"]["count"] == 4
    assert "4 error event(s) of" in digest["payload"]["summary"]
    settle(receiver)
    assert len(receiver.to(PD)) == 2


def test_ignored_exception_types_make_no_alert_from_their_events(alerting, receiver):
    store, engine = grouping(alerting, alert_ignore_exceptions=("KeyError",))
    _raise(convert, "EURUSD")
    _raise(var, 2)
    otel_monitor.force_flush()
    engine.on_group_events([event_of(store, convert, NEW), event_of(store, var, NEW)])
    receiver.wait(lambda p: len(p) == 1, path=PD)
    settle(receiver)
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


def test_a_call_the_writer_cannot_write_alerts_per_call_and_says_so(alerting, receiver):
    store, engine = grouping(alerting)
    otel_monitor.force_flush()  # the store exists
    writer = PIPELINE.exporter._store.db
    writer.busy_timeout_s = 0.2  # it gives up on the lock soon: its health says failing
    assert engine.fallback_after_s >= 10  # so it is the failing writer that releases it
    with locked_store(store.path):
        _raise(black_scholes, 1.0, -3.0)
        [post] = receiver.wait(lambda p: len(p) == 1, path=SLACK, timeout=10)
        assert PIPELINE.processor.failing
    body = post.json
    assert "PricingError" in body["text"] and "New error" not in body["text"]
    assert "*Alerted per call*\nthe store could not be written" in texts(body["blocks"])
    [pd] = receiver.wait(lambda p: len(p) == 1, path=PD)
    assert pd.json["dedup_key"] == (f"otel-monitor/exception/{process_name(black_scholes)}/"
                                    f"{__name__}.PricingError")
    assert engine.fallback_alerts == 1
    # once the lock is gone the call is written like any other
    assert [c["status"] for c in store.calls(black_scholes)] == ["ERR"]


def test_a_writer_stuck_on_a_lock_past_the_fallback_delay_alerts_per_call(alerting,
                                                                         receiver):
    store, engine = grouping(alerting)
    otel_monitor.force_flush()
    engine.fallback_after_s = 0.3  # the writer itself waits 30 s for the lock
    with locked_store(store.path):
        _raise(convert, "EURUSD")
        [post] = receiver.wait(lambda p: len(p) == 1, path=SLACK, timeout=10)
        assert not PIPELINE.processor.failing  # still waiting, not failed yet
    assert "*Alerted per call*" in texts(post.json["blocks"])
    assert "KeyError" in post.json["text"]


def test_an_error_held_for_its_group_is_dropped_once_written_whichever_comes_first(
        alerting, receiver):
    """The writer may write the call before its error reaches the engine, or after."""
    store, engine = grouping(alerting)
    _raise(black_scholes, 1.0, -1.0)
    otel_monitor.force_flush()
    _raise(convert, "USDJPY")
    otel_monitor.force_flush()
    deadline = time.monotonic() + 5
    while engine._held and time.monotonic() < deadline:  # judged by the engine's checks
        time.sleep(0.02)
    assert engine._held == {} and engine._unconfirmed == {}
    settle(receiver)
    assert receiver.posts == [] and engine.fallback_alerts == 0


def test_errors_still_held_when_the_process_stops_alert_per_call(alerting, receiver):
    _, engine = grouping(alerting)
    engine.fallback_after_s = 3600.0
    # the writer's word that it wrote the call never comes (as when it hangs)
    PIPELINE.processor.observers.remove(engine.on_batch_written)
    _raise(var, 5)
    otel_monitor.force_flush()
    assert not PIPELINE.processor.failing and receiver.posts == []
    settle(receiver)
    [post] = receiver.to(SLACK)
    assert "ZeroDivisionError" in post.json["text"]
    assert "*Alerted per call*" in texts(post.json["blocks"])


def test_an_error_unwritten_past_the_fallback_delay_alerts_per_call(alerting, receiver):
    _, engine = grouping(alerting)
    engine.fallback_after_s = 0.3
    PIPELINE.processor.observers.remove(engine.on_batch_written)
    _raise(var, 5)
    [post] = receiver.wait(lambda p: len(p) == 1, path=SLACK)
    assert "*Alerted per call*" in texts(post.json["blocks"])


def test_without_group_events_every_distinct_error_alerts_per_call_as_before(
        alerting, receiver):
    alerting()
    assert PIPELINE.alerts.group_events is False  # this writer keeps no groups
    _raise(black_scholes, 1.0, 0.0)
    [post] = receiver.wait(lambda p: len(p) == 1, path=PD)
    assert post.json["dedup_key"].startswith("otel-monitor/exception/")


def test_the_first_group_event_switches_the_engine_to_groups(alerting, receiver):
    store = alerting()
    engine = PIPELINE.alerts
    engine.on_group_events([])  # a writer that keeps groups reports after each batch
    assert engine.group_events
    _raise(black_scholes, 1.0, 0.0)
    otel_monitor.force_flush()
    engine.on_group_events([event_of(store, black_scholes, NEW)])
    receiver.wait(lambda p: len(p) == 1, path=PD)
    settle(receiver)
    assert [p.json["dedup_key"].split("/")[1] for p in receiver.to(PD)] == ["group"]
