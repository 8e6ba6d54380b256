"""BackgroundWorker: the one background thread type of otel-monitor.

The writer, retention, the alert engine, the alert state writer and each webhook
sender are a job run by one of these: a named daemon thread that calls ``job`` when
woken, or every ``interval_s`` (``None``: only when woken).

* It starts on first use (``start``, ``wake``, ``put``, ``flush``), never at import.
* A bounded ``inbox`` for jobs that take items: ``put`` drops and counts an item
  when it is full, and never blocks the caller.
* ``flush(timeout)`` returns once a cycle that began after the call has ended
  (a ticket, so a flush never returns on a cycle that started before it).
* After ``fork`` the parent's thread does not exist in the child: the first use in
  the child sees another pid, forgets the parent's inbox, lets the owner reset its
  own state (``on_fork``) and starts a new thread. No ``register_at_fork`` needed.
* ``kill()`` asks the thread to end and returns at once; ``stop(timeout)`` waits.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import Any, Callable, Protocol

_log = logging.getLogger("otel_monitor")


class Job(Protocol):
    def __call__(self, *, final: bool, flushing: bool) -> None:
        """One cycle. ``final``: the last before the thread ends; ``flushing``: a
        ``flush`` is waiting on this cycle."""


class BackgroundWorker:
    def __init__(self, name: str, job: Job, *, interval_s: float | None,
                 inbox_size: int = 0, on_fork: Callable[[], None] | None = None) -> None:
        self.name = name
        self.job = job
        self.interval_s = interval_s
        self.inbox_size = inbox_size  # 0: this job takes no items
        self.on_fork = on_fork
        self.inbox: deque[Any] = deque()
        self.dropped = 0  # items refused by a full inbox
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()  # a lock held at fork would stay held: new ones
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._requested = 0
        self._done = 0
        self._thread: threading.Thread | None = None

    def reset_if_forked(self) -> bool:
        """True (once) in a forked child: the parent's thread and items stay the parent's."""
        if self._pid == os.getpid():
            return False
        self.inbox.clear()
        self.dropped = 0
        self._reset()
        if self.on_fork is not None:
            self.on_fork()
        return True

    # -- state ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and self._pid == os.getpid() and thread.is_alive()

    @property
    def was_started(self) -> bool:
        """Whether a thread was started: in this process, or in the parent before a fork."""
        return self._thread is not None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def on_thread(self) -> bool:
        return self._thread is threading.current_thread()

    # -- control -------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread unless it runs (again after ``stop``)."""
        self.reset_if_forked()
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            try:
                thread.start()
            except RuntimeError:  # the interpreter is shutting down: no more threads
                return
            self._thread = thread

    def wake(self) -> None:
        """Run a cycle now (starting the thread if needed)."""
        if self._thread is None or self._pid != os.getpid():
            self.start()
        self._wake.set()

    def put(self, item: Any) -> bool:
        """Hand ``item`` to the job; False (and counted) when the inbox is full."""
        self.reset_if_forked()
        inbox = self.inbox
        if len(inbox) >= self.inbox_size:
            self.dropped += 1
            return False
        inbox.append(item)
        self.wake()
        return True

    def flush(self, timeout_s: float) -> bool:
        """Wait for a whole cycle that starts after this call; False on timeout, or when
        there is no thread to run it (the owner then does the work itself)."""
        self.reset_if_forked()
        thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            return False
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._requested += 1
            ticket = self._requested
            self._wake.set()
            while self._done < ticket:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not thread.is_alive():
                    return False
                self._cond.wait(min(remaining, 0.5))
        return True

    def kill(self) -> None:
        """Ask the thread to end after its current cycle (one last, ``final`` cycle);
        returns at once."""
        self._stop.set()
        self._wake.set()

    def stop(self, timeout_s: float) -> bool:
        """``kill`` and wait up to ``timeout_s`` for the thread; True once it has ended."""
        self.kill()
        thread = self._thread
        if thread is None or self._pid != os.getpid():
            return True
        if thread is not threading.current_thread():
            thread.join(timeout_s)
        return not thread.is_alive()

    def sleep(self, seconds: float) -> bool:
        """For the job: wait ``seconds`` unless asked to stop; False when asked."""
        return not self._stop.wait(seconds)

    # -- the thread ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            final = self._stop.is_set()
            with self._cond:
                ticket = self._requested
            try:
                self.job(final=final, flushing=ticket > self._done)
            except Exception:  # a failing job must not end the thread
                _log.warning("otel-monitor: %s failed", self.name, exc_info=True)
            with self._cond:
                self._done = ticket
                self._cond.notify_all()
            if final:
                return
