"""get_or_set under a StampedePolicy, in one process: leases, SWR, stale-if-error, XFetch, jitter.

Both flavours run each behaviour on the memory backend with a FakeClock shared by the
backend and the policy (no sleeping). The cross-process figures (32 processes, a holder
killed mid-load) are in test_stampede_processes.py.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stratacache as sc
from stratacache import AsyncCache, Cache, StampedePolicy
from stratacache._async.backends.memory import AsyncMemoryBackend
from stratacache._async.lease import AsyncLease, lease_key
from stratacache._sync.backends.memory import MemoryBackend
from stratacache._sync.lease import Lease
from stratacache.core.memory_store import MemoryStore
from stratacache.testing import FakeClock


async def aw(value: Any) -> Any:
    """The value, awaited if the flavour returned an awaitable."""
    return await value if inspect.isawaitable(value) else value


class Loader:
    """A counting loader; ``fail`` makes it raise, ``cost`` advances the fake clock."""

    def __init__(self, clock: FakeClock | None = None, cost: float = 0.0) -> None:
        self.calls = 0
        self.fail = False
        self.clock = clock
        self.cost = cost

    def __call__(self) -> str:
        self.calls += 1
        if self.clock is not None and self.cost:
            self.clock.advance(self.cost)
        if self.fail:
            raise RuntimeError("source down")
        return f"v{self.calls}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sync", "async"])
async def any_cache(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Cache | AsyncCache]:
    """A memory cache of either flavour on the test's fake clock."""
    if request.param == "sync":
        with Cache("memory", clock=clock) as cache:
            yield cache
    else:
        async with AsyncCache("memory", clock=clock) as acache:
            yield acache


def policy_for(clock: FakeClock, **fields: Any) -> StampedePolicy:
    return StampedePolicy(clock=clock, rng=random.Random(0), **fields)


async def test_miss_then_hit_loads_once_and_releases_the_lease(
    any_cache: Cache | AsyncCache, clock: FakeClock
) -> None:
    loader = Loader()
    policy = policy_for(clock)
    assert await aw(any_cache.get_or_set("k", loader, ttl=60, policy=policy)) == "v1"
    assert await aw(any_cache.get_or_set("k", loader, ttl=60, policy=policy)) == "v1"
    assert loader.calls == 1
    assert await aw(any_cache.get(lease_key("k"))) is None  # released (compare-and-delete)
    assert await aw(any_cache.ttl("k")) == pytest.approx(60)


async def test_waiter_reads_the_holders_result(any_cache: Cache | AsyncCache, clock: FakeClock) -> None:
    """Another process holds the lease: we wait (backing off) and read what it stores."""
    assert await aw(any_cache.add(lease_key("k"), "other-process", ttl=30))
    policy = policy_for(clock, backoff_initial=0.002, backoff_max=0.01, wait_timeout=5)
    loader = Loader()

    def holder_stores() -> None:
        # The "other process" finishes its load and writes through the same backend.
        threading.Event().wait(0.05)
        assert isinstance(any_cache, Cache)
        any_cache.set("k", "theirs", ttl=60)

    if isinstance(any_cache, Cache):
        thread = threading.Thread(target=holder_stores)
        thread.start()
        assert any_cache.get_or_set("k", loader, ttl=60, policy=policy) == "theirs"
        thread.join()
    else:

        async def store_later() -> None:
            await asyncio.sleep(0.05)
            await any_cache.set("k", "theirs", ttl=60)

        task = asyncio.create_task(store_later())
        assert await any_cache.get_or_set("k", loader, ttl=60, policy=policy) == "theirs"
        await task
    assert loader.calls == 0


async def test_dead_holder_is_taken_over_after_lease_ttl(
    any_cache: Cache | AsyncCache, clock: FakeClock
) -> None:
    """A holder that never stores: its lease expires (fake time), a waiter takes over."""
    assert await aw(any_cache.add(lease_key("k"), "dead-process", ttl=5))
    loader = Loader()
    policy = policy_for(clock, lease_ttl=5, backoff_initial=0.001, backoff_max=0.002)

    def expire_soon() -> None:
        threading.Event().wait(0.02)
        clock.advance(6)

    thread = threading.Thread(target=expire_soon)
    thread.start()
    assert await aw(any_cache.get_or_set("k", loader, ttl=60, policy=policy)) == "v1"
    thread.join()
    assert loader.calls == 1


