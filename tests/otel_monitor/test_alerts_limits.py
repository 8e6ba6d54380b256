"""Webhook bodies stay within Slack's and PagerDuty's documented limits, whatever the
exception's message or the process's name: the bodies captured by a real receiver on
127.0.0.1 are checked by ``webhook_limits``, whose checks are tested here first."""
from __future__ import annotations

import copy
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from alert_helpers import PD, SLACK, texts, wait_alerts
from monitor_helpers import process_name
from otel_monitor import monitor
from webhook_limits import (longest_text, pagerduty_problems, sent_bytes, slack_problems)

# -- the checks themselves -------------------------------------------------------------------

LINK = "http://ui.test:8050/?process=m.f&span_id=00f067aa0ba902b7"
GOOD_SLACK = {
    "text": ":rotating_light: ValueError in m.f: bad &amp; &lt;worse&gt;",
    "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "ValueError in m.f"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Process*\n`m.f`"},
                                       {"type": "mrkdwn", "text": "*Time*\n<!date^1^{x}|t>"}]},
        {"type": "section", "text": {"type": "mrkdwn", "text": "```Traceback```"}},
        {"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"<{LINK}|Open this call in otel-monitor>"}]},
    ]}


def _slack(edit) -> dict:
    body = copy.deepcopy(GOOD_SLACK)
    edit(body)
    return body


def _set(path: str, value):
    """An edit that sets ``body[...path...]`` (keys and list indexes, dot-separated)."""
    def edit(body):
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node = body
        for p in parents:
            node = node[p]
        node[last] = value(node[last]) if callable(value) else value
    return edit


EMOJI = "\N{GRINNING FACE}"  # one code point, 4 UTF-8 bytes, 2 UTF-16 units


def test_a_good_slack_body_and_one_exactly_at_every_limit_pass():
    assert slack_problems(GOOD_SLACK) == []
    at_limits = _slack(lambda b: b.update(text="t" * 3000, blocks=[
        {"type": "header", "text": {"type": "plain_text", "text": EMOJI * 150}},
        {"type": "section", "text": {"type": "mrkdwn", "text": EMOJI * 3000},
         "fields": [{"type": "mrkdwn", "text": "f" * 2000}] * 10},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "c" * 3000}] * 10},
    ] + [{"type": "section", "text": {"type": "plain_text", "text": "x"}}] * 47))
    assert slack_problems(at_limits) == []


@pytest.mark.parametrize("edit, problem", [
    (_set("text", "t" * 3001), "text: 3,001 chars > 3,000"),
    (_set("blocks.0.text.text", EMOJI * 151), "blocks[0] (header).text: 151 chars > 150"),
    (_set("blocks.0.text.type", "mrkdwn"), "not a text object"),
    (_set("blocks.2.text.text", "x" * 3001), "blocks[2] (section).text: 3,001 chars"),
    (_set("blocks.1.fields.0.text", "f" * 2001), "fields[0]: 2,001 chars > 2,000"),
    (_set("blocks.1.fields", lambda f: f * 6), "fields: 12 > 10"),
    (_set("blocks", lambda b: b * 13), "blocks: 52 > 50"),
    (_set("blocks.3.elements.0.text", lambda t: t + "c" * 3000), "elements[0]: 3,"),
    (_set("blocks.3.elements", lambda e: e * 11), "elements: 11 not in 1..10"),
    (_set("blocks.3.elements.0.text", "<http://ui.test/?process=%E4%B|Open>"),
     "cut escape"),
    (_set("blocks.3.elements.0.text", "<ui.test/?p=1|Open>"), "not an http(s) URL"),
    (_set("blocks.3.elements.0.text", "<http://ui.test/?p=a b|Open>"), "cannot hold"),
    (_set("blocks.1.fields.0.text", "*Exception*\nbad &am"), "starts no escape"),
    (_set("blocks.2.text.text", "```a < b```"), "outside a link"),
    (_set("blocks.2.type", "divider"), "do not know"),
])
def test_the_slack_check_reports_each_broken_limit(edit, problem):
    problems = slack_problems(_slack(edit))
    assert any(problem in p for p in problems), problems


GOOD_PD = {
    "routing_key": "R" * 32, "event_action": "trigger", "dedup_key": "otel-monitor/x",
    "payload": {"summary": "ValueError in m.f", "source": "svc@host", "severity": "error",
                "timestamp": "2026-01-01T00:00:00.000Z", "custom_details": {"count": 1}},
    "client": "otel-monitor", "client_url": LINK, "links": [{"href": LINK, "text": "Open"}],
}


def _pd(edit) -> bytes:
    body = copy.deepcopy(GOOD_PD)
    edit(body)
    return sent_bytes(body)


def test_a_good_pagerduty_body_and_one_exactly_at_every_limit_pass():
    assert pagerduty_problems(sent_bytes(GOOD_PD)) == []
    body = copy.deepcopy(GOOD_PD)
    body["dedup_key"] = EMOJI * 255
    body["payload"]["summary"] = EMOJI * 1024
    body["payload"]["custom_details"]["blob"] = ""
    body["payload"]["custom_details"]["blob"] = "b" * (512_000 - len(sent_bytes(body)))
    assert len(sent_bytes(body)) == 512_000
    assert pagerduty_problems(sent_bytes(body)) == []


