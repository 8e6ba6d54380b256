"""The Exception cell's one line, read from a stored traceback."""
from __future__ import annotations

from exporters.queries.summary import SUMMARY_CHARS, exception_summary

TB = ('Traceback (most recent call last):\n  File "demo.py", line 3, in price\n'
      '    raise StaleQuoteError("quote 12 s old")\n'
      'otel_monitor.demo.StaleQuoteError: quote 12 s old\n')


def test_the_type_without_its_module_and_the_message():
    assert exception_summary(TB, "StaleQuoteError") == "StaleQuoteError: quote 12 s old"
    assert exception_summary(TB, "otel_monitor.demo.StaleQuoteError") == \
        "StaleQuoteError: quote 12 s old"


def test_a_message_of_several_lines_gives_its_first():
    tb = TB.replace("quote 12 s old\n", "line one\nsecond: line\n")
    assert exception_summary(tb, "StaleQuoteError") == "StaleQuoteError: line one"


def test_no_message_empty_text_and_bounded_length():
    assert exception_summary("Traceback:\n  File x\nKeyError\n", "KeyError") == "KeyError"
    assert exception_summary("", None) == exception_summary(None) == ""
    long = exception_summary(TB.replace("quote 12 s old", "x" * 5000), "StaleQuoteError")
    assert len(long) == SUMMARY_CHARS and long.endswith("…")


def test_a_chain_shows_the_last_exception():
    chained = TB + ("\nDuring handling of the above exception, another exception occurred:\n\n"
                    "Traceback (most recent call last):\n  File \"x\", line 1\n"
                    "RuntimeError: pricing failed\n")
    assert exception_summary(chained, "RuntimeError") == "RuntimeError: pricing failed"
