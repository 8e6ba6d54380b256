"""otel_monitor.reproduce, what a Reproduce snippet imports: it finds the undecorated
function (static and class methods as defined), runs coroutines and consumes generators
(sync and async) so their exception is raised, rebuilds a value only when its repr comes
back the same, stops naming a placeholder left unfilled, and imports nothing heavy."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest

from otel_monitor.reproduce import Placeholder, call, exception_type, load, owner, rebuild, \
    require


@dataclass
class Point:
    x: int
    y: int

    @staticmethod
    def origin() -> "Point":
        return Point(0, 0)

    @classmethod
    def diagonal(cls, n: int) -> "Point":
        return cls(n, n)


class Opaque:
    pass


async def _agen(n: int):
    for i in range(n):
        if i == 2:
            raise LookupError("no 2")
        yield i


def test_static_and_class_methods_are_found_as_defined():
    assert load(f"{__name__}.Point.origin")() == Point(0, 0)
    diagonal = load(f"{__name__}.Point.diagonal")
    assert owner(diagonal) is Point and diagonal(owner(diagonal), 3) == Point(3, 3)


def test_an_async_generator_is_consumed_until_it_raises():
    with pytest.raises(LookupError, match="no 2"):
        call(_agen, 5)
    assert call(_agen, 2) == [0, 1]


def test_a_value_is_rebuilt_only_when_its_repr_comes_back_the_same():
    assert rebuild(test_a_value_is_rebuilt_only_when_its_repr_comes_back_the_same, "P",
                   "Point(x=1, y=2)") == Point(1, 2)
    with pytest.raises(Placeholder, match="fill in SELF"):
        rebuild(load(f"{__name__}.Point.origin"), "SELF", "Opaque()")
    with pytest.raises(Placeholder, match="fill in SELF"):
        rebuild(load(f"{__name__}.Point.origin"), "SELF", "NoSuchClass(1)")


def test_an_unfilled_placeholder_stops_naming_it():
    with pytest.raises(Placeholder, match="fill in SELF, API_KEY"):
        require(SELF=..., API_KEY=..., ok=None)
    require(SELF=Opaque())


def test_an_exception_type_is_found_by_the_name_its_traceback_gives():
    fn = load(f"{__name__}.Point.origin")
    assert exception_type(fn, "ValueError") is ValueError
    assert exception_type(fn, "Opaque") is Opaque
    assert exception_type(fn, "json.JSONDecodeError").__name__ == "JSONDecodeError"


def test_importing_it_pulls_in_no_ui_or_web_framework():
    code = textwrap.dedent("""
        import sys, otel_monitor.reproduce
        heavy = {"dash", "plotly", "fastapi", "uvicorn", "pytest"} & set(sys.modules)
        print(sorted(heavy))""")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert out == "[]", out
