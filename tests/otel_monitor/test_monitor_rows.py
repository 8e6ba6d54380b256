"""The brief's testing matrix for the decorator: what one call leaves in the store.

Happy path: 1 ``process_trace`` row + one ``data_trace`` row per argument and one
for the result. Exception: the INPUT rows, no OUTPUT row, every row ``ERR`` with
the traceback; the exception itself reaches the caller unchanged.
"""
from __future__ import annotations

import inspect
import re
import sqlite3
from datetime import datetime, timezone

import pytest

import otel_monitor
from otel_monitor import monitor

from monitor_helpers import Store, process_name


def _line_of(fn, text: str) -> int:
    """The line number of the first source line of ``fn`` containing ``text``."""
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


def test_happy_path_writes_one_process_row_and_four_input_rows_plus_one_output_row(store):
    @monitor("pricing")
    def price(spot, strike, vol, t):
        return spot - strike + vol * t

    assert price(100.0, 95.0, 0.5, 2.0) == 6.0

    call = store.call(price)
    assert call["status"] == "OK"
    assert call["outcome"] == "ok"
    assert call["exception"] is None
    assert call["process_group"] == "pricing"
    assert call["duration_ms"] >= 0
    rows = store.data(call)
    assert [(r["data"], r["data_type"], r["data_value"]) for r in rows] == [
        ("spot", "INPUT", "100.0"),
        ("strike", "INPUT", "95.0"),
        ("vol", "INPUT", "0.5"),
        ("t", "INPUT", "2.0"),
        ("return", "OUTPUT", "6.0"),
    ]
    assert {r["status"] for r in rows} == {"OK"}
    assert {r["process"] for r in rows} == {process_name(price)}


def _returns_none(x):
    x.append(1)


def _generator_returning_none(x):
    yield x


@pytest.mark.parametrize("fn,otel_span", [
    (_returns_none, False), (_returns_none, True), (_generator_returning_none, False)],
    ids=["function", "function-otel-span", "generator"])
def test_call_returning_none_still_has_its_output_row(store, fn, otel_span):
    wrapped = monitor("rows", otel_span=otel_span)(fn)
    result = wrapped([])
    if inspect.isgenerator(result):
        list(result)
    rows = store.data(store.call(wrapped))
    assert [(r["data"], r["data_type"], r["data_value"]) for r in rows][-1] == (
        "return", "OUTPUT", "None")


def test_scalar_arguments_and_results_are_stored_as_their_repr(store):
    @monitor("rows")
    def scalars(i, f, b, n, c, big):
        return (i, f)

    scalars(-7, 0.1, True, None, 1 + 2j, 2**100)
    assert store.values(store.call(scalars)) == {
        "i": "-7", "f": "0.1", "b": "True", "n": "None", "c": "(1+2j)",
        "big": str(2**100), "return": "(-7, 0.1)"}


def test_arguments_all_numbers_are_stored_as_their_repr_as_other_calls(store):
    # Positional arguments all int/float/bool/complex are kept as the call's own tuple
    # (no call per value on the hot path); the rows read as for any other call, a
    # masked one among them still masked, a keyword one still by its name.
    @monitor("rows", mask=("secret",))
    def numbers(i, f, b, c, big, secret=0.0):
        return f * 2

    numbers(-7, 0.1, False, 1 + 2j, 2**100)
    numbers(1, 2.5, True, 0j, 3, secret=123456.75)
    numbers(1, 2.5, True, 0j, 3, 123456.75)
    first, by_keyword, positional = store.calls(numbers)
    assert store.values(first) == {
        "i": "-7", "f": "0.1", "b": "False", "c": "(1+2j)", "big": str(2**100),
        "return": "0.2"}
    for call in (by_keyword, positional):
        values = store.values(call)
        assert values["return"] == "5.0" and values["big"] == "3"
        assert "123456.75" not in values["secret"]


def test_each_call_is_its_own_process_row_even_within_the_same_second(store):
    @monitor("pricing")
    def add(a, b):
        return a + b

    for i in range(5):
        add(i, 1)

    calls = store.calls(add)
    assert len(calls) == 5
    assert len({c["span_id"] for c in calls}) == 5
    assert [store.values(c)["return"] for c in calls] == ["1", "2", "3", "4", "5"]


def test_exception_writes_input_rows_only_every_row_err_with_the_traceback(store):
    @monitor("pricing")
    def price(spot, strike):
        if strike < 0:
            raise ValueError(f"strike must be positive, got {strike}")
        return spot - strike

    with pytest.raises(ValueError):
        price(100.0, -5)

    call = store.call(price)
    assert call["status"] == "ERR"
    assert call["outcome"] == "error"
    assert call["exception_type"] == "ValueError"
    text = call["exception"]
    assert text.startswith("Traceback (most recent call last):")
    assert 'raise ValueError(f"strike must be positive, got {strike}")' in text
    assert f"line {_line_of(price, 'raise ValueError')}, in price" in text
    assert text.rstrip().endswith("ValueError: strike must be positive, got -5")

    rows = store.data(call)
    assert [(r["data"], r["data_type"], r["data_value"]) for r in rows] == [
        ("spot", "INPUT", "100.0"),
        ("strike", "INPUT", "-5"),
    ]
    assert all(r["status"] == "ERR" for r in rows)
    assert all(r["exception"] == text for r in rows)


