"""A traceback snapshot's text, formatted off the hot path without the ``ast`` module.

CPython 3.11's ``traceback`` marks the failing operator of a line with ``~~~^^^~~~``
carets: ``_extract_caret_anchors_from_line_segment`` calls ``ast.parse`` on the failing
segment of each frame. Before 3.11.8 the ``ast`` module's recursion-depth bookkeeping is
one per interpreter, not per call (CPython gh-106905, fixed by GH-113476 in 3.11.8): an
``ast.parse`` on our writer or alert thread while any other thread is building an AST
(the application's, a test's, a library's) can make *that other* ``ast.parse`` fail with
``SystemError: AST constructor recursion depth mismatch``. On those interpreters the
anchors are found from the segment's tokens instead (the same offsets ``ast`` gives, then
CPython's own post-processing); elsewhere the snapshot formats itself.
"""
from __future__ import annotations

import functools
import io
import keyword
import sys
import tokenize
import traceback
import types
from typing import Any

# interpreters whose ``ast`` module shares its recursion depth between threads
SHARED_AST_STATE = (3, 11) <= sys.version_info[:3] < (3, 11, 8)

_LEVEL = {"|": 1, "^": 2, "&": 3, "<<": 4, ">>": 4, "+": 5, "-": 5,
          "*": 6, "@": 6, "/": 6, "//": 6, "%": 6, "**": 8}
_OPERAND_KEYWORDS = frozenset({"None", "True", "False"})
_SKIP = frozenset({tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.ENDMARKER})
# a binary operation has one of these characters, a subscript a "["
_MAY_HAVE_ANCHORS = frozenset("|^&<>+-*@/%[")


def format_snapshot(snapshot: traceback.TracebackException) -> str:
    """``"".join(snapshot.format())``, never calling ``ast`` where that is unsafe."""
    if SHARED_AST_STATE and _TokenStackSummary is not None:
        for te in snapshot_chain(snapshot):
            stack = getattr(te, "stack", None)
            if type(stack) is traceback.StackSummary:
                stack.__class__ = _TokenStackSummary
    return "".join(snapshot.format())


def snapshot_chain(snapshot: Any) -> list:
    """The snapshot and every exception snapshot chained to it (cause, context, group)."""
    found: list = []
    todo = [snapshot]
    while todo:
        te = todo.pop()
        if te is None or any(te is seen for seen in found):
            continue
        found.append(te)
        todo.extend((getattr(te, "__cause__", None), getattr(te, "__context__", None)))
        todo.extend(getattr(te, "exceptions", None) or ())
    return found


def caret_anchors(segment: str) -> Any:
    """What 3.11's ``traceback._extract_caret_anchors_from_line_segment`` returns for
    ``segment`` (None, or its ``_Anchors``), from tokens instead of an AST."""
    found = _node_offsets(segment)
    if found is None:
        return None
    kind, a, b = found
    if kind == "binop":
        return _binop_anchors(segment, a, b)
    return _subscript_anchors(segment, a, b)


# -- CPython 3.11.7's post-processing of the AST's offsets (UTF-8 byte offsets) -----------

def _binop_anchors(segment: str, left_end: int, right_start: int) -> Any:
    normalize = lambda offset: traceback._byte_offset_to_character_offset(segment, offset)
    operator_start = normalize(left_end)
    operator_end = normalize(right_start)
    operator_str = segment[operator_start:operator_end]
    operator_offset = len(operator_str) - len(operator_str.lstrip())

    left_anchor = left_end + operator_offset
    right_anchor = left_anchor + 1
    if (operator_offset + 1 < len(operator_str)
            and not operator_str[operator_offset + 1].isspace()):
        right_anchor += 1

    while left_anchor < len(segment) and ((ch := segment[left_anchor]).isspace()
                                          or ch in ")#"):
        left_anchor += 1
        right_anchor += 1
    return traceback._Anchors(normalize(left_anchor), normalize(right_anchor))


def _subscript_anchors(segment: str, value_end: int, slice_end: int) -> Any:
    normalize = lambda offset: traceback._byte_offset_to_character_offset(segment, offset)
    left_anchor = normalize(value_end)
    right_anchor = normalize(slice_end + 1)
    while left_anchor < len(segment) and ((ch := segment[left_anchor]).isspace()
                                          or ch != "["):
        left_anchor += 1
    while right_anchor < len(segment) and ((ch := segment[right_anchor]).isspace()
                                           or ch != "]"):
        right_anchor += 1
    if right_anchor < len(segment):
        right_anchor += 1
    return traceback._Anchors(left_anchor, right_anchor)


# -- the offsets ``ast.parse(segment)`` would give, from tokens ------------------------------

