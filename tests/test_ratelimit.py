"""RateLimiter / AsyncRateLimiter on every backend, under threads and processes, and misuse.

Every limiter here runs on a FakeClock (the limiter's own clock, sent to the backend), so
windows open and close when the test says. The clock starts on a whole minute, so a burst
never straddles a window and every stored state lives for at least a period in real time.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import stratacache as sc
from stratacache import AsyncCache, AsyncRateLimiter, Cache, RateLimiter
from stratacache._async.backends.base import AsyncBackend
from stratacache._async.ratelimit import _script_target
from stratacache._sync.backends.base import Backend
from stratacache.testing import FakeClock

ALGORITHMS = ("fixed_window", "sliding_window", "token_bucket")
START = 1_700_000_040.0  # a whole minute (and so a whole 10 s window)
LIMIT, EXTRA, PERIOD = 5, 3, 10.0


def _unsupported(cache: Any, algorithm: str) -> bool:
    """True where the limiter must refuse: the null backend, and the token bucket on a
    backend with neither scripts nor compare-and-set."""
    backend = cache.backend
    if not backend.capabilities.retains_data:
        return True
    if algorithm != "token_bucket" or _script_target(backend) is not None:
        return False
    base = AsyncBackend if isinstance(backend, AsyncBackend) else Backend
    return type(backend).set_if_version is base.set_if_version


async def test_burst_allows_exactly_the_limit_async(acache: AsyncCache) -> None:
    for algorithm in ALGORITHMS:
        clock = FakeClock(START)
        limiter = AsyncRateLimiter(acache, LIMIT, PERIOD, algorithm=algorithm, clock=clock)
        if _unsupported(acache, algorithm):
            with pytest.raises(sc.UnsupportedOperation, match=acache.backend.name):
                await limiter.hit("user:1")
            continue
        decisions = [await limiter.hit("user:1") for _ in range(LIMIT + EXTRA)]
        assert [d.allowed for d in decisions] == [True] * LIMIT + [False] * EXTRA, algorithm
        assert [d.remaining for d in decisions[:LIMIT]] == list(range(LIMIT - 1, -1, -1))
        assert all(d.retry_after > 0 and d.remaining == 0 for d in decisions[LIMIT:])
        # Another key has its own budget.
        assert (await limiter.hit("user:2")).remaining == LIMIT - 1
        # Two periods later everything is forgotten.
        clock.advance(2 * PERIOD)
        again = await limiter.hit("user:1")
        assert again.allowed, algorithm
        assert again.remaining == LIMIT - 1
        await limiter.reset("user:1")
        assert (await limiter.hit("user:1")).remaining == LIMIT - 1


def test_burst_allows_exactly_the_limit_sync(cache: Cache) -> None:
    for algorithm in ALGORITHMS:
        clock = FakeClock(START)
        limiter = RateLimiter(cache, LIMIT, PERIOD, algorithm=algorithm, clock=clock)
        if _unsupported(cache, algorithm):
            with pytest.raises(sc.UnsupportedOperation, match=cache.backend.name):
                limiter.hit("user:1")
            continue
        decisions = [limiter.hit("user:1", cost=2) for _ in range(4)]
        # Cost 2 against a limit of 5: two hits fit, the third would make 6.
        assert [d.allowed for d in decisions] == [True, True, False, False], algorithm
        assert decisions[1].remaining == 1
        assert limiter.hit("user:1").allowed  # a cost-1 hit still fits
        assert not limiter.hit("user:1").allowed
        clock.advance(2 * PERIOD)
        assert limiter.hit("user:1", cost=5).allowed
        # Halfway into the next window: the sliding window still weighs the last one's 5
        # hits at one half (2.5), so 2 more fit and a third does not; the others are fresh.
        clock.advance(1.5 * PERIOD)
        if algorithm == "sliding_window":
            assert limiter.hit("user:1", cost=2).allowed
            assert not limiter.hit("user:1").allowed
        else:
            assert limiter.hit("user:1", cost=5).allowed


def test_layered_counts_in_the_shared_tier(redis_server: Any) -> None:
    """A layered cache (memory over Redis) keeps the count in Redis: two caches with their
    own in-process tiers share one budget."""
    clock = FakeClock(START)
    url = redis_server.url
    with (
        Cache(backend="layered", tiers=["memory://", url]) as one,
        Cache(backend="layered", tiers=["memory://", url]) as two,
    ):
        one.clear()
        for algorithm in ALGORITHMS:
            first = RateLimiter(one, 4, PERIOD, algorithm=algorithm, clock=clock)
            second = RateLimiter(two, 4, PERIOD, algorithm=algorithm, clock=clock)
            allowed = [first.hit("k").allowed, second.hit("k").allowed, first.hit("k").allowed]
            allowed += [second.hit("k").allowed, first.hit("k").allowed, second.hit("k").allowed]
            assert allowed == [True] * 4 + [False] * 2, algorithm


async def test_decorator_async() -> None:
    clock = FakeClock(START)
    async with AsyncCache("memory://") as cache:
        limiter = AsyncRateLimiter(cache, 2, 60, clock=clock)

        @limiter.limit(lambda user, **_: f"user:{user}")
        async def fetch(user: str, *, page: int = 1) -> str:
            return f"{user}:{page}"

        assert await fetch("a") == "a:1"
        assert await fetch("a", page=2) == "a:2"
        assert await fetch("b") == "b:1"
        with pytest.raises(sc.RateLimitExceeded) as caught:
            await fetch("a")
        assert caught.value.key == "user:a"
        assert caught.value.retry_after == 60.0  # START begins a minute
        assert caught.value.decision.remaining == 0
        assert "user:a" in str(caught.value)
        assert isinstance(caught.value, sc.CacheError)
        assert "retry after 60 s" in str(caught.value)

        def plain() -> None: ...

        with pytest.raises(sc.InvalidArgument, match="async def"):
            limiter.limit("k")(plain)  # type: ignore[arg-type]


def test_decorator_sync() -> None:
    clock = FakeClock(START)
    with Cache("memory://") as cache:
        limiter = RateLimiter(cache, 3, 1, algorithm="token_bucket", clock=clock)

        @limiter.limit("export", cost=2)
        def export() -> str:
            return "done"

        assert export() == "done"
        with pytest.raises(sc.RateLimitExceeded, match=r"'export'.*retry after 0.334 s"):
            export()
        clock.advance(0.334)
        assert export() == "done"

        async def coro() -> None: ...

        with pytest.raises(sc.InvalidArgument, match="decorates def functions"):
            limiter.limit("k")(coro)  # type: ignore[arg-type]
        with pytest.raises(sc.InvalidArgument, match="parameter 'cost'"):
            limiter.limit("k", cost=4)
        with pytest.raises(sc.InvalidArgument, match="parameter 'key'"):
            limiter.limit(3)  # type: ignore[arg-type]


def test_failure_cases_name_the_parameter() -> None:
    with Cache("memory://") as cache:
        with pytest.raises(sc.InvalidArgument, match="parameter 'cache'"):
            RateLimiter("memory://", 1, 1)  # type: ignore[arg-type]
        with pytest.raises(
            sc.InvalidArgument, match=r"parameter 'cache' must be a cache of this flavour \(Cache\)"
        ):
            RateLimiter(AsyncCache("memory://"), 1, 1)  # type: ignore[arg-type]
        with pytest.raises(sc.InvalidArgument, match=r"this flavour \(AsyncCache\), got Cache"):
            AsyncRateLimiter(cache, 1, 1)  # type: ignore[arg-type]
        for kwargs, name in (
            ({"limit": 0, "period": 1}, "limit"),
            ({"limit": 1, "period": -5}, "period"),
            ({"limit": 1, "period": 1, "algorithm": "gcra"}, "algorithm"),
            ({"limit": 1, "period": 1, "prefix": ""}, "prefix"),
            ({"limit": 1, "period": 1, "clock": 5}, "clock"),
        ):
            with pytest.raises(sc.InvalidArgument, match=f"parameter '{name}'"):
                RateLimiter(cache, **kwargs)
        limiter = RateLimiter(cache, 3, 1)
        for cost in (0, 4, 1.5):
            with pytest.raises(sc.InvalidArgument, match="parameter 'cost'"):
                limiter.hit("k", cost=cost)  # type: ignore[arg-type]
        with pytest.raises(sc.InvalidKey):
            limiter.hit(5)  # type: ignore[arg-type]
        broken = RateLimiter(cache, 3, 1, clock=lambda: float("nan"))
        with pytest.raises(sc.InvalidArgument, match="clock"):
            broken.hit("k")
        assert repr(limiter).startswith("<RateLimiter 3/1s fixed_window")
        assert (limiter.period, limiter.algorithm, limiter.spec.limit) == (1.0, "fixed_window", 3)
    with Cache("null://") as null:
        with pytest.raises(sc.UnsupportedOperation, match=r"'null'.*forgets every write"):
            RateLimiter(null, 1, 1).hit("k")
        with pytest.raises(sc.UnsupportedOperation, match="forgets every write"):
            RateLimiter(null, 1, 1, algorithm="token_bucket").reset("k")
    closed = Cache("memory://")
    closed.close()
    with pytest.raises(sc.CacheClosed):
        RateLimiter(closed, 1, 1).hit("k")


# ----------------------------------------------------------------- concurrency

WORKERS, HITS, SHARED_LIMIT = 4, 20, 30


def _hammer(url: str, algorithm: str, hits: int) -> int:
    """One worker: ``hits`` hits on one key at a frozen time; how many were allowed."""
    with Cache(url) as cache:
        limiter = RateLimiter(cache, SHARED_LIMIT, 60, algorithm=algorithm, clock=lambda: START)
        return sum(limiter.hit("shared").allowed for _ in range(hits))


def _check_total(total: int, url: str, algorithm: str, scripted: bool) -> None:
    # Scripts and compare-and-set are exact. Counters never over-admit; a hit refused near
    # the limit because another worker's refused hit was still counted (one per worker at
    # most) is the only way to under-admit.
    assert total <= SHARED_LIMIT, (url, algorithm)
    if scripted or algorithm == "token_bucket":
        assert total == SHARED_LIMIT, (url, algorithm)
    else:
        assert total >= SHARED_LIMIT - (WORKERS - 1), (url, algorithm)


@pytest.fixture
def shared_urls(redis_server: Any, memcached_server: Any) -> list[tuple[str, bool]]:
    for url in (redis_server.url, memcached_server.url):
        with Cache(url) as cache:
            cache.clear()
    return [(redis_server.url, True), (memcached_server.url, False)]


def test_threads_never_over_admit(shared_urls: list[tuple[str, bool]]) -> None:
    for url, scripted in shared_urls:
        for algorithm in ALGORITHMS:
            with ThreadPoolExecutor(WORKERS) as pool:
                results = list(pool.map(_hammer, [url] * WORKERS, [algorithm] * WORKERS, [HITS] * WORKERS))
            _check_total(sum(results), url, algorithm, scripted)
            with Cache(url) as cache:
                cache.clear()


def test_processes_never_over_admit(shared_urls: list[tuple[str, bool]]) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(WORKERS) as pool:
        for url, scripted in shared_urls:
            for algorithm in ALGORITHMS:
                results = pool.starmap(_hammer, [(url, algorithm, HITS)] * WORKERS)
                _check_total(sum(results), url, algorithm, scripted)
                with Cache(url) as cache:
                    cache.clear()


def test_run_script_failures(redis_server: Any) -> None:
    """run_script translates errors (naming the key, not the script); a sharded cache runs
    scripts only when every node can."""
    with Cache(redis_server.url) as cache:
        cache.clear()
        cache.lpush("ratelimit:fw:busy", 1)
        with pytest.raises(sc.WrongType, match="run_script on key 'ratelimit:fw:busy'"):
            RateLimiter(cache, 3, 1).hit("busy")
        backend: Any = cache.backend
        assert backend.run_script("return ARGV[1] + 1", ["k"], [41]) == 42
    with Cache(backend="sharded", nodes=["memory://", redis_server.url]) as mixed:
        sharded: Any = mixed.backend
        assert sharded.can_run_scripts is False
        with pytest.raises(sc.UnsupportedOperation, match="not every node can run scripts"):
            sharded.run_script("return 1", ["k"], [])
        # The limiter then counts through the sharded cache's incr instead.
        assert RateLimiter(mixed, 1, 1).hit("k").allowed


async def test_backend_without_compare_and_set() -> None:
    """A third-party backend with only the required core: windows count through incr; the
    token bucket needs compare-and-set, so it is refused naming the backend and why."""
    from test_backend_contract import MinimalAsyncBackend

    clock = FakeClock(START)
    async with AsyncCache(MinimalAsyncBackend(clock)) as cache:
        for algorithm in ("fixed_window", "sliding_window"):
            limiter = AsyncRateLimiter(cache, 2, PERIOD, algorithm=algorithm, clock=clock)
            assert [(await limiter.hit("k")).allowed for _ in range(3)] == [True, True, False]
        bucket = AsyncRateLimiter(cache, 2, PERIOD, algorithm="token_bucket", clock=clock)
        with pytest.raises(sc.UnsupportedOperation, match=r"'minimal'.*token_bucket.*compare-and-set"):
            await bucket.hit("k")