def test_exception_is_reraised_as_the_same_object_with_its_traceback_reaching_the_raise(store):
    raised = []

    @monitor("pricing")
    def price(spot):
        exc = ZeroDivisionError("no vol")
        raised.append(exc)
        raise exc

    with pytest.raises(ZeroDivisionError) as info:
        price(1.0)

    assert info.value is raised[0]
    assert str(info.value) == "no vol"
    tb = info.value.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    assert tb.tb_frame.f_code is price.__wrapped__.__code__
    assert tb.tb_lineno == _line_of(price, "raise exc")
    assert store.call(price)["status"] == "ERR"


def test_exception_text_is_as_raised_not_as_the_caller_changed_it_afterwards(tmp_path):
    otel_monitor.configure(db_path=tmp_path / "n.db", flush_interval_s=60)
    try:
        @monitor("pricing")
        def price(spot):
            raise ValueError("as raised")

        try:
            price(1)
        except ValueError as exc:
            exc.add_note("note added by the caller later")
            exc.args = ("changed by the caller",)
        text = Store(tmp_path / "n.db").call(price)["exception"]
        assert "ValueError: as raised" in text
        assert "changed by the caller" not in text
        assert "note added by the caller later" not in text
    finally:
        otel_monitor.shutdown()


def test_chained_exception_traceback_keeps_the_cause(store):
    @monitor("io")
    def load(path):
        try:
            {}["missing"]
        except KeyError as exc:
            raise RuntimeError(f"cannot load {path}") from exc

    with pytest.raises(RuntimeError) as info:
        load("a.csv")
    assert isinstance(info.value.__cause__, KeyError)

    text = store.call(load)["exception"]
    assert "KeyError: 'missing'" in text
    assert "The above exception was the direct cause" in text
    assert "RuntimeError: cannot load a.csv" in text


def test_seven_column_view_has_exactly_the_canonical_columns_and_iso_utc_timestamps(store):
    @monitor("pricing")
    def price(spot, strike):
        return spot * strike

    before = datetime.now(timezone.utc)
    price(2, 3)
    after = datetime.now(timezone.utc)

    store.query("SELECT 1")  # flushes
    con = sqlite3.connect(store.path)
    try:
        cur = con.execute('SELECT * FROM trace_rows WHERE "Process" = ? ORDER BY "Data Type", "Data"',
                          (process_name(price),))
        columns = [d[0] for d in cur.description]
        rows = cur.fetchall()
    finally:
        con.close()
    assert columns == ["Process", "Data", "Data Type", "Data Value", "Timestamp", "Status",
                       "Exception"]
    assert [r[1:4] for r in rows] == [("spot", "INPUT", "2"), ("strike", "INPUT", "3"),
                                      ("return", "OUTPUT", "6")]
    for row in rows:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", row[4]), row[4]
        ts = datetime.strptime(row[4], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        assert before.replace(microsecond=0) <= ts <= after
        assert row[5] == "OK"
        assert row[6] == ""


def test_inputs_are_captured_at_entry_and_output_at_return(store):
    @monitor("book")
    def book(trades, limits):
        trades.append("added inside the call")  # after entry: not in the INPUT row
        return [len(trades)]

    trades, limits = ["t1", "t2"], {"max": 1}
    result = book(trades, limits)
    # mutated after the call returned: the rows keep the values of the call
    trades.append("added after")
    limits["max"] = 99
    result.append("added after")

    values = store.values(store.call(book))
    assert values == {"trades": "['t1', 't2']", "limits": "{'max': 1}", "return": "[3]"}


def test_arguments_are_named_by_the_signature_positional_keyword_varargs_and_kwargs(store):
    @monitor("names")
    def f(a, b, /, c, *rest, d, **options):
        return None

    f(1, 2, 3, 4, 5, d=6, e=7)

    rows = store.data(store.call(f))
    assert [(r["data"], r["data_value"]) for r in rows if r["data_type"] == "INPUT"] == [
        ("a", "1"), ("b", "2"), ("c", "3"), ("rest[0]", "4"), ("rest[1]", "5"),
        ("d", "6"), ("e", "7"),
    ]


@pytest.mark.parametrize("log_inputs,log_outputs,expected", [
    (True, False, [("x", "INPUT")]),
    (False, True, [("return", "OUTPUT")]),
    (False, False, []),
])
def test_log_inputs_and_log_outputs_select_the_data_rows(store, log_inputs, log_outputs,
                                                         expected):
    @monitor("flags", log_inputs=log_inputs, log_outputs=log_outputs)
    def f(x):
        return x + 1

    assert f(1) == 2
    call = store.call(f)
    assert call["status"] == "OK"
    assert [(r["data"], r["data_type"]) for r in store.data(call)] == expected


def test_process_catalog_records_source_file_and_line_of_the_decorated_function(store):
    @monitor("catalog")
    def documented(x):
        return x

    documented(1)
    store.call(documented)  # flushes
    row = store.query("SELECT * FROM processes WHERE name = ?", (process_name(documented),))[0]
    assert row["process_group"] == "catalog"
    assert row["file"] == __file__
    assert row["line"] == documented.__wrapped__.__code__.co_firstlineno
    assert "def documented(x):" in row["source"]
