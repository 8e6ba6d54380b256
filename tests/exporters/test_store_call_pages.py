"""The calls view's pages (one row per call): every sort x filter walks an index (no
sort of the range), pages come in the exact order, paging covers each call once."""
from __future__ import annotations

import itertools

import pytest
from test_store_sorted_pages import TOP_N_INDEXES, _filters, store  # noqa: F401  (fixture)

from exporters.queries import SORTS, TraceQueries
from exporters.queries import pages
from exporters.queries.callpage import _where


def test_every_sort_and_filter_walks_an_index_without_sorting_the_range(store):  # noqa: F811
    q = TraceQueries(store)
    for (label, f), sort in itertools.product(_filters(0).items(), SORTS):
        plan = q.explain_calls(f, sort)
        if sort.endswith("duration_ms") and pages.sorts_top_calls(f):
            assert label in TOP_N_INDEXES   # an exact top-N over an index (below)
            continue
        assert "TEMP B-TREE" not in plan, (label, sort, plan)
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, (label, sort, plan)


@pytest.mark.parametrize("sort", ["-duration_ms", "duration_ms"])
@pytest.mark.parametrize("label", sorted(TOP_N_INDEXES))
def test_duration_pages_of_a_process_or_failures_sort_their_calls_from_an_index_alone(
        store, label, sort):  # noqa: F811
    """The trace table's top-N: the calls are sorted from an index that holds duration
    (no call's row is read to sort them), then only the page's calls are read."""
    plan = TraceQueries(store).explain_calls(_filters(0)[label], sort).splitlines()
    top = plan.index("MATERIALIZE top")
    page = plan.index("SCAN t")
    sorting = plan[top + 1:page]
    # (a partial index of the failed calls is scanned whole: it holds only them)
    assert sorting[0].startswith(("SEARCH s USING COVERING INDEX ",
                                  "SCAN s USING COVERING INDEX ")), plan
    assert sorting[0].split("USING COVERING INDEX ")[1].split()[0] in TOP_N_INDEXES[label]
    assert [s for s in sorting if s.startswith(("SEARCH s", "SCAN s"))] == sorting[:1], plan
    assert sorting[-1] == "USE TEMP B-TREE FOR ORDER BY", plan   # the index's entries
    # The page's calls (LIMIT ? OFFSET ? of the top-N): each read by its primary key.
    assert plan[page + 1:] == ["SEARCH s USING INTEGER PRIMARY KEY (rowid=?)",
                               "SEARCH p USING INTEGER PRIMARY KEY (rowid=?)",
                               "USE TEMP B-TREE FOR ORDER BY"], plan


def test_duration_pages_of_a_process_or_failures_are_the_exact_top_n(store):  # noqa: F811
    q = TraceQueries(store)
    for label, sort in itertools.product(TOP_N_INDEXES, ["-duration_ms", "duration_ms"]):
        f = _filters(0)[label]
        page = q.call_page(f, sort=sort, offset=3, limit=5)
        assert page.strategy == "top" and page.note is None, (label, sort)
        assert [c["span_id"] for c in page.rows] == _reference(q, f, sort)[3:8], (label, sort)


def test_a_top_n_over_too_many_calls_is_sorted_within_the_newest_calls_and_says_so(
        store, monkeypatch):  # noqa: F811
    monkeypatch.setattr(pages, "TOP_CALLS_MAX", 10)
    monkeypatch.setattr(pages, "SORT_WINDOW_CALLS", 30)
    q = TraceQueries(store)
    page = q.call_page(_filters(0)["process"], sort="-duration_ms", limit=100)
    assert page.strategy == "window" and page.window_calls == 30 and page.note
    newest = [r[0] for r in q.db.execute(
        "SELECT printf('%016x', s.span_id) FROM spans s JOIN processes p "
        "ON p.id = s.process_id WHERE p.name = 'app.beta' ORDER BY s.start_ns DESC LIMIT 30")]
    want = [c for c in _reference(q, _filters(0)["process"], "-duration_ms") if c in newest]
    assert [c["span_id"] for c in page.rows] == want


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