async def test_wait_timeout_raises_naming_the_key(any_cache: Cache | AsyncCache, clock: FakeClock) -> None:
    assert await aw(any_cache.add(lease_key("slow"), "other", ttl=30))
    policy = policy_for(clock, wait_timeout=0.05, backoff_initial=0.005, backoff_max=0.01)
    with pytest.raises(sc.CacheTimeout, match=r"'slow'.*wait_timeout"):
        await aw(any_cache.get_or_set("slow", Loader(), ttl=60, policy=policy))


async def test_stale_while_revalidate(any_cache: Cache | AsyncCache, clock: FakeClock) -> None:
    loader = Loader()
    policy = policy_for(clock, stale_while_revalidate=30)
    assert await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy)) == "v1"
    assert await aw(any_cache.ttl("k")) == pytest.approx(10)  # the ttl it was given
    assert await aw(any_cache.backend.ttl("k")) == pytest.approx(40)  # stored through the window
    clock.advance(15)  # stale, inside the window
    # Another process is revalidating (holds the lease): served stale at once, no load.
    assert await aw(any_cache.add(lease_key("k"), "other", ttl=30))
    assert await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy)) == "v1"
    assert loader.calls == 1
    await aw(any_cache.delete(lease_key("k")))
    # Now this caller revalidates, once; the next reads are fresh again.
    assert await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy)) == "v2"
    assert await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy)) == "v2"
    assert loader.calls == 2
    # A failed revalidation serves the stale value (and stores nothing).
    clock.advance(15)
    loader.fail = True
    assert await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy)) == "v2"
    # Past the window the value is gone: a plain miss, the error propagates.
    clock.advance(40)
    with pytest.raises(RuntimeError, match="source down"):
        await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy))


def test_stale_while_revalidate_concurrent_callers_do_not_wait(clock: FakeClock) -> None:
    """While one thread revalidates, the others get the stale value without waiting."""
    policy = policy_for(clock, stale_while_revalidate=30)
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow_loader() -> str:
        calls.append(1)
        started.set()
        release.wait(5)
        return "new"

    with Cache("memory", clock=clock) as cache:
        cache.get_or_set("k", lambda: "old", ttl=10, policy=policy)
        clock.advance(12)
        results: list[Any] = []
        refresher = threading.Thread(
            target=lambda: results.append(cache.get_or_set("k", slow_loader, ttl=10, policy=policy))
        )
        refresher.start()
        assert started.wait(5)
        others = [cache.get_or_set("k", slow_loader, ttl=10, policy=policy) for _ in range(5)]
        release.set()
        refresher.join()
        assert others == ["old"] * 5
        assert results == ["new"]
        assert len(calls) == 1


async def test_stale_while_revalidate_async_tasks_do_not_wait(clock: FakeClock) -> None:
    policy = policy_for(clock, stale_while_revalidate=30)
    release = asyncio.Event()
    calls = []

    async def slow_loader() -> str:
        calls.append(1)
        await release.wait()
        return "new"

    async with AsyncCache("memory", clock=clock) as cache:
        await cache.get_or_set("k", lambda: "old", ttl=10, policy=policy)
        clock.advance(12)
        refresher = asyncio.create_task(cache.get_or_set("k", slow_loader, ttl=10, policy=policy))
        await asyncio.sleep(0.01)
        others = await asyncio.gather(
            *(cache.get_or_set("k", slow_loader, ttl=10, policy=policy) for _ in range(5))
        )
        release.set()
        assert await refresher == "new"
        assert others == ["old"] * 5
        assert len(calls) == 1


async def test_stale_if_error(any_cache: Cache | AsyncCache, clock: FakeClock) -> None:
    loader = Loader()
    policy = policy_for(clock, stale_if_error=60)
    assert await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy)) == "v1"
    clock.advance(20)  # stale: a load is due, and it fails
    loader.fail = True
    assert await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy)) == "v1"
    assert loader.calls == 2
    loader.fail = False  # the source is back: the stale value is replaced
    assert await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy)) == "v3"
    clock.advance(80)  # past ttl + stale_if_error: nothing to fall back on
    loader.fail = True
    with pytest.raises(RuntimeError, match="source down"):
        await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy))


