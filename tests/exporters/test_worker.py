"""BackgroundWorker: the one thread type every background job runs on. It starts on
first use, flushes by ticket, never blocks a caller on a full inbox, and restarts lazily
in a forked child."""
from __future__ import annotations

import os
import threading
import time

from exporters.worker import BackgroundWorker
from exporter_helpers import wait_until


def _names() -> set[str]:
    return {t.name for t in threading.enumerate()}


def test_nothing_runs_until_first_use_then_the_job_runs_on_a_named_thread():
    ran: list[str] = []
    worker = BackgroundWorker("test-worker-lazy", lambda **_: ran.append(
        threading.current_thread().name), interval_s=None)
    assert "test-worker-lazy" not in _names()
    worker.wake()
    try:
        assert wait_until(lambda: ran == ["test-worker-lazy"], timeout=5)
    finally:
        assert worker.stop(5)
    assert "test-worker-lazy" not in _names()


def test_flush_returns_true_once_a_whole_cycle_ran_after_it():
    cycles: list[bool] = []
    worker = BackgroundWorker("test-worker-flush", lambda *, final, flushing: cycles.append(
        flushing), interval_s=None)
    worker.start()
    try:
        assert worker.flush(5) is True
        assert cycles and cycles[-1] is True
    finally:
        worker.stop(5)


def test_flush_returns_false_on_timeout():
    release = threading.Event()
    worker = BackgroundWorker("test-worker-slow", lambda **_: release.wait(5), interval_s=None)
    worker.wake()  # the job is now stuck until released
    try:
        started = time.monotonic()
        assert worker.flush(0.2) is False
        assert time.monotonic() - started < 2
    finally:
        release.set()
        worker.stop(5)


def test_flush_without_a_thread_returns_false_at_once():
    worker = BackgroundWorker("test-worker-idle", lambda **_: None, interval_s=None)
    assert worker.flush(5) is False
    assert "test-worker-idle" not in _names()


def test_a_full_inbox_drops_and_counts_without_blocking():
    release = threading.Event()
    worker = BackgroundWorker("test-worker-inbox", lambda **_: release.wait(5),
                              interval_s=None, inbox_size=3)
    try:
        started = time.monotonic()
        accepted = [worker.put(i) for i in range(10)]
        assert time.monotonic() - started < 1
        assert accepted == [True] * 3 + [False] * 7
        assert worker.dropped == 7 and list(worker.inbox) == [0, 1, 2]
    finally:
        release.set()
        worker.stop(5)


def test_kill_returns_at_once_while_the_job_is_busy():
    release = threading.Event()
    worker = BackgroundWorker("test-worker-kill", lambda **_: release.wait(5), interval_s=None)
    worker.wake()
    assert wait_until(lambda: worker.running, timeout=5)
    started = time.monotonic()
    worker.kill()
    assert time.monotonic() - started < 0.5
    release.set()
    assert wait_until(lambda: not worker.running, timeout=5)


def test_a_forked_child_restarts_the_worker_lazily_with_an_empty_inbox():
    """The parent's thread does not exist in the child: the child's first use starts its
    own, after the owner's ``on_fork``; what the parent had in the inbox stays the parent's."""
    release = threading.Event()
    taken: list = []

    def job(*, final: bool, flushing: bool) -> None:
        release.wait(5)
        while worker.inbox:
            taken.append(worker.inbox.popleft())

    forked: list[int] = []
    worker = BackgroundWorker("test-worker-fork", job, interval_s=None, inbox_size=10,
                              on_fork=lambda: forked.append(os.getpid()))
    worker.put("parent")
    assert wait_until(lambda: worker.running, timeout=5)
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            release.set()
            checks = [not worker.running,                      # no thread yet in the child
                      "test-worker-fork" not in _names(),
                      worker.put("child"),                       # first use: restarts it
                      forked == [os.getpid()],
                      wait_until(lambda: taken == ["child"], timeout=5),
                      worker.flush(5)]
            code = 0 if all(checks) else 2
            worker.stop(5)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    release.set()
    try:
        assert os.waitstatus_to_exitcode(status) == 0
        assert wait_until(lambda: taken == ["parent"], timeout=5)
        assert forked == []
    finally:
        worker.stop(5)
