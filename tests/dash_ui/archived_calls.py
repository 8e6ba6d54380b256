"""A store whose older calls were archived then purged (issue 17's cold archive): 20
calls over two hours, 8 h before the purge's now, in the archive; 3 calls still hot."""
from __future__ import annotations

import os

from exporters import SpanStore
from exporters.retention import RetentionWorker
from exporters.store import ProcessEntry
from recording import settings_env_cleared

HOUR_NS = 3600 * 10**9
BASE_NS = 1_700_000_000 * 10**9 - (1_700_000_000 * 10**9) % HOUR_NS


def insert(store: SpanStore, starts: list[int], first_id: int, *, err_every: int = 0) -> None:
    """Calls of app.price and app.fee (alternating) at ``starts``, span ids from
    ``first_id``; every ``err_every``-th one failed (no return row)."""
    ids = store.process_ids([ProcessEntry("app.price", "tests"), ProcessEntry("app.fee", "tests")])
    spans, data = [], []
    for i, start in enumerate(starts):
        sid = first_id + i
        err = err_every and i % err_every == 0
        proc = "app.fee" if i % 2 else "app.price"
        spans += (i, sid, "%032x" % sid, None, start, 1.5 + i, ids[proc], "tests", "svc",
                  "ERR" if err else "OK", "error" if err else "ok",
                  "ValueError" if err else None, "ValueError: bad" if err else None,
                  os.getpid(), None)
        data += (i, 0, "key", "INPUT", f"k{sid}")
        if not err:
            data += (i, 1, "return", "OUTPUT", "None")
    store.insert_calls(spans, data)


def archive_path(db: str) -> str:
    """Where the settings put the archive of ``db`` (beside it), as ``serve`` reads it."""
    with settings_env_cleared():
        from otel_monitor.settings import load_settings
        return load_settings({"db_path": db}).archive_path


def build(db: str) -> str:
    """Span ids 1-20 archived (6 min apart from BASE_NS, one in 5 failed), 100-102 hot."""
    store = SpanStore(db)
    try:
        insert(store, [BASE_NS + i * 6 * 60 * 10**9 for i in range(20)], 1, err_every=5)
        insert(store, [BASE_NS + 7 * HOUR_NS + i for i in range(3)], 100)
        worker = RetentionWorker(db, archive_dir=archive_path(db))
        assert worker.run_once(store, now_ns=BASE_NS + 8 * HOUR_NS) == 20
        assert store.query("SELECT count(*) FROM spans")[0][0] == 3
    finally:
        store.close()
    return db