async def test_stale_if_error_on_wait_timeout(any_cache: Cache | AsyncCache, clock: FakeClock) -> None:
    policy = policy_for(clock, stale_if_error=60, wait_timeout=0.03, backoff_initial=0.005, backoff_max=0.01)
    assert await aw(any_cache.get_or_set("k", Loader(), ttl=10, policy=policy)) == "v1"
    clock.advance(20)
    assert await aw(any_cache.add(lease_key("k"), "stuck-process", ttl=300))
    assert await aw(any_cache.get_or_set("k", Loader(), ttl=10, policy=policy)) == "v1"


async def test_stale_if_error_waiter_serves_stale_when_the_holder_fails(
    any_cache: Cache | AsyncCache, clock: FakeClock
) -> None:
    """The holder we waited for gave the lease back without storing (its load failed):
    we serve the stale value too, instead of calling the failing source in our turn."""
    policy = policy_for(clock, stale_if_error=60, backoff_initial=0.005, backoff_max=0.01)
    loader = Loader()
    assert await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy)) == "v1"
    clock.advance(20)
    assert await aw(any_cache.add(lease_key("k"), "failing-process", ttl=30))
    if isinstance(any_cache, Cache):
        thread = threading.Timer(0.05, any_cache.delete, args=(lease_key("k"),))
        thread.start()
        assert any_cache.get_or_set("k", loader, ttl=10, policy=policy) == "v1"
        thread.join()
    else:

        async def give_up_later() -> None:
            await asyncio.sleep(0.05)
            await any_cache.delete(lease_key("k"))

        task = asyncio.create_task(give_up_later())
        assert await any_cache.get_or_set("k", loader, ttl=10, policy=policy) == "v1"
        await task
    assert loader.calls == 1
    # A later caller that finds the lease free (it waited for nobody) does try the source.
    assert await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy)) == "v2"


async def test_xfetch_refreshes_early_more_often_near_expiry(
    any_cache: Cache | AsyncCache, clock: FakeClock
) -> None:
    """Seeded: the early-refresh rate at gap g before expiry follows exp(-g / (delta * beta))."""
    delta, beta, ttl, trials = 2.0, 1.0, 100.0, 150
    policy = policy_for(clock, early_refresh_beta=beta)
    rates = []
    for gap in (6.0, 2.0, 0.5):
        refreshed = 0
        for _ in range(trials):
            await aw(any_cache.clear())
            loader = Loader(clock, cost=delta)  # takes 2 s of fake time: delta = 2
            await aw(any_cache.get_or_set("k", loader, ttl=ttl, policy=policy))
            clock.advance(ttl - gap)
            await aw(any_cache.get_or_set("k", loader, ttl=ttl, policy=policy))
            refreshed += loader.calls - 1
        rate = refreshed / trials
        assert rate == pytest.approx(2.718281828 ** (-gap / (delta * beta)), abs=0.1)
        rates.append(rate)
    assert rates[0] < rates[1] < rates[2]


async def test_xfetch_off_never_refreshes_early(any_cache: Cache | AsyncCache, clock: FakeClock) -> None:
    loader = Loader(clock, cost=5.0)
    policy = policy_for(clock)
    await aw(any_cache.get_or_set("k", loader, ttl=100, policy=policy))
    clock.advance(99)
    await aw(any_cache.get_or_set("k", loader, ttl=100, policy=policy))
    assert loader.calls == 1


async def test_ttl_jitter_spreads_within_bounds(any_cache: Cache | AsyncCache, clock: FakeClock) -> None:
    policy = policy_for(clock, ttl_jitter=0.2, lease=False)
    ttls = []
    for i in range(40):
        await aw(any_cache.get_or_set(f"k{i}", Loader(), ttl=100, policy=policy))
        ttls.append(await aw(any_cache.ttl(f"k{i}")))
    assert all(80.0 - 1e-6 <= t <= 100.0 + 1e-6 for t in ttls)
    assert max(ttls) - min(ttls) > 10  # spread over the band, not all at one point


