"""The UI in real Chromium, served by a real ``otel-monitor serve`` over a store the real
decorator filled: drill-down, filters, graph colours and interactions, Reproduce, stored
markup shown as text. Writes main.png and modal.png under e2e_support.SCREENSHOTS
(a temporary directory unless $OTEL_MONITOR_TEST_SCREENSHOTS names one)."""
from __future__ import annotations

import subprocess
import sys

import pytest
from e2e_fixtures import (  # noqa: F401  (fixtures, used by name)
    browser,
    browser_context_args,
    browser_type_launch_args,
    e2e_store,
    playwright,
    ui_url,
)
from e2e_support import FAILING_BOOKS, SCREENSHOTS, SCRIPT, SERVICES, workload_env
from page_reading import (
    cell_of,
    edge_colour,
    graph_ready,
    graph_settled,
    node_page_position,
    open_ui,
    rows,
    wait_rows,
)
from playwright.sync_api import Page, expect

from dash_ui._theme import TOKENS

pytestmark = pytest.mark.timeout(120)

CHECK_LIMIT = "e2e_workload.check_limit"
RENDER = "e2e_workload.render"
STALE_EDGE = f"feed:rates.stale->{CHECK_LIMIT}"
FRESH_EDGE = "feed:fx.fresh->e2e_workload.quote"


def rgb(hex_colour: str) -> str:
    """'#e55353' -> 'rgb(229,83,83)', the form cytoscape reports a colour in."""
    return "rgb({},{},{})".format(*(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)))


def open_row(page: Page, row: dict) -> None:
    """Click a displayed row and wait for its modal."""
    page.locator(f'#om-grid .ag-center-cols-container .ag-row[row-id="{row["rowId"]}"] '
                 f'[col-id="Data"]').click()
    expect(page.locator("#om-modal-title")).to_have_text(row["cells"]["process"])


def close_modal(page: Page) -> None:
    page.keyboard.press("Escape")
    expect(page.locator("#om-modal-title")).to_be_hidden()


def first_row(page: Page, process: str, status: str) -> dict:
    return next(r for r in rows(page)
                if r["cells"]["process"] == process and r["cells"]["status"] == status)


# Each graph layout of the page starts `late_ms` after it was asked for: what a loaded
# machine does to the 60 ms timer it is queued with (CI: the hover test read a node's
# position before the layout had moved it, and hovered empty space).
LATE_LAYOUT_JS = """(late_ms) => { let layout;
    Object.defineProperty(window, 'omGraphLayout', {configurable: true,
        set(f) { layout = f; },
        get() { return mode => new Promise(ok => setTimeout(ok, late_ms))
                                   .then(() => layout(mode)); }});
}"""


