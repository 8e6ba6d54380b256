"""A legacy store, as the brief's MVP wrote it: run as a script in its own process.

    python brief_mvp.py OUT.db FIRST STOP T0 [--journal wal|delete]

The calls go through the brief's own decorator (appendix 7.2, ``benchmarks/_reference.py``,
as written there), which only puts records on ``core_queue``; what writes them is the
brief's MVP writer as its text describes it ("Queue consumer maps record type →
appropriate INSERT") into its schema (3.2, ``logs/core_logs.db``, SQLite WAL), written
here from that text. Call ``i`` (FIRST <= i < STOP) happens at second ``T0 + i`` on a
clock this script drives (the decorator reads ``time.time()`` and ``datetime.utcnow()``),
so a call has the same content in every process that makes it: overlapping ranges make
overlapping stores. Each ``i`` calls ``desk.pricing.price`` (3 inputs and a return) and,
every 7th, ``desk.risk.check_limit``, which raises (1 input, ERR, a traceback).
"""
from __future__ import annotations

import datetime as _datetime
import sqlite3
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _reference  # noqa: E402  (the brief's decorator, as written)
from exporter_helpers import BRIEF_DDL  # noqa: E402  (the brief's schema, section 3.2)


class Clock:
    """``time.time()`` and ``datetime.utcnow()`` for the decorator: each read of time()
    moves 2.5 ms on, so durations are real-looking and the same in every process."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        self.now += 0.0025
        return self.now

    def utcnow(self) -> _datetime.datetime:
        return _datetime.datetime.fromtimestamp(self.now, _datetime.timezone.utc).replace(
            tzinfo=None)


def install(clock: Clock) -> None:
    _reference.time = types.SimpleNamespace(time=clock.time)
    _reference.datetime = types.SimpleNamespace(
        datetime=types.SimpleNamespace(utcnow=clock.utcnow))


def price(spot, strike, vol):
    return round(max(spot - strike, 0.0) + vol * 10, 4)


def check_limit(book):
    raise ValueError(f"limit breached for {book}")


for _fn in (price, check_limit):  # the dotted names an application's modules would give
    _fn.__module__ = "desk.pricing" if _fn is price else "desk.risk"
price = _reference.monitor("pricing", mask=("vol",))(price)
check_limit = _reference.monitor("risk")(check_limit)


def calls_of(i: int) -> list[str]:
    """The processes call ``i`` records (for the tests' expected counts)."""
    return ["desk.pricing.price"] + (["desk.risk.check_limit"] if i % 7 == 0 else [])


def record(first: int, stop: int, t0: int) -> None:
    clock = Clock()
    install(clock)
    for i in range(first, stop):
        clock.now = float(t0 + i)
        price(100.0 + i, strike=100.0, vol=0.2)
        if i % 7 == 0:
            try:
                check_limit(f"book-{i}")
            except ValueError:
                pass


def write(path: str, journal: str) -> int:
    """The MVP's queue consumer: each record to its table, in one transaction."""
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode={journal}")
    conn.executescript(BRIEF_DDL)
    written = 0
    with conn:
        while not _reference.core_queue.empty():
            record_ = _reference.core_queue.get_nowait()
            if record_[0] == "process":
                _, ts, process, _group, status, duration_ms, exc = record_  # no group column
                conn.execute("INSERT INTO process_trace(ts, process, status, duration_ms, "
                             "exception) VALUES (?, ?, ?, ?, ?)",
                             (ts, process, status, duration_ms, exc))
            else:
                _, ts, process, data, data_type, value, status, exc = record_
                conn.execute("INSERT INTO data_trace(ts, process, data, data_type, data_value, "
                             "status, exception) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (ts, process, data, data_type, value, status, exc))
            written += 1
    conn.close()
    return written


if __name__ == "__main__":
    out, first, stop, t0 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    journal = sys.argv[sys.argv.index("--journal") + 1] if "--journal" in sys.argv else "wal"
    record(first, stop, t0)
    print(write(out, journal))
