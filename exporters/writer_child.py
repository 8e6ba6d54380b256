"""The writer process: one ``RecordWriter`` writing an application's batches.

Started by ``writer_process.ProcessRecordWriter`` with one end of a socket pair; it
answers each message (``writer_wire``) once the batch is committed, so the
flattening and the SQLite work run on a core of their own, not under the
application's GIL.

It ignores SIGINT and SIGTERM (a Ctrl-C or a SIGTERM sent to the process group
must not end it before the application's final flush) and exits at end of file on
its connection: the application closed it, exited or died. The batch in hand is
finished first.
"""
from __future__ import annotations

import logging
import marshal
import signal
from multiprocessing.connection import Connection

from opentelemetry.sdk.trace.export import SpanExportResult

from .error_groups import GroupEvent
from .errors import StoreError
from .sqlite_exporter import RecordWriter
from .writer_wire import decode_batch, received_site, reply

_log = logging.getLogger("otel_monitor")


class _Kept(logging.Handler):
    """What the writer logs, sent back with each answer and logged by the application
    (under its own logging configuration)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, self.format(record)))

    def take(self) -> list[tuple[int, str]]:
        taken, self.records = self.records, []
        return taken


class _Answers:
    """The writer and what its answers report: events, counts since the last answer."""

    def __init__(self, writer: RecordWriter, kept: _Kept) -> None:
        self.writer = writer
        self.kept = kept
        self.events: list[GroupEvent] = []
        writer.on_group_events = self.events.extend
        self._rejected = self._recreated = 0

    def answer(self, ok: bool, error: StoreError | None) -> bytes:
        w = self.writer
        rejected, self._rejected = w.rejected - self._rejected, w.rejected
        recreated, self._recreated = w.store_recreated - self._recreated, w.store_recreated
        events, self.events[:] = list(self.events), []
        return reply(ok, error, events, rejected, recreated, self.kept.take())

    def handle(self, message: tuple) -> bytes:
        w = self.writer
        try:
            if message[0] == "batch":
                sites, items = decode_batch(message)
                for fields in sites:
                    site = received_site(fields)
                    w.sites[site.process] = site  # type: ignore[index]
                ok = w.export(items) is SpanExportResult.SUCCESS
                return self.answer(ok, None if ok else w.last_error)
            w.record_health(**message[1])  # "health"
            return self.answer(True, None)
        except StoreError as exc:
            return self.answer(False, exc)
        except Exception:  # a defect: reported to the application, the writer goes on
            _log.exception("otel-monitor: the writer process failed on a %s", message[0])
            return self.answer(False, None)


def main(fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    kept = _Kept()
    _log.addHandler(kept)
    _log.setLevel(logging.DEBUG)
    _log.propagate = False
    conn = Connection(fd)
    conn.send_bytes(marshal.dumps(("hello",)))
    try:
        _, settings, origin_pid = marshal.loads(conn.recv_bytes())  # "config"
    except EOFError:
        return
    try:
        writer = RecordWriter(sites={}, **settings)
    except StoreError as exc:  # a file that is not a store: the application is told
        conn.send_bytes(reply(False, exc, [], 0, 0, kept.take()))
        return
    writer.origin_pid = origin_pid
    answers = _Answers(writer, kept)
    conn.send_bytes(answers.answer(True, None))
    while True:
        try:
            message = marshal.loads(conn.recv_bytes())
        except (EOFError, OSError):  # the application closed its end, exited or died
            break
        answer = answers.handle(message)
        try:
            conn.send_bytes(answer)
        except OSError:  # gone while we wrote: its retry goes to a writer of its own
            break
    writer.shutdown()