@pytest.mark.parametrize("edit, problem", [
    # 128,001 emoji are 128,001 characters but 512,004 bytes: the limit is in bytes
    (_set("payload.custom_details.blob", EMOJI * 128_001), "bytes > 512,000"),
    (_set("payload.summary", "s" * 1025), "payload.summary: 1,025 chars > 1,024"),
    (_set("payload.summary", ""), "payload.summary: missing"),
    (_set("dedup_key", "k" * 256), "dedup_key: 256 chars > 255"),
    (_set("payload.severity", "fatal"), "payload.severity"),
    (_set("payload.source", ""), "payload.source: missing"),
    (_set("event_action", "fire"), "event_action"),
    (_set("links.0.href", LINK + "%E"), "cut escape"),
    (_set("client_url", "ui.test"), "not an http(s) URL"),
])
def test_the_pagerduty_check_reports_each_broken_limit(edit, problem):
    problems = pagerduty_problems(_pd(edit))
    assert any(problem in p for p in problems), problems


# -- bodies of real alerts, captured on the receiver ------------------------------------------

class PricingError(Exception):
    pass


def _raise(fn) -> None:
    with pytest.raises(Exception):
        fn()


def _one_each(receiver) -> tuple[dict, bytes]:
    [slack] = receiver.wait(lambda p: len(p) >= 1, path=SLACK, timeout=10)
    [pd] = receiver.wait(lambda p: len(p) >= 1, path=PD, timeout=10)
    return slack.json, pd.raw


def _more_chars(text: str) -> int:
    """N of the ``[N more chars]`` a cut text ends with."""
    return int(re.search(r"… \[([\d,]+) more chars\]", text).group(1).replace(",", ""))


def test_a_million_character_message_gives_bodies_within_every_limit(alerting, receiver):
    store = alerting()
    # ASCII, Slack's control characters, two- and four-byte UTF-8: every kind a cut meets
    message = ("price & vol <bad> für 😀 " * 50_000)[:1_000_000]

    @monitor("pricing")
    def huge_message():
        raise PricingError(message)

    _raise(huge_message)
    slack, pd_raw = _one_each(receiver)
    assert slack_problems(slack) == []
    assert pagerduty_problems(pd_raw) == []

    assert len(pd_raw) <= 512_000
    details = json.loads(pd_raw)["payload"]["custom_details"]
    kept = details["exception_message"]
    assert message.startswith(kept[:kept.index("… [")])  # its start, then what was cut
    assert len(kept[:kept.index("… [")]) + _more_chars(kept) == len(message)
    assert len(details["traceback"]) <= 10_000
    assert "huge_message" in details["traceback"]  # the frames survive the long last line
    summary = json.loads(pd_raw)["payload"]["summary"]
    assert summary.startswith(f"New error: {__name__}.PricingError in "
                              f"{process_name(huge_message)}: price & vol")  # the type fully qualified: exception.type

    shown = texts(slack["blocks"])
    assert "price &amp; vol &lt;bad&gt; für 😀" in shown
    assert re.search(r"more chars\]", shown)
    assert store.calls(huge_message)[0]["status"] == "ERR"
    # The alerts table keeps the summary clipped like PagerDuty's, not the whole message.
    rows = wait_alerts(store.path, lambda r: len(r) == 2)
    for row in rows:
        assert len(row["summary"]) <= 1024 and row["summary"] == summary
        assert row["summary"].endswith("more chars]")


def _exec_defined(name: str):
    namespace: dict = {"__name__": __name__, "PricingError": PricingError}
    exec(f"def {name}():\n    raise PricingError('no quote')\n", namespace)  # noqa: S102
    return namespace[name]


def _long_qualname(name: str):
    def fn():
        raise PricingError("no quote")
    fn.__qualname__ = name
    return fn


@pytest.mark.parametrize("make, name", [
    (_exec_defined, ("価格計算_é_" * 300)[:2000]),                  # an identifier, via exec
    (_long_qualname, ("Desk😀.Книга.価格 " * 200)[:2000]),           # a class path with emoji
], ids=["exec-cjk", "qualname-emoji"])
def test_a_long_non_ascii_process_name_gives_bodies_within_every_limit(
        alerting, receiver, make, name):
    store = alerting()
    fn = monitor("pricing")(make(name))
    _raise(fn)
    slack, pd_raw = _one_each(receiver)
    assert slack_problems(slack) == []
    assert pagerduty_problems(pd_raw) == []
    [row] = store.calls(fn)

    # the link, shortened to fit, still opens this very call
    links = re.findall(r"<(http://ui\.test:8050/[^|>]*)\|", texts(slack["blocks"]))
    assert links
    for link in links + [json.loads(pd_raw)["links"][0]["href"]]:
        query = parse_qs(urlsplit(link).query)
        assert query["span_id"] == [row["span_id"]] and query["trace_id"] == [row["trace_id"]]
    pd = json.loads(pd_raw)
    assert pd["payload"]["component"].startswith(process_name(fn)[:500])
    assert len(pd["dedup_key"]) <= 255
    assert longest_text(slack) <= 3000
