"""The SLOs tab in real Chromium, served by a real ``otel-monitor serve`` reading its
``slo_file`` (OTEL_MONITOR_SLO_FILE) over a store whose calls a real recording process
made (errors_workload.py: 5 calls that return, then 5 that fail): the third tab lists
the SLO with the SLI the store gives, and its state badge says ``page``."""
from __future__ import annotations

import subprocess
import sys

import pytest
from e2e_fixtures import (  # noqa: F401  (fixtures, used by name)
    browser,
    browser_type_launch_args,
    playwright,
)
from e2e_support import workload_env
from playwright.sync_api import Page, expect
from served_cli import served_cli

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def browser_context_args() -> dict:
    return {"viewport": {"width": 1400, "height": 900}}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slos")
    db = folder / "slos.db"
    done = subprocess.run(
        [sys.executable, "-c", "import sys, errors_workload; errors_workload.main(sys.argv[1])",
         str(db)], input="ok 5\nlimit 5\n\n", env=workload_env(OTEL_SERVICE_NAME="e2e-slos"),
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    slo_file = folder / "slos.yaml"
    slo_file.write_text("slos:\n  - name: limits-availability\n    service: e2e-slos\n"
                        "    objective: 99.0\n    window: 1h\n")
    with served_cli(db, workload_env(OTEL_MONITOR_SLO_FILE=str(slo_file)),
                    timeout_s=30) as server:
        yield server.url


def test_the_slos_tab_shows_the_slo_file_with_its_state(page: Page, served):
    page.goto(served)
    expect(page.locator("#om-tabs .nav-link.active")).to_have_text("Calls", timeout=30_000)
    expect(page.locator("#om-slos-tab")).to_be_hidden()
    page.get_by_role("tab", name="SLOs").click()
    expect(page.locator("#om-slos-tab")).to_be_visible()
    expect(page.locator("#om-calls-tab")).to_be_hidden()
    row = page.locator('#om-slos-body tr[data-slo="limits-availability"]')
    expect(row).to_have_count(1, timeout=15_000)
    expect(row.locator(".om-slo-sli")).to_have_text("50.000%")   # 5 of 10 calls failed
    expect(row.locator(".om-slo-state")).to_have_text("page")
    expect(row.locator(".om-slo-state")).to_have_attribute("data-state", "page")
    expect(page.locator("#om-slos-note")).to_contain_text("1 SLO(s): 1 paging")
