"""What the page asks the server for on load, in real Chromium: the first render waits on
nothing it does not show. The calls view's grid (hidden behind the rows/calls toggle) is
not even created until that view is shown, then shows the store's newest calls; the view
kept in the browser mounts it on load; the tab link, the drill-down and the hidden tabs
make no request on a load that does not ask for them."""
from __future__ import annotations

import json

import pytest
from e2e_fixtures import (  # noqa: F401  (fixtures, used by name)
    browser,
    browser_context_args,
    browser_type_launch_args,
    e2e_store,
    playwright,
    ui_url,
)
from page_reading import open_ui
from playwright.sync_api import Page

pytestmark = pytest.mark.timeout(120)

CALL_ROWS = "#om-calls .ag-center-cols-container .ag-row"
TICK = "om-tick.n_intervals"


class Requests:
    """The Dash callback requests the page sends: (outputs, what fired them)."""

    def __init__(self, page: Page) -> None:
        self.sent: list[tuple[str, list[str]]] = []
        page.on("request", self._seen)

    def _seen(self, request) -> None:
        if "/_dash-update-component" not in request.url:
            return
        body = json.loads(request.post_data or "{}")
        self.sent.append((body.get("output", ""), body.get("changedPropIds") or []))

    def naming(self, part: str, *, ticks: bool = True) -> list[str]:
        return [out for out, fired in self.sent
                if part in out and (ticks or TICK not in fired)]

    def wait_for_tick(self, page: Page) -> None:
        """Until the page's first tick has sent its requests: the load's are sent by
        then (they are what the first render waits on)."""
        for _ in range(300):
            if any(TICK in fired for _, fired in self.sent):
                return
            page.wait_for_timeout(100)
        raise AssertionError("no tick of the page within 30 s")


def _show_calls(page: Page) -> list[dict]:
    page.locator("#om-view").get_by_text("calls (one per call)").click()
    return _calls_shown(page)


def _calls_shown(page: Page) -> list[dict]:
    page.wait_for_function("""(sel) => { const rs = document.querySelectorAll(sel);
        return rs.length > 0 && [...rs].every(r => {
            const c = r.querySelector('[col-id="status"]'); return c && c.innerText; }); }""",
                           arg=CALL_ROWS, timeout=15_000)
    return page.evaluate("""(sel) => [...document.querySelectorAll(sel)].map(r => {
        const n = dash_ag_grid.getApi('om-calls').getRowNode(r.getAttribute('row-id'));
        return {index: n.rowIndex, span_id: n.data.span_id}; })
        .sort((a, b) => a.index - b.index)""", CALL_ROWS)


def _newest_first(e2e_store) -> list[tuple[str, int]]:  # noqa: F811
    from exporters.database import Database

    db = Database(e2e_store, readonly=True)
    try:
        return [(r[0], r[1]) for r in db.execute(
            "SELECT printf('%016x', span_id), start_ns FROM spans ORDER BY start_ns DESC")]
    finally:
        db.close()


@pytest.fixture
def page(browser, browser_context_args) -> Page:  # noqa: F811
    context = browser.new_context(**browser_context_args)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, errors


def test_the_hidden_calls_grid_asks_for_nothing_until_its_view_is_shown(
        page, ui_url, e2e_store):  # noqa: F811
    requests = Requests(page)
    open_ui(page, ui_url)          # the trace table's first rows
    requests.wait_for_tick(page)
    assert page.locator("#om-calls").count() == 0           # not created
    assert page.locator("#om-errors-grid").count() == 0     # nor the Errors tab's grid
    assert requests.naming("om-calls") == []                # nor asked for a block
    # nor, on this load (its URL names no call, no tab), the drill-down, the tab link or
    # the hidden tabs (their tick requests aside)
    for part in ("om-modal.is_open", "om-tabs.active_tab", "om-errors-rows.data",
                 "om-slos-body.children", "om-errors-selected.children"):
        assert requests.naming(part, ticks=False) == [], part
    shown = _show_calls(page)
    assert len(requests.naming("om-calls.getRowsResponse")) >= 1
    stored = _newest_first(e2e_store)
    start_of = dict(stored)
    assert len({r["span_id"] for r in shown}) == len(shown)   # one row per call
    assert all(r["span_id"] in start_of for r in shown)
    # newest first (by the store's start times: the grid's are JS numbers, not exact),
    # from the store's newest call on
    starts = [start_of[r["span_id"]] for r in shown]
    assert starts == sorted(starts, reverse=True)
    assert shown[0]["index"] == 0 and starts[0] == stored[0][1]
    assert not page.locator("#om-grid").is_visible()


def test_the_calls_view_kept_in_the_browser_mounts_its_grid_on_load(
        page, ui_url, e2e_store):  # noqa: F811
    open_ui(page, ui_url)
    first = _show_calls(page)
    page.reload()                  # the view is kept (local storage): calls again
    again = _calls_shown(page)
    assert [r["span_id"] for r in again] == [r["span_id"] for r in first]
    assert not page.locator("#om-grid").is_visible()
    # back to the rows, then the calls: the same grid, its rows still there
    page.locator("#om-view").get_by_text("rows (one per variable)").click()
    page.locator("#om-grid .ag-center-cols-container .ag-row").first.wait_for()
    assert not page.locator("#om-calls").is_visible()
    assert [r["span_id"] for r in _show_calls(page)] == [r["span_id"] for r in first]
    assert page.locator("#om-calls").count() == 1


def test_the_first_renders_chunks_come_with_the_bundles_not_after_the_layout(
        page, ui_url):  # noqa: F811
    """The grid's, the dropdowns' and the date picker's lazily loaded chunks are loaded
    as scripts of the page itself (dash_ui.app FIRST_RENDER_CHUNKS), once each, before the
    layout is asked for: when React first renders those components there is no chunk
    left to fetch and run among the callbacks' answers."""
    open_ui(page, ui_url)
    entries = page.evaluate("""() => performance.getEntriesByType('resource').map(
        e => ({name: e.name.split('?')[0], type: e.initiatorType, start: e.startTime}))""")
    layout = [e["start"] for e in entries if e["name"].endswith("/_dash-layout")]
    assert len(layout) == 1
    for chunk in ("async-community.js", "async-dropdown.js", "async-datepicker.js"):
        loaded = [e for e in entries if e["name"].endswith("/" + chunk)]
        assert len(loaded) == 1, (chunk, loaded)
        assert loaded[0]["type"] == "script" and loaded[0]["start"] < layout[0], loaded
