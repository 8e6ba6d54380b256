"""Issue 10: the ribbon's red "Recording stopped" banner, and /metrics without the
health rows of processes that are gone."""
from __future__ import annotations

import os
import socket
import subprocess
import time

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client import generate_latest

from dash_ui._theme import TOKENS
from dash_ui.callbacks.ribbon import recording_banner
from dash_ui.metrics import metrics_registry
from exporters.store import SpanStore


def _health_row(store: SpanStore, *, pid: int, updated_ns: int, recording: int = 1) -> None:
    store.db.execute_write(
        "INSERT OR REPLACE INTO health(pid, host, queue_depth, queue_peak, dropped, written, "
        "updated_ns, recording) VALUES (?, ?, 0, 0, 0, 0, ?, ?)",
        (pid, socket.gethostname(), updated_ns, recording))


def test_metrics_leave_out_the_health_rows_of_dead_processes(tmp_path):
    db = tmp_path / "s.db"
    store = SpanStore(db)
    gone = subprocess.Popen(["true"])
    gone.wait()
    try:
        now = time.time_ns()
        _health_row(store, pid=gone.pid, updated_ns=now)
        _health_row(store, pid=os.getpid(), updated_ns=now)
    finally:
        store.close()
    text = generate_latest(metrics_registry(db)).decode()
    pids = {s.labels["pid"] for f in text_string_to_metric_families(text)
            if f.name == "otel_monitor_exporter_queue_depth" for s in f.samples}
    assert pids == {str(os.getpid())}


def test_recording_stopped_banner_is_red_and_names_the_process():
    rows = [{"pid": 42, "host": "h", "service_name": "svc", "recording": 0, "age_s": 0.1}]
    shown = recording_banner({"recording_stopped": rows})
    assert len(shown) == 1
    text = str(shown[0].children)
    assert "Recording stopped" in text and "42" in text
    assert shown[0].style["backgroundColor"] == TOKENS["err"]
    assert recording_banner({"recording_stopped": []}) == []
