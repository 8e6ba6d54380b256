"""Bytes the store spends per call on the demo's mix of calls, and where they go.

    .venv/bin/python benchmarks/bench_store_size.py [--cycles 3000] [--seed 7]

Runs the demo desk (``otel_monitor.demo``: sync, async, generator and otel_span=True
calls, 1.5% failing, a masked api_key) ``--cycles`` times as fast as it goes into a
fresh store through the real pipeline, checkpoints the WAL, and prints:

1. the store's bytes per call: the file as a live writer leaves it (pages are part
   full after random-order index inserts), and its used bytes (``dbstat``);
2. each table and index's share, per call;
3. the reference, built from the very same rows in the same run: the brief's
   seven-column layout (``Process | Data | Data Type | Data Value | Timestamp |
   Status | Exception``), one text table with no index, and the ratio of the store
   to it. Issue 19's target is <= 0.7x the version-8 store's bytes per call
   (README records that figure, measured with this script).
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import otel_monitor  # noqa: E402
from otel_monitor import demo  # noqa: E402

CALL_OBJECTS = ("spans", "data_values")  # and every index on them


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


def call_objects(db: sqlite3.Connection) -> set[str]:
    names = set(CALL_OBJECTS)
    names.update(n for (n,) in db.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name IN (?, ?)",
        CALL_OBJECTS))
    return names


def brief_layout_bytes(db: sqlite3.Connection, tmp: str) -> int:
    """The same calls in the brief's seven text columns, one row per variable (a call
    with no variable is one row), no index: bytes of the file."""
    path = os.path.join(tmp, "brief.db")
    db.execute("ATTACH ? AS brief", (path,))
    db.execute("CREATE TABLE brief.calls (process TEXT, data TEXT, data_type TEXT, "
               "data_value TEXT, timestamp TEXT, status TEXT, exception TEXT)")
    db.execute("""
        INSERT INTO brief.calls
        SELECT p.name, d.data, d.data_type, d.data_value,
               strftime('%Y-%m-%d %H:%M:%f', s.start_ns / 1e9, 'unixepoch'),
               s.status, s.exception
        FROM spans s JOIN processes p ON p.id = s.process_id
        LEFT JOIN data_values d ON d.span = s.id""")
    db.commit()
    db.execute("DETACH brief")
    return os.path.getsize(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
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
    print(f"{calls:,} calls, {data_rows:,} data rows ({data_rows / calls:.2f} per call), "
          f"{args.cycles} demo cycles")
    print(f"store file / call               {file_bytes / calls:8.1f} B")
    print(f"calls' tables+indexes / call    {pages / calls:8.1f} B in pages, "
          f"{used / calls:.1f} B used")
    for name in sorted(ours, key=lambda n: -objects.get(n, (0, 0))[0]):
        if name in objects:
            p, u = objects[name]
            print(f"  {name:28s} {p / calls:8.1f} B   ({u / calls:.1f} used)")
    print(f"brief's 7-column table / call   {brief / calls:8.1f} B  (reference, same rows)")
    print(f"store file / brief's table      = {file_bytes / brief:.2f}")


if __name__ == "__main__":
    main()
