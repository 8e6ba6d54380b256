"""Rule "unhandled exception": a call with status ERR posts to Slack and PagerDuty.

Since issue 15 the writer keeps every failed call's error group and the alert is the
group's ("New error", then its regressions...), one incident per group; the per-call
alert remains as the fallback when the store cannot be written, and for a writer that
reports no group events (``per_call_only``), whose storms are still grouped.

The webhooks are a real HTTP server on 127.0.0.1 (``webhook_receiver``)."""
from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from opentelemetry import trace

import otel_monitor
from alert_helpers import PD, ROUTING_KEY, SLACK, texts, wait_alerts
from monitor_helpers import process_name
from otel_monitor import monitor


class PricingError(Exception):
    pass


FQN = f"{__name__}.PricingError"  # OTel's exception.type


@monitor("pricing")
def black_scholes(spot: float, vol: float) -> float:
    if vol <= 0:
        raise PricingError(f"implied vol must be > 0, got {vol!r}")
    return spot * vol


def per_call_only() -> None:
    """A writer that reports no group events (as before issue 15, and as the fallback
    alerts when the store cannot be written): the engine alerts per call."""
    from otel_monitor.pipeline import PIPELINE

    PIPELINE.exporter.on_group_events = None
    PIPELINE.alerts.group_events = False


def group_of(store) -> dict:
    otel_monitor.force_flush()
    [group] = store.query("SELECT * FROM error_groups")
    return group


def _raise(fn, *args, **kwargs) -> BaseException:
    with pytest.raises(Exception) as info:
        fn(*args, **kwargs)
    return info.value


# -- the brief's row: "Decorator exception -> status='ERR' row, Slack mock fired" ----------

def test_decorator_exception_gives_an_err_row_and_fires_the_slack_webhook(alerting, receiver):
    store = alerting()
    _raise(black_scholes, 101.5, -0.2)

    [post] = receiver.wait(lambda p: len(p) >= 1, path=SLACK)
    [row] = store.calls(black_scholes)
    assert row["status"] == "ERR"
    assert "PricingError" in row["exception"]

    body = post.json
    assert post.headers["Content-Type"] == "application/json"
    assert "PricingError" in body["text"] and process_name(black_scholes) in body["text"]
    shown = texts(body["blocks"])
    assert process_name(black_scholes) in shown                      # process
    assert "*Group*\npricing" in shown                                # group
    assert "PricingError" in shown                                    # exception type
    assert "implied vol must be &gt; 0, got -0.2" in shown           # message (mrkdwn-escaped)
    assert 'raise PricingError(f"implied vol' in shown               # the traceback's top
    assert re.search(r"<!date\^\d+\^.*\|\d{4}-\d\d-\d\dT[\d:.]+Z>", shown)  # the time
    link = re.search(r"<(http://ui\.test:8050/\?[^|>]+)\|", shown).group(1)
    query = parse_qs(urlsplit(link).query)                            # the UI, on that call
    assert query["process"] == [process_name(black_scholes)]
    assert query["span_id"] == [row["span_id"]]
    assert query["trace_id"] == [row["trace_id"]]


def test_the_alert_is_recorded_in_the_store_as_sent_once_per_webhook(alerting, receiver):
    store = alerting()
    _raise(black_scholes, 1.0, 0.0)
    rows = wait_alerts(store.path, lambda r: len(r) == 2)
    [call] = store.calls(black_scholes)
    assert {r["target"].split()[0] for r in rows} == {"slack", "pagerduty"}
    for r in rows:
        assert (r["rule"], r["action"], r["status"], r["attempts"], r["count"]) == (
            "exception", "trigger", "sent", 1, 1)
        assert r["process"] == process_name(black_scholes)
        assert r["span_id"] == call["span_id"]
        assert r["error"] is None
        assert "/slack" not in r["target"] and "/pagerduty" not in r["target"]  # no secret path


def test_pagerduty_event_has_the_required_fields(alerting, receiver):
    store = alerting()
    exc = _raise(black_scholes, 1.0, -1.0)
    [post] = receiver.wait(lambda p: len(p) >= 1, path=PD)
    body = post.json
    assert body["routing_key"] == ROUTING_KEY
    assert body["event_action"] == "trigger"
    # one incident per error group, whose exception type is fully qualified, as OTel's
    # exception.type
    group = group_of(store)
    assert group["exception_type"] == FQN
    assert body["dedup_key"] == f"otel-monitor/group/{group['fingerprint']}"
    payload = body["payload"]
    assert payload["summary"].startswith(f"New error: {FQN} in {process_name(black_scholes)}: ")
    assert str(exc) in payload["summary"]
    assert payload["severity"] == "error"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", payload["timestamp"])
    assert payload["source"]
    details = payload["custom_details"]
    assert details["process"] == process_name(black_scholes)
    assert details["process_group"] == "pricing"
    assert details["exception_type"] == FQN
    assert details["count"] == 1
    assert "Traceback" in details["traceback"]
    assert payload["component"] == process_name(black_scholes)
    assert body["links"][0]["href"].startswith("http://ui.test:8050/?")
    assert "#" not in post.path and ROUTING_KEY not in post.path  # the key went in the body


