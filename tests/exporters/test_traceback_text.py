"""A failure's traceback text is formatted off the hot path (writer, alert engine) without
the ``ast`` module where CPython shares its recursion depth between threads (3.11 before
3.11.8, gh-106905): an ``ast.parse`` there (``traceback`` finding its ``~~~^^^`` carets)
made other threads' ``ast.parse`` fail with ``SystemError: AST constructor recursion depth
mismatch`` (seen in test_monitor_spans's semconv test). The text stays the standard
library's, character for character."""
from __future__ import annotations

import ast
import sys
import threading
import traceback
import types

import pytest

from exporters.records import error_texts
from exporters.traceback_text import SHARED_AST_STATE, caret_anchors, format_snapshot

ON_311 = sys.version_info[:2] == (3, 11)


def _binop(book):
    return book["spot"] * 2 + book["vol"] ** 2


def _subscript(rows):
    return (rows)[3]


def _chained():
    try:
        _subscript([1])
    except IndexError as exc:
        raise ValueError("no row") from exc


def _snapshots():
    for fn, arg in ((_binop, {"spot": 1, "vol": None}), (_subscript, [0]), (_chained, None)):
        try:
            fn(arg) if arg is not None else fn()
        except Exception as exc:
            yield (traceback.TracebackException.from_exception(exc),
                   traceback.TracebackException.from_exception(exc))


@pytest.fixture
def parses(monkeypatch):
    """The calls of ``ast.parse`` made on this thread."""
    made: list[str] = []
    real = ast.parse
    me = threading.current_thread()

    def parse(source, *args, **kwargs):
        if threading.current_thread() is me:
            made.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", parse)
    return made


def test_a_snapshot_formats_as_the_standard_library_does(parses):
    for ours, theirs in _snapshots():
        expected = "".join(theirs.format())
        assert "^" in expected
        del parses[:]
        assert format_snapshot(ours) == expected
        if SHARED_AST_STATE:
            assert parses == []


def test_error_texts_never_call_ast_where_it_is_not_thread_safe(parses):
    [(snapshot, reference), *_] = list(_snapshots())
    error = ("TypeError", snapshot, "unsupported operand", (), None)
    expected = "".join(reference.format())
    del parses[:]
    _, text, _ = error_texts(error)
    assert text == expected
    if SHARED_AST_STATE:
        assert parses == []


TRICKY = [
    "a + b", "a+b", "a  +  b", "(a) + (b)", "(a + b) * c", "a * (b + c)", "a - -b",
    "-a ** b", "a ** -b", "a ** b ** c", "-a * b", "a << b >> c", "a | b & c ^ d",
    "a // b % c @ d", "f(x) + g(y)", "a.b[c] + d.e(f)", "(1, 2) + t", "() + t",
    "(x for x in y) + z", "'a' 'b' % x", "await a + b", "a if b else c", "not a + b",
    "a < b + c", "lambda: a + b", "a, b + c", "x = a + b", "a + b;", "a + b  # c",
    " a + b", "a +", "a[0]", "a[1:2]", "a[::2]", "a[1, 2]", "a[1,]", "(a)[0]", "a[(0)]",
    "a[b[0]]", "a[0][1]", "a()[0]", "-a[0]", "await a[0]", "a[0].b", "a[0](1)", "[1][0]",
    "{}[k]", "'é' + b", "é[ü] + ß", "x[é]", "a[]", "a + (b)(c)", "a + (b).c", "((a)) + b",
    "a*b", "a**b", "a @b", "a+ b", "a\t+\tb", "{a: b}[a] - 1", "a.b.c ** 2", "...[0]",
    "None + 1", "True[0]", "f'{a}' + b", "a[b:c, d]", "a[(1, 2)]", "(yield) + 1",
    "a + b if c else d", "a or b + c", "a and b[0]", "a is b[0]", "x[0] = 1", "del a[0]",
    "print(a)[0]", "a +\\", "\"unterminated", "a + $", "match[0]", "case + 1", "_ + 1",
]


@pytest.mark.skipif(not ON_311, reason="the anchors of CPython 3.11's traceback")
def test_caret_anchors_are_the_standard_librarys(parses):
    """The same anchors as 3.11's ``ast``-based search, for tricky segments and for every
    one-line segment a bytecode position names in a few standard modules."""
    reference = traceback._extract_caret_anchors_from_line_segment
    import collections
    import inspect
    import json.decoder
    segments = list(TRICKY)
    for module in (traceback, inspect, collections, json.decoder, threading):
        source = inspect.getsource(module)
        lines = source.splitlines()
        todo = [compile(source, module.__file__, "exec")]
        while todo:
            code = todo.pop()
            todo.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
            for line, end_line, col, end_col in code.co_positions():
                if line is not None and line == end_line and col is not None and end_col:
                    segments.append(lines[line - 1].encode()[col:end_col].decode(
                        errors="replace"))
    wrong = [(s, reference(s), caret_anchors(s)) for s in dict.fromkeys(segments)
             if reference(s) != caret_anchors(s)]
    assert wrong == []
    assert sum(reference(s) is not None for s in segments) > 100  # the carets were tried
