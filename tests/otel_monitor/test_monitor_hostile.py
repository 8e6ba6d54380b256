"""Hostile but realistic values: the decorated call behaves exactly like the bare
function (return value, exception identity, side effects), whatever the values'
``repr`` does, and no masked value leaks. Timing is measured by
``benchmarks/bench_hostile.py``, never asserted here (noisy machines)."""
from __future__ import annotations

import pytest

from otel_monitor import _wrappers, monitor


class CustomBase(BaseException):
    pass


BASE_EXCEPTIONS = [SystemExit, KeyboardInterrupt, GeneratorExit, CustomBase]


ARMED = [False]  # the reprs raise only inside ``armed()``: pytest's own reports repr them too


class armed:
    def __enter__(self):
        ARMED[0] = True

    def __exit__(self, *exc):
        ARMED[0] = False


def raising_repr(kind):
    class Hostile:
        def __repr__(self):
            if ARMED[0]:
                raise kind("from __repr__")
            return "<hostile>"
    Hostile.__qualname__ = f"Raises{kind.__name__}"
    return Hostile()


# -- 1. BaseExceptions from __repr__ never reach the caller -------------------------


@pytest.mark.parametrize("kind", BASE_EXCEPTIONS, ids=lambda k: k.__name__)
def test_base_exception_from_an_arguments_repr_does_not_skip_the_body(store, kind):
    ran = []

    @monitor("hostile")
    def f(value):
        ran.append(value)
        return "fine"

    value = raising_repr(kind)
    with armed():
        got = f(value)
    assert got == "fine"
    assert ran == [value]
    assert store.values(store.call(f))["value"] == f"<repr raised {kind.__name__}>"


@pytest.mark.parametrize("kind", BASE_EXCEPTIONS, ids=lambda k: k.__name__)
def test_base_exception_from_a_masked_arguments_repr_does_not_reach_the_caller(store, kind):
    @monitor("hostile", mask=("hidden",))
    def f(hidden):
        return "fine"

    with armed():
        got = f(raising_repr(kind))
    assert got == "fine"
    assert store.values(store.call(f))["hidden"].startswith("<HASHED:")