def test_two_exception_types_of_one_process_have_two_dedup_keys(alerting, receiver):
    alerting()

    @monitor("fx")
    def convert(kind):
        raise (KeyError if kind == "k" else ZeroDivisionError)(kind)

    _raise(convert, "k")
    _raise(convert, "z")
    posts = receiver.wait(lambda p: len(p) == 2, path=PD)
    keys = {p.json["dedup_key"] for p in posts}  # two error groups, two incidents
    assert len(keys) == 2 and all(k.startswith("otel-monitor/group/") for k in keys)
    assert {p.json["payload"]["custom_details"]["exception_type"] for p in posts} == {
        "KeyError", "ZeroDivisionError"}


# -- masked values ---------------------------------------------------------------------------

def test_masked_values_never_appear_in_an_alert(alerting, receiver):
    alerting()
    secret_password, secret_client = "hunter2-s3cr3t-value", "CLIENT-77-PRIVATE"

    @monitor("auth", mask=("client_id",))
    def login(user: str, password: str, client_id: str) -> None:
        raise PermissionError(f"login refused for {user} with {password} via {client_id}")

    _raise(login, "ada", secret_password, secret_client)
    posts = receiver.wait(lambda p: len(p) >= 2)
    for post in posts:
        raw = post.raw.decode()
        assert secret_password not in raw and secret_client not in raw
        assert "HASHED:" in raw  # the markers stand in for them
        assert "ada" in raw      # what is not masked stays readable



def test_masked_bytes_and_containers_quoted_in_a_message_never_appear_in_an_alert(
        alerting, receiver):
    alerting()

    @monitor("auth", mask=("token", "creds"))
    def login(token: bytes, creds: dict) -> None:
        raise PermissionError(f"token {token.decode()} refused for {creds['password']}")

    _raise(login, b"BYTES-s3cr3t-TOKEN", {"user": "ada", "password": "DICT-s3cr3t-PW"})
    for post in receiver.wait(lambda p: len(p) >= 2):
        raw = post.raw.decode()
        assert "BYTES-s3cr3t-TOKEN" not in raw and "DICT-s3cr3t-PW" not in raw
        assert "HASHED:" in raw

# -- storms ---------------------------------------------------------------------------------

def test_a_thousand_identical_errors_are_one_group_and_one_alert_per_webhook(alerting,
                                                                             receiver):
    store = alerting(alert_group_window_s=1.0)
    for _ in range(1000):
        _raise(black_scholes, 1.0, 0.0)
    assert group_of(store)["count"] == 1000
    rows = wait_alerts(store.path, lambda r: len(r) == 2)
    otel_monitor.shutdown()  # whatever was due has gone out by now
    assert len(receiver.to(SLACK)) == 1 and len(receiver.to(PD)) == 1
    assert {(r["target"].split()[0], r["count"]) for r in rows} == {("slack", 1),
                                                                   ("pagerduty", 1)}
    assert len(store.calls(black_scholes)) == 1000  # every call is still a row


def test_a_thousand_identical_errors_in_a_burst_are_a_handful_of_posts_carrying_the_count(
        alerting, receiver):
    store = alerting(alert_group_window_s=1.0)
    per_call_only()
    for _ in range(1000):
        _raise(black_scholes, 1.0, 0.0)

    # each webhook has its own sender: wait for both (one can be a digest behind)
    rows = wait_alerts(store.path, lambda r: all(
        sum(x["count"] for x in r if x["target"].startswith(kind)) >= 1000
        for kind in ("slack", "pagerduty")), timeout=8)
    for kind, path in (("slack", SLACK), ("pagerduty", PD)):
        mine = [r for r in rows if r["target"].startswith(kind)]
        assert 1 <= len(mine) <= 5
        assert sum(r["count"] for r in mine) == 1000
        assert len(receiver.to(path)) == len(mine)
    counts = [p.json["payload"]["custom_details"]["count"] for p in receiver.to(PD)]
    assert sum(counts) == 1000
    repeat = [p.json for p in receiver.to(SLACK) if "more time" in p.json["text"]]
    if repeat:  # the digest says how many, in its text and its Occurrences field
        assert re.search(r"[\d,]+ more time\(s\) in the last 1\.\d s", repeat[0]["text"])
        assert "*Occurrences*" in texts(repeat[0]["blocks"])
    assert len(store.calls(black_scholes)) == 1000  # every call is still a row


