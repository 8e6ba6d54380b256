"""ProcessRecordWriter: the decorator's writer, run in a process of its own.

A ``RecordWriter`` flattens and inserts under the application's GIL: bursts of
Python work on the writer thread delay the application's own threads by up to the
interpreter's switch interval. This exporter hands each batch to a child process
(``writer_child``) that holds the ``RecordWriter`` instead, and waits for its
answer in a syscall (the GIL released). ``export`` answers SUCCESS or FAILURE as
``RecordWriter.export`` does, after the batch is committed, so the processor's
retries, splitting, observers and health work unchanged.

* The child is started by the first export (the writer thread, never a caller),
  with the application's ``sys.path``; a child that dies or stops answering fails
  the export in hand (the processor keeps the batch) and the next export starts
  another one.
* Where no child can be started (no Python executable: an embedded interpreter),
  one warning is logged and batches are written here, by a ``RecordWriter``. A
  process forked from the application writes here too: the connection is its
  parent's.
"""
from __future__ import annotations

import logging
import marshal
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from operator import itemgetter
from multiprocessing.connection import Connection
from typing import Any, Callable, Mapping, Sequence

from opentelemetry.sdk.trace.export import SpanExportResult

from .error_groups import GroupEvent, ToldEvents
from .errors import StoreError
from .groups import DEFAULT_SPIKE_MIN_COUNT, DEFAULT_SPIKE_MULTIPLE
from .records import CallSite
from .sqlite_exporter import RecordWriter, tell_group_events
from .writer_wire import encode_batch, group_events, site_of, store_error

_log = logging.getLogger("otel_monitor")

# The child's command: the application's sys.path first, so it imports this code.
_ENTRY = ("import sys; sys.path[:] = sys.argv[2:]; "
          "from exporters.writer_child import main; main(int(sys.argv[1]))")
# How long the child may take to open a store held by another process when it starts:
# the first export opens it otherwise, as in the application.
_CHILD_OPEN_S = 0.05
# While waiting for an answer, how often the child is checked for being stopped
# (SIGSTOP, a debugger): such a child is replaced then, not after the answer timeout.
_STOPPED_CHECK_S = 0.5
_first = itemgetter(0)
# Writer processes of a parent, inherited over fork: never waited for, never killed.
_INHERITED: list[Any] = []


