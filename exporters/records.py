"""The compact call record: what a monitored call leaves on the hot path.

A record carries what an OTel span would (ids, times, status, attributes) in a
plain tuple, so the caller pays for a tuple, not for a span object. The SQLite
exporter flattens records and ReadableSpans into the same rows.

    (process, trace_id, span_id, parent_span_id, start_ns, end_ns, outcome, error,
     inputs, output, weight)

``process`` names a ``CallSite`` (the writer is handed the sites by name); ``inputs`` is a pair of
tuples ``(names, value_texts)`` or None; ``output`` the text of the return value,
or None when no OUTPUT row is due, or for a generator ``Outputs((names,
value_texts))``: ``yield[0]``…, ``yield_count`` and ``return``; ``error`` is
``(type name (exception_type_name), traceback.TracebackException, message, secrets,
propagated_from)`` (formatted off the hot path; ``secrets`` are ``(clear text, marker)``
pairs of masked arguments to scrub it with; ``propagated_from`` is the span id of the
innermost monitored call the same exception object rose out of, None when this call is
where it failed first: see ``ERR_PROPAGATED``) or None;
``weight`` how many calls the record stands for under sampling (1/q, q the
probability the call had of being kept: ``@monitor(sample="auto")``), None for 1.

A value in ``inputs`` or ``output`` is either its text or an immutable scalar
(int, float, bool, None, complex), or a tuple of at most 20 floats, bools, Nones and
64-bit ints, that the exporter renders with ``scalar_text``.
Every field but ``error`` is a str, a scalar or a tuple of them, so the garbage
collector stops tracking a record after its first pass: a long queue of records
costs the application's collections nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .traceback_text import format_snapshot, snapshot_chain as _chain

(PROCESS, TRACE_ID, SPAN_ID, PARENT_ID, START_NS, END_NS, OUTCOME, ERROR, INPUTS, OUTPUT,
 WEIGHT) = range(11)

# Positions in a record's ``error``. ``ERR_PROPAGATED``: one bug is one error group. An
# exception rising through several monitored calls fails each of them; the innermost
# (where it was raised, or first met a monitored call) is the failure, the calls it only
# passed through name that call here, and the writer gives them its group without
# counting them again (``exporters.groups``). A span carries the same as the attribute
# ``columns.ATTR_PROPAGATED_FROM``.
ERR_TYPE, ERR_SNAPSHOT, ERR_MESSAGE, ERR_SECRETS, ERR_PROPAGATED = range(5)


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


class Outputs(tuple):
    """``(names, values)``: a generator's several OUTPUT rows (``yield[0]``…,
    ``yield_count``, ``return``), told apart from a return value that is a tuple."""

    __slots__ = ()


MAX_INT_BITS = 1000  # int -> str is quadratic in CPython, and refused past 4300 digits


def scalar_text(value: object) -> str:
    """The text of a scalar kept raw in a record (its ``repr``, bounded for huge ints)."""
    if type(value) is int and value.bit_length() > MAX_INT_BITS:
        return f"<int: {value.bit_length()} bits>"
    try:
        return repr(value)
    except BaseException as exc:  # a subclass with a broken __repr__ never gets here; be safe
        return f"<{type(value).__qualname__}: repr failed: {type(exc).__name__}>"


def exception_type_name(cls: type) -> str:
    """OTel's ``exception.type`` of an exception class: ``module.qualname``, a builtin's
    bare ``qualname`` (``json.decoder.JSONDecodeError``, ``ValueError``), as the SDK's
    ``Span.record_exception`` writes it."""
    module, qualname = getattr(cls, "__module__", None), cls.__qualname__
    return f"{module}.{qualname}" if module and module != "builtins" else qualname


WITHHELD = "<message withheld: holds a masked value>"


def error_texts(error: tuple) -> tuple[str, str, str]:
    """(type name, traceback text, message) of a recorded failure, masked values
    scrubbed, safe to store.

    ``secrets`` are ``(clear text, marker)`` pairs, each form of a masked value
    (str, repr-escaped, JSON-escaped, URL-encoded, formatted number); a pair whose
    marker is None is a form too short to replace safely (< 4 characters): when a
    message of the failure (its own, a chained exception's, a note) holds it, every
    message is withheld whole, the exception types and frames kept."""
    exc_type, snapshot, message, secrets = error[:ERR_PROPAGATED]
    short = [clear for clear, marker in secrets if marker is None and clear]
    if short and _holds(snapshot, message, short):
        message = WITHHELD
        _withhold(snapshot)
    text = format_snapshot(snapshot)
    pairs = sorted(((c, m) for c, m in secrets if m is not None and c),
                   key=lambda pair: len(pair[0]), reverse=True)  # a whole before its parts
    for clear, marker in pairs:
        text = text.replace(clear, marker)
        message = message.replace(clear, marker)
    return exc_type, storable(text), storable(message)


def _messages(te: Any) -> list[str]:
    texts = [getattr(te, "_str", "") or ""]
    texts.extend(str(n) for n in (getattr(te, "__notes__", None) or ()))
    for name in ("text", "filename"):  # a SyntaxError's offending line and file
        value = getattr(te, name, None)
        if isinstance(value, str):
            texts.append(value)
    return texts


def _holds(snapshot: Any, message: str, short: list[str]) -> bool:
    texts = [message]
    for te in _chain(snapshot):
        texts.extend(_messages(te))
    return any(clear in text for text in texts for clear in short)


def _withhold(snapshot: Any) -> None:
    for te in _chain(snapshot):
        te._str = WITHHELD
        if getattr(te, "__notes__", None):
            te.__notes__ = [WITHHELD]
        if isinstance(getattr(te, "text", None), str):
            te.text = WITHHELD


def storable(text: str) -> str:
    """Text that encodes as UTF-8 (a lone surrogate becomes its escape)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