@pytest.mark.parametrize("kind", BASE_EXCEPTIONS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("otel_span", [False, True])
def test_base_exception_from_the_results_repr_does_not_lose_the_result(store, kind, otel_span):
    result = raising_repr(kind)

    @monitor("hostile", otel_span=otel_span)
    def f():
        return result

    with armed():
        got = f()
    assert got is result
    assert store.values(store.call(f))["return"] == f"<repr raised {kind.__name__}>"


@pytest.mark.parametrize("kind", BASE_EXCEPTIONS, ids=lambda k: k.__name__)
def test_base_exception_from_a_repr_when_the_call_fails_keeps_the_callers_exception(store, kind):
    error = ValueError("own")

    @monitor("hostile", mask=("hidden",))
    def f(shown, hidden):
        raise error

    with pytest.raises(ValueError) as info, armed():
        f(raising_repr(kind), raising_repr(kind))
    assert info.value is error


@pytest.mark.parametrize("kind", BASE_EXCEPTIONS, ids=lambda k: k.__name__)
def test_base_exception_from_repr_in_coroutines_and_generators(store, kind):
    @monitor("hostile")
    async def co(value):
        return value

    @monitor("hostile")
    def gen(value):
        yield value
        return value

    value = raising_repr(kind)
    with armed():  # driven by hand: asyncio.run would repr the result in its own debug text
        got = run_coroutine(co(value)), list(gen(value))
    assert got == (value, [value])


def run_coroutine(coro):
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the coroutine suspended")


@pytest.mark.parametrize("kind", [SystemExit, KeyboardInterrupt, CustomBase],
                         ids=lambda k: k.__name__)
def test_control_flow_exceptions_of_the_function_itself_still_pass_through(store, kind):
    error = kind("own")

    @monitor("hostile")
    def f():
        raise error

    with pytest.raises(kind) as info:
        f()
    assert info.value is error


# -- 2. Bounded capture cost ----------------------------------------------------------
# Cost is shown by what is *done*, not by timing: a huge value's full repr is never
# built, and a type whose repr went over the budget is not repr'd again.


class CountingList(list):
    """A list whose items count how often they were repr'd."""


class Counted:
    reprs = 0

    def __repr__(self):
        Counted.reprs += 1
        return "Counted()"


class Slow:
    reprs = 0

    def __repr__(self):
        import time

        Slow.reprs += 1
        time.sleep(0.005)  # 5x the default 1 ms budget
        return "Slow()"


def huge_masked_list():
    return [Counted()] * 10**5 + list(range(10**6))


def test_a_huge_masked_list_is_hashed_from_its_bounded_form(store):
    @monitor("hostile", mask=("accounts",))
    def f(accounts):
        return len(accounts)

    value = huge_masked_list()
    Counted.reprs = 0
    assert f(value) == len(value)
    assert Counted.reprs <= 20  # the bounded form shows only the first items
    marker = store.values(store.call(f))["accounts"]
    assert marker.startswith("<HASHED:")


def test_equal_masked_values_still_give_equal_markers(store):
    @monitor("hostile", mask=("accounts",))
    def f(accounts):
        return None

    f(list(range(10**5)))
    f(list(range(10**5)))
    f(list(range(10**5 + 1)))
    a, b, c = (store.values(call)["accounts"] for call in store.calls(f))
    assert a == b
    assert a != c  # the length is part of the canonical form


def test_a_huge_masked_list_in_a_failing_call_is_never_repr_d_in_full(store):
    @monitor("hostile", mask=("accounts",))
    def f(accounts):
        raise ValueError("bad account")

    value = huge_masked_list()
    Counted.reprs = 0
    with pytest.raises(ValueError):
        f(value)
    # bounded forms only (the input's marker, the scrubber's marker and text, its
    # first 32 items): a few dozen reprs, not 10^5
    assert Counted.reprs <= 20 + 20 + 20 + 32
    assert store.call(f)["status"] == "ERR"


def test_a_nested_container_is_rendered_only_as_far_as_its_text_is_kept(store):
    """20 lists of 20 lists of 20 items: 8,000 item reprs for a text cut at 1,000
    characters. The items past the cut are not rendered; the text kept is the same."""
    @monitor("hostile")
    def f(grid):
        return None

    Counted.reprs = 0
    f([[[Counted()] * 20] * 20] * 20)
    shown = store.values(store.call(f))["grid"]
    assert Counted.reprs <= 1000 // len("Counted()") + 1
    inner = "[" + ", ".join(["Counted()"] * 20) + "]"
    middle = "[" + ", ".join([inner] * 20) + "]"
    full = "[" + ", ".join([middle] * 20) + "]"
    assert shown.startswith(full[:1000] + "…<") and shown.endswith(" more chars>")


def test_a_repr_over_the_budget_is_recorded_as_a_placeholder_and_skipped_next_time(store):
    @monitor("hostile")
    def f(value):
        return "fine"

    Slow.reprs = 0
    assert [f(Slow()) for _ in range(3)] == ["fine"] * 3
    assert Slow.reprs == 1  # the first call pays the slow repr once; then an O(1) check
    values = [store.values(call)["value"] for call in store.calls(f)]
    assert values == ["<repr over budget: Slow>"] * 3


def test_a_slow_item_inside_a_container_is_skipped_too(store):
    @monitor("hostile")
    def f(value):
        return "fine"

    Slow.reprs = 0
    assert f([1, Slow()]) == "fine"
    assert f([2, Slow()]) == "fine"
    assert f([3, "plain"]) == "fine"
    assert Slow.reprs == 1
    first, second, third = (store.values(call)["value"] for call in store.calls(f))
    assert first == second.replace("2", "1") == "[1, <repr over budget: Slow>]"
    assert third == "[3, 'plain']"  # lists as such are not blamed for their item


def test_the_capture_budget_is_a_setting(tmp_path):
    import otel_monitor
    from otel_monitor.settings import load_settings

    assert load_settings({}).capture_budget_ms == 1.0
    otel_monitor.configure(db_path=tmp_path / "b.db", capture_budget_ms=50.0)
    try:
        @monitor("hostile")
        def f(value):
            return "fine"

        Slow.reprs = 0
        f(Slow())
        f(Slow())
        assert Slow.reprs == 2  # 5 ms is under a 50 ms budget
    finally:
        otel_monitor.shutdown()


# The budget is per call: values that together go over it stop the rendering of the
# rest. Shown with a fake clock (``_capture._perf_ns``) that only the reprs move, and
# reprs that count their calls: what was rendered, not how long it took.

SPENT = "<repr skipped, capture budget spent: {}>"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    from otel_monitor import _capture

    fake = FakeClock()
    monkeypatch.setattr(_capture, "_perf_ns", fake)
    return fake


def costly(clock: FakeClock, name: str, ms: float):
    """A type whose repr costs ``ms`` on the fake clock and counts its calls."""
    class Costly:
        reprs = 0

        def __repr__(self):
            type(self).reprs += 1
            clock.now += int(ms * 1e6)
            return f"{name}()"
    Costly.__qualname__ = name
    return Costly


def test_values_that_together_go_over_the_budget_stop_the_rest(store, clock):
    """Ten arguments whose reprs each take 0.9 ms (under the 1 ms budget): once the
    call's capture has spent its budget the others are not repr'd."""
    kinds = [costly(clock, f"Costly{i}", 0.9) for i in range(10)]

    @monitor("hostile")
    def f(*values):
        return len(values)

    assert f(*(k() for k in kinds)) == 10
    rendered = [k for k in kinds if k.reprs]
    assert [k.reprs for k in rendered] == [1, 1]  # 0.9 ms, then 1.8 ms: over, stop
    values = store.values(store.call(f))
    assert [values[f"values[{i}]"] for i in range(10)] == ["Costly0()", "Costly1()"] + [
        SPENT.format(f"Costly{i}") for i in range(2, 10)]
    # none of them is over the budget alone: no type is remembered as slow
    assert [v for v in values.values() if "over budget" in v] == []


def test_a_type_known_to_be_costly_is_skipped_when_the_rest_of_the_budget_is_short(
        store, clock):
    Costly = costly(clock, "Costly", 0.6)

    @monitor("hostile")
    def f(a, b, c):
        return "fine"

    assert [f(Costly(), Costly(), Costly()) for _ in range(3)] == ["fine"] * 3
    # first call: a (0.6 ms, now known), b does not fit in what is left, nor c;
    # the budget is per call: each call renders its first value again
    assert Costly.reprs == 3
    for call in store.calls(f):
        values = store.values(call)
        assert (values["a"], values["b"], values["c"]) == (
            "Costly()", SPENT.format("Costly"), SPENT.format("Costly"))


def test_the_call_budget_covers_the_items_of_a_container_and_the_result(store, clock):
    kinds = [costly(clock, f"Item{i}", 0.4) for i in range(6)]

    @monitor("hostile")
    def f(items):
        return kinds[5]()

    f([k() for k in kinds[:5]])
    values = store.values(store.call(f))
    # 0.4, 0.8, 1.2 ms: the fourth and fifth items are not repr'd, nor the result
    assert values["items"] == "[Item0(), Item1(), Item2(), {}, {}]".format(
        SPENT.format("Item3"), SPENT.format("Item4"))
    assert values["return"] == SPENT.format("Item5")
    assert [k.reprs for k in kinds] == [1, 1, 1, 0, 0, 0]


def test_numbers_in_a_container_are_not_budgeted_like_numbers_alone(store, clock):
    """Floats, bools and None cannot be slow: inside a container they are shown even
    when the call's budget is spent (and a preempted float repr cannot mark float)."""
    A, B = costly(clock, "A", 0.9), costly(clock, "B", 0.9)

    @monitor("hostile")
    def f(a, b, numbers):
        return None

    f(A(), B(), [1.5, True, None, 2, (0.25, False)])
    values = store.values(store.call(f))
    assert values["numbers"] == "[1.5, True, None, 2, (0.25, False)]"


def test_the_call_budget_is_per_thread_and_the_next_call_starts_afresh(store, clock):
    Costly = costly(clock, "Costly", 0.9)

    @monitor("hostile")
    def f(a, b):
        return None

    f(Costly(), Costly())
    f(1.5, "plain")
    f([1, 2], {"k": (3, 4)})
    values = [store.values(c) for c in store.calls(f)]
    assert values[1] == {"a": "1.5", "b": "'plain'", "return": "None"}
    assert values[2] == {"a": "[1, 2]", "b": "{'k': (3, 4)}", "return": "None"}


def test_a_masked_value_skipped_by_the_budget_is_still_scrubbed_from_the_message(
        store, clock):
    A, B = costly(clock, "A", 0.6), costly(clock, "B", 0.6)

    class Token:
        def __repr__(self):
            return "Token('tok-4242-abcd')"

    @monitor("hostile", mask=("token",))
    def login(a, b, token):
        raise PermissionError(f"refused {token!r}")

    with pytest.raises(PermissionError):
        login(A(), B(), Token())
    call = store.call(login)
    assert store.values(call)["token"].startswith("<HASHED:")
    assert "tok-4242-abcd" not in call["exception"]
    assert "PermissionError: refused <HASHED:" in call["exception"]


def test_a_generators_yields_share_its_call_budget(store, clock):
    Costly = costly(clock, "Costly", 0.6)

    @monitor("hostile")
    def gen():
        for _ in range(4):
            yield Costly()

    assert len(list(gen())) == 4
    outputs = dict(_outputs(store, gen))
    assert outputs["yield[0]"] == "Costly()"
    assert [outputs[f"yield[{i}]"] for i in (1, 2, 3)] == [SPENT.format("Costly")] * 3
    assert outputs["yield_count"] == "4"
    assert Costly.reprs == 1


# -- 3. Scrubbing in every form -------------------------------------------------------

WITHHELD = "<message withheld: holds a masked value>"


def _failure_text(store, fn) -> str:
    call = store.call(fn)
    return "\n".join([call["exception"] or ""] + [r["exception"] or "" for r in
                                                  store.data(call)])


def test_a_secret_with_a_backslash_is_scrubbed_as_its_repr_too(store):
    password = "pa\\ss\\word"

    @monitor("hostile")
    def login(password):
        return {}[password]  # KeyError shows repr(password): backslashes doubled

    with pytest.raises(KeyError):
        login(password)
    text = _failure_text(store, login)
    assert "KeyError" in text and "<HASHED:" in text
    assert repr(password)[1:-1] not in text and password not in text


@pytest.mark.parametrize("form", ["url", "url_plus", "json", "json_ascii"])
def test_a_secret_is_scrubbed_url_encoded_and_json_escaped(store, form):
    import json
    from urllib.parse import quote, quote_plus

    token = 'tök/en "x" & y=z\\n'
    shown = {"url": quote(token, safe=""), "url_plus": quote_plus(token),
             "json": json.dumps(token, ensure_ascii=False),
             "json_ascii": json.dumps(token)}[form]

    @monitor("hostile")
    def fetch(token):
        raise ConnectionError(f"GET https://api.test/x?token={shown} failed")

    with pytest.raises(ConnectionError):
        fetch(token)
    text = _failure_text(store, fetch)
    assert "ConnectionError" in text and "<HASHED:" in text
    assert shown.strip('"') not in text


@pytest.mark.parametrize("shown", ["{:.2f}", "{:.0f}", "{}", "{:g}", "{:,}"])
def test_a_masked_number_is_scrubbed_in_its_formatted_forms(store, shown):
    amount = 123456.789

    @monitor("hostile", mask=("amount",))
    def pay(amount):
        raise ValueError("refused amount " + shown.format(amount))

    with pytest.raises(ValueError):
        pay(amount)
    text = _failure_text(store, pay)
    assert shown.format(amount) not in text
    assert "ValueError" in text and "in pay" in text


@pytest.mark.parametrize("secret", ["7", "73", "731", 731, "a\\"],
                         ids=["len1", "len2", "len3", "int731", "backslash2"])
def test_a_short_masked_value_withholds_the_message_keeping_type_and_frames(store, secret):
    error = ValueError(f"bad cvv={secret!s} ({secret!r})")

    @monitor("hostile")
    def charge(card, cvv):
        raise error

    with pytest.raises(ValueError) as info:
        charge("4111", secret)
    assert info.value is error and str(info.value) == f"bad cvv={secret!s} ({secret!r})"
    call = store.call(charge)
    text = _failure_text(store, charge)
    assert WITHHELD in text
    assert "ValueError" in text and "in charge" in text  # type and frames kept
    assert f"cvv={secret!s}" not in text


# -- the secret's bytes found nowhere: store files, alert bodies, OTLP, /api, /metrics, logs


def _secret_cases():
    from urllib.parse import quote

    long_secret = "s3cr\\et/Pa$$ wörd"
    return [
        # (masked value, what the failing function puts in its message, searched texts)
        ("7", "cvv=7;", ["cvv=7;"]),
        ("73", "cvv=73;", ["cvv=73;"]),
        ("731", "cvv=731;", ["cvv=731;"]),
        ("a\\", "pin='a\\\\';", ["pin='a\\\\'", "pin='a\\'"]),
        (long_secret, f"login {long_secret!r} url={quote(long_secret, safe='')}",
         [long_secret, repr(long_secret)[1:-1], quote(long_secret, safe=""),
          quote(long_secret)]),
    ]


def test_a_masked_value_is_found_nowhere_store_alerts_otlp_api_metrics_logs(
        tmp_path, receiver, caplog):
    import logging
    import time

    from fastapi.testclient import TestClient

    import otel_monitor
    from alert_helpers import PD, ROUTING_KEY, SLACK
    from dash_ui.server import create_server_app
    from monitor_helpers import Store

    caplog.set_level(logging.DEBUG)
    db = tmp_path / "secrets.db"
    otel_monitor.configure(
        db_path=db, flush_interval_s=0.05, alert_timeout_s=2.0, alert_backoff_s=0.05,
        alert_webhooks=[receiver.url(SLACK),
                        f"pagerduty+{receiver.url(PD)}#routing_key={ROUTING_KEY}"],
        otlp_endpoint=receiver.url(""), otlp_protocol="http/protobuf")
    cases = _secret_cases()
    try:
        for i, (secret, message, _) in enumerate(cases):
            def body(card, cvv, _message=message):
                raise PermissionError(_message)
            body.__qualname__ = body.__name__ = f"charge{i}"
            charge = monitor("hostile", otel_span=True)(body)
            with pytest.raises(PermissionError):
                charge("4111", secret)
        store = Store(db)
        assert len(store.query("SELECT * FROM process_trace")) == len(cases)
        receiver.wait(lambda posts: len(posts) >= len(cases), timeout=20, path=SLACK)
        receiver.wait(lambda posts: len(posts) >= len(cases), timeout=20, path=PD)
        assert otel_monitor.force_flush(10)
        otlp = receiver.wait(lambda posts: len(posts) >= 1, timeout=20, path="/v1/traces")
        deadline = time.monotonic() + 5  # every span of the five calls has arrived
        while sum(p.raw.count(b"PermissionError") for p in receiver.to("/v1/traces")) < \
                len(cases) and time.monotonic() < deadline:
            time.sleep(0.05)
        otlp = receiver.to("/v1/traces")
        assert sum(p.raw.count(b"PermissionError") for p in otlp) >= len(cases)

        client = TestClient(create_server_app(db))
        api = [client.get("/api/rows", params={"limit": 500}).text,
               client.get("/api/alerts").text, client.get("/api/processes").text]
        for call in store.query("SELECT span_id FROM process_trace"):
            api.append(client.get(f"/api/calls/{call['span_id']}").text)
        metrics = client.get("/metrics").text
    finally:
        otel_monitor.shutdown()

    places = {
        "store files": store.all_text().encode(),
        "alert bodies": b"\n".join(p.raw for p in receiver.posts if p.path in (SLACK, PD)),
        "OTLP payloads": b"\n".join(p.raw for p in otlp),
        "/api": "\n".join(api).encode(),
        "/metrics": metrics.encode(),
        "logs": "\n".join(r.getMessage() + (r.exc_text or "")
                          for r in caplog.records).encode(),
    }
    assert WITHHELD.encode() in places["store files"]
    assert b"<HASHED:" in places["OTLP payloads"]
    for secret, _, searched in cases:
        for text in searched:
            for where, data in places.items():
                assert text.encode() not in data, f"{text!r} found in {where}"


# -- 4. Mask names checked at decoration ----------------------------------------------


def test_a_mask_name_that_is_not_a_parameter_is_refused_at_decoration():
    from otel_monitor import ConfigError

    with pytest.raises(ConfigError) as info:
        @monitor("hostile", mask=("acount_number",))
        def pay(account_number, amount):
            return None
    assert "acount_number" in str(info.value)
    assert "account_number" in str(info.value) and "amount" in str(info.value)


def test_mask_names_may_be_return_and_the_collectors():
    @monitor("hostile", mask=("return", "args", "options", "pin"))
    def f(pin, *args, **options):
        return None

    @monitor("hostile", mask=("return",))
    def g():
        return None


def test_the_readme_example_decorates():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("## Instrumenting code", 1)[1].split("```python", 1)[1]
    block = block.split("```", 1)[0]
    code = re.sub(r"^configure\(.*$", "", block, flags=re.M)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # ConfigError on a bad mask name


# -- 5. Recursion ---------------------------------------------------------------------


def _deepest(f, top=None) -> int:
    import sys

    top = top or sys.getrecursionlimit() + 50
    lo, hi = 1, top
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            f(mid)
            lo = mid
        except RecursionError:
            hi = mid - 1
    return lo


@pytest.mark.parametrize("otel_span", [False, True])
def test_a_recursion_error_from_the_extra_frame_is_the_functions_own_and_says_why(
        store, otel_span):
    import os
    import traceback

    @monitor("hostile", otel_span=otel_span)
    def depth(n):
        return 0 if n == 0 else 1 + depth(n - 1)

    deepest = _deepest(depth)
    assert depth(deepest) == deepest  # what fits still works, result unchanged
    with pytest.raises(RecursionError) as info:
        depth(deepest + 50)
    error = info.value
    assert error.__context__ is None and error.__cause__ is None  # not one of ours
    frames = traceback.extract_tb(error.__traceback__)
    ours = ("_recorders.py", "_capture.py", "_capture_plan.py", "logging")
    assert not any(part in f.filename for f in frames[-3:] for part in ours), frames[-3:]
    assert any(f.name == "depth" for f in frames[-3:])
    notes = getattr(error, "__notes__", [])
    if not otel_span and _wrappers.MonitoredFunction is not None:
        # the C wrapper of the hot path is no Python frame: the function recurses as
        # deep as it does bare, and no note blames @monitor
        def bare(n):
            return 0 if n == 0 else 1 + bare(n - 1)

        assert deepest >= _deepest(bare) - 1
        assert not any("@monitor" in n for n in notes), notes
    else:
        assert any("@monitor" in n and "frame" in n for n in notes), notes
        assert sum("@monitor" in n for n in notes) == 1  # once, not once per level
    # each level's recorded traceback keeps its first and last 50 frames, no more
    texts = [c["exception"] for c in store.calls(depth) if c["status"] == "ERR"]
    assert texts and all(t.count("in depth") <= 100 + 10 for t in texts)
    assert any("frames not recorded]" in t for t in texts)


# -- 6. Generators record what they yield ---------------------------------------------


def _outputs(store, fn):
    call = store.call(fn)
    return [(r["data"], r["data_value"]) for r in store.data(call) if r["data_type"] == "OUTPUT"]


@pytest.mark.parametrize("otel_span", [False, True])
def test_a_generator_records_its_first_yields_and_their_count(store, otel_span):
    @monitor("hostile", otel_span=otel_span)
    def count(n):
        yield from ({"i": i} for i in range(n))
        return "done"

    assert list(count(13)) == [{"i": i} for i in range(13)]
    assert _outputs(store, count) == [(f"yield[{i}]", repr({"i": i})) for i in range(10)] + [
        ("yield_count", "13"), ("return", "'done'")]


def test_an_async_generator_records_its_yields(store):
    import asyncio

    @monitor("hostile")
    async def stream(n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i * 1.5

    async def consume():
        return [x async for x in stream(3)]

    assert asyncio.run(consume()) == [0.0, 1.5, 3.0]
    assert _outputs(store, stream) == [("yield[0]", "0.0"), ("yield[1]", "1.5"),
                                       ("yield[2]", "3.0"), ("yield_count", "3"),
                                       ("return", "None")]


def test_masked_return_masks_the_yields_too_and_the_bound_is_a_setting(tmp_path):
    import otel_monitor
    from monitor_helpers import Store

    otel_monitor.configure(db_path=tmp_path / "y.db", yield_values=2)
    try:
        @monitor("hostile", mask=("return",))
        def secrets():
            yield "hunter2-one"
            yield "hunter2-two"
            yield "hunter2-three"

        assert list(secrets()) == ["hunter2-one", "hunter2-two", "hunter2-three"]
        outputs = dict(_outputs(Store(tmp_path / "y.db"), secrets))
    finally:
        otel_monitor.shutdown()
    assert sorted(outputs) == ["return", "yield[0]", "yield[1]", "yield_count"]
    assert all(v.startswith("<HASHED:") for k, v in outputs.items() if k != "yield_count")
    assert outputs["yield_count"] == "3"


# A generator that does not run to its end (closed, abandoned, collected, raising)
# records the yields seen so far and their count all the same; no ``return`` row.


def _yield_rows(n_seen: int, kept: int = 10) -> list[tuple[str, str]]:
    return [(f"yield[{i}]", repr(i * 10)) for i in range(min(n_seen, kept))] + [
        ("yield_count", str(n_seen))]


@pytest.mark.parametrize("otel_span", [False, True])
def test_a_generator_closed_early_records_the_yields_seen(store, otel_span):
    @monitor("hostile", otel_span=otel_span)
    def tens(n):
        for i in range(n):
            yield i * 10

    g = tens(50)
    assert [next(g) for _ in range(12)] == [i * 10 for i in range(12)]
    g.close()
    assert _outputs(store, tens) == _yield_rows(12)
    assert store.call(tens)["outcome"] == "closed"


def test_a_generator_left_in_a_for_loop_records_the_yields_seen(store):
    @monitor("hostile")
    def tens():
        i = 0
        while True:
            yield i * 10
            i += 1

    for x in tens():
        if x == 30:
            break
    assert _outputs(store, tens) == _yield_rows(4)


def test_a_garbage_collected_generator_records_the_yields_seen(store):
    import gc

    @monitor("hostile")
    def tens():
        for i in range(100):
            yield i * 10

    class Holder:
        pass

    holder = Holder()
    holder.self, holder.gen = holder, tens()  # a cycle: only the collector frees it
    assert next(holder.gen) == 0 and next(holder.gen) == 10
    del holder
    gc.collect()
    assert _outputs(store, tens) == _yield_rows(2)
    assert store.call(tens)["outcome"] == "closed"


@pytest.mark.parametrize("otel_span", [False, True])
def test_a_generator_raising_mid_iteration_records_the_yields_seen(store, otel_span):
    @monitor("hostile", otel_span=otel_span)
    def tens():
        yield 0
        yield 10
        raise LookupError("gone")

    seen = []
    with pytest.raises(LookupError):
        for x in tens():
            seen.append(x)
    assert seen == [0, 10]
    assert _outputs(store, tens) == _yield_rows(2)
    call = store.call(tens)
    assert call["status"] == "ERR" and "LookupError: gone" in call["exception"]


def test_an_async_generator_closed_early_records_the_yields_seen(store):
    import asyncio

    @monitor("hostile")
    async def tens():
        for i in range(100):
            await asyncio.sleep(0)
            yield i * 10

    async def take(n):
        agen = tens()
        got = [await agen.__anext__() for _ in range(n)]
        await agen.aclose()
        return got

    assert asyncio.run(take(3)) == [0, 10, 20]
    assert _outputs(store, tens) == _yield_rows(3)
    assert store.call(tens)["outcome"] == "closed"


def test_an_async_generator_raising_mid_iteration_records_the_yields_seen(store):
    import asyncio

    @monitor("hostile")
    async def tens():
        yield 0
        await asyncio.sleep(0)
        raise LookupError("gone")

    async def consume():
        seen = []
        with pytest.raises(LookupError):
            async for x in tens():
                seen.append(x)
        return seen

    assert asyncio.run(consume()) == [0]
    assert _outputs(store, tens) == _yield_rows(1)
    assert store.call(tens)["status"] == "ERR"


# -- 7. The hostile-values suite: behaviour identical to the bare function -------------


class SleepyRepr:
    def __repr__(self):
        import time

        time.sleep(0.2)
        return "SleepyRepr()"


class GrowingItem:
    """Its repr appends to the list holding it: a builtin repr of that list never ends."""

    def __init__(self, holder):
        self.holder = holder

    def __repr__(self):
        self.holder.append(0)
        return "GrowingItem()"


class SelfRepr:
    def __repr__(self):
        return f"SelfRepr({self!r})"  # recursion without end


def _hostile_values():
    recursive_list: list = [1]
    recursive_list.append(recursive_list)
    recursive_dict: dict = {}
    recursive_dict["self"] = recursive_dict
    growing: list = []
    growing.append(GrowingItem(growing))
    return {
        "sleeping": SleepyRepr(),
        "huge_list": [0] * 10**7,
        "huge_str": "x" * 10**7,
        "huge_dict": dict.fromkeys(range(10**5)),
        "raises_system_exit": raising_repr(SystemExit),
        "raises_keyboard_interrupt": raising_repr(KeyboardInterrupt),
        "recursive_list": recursive_list,
        "recursive_dict": recursive_dict,
        "recursive_repr": SelfRepr(),
        "mutating": growing,
    }


HOSTILE = list(_hostile_values())


def _twins(case: str, masked: bool):
    """The bare function and its monitored twin: they record what they saw."""
    def bare(value, seen):
        seen.append(id(value))
        return value

    monitored = monitor("hostile", mask=("value",) if masked else ())(
        lambda value, seen: bare(value, seen))
    return bare, monitored


@pytest.mark.parametrize("masked", [False, True], ids=["clear", "masked"])
@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_value_call_returns_what_the_bare_function_returns(store, case, masked):
    value = _hostile_values()[case]
    bare, monitored = _twins(case, masked)
    seen_bare: list = []
    seen_monitored: list = []
    with armed():
        expected = bare(value, seen_bare)
        got = [monitored(value, seen_monitored) for _ in range(2)]
    assert got == [expected, expected] and all(g is value for g in got)
    assert seen_monitored == seen_bare * 2  # the body ran, with the same object
    values = store.values(store.calls(monitored)[0])
    assert len(values["value"]) <= 1100  # bounded, whatever the value


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_value_in_a_failing_call_keeps_the_exception_identity(store, case):
    value = _hostile_values()[case]
    error = LookupError("not found")

    @monitor("hostile", mask=("secret",))
    def find(value, secret):
        raise error

    with pytest.raises(LookupError) as info, armed():
        find(value, secret=value)
    assert info.value is error and info.value.__context__ is None
    assert store.call(find)["status"] == "ERR"


def test_a_masked_ten_million_item_list_is_recorded_as_a_marker(store):
    accounts = [0] * 10**7

    @monitor("hostile", mask=("accounts",))
    def total(accounts):
        return len(accounts)

    assert total(accounts) == 10**7
    assert store.values(store.call(total))["accounts"].startswith("<HASHED:")


# -- 2b. Immutable non-scalar values rendered off the hot path ------------------------


def test_a_small_tuple_of_numbers_is_kept_as_it_is_and_rendered_by_the_writer(store):
    from otel_monitor._capture import ValueFormatter

    fmt = ValueFormatter().format
    point = (1.5, 2, None, True)
    assert fmt(point) is point  # immutable all the way down: rendered off the hot path
    assert fmt((1.5, [2])) == "(1.5, [2])"  # a mutable item: rendered now
    assert fmt((2**100,)) == "(1267650600228229401496703205376,)"  # a big int: now
    assert fmt(tuple(range(30))).endswith(", ...)")  # past the bound: now

    @monitor("hostile")
    def move(p):
        return (p[0] + 1.0, p[1])

    assert move(point) == (2.5, 2)
    assert store.values(store.call(move)) == {"p": repr(point), "return": "(2.5, 2)"}
