"""The circuit breaker (stratacache.core.breaker): closed -> open -> half-open -> closed."""

from __future__ import annotations

import threading

import pytest

from stratacache.core.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from stratacache.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_starts_closed_and_lets_everything_through(clock: FakeClock) -> None:
    breaker = CircuitBreaker(3, 1.0, clock)
    assert breaker.state == CLOSED
    assert breaker.closed is True
    assert all(breaker.allow() for _ in range(100))
    assert breaker.retry_in() == 0.0


def test_opens_after_threshold_consecutive_failures(clock: FakeClock) -> None:
    breaker = CircuitBreaker(3, 1.0, clock)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == CLOSED
    breaker.record_failure()
    assert breaker.state == OPEN
    assert breaker.closed is False
    assert breaker.opened == 1
    assert breaker.allow() is False
    assert breaker.rejected == 1
    assert breaker.retry_in() == pytest.approx(1.0)


def test_a_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker(3, 1.0, clock)
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state == CLOSED
    assert breaker.failures == 10
    assert breaker.consecutive == 0


def test_half_open_after_reset_timeout_lets_one_probe(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, 2.0, clock)
    breaker.record_failure()
    clock.advance(1.9)
    assert breaker.allow() is False
    assert breaker.retry_in() == pytest.approx(0.1)
    clock.advance(0.1)
    assert breaker.allow() is True  # the probe
    assert breaker.state == HALF_OPEN
    assert breaker.allow() is False  # only one probe at a time
    breaker.record_success()
    assert breaker.state == CLOSED
    assert breaker.allow() is True


def test_a_failed_probe_opens_again_for_a_full_timeout(clock: FakeClock) -> None:
    breaker = CircuitBreaker(3, 2.0, clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(2.0)
    assert breaker.allow() is True
    breaker.record_failure()  # one failure in half-open is enough, no need to count to 3
    assert breaker.state == OPEN
    assert breaker.opened == 2
    clock.advance(1.0)
    assert breaker.allow() is False
    clock.advance(1.0)
    assert breaker.allow() is True


def test_a_probe_that_never_reports_does_not_wedge_the_breaker(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, 1.0, clock)
    breaker.record_failure()
    clock.advance(1.0)
    assert breaker.allow() is True  # probe taken, its caller is cancelled and never reports
    clock.advance(0.5)
    assert breaker.allow() is False
    clock.advance(0.5)
    assert breaker.allow() is True  # a new probe


def test_a_late_failure_while_open_restarts_the_wait(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, 1.0, clock)
    breaker.record_failure()
    clock.advance(0.8)
    breaker.record_failure()  # a call admitted before the circuit opened failed late
    clock.advance(0.5)
    assert breaker.allow() is False
    clock.advance(0.5)
    assert breaker.allow() is True


@pytest.mark.parametrize("threshold", [0, -1, 1.5, True, "3", None])
def test_bad_threshold_is_refused(threshold: object) -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(threshold, 1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), True, "1", None])
def test_bad_reset_timeout_is_refused(timeout: object) -> None:
    with pytest.raises(ValueError, match="reset_timeout"):
        CircuitBreaker(3, timeout)  # type: ignore[arg-type]


def test_repr_names_state_and_counts(clock: FakeClock) -> None:
    breaker = CircuitBreaker(2, 1.5, clock)
    breaker.record_failure()
    assert repr(breaker) == "<CircuitBreaker closed failures=1 consecutive=1 threshold=2 reset_timeout=1.5>"


def test_concurrent_failures_are_all_counted_and_open_once(clock: FakeClock) -> None:
    breaker = CircuitBreaker(50, 1.0, clock)

    def fail() -> None:
        for _ in range(100):
            breaker.record_failure()

    threads = [threading.Thread(target=fail) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert breaker.failures == 800
    assert breaker.state == OPEN
    assert breaker.opened == 1


def test_only_one_concurrent_probe_in_half_open(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, 1.0, clock)
    breaker.record_failure()
    clock.advance(1.0)
    allowed: list[bool] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        allowed.append(breaker.allow())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 1
