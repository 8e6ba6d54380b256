"""OTLP ingest at ``POST /v1/traces``: 1,000-span protobuf bodies from 1 and 4 senders.

    python benchmarks/bench_ingest.py [--bodies 48] [--senders 1 4] [--phoenix]
    python benchmarks/bench_ingest.py --split [--bodies 48]

``otel-monitor serve`` runs on a fresh store; each sender is a process of its own
posting its share of the bodies back to back over one keep-alive connection (a 503 is
retried after 50 ms, as an OTLP exporter retries it; it is counted). The bodies are
made beforehand by the OTel SDK's own OTLP encoder: spans shaped like otel-monitor's
(four inputs, a return, one call in 20 failing with an exception event).

Per sender count it prints: spans/s acknowledged (first request sent -> last answer),
the server's CPU per 1,000 spans (its utime + stime from /proc over the run), the p50
and p99 request time, the 503s retried, and the spans lost (sent - stored, counted in
SQLite afterwards). Targets (issue 19): >= 50,000 spans/s with 4 senders, <= 20 ms of
server CPU per 1,000 spans, p99 request <= 250 ms, nothing lost.

``--split``: no server; in this process, on one thread, the CPU time (thread time, so
other processes' load counts little) per 1,000 spans of each step of a request, median
over the bodies: decode (``ingest.parse``), convert (``ingest_spans.convert``), rows
(the stored-id check and the flattening, ``IngestWriter.rows``) and insert (the one
transaction, ``SpanStore.insert_calls``).

Reference (``--phoenix``): Arize Phoenix (its own venv, scripts/phoenix-venv.sh) given
the same bodies, measured the same way but for loss (it stores asynchronously).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import httpx  # noqa: E402

from served import clean_env, free_port, otel_monitor_server, wait_ready  # noqa: E402

SPANS_PER_BODY = 1000
PHOENIX_BIN = os.path.join(ROOT, ".venv-phoenix", "bin", "phoenix")
TARGET_SPANS_S, TARGET_CPU_MS, TARGET_P99_MS = 50_000, 20.0, 250.0
PROTOBUF = {"content-type": "application/x-protobuf"}


def make_bodies(n: int, service: str, seed: int) -> list[bytes]:
    """``n`` protobuf bodies of SPANS_PER_BODY spans each, encoded by the SDK's encoder."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    spans = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource(
        {"service.name": service, "host.name": "bench-host", "process.pid": 4242}))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("otel-monitor")
    rnd = random.Random(seed)
    bodies = []
    for _ in range(n):
        spans.clear()
        for i in range(SPANS_PER_BODY):
            with tracer.start_as_current_span("risk.price", attributes={
                    "code.function.name": f"risk.price_{i % 7}",
                    "monitor.process_group": "risk",
                    "monitor.input.spot": repr(rnd.uniform(90, 110)),
                    "monitor.input.strike": "100", "monitor.input.vol": "0.2",
                    "monitor.input.t": "0.5",
                    "monitor.output.return": repr(rnd.random()),
                    "monitor.outcome": "OK"}) as span:
                if i % 20 == 0:
                    span.set_status(Status(StatusCode.ERROR, "negative limit"))
                    span.record_exception(ValueError(f"negative limit {i}"))
        bodies.append(encode_spans(spans.get_finished_spans()).SerializeToString())
    return bodies


def _send(url: str, bodies: list[bytes], out: mp.Queue) -> None:
    """One sender: post each body until acknowledged; report times and retries."""
    times, retried, failed = [], 0, 0
    with httpx.Client(timeout=60) as client:
        for body in bodies:
            while True:
                t0 = time.perf_counter()
                status = client.post(url, content=body, headers=PROTOBUF).status_code
                times.append(time.perf_counter() - t0)
                if status == 200:
                    break
                if status != 503:
                    failed += 1
                    break
                retried += 1
                time.sleep(0.05)
    out.put((times, retried, failed, time.perf_counter()))


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_senders(url: str, pid: int, bodies: list[bytes], senders: int) -> dict:
    shares = [bodies[i::senders] for i in range(senders)]
    out: mp.Queue = mp.get_context("fork").Queue()
    procs = [mp.get_context("fork").Process(target=_send, args=(url, share, out))
             for share in shares]
    cpu0, t0 = _cpu_s(pid), time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    elapsed = max(r[3] for r in results) - t0
    cpu = _cpu_s(pid) - cpu0
    times = sorted(t for r in results for t in r[0])
    spans = len(bodies) * SPANS_PER_BODY
    return {"spans_s": spans / elapsed, "cpu_ms_per_1000": cpu * 1000 / (spans / 1000),
            "p50_ms": statistics.median(times) * 1000,
            "p99_ms": times[min(len(times) - 1, int(0.99 * len(times)))] * 1000,
            "retried": sum(r[1] for r in results), "failed": sum(r[2] for r in results)}


