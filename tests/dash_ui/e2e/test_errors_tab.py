"""The Errors tab in real Chromium, served by a real ``otel-monitor serve`` over a store a
real recording process fills (errors_workload.py, its alert engine posting to a loopback
webhook receiver): the tab lists the workload's error groups with their sparklines; a
group resolved in the browser is resolved in SQLite; the same failure again makes it open
again and the recording process posts a "Regression" alert (the server, whose
``on_resolved`` hook the tab's Resolve calls, posted "Resolved: <title>"); an alert's link
(``?error=&span_id=&trace_id=``) and a bare ``/?error=<fp>`` open the tab on the group;
a title click opens the group's latest call, whose drill-down links back to the group;
times follow the page's UTC switch; "until tomorrow 07:00" is the browser's. Writes
errors.png under e2e_support.SCREENSHOTS."""
from __future__ import annotations

import html
import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from e2e_fixtures import (  # noqa: F401  (fixtures, used by name)
    browser,
    browser_type_launch_args,
    playwright,
)
from e2e_support import ROOT, SCREENSHOTS, workload_env
from playwright.sync_api import Page, expect
from served_cli import served_cli

from exporters import SpanStore
from exporters.queries import TraceQueries

pytestmark = pytest.mark.timeout(180)

RECEIVER = ROOT / "tests" / "otel_monitor" / "webhook_receiver.py"
LIMIT = "errors_workload.check_limit"
ORDER = "errors_workload.route_order"
ROWS = "#om-errors-grid .ag-center-cols-container .ag-row"
SELECTED = re.compile(r"\bag-row-selected\b")


def _receiver_module():
    spec = importlib.util.spec_from_file_location("webhook_receiver", RECEIVER)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Served:
    url: str
    db: Path
    receiver: object
    workload: subprocess.Popen

    def tell(self, line: str) -> None:
        """A command to the recording process; returns once its calls are in the store."""
        self.workload.stdin.write(line + "\n")
        self.workload.stdin.flush()
        assert self.workload.stdout.readline().strip() == "done"

    def groups(self) -> dict[str, dict]:
        """The store's groups (any status) by process, read from SQLite."""
        queries = TraceQueries(self.db)
        return {g["process"]: g for g in queries.error_groups(limit=50)["groups"]}

    def alerts(self, word: str, path: str = "/slack") -> list[dict]:
        """The Slack bodies posted that say ``word`` ("New error", "Regression"): by the
        recording process (``/slack``), or by the server (``/serve-slack``)."""
        return [p.json for p in self.receiver.to(path) if says(p.json, word)]


def says(body: dict, word: str) -> bool:
    """Whether a Slack body's text (after its icon) starts with ``word``."""
    return body.get("text", "").split(" ", 1)[-1].startswith(word + ":")


def link_of(body: dict) -> str:
    """The UI link of a Slack body (its context block's ``<url|label>``)."""
    return re.search(r"<(http[^|>]+)\|", json.dumps(body)).group(1)


ZONE = "Asia/Kolkata"  # the browser's zone: +05:30, never the machine's UTC


@pytest.fixture(scope="module")
def browser_context_args() -> dict:
    return {"viewport": {"width": 1400, "height": 900}, "timezone_id": ZONE}


