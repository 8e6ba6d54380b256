"""Rows read from the cold archive (issue 17), in real Chromium: over a range partly
archived and partly hot, the trace table and the calls view show the archived calls with
an "archived" badge beside their status, and the hot ones without."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from archived_calls import BASE_NS, HOUR_NS, build
from e2e_fixtures import (  # noqa: F401  (fixtures, used by name)
    browser,
    browser_context_args,
    browser_type_launch_args,
    playwright,
)
from e2e_support import serve
from page_reading import GRID_ROWS

pytest.importorskip("pyarrow")
pytestmark = pytest.mark.timeout(120)

CALL_ROWS = "#om-calls .ag-center-cols-container .ag-row"

# Each rendered row: its data says archived, and its Status cell shows the badge or not.
BADGES_JS = """([rows, grid]) => [...document.querySelectorAll(rows)].map(r => {
    const n = dash_ag_grid.getApi(grid).getRowNode(r.getAttribute('row-id'));
    const cell = r.querySelector('[col-id="status"]');
    return {span_id: n.data.span_id, archived: !!n.data.archived,
            badge: !!(cell && cell.querySelector('.om-archived')),
            status: cell ? cell.innerText : null}; })"""


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns // 10**9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shown(page, rows: str, grid: str) -> list[dict]:
    page.wait_for_function(
        """(sel) => { const rs = document.querySelectorAll(sel);
            return rs.length > 0 && [...rs].every(r => {
                const c = r.querySelector('[col-id="status"]'); return c && c.innerText; }); }""",
        arg=rows, timeout=15_000)
    return page.evaluate(BADGES_JS, [rows, grid])


def test_archived_rows_and_calls_carry_the_badge(browser, browser_context_args,  # noqa: F811
                                                 tmp_path_factory):
    db = build(str(tmp_path_factory.mktemp("archived_e2e") / "store.db"))
    with serve(db) as url:
        context = browser.new_context(**browser_context_args)
        try:
            page = context.new_page()
            page.goto(f"{url}/?from={_iso(BASE_NS)}&to={_iso(BASE_NS + 8 * HOUR_NS)}")
            for rows, grid in ((GRID_ROWS, "om-grid"), (CALL_ROWS, "om-calls")):
                if grid == "om-calls":
                    page.locator("#om-view").get_by_text("calls (one per call)").click()
                shown = _shown(page, rows, grid)
                hot = {"%016x" % i for i in (100, 101, 102)}
                assert {r["span_id"] for r in shown} & hot            # both kinds shown:
                assert any(r["archived"] for r in shown)              # newest (hot) first
                for r in shown:
                    assert r["archived"] == (r["span_id"] not in hot), r
                    assert r["badge"] == r["archived"], r
                    assert r["status"].startswith(("OK", "ERR")), r
        finally:
            context.close()
