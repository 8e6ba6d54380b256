"""From an alert to a running reproduction, in real Chromium: a script (repro_app.py,
run as ``python repro_app.py``) fails once per kind of function with a PagerDuty webhook
set to a loopback receiver; the link in each captured body opens the UI with that call's
drill-down and its trace view already open (0 clicks); the Reproduce snippet read from
the page (what the copy button copies) re-raises the recorded exception type and message,
and the pytest file downloaded from the page passes. A method of an instance that cannot
be rebuilt stops naming SELF. Filter changes write the URL; back restores them."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_fixtures import (  # noqa: F401  (fixtures, used by name)
    browser,
    browser_type_launch_args,
    playwright,
)
from e2e_support import ROOT, serve, workload_env
from plain_pytest import run_pytest
from playwright.sync_api import Page, expect

from exporters import SpanStore

pytestmark = pytest.mark.timeout(180)

REPRO = ROOT / "tests" / "dash_ui" / "repro"
RECEIVER = ROOT / "tests" / "otel_monitor" / "webhook_receiver.py"

# kind -> process of its failing call in repro_app.py
KINDS = {"module function": "repro_targets.black_scholes",
         "script function": "__main__.script_price",
         "dataclass method": "repro_targets.MarketDataClient.fetch_quote",
         "classmethod": "repro_targets.MarketDataClient.for_venue",
         "async def": "repro_targets.fetch_curve",
         "generator": "repro_targets.ticks",
         "Dash callback": "repro_targets.on_qty"}
OPAQUE_SELF = "repro_targets.Session.submit"


def _receiver_module():
    spec = importlib.util.spec_from_file_location("webhook_receiver", RECEIVER)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def repro_env() -> dict[str, str]:
    env = workload_env()
    env["PYTHONPATH"] = os.pathsep.join([str(REPRO), env["PYTHONPATH"]])
    return env


@pytest.fixture(scope="module")
def alert_links(tmp_path_factory) -> Iterator[tuple[str, dict[str, str]]]:
    """(the UI's URL, process -> the link of its alert, as the webhook body had it)."""
    db = tmp_path_factory.mktemp("repro") / "repro.db"
    SpanStore(db).close()
    receiver = _receiver_module().start_receiver()
    try:
        with serve(db) as url:
            subprocess.run([sys.executable, "repro_app.py"], cwd=REPRO, check=True,
                           timeout=120, env={
                               **repro_env(), "OTEL_MONITOR_DB": str(db),
                               "OTEL_MONITOR_UI_URL": url,
                               "OTEL_MONITOR_WEBHOOKS":
                                   f"pagerduty+{receiver.url('/pd')}#routing_key=r0"})
            posts = receiver.wait(lambda ps: len(ps) >= len(KINDS) + 1, timeout=30)
            links = {p.json["payload"]["component"]: p.json["links"][0]["href"]
                     for p in posts}
            yield url, links
    finally:
        receiver.close()


@pytest.fixture(scope="module")
def browser_context_args() -> dict:
    return {"viewport": {"width": 1400, "height": 900}, "accept_downloads": True,
            "permissions": ["clipboard-read", "clipboard-write"]}


def open_link(page: Page, link: str, process: str) -> None:
    """Follow the alert's link; with no click, the call's drill-down and trace are open."""
    page.goto(link)
    expect(page.locator("#om-modal-title")).to_have_text(process, timeout=30_000)
    selected = page.locator("#om-trace .ag-row", has_text=process.rsplit(".", 1)[-1])
    expect(selected.first).to_be_visible()
    expect(page.locator("#om-reproduce")).to_contain_text(process)


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def run_python(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(path)], cwd=path.parent, env=repro_env(),
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kind", KINDS)
def test_the_alerts_link_opens_a_reproduction_that_re_raises(page: Page, alert_links,
                                                               tmp_path, kind):
    _, links = alert_links
    process = KINDS[kind]
    assert "span_id=" in links[process] and "trace_id=" in links[process]
    open_link(page, links[process], process)
    recorded = last_line(page.locator("#om-traceback").inner_text())
    snippet = tmp_path / "snippet.py"
    snippet.write_text(page.locator("#om-reproduce").inner_text())
    done = run_python(snippet)
    got = last_line(done.stderr)
    if process.startswith("__main__."):  # the script's class, loaded under another name
        got = got.replace("_reproduced_repro_app.", "")
    assert done.returncode == 1 and got == recorded, done.stderr

    with page.expect_download() as download:
        page.get_by_role("button", name="Download as a pytest test").click()
    test_file = tmp_path / download.value.suggested_filename
    download.value.save_as(test_file)
    ran = run_pytest(test_file.name, cwd=tmp_path, env=repro_env())
    assert "1 passed" in ran.stdout, ran.stdout[-3000:]


def test_the_copy_button_copies_the_snippet_and_an_opaque_self_stops_it(
        page: Page, alert_links, tmp_path):
    _, links = alert_links
    open_link(page, links[OPAQUE_SELF], OPAQUE_SELF)
    page.locator("#om-copy-reproduce").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.strip() == page.locator("#om-reproduce").inner_text().strip()
    snippet = tmp_path / "snippet.py"
    snippet.write_text(copied)
    done = run_python(snippet)
    assert done.returncode == 1
    assert last_line(done.stderr).startswith(
        "otel_monitor.reproduce.Placeholder: fill in SELF"), done.stderr
    assert "PermissionError" not in done.stderr


def test_filter_changes_write_the_url_and_back_restores_them(page: Page, alert_links):
    url, _ = alert_links
    page.goto(url + "/?process=repro_targets.ticks")
    expect(page.locator("#om-process")).to_contain_text("repro_targets.ticks",
                                                        timeout=30_000)
    page.locator("#om-errors-only").check()
    page.wait_for_url("**errors=1**")
    assert "process=repro_targets.ticks" in page.url
    page.go_back()
    page.wait_for_url(lambda u: "errors=1" not in u)
    expect(page.locator("#om-errors-only")).not_to_be_checked()
    expect(page.locator("#om-process")).to_contain_text("repro_targets.ticks")
