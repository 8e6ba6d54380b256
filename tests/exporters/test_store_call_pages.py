"""The calls view's pages (one row per call): every sort x filter walks an index (no
sort of the range), pages come in the exact order, paging covers each call once."""
from __future__ import annotations

import itertools

import pytest
from test_store_sorted_pages import _filters, store  # noqa: F401  (fixture)

from exporters.queries import SORTS, TraceQueries
from exporters.queries.callpage import _where


def test_every_sort_and_filter_walks_an_index_without_sorting_the_range(store):  # noqa: F811
    q = TraceQueries(store)
    for (label, f), sort in itertools.product(_filters(0).items(), SORTS):
        plan = q.explain_calls(f, sort)
        assert "TEMP B-TREE" not in plan, (label, sort, plan)
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, (label, sort, plan)


def _reference(q: TraceQueries, f, sort: str) -> list[str]:
    where, params = _where(f)
    calls = [dict(r) for r in q.db.execute(
        f"SELECT printf('%016x', s.span_id) AS span_id, p.name, s.status, s.start_ns, "
        f"s.duration_ms, s.id FROM spans s JOIN processes p ON p.id = s.process_id {where}",
        params)]
    desc, key = sort.startswith("-"), sort.lstrip("-")
    if key in ("timestamp", "duration_ms"):
        calls.sort(key=lambda c: (c["start_ns"], c["id"]), reverse=desc)
        if key == "duration_ms":
            calls.sort(key=lambda c: c["duration_ms"], reverse=desc)
    else:
        calls.sort(key=lambda c: (c["start_ns"], c["id"]), reverse=True)
        calls.sort(key=lambda c: c["name" if key == "process" else "status"], reverse=desc)
    return [c["span_id"] for c in calls]


@pytest.mark.parametrize("sort", sorted(SORTS))
def test_every_sort_and_filter_is_exact_and_paging_covers_each_call_once(store, sort):  # noqa: F811
    q = TraceQueries(store)
    for label, f in _filters(0).items():
        want = _reference(q, f, sort)
        got = []
        for offset in range(0, len(want) + 37, 37):
            page = q.call_page(f, sort=sort, offset=offset, limit=37)
            assert page.window_calls is None, (label, sort)
            got += [c["span_id"] for c in page.rows]
        assert got == want, (label, sort)
        assert q.count_calls(f) == (len(want), True)


def test_a_call_row_has_its_inputs_output_and_exception_summary(store):  # noqa: F811
    q = TraceQueries(store)
    rows = q.call_page(_filters(0)["none"], limit=400).rows
    assert len({r["span_id"] for r in rows}) == len(rows) == 400   # one row per call
    with_inputs = next(r for r in rows if r["inputs"])
    assert "=" in with_inputs["inputs"]
    failed = next(r for r in rows if r["status"] == "ERR")
    assert failed["exception_summary"] == "ValueError: x"
    assert set(rows[0]) >= {"process", "timestamp", "status", "duration_ms", "inputs",
                            "output", "exception_summary", "span_id", "trace_id"}


def test_a_rare_filter_past_the_walks_budget_is_sorted_within_the_newest_calls(
        store, monkeypatch):  # noqa: F811
    from exporters.queries import pages

    monkeypatch.setattr(pages, "WALK_FIRST_STEPS", 1)
    monkeypatch.setattr(pages, "WALK_STEPS_PER_ROW", dict.fromkeys(pages.WALK_STEPS_PER_ROW, 1))
    monkeypatch.setattr(pages, "SORT_WINDOW_CALLS", 30)
    q = TraceQueries(store)
    f = _filters(0)["data"]
    page = q.call_page(f, sort="-duration_ms", limit=100)
    assert page.strategy == "window" and page.window_calls == 30 and page.note
    newest = {r[0] for r in q.db.execute(
        "SELECT printf('%016x', span_id) FROM spans ORDER BY start_ns DESC LIMIT 30")}
    assert page.rows and {r["span_id"] for r in page.rows} <= newest
    durations = [r["duration_ms"] for r in page.rows]
    assert durations == sorted(durations, reverse=True)