def test_a_new_error_after_the_window_is_a_new_alert(alerting, receiver):
    store = alerting(alert_group_window_s=0.3)
    per_call_only()  # by group, the same error again is no new alert while it is open
    _raise(black_scholes, 1.0, 0.0)
    receiver.wait(lambda p: len(p) == 1, path=SLACK)
    wait_alerts(store.path, lambda r: len(r) == 2)
    import time
    time.sleep(0.8)  # the window passes with nothing more: the storm is over
    _raise(black_scholes, 1.0, 0.0)
    posts = receiver.wait(lambda p: len(p) == 2, path=SLACK)
    assert "more time" not in posts[1].json["text"]


# -- rules -----------------------------------------------------------------------------------

def test_ignored_exception_types_do_not_alert(alerting, receiver):
    store = alerting(alert_ignore_exceptions=("PricingError",))

    @monitor("fx")
    def other():
        raise LookupError("EURUSD")

    _raise(black_scholes, 1.0, 0.0)
    _raise(other)
    posts = receiver.wait(lambda p: len(p) == 1, path=SLACK)
    assert "LookupError" in posts[0].json["text"]
    assert len(store.calls(black_scholes)) == 1  # still recorded, only not alerted
    assert all("PricingError" not in p.raw.decode() for p in receiver.posts)


def test_exception_alerts_can_be_switched_off(alerting, receiver):
    store = alerting(alert_exceptions=False)
    _raise(black_scholes, 1.0, 0.0)
    assert store.calls(black_scholes)[0]["status"] == "ERR"
    otel_monitor.shutdown()  # whatever was due has gone out by now
    assert receiver.posts == []


def test_a_call_skipped_by_sampling_that_raises_still_alerts(alerting, receiver):
    alerting()

    @monitor("pricing", sample=0.0)
    def rarely_recorded(x):
        raise ValueError(x)

    _raise(rarely_recorded, "boom")
    [post] = receiver.wait(lambda p: len(p) == 1, path=SLACK)
    assert "ValueError" in post.json["text"]


def test_a_failed_span_of_other_instrumentation_alerts_too(alerting, receiver):
    alerting()
    tracer = trace.get_tracer("tests.web_framework")
    with pytest.raises(RuntimeError):
        with tracer.start_as_current_span("GET /quote"):
            raise RuntimeError("upstream timed out")
    [post] = receiver.wait(lambda p: len(p) == 1, path=PD)
    body = post.json
    assert body["dedup_key"].startswith("otel-monitor/group/")  # its own error group
    assert body["payload"]["summary"].startswith("New error: RuntimeError in GET /quote: ")
    assert body["payload"]["custom_details"]["exception_type"] == "RuntimeError"
    assert "upstream timed out" in body["payload"]["summary"]


def test_an_exception_rising_through_several_monitored_calls_alerts_once_for_the_innermost(
        alerting, receiver):
    store = alerting()

    @monitor("risk")
    def run_risk(vols):
        return [price_position(v) for v in vols]

    @monitor("pricing")
    def price_position(vol):
        return black_scholes(100.0, vol)

    _raise(run_risk, [0.2, -0.1])
    [post] = receiver.wait(lambda p: len(p) == 1, path=PD)
    assert post.json["payload"]["component"] == process_name(black_scholes)
    # every caller's row says ERR all the same
    assert [c["status"] for c in store.calls(run_risk)] == ["ERR"]
    assert [c["status"] for c in store.calls(price_position)] == ["OK", "ERR"]
    otel_monitor.shutdown()
    assert len(receiver.to(PD)) == 1

    # the same exception type raised afresh by an outer call is its own incident (a new
    # store: in this one black_scholes's group is open already, and alerts no more)
    otel_monitor.configure(db_path=store.path.parent / "again.db",
                           alert_webhooks=[receiver.url("/again")])

    @monitor("risk")
    def rewrap():
        try:
            black_scholes(1.0, 0.0)
        except PricingError as exc:
            raise PricingError("while rewrapping") from exc

    _raise(rewrap)
    posts = receiver.wait(lambda p: len(p) == 2, path="/again")
    # the text is mrkdwn: "<locals>" in a process name is sent escaped, shown as it is
    # ":rotating_light: New error: <type> in <process>: <message>"
    assert {html.unescape(p.json["text"].split(" in ", 1)[1].split(": ", 1)[0])
            for p in posts} == {
        process_name(black_scholes), process_name(rewrap)}


def test_a_forked_worker_alerts_on_its_own_errors_with_its_own_pid(alerting, receiver):
    import os
    import time

    alerting(alert_webhooks=[receiver.url(SLACK)])

    @monitor("worker")
    def handle(job):
        raise LookupError(f"job {job} in {os.getpid()}")

    pid = os.fork()
    if pid == 0:  # the child: a gunicorn-style worker
        code = 1
        try:
            try:
                handle(7)
            except LookupError:
                pass
            otel_monitor.shutdown()  # pending alerts go out first
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        raise AssertionError("the forked worker did not exit")
    assert os.waitstatus_to_exitcode(status) == 0
    [post] = receiver.wait(lambda p: len(p) == 1, path=SLACK)
    assert f"job 7 in {pid}" in post.json["text"]
    assert f"pid {pid}" in texts(post.json["blocks"])
