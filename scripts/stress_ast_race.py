"""Stress: does otel-monitor's writer make another thread's ``ast.parse`` fail?

CPython before 3.11.8 (gh-106905) shares the ``ast`` module's recursion-depth counter
between threads: an ``ast.parse`` on one thread while another is building an AST can make
the other fail with ``SystemError: AST constructor recursion depth mismatch``. The main
thread here parses opentelemetry-semantic-conventions' modules (as
test_monitor_spans's semconv test does) while a thread makes monitored calls fail (the
writer formats their tracebacks off the hot path) and a third makes garbage whose
``__del__`` runs Python code inside the collector (where the GIL can change hands).

    PYTHONPATH=. python scripts/stress_ast_race.py [seconds]

Prints how many parses failed; exits 1 when any did.
"""
from __future__ import annotations

import ast
import pathlib
import sys
import tempfile
import threading
import time

import opentelemetry.semconv as semconv

import otel_monitor
from otel_monitor import monitor


@monitor("stress")
def price(book: dict) -> float:
    return book["spot"] * 2 + book["vol"] ** 2  # a subscript and operators: carets


class Garbage:
    def __del__(self) -> None:
        sum(range(50))  # Python code run by the collector


def main(seconds: float) -> int:
    stop = threading.Event()

    def fail() -> None:
        while not stop.is_set():
            try:
                price({})
            except KeyError:
                pass
            time.sleep(0.005)

    def garbage() -> None:
        while not stop.is_set():
            g = Garbage()
            g.cycle = g  # only the collector frees it
            del g
            time.sleep(0.0001)

    root = pathlib.Path(semconv.__file__).parent
    texts = [p.read_text() for p in [*root.glob("attributes/*.py"),
                                     *root.glob("_incubating/attributes/*.py")]]
    with tempfile.TemporaryDirectory() as tmp:
        otel_monitor.configure(db_path=pathlib.Path(tmp) / "stress.db", flush_interval_s=0.01)
        threads = [threading.Thread(target=fail, daemon=True),
                   threading.Thread(target=garbage, daemon=True)]
        for t in threads:
            t.start()
        parses = failures = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for text in texts:
                if time.monotonic() >= end:
                    break
                parses += 1
                try:
                    ast.parse(text)
                except SystemError as exc:
                    failures += 1
                    print("main thread:", exc, file=sys.stderr)
        stop.set()
        for t in threads:
            t.join()
        print(f"python {sys.version.split()[0]}: {parses} parses, {failures} SystemError",
              flush=True)
        otel_monitor.shutdown()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]) if len(sys.argv) > 1 else 20.0))
