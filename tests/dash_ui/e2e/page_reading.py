"""Reading the rendered page the way a user sees it: the grid's rows as displayed, the
cytoscape graph through its own JS API."""
from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

GRID_ROWS = "#om-grid .ag-center-cols-container .ag-row"

# A cell's text; the Process cell shows the short name (`Class.method`), its full
# dotted name (its tooltip) is read from the row's data.
_CELL_TEXT = ("(c => { if (c.getAttribute('col-id') !== 'process' || !c.closest('#om-grid')) "
              "return c.innerText; const n = dash_ag_grid.getApi('om-grid').getRowNode("
              "c.closest('.ag-row').getAttribute('row-id')); "
              "return n && n.data ? n.data.Process : null; })")

# Each displayed grid row: its row id (span_id:seq) and its cells' text by column id.
_ROWS_JS = """() => [...document.querySelectorAll('GRID_ROWS')].map(r => {
    const cells = {};
    r.querySelectorAll('.ag-cell').forEach(c => { cells[c.getAttribute('col-id')] = CELL_TEXT(c); });
    return {rowId: r.getAttribute('row-id'), cells};
})""".replace("GRID_ROWS", GRID_ROWS).replace("CELL_TEXT", _CELL_TEXT)

# The cytoscape instance dash-cytoscape created (cytoscape registers it on its container).
CY = "[...document.querySelectorAll('#om-graph, #om-graph *')].find(e => e._cyreg)._cyreg.cy"


def open_ui(page: Page, url: str) -> None:
    """Open the page and wait for the grid's first block (not its loading placeholders)."""
    page.goto(url)
    wait_rows(page, cell_of("process", "!!t"), timeout=30_000)


def rows(page: Page) -> list[dict[str, Any]]:
    return page.evaluate(_ROWS_JS)


def wait_rows(page: Page, predicate_js: str, timeout: float = 15_000) -> list[dict[str, Any]]:
    """Wait until the grid shows at least one row and every shown row passes
    ``predicate_js`` (a JS function of a row element); then return the rows."""
    page.wait_for_function(
        """([rows, pred]) => { const rs = [...document.querySelectorAll(rows)];
                               const f = eval(pred); return rs.length > 0 && rs.every(f); }""",
        arg=[GRID_ROWS, predicate_js], timeout=timeout)
    return rows(page)


def cell_of(column: str, text_js: str) -> str:
    """JS predicate: the row's ``column`` cell text satisfies ``text_js`` (of ``t``)."""
    return (f"r => {{ const c = r.querySelector('[col-id=\"{column}\"]'); "
            f"const t = c ? {_CELL_TEXT}(c) : null; return {text_js}; }}")


def graph_ready(page: Page, nodes: int) -> None:
    page.wait_for_function(f"() => {{ try {{ return {CY}.nodes().length >= {nodes}; }} "
                           f"catch (e) {{ return false; }} }}", timeout=15_000)


def graph_settled(page: Page, nodes: int) -> None:
    """graph_ready, and its layout done: no layout asked for or running, the last one
    covered every node shown (assets/omGraph.js, omGraphSettled). Before it, a node's
    position may still change (the layout starts on a timer, then cy.fit)."""
    page.wait_for_function(f"() => {{ try {{ return {CY}.nodes().length >= {nodes} "
                           f"&& window.omGraphSettled(); }} catch (e) {{ return false; }} }}",
                           timeout=15_000)


def edge_colour(page: Page, edge_id: str) -> str:
    return page.evaluate(f"(id) => {CY}.getElementById(id).style('line-color')", edge_id)


def node_page_position(page: Page, node_id: str) -> tuple[float, float]:
    """Where the node is drawn, in viewport coordinates (to hover or click it). The page
    is scrolled (the graph, below the table, into view) only when the node is out of
    view, as a user would."""
    def where() -> tuple[float, float]:
        pos = page.evaluate(f"(id) => {CY}.getElementById(id).renderedPosition()", node_id)
        box = page.locator("#om-graph").bounding_box()
        return box["x"] + pos["x"], box["y"] + pos["y"]

    x, y = where()
    size = page.viewport_size
    if not (0 <= x < size["width"] and 0 <= y < size["height"]):
        page.locator("#om-graph").scroll_into_view_if_needed()
        x, y = where()
    return x, y