async def test_cache_policy_is_the_default_and_false_turns_it_off(clock: FakeClock) -> None:
    policy = policy_for(clock, stale_if_error=60)
    async with AsyncCache("memory", clock=clock, stampede=policy) as cache:
        loader = Loader()
        await cache.get_or_set("k", loader, ttl=10)
        clock.advance(20)
        loader.fail = True
        assert await cache.get_or_set("k", loader, ttl=10) == "v1"  # the cache's policy applied
        # policy=False: in-process single-flight only, so a lease held elsewhere is ignored.
        assert await cache.add(lease_key("other"), "another-process", ttl=30)
        assert await cache.get_or_set("other", lambda: "mine", ttl=10, policy=False) == "mine"


def test_bad_policy_argument(clock: FakeClock) -> None:
    with Cache("memory", clock=clock) as cache:
        with pytest.raises(sc.InvalidArgument, match="policy must be a StampedePolicy"):
            cache.get_or_set("k", Loader(), policy="lease")  # type: ignore[arg-type]
        with pytest.raises(sc.ConfigurationError, match="policy must be a StampedePolicy"):
            sc.cached(cache, policy={"lease": True})  # type: ignore[arg-type]


def test_cached_decorator_takes_a_policy(clock: FakeClock) -> None:
    policy = policy_for(clock, stale_if_error=60)
    calls: list[int] = []
    fail = [False]
    with Cache("memory", clock=clock) as cache:

        @sc.cached(cache, ttl=10, policy=policy)
        def square(x: int) -> int:
            calls.append(x)
            if fail[0]:
                raise RuntimeError("down")
            return x * x

        assert square(3) == 9
        clock.advance(20)
        fail[0] = True
        assert square(3) == 9  # stale-if-error through the decorator
        assert calls == [3, 3]


async def test_cached_decorator_policy_async(clock: FakeClock) -> None:
    policy = policy_for(clock, stale_if_error=60)
    async with AsyncCache("memory", clock=clock) as cache:
        calls: list[int] = []

        @sc.cached(cache, ttl=10, policy=policy)
        async def double(x: int) -> int:
            calls.append(x)
            if len(calls) > 1:
                raise RuntimeError("down")
            return 2 * x

        assert await double(4) == 8
        clock.advance(20)
        assert await double(4) == 8
        assert calls == [4, 4]


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_lease_release_checks_the_token(flavour: str, clock: FakeClock) -> None:
    """A holder whose lease expired and was retaken must not delete the new holder's lease."""
    cache: Cache | AsyncCache = (
        Cache("memory", clock=clock) if flavour == "sync" else AsyncCache("memory", clock=clock)
    )
    make: Callable[..., Any] = Lease if flavour == "sync" else AsyncLease
    mine = make(cache, "k", 5.0)
    assert await aw(mine.acquire())
    assert not await aw(make(cache, "k", 5.0).acquire())  # held
    clock.advance(6)  # ours expired
    theirs = make(cache, "k", 5.0)
    assert await aw(theirs.acquire())
    assert not await aw(mine.release())
    assert await aw(cache.get(lease_key("k"))) == theirs.token
    assert await aw(theirs.release())
    assert await aw(cache.get(lease_key("k"))) is None
    assert not await aw(theirs.release())  # twice: nothing to do
    await aw(cache.close())


async def test_policy_with_tags(any_cache: Cache | AsyncCache, clock: FakeClock) -> None:
    """Tags ride in the same envelope as the freshness metadata; an invalidation is a miss."""
    loader = Loader()
    policy = policy_for(clock, stale_while_revalidate=30)
    assert await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy, tags=["t"])) == "v1"
    assert await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy, tags=["t"])) == "v1"
    await aw(any_cache.invalidate_tags("t"))
    assert await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy, tags=["t"])) == "v2"
    assert loader.calls == 2
    with pytest.raises(sc.InvalidArgument, match="tags"):
        await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy, tags="t"))
    # Versions read earlier (TagVersions): an invalidation in between makes the value a miss.
    seen = await aw(any_cache.tag_versions("t"))
    await aw(any_cache.invalidate_tags("t"))
    assert await aw(any_cache.get_or_set("j", loader, ttl=10, policy=policy, tags=seen)) == "v3"
    assert await aw(any_cache.get("j")) is None


