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
through a socket: by the Python handler when it does run, and by the interpreter's wakeup
fd, written by the C-level handler on whichever thread the signal lands.

A forked child shares that socket until its at-fork hook lets go of it, and a SIGTERM
sent to it meanwhile would wake the parent's thread. On Linux each datagram carries the
sending process's id (``SO_PASSCRED``), and the thread acts on its own process's only;
elsewhere the wakeup fd is not used (the Python handler alone, which checks its pid).

Limits: an application that sets a wakeup fd of its own (asyncio's
``loop.add_signal_handler``) keeps it, and then only the Python handler wakes the thread;
``arm`` claims the wakeup fd again once it is free.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import struct
import threading
from typing import Callable

_log = logging.getLogger("otel_monitor")

_SIGTERM_BYTE = bytes([signal.SIGTERM])
_CREDENTIALS = hasattr(socket, "SO_PASSCRED")  # Linux: a datagram names its sender
_UCRED = struct.Struct("iII")                  # struct ucred: pid, uid, gid


class SigtermFlush:
    """One per process (a signal's disposition is the process's): ``arm(flush)`` from the
    main thread; ``flush`` is called once, on the watcher thread, when SIGTERM comes."""

    def __init__(self) -> None:
        self.flush: Callable[[], object] | None = None
        self._watch_end: socket.socket | None = None
        self._wake_end: socket.socket | None = None  # written by both handlers
        self._watcher: threading.Thread | None = None
        self._pid = 0

    @property
    def armed(self) -> bool:
        return self.flush is not None and self._wake_end is not None

    def arm(self, flush: Callable[[], object]) -> bool:
        """Flush on SIGTERM if the process leaves SIGTERM at its default (a handler of the
        application's own is never replaced). True when armed."""
        if threading.current_thread() is not threading.main_thread():
            return False  # signal.signal: the main thread's only
        current = signal.getsignal(signal.SIGTERM)
        if current is not signal.SIG_DFL and current != self._on_signal:
            return False
        self.flush = flush
        if self._wake_end is not None and self._watcher is not None \
                and self._watcher.is_alive():
            self._claim_wakeup_fd()
            return True
        return self._start()

    def after_fork_in_child(self) -> None:
        """The socket is the parent's and its watcher thread is not here: SIGTERM goes
        back to its default action, until the child arms again (with its own)."""
        if self._wake_end is None:
            return
        ends = (self._watch_end, self._wake_end)
        wake_fd = self._wake_end.fileno()
        self._watch_end = self._wake_end = self._watcher = self.flush = None
        try:  # (at-fork hooks run on the child's main thread)
            if signal.getsignal(signal.SIGTERM) == self._on_signal:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
            previous = signal.set_wakeup_fd(-1)
            if previous not in (-1, wake_fd):  # the application's: put it back
                signal.set_wakeup_fd(previous)
        except ValueError:
            pass
        for end in ends:
            if end is not None:
                end.close()

    # -- internals ------------------------------------------------------------------

    def _start(self) -> bool:
        watch_end, wake_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        if _CREDENTIALS:
            watch_end.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        wake_end.setblocking(False)  # a signal handler must never wait
        watcher = threading.Thread(target=self._watch, args=(watch_end,),
                                   name="otel-monitor-sigterm", daemon=True)
        try:  # the thread first: a handler with no one to wake would swallow SIGTERM
            watcher.start()
            self._watch_end, self._wake_end, self._watcher = watch_end, wake_end, watcher
            self._pid = os.getpid()
            signal.signal(signal.SIGTERM, self._on_signal)
        except (RuntimeError, ValueError, OSError):  # no thread, or not allowed here
            self._watch_end = self._wake_end = self._watcher = self.flush = None
            if watcher.is_alive():
                wake_end.send(b"")  # an empty datagram: the watcher stops
            wake_end.close()
            return False
        self._claim_wakeup_fd()
        return True

    def _claim_wakeup_fd(self) -> None:
        """The C-level handler writes each caught signal's number to the wakeup fd, from
        whichever thread it lands on, even when the Python handler never runs. Ours only
        where datagrams name their sender, and only while the application has none."""
        if not _CREDENTIALS or self._wake_end is None:
            return
        previous = signal.set_wakeup_fd(self._wake_end.fileno(), warn_on_full_buffer=False)
        if previous not in (-1, self._wake_end.fileno()):
            signal.set_wakeup_fd(previous)

    def _on_signal(self, signum: int, frame: object) -> None:
        wake_end, watcher = self._wake_end, self._watcher
        if (wake_end is None or watcher is None or not watcher.is_alive()
                or self._pid != os.getpid()):  # no one to flush for this process
            _die_of_sigterm()
            return
        try:
            wake_end.send(_SIGTERM_BYTE)
        except OSError:  # full: the watcher has been woken already
            pass

    def _watch(self, watch_end: socket.socket) -> None:
        with watch_end:
            while True:
                try:
                    data, ancillary, _flags, _addr = watch_end.recvmsg(
                        64, socket.CMSG_SPACE(_UCRED.size))
                except OSError:
                    return
                if not data:  # told to stop
                    return
                if signal.SIGTERM not in data or not self._from_this_process(ancillary):
                    continue  # another caught signal, or a forked child's SIGTERM
                # the application may have put a handler of its own in our place since
                if signal.getsignal(signal.SIGTERM) == self._on_signal:
                    break
        try:
            if self.flush is not None:
                self.flush()
        except Exception:
            _log.warning("otel-monitor: flush at SIGTERM failed", exc_info=True)
        finally:
            _die_of_sigterm()

    @staticmethod
    def _from_this_process(ancillary: list) -> bool:
        if not _CREDENTIALS:
            return True  # only our own Python handler writes (it checks its pid)
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                return _UCRED.unpack(payload[:_UCRED.size])[0] == os.getpid()
        return False


def _die_of_sigterm() -> None:
    """End the process as SIGTERM's default action does. ``signal.signal`` works on the
    main thread only; elsewhere libc's ``signal()`` restores the default (the process
    ends at once, so CPython's view of the handler no longer matters)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    else:
        try:
            libc = ctypes.CDLL(None)
            libc.signal(ctypes.c_int(signal.SIGTERM), ctypes.c_void_p(0))  # SIG_DFL
        except (OSError, AttributeError):  # no libc to call: end it the hard way
            os.kill(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGTERM)


SIGTERM_FLUSH = SigtermFlush()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=SIGTERM_FLUSH.after_fork_in_child)
