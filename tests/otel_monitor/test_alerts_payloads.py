"""The webhook bodies built straight from an Alert, at and past every limit: what is cut,
how it is marked, and how characters (Slack, PagerDuty's texts) and bytes (PagerDuty's
body) are counted."""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from otel_monitor.alerts.model import (EXCEPTION, RESOLVE, TRIGGER, Alert, clip, dedup_key,
                                       shorter_link, traceback_excerpt, ui_link)
from otel_monitor.alerts.payloads import pagerduty_body, slack_body
from webhook_limits import (longest_text, pagerduty_problems, sent_bytes, slack_problems,
                            url_problems)

EMOJI = "\N{GRINNING FACE}"
SPAN, TRACE = "00f067aa0ba902b7", "4bf92f3577b34da6a3ce929d0e0e4736"
UI = "http://ui.test:8050"


def alert(**changes) -> Alert:
    process = changes.pop("process", "desk.pricing.black_scholes")
    fields = dict(rule=EXCEPTION, action=TRIGGER, key=dedup_key("exception", process, "E"),
                  severity="error", title="ValueError in pricing.black_scholes",
                  summary=f"ValueError in {process}: bad vol", time_ns=1_700_000_000_000_000_000,
                  process=process, process_group="pricing", exception_type="ValueError",
                  exception_message="bad vol", traceback="Traceback (most recent call last):\n"
                  "  File \"p.py\", line 1, in f\nValueError: bad vol", span_id=SPAN,
                  trace_id=TRACE, link=ui_link(UI, process=process, span_id=SPAN, trace_id=TRACE),
                  service="svc", host="host", pid=42)
    fields.update(changes)
    return Alert(**fields)


def both_within_limits(a: Alert) -> tuple[dict, dict]:
    slack, pd = slack_body(a), pagerduty_body(a, "R" * 32)
    assert slack_problems(slack) == []
    assert pagerduty_problems(sent_bytes(pd)) == []
    return slack, pd


def field(slack: dict, name: str) -> str:
    for block in slack["blocks"]:
        for item in block.get("fields", []):
            if item["text"].startswith(f"*{name}*\n"):
                return item["text"][len(name) + 3:]
    raise AssertionError(f"no field {name}")


def more_chars(text: str) -> int:
    return int(re.fullmatch(r"(?s).*… \[([\d,]+) more chars\]", text).group(1).replace(",", ""))


# -- clip: the one way a text is cut -----------------------------------------------------------

def test_clip_keeps_a_text_at_its_limit_and_marks_what_it_cuts_past_it():
    assert clip("", 10) == ""
    assert clip("x" * 150, 150) == "x" * 150
    cut = clip("x" * 151, 150)
    assert len(cut) == 150 and cut.startswith("x" * 100)
    assert len(cut) - len(f"… [{more_chars(cut)} more chars]") + more_chars(cut) == 151
    million = clip("y" * 1_000_000, 3000)
    assert len(million) == 3000 and million.endswith("… [997,022 more chars]")


def test_clip_counts_characters_so_an_emoji_is_one():
    assert clip(EMOJI * 150, 150) == EMOJI * 150
    cut = clip(EMOJI * 151, 150)
    assert len(cut) == 150 and cut.startswith(EMOJI * 100)


def test_clip_cuts_before_escaping_so_no_escape_is_cut_in_two():
    cut = clip("&" * 3000, 2000, lambda text: text.replace("&", "&amp;"))
    assert len(cut) <= 2000
    kept = cut[:cut.index("…")]
    assert re.fullmatch(r"(&amp;)+", kept)
    assert len(kept) // 5 + more_chars(cut) == 3000  # N counts the text's characters


# -- Slack -------------------------------------------------------------------------------------

def test_an_empty_message_shows_the_exception_type_alone():
    slack, pd = both_within_limits(alert(exception_message=""))
    assert field(slack, "Exception") == "`ValueError`"
    assert pd["payload"]["custom_details"]["exception_message"] == ""


def test_a_header_at_150_characters_is_whole_and_past_it_is_cut_and_marked():
    slack, _ = both_within_limits(alert(title="h" * 150))
    assert slack["blocks"][0]["text"]["text"] == "h" * 150
    slack, _ = both_within_limits(alert(title=EMOJI * 150))  # 150 characters, 300 UTF-16
    assert slack["blocks"][0]["text"]["text"] == EMOJI * 150
    slack, _ = both_within_limits(alert(title="h" * 151))
    header = slack["blocks"][0]["text"]["text"]
    assert len(header) == 150 and more_chars(header) > 0


