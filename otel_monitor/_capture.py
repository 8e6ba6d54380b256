"""Turning argument values into bounded, safe text, and masking sensitive ones.

Everything here runs on the caller's thread, inside the monitored call, so the
common types take a short path and nothing raises: a failure becomes a
placeholder that names the problem.
"""
from __future__ import annotations

import collections
import hmac
import itertools
import re
import reprlib
import threading
import time
from typing import Any, Callable, Iterable

from exporters.columns import DEFAULT_MAX_VALUE_LENGTH, TRUNCATION_MARKER
from exporters.records import scalar_text, storable

BINARY_PREVIEW = 32  # bytes shown of a large binary value
DEFAULT_CAPTURE_BUDGET_MS = 1.0
# A masked str/bytes longer than this is hashed from its first HASH_LIMIT characters
# (bytes) and its length: hashing stays well under the capture budget. Two values
# that differ only past this point get the same marker (documented in README).
HASH_LIMIT = 64 * 1024
BOUNDED_ITEMS = 20  # items a container's bounded form shows (reprlib's limit here)
_perf_ns = time.perf_counter_ns
_INT64 = 1 << 63
LARGE_CONTAINER = 100  # items past which a container subclass is summarised
_CONTAINERS = (list, tuple, dict, set, frozenset, collections.deque)

# Words that make an argument sensitive when they are a word of its name
# (``db_password``, ``apiKey``, ``x-auth-token``), not a substring (``author``).
SENSITIVE_WORDS = frozenset({
    "password", "passwd", "pwd", "passphrase", "secret", "token", "apikey", "auth",
    "authorization", "credential", "credentials", "privatekey", "session", "sessionid",
    "cookie", "csrf", "xsrf", "jwt", "ssn", "creditcard", "cardnumber", "cvv", "pin",
})
# Two-word names that are sensitive together (``api_key``, ``private_key``, ``credit_card``).
SENSITIVE_PAIRS = frozenset({
    ("api", "key"), ("private", "key"), ("secret", "key"), ("access", "key"),
    ("credit", "card"), ("card", "number"), ("session", "id"), ("client", "secret"),
})

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def is_sensitive(name: str) -> bool:
    """Whether an argument name is masked by default."""
    words = [w.lower() for w in _WORDS.findall(name)]
    if not words:
        return False
    if "".join(words) in SENSITIVE_WORDS:
        return True
    for w in words:
        if w in SENSITIVE_WORDS:
            return True
    return any(pair in SENSITIVE_PAIRS for pair in zip(words, words[1:]))


class Masker:
    """Replaces a value by a keyed hash (HMAC-SHA256 with the store's secret), so equal
    values still compare equal and nobody without the secret can test guesses.

    What is hashed is the value's bounded, canonical form, never its full ``repr``:
    a str or bytes itself (its first ``HASH_LIMIT`` characters and its length when
    longer); anything else its bounded text from ``render`` (the ``ValueFormatter``:
    the first ``BOUNDED_ITEMS`` items of a container, under the capture budget) plus
    the length of a container longer than that. So a masked 10^7-item list costs what
    a 20-item one does; the limit: two large values equal in length and in what their
    bounded form shows, but different further in, get the same marker.
    """

    __slots__ = ("_key", "render")

    def __init__(self, key: bytes, render: Callable[[Any], str] | None = None) -> None:
        if len(key) < 16:
            raise ValueError("mask key must be at least 16 bytes")
        self._key = key
        self.render = render if render is not None else ValueFormatter()

    def canonical(self, value: Any) -> bytes:
        """The bytes a value is hashed from (bounded whatever the value's size)."""
        try:
            kind = type(value)
            if kind is str or isinstance(value, str):
                if len(value) > HASH_LIMIT:
                    return (value[:HASH_LIMIT].encode("utf-8", "surrogatepass")
                            + b"\0len=%d" % len(value))
                return value.encode("utf-8", "surrogatepass")
            if isinstance(value, (bytes, bytearray)):
                if len(value) > HASH_LIMIT:
                    return bytes(value[:HASH_LIMIT]) + b"\0len=%d" % len(value)
                return bytes(value)
            data = self.render(value).encode("utf-8", "surrogatepass")
            if isinstance(value, _CONTAINERS):
                size = len(value)
                if size > BOUNDED_ITEMS:
                    data += b"\0len=%d" % size
            return data
        except BaseException as exc:  # a len or encode that raises (anything)
            return f"<{type(value).__qualname__}: {type(exc).__name__}>".encode()

    def __call__(self, value: Any) -> str:
        return "<HASHED:" + hmac.digest(self._key, self.canonical(value),
                                        "sha256")[:8].hex() + ">"


