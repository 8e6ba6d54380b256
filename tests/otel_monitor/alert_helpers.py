"""Helpers for the feed and alert tests: read the store's state tables as the UI would
(a fresh sqlite3 connection), waiting for the alert engine's thread where needed."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

Rows = list[dict[str, Any]]

# The receiver's paths for the two webhooks the ``alerting`` fixture configures.
SLACK, PD = "/slack", "/pagerduty"
ROUTING_KEY = "R0UT1NGKEY0000000000000000000000"  # a fake one; otel-monitor: allow


def read(path: Path | str, sql: str, params: tuple = ()) -> Rows:
    """Rows of ``sql`` (no flush: what another process would see now)."""
    if not Path(path).exists():
        return []
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, params)]
    except sqlite3.OperationalError as exc:  # the engine has not created its tables yet
        if "no such table" in str(exc):
            return []
        raise
    finally:
        con.close()


def wait_rows(path: Path | str, sql: str, predicate: Callable[[Rows], bool],
              timeout: float = 5.0, params: tuple = ()) -> Rows:
    """Poll ``sql`` until ``predicate(rows)`` holds; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        rows = read(path, sql, params)
        if predicate(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {sql} -> {rows}")
        time.sleep(0.02)


def alerts(path: Path | str) -> Rows:
    """The alert log, oldest first."""
    return read(path, "SELECT * FROM alerts ORDER BY id")


def wait_alerts(path: Path | str, predicate: Callable[[Rows], bool],
                timeout: float = 5.0) -> Rows:
    return wait_rows(path, "SELECT * FROM alerts ORDER BY id", predicate, timeout)


def texts(blocks: list[dict]) -> str:
    """Every text of a Slack message's blocks, joined."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    out.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return "\n".join(out)
