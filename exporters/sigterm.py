"""Write what a worker process recorded when it is told to stop (SIGTERM), reliably.

``multiprocessing.Pool`` ends its workers with SIGTERM, whose default action kills at
once: calls recorded and not yet written would be lost. So a worker that left SIGTERM at
its default gets a handler that writes them first, then ends the process as SIGTERM would
have (same exit status).

That handler cannot be a plain Python one: CPython runs those on the main thread only,
between bytecodes, and a main thread blocked in C never gets there. An idle Pool worker
waits on its task queue's semaphore; when SIGTERM lands just before that wait (or on
another thread), CPython notes it and the wait goes on, for ever if a terminated sibling
held the semaphore: ``Pool.__exit__`` hung. So the work is done by a thread of ours woken
through a pipe, by the interpreter's wakeup fd (written by the C-level handler on
whichever thread the signal lands) and by the Python handler when it does run.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
from typing import Callable

_log = logging.getLogger("otel_monitor")

_SIGTERM_BYTE = bytes([signal.SIGTERM])


class SigtermFlush:
    """One per process (a signal's disposition is the process's): ``arm(flush)`` from the
    main thread; ``flush`` is called once, on the watcher thread, when SIGTERM comes."""

    def __init__(self) -> None:
        self.flush: Callable[[], object] | None = None
        self._pipe: tuple[int, int] | None = None  # (read, write), the watcher's wake-up

    def arm(self, flush: Callable[[], object]) -> bool:
        """Flush on SIGTERM if the process leaves SIGTERM at its default (a handler of the
        application's own is never replaced). True when armed."""
        if threading.current_thread() is not threading.main_thread():
            return False  # signal.signal: the main thread's only
        current = signal.getsignal(signal.SIGTERM)
        if current is not signal.SIG_DFL and current != self._on_signal:
            return False
        self.flush = flush
        return self._pipe is not None or self._start()

    def after_fork_in_child(self) -> None:
        """The inherited pipe is the parent's and its watcher thread is not here: SIGTERM
        goes back to its default action, until the child arms again (with its own)."""
        if self._pipe is None:
            return
        read_fd, write_fd = self._pipe
        self._pipe, self.flush = None, None
        try:  # (at-fork hooks run on the child's main thread)
            if signal.getsignal(signal.SIGTERM) == self._on_signal:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
            previous = signal.set_wakeup_fd(-1)
            if previous not in (-1, write_fd):  # the application's: put it back
                signal.set_wakeup_fd(previous)
        except ValueError:
            pass
        for fd in (read_fd, write_fd):
            os.close(fd)

    # -- internals ------------------------------------------------------------------

    def _start(self) -> bool:
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)  # a signal handler must never wait
        self._pipe = (read_fd, write_fd)
        try:
            signal.signal(signal.SIGTERM, self._on_signal)
        except (ValueError, OSError):  # not allowed here (a subinterpreter): the default
            self._pipe = None
            os.close(read_fd)
            os.close(write_fd)
            return False
        threading.Thread(target=self._watch, args=(read_fd,), name="otel-monitor-sigterm",
                         daemon=True).start()
        # The C-level handler writes each caught signal's number here, from whichever
        # thread it lands on, even when the Python handler never runs. An application
        # that has a wakeup fd of its own (asyncio's) keeps it.
        previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        if previous != -1:
            signal.set_wakeup_fd(previous)
        return True

    def _on_signal(self, signum: int, frame: object) -> None:
        if self._pipe is None:  # disarmed at a fork, before the child put SIG_DFL back
            _die_of_sigterm()
        try:
            os.write(self._pipe[1], _SIGTERM_BYTE)
        except OSError:  # full: the watcher is already awake
            pass

    def _watch(self, read_fd: int) -> None:
        while True:
            try:
                got = os.read(read_fd, 64)
            except OSError:  # closed after a fork
                return
            if not got:
                return
            # Other caught signals' numbers arrive too; and SIGTERM is ours to handle only
            # while the application has not put a handler of its own in our place.
            if signal.SIGTERM in got and signal.getsignal(signal.SIGTERM) == self._on_signal:
                break
        try:
            if self.flush is not None:
                self.flush()
        except Exception:
            _log.warning("otel-monitor: flush at SIGTERM failed", exc_info=True)
        finally:
            _die_of_sigterm()


def _die_of_sigterm() -> None:
    """End the process as SIGTERM's default action does. ``signal.signal`` works on the
    main thread only; elsewhere libc's ``signal()`` restores the default (the process
    ends at once, so CPython's view of the handler no longer matters)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    else:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.signal(ctypes.c_int(signal.SIGTERM), ctypes.c_void_p(0))  # SIG_DFL
        except (OSError, AttributeError):  # no libc to call: end it the hard way
            os.kill(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGTERM)


SIGTERM_FLUSH = SigtermFlush()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=SIGTERM_FLUSH.after_fork_in_child)
