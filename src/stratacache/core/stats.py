"""Cache statistics: counters kept by the facade, latency windows, and the Stats snapshot."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LatencySummary", "LatencyWindow", "Stats", "StatsRecorder"]

_WINDOW = 1024


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Latency of one operation kind over the recent window, in seconds."""

    count: int = 0
    mean: float = 0.0
    p50: float = 0.0
    p99: float = 0.0


class LatencyWindow:
    """The last ``size`` latency samples of one operation, in a ring buffer.

    Lock-free: ``next()`` of an :func:`itertools.count` is one C call, atomic under the GIL,
    so concurrent writers each get their own slot; the slot store is one C operation too.
    ``total`` may lag a concurrent writer by a sample, which a statistic can afford.
    """

    __slots__ = ("_count", "_samples", "size", "total")

    def __init__(self, size: int = _WINDOW) -> None:
        self.size = size
        self._samples = [0.0] * size
        self._count = itertools.count()
        self.total = 0

    def add(self, seconds: float) -> None:
        """Record one sample."""
        n = next(self._count)
        self._samples[n % self.size] = seconds
        self.total = n + 1

    def summary(self) -> LatencySummary:
        """Mean, median and 99th percentile of the samples in the window."""
        total = self.total
        samples = sorted(self._samples[: min(total, self.size)])
        if not samples:
            return LatencySummary()
        n = len(samples)
        return LatencySummary(
            count=total,
            mean=sum(samples) / n,
            p50=samples[(n - 1) // 2],
            p99=samples[min(n - 1, round(0.99 * (n - 1)))],
        )


@dataclass(frozen=True, slots=True)
class Stats:
    """A snapshot of one cache's statistics (``cache.stats()``).

    ``hits``/``misses``/``sets``/``deletes``/``errors`` count this cache object's
    operations; ``evictions``, ``expirations``, ``items`` and ``bytes`` come from the
    backend (0 where a backend cannot tell). Latencies are sampled (see ``latency_sample``
    on the cache) and given in seconds. ``backend`` holds backend-specific figures (a
    layered cache's tier failures and circuit states, a sharded cache's live nodes).
    """

    hits: int = 0
    misses: int = 0
    sets: int = 0
    deletes: int = 0
    errors: int = 0
    evictions: int = 0
    expirations: int = 0
    items: int = 0
    bytes: int = 0
    get_latency: LatencySummary = field(default_factory=LatencySummary)
    set_latency: LatencySummary = field(default_factory=LatencySummary)
    backend: Mapping[str, Any] = field(default_factory=dict)

    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses), 0.0 before any read."""
        reads = self.hits + self.misses
        return self.hits / reads if reads else 0.0


class StatsRecorder:
    """The mutable counters behind :class:`Stats`.

    Plain attribute increments: under CPython's GIL an ``obj.attr += 1`` on an int cannot
    be interrupted by another Python thread between its load and store (the interpreter only
    switches threads at calls and backward jumps), so no lock is paid on the hot path.
    """

    __slots__ = ("deletes", "errors", "get_latency", "hits", "misses", "set_latency", "sets")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Zero every counter and window, in place (fast paths hold a reference to this object)."""
        self.hits = 0
        self.misses = 0
        self.sets = 0
        self.deletes = 0
        self.errors = 0
        self.get_latency = LatencyWindow()
        self.set_latency = LatencyWindow()

    def snapshot(
        self,
        *,
        evictions: int = 0,
        expirations: int = 0,
        items: int = 0,
        size: int = 0,
        backend: Mapping[str, Any] | None = None,
    ) -> Stats:
        """Freeze the counters, adding what the backend reports."""
        return Stats(
            hits=self.hits,
            misses=self.misses,
            sets=self.sets,
            deletes=self.deletes,
            errors=self.errors,
            evictions=evictions,
            expirations=expirations,
            items=items,
            bytes=size,
            get_latency=self.get_latency.summary(),
            set_latency=self.set_latency.summary(),
            backend=dict(backend or {}),
        )