@pytest.fixture
def ui(request, page: Page, ui_url: str) -> Page:  # noqa: F811
    """A page of its own, for a test that sets filters (by indirect parametrization:
    ``late_ms``, its graph layouts start that late; ``height``, its viewport's)."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    asked = getattr(request, "param", {})
    if asked.get("late_ms"):
        page.add_init_script(f"({LATE_LAYOUT_JS})({asked['late_ms']})")
    if asked.get("height"):
        page.set_viewport_size({"width": page.viewport_size["width"], "height": asked["height"]})
    open_ui(page, ui_url)
    yield page
    assert not errors, errors  # no uncaught exception in the page's scripts


@pytest.fixture(scope="module")
def shared(browser, browser_context_args, ui_url) -> Page:  # noqa: F811
    """One page shared by the tests that only look, and open and close the drill-down
    (a page load each would add seconds for nothing)."""
    context = browser.new_context(**browser_context_args)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_ui(page, ui_url)
    yield page
    context.close()
    assert not errors, errors


def test_main_page_shows_ribbon_table_and_graph(shared: Page):
    expect(shared.locator("#om-badge-QueueDepth")).to_have_text("QueueDepth: 0")
    expect(shared.locator("#om-badge-errors")).to_have_text(f"errors (5 min): {len(FAILING_BOOKS)}")
    graph_settled(shared, nodes=6)  # quote, fee, check_limit, render, two feeds; laid out
    statuses = {r["cells"]["status"] for r in rows(shared)}
    assert statuses == {"OK", "ERR"}
    # the pills take the theme's colours
    ok, err = (shared.locator(f".om-pill-{s}").first.evaluate(
        "e => getComputedStyle(e).backgroundColor") for s in ("OK", "ERR"))
    assert (ok, err) == (rgb(TOKENS["ok"]).replace(",", ", "), rgb(TOKENS["err"]).replace(",", ", "))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shared.screenshot(path=str(SCREENSHOTS / "main.png"), full_page=True)


def test_clicking_a_row_opens_that_calls_source_and_values(shared: Page):
    for process in (CHECK_LIMIT, RENDER):
        row = first_row(shared, process, "OK")
        open_row(shared, row)
        function = process.rsplit(".", 1)[1]
        expect(shared.locator("#om-source")).to_contain_text(f"def {function}(")
        other = "render" if function == "check_limit" else "check_limit"
        expect(shared.locator("#om-source")).not_to_contain_text(f"def {other}(")
        values = shared.locator("#om-call-values").inner_text()
        assert f"{row['cells']['Data']}\t{row['cells']['Data Type']}\t" \
               f"{row['cells']['Data Value']}" in values
        assert "OUTPUT" in values  # its return value is there too
        span_id = row["rowId"].split(":")[0]
        expect(shared.locator("#om-reproduce")).to_contain_text(f"span {span_id}, OK")
        expect(shared.locator("#om-traceback")).to_have_count(0)
        close_modal(shared)


def test_an_error_row_opens_with_its_traceback(shared: Page):
    row = first_row(shared, CHECK_LIMIT, "ERR")
    open_row(shared, row)
    book = next(r["cells"]["Data Value"] for r in rows(shared)
                if r["rowId"].split(":")[0] == row["rowId"].split(":")[0]
                and r["cells"]["Data"] == "book").strip("'")
    expect(shared.locator("#om-traceback")).to_contain_text(f"ValueError: negative limit for {book}")
    expect(shared.locator("#om-call-values")).not_to_contain_text("OUTPUT")  # it raised
    # the sparkline drawn (plotly draws the title after the data), the modal faded in
    expect(shared.locator("#om-sparkline .gtitle")).to_be_visible()
    shared.wait_for_function("""() => [...document.querySelectorAll('.modal, .modal-backdrop')]
        .every(e => e.getAnimations({subtree: true}).length === 0)""")
    shared.screenshot(path=str(SCREENSHOTS / "modal.png"))
    close_modal(shared)


def test_errors_only_shows_only_err_rows(ui: Page):
    assert "OK" in {r["cells"]["status"] for r in rows(ui)}
    ui.locator("#om-errors-only").check()
    shown = wait_rows(ui, cell_of("status", "t === 'ERR'"))
    assert all(r["cells"]["status"] == "ERR" for r in shown)
    # every failing call's two inputs (book, limit), and nothing else
    assert len(shown) == 2 * len(FAILING_BOOKS)
    assert len({r["rowId"].split(":")[0] for r in shown}) == len(FAILING_BOOKS)
    pills = ui.locator("#om-grid .ag-center-cols-container .om-pill")
    expect(pills).to_have_count(len(shown))
    assert set(pills.all_inner_texts()) == {"ERR"}


def test_a_stale_feeds_edge_is_red_and_a_fresh_ones_is_not(shared: Page):
    graph_ready(shared, nodes=6)
    assert edge_colour(shared, STALE_EDGE) == rgb(TOKENS["err"])
    fresh = edge_colour(shared, FRESH_EDGE)
    assert fresh != rgb(TOKENS["err"]) and fresh == rgb("#6e7681")


@pytest.mark.parametrize("ui", [{}, {"late_ms": 1000}], ids=["layout-on-time", "layout-late"],
                         indirect=True)
def test_hovering_a_node_shows_latency_and_errors_and_clicking_it_filters(ui: Page):
    graph_settled(ui, nodes=6)  # positions are final
    hover_then_click(ui, CHECK_LIMIT)


# cytoscape keeps where its container is on screen until a scroll or a resize tells it
# otherwise. A tall window shows the node without a scroll; a line above the graph then
# grows, as the page's status lines do (the table's sort note; on load the lines above
# grow 26 px after the graph is drawn): the hover must land on the node where it is
# drawn now (CI: a hover sent before the scroll's event missed its node).
@pytest.mark.parametrize("ui", [{"height": 2400}], ids=["whole-page-in-view"], indirect=True)
def test_hovering_a_node_finds_it_after_the_page_above_the_graph_moved(ui: Page):
    graph_settled(ui, nodes=6)
    ui.evaluate("() => { document.getElementById('om-sort-note').style.minHeight = '120px'; }")
    hover_then_click(ui, CHECK_LIMIT)


def hover_then_click(ui: Page, process: str) -> None:
    """Hover the process's node: the line shows its latency and errors; click it: the
    table shows only its calls."""
    x, y = node_page_position(ui, process)
    ui.mouse.move(x, y)
    expect(ui.locator("#om-graph-hover")).to_contain_text(
        f"{process}: last latency")
    expect(ui.locator("#om-graph-hover")).to_contain_text(
        f"errors (30 min): {len(FAILING_BOOKS)}")
    assert RENDER in {r["cells"]["process"] for r in rows(ui)}
    ui.mouse.click(x, y)
    expect(ui.locator("#om-process")).to_contain_text(process)
    shown = wait_rows(ui, cell_of("process", f"t === '{process}'"))
    assert {r["cells"]["process"] for r in shown} == {process}


def test_the_reproduce_snippet_raises_the_recorded_exception(shared: Page, tmp_path):
    open_row(shared, first_row(shared, CHECK_LIMIT, "ERR"))
    recorded = shared.locator("#om-traceback").inner_text().strip().splitlines()[-1]
    code = shared.locator("#om-reproduce").inner_text()  # the text a user copies
    script = tmp_path / "repro.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=workload_env(), timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == recorded
    assert recorded.startswith("ValueError: negative limit for b")
    close_modal(shared)


def test_a_stored_script_value_is_shown_as_text(ui: Page):
    dialogs: list[str] = []
    ui.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    ui.locator("#om-data").fill("note")
    ui.locator("#om-data").press("Enter")
    shown = wait_rows(ui, cell_of("Data", "t === 'note'"))
    assert [r["cells"]["Data Value"] for r in shown] == [repr(SCRIPT)]
    open_row(ui, shown[0])
    expect(ui.locator("#om-call-values")).to_contain_text(repr(SCRIPT))
    expect(ui.locator("#om-reproduce")).to_contain_text(f"note={SCRIPT!r}")
    # A check that nothing happens: no event says so. An injected <img onerror> would
    # run once its load failed (the other assertions: no such element exists).
    ui.wait_for_timeout(200)
    assert ui.evaluate("() => window.__omInjected") is None
    assert ui.locator('img[src="x"]').count() == 0
    assert ui.locator("script:text('__omInjected')").count() == 0
    assert dialogs == []


def test_the_service_filter_shows_only_that_services_calls(ui: Page):
    processes = {SERVICES["risk"]: {CHECK_LIMIT, RENDER},
                 SERVICES["pricing"]: {"e2e_workload.quote", "e2e_workload.fee"}}
    for service, theirs in processes.items():
        ui.locator("#om-service").click()
        ui.get_by_role("option", name=service, exact=True).click()
        allowed = "[" + ", ".join(f"'{p}'" for p in theirs) + "].includes(t)"
        shown = wait_rows(ui, cell_of("process", allowed))
        assert {r["cells"]["process"] for r in shown} <= theirs
