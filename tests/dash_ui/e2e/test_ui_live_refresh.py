"""The table's live refresh (every 5 s) in real Chromium: new calls arrive while the user
is scrolled down and has a row selected; the rows in view stay in view, the selection
stays, and the new rows are there above."""
from __future__ import annotations

import pytest
from e2e_fixtures import (  # noqa: F401  (fixtures, used by name)
    browser,
    browser_context_args,
    browser_type_launch_args,
    playwright,
)
from e2e_support import FAILING_BOOKS, serve, workload
from page_reading import GRID_ROWS, open_ui, rows
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.timeout(120)

GRID = "dash_ag_grid.getApi('om-grid')"
# The rows wholly inside the grid's scrolled viewport, top to bottom.
ROWS_IN_VIEW = """(viewport) => {
    const box = viewport.getBoundingClientRect();
    return [...document.querySelectorAll('%s')]
        .filter(r => { const b = r.getBoundingClientRect();
                       return b.top >= box.top && b.bottom <= box.bottom; })
        .sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top)
        .map(r => r.getAttribute('row-id'));
}""".replace("%s", GRID_ROWS)

FOLLOWED_AND_DRAWN = """(top) => {
    const viewport = document.querySelector('#om-grid .ag-body-viewport');
    if (viewport.scrollTop <= top) return false;
    const box = viewport.getBoundingClientRect();
    const drawn = [...document.querySelectorAll('%s')].filter(r => r.getAttribute('row-id'))
        .map(r => r.getBoundingClientRect());
    return drawn.some(b => b.top <= box.top) && drawn.some(b => b.bottom >= box.bottom);
}""".replace("%s", GRID_ROWS)


def test_new_calls_arrive_without_moving_the_rows_in_view(page: Page, tmp_path):
    db = tmp_path / "live.db"
    assert workload(db, "pricing").wait(60) == 0
    with serve(db) as url:
        open_ui(page, url)
        viewport = page.locator("#om-grid .ag-body-viewport")
        viewport.evaluate("e => { e.scrollTop = 420; }")     # ten rows down
        page.wait_for_function(f"() => {GRID}.getDisplayedRowAtIndex(10).data")
        top = viewport.evaluate("e => e.scrollTop")
        in_view = viewport.evaluate(ROWS_IN_VIEW)
        chosen = in_view[2]
        page.locator(f'{GRID_ROWS}[row-id="{chosen}"] [col-id="Data"]').click()
        page.keyboard.press("Escape")
        before = page.evaluate(f"() => {GRID}.getDisplayedRowCount()")

        assert workload(db, "risk").wait(60) == 0          # new calls, newest first
        expect(page.locator("#om-badge-errors")).to_have_text(
            f"errors (5 min): {len(FAILING_BOOKS)}", timeout=15_000)  # the tick came
        page.wait_for_function(f"(n) => {GRID}.getDisplayedRowCount() > n", arg=before)
        page.wait_for_function(f"(top) => {GRID}.getRowNode('{chosen}').rowTop > top",
                               arg=viewport.evaluate("e => e.scrollTop"))
        # the table has followed the rows down (omLiveRefresh) and the grid has drawn rows
        # over the whole viewport at that place
        page.wait_for_function(FOLLOWED_AND_DRAWN, arg=top)
        assert viewport.evaluate(ROWS_IN_VIEW) == in_view
        expect(page.locator(f'{GRID_ROWS}[row-id="{chosen}"]')).to_have_attribute(
            "aria-selected", "true")

        viewport.evaluate("e => { e.scrollTop = 0; }")       # the new rows are above
        page.wait_for_function(f"() => {GRID}.getDisplayedRowAtIndex(0).data")
        newest = rows(page)[0]["cells"]["process"]
        assert newest in {"e2e_workload.check_limit", "e2e_workload.render"}