@given(steps=st.lists(st.tuples(st.integers(0, 60), st.booleans()), min_size=1, max_size=12))
@settings(max_examples=40, deadline=None)
def test_freshness_windows_follow_a_model(steps: list[tuple[int, bool]]) -> None:
    """Random waits and loader failures against a model of ttl, SWR and stale-if-error."""
    ttl, swr, sie = 20.0, 10.0, 30.0
    clock = FakeClock()
    policy = policy_for(clock, stale_while_revalidate=swr, stale_if_error=sie)
    loader = Loader()
    stored: str | None = None
    fresh_until = 0.0
    with Cache("memory", clock=clock) as cache:
        for wait, fail in steps:
            clock.advance(wait)
            loader.fail = fail
            now = clock()
            late = now - fresh_until
            if stored is not None and late < 0:
                expected: str | None = stored  # fresh: no load
                calls = loader.calls
            else:
                calls = loader.calls + 1
                servable = stored is not None and late < max(swr, sie)
                expected = stored if fail and servable else (None if fail else f"v{calls}")
            if expected is None:
                with pytest.raises(RuntimeError):
                    cache.get_or_set("k", loader, ttl=ttl, policy=policy)
                stored = None if late >= max(swr, sie) else stored
            else:
                assert cache.get_or_set("k", loader, ttl=ttl, policy=policy) == expected
                if not fail and expected != stored:
                    stored, fresh_until = expected, now + ttl
            assert loader.calls == calls
            # A plain read honours the ttl: the stale copy is get_or_set's alone.
            assert cache.get("k") == (stored if stored is not None and now < fresh_until else None)


# ------------------------------------------------- plain reads honour the logical ttl


@pytest.mark.parametrize("window", ["stale_while_revalidate", "stale_if_error"])
async def test_plain_reads_miss_past_the_ttl_get_or_set_serves_stale(
    any_cache: Cache | AsyncCache, clock: FakeClock, window: str
) -> None:
    """ttl=10 with a 30 s stale window: get() misses at t=15; only get_or_set sees the copy."""
    policy = policy_for(clock, **{window: 30})
    loader = Loader()
    assert await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy)) == "v1"
    assert await aw(any_cache.get_or_set("p", Loader(), ttl=10, policy=policy)) == "v1"
    clock.advance(4)
    assert await aw(any_cache.get("k")) == "v1"
    assert await aw(any_cache.get_many(["k", "nope"])) == {"k": "v1"}
    assert await aw(any_cache.exists("k"))
    assert await aw(any_cache.ttl("k")) == pytest.approx(6)  # of the ttl asked for, not of storage
    item = await aw(any_cache.get_item("k"))
    assert item is not None
    assert item.value == "v1"
    assert item.expires_at == pytest.approx(time.time() + 6, abs=1)
    clock.advance(11)  # t=15: past the ttl, inside the stale window
    assert await aw(any_cache.get("k", "miss")) == "miss"
    assert await aw(any_cache.get_many(["k"])) == {}
    assert await aw(any_cache.get_item("k")) is None
    assert not await aw(any_cache.exists("k"))
    assert await aw(any_cache.ttl("k")) is sc.MISSING
    assert await aw(any_cache.pull("p", "miss")) == "miss"
    assert await aw(any_cache.backend.exists("k"))  # the stale copy is kept for get_or_set
    loader.fail = True  # SWR serves stale on a failed refresh, stale-if-error on a failed load
    assert await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy)) == "v1"
    loader.fail = False
    assert await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy)) == "v3"
    assert await aw(any_cache.get("k")) == "v3"  # reloaded: plain reads hit again
    assert await aw(any_cache.ttl("k")) == pytest.approx(10)


