"""The served reads' ``ast`` work waits its turn on interpreters whose ``ast`` module shares
its recursion depth between threads (CPython gh-106905, 3.11 before 3.11.8): two request
threads reading recorded reprs back at once could make one fail with SystemError."""
from __future__ import annotations

import threading

import pytest

from dash_ui.reproduce import _constructed, _literal
from exporters.literals import AST_LOCK, literal_eval, parse_expression
from exporters.traceback_text import SHARED_AST_STATE


def test_the_helpers_read_literals_and_expressions():
    assert literal_eval("{'spot': 101.5, 'ok': True}") == {"spot": 101.5, "ok": True}
    assert type(parse_expression("Quote(1, x=[2])").body).__name__ == "Call"
    with pytest.raises(ValueError):
        literal_eval("os.system('x')")


@pytest.mark.skipif(not SHARED_AST_STATE, reason="threads have their own ast state here")
@pytest.mark.parametrize("read", [lambda: _literal("[1, 2]"),
                                  lambda: _constructed("Quote(1, 2)")],
                         ids=["reproduce literal", "reproduce constructor"])
def test_a_served_read_waits_while_another_thread_holds_the_ast_turn(read):
    finished = threading.Event()

    def reader():
        assert read()
        finished.set()

    with AST_LOCK:
        worker = threading.Thread(target=reader)
        worker.start()
        assert not finished.wait(0.3)  # blocked on the turn, not done
    worker.join(10)
    assert finished.is_set()
