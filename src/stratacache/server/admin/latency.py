"""Sampled per-command latency: 1 call in :data:`SAMPLE_EVERY` of each command is timed.

Timing every command would cost two ``perf_counter_ns`` calls per command on the GET/SET
fast path; instead the connection times a command when its call counter (which it keeps
anyway) says so: the 1st, 129th, 257th... call of each command (:func:`sampled`). The others
pay one mask and one comparison. The histograms count samples: their shape (quantiles) is the
commands', their ``_count`` is about ``calls / SAMPLE_EVERY`` (``stratacache_commands_total``
has the exact counts). A blocking command is timed up to the moment it blocks, as Redis does.

The histograms are process-wide, as the command table's counters are.
"""

from __future__ import annotations

from bisect import bisect_left
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..aof import AppendOnlyLog
    from ..commands import Command
    from ..connection import Client

__all__ = ["BUCKETS", "HISTOGRAMS", "SAMPLE_EVERY", "SAMPLE_MASK", "Histogram", "reset", "timed"]

SAMPLE_EVERY = 128
"""One call in this many of each command is timed (a power of two)."""
SAMPLE_MASK = SAMPLE_EVERY - 1
"""``calls & SAMPLE_MASK == 1``: this call is timed (the first, then every SAMPLE_EVERY-th)."""

BUCKETS = (
    1e-6,
    2.5e-6,
    5e-6,
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    2.5e-3,
    5e-3,
    1e-2,
    2.5e-2,
    5e-2,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
"""Upper bounds of the histogram buckets, in seconds (then +Inf): 1 µs to 2.5 s."""
_BOUNDS_NS = tuple(round(b * 1e9) for b in BUCKETS)


class Histogram:
    """Counts of sampled durations per bucket (not cumulative; the last is +Inf), their sum."""

    __slots__ = ("count", "counts", "sum_ns")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.count = 0
        self.sum_ns = 0

    def record(self, ns: int) -> None:
        """Add one duration in nanoseconds."""
        self.counts[bisect_left(_BOUNDS_NS, ns)] += 1
        self.count += 1
        self.sum_ns += ns

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus's buckets: (upper bound as text, count at or below it), +Inf last."""
        out = []
        total = 0
        for bound, n in zip((*(repr(b) for b in BUCKETS), "+Inf"), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


HISTOGRAMS: dict[str, Histogram] = {}
"""Command name -> its histogram (created on its first sample)."""


def timed(cmd: Command, client: Client, args: list[bytes], aof: AppendOnlyLog | None = None) -> Any:
    """Run ``cmd``'s handler as the connection would (through the append-only log when
    it is on), timing it into its histogram (exceptions pass through; they are timed too)."""
    start = perf_counter_ns()
    try:
        return cmd.handler(client, args) if aof is None else aof.run(cmd, client, args)
    finally:
        elapsed = perf_counter_ns() - start
        histogram = HISTOGRAMS.get(cmd.name)
        if histogram is None:
            histogram = HISTOGRAMS[cmd.name] = Histogram()
        histogram.record(elapsed)


def reset() -> None:
    """Forget every sample (CONFIG RESETSTAT)."""
    HISTOGRAMS.clear()