def test_the_text_at_3000_characters_is_whole_and_past_it_is_cut_and_marked():
    icon = ":rotating_light: "
    slack, _ = both_within_limits(alert(summary=EMOJI * (3000 - len(icon))))
    assert slack["text"] == icon + EMOJI * (3000 - len(icon))
    slack, _ = both_within_limits(alert(summary="s" * 3000))
    assert len(slack["text"]) == 3000 and more_chars(slack["text"]) > 0


def test_the_text_is_escaped_like_the_blocks():
    slack, _ = both_within_limits(alert(summary="ValueError in m.<locals>.f: a & b"))
    assert slack["text"] == ":rotating_light: ValueError in m.&lt;locals&gt;.f: a &amp; b"


def test_a_long_message_of_escapes_and_emoji_fills_its_field_to_2000_at_most():
    message = ("<&>" + EMOJI) * 100_000
    slack, _ = both_within_limits(alert(exception_message=message))
    value = field(slack, "Exception")
    assert value.startswith("`ValueError`: &lt;&amp;&gt;" + EMOJI)
    assert len("*Exception*\n" + value) <= 2000 and more_chars(value) > 390_000
    assert longest_text(slack) <= 3000


def test_many_fields_make_sections_of_10_and_at_most_50_blocks():
    slack, _ = both_within_limits(alert(fields={f"F{i}": "v" * 5000 for i in range(25)}))
    sections = [b for b in slack["blocks"] if "fields" in b]
    assert [len(b["fields"]) for b in sections] == [10, 10, 10]  # 25 + 5 of its own
    slack, _ = both_within_limits(alert(fields={f"F{i}": i for i in range(1000)}))
    assert len(slack["blocks"]) == 50
    # 1,000 fields and 5 of its own, 469 shown: the last field says how many are not
    assert slack["blocks"][-3]["fields"][-1]["text"] == "*…*\n[536 more fields]"


def test_a_link_too_long_for_its_element_drops_the_process_and_keeps_the_call():
    process = "Книга." * 500  # 3,000 characters, 36,000 once percent-encoded
    slack, pd = both_within_limits(alert(process=process))
    [context] = [b for b in slack["blocks"] if b["type"] == "context"]
    text = context["elements"][0]["text"]
    link = re.fullmatch(r"<([^|]+)\|Open this call in otel-monitor> · span `(\w+)`", text)
    assert link and link.group(2) == SPAN
    for url in (link.group(1), pd["links"][0]["href"], pd["client_url"]):
        assert parse_qs(urlsplit(url).query) == {"span_id": [SPAN], "trace_id": [TRACE]}


def test_a_link_that_fits_is_left_whole():
    a = alert()
    slack, pd = both_within_limits(a)
    assert f"<{a.link}|Open this call in otel-monitor> · span `{SPAN}`" in json.dumps(
        slack, ensure_ascii=False)
    assert pd["links"][0]["href"] == pd["client_url"] == a.link


def test_an_unusable_ui_address_leaves_the_link_out_and_the_span_in():
    slack, pd = both_within_limits(alert(link="http://ui.test/" + "p" * 4000))
    assert slack["blocks"][-1]["elements"][0]["text"] == f"span `{SPAN}`"
    assert "links" not in pd and "client_url" not in pd


# -- PagerDuty ---------------------------------------------------------------------------------

def test_a_summary_at_1024_characters_is_whole_and_past_it_is_cut_and_marked():
    _, pd = both_within_limits(alert(summary=EMOJI * 1024))
    assert pd["payload"]["summary"] == EMOJI * 1024
    _, pd = both_within_limits(alert(summary="s" * 1025))
    summary = pd["payload"]["summary"]
    assert len(summary) == 1024 and summary.startswith("s" * 1000)
    assert summary.endswith(f"… [{more_chars(summary)} more chars]")


