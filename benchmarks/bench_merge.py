"""How fast ``otel-monitor merge`` merges the brief's legacy stores, and that it streams.

    python benchmarks/bench_merge.py [--files 10] [--rows 1000000] [--dir DIR] [--keep]

Makes --files legacy stores in the brief's MVP schema (``process_trace`` and
``data_trace``, section 3.2) of --rows calls each (``process_trace`` rows; each call has
two INPUT rows and one OUTPUT row in ``data_trace``, so 3 x --rows data rows), quickly with
``executemany`` (not measured). Then, each in its own process, on the same files:

* reference: the fastest copy SQLite can do of the same rows: a new file with the brief's
  tables and, per source, ``ATTACH`` + ``INSERT INTO ... SELECT *`` (no ids, no
  conversion, no duplicate check, one transaction per table);
* merge: ``exporters.merge.merge_stores`` of all the files into a new otel-monitor store
  (``keep_all``: the files span more than the 6 h retention), as ``otel-monitor merge``
  runs it: content-derived ids, timestamps converted, duplicate check, short transactions.

Printed: each one's time, calls/s and data rows/s, merge/reference, and each process's peak
RSS (``resource.getrusage``) against one source file's size and an idle interpreter that
imported the same modules: a merge that loaded a source whole would peak above the file.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BRIEF_SCHEMA = """
CREATE TABLE process_trace (
  ts TEXT NOT NULL, process TEXT NOT NULL, status TEXT NOT NULL, duration_ms REAL NOT NULL,
  exception TEXT, PRIMARY KEY (ts, process));
CREATE TABLE data_trace (
  ts TEXT NOT NULL, process TEXT NOT NULL, data TEXT NOT NULL, data_type TEXT NOT NULL,
  data_value TEXT NOT NULL, status TEXT NOT NULL, exception TEXT,
  PRIMARY KEY (ts, process, data, data_type));
CREATE INDEX idx_data_ts ON data_trace(ts);
"""
PROCESSES = 50  # per file; (ts, process) is the brief's key: 50 calls per second at most
TRACEBACK = ("Traceback (most recent call last):\n  File \"desk/risk.py\", line 42, in check\n"
             "ValueError: limit breached\n")


def make_legacy(path: str, file_no: int, calls: int, start_s: int) -> None:
    conn = sqlite3.connect(path)
    conn.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;" + BRIEF_SCHEMA)
    names = [f"desk{file_no}.book.fn{p}" for p in range(PROCESSES)]
    batch = 50_000
    for lo in range(0, calls, batch):
        heads, data = [], []
        for j in range(lo, min(calls, lo + batch)):
            ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start_s + j // PROCESSES))
            process = names[j % PROCESSES]
            failed = j % 97 == 0
            status, exc = ("ERR", TRACEBACK) if failed else ("OK", None)
            heads.append((ts, process, status, 0.25 + (j % 1000) / 100, exc))
            data += [(ts, process, "spot", "INPUT", repr(100.0 + j % 5000 / 8), status, exc),
                     (ts, process, "book", "INPUT", repr(f"book-{j % 300}"), status, exc)]
            if not failed:
                data.append((ts, process, "return", "OUTPUT", repr(j * 0.5), status, exc))
        with conn:
            conn.executemany("INSERT INTO process_trace VALUES (?, ?, ?, ?, ?)", heads)
            conn.executemany("INSERT INTO data_trace VALUES (?, ?, ?, ?, ?, ?, ?)", data)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


# -- the measured runs, each in its own process -------------------------------------------------

def child_reference(into: str, sources: list[str]) -> dict:
    t0 = time.perf_counter()
    conn = sqlite3.connect(into, isolation_level=None)
    conn.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" + BRIEF_SCHEMA)
    for src in sources:
        conn.execute("ATTACH ? AS src", ("file:" + src + "?mode=ro",))
        for table in ("process_trace", "data_trace"):
            conn.execute("BEGIN")
            conn.execute(f"INSERT INTO main.{table} SELECT * FROM src.{table}")
            conn.execute("COMMIT")
        conn.execute("DETACH src")
    conn.close()
    return {"seconds": time.perf_counter() - t0}


def child_merge(into: str, sources: list[str]) -> dict:
    from exporters.merge import merge_stores

    t0 = time.perf_counter()
    results = merge_stores(sources, into, keep_all=True)
    seconds = time.perf_counter() - t0
    errors = [r.error for r in results if r.error]
    assert not errors, errors
    return {"seconds": seconds, "calls": sum(r.calls for r in results),
            "rows": sum(r.rows for r in results),
            "duplicates": sum(r.duplicates for r in results)}


def child_idle(into: str, sources: list[str]) -> dict:
    import exporters.merge  # noqa: F401  (what the merge process imports, nothing run)

    return {"seconds": 0.0}


def run_child(kind: str, into: str, sources: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, into, *sources],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="calls (process_trace rows) per file; 3 data rows each")
    parser.add_argument("--dir", help="where to put the files (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    args = parser.parse_args()
    folder = args.dir or tempfile.mkdtemp(prefix="bench-merge-")
    os.makedirs(folder, exist_ok=True)
    try:
        sources = []
        t0 = time.perf_counter()
        start = int(time.time()) - args.files * (args.rows // PROCESSES + 1)
        for f in range(args.files):
            path = os.path.join(folder, f"app_{f}.db")
            if not os.path.exists(path):
                make_legacy(path, f, args.rows, start + f * (args.rows // PROCESSES + 1))
            sources.append(path)
        print(f"{args.files} legacy files x {args.rows:,} calls ({3 * args.rows:,} data rows "
              f"at most): made in {time.perf_counter() - t0:.0f} s, "
              f"{os.path.getsize(sources[0]) / 2**20:.0f} MiB each")
        idle = run_child("idle", os.path.join(folder, "none.db"), [])
        ref = run_child("reference", os.path.join(folder, "reference.db"), sources)
        merged = run_child("merge", os.path.join(folder, "merged.db"), sources)
        calls, rows = merged["calls"], merged["rows"]
        print(f"reference (ATTACH + INSERT ... SELECT *): {ref['seconds']:.1f} s, "
              f"{calls / ref['seconds']:,.0f} calls/s, {rows / ref['seconds']:,.0f} data rows/s,"
              f" peak RSS {ref['maxrss_mib']:.0f} MiB")
        print(f"merge (exporters.merge.merge_stores):     {merged['seconds']:.1f} s, "
              f"{calls / merged['seconds']:,.0f} calls/s, "
              f"{rows / merged['seconds']:,.0f} data rows/s, peak RSS "
              f"{merged['maxrss_mib']:.0f} MiB ({calls:,} calls, {rows:,} rows, "
              f"{merged['duplicates']:,} duplicates)")
        print(f"merge / reference time: {merged['seconds'] / ref['seconds']:.1f}x; idle "
              f"interpreter with the same imports: {idle['maxrss_mib']:.0f} MiB; one source "
              f"file: {os.path.getsize(sources[0]) / 2**20:.0f} MiB")
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
        elif not args.keep:
            for name in ("reference.db", "merged.db"):
                for suffix in ("", "-wal", "-shm"):
                    try:
                        os.remove(os.path.join(folder, name + suffix))
                    except FileNotFoundError:
                        pass


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, into, sources = sys.argv[2], sys.argv[3], sys.argv[4:]
        report = {"idle": child_idle, "reference": child_reference, "merge": child_merge}[kind](
            into, sources)
        report["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(report))
    else:
        main()
