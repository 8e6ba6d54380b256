"""``sample="auto"``'s per-call decision in C (``_fastcall.SamplerState``) against its
Python twin (``_sampling.PythonSamplerState``): the same calls, the same coin, the same
weights and the same state after every call, through window closes, p99 refreshes and
the histogram's halving. (``test_monitor_sampling_auto.py`` tests what the decisions
achieve, through the decorator.)"""
from __future__ import annotations

import random

import pytest

from otel_monitor import _sampling
from otel_monitor._sampling import (HISTOGRAM_BUCKETS, HISTOGRAM_HALVE_AT, CAutoSampler,
                                    PythonAutoSampler)

pytestmark = pytest.mark.skipif(CAutoSampler is None, reason="otel_monitor._fastcall not built")

FIELDS = ("p", "window_start", "seen", "forced", "kept", "budget", "slow_bucket", "p99_at",
          "hist")


def _state(sampler) -> dict:
    return {name: getattr(sampler, name) for name in FIELDS}


def _pair(target: float):
    samplers = [cls(target, lambda: 1.0) for cls in (CAutoSampler, PythonAutoSampler)]
    for s in samplers:
        s._random = random.Random(42).random  # the same coin for both
    return samplers


def test_c_and_python_samplers_decide_alike_call_for_call():
    c, py = _pair(target=500.0)
    calls = random.Random(7)
    now = 1_700_000_000_000_000_000
    closes = 0
    for i in range(HISTOGRAM_HALVE_AT + 20_000):  # long enough for the halving
        now += calls.choice((20_000, 200_000, 2_000_000))  # ~1,400 calls a second
        duration = int(calls.lognormvariate(9, 1.5)) if i % 97 else -5  # a clock step back
        failed = calls.random() < 0.01
        start = now - duration
        before = c.window_start
        assert c.keep(start, now, failed) == py.keep(start, now, failed), i
        closes += c.window_start != before
        if i % 1000 == 0 or c.window_start != before:
            assert _state(c) == _state(py), i
    assert _state(c) == _state(py)
    assert closes > 10 and c.slow_bucket < HISTOGRAM_BUCKETS  # windows closed, p99 read
    assert 0 < sum(c.hist) < HISTOGRAM_HALVE_AT  # halved at least once
    assert 0.0 < c.p < 1.0


def test_head_and_a_first_call_alike_and_bad_state_refused():
    c, py = _pair(target=10.0)
    assert [c.head(5), c.keep(5, 10)] == [py.head(5), py.keep(5, 10)]
    assert _state(c) == _state(py)
    with pytest.raises(ValueError):
        c.hist = [0] * (HISTOGRAM_BUCKETS - 1)
    with pytest.raises(TypeError):
        c.keep(1)
    assert _state(c) == _state(py)  # nothing changed by what was refused
    c.p = py.p = 0.5  # the coin is drawn
    del c._random
    with pytest.raises(AttributeError):
        c.keep(20, 30)


def test_the_decorator_uses_the_c_state_when_built():
    assert isinstance(_sampling.auto_sampler(1.0, lambda: 1.0), CAutoSampler)
