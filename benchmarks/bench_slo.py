"""Burn-rate alert detection in process: from the start of an error spike to a webhook
receiver having the SLO's page, measured in one run.

    python benchmarks/bench_slo.py [--rounds 3] [--window 1m] [--eval-interval 5]
                                   [--rate 2000]

A thread makes monitored calls that return at ``--rate`` calls/s throughout; an SLO
(availability 99 %, ``--window``) is registered on them, evaluated by the alert engine
every ``--eval-interval`` s (the setting slo_eval_interval_s; default its default). Each
round: the spike starts (every call fails, at the same rate), and the time until the
receiver (127.0.0.1, a thread of its own) has the PagerDuty ``trigger`` of the SLO's
page is the detection time; then the spike stops, and the round ends when the page's
``resolve`` arrives (time to resolve printed too).

Printed: each round's detection and resolve times, their median and max, and the
detection time as a ratio to the SLO's window and to the page's long alert window (the
workbook's 1 h scaled to the SLO's window, see otel_monitor.slo). The alert windows of
a short SLO are shorter than the rollups' minute: each reads the current minute, so
detection is bounded by the writer's flush interval plus the evaluation interval, not
by the alert windows.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import otel_monitor  # noqa: E402
from otel_monitor import monitor  # noqa: E402
from otel_monitor.settings import Settings  # noqa: E402
from otel_monitor.slo import REGISTRY, parse_window  # noqa: E402

ROUTING_KEY = "R0UT1NGKEY0000000000000000000000"  # a fake one; otel-monitor: allow
NAME = "bench-availability"
FAILING = threading.Event()


@monitor("bench")
def quote(x: float) -> float:
    if FAILING.is_set():
        raise ValueError("spike")
    return x * 2


class _Receiver(BaseHTTPRequestHandler):
    events: list = []
    cond = threading.Condition()

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.cond:
            self.events.append((time.monotonic(), body))
            self.cond.notify_all()
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args):
        pass


def _wait(action: str, after: int, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    with _Receiver.cond:
        while True:
            for t, body in _Receiver.events[after:]:
                if body.get("event_action") == action and \
                        body.get("dedup_key", "").endswith(f"/slo/{NAME}/page"):
                    return t
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            _Receiver.cond.wait(left)


def _caller(rate: float, stop: threading.Event) -> None:
    period = 1.0 / rate
    next_t = time.monotonic()
    while not stop.is_set():
        try:
            quote(1.0)
        except ValueError:
            pass
        next_t += period
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1:  # far behind: do not burst to catch up
            next_t = time.monotonic()


def main() -> None:
    default_eval = Settings.__dataclass_fields__["slo_eval_interval_s"].default
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--window", default="1m", help="the SLO's window (default 1m)")
    ap.add_argument("--eval-interval", type=float, default=default_eval,
                    help=f"slo_eval_interval_s (default {default_eval:g})")
    ap.add_argument("--rate", type=float, default=2000, help="calls/s (default 2000)")
    opts = ap.parse_args()
    logging.getLogger("otel_monitor").setLevel(logging.ERROR)

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/pd"
    tmp = tempfile.mkdtemp(prefix="otel-monitor-bench-slo-")
    otel_monitor.configure(db_path=os.path.join(tmp, "slo.db"),
                           alert_webhooks=[f"pagerduty+{url}#routing_key={ROUTING_KEY}"],
                           alert_exceptions=False, slo_eval_interval_s=opts.eval_interval)
    slo = otel_monitor.slo(NAME, process=f"{__name__}.quote", objective=99.0,
                           window=opts.window)
    page_long = slo.burn_rules[0].long_s
    window_s = parse_window(opts.window)
    stop = threading.Event()
    caller = threading.Thread(target=_caller, args=(opts.rate, stop), daemon=True)
    caller.start()
    time.sleep(max(2.0, 2 * opts.eval_interval))  # a calm start: state ok
    detect, resolve = [], []
    timeout = window_s + 4 * opts.eval_interval + 30
    try:
        for r in range(opts.rounds):
            seen = len(_Receiver.events)
            t0 = time.monotonic()
            FAILING.set()
            fired = _wait("trigger", seen, timeout)
            FAILING.clear()
            t1 = time.monotonic()
            if fired is None:
                print(f"round {r + 1}: no page within {timeout:.0f} s")
                break
            done = _wait("resolve", seen, timeout)
            detect.append(fired - t0)
            resolve.append((done - t1) if done is not None else float("nan"))
            print(f"round {r + 1}: spike -> page received {fired - t0:7.2f} s; "
                  f"spike over -> resolve received "
                  f"{resolve[-1]:7.2f} s")
            time.sleep(opts.eval_interval)  # calm between rounds
    finally:
        stop.set()
        caller.join(5)
        otel_monitor.shutdown()
        REGISTRY.clear()
        server.shutdown()
    if not detect:
        return
    med, worst = statistics.median(detect), max(detect)
    print(f"SLO window {opts.window}, evaluation every {opts.eval_interval:g} s, "
          f"{opts.rate:,.0f} calls/s, {len(detect)} rounds")
    print(f"   detection (spike -> page at the receiver)  median {med:.2f} s, "
          f"max {worst:.2f} s")
    print(f"   as a share of the SLO window ({window_s:g} s)      median {med / window_s:.3f}, "
          f"max {worst / window_s:.3f}  (target < 1: within the window)")
    print(f"   page's long alert window (1 h scaled)        {page_long:.3g} s: detection is "
          f"{med / page_long:,.0f}x it (the rollups' minute and the evaluation interval "
          f"bound it)")
    print(f"   resolve (spike over -> resolve)              median "
          f"{statistics.median(resolve):.2f} s, max {max(resolve):.2f} s")


if __name__ == "__main__":
    main()