def clock(ns: int, zone) -> str:
    """The trace table's clock (HH:MM:SS.mmm) of ``ns`` in ``zone``."""
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    moment = (epoch + timedelta(milliseconds=ns // 1_000_000)).astimezone(zone)
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("errors") / "errors.db"
    SpanStore(db).close()
    receiver = _receiver_module().start_receiver()
    try:
        # the server posts too: resolving a group tells Slack (its on_resolved hook)
        with served_cli(db, workload_env(OTEL_MONITOR_WEBHOOKS=receiver.url("/serve-slack")),
                        timeout_s=30) as server:
            url = server.url
            proc = subprocess.Popen(
                [sys.executable, "-c", "import sys, errors_workload; "
                 "errors_workload.main(sys.argv[1])", str(db)],
                env=workload_env(OTEL_SERVICE_NAME="e2e-errors", OTEL_MONITOR_UI_URL=url,
                                 OTEL_MONITOR_WEBHOOKS=receiver.url("/slack"),
                                 OTEL_MONITOR_ALERT_GROUP_WINDOW_S="1"),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            it = Served(url, db, receiver, proc)
            try:
                it.tell("ok 5")
                it.tell("limit 5")
                it.tell("order 3")
                # one "New error" alert a group, from the recording process
                receiver.wait(lambda ps: len([p for p in ps
                                              if says(p.json, "New error")]) >= 2,
                              timeout=30, path="/slack")
                yield it
            finally:
                proc.stdin.close()
                proc.wait(30)
    finally:
        receiver.close()


def row(page: Page, group: dict):
    return page.locator(f'{ROWS}[row-id="{group["fingerprint"]}"]')


def open_errors_tab(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#om-tabs .nav-link.active")).to_have_text("Calls", timeout=30_000)
    expect(page.locator("#om-errors-tab")).to_be_hidden()
    page.get_by_role("tab", name="Errors").click()
    expect(page.locator("#om-errors-tab")).to_be_visible()
    expect(page.locator("#om-calls-tab")).to_be_hidden()


def test_the_errors_tab_lists_the_groups_of_a_real_workload(page: Page, served):
    groups = served.groups()
    assert {p: (g["count"], g["status"]) for p, g in groups.items()} == \
        {LIMIT: (5, "open"), ORDER: (3, "open")}
    open_errors_tab(page, served.url)
    expect(page.locator(ROWS)).to_have_count(2, timeout=15_000)
    limit = row(page, groups[LIMIT])
    expect(limit.locator('[col-id="title"]')).to_have_text(groups[LIMIT]["title"])
    expect(limit.locator('[col-id="process"]')).to_have_text("check_limit")
    expect(limit.locator('[col-id="count"]')).to_have_text("5")
    expect(limit.locator('[col-id="count_last_hour"]')).to_have_text("5")
    expect(limit.locator('[col-id="status"]')).to_have_text("open")
    expect(limit.locator('[col-id="spark"] svg.om-spark polyline')).to_have_count(1)
    assert "5 in the last 6 h" in limit.locator('[col-id="spark"] svg title').text_content()
    # first/last seen: the trace table's clock (HH:MM:SS.mmm), in the browser's zone
    expect(limit.locator('[col-id="last_seen"]')).to_have_text(
        clock(groups[LIMIT]["last_seen_ns"], ZoneInfo(ZONE)))
    expect(limit.locator('[col-id="first_seen"]')).to_have_text(
        clock(groups[LIMIT]["first_seen_ns"], ZoneInfo(ZONE)))
    expect(row(page, groups[ORDER]).locator('[col-id="count"]')).to_have_text("3")
    expect(page.locator("#om-errors-note")).to_have_text("2 error groups")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "errors.png"))


def test_resolving_in_the_browser_then_the_same_failure_reopens_it_with_a_regression_alert(
        page: Page, served):
    group = served.groups()[LIMIT]
    open_errors_tab(page, served.url)
    row(page, group).locator('[col-id="count"]').click()  # selects; only the title opens
    expect(page.locator("#om-errors-selected")).to_have_text(f"selected: {group['title']}")
    page.get_by_role("button", name="Resolve").click()
    expect(page.locator("#om-errors-action-note")).to_have_text(f"{group['title']}: resolved")
    assert served.groups()[LIMIT]["status"] == "resolved"   # in SQLite
    expect(row(page, group)).to_have_count(0)  # the open groups only, by default
    # the server's on_resolved hook: Slack is told (and PagerDuty would be: resolve)
    served.receiver.wait(lambda ps: any(says(p.json, "Resolved") for p in ps), timeout=30,
                         path="/serve-slack")
    resolved = served.alerts("Resolved", "/serve-slack")
    assert len(resolved) == 1  # Slack's text escapes <, > and &
    assert html.unescape(resolved[0]["text"]).split(" ", 1)[1] \
        .startswith(f"Resolved: {group['title']} in {LIMIT}")
    assert served.alerts("Regression") == []

    served.tell("limit 1")  # the same failure again
    reopened = served.groups()[LIMIT]
    assert (reopened["status"], reopened["count"]) == ("open", 6)
    posts = served.receiver.wait(lambda ps: any(says(p.json, "Regression") for p in ps),
                                 timeout=30, path="/slack")
    regression = [p.json for p in posts if says(p.json, "Regression")]
    assert len(regression) == 1 and LIMIT in regression[0]["text"]
    assert f"error={group['fingerprint']}" in link_of(regression[0])
    # listed again at the page's next tick, open, with its new count
    expect(row(page, group).locator('[col-id="count"]')).to_have_text("6", timeout=20_000)
    expect(row(page, group).locator('[col-id="status"]')).to_have_text("open")


def test_an_alerts_link_and_a_bare_error_link_open_the_tab_on_the_group(page: Page, served):
    group = served.groups()[ORDER]
    fp = group["fingerprint"]
    new = [a for a in served.alerts("New error") if f"error={fp}" in link_of(a)]
    link = link_of(new[0])
    assert f"error={fp}" in link and "span_id=" in link and "trace_id=" in link
    page.goto(link)  # the call's drill-down, over the Errors tab on its group
    expect(page.locator("#om-modal-title")).to_have_text(ORDER, timeout=30_000)
    expect(page.locator("#om-tabs .nav-link.active")).to_have_text("Errors")
    expect(row(page, group)).to_have_class(SELECTED, timeout=15_000)

    page.goto(f"{served.url}/?error={fp}")
    expect(page.locator("#om-tabs .nav-link.active")).to_have_text("Errors", timeout=30_000)
    expect(page.locator("#om-errors-tab")).to_be_visible()
    expect(row(page, group)).to_have_class(SELECTED, timeout=15_000)
    expect(page.locator("#om-errors-selected")).to_have_text(f"selected: {group['title']}")
    expect(page.locator("#om-modal-title")).to_be_hidden()


def test_a_title_click_opens_the_latest_call_which_links_back_to_its_group(page: Page, served):
    group = served.groups()[ORDER]
    open_errors_tab(page, served.url)
    row(page, group).locator('[col-id="title"]').click()
    expect(page.locator("#om-modal-title")).to_have_text(ORDER, timeout=15_000)
    expect(page.locator("#om-traceback")).to_contain_text("KeyError")
    # and the drill-down links back to the group
    page.locator("#om-call-group-link").click()
    page.wait_for_url(f"**?error={group['fingerprint']}")
    expect(page.locator("#om-tabs .nav-link.active")).to_have_text("Errors", timeout=30_000)
    expect(row(page, group)).to_have_class(SELECTED, timeout=15_000)
    expect(page.locator("#om-modal-title")).to_be_hidden()


def test_times_follow_the_utc_switch_and_tomorrow_0700_is_the_browsers(page: Page, served):
    group = served.groups()[ORDER]
    open_errors_tab(page, served.url)
    seen = row(page, group).locator('[col-id="last_seen"]')
    expect(seen).to_have_text(clock(group["last_seen_ns"], ZoneInfo(ZONE)))
    page.locator("#om-utc").check()  # the trace table's switch, beside the tabs
    expect(seen).to_have_text(clock(group["last_seen_ns"], timezone.utc))
    page.get_by_role("tab", name="Calls").click()
    expect(page.locator("#om-utc")).to_be_checked()  # one switch for both tabs
    page.get_by_role("tab", name="Errors").click()
    page.locator("#om-utc").uncheck()  # (kept in the browser: put back)
    expect(seen).to_have_text(clock(group["last_seen_ns"], ZoneInfo(ZONE)))

    row(page, group).locator('[col-id="count"]').click()
    expect(page.locator("#om-errors-selected")).to_have_text(f"selected: {group['title']}")
    before = datetime.now(ZoneInfo(ZONE))
    page.get_by_role("button", name="Snooze until tomorrow 07:00").click()
    expect(page.locator("#om-errors-action-note")).to_contain_text("snoozed until")
    stored = served.groups()[ORDER]
    until = datetime.fromtimestamp(stored["snooze_until_ns"] / 1e9, ZoneInfo(ZONE))
    assert stored["status"] == "snoozed"
    assert (until.hour, until.minute) == (7, 0)  # 07:00 in the browser's zone
    assert until.date() in {before.date() + timedelta(days=1),
                            datetime.now(ZoneInfo(ZONE)).date() + timedelta(days=1)}
    expect(row(page, group)).to_have_count(0)  # snoozed: not among the open groups
