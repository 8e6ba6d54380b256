"""The compact call record: what a monitored call leaves on the hot path.

A record carries what an OTel span would (ids, times, status, attributes) in a
plain tuple, so the caller pays for a tuple, not for a span object. The SQLite
exporter flattens records and ReadableSpans into the same rows.

    (process, trace_id, span_id, parent_span_id, start_ns, end_ns, outcome, error,
     inputs, output)

``process`` names a ``CallSite`` (the writer is handed the sites by name); ``inputs`` is a pair of
tuples ``(names, value_texts)`` or None; ``output`` the text of the return value,
or None when no OUTPUT row is due; ``error`` is ``(type name,
traceback.TracebackException, message, secrets)`` (formatted off the hot path; ``secrets``
are ``(clear text, marker)`` pairs of masked arguments to scrub it with) or None.

A value in ``inputs`` or ``output`` is either its text or an immutable scalar
(int, float, bool, None, complex) that the exporter renders with ``scalar_text``.
Every field but ``error`` is a str, a scalar or a tuple of them, so the garbage
collector stops tracking a record after its first pass: a long queue of records
costs the application's collections nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

PROCESS, TRACE_ID, SPAN_ID, PARENT_ID, START_NS, END_NS, OUTCOME, ERROR, INPUTS, OUTPUT = range(10)


@dataclass(eq=False)
class CallSite:
    """What is known of a monitored function once, at decoration time."""

    process: str  # dotted module.qualname
    process_group: str
    file: str | None
    line: int | None
    function: Callable[..., Any] | None = field(default=None, repr=False)
    feeds: tuple[str, ...] = ()

    def source(self) -> str | None:
        """The function's source text, read lazily (off the hot path)."""
        import inspect

        target = self.function
        if target is None:
            return None
        try:
            return inspect.getsource(inspect.unwrap(target))
        except (OSError, TypeError):
            return None


MAX_INT_BITS = 1000  # int -> str is quadratic in CPython, and refused past 4300 digits


def scalar_text(value: object) -> str:
    """The text of a scalar kept raw in a record (its ``repr``, bounded for huge ints)."""
    if type(value) is int and value.bit_length() > MAX_INT_BITS:
        return f"<int: {value.bit_length()} bits>"
    try:
        return repr(value)
    except BaseException as exc:  # a subclass with a broken __repr__ never gets here; be safe
        return f"<{type(value).__qualname__}: repr failed: {type(exc).__name__}>"


def error_texts(error: tuple) -> tuple[str, str, str]:
    """(type name, traceback text, message) of a recorded failure, masked values
    scrubbed, safe to store."""
    exc_type, snapshot, message, secrets = error
    text = "".join(snapshot.format())
    for clear, marker in secrets:
        text = text.replace(clear, marker)
        message = message.replace(clear, marker)
    return exc_type, storable(text), storable(message)


def storable(text: str) -> str:
    """Text that encodes as UTF-8 (a lone surrogate becomes its escape)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
