"""What error groups cost the writer, measured against a reference in the same run.

    python benchmarks/bench_error_groups.py [--batches 30] [--batch 2000]

1. OK calls: ``SpanStore.insert_calls`` of batches with no failure, into a store of the
   current schema, against the same batches into a store of version 6's shape (no
   ``spans.error_group`` column, no group tables) with the group upkeep switched off:
   calls/s of each (written alternately) and their ratio, and the bytes per call of each
   store (its used pages over its calls).
2. Failures: batches where 1% and 100% of the calls fail (3 kinds, messages varying),
   with the group upkeep and without it (the same batches' cost before issue 15), and
   OK batches, alternately in the same store: calls/s and the ratio.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from exporters import groups  # noqa: E402
from exporters.store import ProcessEntry, SpanStore  # noqa: E402

_next = [1 << 40]


def _tb(n: int) -> tuple[str, str]:
    kind = n % 3
    try:
        if kind == 0:
            raise ValueError(f"quote {n} stale")
        if kind == 1:
            raise KeyError(f"order 0x{n * 7919:x}")
        raise RuntimeError(f"limit {n} exceeded for 'b{n}'")
    except Exception as exc:
        return type(exc).__name__, "".join(traceback.format_exception(exc))


def batch(pid: int, size: int, fail_every: int | None) -> tuple[list, list]:
    spans: list = []
    data: list = []
    now = time.time_ns()
    for i in range(size):
        _next[0] += 1
        sid = _next[0]
        failed = fail_every is not None and i % fail_every == 0
        etype, text = _tb(sid) if failed else (None, None)
        spans += (i, sid, "%032x" % sid, None, now + i, 0.5, pid, "bench", "svc",
                  "ERR" if failed else "OK", "error" if failed else "ok", etype, text, 1, None)
        data += (i, 0, "x", "INPUT", repr(sid))
        if not failed:
            data += (i, 1, "return", "OUTPUT", "1.5")
    return spans, data


def open_store(path: str, *, v6: bool) -> tuple[SpanStore, int]:
    store = SpanStore(path)
    if v6:
        store.db.execute("DROP INDEX spans_by_error_group")
        store.db.execute("ALTER TABLE spans DROP COLUMN error_group")
        store.db.execute("DROP TABLE error_groups")
        store.db.execute("DROP TABLE error_group_minutes")
    pid = store.process_ids([ProcessEntry("bench.proc", "bench")])["bench.proc"]
    return store, pid


def timed(store: SpanStore, b: tuple[list, list]) -> float:
    spans, data = list(b[0]), list(b[1])
    t0 = time.perf_counter()
    store.insert_calls(spans, data)
    return time.perf_counter() - t0


def bytes_per_call(store: SpanStore) -> float:
    calls = store.db.scalar("SELECT count(*) FROM spans")
    return store.used_bytes() / calls


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--batch", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        current, pid_c = open_store(os.path.join(tmp, "v7.db"), v6=False)
        old, pid_o = open_store(os.path.join(tmp, "v6.db"), v6=True)
        maintain = groups.maintain
        t_cur = t_old = 0.0
        for _ in range(args.batches):  # alternately, the same kind of batch
            t_cur += timed(current, batch(pid_c, args.batch, None))
            groups.maintain = lambda *a, **k: []  # version 6 had no upkeep
            try:
                t_old += timed(old, batch(pid_o, args.batch, None))
            finally:
                groups.maintain = maintain
        n = args.batches * args.batch
        print(f"OK calls, {n:,} each: current {n / t_cur:,.0f} calls/s, "
              f"version-6 shape {n / t_old:,.0f} calls/s, ratio {t_old / t_cur:.3f} "
              f"(1.0 = no cost)")
        print(f"bytes per OK call: current {bytes_per_call(current):.1f}, "
              f"version-6 shape {bytes_per_call(old):.1f}")

        rounds = max(1, args.batches // 3)
        for every, label in ((100, "1% failing"), (1, "100% failing")):
            t_ok = t_err = t_off = 0.0
            for _ in range(rounds):
                t_ok += timed(current, batch(pid_c, args.batch, None))
                t_err += timed(current, batch(pid_c, args.batch, every))
                groups.maintain = lambda *a, **k: []
                try:
                    t_off += timed(current, batch(pid_c, args.batch, every))
                finally:
                    groups.maintain = maintain
            rate = args.batch * rounds
            print(f"{label}: {rate / t_err:,.0f} calls/s with group upkeep, "
                  f"{rate / t_off:,.0f} without (ratio {t_off / t_err:.3f}); "
                  f"OK batches {rate / t_ok:,.0f}")
        groups_n = current.db.scalar("SELECT count(*) FROM error_groups")
        print(f"groups: {groups_n}")
        current.close()
        old.close()


if __name__ == "__main__":
    main()
