"""Binding a call's arguments to names, decided once per decorated function.

``inspect.Signature.bind`` costs microseconds a call; the parameter names, which
of them are masked and what their attribute keys are, never change, so they are
computed at decoration and each call only zips names with formatted values.
"""
from __future__ import annotations

import inspect
import itertools
import json
from urllib.parse import quote, quote_plus
from typing import Any, Callable, Iterable

from exporters.columns import ATTR_INPUT_PREFIX

from exporters.columns import TRUNCATION_MARKER

from ._capture import AS_IS, HASH_LIMIT, is_sensitive

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class AttributeKeys(dict):
    """``keys[name] -> 'monitor.input.<name>'``, built once per name."""

    def __missing__(self, name: str) -> str:
        key = self[name] = ATTR_INPUT_PREFIX + name
        return key


class CapturePlan:
    """``capture(args, kwargs, fmt, mask) -> (names, texts)`` for one function."""

    def __init__(self, signature: inspect.Signature, mask: Iterable[str]) -> None:
        explicit = frozenset(mask)
        params = list(signature.parameters.values())
        self.positional = tuple(p.name for p in params if p.kind in _POSITIONAL)
        self.varargs = next((p.name for p in params if p.kind is p.VAR_POSITIONAL), None)
        self.varkw = next((p.name for p in params if p.kind is p.VAR_KEYWORD), None)
        self._named = frozenset(p.name for p in params
                                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
        self._explicit = explicit
        self._masked_names: dict[str, bool] = {}
        self.mask_return = self.is_masked("return")
        self.keys = AttributeKeys()
        self._npos = len(self.positional)
        # names[:n] for each n, so a positional call slices nothing
        self._prefixes = [self.positional[:n] for n in range(len(self.positional) + 1)]
        positional_masked = any(self.is_masked(n) for n in self.positional)
        varargs_masked = self.varargs is not None and self.is_masked(self.varargs)
        self._any_positional_masked = positional_masked or varargs_masked
        # For a caller that inlines capture's first case: (the names of the first n
        # positional arguments by n, or None when one of them may be masked).
        self.plain_prefixes = None if self._any_positional_masked else self._prefixes

    def is_masked(self, name: str) -> bool:
        masked = self._masked_names.get(name)
        if masked is None:
            masked = self._masked_names[name] = name in self._explicit or is_sensitive(name)
        return masked

    def names_for(self, nargs: int, kwargs: dict) -> tuple[str, ...]:
        npos = len(self.positional)
        if nargs <= npos:
            names = self._prefixes[nargs]
        else:
            extra = self.varargs or "args"
            names = self.positional + tuple(f"{extra}[{i}]" for i in range(nargs - npos))
        if kwargs:
            names = names + tuple(kwargs)
        return names

    def capture(self, args: tuple, kwargs: dict, fmt: Callable[[Any], str],
                mask: Callable[[Any], str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(names, texts): tuples of str and scalars, so the record they end up in is
        not tracked by the garbage collector. ``fmt``: a ``ValueFormatter``'s format,
        which keeps the ``AS_IS`` types as they are: positional arguments all of those
        types are kept as they came (the call's own tuple), with no call per value."""
        if not kwargs and not self._any_positional_masked:
            nargs = len(args)
            if nargs <= self._npos:
                if AS_IS.issuperset(map(type, args)):
                    return self._prefixes[nargs], args
                return self._prefixes[nargs], tuple(map(fmt, args))
        names = self.names_for(len(args), kwargs)
        values = [*args, *kwargs.values()]
        flags = self._masked_flags(names, len(args))
        return names, tuple([mask(v) if m else fmt(v) for v, m in zip(values, flags)])

    def secrets(self, args: tuple, kwargs: dict,
                mask: Callable[[Any], str]) -> list[tuple[str, str | None]]:
        """(clear text, marker) of each form a message may quote a masked argument by,
        to scrub exception texts with (``exporters.records.error_texts``). A form too
        short to search for safely (< ``MIN_SCRUB`` characters) comes as (text, None):
        a message holding it is withheld whole."""
        names = self.names_for(len(args), kwargs)
        values = [*args, *kwargs.values()]
        found: list[tuple[str, str | None]] = []
        for value, masked in zip(values, self._masked_flags(names, len(args))):
            if not masked:
                continue
            texts: list[str] = []
            _clear_texts(value, texts, 2, getattr(mask, "render", repr))
            forms: set[str] = set()
            for clear in set(texts):  # a list of equal items escapes its text once
                _forms(clear, forms)
            marker = None
            for clear in sorted(forms, key=len, reverse=True):  # a part after its whole
                if len(clear) >= MIN_SCRUB:
                    marker = mask(value) if marker is None else marker
                    found.append((clear, marker))
                elif clear:
                    found.append((clear, None))
        return found

    def _masked_flags(self, names: tuple[str, ...], nargs: int) -> list[bool]:
        """Whether each captured value is masked: by its own name, or by the name of
        the ``*args`` / ``**kwargs`` parameter that collected it."""
        npos = len(self.positional)
        varargs_masked = self.varargs is not None and self.is_masked(self.varargs)
        varkw_masked = self.varkw is not None and self.is_masked(self.varkw)
        flags = []
        for i, name in enumerate(names):
            if npos <= i < nargs:
                flags.append(varargs_masked)
            elif i >= nargs and name not in self._named:
                flags.append(varkw_masked or self.is_masked(name))
            else:
                flags.append(self.is_masked(name))
        return flags


_CUT = TRUNCATION_MARKER.split("{")[0]
MIN_SCRUB = 4  # shorter forms would scrub ordinary words: their message is withheld
MAX_FORMS_LENGTH = 4096  # a longer text is searched for as itself only


def _forms(clear: str, out: set[str]) -> None:
    """The forms a message may show a text in: itself, escaped as by ``repr`` and
    ``ascii`` (a backslash doubled), JSON-escaped, URL-encoded (path and query)."""
    out.add(clear)
    if len(clear) > MAX_FORMS_LENGTH:
        return  # escaping 10 MB four ways would cost the failing call 0.3 s
    try:
        out.add(repr(clear)[1:-1])
        out.add(ascii(clear)[1:-1])
        out.add(json.dumps(clear)[1:-1])
        out.add(json.dumps(clear, ensure_ascii=False)[1:-1])
        out.add(quote(clear, safe=""))
        out.add(quote(clear))
        out.add(quote_plus(clear))
    except BaseException:  # a lone surrogate and the like: the forms that worked
        pass


def _numeric_texts(value: Any, out: list[str]) -> None:
    """A number as messages format it: ``str``, fixed-point with 0 to 6 decimals,
    ``g``, with thousands separators."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, int) and value.bit_length() > 256:
        return  # no message formats such an int in full (and str() of it is slow)
    out.append(str(value))
    for spec in (".0f", ".1f", ".2f", ".3f", ".4f", ".5f", ".6f", "g", ",", ",.2f", "e"):
        try:
            out.append(format(value, spec))
        except (ValueError, OverflowError):
            pass


def _clear_texts(value: Any, out: list[str], depth: int, render: Callable[[Any], str]) -> None:
    """The texts a message may quote a masked value by: a string itself; else its
    bounded text (``render``: never its full repr, so a huge value costs what its first
    items do), a bytes value decoded, and the first items of a (shallow) container."""
    if len(out) >= 64:
        return
    if isinstance(value, str):
        out.append(value)
        return
    try:
        _numeric_texts(value, out)
        if isinstance(value, (bytes, bytearray)):
            out.append(bytes(value[:HASH_LIMIT]).decode("utf-8", "replace"))
        text = render(value)
        if _CUT not in text and not text.startswith("<repr ") and "repr failed" not in text:
            out.append(text)  # a cut or placeholder text is not what a message quotes
        if depth > 0 and isinstance(value, (dict, list, tuple, set, frozenset)):
            items = value.values() if isinstance(value, dict) else value
            for item in itertools.islice(items, 32):
                _clear_texts(item, out, depth - 1, render)
    except BaseException:  # a __repr__ raising SystemExit… must not reach the caller
        return
