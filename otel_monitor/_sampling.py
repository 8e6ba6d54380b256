"""Adaptive sampling, ``@monitor(sample="auto")``: which calls to keep, decided at the end
of each call, when its outcome and duration are known.

One ``AutoSampler`` per monitored function (a "process" of the store). It keeps

* a keep probability ``p`` for ordinary calls, so that about ``target_per_s`` calls a
  second are kept. Calls are counted in a window; the window closes after 1 s, or
  earlier once it has kept its budget (``target_per_s`` x 1 s; the first window a tenth
  of that, so a burst at start-up keeps little). On closing, the observed rate ``r`` and
  the rate ``f`` of forced keeps (below) give ``p = (target - f) / (r - f)`` clipped to
  ``[MIN_P, 1]``: a lower ``p`` is taken at once, a higher one half-way per window
  (traffic that drops does not make ``p`` jump on one quiet window). O(1) per call.
  When the forced keeps alone reach the target (an error storm; or calls so frequent
  that their 1% above the p99 is more than the target: above ~100 x the target a
  second), ordinary calls are still kept at ``MIN_ROOM_SHARE`` of the target: stored
  calls then exceed the target (failures and slow calls are never dropped), and the
  estimate keeps a useful variance (a handful of calls weighing 10^6 each would not).
* a rolling duration histogram (``HISTOGRAM_BUCKETS`` log buckets, 8 per octave: each
  bucket ~9% wide), halved once it holds ``HISTOGRAM_HALVE_AT`` calls so it follows the
  recent calls; its p99 bucket is re-read when a window closes (a scan of the buckets, at
  most every ``P99_REFRESH_NS``). A call whose duration falls in a bucket *above* the
  p99 bucket is always kept. Why a histogram and not P²: one integer increment per call
  (P² updates five markers with a parabolic step, about ten times the work), exact
  bucket boundaries that a test can reason about, and it halves cheaply to forget the
  past. The price is the resolution: a call above the p99 but in the p99's own bucket
  (at most ~9% above it) is sampled like an ordinary call.
* every call that raises is kept.

Each kept call carries its weight, ``1 / q`` for ``q`` the probability it had of being
kept: 1.0 for an error or a slow call (kept with probability 1), ``1 / p`` for an
ordinary call kept by the coin. ``p`` and the slow bucket are set from earlier calls
only (and the call's own duration, not its coin), so the sum of the weights of the kept
calls (Horvitz-Thompson) is an unbiased estimate of the calls made.

Threads share a sampler without a lock: an increment lost to a race only makes a
window's count slightly low. Each call reads ``p`` once, and its weight is ``1 / p`` of
that read.
"""
from __future__ import annotations

from random import random
from typing import Callable

try:
    from ._fastcall import HISTOGRAM_BUCKETS as C_HISTOGRAM_BUCKETS, SamplerState
except ImportError:  # not built (no compiler at install): the Python state
    SamplerState = None  # type: ignore[assignment,misc]

WINDOW_NS = 1_000_000_000
FIRST_WINDOW_SHARE = 0.1     # the first window's budget: this share of a second's
MIN_P = 1e-6                 # weights stay <= 1e6
MIN_ROOM_SHARE = 0.5         # ordinary calls kept at least at this share of the target
SMOOTH_UP = 0.5              # share of an increase of p taken per window
SUB_BITS = 3                 # 2**SUB_BITS buckets per octave
HISTOGRAM_BUCKETS = (64 << SUB_BITS) + (1 << SUB_BITS) + 1  # room for any int64 ns
HISTOGRAM_HALVE_AT = 50_000  # calls held before the histogram is halved
P99_MIN_CALLS = 100          # fewer in the histogram: no call is forced as slow
P99_REFRESH_NS = 100_000_000
_NO_SLOW = HISTOGRAM_BUCKETS  # a bucket index no duration reaches


def bucket_of(duration_ns: int) -> int:
    """The histogram bucket of a duration: its octave and the next SUB_BITS bits."""
    if duration_ns < 16:
        return duration_ns if duration_ns > 0 else 0
    b = duration_ns.bit_length()
    return (b << SUB_BITS) | ((duration_ns >> (b - SUB_BITS - 1)) & ((1 << SUB_BITS) - 1))