def test_a_million_emoji_message_makes_a_body_well_under_512_kb_in_any_encoding():
    _, pd = both_within_limits(alert(exception_message=EMOJI * 1_000_000,
                                     summary="ValueError in f: " + EMOJI * 1_000_000))
    assert len(sent_bytes(pd)) <= 512_000
    assert len(json.dumps(pd).encode()) <= 512_000  # every emoji escaped: 12 bytes
    message = pd["payload"]["custom_details"]["exception_message"]
    assert message.startswith(EMOJI * 8000) and more_chars(message) > 990_000


def test_custom_details_shrink_together_until_the_body_fits():
    fields = {f"F{i}": EMOJI * 100_000 for i in range(100)}  # 100 x 8,192 x 12 bytes
    _, pd = both_within_limits(alert(fields=fields))
    assert len(json.dumps(pd).encode()) <= 512_000
    sizes = {len(v) for k, v in pd["payload"]["custom_details"].items() if k.startswith("f")}
    assert len(sizes) == 1 and sizes.pop() < 512  # all cut alike, each marked
    assert all(more_chars(v) > 0 for k, v in pd["payload"]["custom_details"].items()
               if k.startswith("f"))


def test_source_and_component_are_bounded():
    _, pd = both_within_limits(alert(process="p" * 5000, service="s" * 5000))
    assert len(pd["payload"]["component"]) == len(pd["payload"]["source"]) == 1024


def test_a_resolve_is_the_key_alone():
    _, pd = both_within_limits(alert(action=RESOLVE))
    assert pd == {"routing_key": "R" * 32, "event_action": "resolve",
                  "dedup_key": dedup_key("exception", "desk.pricing.black_scholes", "E")}


# -- the model's bounds ------------------------------------------------------------------------

def test_a_dedup_key_up_to_255_bytes_is_whole_and_a_longer_one_keeps_a_digest():
    fits = "a" * (255 - len("otel-monitor/"))
    assert dedup_key(fits) == "otel-monitor/" + fits
    long_a, long_b = dedup_key(fits + "/x"), dedup_key(fits + "/y")
    assert long_a != long_b
    assert len(long_a.encode()) <= 255 and long_a.startswith("otel-monitor/aaa")
    assert re.search(r"…#[0-9a-f]{16}$", long_a)
    cjk = dedup_key("exception", "価" * 2000, "ValueError")  # three bytes each
    assert len(cjk.encode()) <= 255 and "\ufffd" not in cjk
    assert dedup_key("exception", "価" * 2000, "KeyError") != cjk


def test_shorter_link_drops_whole_parameters_longest_first():
    link = ui_link(UI, process="é" * 1000, span_id=SPAN, trace_id=TRACE)
    assert shorter_link(link, len(link)) == link
    short = shorter_link(link, 200)
    assert short == f"{UI}/?span_id={SPAN}&trace_id={TRACE}"
    assert shorter_link(link, 60) == f"{UI}/?span_id={SPAN}"
    assert shorter_link(link, len(UI) + 1) == f"{UI}/"
    assert shorter_link(link, 5) is None
    for limit in range(len(UI) + 1, len(link) + 1, 97):
        cut = shorter_link(link, limit)
        assert len(cut) <= limit and url_problems(cut, "link") == []


def test_a_traceback_with_a_huge_last_line_keeps_its_frames():
    frames = "".join(f'  File "m.py", line {i}, in f{i}\n    f{i + 1}()\n' for i in range(5))
    text = f"Traceback (most recent call last):\n{frames}ValueError: {'v' * 1_000_000}\n"
    excerpt = traceback_excerpt(text)
    assert len(excerpt) <= 2500
    assert excerpt.startswith("Traceback (most recent call last):\n  File \"m.py\", line 0")
    last = excerpt.splitlines()[-1]
    assert last.startswith("ValueError: vvv") and more_chars(last) > 999_000
    short = "Traceback (most recent call last):\nValueError: x\n"
    assert traceback_excerpt(short) == short.rstrip("\n")


@pytest.mark.parametrize("lines", [300, 5000])
def test_a_long_traceback_keeps_its_head_and_innermost_frames(lines):
    text = "Traceback (most recent call last):\n" + "".join(
        f"  frame {i}\n" for i in range(lines)) + "ValueError: x"
    excerpt = traceback_excerpt(text)
    assert len(excerpt) <= 2500
    assert excerpt.splitlines()[:2] == ["Traceback (most recent call last):", "  …"]
    assert excerpt.endswith(f"  frame {lines - 1}\nValueError: x")
