"""The trace table's sorted pages: every sort x filter reads an index walk (no sort of
the range), pages come in the exact order, and the bounded strategy is used and said."""
from __future__ import annotations

import itertools
import random

import pytest

from exporters.queries import filters, pages as q_mod
from exporters.queries import SORTS, RowFilter, TraceQueries
from exporters.store import ProcessEntry, SpanStore

PROCESSES = ["app.alpha", "app.beta", "app.gamma", "app.delta"]
NAMES = ["spot", "strike", "vol", "book"]
T0 = 1_700_000_000 * 10**9
CALLS = 400


def _filters(now: int) -> dict[str, RowFilter]:
    rng = dict(since_ns=T0 + 100 * 10**9, until_ns=T0 + 300 * 10**9)
    return {
        "none": RowFilter(), "range": RowFilter(**rng), "process": RowFilter(process="app.beta"),
        "data": RowFilter(data="vol"), "errors": RowFilter(errors_only=True),
        "service": RowFilter(service="svc-a"),
        "process+errors": RowFilter(process="app.beta", errors_only=True),
        "range+process": RowFilter(**rng, process="app.gamma"),
        "range+errors": RowFilter(**rng, errors_only=True),
        "range+data": RowFilter(**rng, data="spot"),
        "range+process+errors+data": RowFilter(**rng, process="app.alpha", errors_only=True,
                                               data="strike"),
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """CALLS calls over 400 s: varied processes, durations (with ties), services, failures,
    0-3 variables each (some failed calls and some OK calls with none)."""
    path = tmp_path_factory.mktemp("sorted") / "s.db"
    rnd = random.Random(3)
    st = SpanStore(path)
    ids = st.process_ids([ProcessEntry(p) for p in PROCESSES])
    spans, data = [], []
    for k in range(CALLS):
        err = rnd.random() < 0.2
        proc = rnd.choice(PROCESSES)
        spans += [k, k + 1, f"{k:032x}", None, T0 + k * 10**9 + rnd.randrange(10**6),
                  float(rnd.randrange(20)), ids[proc], None, rnd.choice(["svc-a", "svc-b"]),
                  "ERR" if err else "OK", "error" if err else "ok",
                  "ValueError" if err else None, "ValueError: x" if err else None, 1, None]
        for seq, name in enumerate(rnd.sample(NAMES, rnd.randrange(4))):
            data += [k, seq, name, "INPUT", repr(rnd.random())]
    st.insert_calls(spans, data)
    st.close()
    return path


def _all_rows(queries: TraceQueries, f: RowFilter) -> list[dict]:
    """Every row matching ``f``, by a plain query that sorts in Python (the reference)."""
    where, params = f.where(in_time_order=False)
    return [dict(r) for r in queries.db.execute(
        f"SELECT {filters.ROW_COLUMNS} FROM spans s JOIN processes p ON p.id = s.process_id "
        f"LEFT JOIN data_values d ON d.span = s.id {where}", params)]


def _reference(rows: list[dict], sort: str) -> list[tuple]:
    """(span id, seq) of ``rows`` in the order SORTS defines, by stable sorts from the
    last key to the first."""
    desc = sort.startswith("-")
    key = sort.lstrip("-")
    out = sorted(rows, key=lambda r: -1 if r["seq"] is None else r["seq"])  # argument order
    if key in ("timestamp", "duration_ms"):  # ties: older first (newer first if desc)
        out = sorted(out, key=lambda r: (r["start_ns"], r["row_id"]), reverse=desc)
        if key == "duration_ms":
            out = sorted(out, key=lambda r: r["duration_ms"], reverse=desc)
    else:  # process or status, then newest first
        out = sorted(out, key=lambda r: (r["start_ns"], r["row_id"]), reverse=True)
        out = sorted(out, key=lambda r: r["Process" if key == "process" else "Status"],
                     reverse=desc)
    return [(r["span_id"], r["seq"]) for r in out]


def test_every_sort_and_filter_walks_an_index_without_sorting_the_range(store):
    q = TraceQueries(store)
    for (label, f), sort in itertools.product(_filters(0).items(), SORTS):
        plan = q.explain_rows(f, sort)
        if sort.endswith("duration_ms") and q_mod.sorts_top_calls(f):
            continue  # a top-N over an index (below)
        assert "TEMP B-TREE" not in plan, (label, sort, plan)
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, (label, sort, plan)


# Duration pages of a process's calls or of the failed calls (a top-N, for the trace
# table and the calls view): the index each one sorts.
TOP_N_INDEXES = {
    "process": {"spans_by_process"}, "range+process": {"spans_by_process"},
    "errors": {"spans_errors_by_time", "spans_errors_by_process"},
    "range+errors": {"spans_errors_by_time"},
    "process+errors": {"spans_errors_by_process"}}


@pytest.mark.parametrize("label,indexes", sorted(TOP_N_INDEXES.items()))
def test_duration_pages_of_a_process_or_failures_sort_their_calls_from_an_index_alone(
        store, label, indexes):
    """The top-N reads no row before it has the page's calls: its index holds duration."""
    q = TraceQueries(store)
    f = _filters(0)[label]
    assert q_mod.sorts_top_calls(f)
    plan = q.explain_rows(f, "-duration_ms").splitlines()
    first = plan[plan.index("MATERIALIZE top") + 1]
    assert "USING COVERING INDEX " in first, plan
    assert first.split("USING COVERING INDEX ")[1].split()[0] in indexes, plan


def test_a_top_n_over_too_many_calls_is_sorted_within_the_newest_calls_and_says_so(
        store, monkeypatch):
    q = TraceQueries(store)
    monkeypatch.setattr(q_mod, "TOP_CALLS_MAX", 10)
    monkeypatch.setattr(q_mod, "SORT_WINDOW_CALLS", 30)
    f = _filters(0)["process"]
    page = q.page(f, sort="-duration_ms", limit=1000)
    assert page.strategy == "window" and page.window_calls == 30 and page.note
    newest = {r[0] for r in q.db.execute(
        "SELECT s.id FROM spans s JOIN processes p ON p.id = s.process_id "
        "WHERE p.name = 'app.beta' ORDER BY s.start_ns DESC LIMIT 30")}
    inside = [r for r in _all_rows(q, f) if r["row_id"] in newest]
    assert [(r["span_id"], r["seq"]) for r in page.rows] == _reference(inside, "-duration_ms")


@pytest.mark.parametrize("sort,indexes", [
    ("duration_ms", {"spans_by_duration"}), ("-duration_ms", {"spans_by_duration"}),
    ("process", {"spans_by_process"}), ("-process", {"spans_by_process"}),
    ("status", {"spans_errors_by_time", "spans_by_time"}),
    ("-status", {"spans_errors_by_time", "spans_by_time"})])
def test_sorted_pages_over_a_date_range_walk_the_sorts_index(store, sort, indexes):
    plan = TraceQueries(store).explain_rows(_filters(0)["range"], sort)
    assert all(i in plan for i in indexes) and "TEMP B-TREE" not in plan, plan


@pytest.mark.parametrize("label", ["none", "range"])
def test_duration_pages_walk_each_time_bucket_of_the_duration_index_and_merge(store, label):
    q = TraceQueries(store)
    f = _filters(0)[label]
    plan = q.explain_rows(f, "-duration_ms")
    assert "TEMP B-TREE" not in plan, plan
    # one walk per bucket
    assert plan.count("spans_by_duration") == len(q_mod.buckets(q.db, f)), plan
    assert len(q_mod.buckets(q.db, RowFilter())) == 2  # the store spans two 5-minute buckets


def test_every_sort_and_filter_page_is_in_exact_order_and_paging_covers_each_row_once(store):
    q = TraceQueries(store)
    for (label, f), sort in itertools.product(_filters(0).items(), SORTS):
        expected = _reference(_all_rows(q, f), sort)
        # (the top-N pages: their first calls include OK calls without variables, so the
        # short-page retry is exercised too)
        got = []
        for offset in range(0, len(expected) + 50, 50):
            page = q.page(f, sort=sort, offset=offset, limit=50)
            assert page.window_calls is None and page.note is None, (label, sort)
            got += [(r["span_id"], r["seq"]) for r in page.rows]
        assert got == expected, (label, sort)
        assert "row_id" not in (q.rows(f, sort=sort, limit=1) or [{}])[0]


@pytest.mark.parametrize("sort", ["-duration_ms", "status", "-timestamp", "process"])
def test_a_rare_filter_past_the_walks_budget_is_sorted_within_the_newest_calls_and_says_so(
        store, monkeypatch, sort):
    """Duration and status sorts with a variable name go to the window at once; time and
    process walks go there past their step budget (one step a row here)."""
    q = TraceQueries(store)
    monkeypatch.setattr(q_mod, "WALK_STEPS_PER_ROW", dict.fromkeys(q_mod.WALK_STEPS_PER_ROW, 1))
    monkeypatch.setattr(q_mod, "WALK_FIRST_STEPS", 0)
    monkeypatch.setattr(q_mod, "SORT_WINDOW_CALLS", 60)
    f = RowFilter(data="vol")
    page = q.page(f, sort=sort, limit=1000)
    assert page.strategy == "window"
    assert page.window_calls == 60 and "newest 60 calls" in page.note
    newest = {r[0] for r in q.db.execute(
        "SELECT id FROM spans ORDER BY start_ns DESC LIMIT 60")}
    inside = [r for r in _all_rows(q, f) if r["row_id"] in newest]
    assert [(r["span_id"], r["seq"]) for r in page.rows] == _reference(inside, sort)
    assert page.rows and all(r["Data"] == "vol" for r in page.rows)


def test_time_and_process_walks_within_their_budget_stay_exact(store, monkeypatch):
    q = TraceQueries(store)
    monkeypatch.setattr(q_mod, "SORT_WINDOW_CALLS", 60)  # the name's calls do not fit
    f = RowFilter(data="vol")
    for sort in ("-timestamp", "timestamp", "process", "-process"):
        page = q.page(f, sort=sort, limit=50)
        assert page.strategy == "walk" and page.note is None, sort
        assert [(r["span_id"], r["seq"]) for r in page.rows] == \
            _reference(_all_rows(q, f), sort)[:50], sort


def test_a_duration_sort_over_a_large_date_range_walks_exactly(store, monkeypatch):
    q = TraceQueries(store)
    monkeypatch.setattr(q_mod, "SORT_WINDOW_CALLS", 60)  # the range holds 200 calls
    f = _filters(0)["range"]
    for sort in ("duration_ms", "-duration_ms"):
        page = q.page(f, sort=sort, offset=100, limit=100)
        assert page.strategy == "walk", sort
        assert [(r["span_id"], r["seq"]) for r in page.rows] == \
            _reference(_all_rows(q, f), sort)[100:200], sort


def test_the_bounded_strategy_is_exact_when_the_window_holds_every_candidate(
        store, monkeypatch):
    q = TraceQueries(store)
    monkeypatch.setattr(q_mod, "WALK_STEPS_PER_ROW", dict.fromkeys(q_mod.WALK_STEPS_PER_ROW, 1))
    monkeypatch.setattr(q_mod, "WALK_FIRST_STEPS", 0)
    f = RowFilter(since_ns=T0, until_ns=T0 + 80 * 10**9, data="book")  # 80 calls < window
    for sort in SORTS:
        page = q.page(f, sort=sort, limit=1000)
        assert page.strategy == "window" and page.window_calls is None, sort
        assert [(r["span_id"], r["seq"]) for r in page.rows] == \
            _reference(_all_rows(q, f), sort), sort


def test_a_top_n_page_whose_first_calls_make_no_row_is_still_full_and_exact(tmp_path):
    """OK calls without variables make no row: when the page's first calls fall short of
    its rows, the top-N is taken again over every call of the filters."""
    st = SpanStore(tmp_path / "top.db")
    pid = st.process_ids([ProcessEntry("job")])["job"]
    spans, data = [], []
    for k in range(10):  # the 5 slowest calls are plain spans (no variable, OK)
        spans += [k, k + 1, f"{k:032x}", None, T0 + k, float(10 - k), pid, None, None,
                  "OK", "ok", None, None, 1, None]
        if k >= 5:
            data += [k, 0, "x", "INPUT", repr(k)]
    st.insert_calls(spans, data)
    st.close()
    q = TraceQueries(tmp_path / "top.db")
    page = q.page(RowFilter(process="job"), sort="-duration_ms", limit=3)
    assert page.strategy == "top" and page.note is None
    assert [r["Data Value"] for r in page.rows] == ["5", "6", "7"]


# Row counts (issue 19: a rare service's count read the whole store, 0.9 s on the
# 2M-call benchmark store): counting stops at the cap; a count whose walk tests a filter
# its index does not hold has a step budget, past which it counts within the newest calls.

def _newest_ids(q: TraceQueries, n: int) -> set[int]:
    return {r[0] for r in q.db.execute("SELECT id FROM spans ORDER BY start_ns DESC LIMIT ?",
                                       (n,))}


def test_counts_within_their_budget_are_exact(store):
    q = TraceQueries(store)
    for label, f in _filters(0).items():
        assert q.count_rows(f) == (len(_all_rows(q, f)), True), label


# (schema 9 has no index on variable names: a name alone is a filter the walk tests)
@pytest.mark.parametrize("label", ["service", "range+data", "data"])
def test_a_count_past_its_budget_counts_within_the_newest_calls_and_says_it_is_not_exact(
        store, monkeypatch, label):
    q = TraceQueries(store)
    monkeypatch.setattr(q_mod, "COUNT_MAX_STEPS", 1)
    monkeypatch.setattr(q_mod, "SORT_WINDOW_CALLS", 60)
    f = _filters(0)[label]
    indexed, params = f.indexed_only().where(rows=False)
    newest = {r[0] for r in q.db.execute(
        f"SELECT s.id FROM spans s {indexed} ORDER BY s.start_ns DESC LIMIT 60", params)}
    inside = [r for r in _all_rows(q, f) if r["row_id"] in newest]
    assert len(inside) < len(_all_rows(q, f))  # (the window leaves some out)
    assert q.count_rows(f) == (len(inside), False)


def test_a_count_past_its_budget_is_exact_when_the_window_holds_every_candidate(
        store, monkeypatch):
    q = TraceQueries(store)
    monkeypatch.setattr(q_mod, "COUNT_MAX_STEPS", 1)
    monkeypatch.setattr(q_mod, "SORT_WINDOW_CALLS", CALLS)
    f = _filters(0)["service"]
    assert q.count_rows(f) == (len(_all_rows(q, f)), True)


@pytest.mark.parametrize("label", ["none", "range", "process", "errors",
                                   "process+errors", "range+process", "range+errors"])
def test_a_count_whose_index_holds_its_filters_has_no_budget(store, monkeypatch, label):
    """Every row its walk reads is counted, so it stops at the cap: no budget."""
    q = TraceQueries(store)
    monkeypatch.setattr(q_mod, "COUNT_MAX_STEPS", 1)
    monkeypatch.setattr(q_mod, "SORT_WINDOW_CALLS", 60)
    f = _filters(0)[label]
    assert q.count_rows(f) == (len(_all_rows(q, f)), True), label
