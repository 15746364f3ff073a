"""A circuit breaker: stop calling a backend that keeps failing, and try it again later.

States (the classic three)::

    closed ──N consecutive failures──▶ open ──reset_timeout elapsed──▶ half-open
      ▲                                 ▲                                 │
      └────────── probe succeeds ───────┼──────── probe fails ────────────┘

* **closed**: every call goes through; a success resets the failure count.
* **open**: calls are refused at once (``allow()`` is False), so a caller never waits out a
  timeout against a backend that is known to be down.
* **half-open**: after ``reset_timeout`` seconds one call (the *probe*) is let through; its
  success closes the circuit, its failure opens it again for another ``reset_timeout``.
  A probe that never reports (its caller was cancelled) does not wedge the breaker: after
  another ``reset_timeout`` a new probe is let through.

Pure logic, no I/O: the clock is injected (monotonic seconds) so tests drive it by hand.
A lock makes each transition atomic, because the sync flavour of a layered cache calls
one breaker from many threads; the hot path (``allow()`` on a closed circuit) reads one
attribute and takes no lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker", "check_seconds", "check_threshold"]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


def check_threshold(name: str, value: object) -> int:
    """``value`` as a failure count (an int >= 1); ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_seconds(name: str, value: object, *, allow_zero: bool) -> float:
    """``value`` as a duration in seconds (> 0, or >= 0 with ``allow_zero``); ValueError otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (value >= 0 if allow_zero else value > 0)
    ):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a number of seconds {bound}, got {value!r}")
    return float(value)


class CircuitBreaker:
    """Counts consecutive failures of one backend and decides whether to call it.

    ``failure_threshold``: consecutive failures that open the circuit (>= 1).
    ``reset_timeout``: seconds an open circuit waits before letting a probe through (> 0).
    ``clock``: monotonic seconds; ``time.monotonic`` by default.

    Counters for ``stats()``: ``failures`` (every failure recorded), ``rejected`` (calls
    refused while open), ``opened`` (times the circuit opened).
    """

    __slots__ = (
        "_clock",
        "_lock",
        "_opened_at",
        "_probe_at",
        "closed",
        "consecutive",
        "failure_threshold",
        "failures",
        "opened",
        "rejected",
        "reset_timeout",
        "state",
    )

    def __init__(
        self,
        failure_threshold: int = 3,
        reset_timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = check_threshold("failure_threshold", failure_threshold)
        self.reset_timeout = check_seconds("reset_timeout", reset_timeout, allow_zero=False)
        self._clock = clock
        self._lock = threading.Lock()
        self.state = CLOSED
        #: True exactly when ``state == CLOSED``: the one attribute the hot path reads.
        self.closed = True
        self.consecutive = 0
        self.failures = 0
        self.rejected = 0
        self.opened = 0
        self._opened_at = 0.0
        self._probe_at = 0.0

    def allow(self) -> bool:
        """True when a call may go through now (always when closed; one probe when half-open)."""
        if self.closed:
            return True
        with self._lock:
            now = self._clock()
            if self.state == OPEN and now - self._opened_at >= self.reset_timeout:
                self.state = HALF_OPEN
                self._probe_at = now
                return True
            # A probe whose caller never reported (cancelled) must not keep the circuit
            # half-open for ever: after another reset_timeout, a new probe may go.
            if self.state == HALF_OPEN and now - self._probe_at >= self.reset_timeout:
                self._probe_at = now
                return True
            if self.state == CLOSED:  # closed by another thread between the two reads
                return True
            self.rejected += 1
            return False

    def record_success(self) -> None:
        """The backend answered: close the circuit and forget past failures."""
        if self.closed and not self.consecutive:
            return  # the common case: nothing to change, no lock
        with self._lock:
            self.consecutive = 0
            self.state = CLOSED
            self.closed = True

    def record_failure(self) -> None:
        """The backend failed (unreachable or timed out): count it, open the circuit if due."""
        with self._lock:
            self.failures += 1
            self.consecutive += 1
            if self.state == HALF_OPEN or (
                self.state == CLOSED and self.consecutive >= self.failure_threshold
            ):
                self._open()
            elif self.state == OPEN:
                # A call admitted before the circuit opened failed late: restart the wait.
                self._opened_at = self._clock()

    def _open(self) -> None:
        self.state = OPEN
        self.closed = False
        self.opened += 1
        self._opened_at = self._clock()

    def retry_in(self) -> float:
        """Seconds until an open circuit lets a probe through (0 when closed or due)."""
        if self.state != OPEN:
            return 0.0
        return max(0.0, self.reset_timeout - (self._clock() - self._opened_at))

    def __repr__(self) -> str:
        return (
            f"<CircuitBreaker {self.state} failures={self.failures} consecutive={self.consecutive}"
            f" threshold={self.failure_threshold} reset_timeout={self.reset_timeout:g}>"
        )
