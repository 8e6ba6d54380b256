"""The page under trouble, in real Chromium: a process whose export queue overflows turns
the QueueDepth badge red and the page keeps working; a token-protected server refuses
the page without its token."""
from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time

import pytest
from e2e_fixtures import (  # noqa: F401  (fixtures, used by name)
    browser,
    browser_context_args,
    browser_type_launch_args,
    e2e_store,
    playwright,
)
from e2e_support import serve, workload
from page_reading import open_ui, rows
from playwright.sync_api import Page, expect

from dash_ui._theme import TOKENS
from exporters.queries import QUEUE_DEPTH_LEVELS

pytestmark = pytest.mark.timeout(120)

QUEUE_SIZE = 6_000      # e2e_workload's flood queue; above the red level
HEALTH_DUE_S = 1.2      # past the writer's health interval (1 s): it records health next


def health(db) -> dict[int, tuple[int, int]]:
    """pid -> (queue depth, dropped) as each process last recorded them."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
        return {pid: (depth, dropped) for pid, depth, dropped
                in c.execute("SELECT pid, queue_depth, dropped FROM health")}


def tell(proc: subprocess.Popen, line: str) -> None:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


@pytest.fixture(scope="module")
def flooder(tmp_path_factory):
    """A real instrumented process (queue of 6,000) that has written one call and waits
    to flood; the UI already serving its store."""
    db = tmp_path_factory.mktemp("overflow") / "overflow.db"
    proc = workload(db, "flood", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with serve(db) as url:
            yield db, proc, url
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def overflow(db, proc: subprocess.Popen):
    """The process floods calls while another writer holds the store's write lock: its
    queue fills and calls beyond it are dropped. The lock is let go once the writer's
    health is due (so it records the full queue), then taken again, leaving the process
    stuck with a full queue until the block ends."""
    lock = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")           # no other writer gets in now
        tell(proc, "go")
        time.sleep(HEALTH_DUE_S)
        lock.execute("ROLLBACK")
        deadline = time.monotonic() + 30
        while health(db).get(proc.pid, (0, 0))[0] < QUEUE_DEPTH_LEVELS[1]:
            assert time.monotonic() < deadline, f"no deep queue recorded: {health(db)}"
            time.sleep(0.002)
        lock.execute("BEGIN IMMEDIATE")           # stuck again: its health row stays
        tell(proc, "stop")
        assert proc.stdout.readline().startswith("stopped after")
        yield health(db)[proc.pid]
    finally:
        lock.close()


def test_an_overflowing_queue_turns_queuedepth_red_and_the_page_still_works(
        page: Page, flooder):
    db, proc, url = flooder
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_ui(page, url)
    badge = page.locator("#om-badge-QueueDepth")
    expect(badge).to_have_text("QueueDepth: 0")
    expect(badge).to_contain_class("om-level-ok")
    with overflow(db, proc) as (depth, dropped):
        assert QUEUE_DEPTH_LEVELS[1] <= depth <= QUEUE_SIZE and dropped > 0
        # the live refresh (every 5 s) turns it red, in the theme's red
        expect(badge).to_have_text(f"QueueDepth: {depth:,}", timeout=15_000)
        expect(badge).to_contain_class("om-level-red")
        assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == \
            "rgb({}, {}, {})".format(*(int(TOKENS["err"][i:i + 2], 16) for i in (1, 3, 5)))
        # the page loads afresh and answers a filter while the store is locked
        open_ui(page, url)
        expect(badge).to_contain_class("om-level-red")
        assert {r["cells"]["process"] for r in rows(page)} == {"e2e_workload.flood"}
        page.locator("#om-errors-only").check()
        expect(page.locator("#om-grid .ag-overlay")).to_contain_text("No Rows To Show")
    assert not errors, errors


def test_a_token_protected_page_needs_the_token(page: Page, e2e_store):  # noqa: F811
    token = "e2e-token-7f3a"
    with serve(e2e_store, token=token) as url:
        refused = page.goto(url + "/")
        assert refused.status == 401
        assert "access token is required" in page.content()
        assert page.goto(url + "/?token=wrong").status == 401
        open_ui(page, url + "/?token=" + token)     # sets the cookie, then the page loads
        assert page.url == url + "/"                # the token is not left in the address
        assert len(rows(page)) > 0
