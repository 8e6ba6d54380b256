"""A store where a sorted trace-table page takes the bounded strategy: more calls than
SORT_WINDOW_CALLS, every one with the variable ``spot`` (a duration sort filtered on it
is then computed within the newest calls only). The oldest calls are the slowest, so a
bounded page visibly differs from the exact order. ``app.quiet`` has few enough calls
to be sorted whole."""
from __future__ import annotations

import time
from pathlib import Path

from exporters.queries import SORT_WINDOW_CALLS
from exporters.store import ProcessEntry, SpanStore

BUSY, QUIET = "app.busy", "app.quiet"
NAME = "spot"


def make_bounded_store(path: Path) -> tuple[int, int]:
    """Write the store at ``path``; returns (calls, the window's size in calls). Call k
    (oldest first) takes ``calls - k`` ms; every 12th call is ``app.quiet``'s."""
    calls = SORT_WINDOW_CALLS + 1_000
    t0 = time.time_ns() - calls * 10**8  # 0.1 s apart, the newest just now
    store = SpanStore(path)
    ids = store.process_ids([ProcessEntry(BUSY), ProcessEntry(QUIET)])
    spans, data = [], []
    for k in range(calls):
        proc = QUIET if k % 12 == 0 else BUSY
        spans += [k, k + 1, f"{k:032x}", None, t0 + k * 10**8, float(calls - k), ids[proc],
                  None, "svc", "OK", "ok", None, None, 1, None]
        data += [k, 0, NAME, "INPUT", repr(k)]
    store.insert_calls(spans, data)
    store.close()
    return calls, SORT_WINDOW_CALLS
