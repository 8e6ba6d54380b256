"""Database, the one owner of SQLite: SQLite's errors become otel-monitor's at its boundary
(naming the file, SQLite's error kept as the cause), a read can be given a step budget,
a read-only store refuses writes, and nothing else in the three packages opens SQLite."""
from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
import time
from pathlib import Path

import pytest

from exporters.database import Database
from exporters.errors import (RowRejected, SchemaError, StepBudgetExceeded, StoreBusy,
                              StoreError, StoreFull)

ROOT = Path(__file__).resolve().parents[2]
COUNT_TO = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
            "SELECT count(*) FROM c")


@pytest.fixture
def db(db_path: str):
    database = Database(db_path, busy_timeout_s=0.2)
    yield database
    database.close()


def _meta(db_path: str, key: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        return conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchall()


def test_a_write_while_another_connection_holds_the_lock_raises_store_busy(db, db_path):
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreBusy) as info:
            db.execute_write("INSERT INTO meta(key, value) VALUES ('k', 'v')")
        assert time.monotonic() - t0 < 5  # gave up after its 0.2 s busy timeout
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert db_path in str(info.value) and "locked" in str(info.value)
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    db.execute_write("INSERT INTO meta(key, value) VALUES ('k', 'v')")  # free again
    assert _meta(db_path, "k") == [("v",)]


def test_a_write_past_the_page_limit_raises_store_full_and_rolls_back(db, db_path):
    pages = db.scalar("PRAGMA page_count")
    db.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(StoreFull) as info:
        with db.transaction():
            db.execute_write("INSERT INTO meta(key, value) VALUES ('small', 'x')")
            db.execute_write("INSERT INTO meta(key, value) VALUES ('big', ?)",
                             ("x" * 1_000_000,))
    assert db_path in str(info.value)
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert _meta(db_path, "small") == []  # the whole transaction was rolled back
    db.execute_write("INSERT INTO meta(key, value) VALUES ('after', 'y')")  # still usable
    assert _meta(db_path, "after") == [("y",)]


def test_a_file_that_is_not_sqlite_raises_schema_error_and_is_left_unchanged(db_path):
    Path(db_path).write_bytes(b"not a database at all\n" * 500)
    before = hashlib.sha256(Path(db_path).read_bytes()).hexdigest()
    with pytest.raises(SchemaError) as info:
        Database(db_path)
    assert db_path in str(info.value)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    with pytest.raises(SchemaError, match=re.escape(db_path)):
        Database(db_path, readonly=True)
    assert hashlib.sha256(Path(db_path).read_bytes()).hexdigest() == before


def test_a_row_a_constraint_refuses_raises_row_rejected(db):
    db.execute_write("INSERT INTO meta(key, value) VALUES ('k', 'v')")
    with pytest.raises(RowRejected) as info:
        db.execute_write("INSERT INTO meta(key, value) VALUES ('k', 'again')")
    assert isinstance(info.value.__cause__, sqlite3.IntegrityError)


def test_max_steps_stops_a_long_read_and_leaves_the_connection_unbounded(db):
    t0 = time.monotonic()
    with pytest.raises(StepBudgetExceeded):
        db.execute(COUNT_TO, (100_000_000,), max_steps=10_000)
    assert time.monotonic() - t0 < 2  # stopped, not run to its end
    assert db.execute(COUNT_TO, (1_000,), max_steps=1_000_000)[0][0] == 1_000
    assert db.scalar(COUNT_TO, (200_000,)) == 200_000  # no budget left behind


def test_a_read_checks_its_step_budget_a_bounded_number_of_times(db):
    """Each check is a call into Python, which takes the GIL back from SQLite: with the
    budget checked every 1,000 steps, a 30 ms read took 3.1 s beside one busy Python
    thread (issue 19's API under load). At most 16 checks a read (+1 for the rounding),
    so it stops within 1/16 past its budget."""
    checks: list[int] = []
    real = db._conn

    class Counting:  # the connection, counting the progress handler's calls
        def __getattr__(self, name):
            return getattr(real, name)

        def set_progress_handler(self, handler, n):
            if handler is None:
                return real.set_progress_handler(None, n)

            def counted():
                checks.append(n)
                return handler()
            return real.set_progress_handler(counted, n)

    db._conn = Counting()
    try:
        with pytest.raises(StepBudgetExceeded):
            db.execute(COUNT_TO, (100_000_000,), max_steps=1_600_000)
    finally:
        db._conn = real
    assert len(checks) <= 17
    assert 1_600_000 < sum(checks) <= 1_600_000 * 17 // 16


def test_a_read_only_database_refuses_writes(db, db_path):
    reader = Database(db_path, readonly=True)
    try:
        with pytest.raises(StoreError, match="readonly") as info:
            reader.execute_write("INSERT INTO meta(key, value) VALUES ('k', 'v')")
        assert not isinstance(info.value, StoreBusy)
        assert reader.scalar("SELECT value FROM meta WHERE key = 'schema_version'")
    finally:
        reader.close()
    assert _meta(db_path, "k") == []


def test_a_read_only_database_on_a_missing_file_names_it_and_creates_nothing(tmp_path):
    path = tmp_path / "absent.db"
    with pytest.raises(StoreError, match=re.escape(str(path))):
        Database(path, readonly=True)
    assert not path.exists()


def test_a_transaction_is_all_or_nothing_and_writes_inside_it_join_it(db, db_path):
    with pytest.raises(RuntimeError):
        with db.transaction():
            db.execute_write("INSERT INTO meta(key, value) VALUES ('a', '1')")
            db.execute_write_many("INSERT INTO meta(key, value) VALUES (?, ?)", [("b", "2")])
            raise RuntimeError("boom")
    assert _meta(db_path, "a") == [] and _meta(db_path, "b") == []
    with db.transaction():
        db.execute_write("INSERT INTO meta(key, value) VALUES ('a', '1')")
        db.execute_write_many("INSERT INTO meta(key, value) VALUES (?, ?)", [("b", "2")])
    assert _meta(db_path, "a") == [("1",)] and _meta(db_path, "b") == [("2",)]


def test_insert_rows_writes_a_large_flat_batch_over_several_statements(db):
    db.execute_write("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    flat = [x for i in range(5_000) for x in (i, f"v{i}")]  # > 2,000 rows a statement
    db.insert_rows("t", ("id", "v"), flat, base=100)
    assert tuple(db.execute("SELECT count(*), min(id), max(id) FROM t")[0]) == (5_000, 100,
                                                                                5_099)
    assert db.scalar("SELECT v FROM t WHERE id = 4100") == "v4000"


def test_only_the_database_module_opens_sqlite_in_the_three_packages():
    """Every connection, statement and SQLite error goes through exporters/database.py."""
    offenders = []
    for package in ("otel_monitor", "exporters", "dash_ui"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "exporters" / "database.py":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"\bimport sqlite3\b|\bfrom sqlite3\b|\bsqlite3\.", line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []
