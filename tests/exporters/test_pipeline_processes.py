"""Nothing is lost at flush, shutdown or exit; every call is recorded exactly once across
fork and spawn; several processes (and gunicorn workers) share one store.

Each call of the workloads stores one unique INPUT value, so counting those values tells a
loss (missing) from a double (stored twice)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import otel_monitor
from otel_monitor import monitor
from exporter_helpers import (HERE, free_port, kill_group, read, run_workload, scalar,
                              start_workload, stored_keys)


def expect_keys(*groups: tuple[str, int]) -> set[str]:
    """The stored form (repr) of the keys the workload makes for each (tag, count)."""
    return {repr(f"{tag}-{i}") for tag, n in groups for i in range(n)}


def assert_each_once(db: str, expected: set[str]) -> None:
    keys = stored_keys(db)
    missing = expected - set(keys)
    doubles = {k: n for k, n in keys.items() if n > 1}
    extra = set(keys) - expected
    assert not missing, f"{len(missing)} calls lost, e.g. {sorted(missing)[:3]}"
    assert not doubles, f"{len(doubles)} calls stored twice, e.g. {list(doubles)[:3]}"
    assert not extra, f"unexpected rows {sorted(extra)[:3]}"


def assert_clean(result, what: str = "workload") -> None:
    assert result.returncode == 0, f"{what} exited {result.returncode}:\n{result.stderr[-3000:]}"
    assert "database is locked" not in result.stderr
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


def pending_at_fork(result) -> int:
    return int(result.stdout.split("pending_at_fork=")[1].split()[0])


def assert_intact(db: str) -> None:
    assert scalar(db, "PRAGMA integrity_check") == "ok"


# -- force_flush, shutdown, exit -----------------------------------------------------------------

@monitor("tests")
def quote(key: str) -> str:
    return key[::-1]


def test_n_decorated_calls_then_force_flush_gives_n_rows(store_path):
    db = str(store_path)
    for i in range(2000):
        quote(f"q{i}")
    assert otel_monitor.force_flush()
    assert_each_once(db, {repr(f"q{i}") for i in range(2000)})
    assert scalar(db, "SELECT count(*) FROM process_trace WHERE process = ?",
                  (f"{__name__}.quote",)) == 2000


def test_shutdown_writes_every_call_made_before_it(store_path):
    db = str(store_path)
    for i in range(700):
        quote(f"s{i}")
    otel_monitor.shutdown()
    assert_each_once(db, {repr(f"s{i}") for i in range(700)})


@pytest.mark.parametrize("configure", ["from-environment", "configure()"])
def test_process_that_exits_without_flushing_has_every_call_stored(tmp_path, configure):
    db = str(tmp_path / "exit.db")
    env = {"CONFIGURE": "1" if configure == "configure()" else "0"}
    result = run_workload(db, "calls", "exit", "3000", env=env)
    assert_clean(result)
    assert_each_once(db, expect_keys(("exit", 3000)))


def test_exiting_process_records_its_function_source_in_the_catalog(tmp_path):
    db = str(tmp_path / "catalog.db")
    assert_clean(run_workload(db, "calls", "cat", "5"))
    row = read(db, "SELECT name, process_group, file, line, source FROM processes")[0]
    assert row["name"] == "__main__.record"
    assert row["process_group"] == "workload"
    assert Path(row["file"]).name == "workload.py"
    assert row["source"].lstrip().startswith('@monitor("workload")')
    assert "def record(key: str) -> int:" in row["source"]
    lines = Path(row["file"]).read_text().splitlines()
    assert "def record" in lines[row["line"] - 1] or "@monitor" in lines[row["line"] - 1]


# -- fork and spawn ------------------------------------------------------------------------------

def test_os_fork_records_parent_and_child_calls_exactly_once(tmp_path):
    """The parent's calls still queued at fork are written by the parent only; the
    child's calls are written by the child, which exits normally."""
    db = str(tmp_path / "fork.db")
    result = run_workload(db, "fork", "f", "300", env={"CONFIGURE": "1"})
    assert_clean(result)
    assert pending_at_fork(result) > 0
    assert_each_once(db, expect_keys(("f-parent-before", 300), ("f-child", 300),
                                     ("f-parent-after", 300)))
    assert scalar(db, "SELECT count(DISTINCT pid) FROM spans") == 2
    assert_intact(db)


