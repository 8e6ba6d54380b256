"""The dependency graph's call edges: the same edges as the plain join they replaced
(names joined to every call), read from spans_by_time without the children's rows."""
from __future__ import annotations

import random

import pytest

from exporters.queries import TraceQueries
from exporters.queries.filters import dicts
from exporters.queries.graph import EDGES_SQL
from exporters.store import ProcessEntry, SpanStore

PROCESSES = [f"app.p{i}" for i in range(6)]
T0 = 1_700_000_000 * 10**9
CALLS = 1_500

# The edge query before the covering spans_by_time: the reference.
PLAIN_EDGES = """SELECT pp.name AS source, pc.name AS target, count(*) AS calls
                 FROM spans c JOIN spans par ON par.span_id = c.parent_span_id
                 JOIN processes pc ON pc.id = c.process_id
                 JOIN processes pp ON pp.id = par.process_id
                 WHERE c.start_ns >= ? AND c.parent_span_id IS NOT NULL
                 GROUP BY par.process_id, c.process_id"""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Calls over 1,500 s: roots, children of earlier calls (some parents long before
    the window, several children per parent), and children whose parent is not stored."""
    path = tmp_path_factory.mktemp("graph") / "g.db"
    rnd = random.Random(11)
    st = SpanStore(path)
    ids = st.process_ids([ProcessEntry(p) for p in PROCESSES])
    spans = []
    for k in range(CALLS):
        kind = rnd.random()
        parent = (None if kind < 0.3 or k == 0 else
                  rnd.getrandbits(62) + 10**6 if kind > 0.9 else  # parent not stored
                  rnd.randrange(max(1, k - 400), k + 1))          # an earlier call
        spans += [k, k + 1, f"{k:032x}", parent, T0 + k * 10**9, 1.0,
                  ids[rnd.choice(PROCESSES)], None, None, "OK", "ok", None, None, 1, None]
    st.insert_calls(spans, [])
    st.close()
    return path


@pytest.mark.parametrize("since_s", [0, 700, 1_400, 2_000])
def test_call_edges_are_those_of_the_plain_join(store, since_s):
    q = TraceQueries(store)
    since = T0 + since_s * 10**9
    got = sorted(tuple(r.values()) for r in dicts(q.db, EDGES_SQL, (since,)))
    expected = sorted(tuple(r.values()) for r in dicts(q.db, PLAIN_EDGES, (since,)))
    assert got == expected
    if since_s < 2_000:
        assert got  # a window with edges, not two empty answers


def test_call_edges_match_the_calls_counted_in_python(store):
    q = TraceQueries(store)
    since = T0 + 700 * 10**9
    rows = dicts(q.db, "SELECT s.span_id, s.parent_span_id, s.start_ns, p.name FROM spans s "
                       "JOIN processes p ON p.id = s.process_id")
    process_of = {r["span_id"]: r["name"] for r in rows}
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        if r["start_ns"] >= since and r["parent_span_id"] in process_of:
            key = (process_of[r["parent_span_id"]], r["name"])
            counts[key] = counts.get(key, 0) + 1
    graph = q.graph(window_s=(T0 + CALLS * 10**9 - since) / 10**9, now_ns=T0 + CALLS * 10**9)
    assert {(e["source"], e["target"]): e["calls"] for e in graph["edges"]
            if e["kind"] == "call"} == counts


def test_call_edges_read_the_window_from_spans_by_time_alone(store):
    plan = TraceQueries(store).explain_graph()
    assert "COVERING INDEX spans_by_time" in plan, plan
    assert "spans_by_span_id" in plan, plan
