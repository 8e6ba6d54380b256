"""Helpers for the decorator's tests: read the real SQLite store back through its views.

Every assertion about what was recorded goes through ``otel_monitor.force_flush()``
and a fresh ``sqlite3`` connection on the store file, as a reader in another process
(the UI) would see it.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any, Callable

import otel_monitor


def process_name(fn: Callable[..., Any]) -> str:
    """The ``Process`` column of a monitored callable: dotted ``module.qualname``."""
    return f"{fn.__module__}.{fn.__qualname__}"


class Store:
    """Reads one store file through the ``process_trace`` / ``data_trace`` views."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self.path = Path(path)

    def query(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        assert otel_monitor.force_flush(10), "force_flush timed out or left a batch unwritten"
        con = sqlite3.connect(self.path)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute(sql, params)]
        finally:
            con.close()

    def calls(self, fn_or_name: Callable[..., Any] | str) -> list[dict[str, Any]]:
        """``process_trace`` rows of one process, oldest first."""
        name = fn_or_name if isinstance(fn_or_name, str) else process_name(fn_or_name)
        return self.query("SELECT * FROM process_trace WHERE process = ? ORDER BY start_ns, id",
                          (name,))

    def call(self, fn_or_name: Callable[..., Any] | str) -> dict[str, Any]:
        """The one ``process_trace`` row of a process (fails if there is not exactly one)."""
        rows = self.calls(fn_or_name)
        assert len(rows) == 1, f"expected exactly one call, got {len(rows)}: {rows}"
        return rows[0]

    def data(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        """``data_trace`` rows of one call, in capture order."""
        return self.query("SELECT * FROM data_trace WHERE span_id = ? ORDER BY seq",
                          (call["span_id"],))

    def values(self, call: dict[str, Any]) -> dict[str, str]:
        """``{data: data_value}`` of one call (``return`` for the OUTPUT row)."""
        return {r["data"]: r["data_value"] for r in self.data(call)}

    def health(self) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM health")

    def all_text(self) -> str:
        """Every text value of every table and view, and the raw bytes of the store's
        files (main file, WAL), decoded leniently: for "appears nowhere" checks."""
        tables = [r["name"] for r in self.query(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")]
        parts: list[str] = []
        for table in tables:
            for row in self.query(f'SELECT * FROM "{table}"'):
                parts.extend(str(v) for v in row.values() if v is not None)
        for suffix in ("", "-wal", "-journal"):
            f = Path(str(self.path) + suffix)
            if f.exists():
                parts.append(f.read_bytes().decode("utf-8", "replace"))
        return "\n".join(parts)
