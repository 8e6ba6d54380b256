"""Bytes the store spends per call on the demo's mix of calls, and where they go.

    .venv/bin/python benchmarks/bench_store_size.py [--cycles 3000] [--seed 7] [--batch 500]

Runs the demo desk (``otel_monitor.demo``: sync, async, generator and otel_span=True
calls, 1.5% failing, a masked api_key) ``--cycles`` times as fast as it goes into a
fresh store through the real pipeline, checkpoints the WAL, and prints:

1. the store's bytes per call: the file as a live writer leaves it (pages are part
   full after random-order index inserts), and its used bytes (``dbstat``);
2. each table and index's share, per call;
3. issue 19's figure: the same calls written again, in the same order and batches of
   ``--batch`` calls, into a fresh store of this version (``SpanStore.insert_calls``)
   and into one of version 8 (``schema.TABLES_V8``, the layout before interned names,
   binary trace ids and no name index: rows inserted as version 8's writer did), each
   the bytes of its calls' tables and indexes (with version 9's key tables) per call,
   and their ratio. Target: <= 0.7;
4. the brief's seven-column layout (``Process | Data | Data Type | Data Value |
   Timestamp | Status | Exception``), one text table with no index, from the same rows,
   and the ratio of the store file to it.
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import otel_monitor  # noqa: E402
from exporters.database import Database  # noqa: E402
from exporters.merge import _store_calls  # noqa: E402
from exporters.schema import TABLES_V8  # noqa: E402
from exporters.store import ProcessEntry, SpanStore  # noqa: E402
from otel_monitor import demo  # noqa: E402

CALL_OBJECTS = ("spans", "data_values")  # and every index on them
KEY_TABLES = ("data_names", "process_names", "services")  # version 9's, and their indexes
V8_SPAN_COLUMNS = ("id", "span_id", "trace_id", "parent_span_id", "start_ns", "duration_ms",
                   "process_id", "process_group", "service_name", "status", "outcome",
                   "exception_type", "exception", "pid", "weight")


def record(path: str, cycles: int, seed: int) -> None:
    otel_monitor.configure(db_path=path, queue_size=1_000_000, retention_hours=24)
    desk = demo.RiskDesk(seed=seed)
    for _ in range(cycles):
        try:
            desk.cycle()
        except Exception:  # a dropped cycle, as the demo's driver does
            pass
    if not otel_monitor.force_flush(120):
        raise SystemExit("the writer did not finish")
    otel_monitor.shutdown()


def per_object(db: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    """object name -> (bytes of its pages, bytes used in them)."""
    rows = db.execute("SELECT name, SUM(pgsize), SUM(pgsize - unused) FROM dbstat "
                      "GROUP BY name").fetchall()
    return {name: (pages, used) for name, pages, used in rows}


def call_objects(db: sqlite3.Connection, tables=CALL_OBJECTS) -> set[str]:
    names = {t for (t,) in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
             if t in tables}
    marks = ",".join("?" * len(names))
    names.update(n for (n,) in db.execute(
        f"SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name IN ({marks})",
        sorted(names)))
    return names


def object_bytes(path: str, tables=CALL_OBJECTS) -> int:
    """Bytes of the pages of ``tables`` and their indexes in the store at ``path``."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    objects = per_object(db)
    total = sum(objects[n][0] for n in call_objects(db, tables) if n in objects)
    db.close()
    return total


def batches(path: str, batch: int):
    """The store's calls in row-id order, ``batch`` at a time, as ``insert_calls``
    takes them (hex trace ids, names as text), with their processes' names."""
    src = Database(path, readonly=True)
    try:
        for calls in _store_calls(src, batch):
            spans, data = [], []
            for i, c in enumerate(calls):
                spans += [i, c.span_id, c.trace_id, c.parent_span_id, c.start_ns,
                          c.duration_ms, c.process, c.process_group, c.service_name,
                          c.status, c.outcome, c.exception_type, c.exception, c.pid, c.weight]
                for seq, name, kind, value in c.data:
                    data += [i, seq, name, kind, value]
            yield spans, data
    finally:
        src.close()


def rewrite_v9(path: str, target: str, batch: int) -> None:
    """The calls again, through this version's writer (SpanStore.insert_calls)."""
    store = SpanStore(target)
    width = len(V8_SPAN_COLUMNS)
    for spans, data in batches(path, batch):
        names = set(spans[6::width])
        ids = store.process_ids([ProcessEntry(n) for n in names])
        spans[6::width] = [ids[n] for n in spans[6::width]]
        store.insert_calls(spans, data)
    store.close()


def rewrite_v8(path: str, target: str, batch: int) -> None:
    """The calls again, in version 8's layout (its DDL; its writer's rows: text names and
    trace ids, the process group and service name on each call)."""
    db = sqlite3.connect(target, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(TABLES_V8)
    process_ids: dict[str, int] = {}
    width, base = len(V8_SPAN_COLUMNS), 1
    span_sql = (f"INSERT INTO spans({', '.join(V8_SPAN_COLUMNS)}) "
                f"VALUES ({','.join('?' * width)})")
    for spans, data in batches(path, batch):
        db.execute("BEGIN")
        for name in set(spans[6::width]) - process_ids.keys():
            process_ids[name] = db.execute("INSERT INTO processes(name) VALUES (?)",
                                           (name,)).lastrowid
        rows = [spans[o:o + width] for o in range(0, len(spans), width)]
        for r in rows:
            r[0] += base
            r[6] = process_ids[r[6]]
        db.executemany(span_sql, rows)
        db.executemany("INSERT INTO data_values(span, seq, data, data_type, data_value) "
                       "VALUES (?, ?, ?, ?, ?)",
                       [(data[o] + base, *data[o + 1:o + 5]) for o in range(0, len(data), 5)])
        db.execute("COMMIT")
        base += len(rows)
    db.close()


def brief_layout_bytes(db: sqlite3.Connection, tmp: str) -> int:
    """The same calls in the brief's seven text columns, one row per variable (a call
    with no variable is one row), no index: bytes of the file."""
    path = os.path.join(tmp, "brief.db")
    db.execute("ATTACH ? AS brief", (path,))
    db.execute("CREATE TABLE brief.calls (process TEXT, data TEXT, data_type TEXT, "
               "data_value TEXT, timestamp TEXT, status TEXT, exception TEXT)")
    db.execute("""
        INSERT INTO brief.calls
        SELECT p.name, n.name, n.kind, d.data_value,
               strftime('%Y-%m-%d %H:%M:%f', s.start_ns / 1e9, 'unixepoch'),
               s.status, s.exception
        FROM spans s JOIN processes p ON p.id = s.process_id
        LEFT JOIN data_values d ON d.span = s.id LEFT JOIN data_names n ON n.id = d.name_id""")
    db.commit()
    db.execute("DETACH brief")
    return os.path.getsize(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "store.db")
        record(path, args.cycles, args.seed)
        db = sqlite3.connect(path)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        calls = db.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
        data_rows = db.execute("SELECT COUNT(*) FROM data_values").fetchone()[0]
        objects = per_object(db)
        ours = call_objects(db)
        file_bytes = os.path.getsize(path)
        pages = sum(objects[n][0] for n in ours if n in objects)
        used = sum(objects[n][1] for n in ours if n in objects)
        brief = brief_layout_bytes(db, tmp)
        db.close()
        rewrite_v9(path, os.path.join(tmp, "v9.db"), args.batch)
        rewrite_v8(path, os.path.join(tmp, "v8.db"), args.batch)
        v9 = object_bytes(os.path.join(tmp, "v9.db"), CALL_OBJECTS + KEY_TABLES)
        v8 = object_bytes(os.path.join(tmp, "v8.db"))
    print(f"{calls:,} calls, {data_rows:,} data rows ({data_rows / calls:.2f} per call), "
          f"{args.cycles} demo cycles")
    print(f"store file / call               {file_bytes / calls:8.1f} B")
    print(f"calls' tables+indexes / call    {pages / calls:8.1f} B in pages, "
          f"{used / calls:.1f} B used")
    for name in sorted(ours, key=lambda n: -objects.get(n, (0, 0))[0]):
        if name in objects:
            p, u = objects[name]
            print(f"  {name:28s} {p / calls:8.1f} B   ({u / calls:.1f} used)")
    print(f"same calls rewritten in batches of {args.batch} (tables+indexes+key tables / call):")
    print(f"  schema 9 (this version)       {v9 / calls:8.1f} B")
    print(f"  schema 8 (reference)          {v8 / calls:8.1f} B")
    print(f"  schema 9 / schema 8           = {v9 / v8:.3f}   (issue 19 target <= 0.7)")
    print(f"brief's 7-column table / call   {brief / calls:8.1f} B  (reference, same rows)")
    print(f"store file / brief's table      = {file_bytes / brief:.2f}")


if __name__ == "__main__":
    main()
