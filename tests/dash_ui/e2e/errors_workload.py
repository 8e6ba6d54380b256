"""The recording process of the Errors tab's browser test (test_errors_tab.py): calls
through the real decorator, on command, with the alert engine posting to the webhooks
its environment names (OTEL_MONITOR_WEBHOOKS, OTEL_MONITOR_UI_URL):

    python -c "import errors_workload; errors_workload.main(DB)"

reads lines from stdin: ``limit N`` (N failing check_limit calls: one group),
``order N`` (N failing route_order calls: another), ``ok N`` (N calls that return);
after each, everything is in the store and it prints ``done``. An empty line (or
the end of stdin) stops it."""
from __future__ import annotations

import sys

import otel_monitor
from otel_monitor import monitor


@monitor("risk")
def check_limit(book: str, limit: int) -> str:
    if limit < 0:
        raise ValueError(f"negative limit {limit} for {book}")
    return "ok"


@monitor("orders")
def route_order(order_id: int) -> str:
    raise KeyError(f"order-{order_id}")


def run(command: str, n: int, start: int) -> None:
    for i in range(start, start + n):
        try:
            if command == "limit":
                check_limit(f"b{i}", -i - 1)
            elif command == "order":
                route_order(i)
            else:
                check_limit(f"b{i}", 5)
        except (ValueError, KeyError):
            pass


def main(db: str) -> None:
    otel_monitor.configure(db_path=db, flush_interval_s=0.05)
    done = 0
    for line in sys.stdin:
        if not line.strip():
            break
        command, n = line.split()
        run(command, int(n), done)
        done += int(n)
        assert otel_monitor.force_flush(10)
        print("done", flush=True)
    otel_monitor.shutdown()
