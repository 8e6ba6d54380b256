"""A call's children are found by parent id, whenever they started (async, late, a skewed
clock); a trace's every span is one index range (the trace view); the last OK call of a
process before a failed one is a walk back along its index (the comparison)."""
from __future__ import annotations

import pytest

from exporters import SpanStore
from exporters.queries import NotFound, TraceQueries
from exporters.store import ProcessEntry

TRACE = "ab" * 16
MS = 1_000_000


def _span(i, span_id, parent, start_ns, duration_ms, pid, status="OK", trace=TRACE):
    return [i, span_id, trace, parent, start_ns, duration_ms, pid, None, "svc", status,
            "ok" if status == "OK" else "error", None, None, 1, None]


@pytest.fixture
def trace_store(tmp_path):
    path = tmp_path / "t.db"
    store = SpanStore(path)
    ids = store.process_ids([ProcessEntry("app.root"), ProcessEntry("app.child")])
    root, child = ids["app.root"], ids["app.child"]
    t0 = 1_700_000_000_000_000_000
    spans = (_span(0, 1, None, t0, 10.0, root, "ERR")
             + _span(1, 2, 1, t0 + 1 * MS, 2.0, child)            # inside the call
             + _span(2, 3, 1, t0 + 50 * MS, 2.0, child)           # after it ended (async)
             + _span(3, 4, 1, t0 - 5 * MS, 2.0, child)            # before it (skewed clock)
             + _span(4, 5, 2, t0 + 2 * MS, 0.5, root)             # a grandchild
             + _span(5, 6, 1, t0 + 3 * MS, 1.0, child, trace="cd" * 16))  # another trace
    store.insert_calls(spans, [0, 0, "x", "INPUT", "1"])
    store.close()
    return path


def test_children_are_found_by_parent_id_whenever_they_started(trace_store):
    call = TraceQueries(trace_store).call("%016x" % 1)
    assert [c["span_id"] for c in call["children"]] == ["%016x" % i for i in (4, 2, 3)]


def test_children_read_the_trace_index_without_sorting(trace_store):
    plan = TraceQueries(trace_store).explain_children()
    assert "spans_by_trace" in plan and "TEMP B-TREE" not in plan, plan


def test_a_trace_is_every_span_with_its_parent_in_start_order(trace_store):
    trace = TraceQueries(trace_store).trace(TRACE.upper())
    assert [(s["span_id"][-1], s["parent_span_id"] and s["parent_span_id"][-1])
            for s in trace["spans"]] == [("4", "1"), ("1", None), ("2", "1"), ("5", "2"),
                                         ("3", "1")]
    first = trace["spans"][1]
    assert (first["process"], first["status"], first["duration_ms"], first["pid"]) \
        == ("app.root", "ERR", 10.0, 1)
    assert trace["truncated"] is False


def test_a_trace_reads_the_trace_index_without_sorting(trace_store):
    plan = TraceQueries(trace_store).explain_trace()
    assert "spans_by_trace" in plan and "TEMP B-TREE" not in plan, plan


def test_an_unknown_trace_is_not_found_and_a_malformed_id_a_value_error(trace_store):
    q = TraceQueries(trace_store)
    with pytest.raises(NotFound):
        q.trace("0" * 32)
    with pytest.raises(ValueError):
        q.trace("zz" * 16)



def test_the_last_good_call_is_the_latest_ok_call_of_the_process_before(trace_store):
    q = TraceQueries(trace_store)
    # app.child: spans 4 (t0 - 5 ms), 2 (t0 + 1 ms), 6 (t0 + 3 ms, another trace), 3 (t0 + 50)
    assert q.last_good("%016x" % 3)["span_id"] == "%016x" % 6
    assert q.last_good("%016x" % 2)["span_id"] == "%016x" % 4
    with pytest.raises(NotFound):
        q.last_good("%016x" % 4)                 # the first call of its process
    with pytest.raises(NotFound):
        q.last_good("%016x" % 1)                 # app.root's OK call (5) came after it


def test_the_last_good_call_walks_the_process_index_without_sorting(trace_store):
    plan = TraceQueries(trace_store).explain_last_good()
    assert "spans_by_process" in plan and "TEMP B-TREE" not in plan, plan