async def test_plain_reads_use_the_cache_policys_clock(clock: FakeClock) -> None:
    """With ``stampede=`` on the cache, its policy's clock is the reads' "now" (the memory
    backend itself runs on its own monotonic clock here)."""
    policy = policy_for(clock, stale_while_revalidate=30)
    async with AsyncCache("memory", stampede=policy) as cache:
        assert await cache.get_or_set("k", Loader(), ttl=10) == "v1"
        assert await cache.get("k") == "v1"
        clock.advance(11)
        assert await cache.get("k") is None
        assert await cache.get_or_set("k", lambda: "v2", ttl=10) == "v2"  # this caller revalidated
        assert await cache.get("k") == "v2"


def test_xfetch_only_values_read_fresh_until_their_ttl(clock: FakeClock) -> None:
    """XFetch stores fresh_until = the ttl's end, with no stale window: reads hit until then."""
    policy = policy_for(clock, early_refresh_beta=1.0)
    with Cache("memory", clock=clock) as cache:
        assert cache.get_or_set("k", Loader(clock, cost=2.0), ttl=10, policy=policy) == "v1"
        clock.advance(9.5)
        assert cache.get("k") == "v1"
        assert cache.ttl("k") == pytest.approx(0.5)
        clock.advance(1)
        assert cache.get("k") is None
        assert cache.ttl("k") is sc.MISSING


# ------------------------------------------------------------------- races


def test_in_process_waiters_honour_wait_timeout(clock: FakeClock) -> None:
    """Threads waiting for this process's own loader give up after wait_timeout, like
    waiters in other processes (CacheTimeout, or the stale value inside stale-if-error)."""
    policy = policy_for(clock, wait_timeout=0.05, backoff_initial=0.005, backoff_max=0.01, stale_if_error=60)
    started, release = threading.Event(), threading.Event()

    def hung() -> str:
        started.set()
        release.wait(10)
        return "late"

    with Cache("memory", clock=clock) as cache:
        results: list[Any] = []
        leader = threading.Thread(
            target=lambda: results.append(cache.get_or_set("k", hung, ttl=10, policy=policy))
        )
        leader.start()
        try:
            assert started.wait(5)
            with pytest.raises(sc.CacheTimeout, match=r"'k'.*wait_timeout"):
                cache.get_or_set("k", Loader(), ttl=10, policy=policy)
        finally:
            release.set()
            leader.join()
        assert results == ["late"]
        clock.advance(20)  # stale, inside stale-if-error: a timed-out waiter serves it
        started.clear()
        release.clear()
        leader = threading.Thread(
            target=lambda: results.append(cache.get_or_set("k", hung, ttl=10, policy=policy))
        )
        leader.start()
        try:
            assert started.wait(5)
            assert cache.get_or_set("k", Loader(), ttl=10, policy=policy) == "late"
        finally:
            release.set()
            leader.join()


async def test_in_process_waiters_honour_wait_timeout_async(clock: FakeClock) -> None:
    policy = policy_for(clock, wait_timeout=0.05, backoff_initial=0.005, backoff_max=0.01)
    release = asyncio.Event()

    async def hung() -> str:
        await release.wait()
        return "late"

    async with AsyncCache("memory", clock=clock) as cache:
        leader = asyncio.create_task(cache.get_or_set("k", hung, ttl=10, policy=policy))
        await asyncio.sleep(0.01)
        try:
            with pytest.raises(sc.CacheTimeout, match=r"'k'.*wait_timeout"):
                await cache.get_or_set("k", Loader(), ttl=10, policy=policy)
        finally:
            release.set()
        assert await leader == "late"
        assert await cache.get_or_set("k", Loader(), ttl=10, policy=policy) == "late"


class _LeaseDown:
    """Mixed into the memory backends: ``add`` (the lease) fails while ``down``."""

    down = False

    def _fail(self, key: str) -> None:
        if self.down:
            raise sc.BackendUnavailable(f"add on key {key!r}: backend down (test)")


class _FlakyAsync(_LeaseDown, AsyncMemoryBackend):
    async def add(self, key: str, value: Any, ttl: float | None) -> bool:
        self._fail(key)
        return await super().add(key, value, ttl)


