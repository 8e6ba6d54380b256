"""Browser fixtures: Debian's Chromium driven by pytest-playwright (no `playwright
install`), the UI served by a real ``otel-monitor serve`` process over a store that the
real decorator filled in processes of its own (tests/dash_ui/e2e/e2e_workload.py).

Imported by name into each test module rather than kept in a conftest.py: the tests
beside this folder do ``from conftest import ...``, which a second conftest module
(imported as ``conftest`` too) would shadow."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import SERVICES, serve, workload
from playwright.sync_api import Browser, Playwright, sync_playwright

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed (scripts/install-system-deps.sh)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking"]}


# Playwright per module, not pytest-playwright's per session: its sync API keeps an
# event loop running in the main thread until stopped, and the asyncio tests that run
# after these modules then fail ("cannot be called from a running event loop").
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright, browser_type_launch_args) -> Iterator[Browser]:
    """One Chromium for the module (pytest-playwright's ``page`` takes a context of it)."""
    chromium = playwright.chromium.launch(**browser_type_launch_args)
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def browser_context_args() -> dict:
    # one size, so the screenshots in docs/ look alike from run to run
    return {"viewport": {"width": 1400, "height": 900}}


@pytest.fixture(scope="session")
def e2e_store(tmp_path_factory) -> Path:
    """Two services, one after the other: pricing (with a fresh feed) and risk (failing
    calls, a <script> value, a feed ticked once and stale soon after)."""
    db = tmp_path_factory.mktemp("e2e") / "e2e.db"
    first = workload(db, "pricing", service=SERVICES["pricing"])
    first.wait(60)  # creates the store; the second one then opens it
    second = workload(db, "risk", service=SERVICES["risk"])
    assert first.returncode == 0 and second.wait(60) == 0
    return db


@pytest.fixture(scope="module")
def ui_url(e2e_store) -> Iterator[str]:
    with serve(e2e_store) as url:
        yield url
