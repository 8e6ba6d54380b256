"""The trace table and the calls view mark the rows read from the cold archive (issue 17):
the grids' getRows callbacks, driven through Dash's HTTP endpoint over a store whose range
is archived, give ``archived: true`` rows, and the Status cell's renderer (StatusPill, in
dash_ui/assets) shows an "archived" badge for them."""
from __future__ import annotations

import os
import re

import pytest

pytest.importorskip("pyarrow")

from archived_calls import archive_path, build
from test_dash_app import NO_WINDOW, run_callback

ASSETS = os.path.join(os.path.dirname(__file__), "..", "..", "dash_ui", "assets")
DAY = "2023-11-14"  # BASE_NS's day (UTC); the hot calls are on the next day


@pytest.fixture(scope="module")
def archived_flask(tmp_path_factory):
    db = build(str(tmp_path_factory.mktemp("archived_ui") / "store.db"))
    from dash_ui.app import create_dash_app
    from exporters.queries import TraceQueries

    queries = TraceQueries(db)
    queries.archive_dir = archive_path(db)
    return create_dash_app(queries).server.test_client()


def _block(flask, grid, note, start_date, end_date):
    out = run_callback(
        flask, [f"{grid}.getRowsResponse", f"{note}.children"],
        {f"{grid}.getRowsRequest": {"startRow": 0, "endRow": 1000, "sortModel": [],
                                    "filterModel": {}}},
        {"om-dates.start_date": start_date, "om-dates.end_date": end_date,
         "om-process.value": None, "om-data.value": None, "om-errors-only.value": False,
         "om-service.value": None, **NO_WINDOW})
    return out[grid]["getRowsResponse"]


def test_the_trace_table_gets_archived_rows_marked(archived_flask):
    got = _block(archived_flask, "om-grid", "om-sort-note", DAY, DAY)
    assert got["rowCount"] == len(got["rowData"]) == 36
    assert all(r["archived"] is True for r in got["rowData"])
    hot = _block(archived_flask, "om-grid", "om-sort-note", "2023-11-15", "2023-11-15")
    assert hot["rowData"] and not any(r.get("archived") for r in hot["rowData"])


def test_the_calls_view_gets_archived_calls_marked(archived_flask):
    got = _block(archived_flask, "om-calls", "om-calls-note", DAY, DAY)
    assert len(got["rowData"]) == 20
    assert all(r["archived"] is True for r in got["rowData"])


def test_the_status_cell_shows_an_archived_badge():
    from dash_ui.layout import CALL_COLUMNS, COLUMNS

    for columns in (COLUMNS, CALL_COLUMNS):
        status = next(c for c in columns if c.get("colId") == "status")
        assert status["cellRenderer"] == "StatusPill"
    with open(os.path.join(ASSETS, "dashAgGridComponentFunctions.js")) as fh:
        js = fh.read()
    pill = js[js.index("dagcomponentfuncs.StatusPill"):]
    pill = pill[:pill.index("\n};") + 3]
    assert re.search(r"props\.data\s*&&\s*props\.data\.archived", pill)
    assert "om-archived" in pill and '"archived"' in pill
    with open(os.path.join(ASSETS, "otel.css")) as fh:
        assert ".om-archived" in fh.read()
