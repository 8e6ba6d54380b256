"""Error fingerprints and titles: what makes two failures one group, and what does not."""
from __future__ import annotations

import traceback

from exporters.fingerprint import (
    app_frames, fingerprint, frames, in_application, message_of, normalise_message, title,
)


def _traceback(fn, *args) -> str:
    try:
        fn(*args)
    except Exception as exc:
        return "".join(traceback.format_exception(exc))
    raise AssertionError("did not raise")


def lookup_order(order_id):
    raise KeyError(f"order {order_id} not found")


def price(n):
    raise ValueError(f"bad price {n} for id 0x{n * 7919:x} at 2026-12-07T04:50:{n % 60:02d}Z")


def price_other_path(n):
    raise ValueError(f"bad price {n}")


def checked(n):
    raise TypeError(f"bad price {n}")


def calls_json(text):
    import json
    json.loads(text)


def test_messages_differing_in_numbers_and_ids_give_one_group():
    a = _traceback(price, 12)
    b = _traceback(price, 98765)
    assert a != b
    assert fingerprint("app.price", "ValueError", a) == fingerprint("app.price", "ValueError", b)
    assert title("ValueError", message_of("ValueError", a)) \
        == title("ValueError", message_of("ValueError", b)) \
        == "ValueError: bad price <n> for id <hex> at <time>"


def test_different_frames_or_types_or_processes_give_different_groups():
    base = fingerprint("app.price", "ValueError", _traceback(price, 1))
    assert fingerprint("app.price", "ValueError", _traceback(price_other_path, 1)) != base
    assert fingerprint("app.price", "TypeError", _traceback(price, 1)) != base
    assert fingerprint("app.quote", "ValueError", _traceback(price, 1)) != base


def test_line_number_changes_keep_the_group():
    text = _traceback(price, 3)
    moved = text.replace(", line ", ", line 1")  # every frame's line number changes
    assert moved != text
    assert fingerprint("p", "ValueError", moved) == fingerprint("p", "ValueError", text)


def test_the_same_code_at_another_path_keeps_the_group():
    text = _traceback(price, 3)
    here = frames(text)[-1][0]
    elsewhere = text.replace(here, "/srv/deploy-2/releases/42/tests/exporters/test_fingerprint.py")
    assert fingerprint("p", "ValueError", elsewhere) == fingerprint("p", "ValueError", text)


def test_stdlib_and_package_frames_are_not_in_the_key():
    text = _traceback(calls_json, "{")
    keyed = app_frames(text)
    assert keyed and all("json" not in frame.split(":")[0] for frame in keyed)
    assert keyed[0].endswith(":calls_json")
    assert not in_application("/usr/lib/python3.11/json/decoder.py")
    assert not in_application("/venv/lib/python3.11/site-packages/requests/api.py")
    assert not in_application("/usr/lib/python3/dist-packages/yaml/parser.py")
    assert in_application("/srv/app/pricing/models.py")


def test_at_most_three_innermost_application_frames_count():
    def level(n):
        if n == 0:
            raise RuntimeError("deep")
        level(n - 1)

    deep = _traceback(level, 6)
    assert len(app_frames(deep)) == 3
    # An outer frame changing does not move the group
    assert fingerprint("p", "RuntimeError", deep) == fingerprint(
        "p", "RuntimeError", _traceback(level, 8))


def test_a_failure_with_no_frames_is_keyed_on_process_and_type():
    assert fingerprint("svc.op", "KeyError", "KeyError: 'x'") \
        == fingerprint("svc.op", "KeyError", None) \
        == fingerprint("svc.op", "KeyError", "some other message entirely")
    assert fingerprint("svc.op", "KeyError", None) != fingerprint("svc.op", "ValueError", None)


def test_the_raised_exception_of_a_chain_gives_the_frames_and_message():
    def outer():
        try:
            lookup_order(5)
        except KeyError as exc:
            raise RuntimeError("lookup failed for 5") from exc

    text = _traceback(outer)
    assert "KeyError" in text
    assert message_of("RuntimeError", text) == "lookup failed for 5"
    assert app_frames(text)[0].endswith(":outer")


def test_normalise_message_replaces_what_varies():
    assert normalise_message("user 'bob' id 123e4567-e89b-12d3-a456-426614174000") \
        == "user <str> id <uuid>"
    assert normalise_message('hash a3f9c2b1d4e5 at 0xDEADBEEF, "x y"') \
        == "hash <hex> at <hex>, <str>"
    assert normalise_message("on 2026-12-07 at 2026-12-07 04:50:49.123 took -3.5e10 ms") \
        == "on <time> at <time> took <n> ms"
    assert normalise_message("first line 1\nsecond line 2") == "first line <n>"
    assert len(normalise_message("x" * 10_000)) <= 200
    assert normalise_message("") == ""


def test_title_is_short_type_and_normalised_message():
    assert title("pkg.errors.StaleQuote", "quote 42 stale") == "StaleQuote: quote <n> stale"
    assert title("ValueError", "") == "ValueError"
    assert message_of("pkg.errors.StaleQuote",
                      "Traceback (most recent call last):\n  File \"a.py\", line 1, in f\n"
                      "pkg.errors.StaleQuote: quote 42 stale\n") == "quote 42 stale"


def test_otel_monitors_own_modules_are_not_the_application_but_its_demo_is():
    import exporters.store
    import otel_monitor._wrappers
    import otel_monitor.demo

    assert not in_application(otel_monitor._wrappers.__file__)
    assert not in_application(exporters.store.__file__)
    assert in_application(otel_monitor.demo.__file__)