@functools.lru_cache(maxsize=4096)  # the same lines fail again and again
def _node_offsets(segment: str) -> tuple[str, int, int] | None:
    """For a segment that is one expression statement whose expression is a binary
    operation: ("binop", left operand's end, right operand's start); a subscript:
    ("subscript", value's end, slice's end); otherwise None. Offsets in UTF-8 bytes, as
    ``ast`` gives them (a parenthesised operand's node excludes its parentheses, a
    tuple's includes them)."""
    if _MAY_HAVE_ANCHORS.isdisjoint(segment):
        return None
    try:
        toks = [t for t in tokenize.generate_tokens(io.StringIO(segment).readline)
                if t.type not in _SKIP]
    except (tokenize.TokenError, SyntaxError, ValueError):
        return None
    if toks and toks[-1].type == tokenize.OP and toks[-1].string == ";":
        toks.pop()  # one statement all the same
    if not toks or any(t.start[0] != 1 or t.end[0] != 1 for t in toks):
        return None
    depth: list[int] = []
    match: dict[int, int] = {}
    openers: list[int] = []
    for i, t in enumerate(toks):
        if t.type not in (tokenize.NAME, tokenize.NUMBER, tokenize.STRING, tokenize.OP):
            return None  # INDENT, ERRORTOKEN…: not something ast.parse takes
        if t.type == tokenize.OP and t.string in ")]}":
            if not openers or "([{"[")]}".index(t.string)] != toks[openers[-1]].string:
                return None
            match[openers.pop()] = i
        depth.append(len(openers))
        if t.type == tokenize.OP and t.string in "([{":
            openers.append(i)
    if openers:
        return None

    def is_group(lo: int) -> bool:
        """``( x )`` with one expression inside: not a tuple, nor a generator."""
        hi = match[lo]
        if hi == lo + 1:
            return False  # ()
        inner = depth[lo] + 1
        return not any(depth[j] == inner and (
            (toks[j].type == tokenize.OP and toks[j].string == ",") or
            (toks[j].type == tokenize.NAME and toks[j].string in ("for", "async")))
            for j in range(lo + 1, hi))

    def strip(lo: int, hi: int) -> tuple[int, int]:
        while (lo < hi and toks[lo].string == "(" and toks[lo].type == tokenize.OP
               and match[lo] == hi and is_group(lo)):
            lo, hi = lo + 1, hi - 1
        return lo, hi

    def byte(col: int) -> int:
        return len(segment[:col].encode("utf-8"))

    lo, hi = strip(0, len(toks) - 1)
    base = depth[lo]
    binary: list[tuple[int, int]] = []  # (token index, level)
    prefixes: list[int] = []            # unary + - ~ and await at the base level
    operand = False                     # the last base-level token ends an operand
    last_string = False
    trailer: tuple[int, int] | None = None  # the last [ … ] subscript at the base level
    i = lo
    while i <= hi:
        t = toks[i]
        s = t.string
        trailer_now = None
        if t.type == tokenize.NAME:
            if s == "await":
                if operand:
                    return None
                prefixes.append(i)
            elif keyword.iskeyword(s) and s not in _OPERAND_KEYWORDS:
                return None  # lambda, if/else, and/or/not, in/is, yield, statements…
            else:
                if operand:
                    return None
                operand = True
            last_string = False
        elif t.type in (tokenize.NUMBER, tokenize.STRING):
            if operand and not (t.type == tokenize.STRING and last_string):
                return None
            operand, last_string = True, t.type == tokenize.STRING
        else:  # OP
            last_string = False
            if s in "([{":
                if s == "{" and operand:
                    return None
                if s == "[" and operand:
                    trailer_now = (i, match[i])
                i = match[i]
                operand = True
            elif s == ".":
                if not operand or i + 1 > hi or toks[i + 1].type != tokenize.NAME:
                    return None
                i += 1
                operand = True
            elif s == "...":
                if operand:
                    return None
                operand = True
            elif s in _LEVEL and operand:
                binary.append((i, _LEVEL[s]))
                operand = False
            elif s in ("+", "-", "~") and not operand:
                prefixes.append(i)
            else:
                return None  # , : = := ; -> comparisons, a starred operand…
        trailer = trailer_now
        i += 1
    if not operand:
        return None
    if binary:
        level = min(lv for _, lv in binary)
        at = [j for j, lv in binary if lv == level]
        root = at[0] if level == _LEVEL["**"] else at[-1]  # ** groups to the right
        if level == _LEVEL["**"] and any(p < root for p in prefixes):
            return None  # -a ** b is -(a ** b)
        left_lo, left_hi = strip(lo, root - 1)
        right_lo, right_hi = strip(root + 1, hi)
        return "binop", byte(toks[left_hi].end[1]), byte(toks[right_lo].start[1])
    if trailer is None or prefixes:
        return None
    opener, closer = trailer
    if closer == opener + 1:
        return None  # a[]
    value_lo, value_hi = strip(lo, opener - 1)
    slice_lo, slice_hi = strip(opener + 1, closer - 1)
    return "subscript", byte(toks[value_hi].end[1]), byte(toks[slice_hi].end[1])


def _token_stack_summary() -> type | None:
    """A StackSummary whose ``format_frame_summary`` is the standard library's own code
    with ``caret_anchors`` in place of the ``ast`` one (no global is patched)."""
    method = traceback.StackSummary.__dict__.get("format_frame_summary")
    code = getattr(method, "__code__", None)
    if code is None or "_extract_caret_anchors_from_line_segment" not in code.co_names:
        return None
    scope = dict(vars(traceback))
    scope["_extract_caret_anchors_from_line_segment"] = caret_anchors
    body = types.FunctionType(code, scope, method.__name__, method.__defaults__,
                              method.__closure__)
    return type("_TokenStackSummary", (traceback.StackSummary,),
                {"format_frame_summary": body, "__slots__": ()})


_TokenStackSummary = _token_stack_summary() if SHARED_AST_STATE else None
