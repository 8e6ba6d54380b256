"""exporters/sigterm.py: a worker's SIGTERM writes what it recorded, then ends it as the
default action would; the application's own handler and wakeup fd are left alone. Each
case runs in a fresh interpreter (a signal's disposition is the whole process's)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(60)

PRELUDE = """
import os, signal, sys, threading, time
from exporters.sigterm import SIGTERM_FLUSH

def flush():
    print("flushed", flush=True)
"""


def run(body: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
                          capture_output=True, text=True, timeout=30, check=False)


def test_sigterm_on_another_thread_flushes_once_and_ends_the_process_by_sigterm():
    done = run("""
        assert SIGTERM_FLUSH.arm(flush)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # main never runs it
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(20)
        print("still alive", flush=True)
    """)
    assert done.returncode == -15, done.stderr
    assert done.stdout.splitlines() == ["flushed"]


def test_an_application_handler_is_never_replaced():
    done = run("""
        got = []
        signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
        print("armed" if SIGTERM_FLUSH.arm(flush) else "not armed", flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)
        print("handled" if got == [signal.SIGTERM] else "not handled", flush=True)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["not armed", "handled"]


def test_a_handler_the_application_installs_after_arming_takes_over_sigterm():
    done = run("""
        assert SIGTERM_FLUSH.arm(flush)
        got = []
        signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)  # the watcher hears of it too (wakeup fd), and must stand aside
        print("handled" if got == [signal.SIGTERM] else "not handled", flush=True)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["handled"]


def test_the_applications_wakeup_fd_is_kept():
    done = run("""
        import socket
        mine, other = socket.socketpair()
        mine.setblocking(False)
        signal.set_wakeup_fd(mine.fileno())
        assert SIGTERM_FLUSH.arm(flush)
        print(signal.set_wakeup_fd(-1) == mine.fileno(), flush=True)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["True"]


def test_a_forked_child_that_does_not_arm_again_has_the_default_action_and_no_wakeup_fd():
    done = run("""
        assert SIGTERM_FLUSH.arm(flush)
        pid = os.fork()
        if pid == 0:
            print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL,
                  signal.set_wakeup_fd(-1), flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["True -1", "-15"]  # no flush in the child


def test_a_forked_child_that_arms_again_flushes_its_own_and_not_its_parents():
    done = run("""
        assert SIGTERM_FLUSH.arm(flush)
        pid = os.fork()
        if pid == 0:
            assert SIGTERM_FLUSH.arm(lambda: print("child flushed", flush=True))
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
    """)
    assert done.returncode == 0, done.stderr  # the parent is alive: its watcher not woken
    assert done.stdout.splitlines() == ["child flushed", "-15"]


def test_a_sigterm_a_forked_child_gets_before_letting_go_of_the_socket_ends_the_child_only():
    """Until the child's at-fork hook runs (after any registered before ours: here one
    that takes 0.5 s, as a slow one of the application's might), the child holds the
    parent's socket, as its wakeup fd too: its SIGTERM must not wake the parent's
    watcher, which flushed and killed the parent (10 of 10 runs of 40 forks)."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import os, signal, time
        os.register_at_fork(after_in_child=lambda: time.sleep(0.5))
        from exporters.sigterm import SIGTERM_FLUSH
        assert SIGTERM_FLUSH.arm(lambda: print("parent flushed", flush=True))
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        time.sleep(0.2)  # the child is inside the slow hook
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        time.sleep(0.5)
        print("child", os.waitstatus_to_exitcode(status), "parent alive", flush=True)
    """)], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    assert done.stdout.splitlines() == ["child -15 parent alive"]


def test_arming_with_no_thread_to_wake_leaves_sigterm_at_its_default():
    done = run("""
        def no_thread(self):
            raise RuntimeError("can't start new thread")
        threading.Thread.start = no_thread
        print("armed" if SIGTERM_FLUSH.arm(flush) else "not armed",
              signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    """)
    assert done.returncode == -15, done.stderr
    assert done.stdout.splitlines() == ["not armed True"]
