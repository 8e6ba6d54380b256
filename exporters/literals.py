"""The UI server's ``ast`` work (reading a recorded repr back as a literal), one thread
at a time where CPython needs it.

Before 3.11.8 the ``ast`` module's recursion depth is one per interpreter, not per
thread (CPython gh-106905): two request threads building ASTs at once can make one of
them fail with ``SystemError: AST constructor recursion depth mismatch``. Every ``ast``
call of the served reads (a call's host, Reproduce's literals) goes through here and
holds ``AST_LOCK`` on those interpreters; the writer and alert threads format tracebacks
without ``ast`` there (``traceback_text``).
"""
from __future__ import annotations

import ast
import contextlib
import threading
from typing import Any, Iterator

from .traceback_text import SHARED_AST_STATE

AST_LOCK = threading.Lock()


@contextlib.contextmanager
def ast_turn() -> Iterator[None]:
    """Hold the interpreter's one ``ast`` turn where threads share it."""
    if not SHARED_AST_STATE:
        yield
        return
    with AST_LOCK:
        yield


def literal_eval(node_or_text: Any) -> Any:
    with ast_turn():
        return ast.literal_eval(node_or_text)


def parse_expression(text: str) -> ast.Expression:
    with ast_turn():
        return ast.parse(text, mode="eval")
