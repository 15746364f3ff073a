"""Node health for client-side multi-node backends: consecutive failures -> dead -> retried.

A node is *dead* after ``failure_threshold`` consecutive failures. A dead node is skipped
(its keys go to the next node on the ring) until ``dead_retry`` seconds have passed; then it
is *on probation*: the next operation is sent to it again, and one more failure marks it dead
at once for another ``dead_retry`` (no need to count up to the threshold again), while one
success makes it healthy. This is pylibmc/libmemcached's ``dead_timeout`` + ``retry_timeout``
behaviour, kept generic (node ids are strings) so the sharded backend reuses it.

The clock is injectable (monotonic seconds), so tests drive it without sleeping. Updates are
plain dict operations, each atomic under the GIL; two threads recording a failure at the same
moment may count it once or twice, which only moves the moment a node is marked dead by one
failure, never marks a healthy node dead.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["NodeHealth"]


class NodeHealth:
    """Tracks consecutive failures per node and decides which nodes may be used."""

    __slots__ = ("_clock", "dead_retry", "dead_until", "failure_threshold", "failures")

    def __init__(
        self,
        failure_threshold: int = 2,
        dead_retry: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold}")
        if dead_retry < 0:
            raise ValueError(f"dead_retry must be >= 0, got {dead_retry}")
        self.failure_threshold = failure_threshold
        self.dead_retry = dead_retry
        self._clock = clock
        #: node -> consecutive failures; only nodes with at least one failure are present,
        #: so "is anything wrong at all" is one truthiness test on the hot path.
        self.failures: dict[str, int] = {}
        #: node -> clock time when a dead node may be tried again.
        self.dead_until: dict[str, float] = {}

    def available(self, node: str) -> bool:
        """True unless ``node`` is dead and its retry time has not come yet."""
        until = self.dead_until.get(node)
        return until is None or self._clock() >= until

    def is_dead(self, node: str) -> bool:
        """True while ``node`` is marked dead (including after its retry time, until it answers)."""
        return node in self.dead_until

    def retry_in(self, node: str) -> float:
        """Seconds until a dead node is tried again (0 when it may be tried now or is alive)."""
        until = self.dead_until.get(node)
        return 0.0 if until is None else max(0.0, until - self._clock())

    def record_success(self, node: str) -> None:
        """``node`` answered: it is healthy again."""
        self.failures.pop(node, None)
        self.dead_until.pop(node, None)

    def record_failure(self, node: str) -> bool:
        """``node`` failed (connect error, reset, timeout); True when it is now dead."""
        count = self.failures.get(node, 0) + 1
        self.failures[node] = count
        # A node on probation (dead, retry time reached) goes straight back to dead.
        if count >= self.failure_threshold or node in self.dead_until:
            self.dead_until[node] = self._clock() + self.dead_retry
            return True
        return False

    def state(self, node: str) -> str:
        """``"alive"``, ``"suspect"`` (failed, under the threshold), ``"dead"`` or ``"probation"``."""
        if node in self.dead_until:
            return "probation" if self.available(node) else "dead"
        return "suspect" if node in self.failures else "alive"
