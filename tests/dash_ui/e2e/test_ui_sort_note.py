"""In real Chromium: sorting the table by duration with a variable-name filter over more
calls than the sort window shows the note under the grid; clearing the filter (an exact
order again) clears it."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from bounded_store import NAME, make_bounded_store
from e2e_fixtures import (  # noqa: F401  (fixtures, used by name)
    browser,
    browser_context_args,
    browser_type_launch_args,
    playwright,
)
from e2e_support import serve
from page_reading import cell_of, open_ui, wait_rows
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def bounded_url(tmp_path_factory) -> Iterator[tuple[str, int]]:
    db = tmp_path_factory.mktemp("bounded-e2e") / "bounded.db"
    _, window = make_bounded_store(db)
    with serve(db) as url:
        yield url, window


def test_a_bounded_sort_shows_its_note_and_an_exact_one_clears_it(page: Page, bounded_url):
    url, window = bounded_url
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_ui(page, url)
    note = page.locator("#om-sort-note")
    expect(note).to_have_text("")
    page.locator("#om-data").fill(NAME)
    page.locator("#om-data").press("Enter")
    wait_rows(page, cell_of("Data", f"t === '{NAME}'"))
    expect(note).to_have_text("")  # newest first: an exact walk
    header = page.locator('#om-grid .ag-header-cell[col-id="duration_ms"] .ag-header-cell-label')
    header.click()  # ascending
    expect(note).to_contain_text(f"Sorted within the newest {window:,} calls")
    header.click()  # descending: still within the window
    expect(note).to_contain_text(f"newest {window:,} calls")
    page.locator("#om-data").fill("")
    page.locator("#om-data").press("Enter")  # a duration walk over every call: exact
    expect(note).to_have_text("")
    assert not errors, errors