def test_multiprocessing_fork_children_record_every_call_exactly_once(tmp_path):
    db = str(tmp_path / "mpfork.db")
    result = run_workload(db, "mp", "fork", "m", "200", "3", env={"CONFIGURE": "1"})
    assert_clean(result)
    assert pending_at_fork(result) > 0
    assert_each_once(db, expect_keys(("m-parent-before", 200), ("m-parent-during", 200),
                                     ("m-child0", 200), ("m-child1", 200), ("m-child2", 200)))
    assert scalar(db, "SELECT count(DISTINCT pid) FROM spans") == 4
    assert_intact(db)


def test_multiprocessing_spawn_children_configured_from_the_environment_record_every_call(
        tmp_path):
    db = str(tmp_path / "mpspawn.db")
    result = run_workload(db, "mp", "spawn", "s", "200", "2", env={"CONFIGURE": "1"})
    assert_clean(result)
    assert_each_once(db, expect_keys(("s-parent-before", 200), ("s-parent-during", 200),
                                     ("s-child0", 200), ("s-child1", 200)))
    # A spawned child imports the workload as __mp_main__: its calls are its own process.
    assert {r[0] for r in read(db, "SELECT DISTINCT process FROM process_trace")} == {
        "__main__.record", "__mp_main__.record"}
    assert_intact(db)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_workers_calls_are_recorded_when_the_pool_context_manager_exits(tmp_path, method):
    """``with Pool() as pool`` terminates its workers (SIGTERM) on exit: what they
    recorded and had not written yet must still reach the store."""
    db = str(tmp_path / f"pool-{method}.db")
    result = run_workload(db, "pool", method, "p", env={"CONFIGURE": "1"}, timeout=20)
    assert_clean(result)
    assert "jobs=12" in result.stdout
    assert_each_once(db, expect_keys(*((f"p-job{j}", 50) for j in range(12))))


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_pool_workers_that_configure_at_import_flush_when_terminated(tmp_path, method):
    """A script that calls configure() at its top: a spawned worker configures while
    its bootstrap imports the main module, before multiprocessing names its parent.
    Found by review: such workers were never armed for SIGTERM, and the Pool's exit
    lost every call they had queued (0 of 600)."""
    db = str(tmp_path / f"pool-{method}.db")
    result = run_workload(db, "pool", method, "p", env={"CONFIGURE": "import"}, timeout=30)
    assert_clean(result)
    assert "jobs=12" in result.stdout
    assert_each_once(db, expect_keys(*((f"p-job{j}", 50) for j in range(12))))


