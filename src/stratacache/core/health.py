"""Node health for client-side multi-node backends: one circuit breaker per node.

A node is *dead* after ``failure_threshold`` consecutive failures. A dead node is skipped
(its keys go to the next node on the ring) until ``dead_retry`` seconds have passed; then it
is *on probation*: the next operation is its probe, one more failure marks it dead at once
for another ``dead_retry`` (no need to count up to the threshold again), and one success
makes it healthy. This is pylibmc/libmemcached's ``dead_timeout`` + ``retry_timeout``
behaviour, and exactly a :class:`~stratacache.core.breaker.CircuitBreaker` per node (closed,
open, half-open): this module only keeps one per node id, so the Memcached and sharded
backends (per node) and the layered backend (per tier) share one failure logic.

The clock is injectable (monotonic seconds), so tests drive it without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .breaker import CLOSED, HALF_OPEN, CircuitBreaker, check_seconds, check_threshold

__all__ = ["NodeHealth"]

# A breaker needs a positive wait; dead_retry=0 means "retry at once", which this is.
_IMMEDIATE = 1e-9


class NodeHealth:
    """Tracks consecutive failures per node (a circuit breaker each) and decides which nodes may be used."""

    __slots__ = ("_breakers", "_clock", "dead_retry", "dead_until", "failure_threshold", "failures")

    def __init__(
        self,
        failure_threshold: int = 2,
        dead_retry: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = check_threshold("failure_threshold", failure_threshold)
        self.dead_retry = check_seconds("dead_retry", dead_retry, allow_zero=True)
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        #: node -> consecutive failures; only nodes with at least one failure are present,
        #: so "is anything wrong at all" is one truthiness test on the hot path.
        self.failures: dict[str, int] = {}
        #: node -> clock time when a dead node may be tried again (dead nodes only).
        self.dead_until: dict[str, float] = {}

    def _breaker(self, node: str) -> CircuitBreaker:
        breaker = self._breakers.get(node)
        if breaker is None:
            fresh = CircuitBreaker(self.failure_threshold, self.dead_retry or _IMMEDIATE, self._clock)
            breaker = self._breakers.setdefault(node, fresh)
        return breaker

    def available(self, node: str) -> bool:
        """True unless ``node`` is dead and its retry time has not come yet.

        For a dead node whose retry time has come this admits the probe (the caller is
        expected to use the node and record the outcome).
        """
        if node not in self.dead_until:
            return True
        return self._breaker(node).allow()

    def is_dead(self, node: str) -> bool:
        """True while ``node`` is marked dead (including after its retry time, until it answers)."""
        return node in self.dead_until

    def retry_in(self, node: str) -> float:
        """Seconds until a dead node is tried again (0 when it may be tried now or is alive)."""
        breaker = self._breakers.get(node)
        return 0.0 if breaker is None else breaker.retry_in()

    def record_success(self, node: str) -> None:
        """``node`` answered: it is healthy again."""
        breaker = self._breakers.get(node)
        if breaker is not None:
            breaker.record_success()
        self.failures.pop(node, None)
        self.dead_until.pop(node, None)

    def record_failure(self, node: str) -> bool:
        """``node`` failed (connect error, reset, timeout); True when it is now dead."""
        breaker = self._breaker(node)
        breaker.record_failure()
        self.failures[node] = breaker.consecutive
        if breaker.closed:
            return False
        self.dead_until[node] = self._clock() + breaker.retry_in()
        return True

    def state(self, node: str) -> str:
        """``"alive"``, ``"suspect"`` (failed, under the threshold), ``"dead"`` or ``"probation"``."""
        breaker = self._breakers.get(node)
        if breaker is None or breaker.state == CLOSED:
            return "suspect" if node in self.failures else "alive"
        if breaker.state == HALF_OPEN or breaker.retry_in() == 0.0:
            return "probation"
        return "dead"