_PLAIN_SCALARS = frozenset({float, bool, complex, type(None)})


class _BoundedRepr(reprlib.Repr):
    """reprlib limits for containers: a huge or recursive value costs little to show.
    An item that is not a builtin container goes through ``timed`` (its own repr, under
    the capture budget: a slow item type is remembered, not the container's).

    The bound on length is applied while rendering: once the items rendered so far
    (``state.chars``: their lengths, plus one for the "," or bracket that follows each)
    pass ``max_length``, everything after them would be cut from the text anyway, so
    the rest (an item, a whole nested container) is "..." without being walked: 20
    lists of 20 lists of 20 items cost what about ``max_length`` characters of them
    do, not 8,000 item reprs. The cut text is the same; the marker's count of
    characters cut counts those of the shortened text."""

    def __init__(self, max_length: int, timed: Callable[[Any], str],
                 state: "CaptureState") -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = self.maxdeque = \
            BOUNDED_ITEMS
        self.maxdict = BOUNDED_ITEMS
        self.maxarray = BOUNDED_ITEMS
        self.maxstring = max_length
        self.maxlong = min(max_length, 400)
        self.maxother = max_length
        self._timed = timed
        self._state = state

    def render(self, x: Any) -> str:
        self._state.chars = 0
        return self.repr(x)

    def repr1(self, x: Any, level: int) -> str:
        if self._state.chars > self.maxother:
            return "..."  # past the cut: not rendered
        return super().repr1(x, level)

    def repr_instance(self, x: Any, level: int) -> str:
        # reprlib would shorten to maxother with "..."; keep the text (bounded) and
        # let the caller apply the one visible truncation marker.
        try:
            text = self._timed(x)[: self.maxother + 1]
        except BaseException as exc:  # one item's failure does not hide the others
            text = _failed(x, exc)
        self._state.chars += len(text) + 1  # at least "," or a bracket follows
        return text

    def repr_str(self, x: str, level: int) -> str:
        text = super().repr_str(x, level)
        self._state.chars += len(text) + 1  # at least "," or a bracket follows
        return text

    def repr_int(self, x: int, level: int) -> str:
        text = scalar_text(x)  # a huge int: its size, not a quadratic conversion
        self._state.chars += len(text) + 1  # at least "," or a bracket follows
        return text

    # Floats, bools, None and complex numbers cannot be slow: shown without the timing
    # (and a preempted float repr cannot get float marked over budget). A subclass
    # goes through its own repr, timed.
    def repr_float(self, x: Any, level: int) -> str:
        if type(x) not in _PLAIN_SCALARS:
            return self.repr_instance(x, level)
        text = repr(x)
        self._state.chars += len(text) + 1
        return text

    repr_bool = repr_complex = repr_NoneType = repr_float

    # reprlib sorts a dict's keys or a set's items before showing the first few:
    # O(n log n) on the caller's thread. Iteration order costs only what is shown.
    def repr_dict(self, x: dict, level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        items = [f"{self.repr1(k, level - 1)}: {self.repr1(x[k], level - 1)}"
                 for k in itertools.islice(x, self.maxdict)]
        more = ", ..." if len(x) > self.maxdict else ""
        return "{" + ", ".join(items) + more + "}"

    def repr_set(self, x: set, level: int) -> str:
        return self._unsorted(x, level, "{", "}", "set()")

    def repr_frozenset(self, x: frozenset, level: int) -> str:
        return self._unsorted(x, level, "frozenset({", "})", "frozenset()")

    def _unsorted(self, x: Any, level: int, left: str, right: str, empty: str) -> str:
        if not x:
            return empty
        if level <= 0:
            return left + "..." + right
        items = [self.repr1(v, level - 1) for v in itertools.islice(x, self.maxset)]
        more = ", ..." if len(x) > self.maxset else ""
        return left + ", ".join(items) + more + right


UNBUDGETED = -(1 << 62)  # a ``spent`` that never reaches the budget
# Types whose text (formatted or masked) never runs a repr under the budget: a
# recorder need not set the thread's account for them.
UNTIMED = frozenset({float, int, bool, complex, type(None), str, bytes, bytearray,
                     memoryview})
# Types ``ValueFormatter.format`` returns as they are (the exporter renders them): a
# capture whose values are all of these keeps them without a call per value.
AS_IS = frozenset({float, int, bool, complex})


class CaptureState(threading.local):
    """Per thread: whether a value is being rendered (a ``__repr__`` that calls a
    monitored function gets a placeholder for its own values), and the time the
    current call's capture has spent so far (the per-call budget). ``spent`` is 0
    between captures: the recorder reads it after a call's arguments (keeping the
    call's total and setting it back to 0), and around its result or a yielded value
    sets it to the call's total and back (not for ``UNTIMED`` types)."""

    active = False
    spent = 0  # ns; UNBUDGETED while a failure's masked texts are found
    chars = 0  # length of the items a container's rendering has shown so far


class ValueFormatter:
    """``formatter.format(value)``: what a record keeps of a value, never raising.

    Immutable scalars (int, float, bool, None, complex), and small tuples of them,
    are kept as they are: they
    cannot change after the call, so the exporter renders them off the hot path
    (``exporters.records.scalar_text``); ``repr`` of a float alone costs more than
    the rest of a call's recording. Everything else becomes its bounded ``repr``
    now, as it is at call time: strings directly, containers through reprlib's
    limits, other objects through their own ``repr``.

    Capture-time budget (``budget_ms``, the ``capture_budget_ms`` setting), per call:

    * a value of a type that is not a builtin container whose ``repr`` took longer than
      the budget is recorded as ``<repr over budget: TYPE>`` and its type remembered, so
      later values of that type skip their ``repr`` with one set lookup;
    * the ``repr`` times of one call's values (arguments, items of containers, result,
      yielded values) add up in ``state.spent``: once it reaches the budget, the
      call's remaining values are recorded as ``<repr skipped, capture budget spent:
      TYPE>``. A type whose last ``repr`` took an eighth of the budget or more is
      remembered with that cost (``costly``) and skipped when it would not fit in what
      is left, so a call's capture costs at most about the budget plus an eighth of it.

    A running ``__repr__`` cannot be interrupted: the first slow value of a type costs
    its ``repr`` once (per process); the budget holds from the next call on. Builtin
    containers are bounded by size instead (``BOUNDED_ITEMS`` items, 3 levels), each
    item under the call's budget.
    """

    def __init__(self, max_length: int = DEFAULT_MAX_VALUE_LENGTH,
                 budget_ms: float = DEFAULT_CAPTURE_BUDGET_MS) -> None:
        if max_length < 16:
            raise ValueError(f"max_value_length must be at least 16, got {max_length}")
        self.max_length = max_length
        self.budget_ns = int(budget_ms * 1_000_000)
        self.slow_types: set[type] = set()  # add/lookup are atomic: no lock
        # type -> ns of its last repr, for types costing budget/8 or more (not slow)
        self.costly: dict[type, int] = {}
        self._costly_ns = self.budget_ns >> 3
        self.state = CaptureState()
        self._reprlib = _BoundedRepr(max_length, self._timed, self.state)
        by_type: dict[type, Callable[[Any], str]] = {
            **dict.fromkeys(AS_IS, _same),
            type(None): _none,  # text now: None as output would read as "no output"
            str: self._str,
            bytes: self._binary, bytearray: self._binary, memoryview: self._binary,
        }
        for container in (list, dict, set, frozenset):
            by_type[container] = self._container
        by_type[tuple] = self._tuple
        self.format = self._make_format(by_type.get, self._other)

    @staticmethod
    def _make_format(lookup: Callable[[type], Any], other: Callable[[Any], str]):
        # A closure, not a method: it runs once per captured value, and local
        # names are cheaper to reach than attributes.
        def format(value: Any) -> str:
            to_text = lookup(type(value))
            try:
                if to_text is not None:
                    return to_text(value)
                return other(value)
            except BaseException as exc:  # SystemExit, KeyboardInterrupt… from a __repr__ too
                return _failed(value, exc)
        return format

    def __call__(self, value: Any) -> str:
        """The value as text, scalars included (for callers that need text now)."""
        kept = self.format(value)
        return kept if type(kept) is str else scalar_text(kept)

    def _str(self, value: str) -> str:
        if len(value) > self.max_length:
            return self._bound(repr(value[: self.max_length]), len(value) - self.max_length)
        return self._bound(repr(value))

    def _binary(self, value: Any) -> str:
        size = value.nbytes if isinstance(value, memoryview) else len(value)
        if size <= BINARY_PREVIEW:
            return repr(bytes(value))
        head = bytes(value[:BINARY_PREVIEW])
        return f"<binary: {size} bytes, starts {head!r}>"

    def _tuple(self, value: tuple) -> Any:
        """A small tuple of floats, bools, None and 64-bit ints cannot change after the
        call and renders in bounded time: kept as it is, rendered by the writer (off
        the hot path, like a scalar). Any other tuple: its bounded text now."""
        if len(value) <= BOUNDED_ITEMS:
            for item in value:
                kind = type(item)
                if kind is float or kind is bool or item is None:
                    continue
                if kind is int and -_INT64 <= item < _INT64:
                    continue
                break
            else:
                return value
        return self._container(value)

    def _container(self, value: Any) -> str:
        return self._guarded(self._reprlib.render, value)

    def _timed(self, value: Any) -> str:
        """``repr(value)`` under the budget: a type that went over is not repr'd again,
        and nothing is once the call's capture has spent its budget."""
        kind = type(value)
        if kind in self.slow_types:
            return _over_budget(kind)
        state = self.state
        spent = state.spent  # a local: a monitored call inside the repr resets state's
        budget = self.budget_ns
        if spent and (spent >= budget or spent + self.costly.get(kind, 0) > budget):
            return _budget_spent(kind)
        start = _perf_ns()
        try:
            text = repr(value)
        except BaseException:
            # A repr that fails slowly (a recursive one ends in RecursionError after
            # a thousand levels) is as slow the next time: remembered too.
            elapsed = _perf_ns() - start
            state.spent = spent + elapsed
            if elapsed > budget:
                self.slow_types.add(kind)
            raise
        elapsed = _perf_ns() - start
        state.spent = spent + elapsed
        if elapsed > budget:
            self.slow_types.add(kind)
            return _over_budget(kind)
        if elapsed >= self._costly_ns:
            self.costly[kind] = elapsed
        elif kind in self.costly:  # cheap again
            self.costly.pop(kind, None)
        return text

    def _other(self, value: Any) -> str:
        if type(value) in self.slow_types:  # the O(1) check: no repr of a slow type
            return _over_budget(type(value))
        if isinstance(value, _CONTAINERS):
            # A subclass (OrderedDict, deque, a namedtuple…): its own repr shows every
            # item, so a large one is summarised instead.
            try:
                size = len(value)
            except Exception:
                size = 0
            if size > LARGE_CONTAINER:
                return f"<{type(value).__qualname__}: {size} items>"
        return self._guarded(self._timed, value)

    def _guarded(self, to_text: Callable[[Any], str], value: Any) -> str:
        # A __repr__ that itself calls a monitored function would recurse through
        # this formatter without end; the nested capture gets a placeholder instead.
        busy = self.state
        if busy.active:
            return f"<{type(value).__qualname__}: nested repr>"
        busy.active = True
        try:
            text = to_text(value)
        except RecursionError:
            return f"<{type(value).__qualname__}: recursive value>"
        finally:
            busy.active = False
        if not isinstance(text, str):
            return f"<{type(value).__qualname__}: repr returned {type(text).__name__}>"
        if not text.isascii():
            text = storable(text)
        return self._bound(text)

    def _bound(self, text: str, extra: int = 0) -> str:
        over = len(text) - self.max_length
        if over > 0:
            return text[: self.max_length] + TRUNCATION_MARKER.format(n=over + extra)
        if extra:
            return text + TRUNCATION_MARKER.format(n=extra)
        return text


def _same(value: Any) -> Any:
    return value


def _none(value: None) -> str:
    return "None"


def _over_budget(kind: type) -> str:
    return f"<repr over budget: {kind.__qualname__}>"


def _budget_spent(kind: type) -> str:
    return f"<repr skipped, capture budget spent: {kind.__qualname__}>"


def _failed(value: Any, exc: BaseException) -> str:
    if not isinstance(exc, Exception):  # a control-flow exception, never the caller's
        return f"<repr raised {type(exc).__name__}>"
    try:
        kind = type(value).__qualname__
    except BaseException:
        kind = "object"
    return f"<{kind}: repr failed: {type(exc).__name__}>"


def scrub(text: str, secrets: Iterable[tuple[str, str]]) -> str:
    """Replace each clear secret in ``text`` (an exception message or traceback)
    with its hash marker."""
    for clear, marker in secrets:
        if clear:
            text = text.replace(clear, marker)
    return text