class _Channel:
    """The application's end of the socket pair. The child reads and writes it with a
    ``multiprocessing.connection.Connection``; so do we, except that we send with
    ``MSG_NOSIGNAL``: a Connection sends with ``write()``, and in an application that
    set SIGPIPE back to its default (command-line tools do, for ``| head``) writing to
    a dead child would kill the application. Here it is a ``BrokenPipeError``, which
    fails the batch like any lost child."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader = Connection(os.dup(sock.fileno()))

    def send_bytes(self, payload: bytes) -> None:
        size = len(payload)
        # Connection's framing: a signed 32-bit length, or -1 and a 64-bit one.
        header = (struct.pack("!i", size) if size <= 0x7FFFFFFF
                  else struct.pack("!iQ", -1, size))
        self._sock.sendall(header, socket.MSG_NOSIGNAL)
        self._sock.sendall(payload, socket.MSG_NOSIGNAL)

    def recv_bytes(self) -> bytes:
        return self._reader.recv_bytes()

    def poll(self, timeout: float) -> bool:
        return self._reader.poll(timeout)

    def close(self) -> None:
        self._reader.close()
        self._sock.close()


class _CannotStart(Exception):
    """No writer process can run here: write in this process."""


class ProcessRecordWriter:
    """A ``RecordWriter`` (same arguments, same attributes) whose writing is done by a
    child process."""

    def __init__(self, db_path: str | os.PathLike[str], *, service_name: str | None = None,
                 busy_timeout_s: float = 30.0, sites: Mapping[str, CallSite] | None = None,
                 open_timeout_s: float | None = None,
                 on_group_events: Callable[[list[GroupEvent]], None] | None = None,
                 spike_multiple: float = DEFAULT_SPIKE_MULTIPLE,
                 spike_min_count: int = DEFAULT_SPIKE_MIN_COUNT) -> None:
        # Writes here when no child can (and after fork). Built now: a path or a file
        # that cannot be a store raises here, as a RecordWriter does.
        self._here = RecordWriter(db_path, service_name=service_name,
                                  busy_timeout_s=busy_timeout_s, sites=sites,
                                  open_timeout_s=open_timeout_s,
                                  on_group_events=on_group_events,
                                  spike_multiple=spike_multiple, spike_min_count=spike_min_count)
        self._settings = dict(db_path=self._here.db_path, service_name=service_name,
                              busy_timeout_s=busy_timeout_s, open_timeout_s=_CHILD_OPEN_S,
                              spike_multiple=spike_multiple, spike_min_count=spike_min_count)
        # An answer comes once the batch is committed: a write waits up to the busy
        # timeout for a lock, at opening and at inserting. Past that the child is hung.
        self.answer_timeout_s = 2 * busy_timeout_s + 10
        self._told = ToldEvents()  # across children: a resent batch's NEW events told once
        self.health_sources = self._here.health_sources
        self.last_error: StoreError | None = None
        self._rejected = self._recreated = 0  # counted by the writer processes
        self._lock = threading.Lock()  # one exchange with the child at a time
        self._conn: _Channel | None = None
        self._child: subprocess.Popen | None = None
        self._sent: set[str] = set()  # call sites the current child has
        self._site_fields: dict[str, tuple] = {}  # read once per name (the source)
        self._here_only = False  # after fork, or when no child can be started
        self._closed = False
        self._pid = os.getpid()

    # -- RecordWriter's attributes ------------------------------------------------------

    db_path = property(lambda self: self._here.db_path)
    service_name = property(lambda self: self._here.service_name)
    sites = property(lambda self: self._here.sites)
    spike_multiple = property(lambda self: self._here.spike_multiple)
    spike_min_count = property(lambda self: self._here.spike_min_count)
    rejected = property(lambda self: self._rejected + self._here.rejected)
    store_recreated = property(lambda self: self._recreated + self._here.store_recreated)

    @property
    def on_group_events(self) -> Callable[[list[GroupEvent]], None] | None:
        return self._here.on_group_events

    @on_group_events.setter
    def on_group_events(self, handler: Callable[[list[GroupEvent]], None] | None) -> None:
        self._here.on_group_events = handler

    @property
    def in_process(self) -> bool:
        """Whether batches are written in this process (after fork, or no child)."""
        return self._here_only

    # -- BatchExporter ------------------------------------------------------------------

    def export(self, batch: Sequence[Any]) -> SpanExportResult:
        if self._here_only:
            return self._export_here(batch)
        with self._lock:
            if self._closed:
                return SpanExportResult.FAILURE
            try:
                conn = self._connected()
            except _CannotStart as exc:
                _log.warning("otel-monitor: no writer process (%s); writing in this process",
                             exc)
                self._here_only = True
                return self._export_here(batch)
            if conn is None:  # started, then gone at once: the next export tries again
                return SpanExportResult.FAILURE
            sites, names = self._sites_of(batch)
            answer = self._ask(conn, encode_batch(batch, sites, self.sites))
            if answer is not None:  # the child has them (a lost one's successor will not)
                self._sent |= names
        if answer is None:
            return SpanExportResult.FAILURE
        ok, why, events, rejected, recreated = answer
        self._rejected += rejected
        self._recreated += recreated
        self.last_error = store_error(why) if why else None  # as the child's writer's
        handler = self.on_group_events
        fresh = self._told.fresh(group_events(events)) if events else []
        if fresh and handler is not None:
            tell_group_events(handler, fresh)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def record_health(self, **figures: Any) -> None:
        """To the writer process when one runs; here before the first (or after fork)."""
        figures.setdefault("store_recreated", self.store_recreated)
        with self._lock:
            conn = None if self._here_only else self._conn
            if conn is not None:
                for source in self.health_sources:  # read here: they count our work
                    figures.update(source())
                answer = self._ask(conn, marshal.dumps(
                    ("health", dict(figures, pid=self._pid, host=socket.gethostname()))))
                if answer is not None and not answer[0] and answer[1]:
                    raise store_error(answer[1])
                return
        self._here.record_health(**figures)

    def after_fork_in_child(self) -> None:
        """In a process forked from ours: the connection is the parent's. Closed (the
        parent's writer process must see end of file when the parent exits, not wait
        for us); this process writes its own calls itself."""
        self._lock = threading.Lock()
        if self._conn is not None:
            self._conn.close()
        if self._child is not None:
            _INHERITED.append(self._child)
        self._conn = self._child = None
        self._here_only = True
        self._pid = os.getpid()
        self._here.after_fork_in_child()

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
        self.stop_process()
        self._here.shutdown()

    def stop_process(self) -> None:
        """Close the connection: the child finishes the batch in hand and exits (waited
        for, bounded). Health is written here from then on; an export starts another."""
        with self._lock:
            conn, child = self._conn, self._child
            self._conn = self._child = None
        if conn is not None:
            conn.close()
        if child is not None and self._pid == os.getpid():
            try:
                child.wait(self.answer_timeout_s)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # every export is committed before it returns

    # -- the child ----------------------------------------------------------------------

    def _export_here(self, batch: Sequence[Any]) -> SpanExportResult:
        result = self._here.export(batch)
        self.last_error = self._here.last_error
        return result

    def _connected(self) -> _Channel | None:
        """The connection to a running child, started if need be (None: it died at once)."""
        if self._conn is None:
            started = self._start()
            if started is None:
                return None
            self._conn, self._child = started
            self._sent = set()
            answer = self._ask(self._conn, marshal.dumps(("config", self._settings, self._pid)))
            if answer is None:
                return None
            if not answer[0]:
                self.last_error = store_error(answer[1]) if answer[1] else None
                self._lost()
                return None
        return self._conn

    def _start(self) -> tuple[_Channel, subprocess.Popen] | None:
        """A new child and its connection, once it said hello (None: it died at once)."""
        executable = sys.executable
        if not executable or "python" not in os.path.basename(executable).lower():
            # An embedded interpreter's sys.executable is its host program (or empty):
            # running it would not run Python.
            raise _CannotStart(f"sys.executable is {executable!r}")
        ours, theirs = socket.socketpair()
        # A child that stops answering (or reading) fails the call after this long.
        wait = struct.pack("ll", int(self.answer_timeout_s),
                           int(self.answer_timeout_s % 1 * 1e6))
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, wait)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, wait)
        try:
            child = subprocess.Popen(
                [executable, "-I", "-c", _ENTRY, str(theirs.fileno()), *sys.path],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL)
        except OSError as exc:
            ours.close()
            raise _CannotStart(str(exc)) from exc
        finally:
            theirs.close()
        conn = _Channel(ours)
        try:
            marshal.loads(conn.recv_bytes())  # "hello": it runs our code
        except (EOFError, OSError) as exc:
            conn.close()
            code = _ended(child)
            if code is not None and code > 0:  # it could not run (not killed by a signal)
                raise _CannotStart(f"it exited with status {code}") from exc
            _log.warning("otel-monitor: the writer process did not start (status %s)", code)
            return None
        return conn, child

    def _ask(self, conn: _Channel, message: bytes) -> tuple | None:
        """Send one message and return the child's answer (ok, error, events, rejected,
        recreated), its log records logged here; None when the child died or hung
        (it is ended: the next export starts another)."""
        try:
            conn.send_bytes(message)
            ok, why, events, rejected, recreated, logs = marshal.loads(self._answer(conn))
        except (EOFError, OSError, ValueError) as exc:
            self._lost(exc)
            return None
        for level, text in logs:
            _log.log(level, "%s", text)
        return ok, why, events, rejected, recreated

    def _answer(self, conn: _Channel) -> bytes:
        """The child's next message, waited for in slices: a child found stopped, or
        silent for the answer timeout, is given up (TimeoutError)."""
        deadline = time.monotonic() + self.answer_timeout_s
        while not conn.poll(_STOPPED_CHECK_S):
            if _stopped(self._child) or time.monotonic() >= deadline:
                raise TimeoutError("the writer process does not answer")
        return conn.recv_bytes()

    def _sites_of(self, batch: Sequence[Any]) -> tuple[list[tuple], set[str]]:
        """The call sites of the batch's processes that the child was not sent yet (a
        name with none, another instrumentation's, is cataloged without), and those
        names: sent once the child has answered."""
        new = _names(batch) - self._sent
        sent = []
        for name in new:
            site = self.sites.get(name)
            if site is None:
                continue
            known = self._site_fields.get(name)
            if known is None or known[0] is not site:
                known = self._site_fields[name] = (site, site_of(site))
            sent.append(known[1])
        return sent, new

    def _lost(self, why: BaseException | None = None) -> None:
        conn, child = self._conn, self._child
        self._conn = self._child = None
        if conn is not None:
            conn.close()
        if child is None:
            return
        if child.poll() is None:
            child.kill()  # hung (or still going): its batch is retried by another
        code = child.wait()
        if why is not None:
            _log.warning("otel-monitor: the writer process ended (status %s, %s); the "
                         "batch is kept and another process started", code,
                         type(why).__name__)


def _stopped(child: subprocess.Popen | None) -> bool:
    """Is the child stopped (state T, or t under a debugger)? False where /proc does not
    say (the answer timeout still bounds the wait)."""
    if child is None:
        return False
    try:
        with open(f"/proc/{child.pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()  # after the command's name
    except (OSError, IndexError):
        return False
    return bool(fields) and fields[0] in (b"T", b"t")


def _ended(child: subprocess.Popen) -> int | None:
    """The exit status of a child that did not say hello (None: it hung, now killed)."""
    try:
        return child.wait(5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        return None


def _names(batch: Sequence[Any]) -> set[str]:
    """The process names of a batch (records, SpanFields, ReadableSpans)."""
    try:
        return set(map(_first, batch))  # records and SpanFields only: in C
    except TypeError:
        return {item[0] if isinstance(item, tuple) else item.name for item in batch}