def test_sigterm_arriving_while_a_worker_is_inside_its_flush_ends_it_with_its_calls_written(
        tmp_path):
    """Pool.terminate() can catch a worker inside its exit flush (force_flush waking the
    writer, inside threading.Event.set): the SIGTERM handler must not wait on the locks the
    interrupted flush holds. The workload places the signal exactly there."""
    db = str(tmp_path / "sigterm.db")
    result = run_workload(db, "sigterm-in-flush", env={"CONFIGURE": "1"}, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    # It ended (killed by the SIGTERM, or at the end of its exit flush), not hung:
    assert result.stdout.strip() in ("child_status=-15", "child_status=0"), result.stdout
    assert_each_once(db, expect_keys(("parent", 5), ("child", 20)))


@pytest.mark.parametrize("mode", ["sigterm-main-blocked", "sigterm-reconfigured"])
def test_sigterm_a_worker_cannot_handle_on_its_main_thread_ends_it_with_its_calls_written(
        tmp_path, mode):
    """A Python signal handler runs only on the main thread, between bytecodes: an idle
    Pool worker waiting on its task queue's semaphore when SIGTERM lands just before the
    wait (or on another thread) never runs it. Pool.__exit__ then hung for ever on that
    worker (caught with gdb in CI's flake: SIGTERM tripped, the handler never run).
    A child that configures again after the fork flushes through its new writer (the
    one stopped by that configure took the calls from the queue and wrote none)."""
    db = str(tmp_path / "sigterm-blocked.db")
    result = run_workload(db, mode, env={"CONFIGURE": "1"}, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "child_status=-15", result.stdout
    assert_each_once(db, expect_keys(("parent", 5), ("child", 20)))


def test_children_forked_while_the_parent_is_writing_record_their_calls(tmp_path):
    """A fork taken while the parent's writer is inside a write transaction must not leave
    the child's connections locked out of the store (SQLite keeps in-process lock state)."""
    db = str(tmp_path / "forkbusy.db")
    result = run_workload(db, "forkbusy", "8", timeout=90)
    keys = set(stored_keys(db))
    missing = expect_keys(*((f"kid{k}", 10) for k in range(8))) - keys
    assert not missing, (f"{len(missing)} child calls lost; "
                         f"{result.stdout.strip().splitlines()[-1:]}")
    assert_clean(result)


def test_fork_is_not_held_up_while_another_connection_holds_the_store_locked(tmp_path):
    """While another process writes the store for 2 s, the writer thread waits for the
    lock; the application's os.fork() must not wait with it."""
    db = str(tmp_path / "forklocked.db")
    result = run_workload(db, "fork-while-locked", timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lock_held_after_fork=1" in result.stdout, result.stdout[-2000:]


# -- several processes on one store ------------------------------------------------------------------

def test_four_writer_processes_and_a_reader_share_one_store_without_loss_or_lock_errors(
        tmp_path):
    db = str(tmp_path / "shared.db")
    stop_file = tmp_path / "stop-reader"
    reader = start_workload(db, "reader", str(stop_file))
    writers = [start_workload(db, "calls", f"w{n}", "5000") for n in range(4)]
    try:
        outputs = [w.communicate(timeout=90) for w in writers]
    except subprocess.TimeoutExpired:
        for w in writers:
            kill_group(w)
        raise
    finally:
        stop_file.touch()
        reader_out, reader_err = reader.communicate(timeout=30)
    for writer, (out, err) in zip(writers, outputs):
        assert_clean(subprocess.CompletedProcess(writer.args, writer.returncode, out, err),
                     "writer")
    assert_clean(subprocess.CompletedProcess(reader.args, reader.returncode, reader_out,
                                             reader_err), "reader")
    assert int(reader_out.strip().split("=")[1]) > 0  # it did read while they wrote
    assert scalar(db, "SELECT count(*) FROM spans") == 20_000
    assert_each_once(db, expect_keys(*((f"w{n}", 5000) for n in range(4))))
    assert scalar(db, "SELECT count(DISTINCT pid) FROM spans") == 4
    assert_intact(db)


def _get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 only
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


@pytest.mark.parametrize("preload", [False, True], ids=["workers-import", "preload-warmup"])
def test_gunicorn_four_workers_record_every_request_exactly_once(tmp_path, preload):
    db = str(tmp_path / "web.db")
    port = free_port()
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    args = [gunicorn, "-w", "4", "-b", f"127.0.0.1:{port}", "--no-control-socket",
            "--graceful-timeout", "20", "--chdir", str(HERE), "gunicorn_app:app"]
    env = dict(os.environ, OTEL_MONITOR_DB=db, PYTHONUNBUFFERED="1")
    if preload:  # the master imports the app and makes a call before forking the workers
        args.insert(1, "--preload")
        env["GUNICORN_APP_WARMUP"] = "1"
    server = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.communicate()[1][-3000:]
            try:
                if _get(base + "/", timeout=1)[0] == 404:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not come up"
            time.sleep(0.05)
        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda i: _get(f"{base}/price?key=r{i}"), range(400)))
    finally:
        server.send_signal(signal.SIGTERM)  # graceful: workers finish and exit normally
        try:
            _, stderr = server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            kill_group(server)
            raise
    assert responses == [(200, f"R{i}".encode()) for i in range(400)]
    assert server.returncode == 0, stderr[-3000:]
    assert "database is locked" not in stderr and "Traceback" not in stderr, stderr[-3000:]
    expected = {repr(f"r{i}") for i in range(400)} | ({repr("warmup")} if preload else set())
    assert_each_once(db, expected)
    assert scalar(db, "SELECT count(*) FROM process_trace WHERE process = "
                      "'gunicorn_app.price'") == len(expected)
    assert scalar(db, "SELECT count(DISTINCT pid) FROM spans") >= 2
    assert_intact(db)


def test_a_main_process_that_imports_multiprocessing_is_not_armed_for_sigterm(tmp_path):
    """Only workers flush at SIGTERM and die of it: an application's own process keeps
    SIGTERM as it set it. (multiprocessing aliases __mp_main__ to __main__ in every
    process: taken for a worker's bootstrap, the demo died of SIGTERM, -15, where its
    own handler stops it cleanly.)"""
    probe = ("import multiprocessing, otel_monitor\n"
             "from exporters.sigterm import SIGTERM_FLUSH\n"
             f"otel_monitor.configure(db_path={str(tmp_path / 'm.db')!r})\n"
             "print(SIGTERM_FLUSH.armed)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60,
                          env={**os.environ, "PYTHONPATH": str(HERE.parents[1])})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]