class _Flaky(_LeaseDown, MemoryBackend):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # The sync backend binds its store's add on the instance (one frame less): wrap that.
        store_add = self.add

        def add(key: str, value: Any, ttl: float | None) -> bool:
            self._fail(key)
            return store_add(key, value, ttl)

        self.add = add  # type: ignore[method-assign]


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_revalidation_serves_the_stored_value_when_the_lease_fails(
    flavour: str, clock: FakeClock
) -> None:
    """A refresh (SWR, XFetch) is optional work: a backend error taking its lease serves the
    value already in hand instead of failing a read that had one."""
    backend = _Flaky(clock=clock) if flavour == "sync" else _FlakyAsync(clock=clock)
    cache: Cache | AsyncCache = Cache(backend) if flavour == "sync" else AsyncCache(backend)
    policy = policy_for(clock, stale_while_revalidate=30)
    loader = Loader()
    assert await aw(cache.get_or_set("k", loader, ttl=10, policy=policy)) == "v1"
    clock.advance(15)
    backend.down = True
    assert await aw(cache.get_or_set("k", loader, ttl=10, policy=policy)) == "v1"
    assert loader.calls == 1
    with pytest.raises(sc.BackendUnavailable):  # a load has nothing to serve: the error shows
        await aw(cache.get_or_set("other", loader, ttl=10, policy=policy))
    backend.down = False
    assert await aw(cache.get_or_set("k", loader, ttl=10, policy=policy)) == "v2"
    await aw(cache.close())


async def test_a_holder_that_raises_or_is_cancelled_releases_the_lease(
    any_cache: Cache | AsyncCache, clock: FakeClock
) -> None:
    policy = policy_for(clock, lease_ttl=300)
    loader = Loader()
    loader.fail = True
    with pytest.raises(RuntimeError, match="source down"):
        await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy))
    assert await aw(any_cache.get(lease_key("k"))) is None  # released, not left for 300 s
    loader.fail = False
    assert await aw(any_cache.get_or_set("k", loader, ttl=10, policy=policy)) == "v2"
    if isinstance(any_cache, AsyncCache):
        entered = asyncio.Event()

        async def forever() -> str:
            entered.set()
            await asyncio.Event().wait()
            return "never"

        task = asyncio.create_task(any_cache.get_or_set("c", forever, ttl=10, policy=policy))
        await entered.wait()
        assert await any_cache.get(lease_key("c")) is not None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await any_cache.get(lease_key("c")) is None


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_revalidation_runs_once_when_another_process_refreshed_first(
    flavour: str, clock: FakeClock
) -> None:
    """Between our read of a stale value and our taking the lease, another process (here a
    second cache on the same store, with its own flights) refreshes it: we return its value
    instead of reloading."""
    store = MemoryStore(clock=clock)
    policy = policy_for(clock, stale_while_revalidate=30)
    other = Cache("memory", store=store)
    theirs = Loader()
    armed = [False]

    def they_refresh_first(key: str) -> None:
        if armed[0] and key == lease_key("k"):
            armed[0] = False
            other.get_or_set("k", theirs, ttl=10, policy=policy)

    # stampede=: the cache's policy clock is also what its plain reads judge freshness by.
    options: dict[str, Any] = {"store": store, "stampede": policy}
    mine: Cache | AsyncCache = (
        Cache("memory", **options) if flavour == "sync" else AsyncCache("memory", **options)
    )
    # The lease is taken with the backend's add (user hooks never see lease keys): the
    # other process refreshes just before it.
    backend: Any = mine.backend
    add = backend.add
    if flavour == "sync":

        def add_after_them(key: str, value: Any, ttl: float | None) -> bool:
            they_refresh_first(key)
            return bool(add(key, value, ttl))

        backend.add = add_after_them
    else:

        async def add_after_them_async(key: str, value: Any, ttl: float | None) -> bool:
            they_refresh_first(key)
            return bool(await add(key, value, ttl))

        backend.add = add_after_them_async
    assert await aw(mine.get_or_set("k", lambda: "old", ttl=10, policy=policy)) == "old"
    clock.advance(15)  # stale, inside the SWR window
    armed[0] = True
    ours = Loader()
    assert await aw(mine.get_or_set("k", ours, ttl=10, policy=policy)) == "v1"  # their refresh
    assert (theirs.calls, ours.calls) == (1, 0)
    assert await aw(mine.get("k")) == "v1"
    await aw(mine.close())
    other.close()
