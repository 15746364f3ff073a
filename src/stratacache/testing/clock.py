"""A fake clock for tests: TTLs expire when you say so, with no sleeping."""

from __future__ import annotations

import threading
from datetime import timedelta

__all__ = ["FakeClock"]


class FakeClock:
    """A monotonic clock you advance by hand. Call it to read the time, in seconds.

    Pass it as ``clock=`` to a backend that accepts one (``MemoryBackend(clock=clock)``,
    ``Cache("memory://", clock=clock)``), then ``clock.advance(61)`` to move past a ttl.
    """

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float | timedelta) -> None:
        """Move time forward; negative steps are refused (the clock is monotonic)."""
        step = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        if step < 0:
            raise ValueError(f"a monotonic clock cannot go back: advance({seconds!r})")
        with self._lock:
            self._now += step

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"