def split(n_bodies: int) -> None:
    """The in-process CPU split of a request's steps (``--split``)."""
    from dash_ui.ingest import PROTOBUF as KIND, parse
    from dash_ui.ingest_spans import convert, open_writer

    bodies = make_bodies(n_bodies + 1, "split", seed=7)
    steps: dict[str, list[float]] = {"decode": [], "convert": [], "rows": [], "insert": []}
    with tempfile.TemporaryDirectory() as tmp:
        writer = open_writer(os.path.join(tmp, "split.db"))
        writer.retention = None  # no purge thread: this thread's time only
        for i, body in enumerate(bodies):
            t0 = time.thread_time()
            message, rejected = parse(body, KIND)
            t1 = time.thread_time()
            converted = convert(message, max_value_length=writer.max_value_length,
                                rejected=rejected)
            t2 = time.thread_time()
            with writer._lock:
                store = writer._open()
                rows = writer.rows(store, converted)
                t3 = time.thread_time()
                store.insert_calls(*rows)
            t4 = time.thread_time()
            if i:  # the first one warms up (imports, catalog rows)
                for name, a, b in (("decode", t0, t1), ("convert", t1, t2),
                                   ("rows", t2, t3), ("insert", t3, t4)):
                    steps[name].append((b - a) * 1000 * 1000 / SPANS_PER_BODY)
        writer.shutdown()
    medians = {name: statistics.median(times) for name, times in steps.items()}
    print("  CPU per 1,000 spans (thread time, median of "
          f"{n_bodies} bodies): " + ", ".join(f"{name} {ms:.1f} ms"
                                             for name, ms in medians.items())
          + f"; total {sum(medians.values()):.1f} ms = "
          f"{sum(medians.values()) / TARGET_CPU_MS:.2f} x target {TARGET_CPU_MS:g} ms")


@contextmanager
def phoenix_server(work: str):
    port = free_port()
    env = {**clean_env(), "PHOENIX_HOST": "127.0.0.1", "PHOENIX_PORT": str(port),
           "PHOENIX_GRPC_PORT": str(free_port()), "PHOENIX_WORKING_DIR": work,
           "PHOENIX_SQL_DATABASE_URL": f"sqlite:///{os.path.join(work, 'spans.db')}",
           "PHOENIX_TELEMETRY_ENABLED": "false"}
    proc = subprocess.Popen([PHOENIX_BIN, "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        yield f"http://127.0.0.1:{port}/v1/traces", proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def stored(db: str, service: str) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT count(*) FROM spans WHERE service_id = "
                           "(SELECT id FROM services WHERE name = ?)",
                           (service,)).fetchone()[0]


def line(name: str, senders: int, r: dict, lost: int | None) -> str:
    return (f"  {name:<13} {senders} sender(s)  {r['spans_s']:>9,.0f} spans/s  "
            f"CPU {r['cpu_ms_per_1000']:6.1f} ms/1000 spans  p50 {r['p50_ms']:6.1f} ms  "
            f"p99 {r['p99_ms']:7.1f} ms  503s retried {r['retried']}  failed {r['failed']}"
            + ("" if lost is None else f"  lost {lost}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bodies", type=int, default=48, help="bodies per sender count")
    ap.add_argument("--senders", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--phoenix", action="store_true", help="also measure Arize Phoenix")
    ap.add_argument("--split", action="store_true",
                    help="no server: the CPU of each step of a request, in this process")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; {args.bodies} bodies of "
          f"{SPANS_PER_BODY} spans per run")
    if args.split:
        split(args.bodies)
        return
    ours: dict[int, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "ingest.db")
        with otel_monitor_server(db) as (base, pid):
            url = base + "/v1/traces"
            run_senders(url, pid, make_bodies(2, "warm-up", 0), 1)  # imports, schema
            for n in args.senders:
                service = f"bench-{n}"
                bodies = make_bodies(args.bodies, service, seed=n)
                ours[n] = run_senders(url, pid, bodies, n)
                lost = len(bodies) * SPANS_PER_BODY - stored(db, service)
                ours[n]["lost"] = lost
                print(line("otel-monitor", n, ours[n], lost))
        theirs: dict[int, dict] = {}
        if args.phoenix:
            with phoenix_server(os.path.join(tmp, "phoenix")) as (url, pid):
                run_senders(url, pid, make_bodies(2, "warm-up", 0), 1)
                for n in args.senders:
                    theirs[n] = run_senders(url, pid,
                                            make_bodies(args.bodies, f"bench-{n}", n), n)
                    print(line("phoenix", n, theirs[n], None))
    print()
    for n, r in ours.items():
        ratio = (f" = {r['spans_s'] / theirs[n]['spans_s']:.1f} x Phoenix's"
                 if n in theirs else "")
        print(f"{n} sender(s): {r['spans_s']:,.0f} spans/s{ratio}"
              + (f" (target >= {TARGET_SPANS_S:,} with 4: "
                 f"{r['spans_s'] / TARGET_SPANS_S:.2f} x target)" if n == 4 else ""))
        cpu_ratio = (f", {r['cpu_ms_per_1000'] / theirs[n]['cpu_ms_per_1000']:.3f} x "
                     "Phoenix's" if n in theirs else "")
        print(f"  server CPU {r['cpu_ms_per_1000']:.1f} ms per 1,000 spans "
              f"= {r['cpu_ms_per_1000'] / TARGET_CPU_MS:.2f} x target {TARGET_CPU_MS:g} ms"
              f"{cpu_ratio}; p99 {r['p99_ms']:.0f} ms = "
              f"{r['p99_ms'] / TARGET_P99_MS:.2f} x target; lost {r['lost']}")


if __name__ == "__main__":
    main()
