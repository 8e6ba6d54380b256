"""Bounded values: ``repr()`` cut to ``max_value_length`` with a visible marker; values
that cannot be shown whole (a raising repr, recursive, huge, binary) give a placeholder
naming the problem, quickly, and the call returns normally."""
from __future__ import annotations

import collections
import re

import pytest

import otel_monitor
from otel_monitor import monitor

from monitor_helpers import Store

CUT = re.compile(r"…<(\d+) more chars>$")


@pytest.fixture
def short_store(tmp_path) -> Store:
    """A store that keeps at most 40 characters of each value."""
    otel_monitor.configure(db_path=tmp_path / "v.db", flush_interval_s=0.05, max_value_length=40)
    yield Store(tmp_path / "v.db")
    otel_monitor.shutdown()


@monitor("values")
def take(value):
    return "returned normally"


def _stored(store: Store) -> str:
    return store.values(store.call(take))["value"]


def test_long_string_is_cut_to_max_value_length_with_a_marker_counting_the_rest(short_store):
    value = "x" * 500
    assert take(value) == "returned normally"
    stored = _stored(short_store)
    match = CUT.search(stored)
    assert match, stored
    shown = stored[: match.start()]
    assert shown == repr(value)[:40]
    assert int(match.group(1)) == len(repr(value)) - 40


def test_long_repr_of_an_object_is_cut_with_a_marker(short_store):
    class Wide:
        def __repr__(self):
            return "W" * 300

    take(Wide())
    stored = _stored(short_store)
    assert stored.startswith("W" * 40)
    assert CUT.search(stored).group(1) == str(300 - 40)


def test_value_within_the_limit_is_stored_whole_without_a_marker(short_store):
    take("short")
    assert _stored(short_store) == "'short'"


def test_long_return_value_is_cut_too(short_store):
    @monitor("values")
    def make():
        return "y" * 1000

    assert make() == "y" * 1000
    stored = short_store.values(short_store.call(make))["return"]
    assert CUT.search(stored)
    assert len(stored) < 80


def test_repr_that_raises_gives_a_placeholder_naming_the_failure(store):
    class Broken:
        def __repr__(self):
            raise RuntimeError("repr exploded")

    assert take(Broken()) == "returned normally"
    stored = _stored(store)
    assert "Broken" in stored
    assert "repr failed" in stored
    assert "RuntimeError" in stored


def test_repr_returning_a_non_string_gives_a_placeholder(store):
    class Weird:
        def __repr__(self):
            return 42

    assert take(Weird()) == "returned normally"
    stored = _stored(store)
    assert "Weird" in stored and "repr failed" in stored


def test_recursive_list_is_shown_bounded_with_its_cycle_elided(store):
    loop = [1, 2]
    loop.append(loop)
    assert take(loop) == "returned normally"
    stored = _stored(store)
    assert stored.startswith("[1, 2, ")
    assert "..." in stored
    assert len(stored) < 200


def test_object_whose_repr_recurses_without_end_gives_a_recursive_value_placeholder(store):
    class Node:
        def __init__(self):
            self.next = self

        def __repr__(self):
            return f"Node({self.next!r})"

    assert take(Node()) == "returned normally"
    stored = _stored(store)
    assert "Node" in stored and "recursive" in stored


def test_huge_list_is_shown_bounded(store):
    big = list(range(10**6))
    assert take(big) == "returned normally"
    stored = _stored(store)
    assert stored.startswith("[0, 1, 2, ")
    assert "..." in stored
    assert len(stored) < 200


class Counted:
    """An element that counts how many times it is shown."""

    shown = 0

    def __repr__(self):
        Counted.shown += 1
        return "c"


class ListSubclass(list):
    pass


@pytest.mark.parametrize("make", [
    list, tuple, set, frozenset,
    lambda items: {i: item for i, item in enumerate(items)},
    pytest.param(ListSubclass, id="list-subclass"),
    pytest.param(collections.deque, id="deque"),
    pytest.param(lambda items: collections.OrderedDict(enumerate(items)), id="OrderedDict"),
    pytest.param(lambda items: collections.defaultdict(int, enumerate(items)),
                 id="defaultdict"),
], ids=lambda m: getattr(m, "__name__", "dict"))
def test_huge_container_shows_only_a_bounded_number_of_its_items(store, make):
    value = make([Counted() for _ in range(100_000)])
    Counted.shown = 0
    assert take(value) == "returned normally"
    assert Counted.shown <= 100, f"{Counted.shown} items were turned into text"
    assert len(_stored(store)) < 1100


def test_huge_dict_and_nested_huge_list_are_bounded(store):
    @monitor("values")
    def two(mapping, nested):
        return None

    mapping, nested = {i: i for i in range(200_000)}, [[0] * 10**6]
    two(mapping, nested)
    values = store.values(store.call(two))
    assert len(values["mapping"]) < 400 and "..." in values["mapping"]
    assert len(values["nested"]) < 400 and "..." in values["nested"]


def test_huge_int_gives_a_placeholder_with_its_size(store):
    huge = 10**5000
    assert take(huge) == "returned normally"
    stored = _stored(store)
    assert stored == f"<int: {huge.bit_length()} bits>"


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_large_binary_value_gives_a_placeholder_with_size_and_a_preview(store, kind):
    value = kind(b"\x89PNG" + b"\x00" * (10**6 - 4))
    assert take(value) == "returned normally"
    stored = _stored(store)
    assert stored.startswith("<binary: 1000000 bytes, starts b'\\x89PNG")
    assert len(stored) < 200


def test_small_bytes_are_shown_as_their_repr(store):
    take(b"abc")
    assert _stored(store) == "b'abc'"


def test_max_value_length_from_configure_applies_to_containers(short_store):
    take(["item-%03d" % i for i in range(15)])
    stored = _stored(short_store)
    assert CUT.search(stored)
    assert stored.startswith("['item-000', ")


def test_repr_with_a_lone_surrogate_does_not_block_the_store(store):
    class Surrogate:
        def __repr__(self):
            return "bad \ud800 text"

    @monitor("values")
    def after(x):
        return x

    assert take(Surrogate()) == "returned normally"
    assert after(1) == 1
    assert "bad" in _stored(store)
    assert store.values(store.call(after)) == {"x": "1", "return": "1"}
