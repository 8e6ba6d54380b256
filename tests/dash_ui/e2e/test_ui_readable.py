"""The trace table read at a glance, in real Chromium: the Exception cell's
``Type: message``, the Process cell's short name (the dotted one on hover), the
Timestamp's clock time in the browser's zone or UTC, and column widths kept across a
reload."""
from __future__ import annotations

import os
import re

import pytest
from e2e_fixtures import (  # noqa: F401  (fixtures, used by name)
    browser,
    browser_context_args,
    browser_type_launch_args,
    e2e_store,
    playwright,
    ui_url,
)
from page_reading import GRID_ROWS, cell_of, open_ui, wait_rows
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.timeout(120)

CHECK_LIMIT = "e2e_workload.check_limit"
ZONE = "Asia/Kolkata"  # UTC+05:30: local clock text differs from UTC's


@pytest.fixture
def ui(browser, browser_context_args, ui_url) -> Page:  # noqa: F811
    context = browser.new_context(**browser_context_args, timezone_id=ZONE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_ui(page, ui_url)
    yield page
    context.close()
    assert not errors, errors


def _cells(page: Page, row_selector: str) -> dict:
    return page.evaluate("""(sel) => { const r = document.querySelector(sel); const out = {};
        r.querySelectorAll('.ag-cell').forEach(c => { out[c.getAttribute('col-id')] = {
            text: c.innerText}; });
        return out; }""", row_selector)


def test_an_err_row_reads_type_message_short_process_and_clock_time(ui):
    ui.locator("#om-errors-only").check()
    shown = wait_rows(ui, cell_of("status", "t === 'ERR'"))
    row = f'{GRID_ROWS}[row-id="{shown[0]["rowId"]}"]'
    cells = _cells(ui, row)
    assert cells["Exception"]["text"].startswith("ValueError: negative limit for ")
    assert "Traceback" not in cells["Exception"]["text"]
    # the function's name; the dotted name on hover
    assert cells["process"]["text"] == "check_limit"
    ui.locator(f'{row} [col-id="process"]').hover()
    tip = ui.locator(".ag-tooltip")
    tip.wait_for(timeout=5_000)
    assert tip.inner_text() == CHECK_LIMIT
    ui.mouse.move(0, 0)
    clock = cells["timestamp"]["text"]
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", clock)
    # local (UTC+05:30) -> UTC: the clock text becomes the ISO value's
    iso = ui.evaluate("""(sel) => { const id = document.querySelector(sel).getAttribute('row-id');
        return dash_ag_grid.getApi('om-grid').getRowNode(id).data.Timestamp; }""", row)
    assert clock != iso[11:23]
    ui.locator("#om-utc").check()
    ui.wait_for_function(
        "([sel, want]) => document.querySelector(sel + ' [col-id=\"timestamp\"]').innerText === want",
        arg=[row, iso[11:23]], timeout=10_000)


def test_column_widths_are_kept_across_a_reload(ui, ui_url):
    header = ui.locator('#om-grid .ag-header-cell[col-id="Data"]')
    before = header.bounding_box()["width"]
    handle = header.locator(".ag-header-cell-resize")
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    ui.mouse.move(x, y)
    ui.mouse.down()
    ui.mouse.move(x + 80, y, steps=8)
    ui.mouse.up()
    ui.wait_for_function("() => { const s = JSON.parse(localStorage.getItem('om-grid-columns')"
                         " || 'null'); return s && s.some(c => c.colId === 'Data' && "
                         f"c.width >= {before + 60}); }}", timeout=10_000)
    open_ui(ui, ui_url)
    ui.wait_for_function(f"""() => document.querySelector(
        '#om-grid .ag-header-cell[col-id="Data"]').getBoundingClientRect().width >= {before + 60}""",
        timeout=10_000)


@pytest.fixture(scope="module")
def aged_url(e2e_store, tmp_path_factory):  # noqa: F811
    """The e2e store with every other call moved 20 minutes into the past, served."""
    import shutil

    from e2e_support import serve

    from exporters.database import Database

    db_path = tmp_path_factory.mktemp("aged") / "aged.db"
    shutil.copy(e2e_store, db_path)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(str(e2e_store) + suffix):
            shutil.copy(str(e2e_store) + suffix, str(db_path) + suffix)
    db = Database(db_path)
    db.execute_write("UPDATE spans SET start_ns = start_ns - ? WHERE id % 2 = 0",
                     [20 * 60 * 10**9])
    db.close()
    with serve(db_path) as url:
        yield url, db_path


def calls_since(db_path, since_ns: int) -> set[str]:
    """The span ids of the calls since ``since_ns`` that make a row (SQLite's answer)."""
    from exporters.database import Database

    db = Database(db_path, readonly=True)
    try:
        return {r[0] for r in db.execute(
            "SELECT printf('%016x', span_id) FROM spans s WHERE start_ns >= ? AND "
            "(status = 'ERR' OR EXISTS (SELECT 1 FROM data_values d WHERE d.span = s.id))",
            [since_ns])}
    finally:
        db.close()


def _grid_shows_exactly(page: Page, want: set[str]) -> None:
    """Wait until the grid holds exactly the calls ``want`` (span ids), all loaded."""
    page.wait_for_function("""(want) => { const api = dash_ag_grid.getApi('om-grid');
        const seen = new Set(); let pending = false;
        api.forEachNode(n => { if (n.data) seen.add(n.data.span_id); else pending = true; });
        return !pending && seen.size === want.length && want.every(s => seen.has(s)); }""",
                           arg=sorted(want), timeout=15_000)


def test_the_last_15_min_preset_shows_exactly_the_calls_of_the_last_15_minutes(
        browser, browser_context_args, aged_url):  # noqa: F811
    import time

    url, db_path = aged_url
    context = browser.new_context(**browser_context_args)
    page = context.new_page()
    try:
        open_ui(page, url)
        page.locator("#om-range").click()
        page.get_by_text("last 15 min", exact=True).click()
        page.wait_for_function("() => location.search.includes('from=now-15m')",
                               timeout=10_000)
        want = calls_since(db_path, time.time_ns() - 15 * 60 * 10**9)
        everything = calls_since(db_path, 0)
        assert want and len(want) < len(everything)        # the preset leaves calls out
        _grid_shows_exactly(page, want)
    finally:
        context.close()


def test_the_calls_view_shows_one_row_per_call(ui, e2e_store):  # noqa: F811
    from exporters.database import Database

    # filter changes while the calls view is hidden, then shown
    ui.locator("#om-errors-only").check()
    ui.wait_for_function("() => location.search.includes('errors=1')")
    ui.locator("#om-errors-only").uncheck()
    ui.wait_for_function("() => !location.search.includes('errors=1')")
    ui.locator("#om-view").get_by_text("calls (one per call)").click()
    ui.wait_for_function("""() => { const rs = document.querySelectorAll(
        '#om-calls .ag-center-cols-container .ag-row');
        return rs.length > 0 && [...rs].every(r => {
            const c = r.querySelector('[col-id="status"]'); return c && c.innerText; }); }""",
                         timeout=15_000)
    assert not ui.locator("#om-grid").is_visible()
    shown = ui.evaluate("""() => [...document.querySelectorAll(
        '#om-calls .ag-center-cols-container .ag-row')].map(r => {
            const n = dash_ag_grid.getApi('om-calls').getRowNode(r.getAttribute('row-id'));
            const c = {}; r.querySelectorAll('.ag-cell').forEach(x => {
                c[x.getAttribute('col-id')] = x.innerText; });
            return {span_id: n.data.span_id, cells: c}; })""")
    ids = [r["span_id"] for r in shown]
    assert len(ids) == len(set(ids))                       # one row per call
    db = Database(e2e_store, readonly=True)
    try:
        inputs = {r[0]: r[1] for r in db.execute(
            "SELECT printf('%016x', s.span_id), count(d.span) FROM spans s "
            "LEFT JOIN data_trace d ON d.span = s.id AND d.data_type = 'INPUT' "
            "GROUP BY s.id")}
    finally:
        db.close()
    for r in shown:   # each call's inputs in one cell: `name=value, ...`
        assert r["cells"]["inputs"].count("=") >= inputs[r["span_id"]] > 0 or \
            inputs[r["span_id"]] == 0
    failed = [r for r in shown if r["cells"]["status"] == "ERR"]
    assert failed and all(r["cells"]["exception_summary"].startswith("ValueError: ")
                          for r in failed)
    # a click on a call opens its drill-down, as a click on a row of the seven columns does
    for call in (failed[0], next(r for r in shown if r["cells"]["status"] == "OK")):
        ui.locator(f'#om-calls .ag-center-cols-container .ag-row[row-id="{call["span_id"]}"] '
                   '[col-id="inputs"]').click()
        expect(ui.locator("#om-modal-title")).to_be_visible()
        process = ui.locator("#om-modal-title").inner_text()
        assert process.rsplit(".", 1)[-1] == call["cells"]["process"]   # the dotted name
        expect(ui.locator("#om-source")).to_contain_text(f"def {call['cells']['process']}(")
        expect(ui.locator("#om-reproduce")).to_contain_text(
            f"span {call['span_id']}, {call['cells']['status']}")
        if call["cells"]["status"] == "ERR":
            expect(ui.locator("#om-traceback")).to_contain_text(
                call["cells"]["exception_summary"])
        else:
            expect(ui.locator("#om-traceback")).to_have_count(0)
        ui.keyboard.press("Escape")
        expect(ui.locator("#om-modal-title")).to_be_hidden()


def _rows_since(db_path, since_ns: int) -> int:
    """How many rows of the seven columns the calls since ``since_ns`` make (SQLite's)."""
    from exporters.database import Database

    db = Database(db_path, readonly=True)
    try:
        return db.scalar("SELECT count(*) FROM spans s LEFT JOIN data_values d "
                         "ON d.span = s.id WHERE s.start_ns >= ? AND "
                         "(d.span IS NOT NULL OR s.status = 'ERR')", [since_ns])
    finally:
        db.close()


def test_a_time_of_day_is_on_the_clocks_the_timestamps_are_shown_in(
        browser, browser_context_args, aged_url):  # noqa: F811
    """In a browser at UTC+05:30: the time filter's time of day is a local one, named
    beside it; the UTC switch shows the same window on UTC's clocks; a local time typed
    goes into the URL as its UTC instant. The grid shows exactly SQLite's calls since."""
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    from exporters.database import Database

    url, db_path = aged_url
    db = Database(db_path, readonly=True)
    try:   # between the calls moved 20 minutes back and the others
        fresh = db.scalar("SELECT min(start_ns) FROM spans WHERE id % 2 = 1")
    finally:
        db.close()
    cut = datetime.fromtimestamp((fresh - 10 * 60 * 10**9) // 10**9, timezone.utc)
    local = cut.astimezone(ZoneInfo(ZONE))
    instant = cut.strftime("%Y-%m-%dT%H:%M:%SZ")
    want = calls_since(db_path, int(cut.timestamp()) * 10**9)
    assert want and len(want) < len(calls_since(db_path, 0))
    context = browser.new_context(**browser_context_args, timezone_id=ZONE)
    page = context.new_page()
    try:
        open_ui(page, f"{url}?from={instant}")
        time_from = page.locator("#om-time-from")
        expect(time_from).to_have_value(local.strftime("%H:%M:%S"))
        # the browser's name for its zone (Chromium: the alias Asia/Calcutta)
        zone = page.evaluate("() => Intl.DateTimeFormat().resolvedOptions().timeZone")
        assert ZoneInfo(zone).utcoffset(cut.replace(tzinfo=None)) == timedelta(hours=5.5)
        expect(page.locator("#om-time-zone")).to_have_text(zone)
        _grid_shows_exactly(page, want)
        page.locator("#om-utc").check()                   # the same window, UTC's clocks
        expect(time_from).to_have_value(cut.strftime("%H:%M:%S"))
        expect(page.locator("#om-time-zone")).to_have_text("UTC")
        assert page.evaluate("() => location.search") == f"?from={instant}"  # unchanged
        _grid_shows_exactly(page, want)
        page.locator("#om-utc").uncheck()
        expect(time_from).to_have_value(local.strftime("%H:%M:%S"))
        # a time typed on the local clocks (30 min earlier: every call; on the same day)
        shift = timedelta(minutes=-30 if (local - timedelta(minutes=30)).date() ==
                          local.date() else 5)
        time_from.fill((local + shift).strftime("%H:%M:%S"))
        time_from.press("Enter")
        page.wait_for_function("(want) => location.search === want", arg="?from=" + (
            cut + shift).strftime("%Y-%m-%dT%H:%M:%SZ").replace(":", "%3A"), timeout=10_000)
        # (more rows than a block: the grid's count of them, exact under the cap)
        page.wait_for_function(
            "(n) => dash_ag_grid.getApi('om-grid').getDisplayedRowCount() === n",
            arg=_rows_since(db_path, int((cut + shift).timestamp()) * 10**9), timeout=15_000)
    finally:
        context.close()


from page_reading import CY, graph_settled  # noqa: E402
from dash_ui._theme import TOKENS  # noqa: E402

OVERLAPS_JS = """() => { const b = window.omGraphLabelBoxes(); let n = 0;
    for (let i = 0; i < b.length; i++) for (let j = i + 1; j < b.length; j++)
        if (b[i].x1 < b[j].x2 && b[j].x1 < b[i].x2 && b[i].y1 < b[j].y2 && b[j].y1 < b[i].y2) n++;
    return {boxes: b.length, overlaps: n}; }"""
POSITIONS_JS = f"() => Object.fromEntries({CY}.nodes().map(n => [n.id(), n.position()]))"


def _laid_out(page: Page, mode: str = "force") -> None:
    page.wait_for_function(f"() => window.omGraphMode === '{mode}'", timeout=15_000)
    graph_settled(page, 4)


def rgb(hex_colour: str) -> str:
    return "rgb({},{},{})".format(*(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)))


def test_graph_labels_never_overlap_and_colour_says_the_error_rate(ui):
    _laid_out(ui)
    measured = ui.evaluate(OVERLAPS_JS)
    print("graph label boxes:", measured)
    assert measured["boxes"] >= 4 and measured["overlaps"] == 0
    colour = ui.evaluate(f"(id) => {CY}.getElementById(id).style('background-color')",
                         CHECK_LIMIT)
    healthy = ui.evaluate(f"(id) => {CY}.getElementById(id).style('background-color')",
                          "e2e_workload.quote")
    assert colour in (rgb(TOKENS["err"]), rgb(TOKENS["stale"])) and healthy == rgb(TOKENS["ok"])
    ui.locator("#om-graph-mode").get_by_text("layered (left to right)").click()
    _laid_out(ui, "layered")
    assert ui.evaluate(OVERLAPS_JS)["overlaps"] == 0


def test_graph_positions_hold_across_refreshes_and_new_nodes_move_no_old_one(ui, ui_url):
    _laid_out(ui)
    before = ui.evaluate(POSITIONS_JS)
    ui.evaluate("() => window.omGraphLayout('force')")          # a refresh, nothing new
    _laid_out(ui)
    assert ui.evaluate(POSITIONS_JS) == before
    ui.evaluate(f"""() => {{ const cy = {CY};
        cy.add([{{data: {{id: 'new.node', label: 'new_node_with_a_long_label', kind: 'process'}}}},
                {{data: {{id: 'e-new', source: '{CHECK_LIMIT}', target: 'new.node'}}}}]);
        return window.omGraphLayout('force'); }}""")
    after = ui.evaluate(POSITIONS_JS)
    assert {k: after[k] for k in before} == before and "new.node" in after
    assert ui.evaluate(OVERLAPS_JS)["overlaps"] == 0
    open_ui(ui, ui_url)                                          # a reload
    _laid_out(ui)
    reloaded = ui.evaluate(POSITIONS_JS)
    assert {k: reloaded[k] for k in before if k in reloaded} == \
        {k: before[k] for k in reloaded if k in before}


def test_an_update_is_laid_out_by_us_alone_dash_cytoscape_never_moves_a_node_later(ui):
    # dash-cytoscape re-runs its own layout prop 100 ms (debounced) after any node is
    # added or removed, unless told not to: a cose run behind omGraph.js's back would
    # move every kept node (the reload race seen in CI)
    _laid_out(ui)
    ui.evaluate(f"""() => {{ window.omLayoutRuns = [];
        {CY}.on('layoutstart', e => window.omLayoutRuns.push(e.layout.options.name)); }}""")
    ui.evaluate(f"""() => {{ const cy = {CY};
        cy.add([{{data: {{id: 'late.node', label: 'late_node', kind: 'process'}}}},
                {{data: {{id: 'e-late', source: '{CHECK_LIMIT}', target: 'late.node'}}}}]);
        return window.omGraphLayout('force'); }}""")
    settled = ui.evaluate(POSITIONS_JS)
    # A check that nothing moves: no event says dash-cytoscape has decided not to lay
    # out, so wait five times its debounce; then for our own layout of the update (the
    # add reaches the graph's elements, which asks for one) to be done.
    ui.wait_for_timeout(500)
    graph_settled(ui, 5)
    assert ui.evaluate(POSITIONS_JS) == settled
    assert ui.evaluate("() => window.omLayoutRuns") == []   # one new node: placed, no layout