class PythonSamplerState:
    """What ``keep`` reads and counts, and ``keep``: the reference of (and the fallback
    for) ``_fastcall.SamplerState``, its C twin, which takes about a tenth of the time."""

    __slots__ = ("p", "window_start", "seen", "forced", "kept", "budget", "hist",
                 "slow_bucket", "_random")

    def __init__(self) -> None:
        self.p = 1.0
        self.window_start = 0  # 0: no call seen yet
        self.seen = self.forced = self.kept = 0
        self.budget = 1.0
        self.hist = [0] * HISTOGRAM_BUCKETS
        self.slow_bucket = _NO_SLOW
        self._random = random

    def keep(self, start: int, end: int, failed: bool = False) -> float:
        """The call that ran from ``start`` to ``end`` (ns): 0.0 to drop it, else its
        weight. O(1); the hot path of ``sample="auto"``."""
        d = end - start
        if d < 16:
            idx = d if d > 0 else 0
        else:
            b = d.bit_length()
            idx = (b << SUB_BITS) | ((d >> (b - SUB_BITS - 1)) & 7)
        self.hist[idx] += 1
        self.seen += 1
        if end - self.window_start >= WINDOW_NS or self.kept >= self.budget:
            self._close_window(end)
        if failed or idx > self.slow_bucket:
            self.forced += 1
            self.kept += 1
            return 1.0
        p = self.p
        if p >= 1.0:
            self.kept += 1
            return 1.0
        if self._random() < p:
            self.kept += 1
            return 1.0 / p
        return 0.0


class AutoSampler:
    """Per monitored function: ``keep(start_ns, end_ns, failed) -> weight`` (0.0: drop),
    from its state class (C or Python); the windows and the p99 are here.
    ``auto_sampler()`` makes one."""

    __slots__ = ()
    target: float | None
    default_target: Callable[[], float]
    p99_at: int

    def __init__(self, target_per_s: float | None,
                 default_target: Callable[[], float]) -> None:
        """``target_per_s``: this function's target, or None for ``default_target()``
        (the pipeline's ``sample_target_per_s`` setting, read when a window closes)."""
        super().__init__()
        self.target = target_per_s
        self.default_target = default_target
        self.p99_at = 0

    def target_per_s(self) -> float:
        target = self.target
        return target if target is not None else self.default_target()

    def head(self, start: int) -> float:
        """For generators (whose end is too late to render their arguments from): the
        decision at the start, by ``p`` alone (``keep`` with no duration known)."""
        self.seen += 1
        if start - self.window_start >= WINDOW_NS or self.kept >= self.budget:
            self._close_window(start)
        p = self.p
        if p >= 1.0 or self._random() < p:
            self.kept += 1
            return 1.0 / p
        return 0.0

    def _close_window(self, now: int) -> None:
        target = self.target_per_s()
        if self.window_start == 0:  # the first call: a short first window
            self.window_start = now
            self.budget = max(1.0, target * FIRST_WINDOW_SHARE)
            return
        elapsed_s = max(now - self.window_start, 1_000) / 1e9
        rate = self.seen / elapsed_s
        forced = self.forced / elapsed_s
        room = max(target - forced, target * MIN_ROOM_SHARE)
        rest = rate - forced
        want = 1.0 if rest <= room else max(MIN_P, room / rest)
        p = self.p
        self.p = want if want <= p else min(1.0, p + (want - p) * SMOOTH_UP)
        self.window_start = now
        self.seen = self.forced = self.kept = 0
        self.budget = max(1.0, target * WINDOW_NS / 1e9)
        if now - self.p99_at >= P99_REFRESH_NS:
            self.p99_at = now
            self._refresh_p99()

    def _refresh_p99(self) -> None:
        hist = self.hist
        total = sum(hist)
        if total < P99_MIN_CALLS:
            self.slow_bucket = _NO_SLOW
            return
        limit = total * 0.99
        running = 0
        for i, n in enumerate(hist):
            running += n
            if running >= limit:
                self.slow_bucket = i
                break
        if total >= HISTOGRAM_HALVE_AT:
            self.hist = [n >> 1 for n in hist]


class PythonAutoSampler(AutoSampler, PythonSamplerState):
    __slots__ = ("target", "default_target", "p99_at")


if SamplerState is not None:
    class CAutoSampler(AutoSampler, SamplerState):
        __slots__ = ("target", "default_target", "p99_at")

    assert HISTOGRAM_BUCKETS == C_HISTOGRAM_BUCKETS, "_fastcall.c's constants differ"
else:  # the extension was not built
    CAutoSampler = None  # type: ignore[assignment,misc]


def auto_sampler(target_per_s: float | None,
                 default_target: Callable[[], float]) -> AutoSampler:
    """A sampler for one monitored function: its state and ``keep`` in C when built."""
    cls = CAutoSampler if CAutoSampler is not None else PythonAutoSampler
    return cls(target_per_s, default_target)
