"""get_or_set under a StampedePolicy on every backend, both flavours (conformance-style).

The policy's clock is a FakeClock of its own, started at the real time: get_or_set reads
freshness (fresh_until, the stale windows) from it, while entries expire on the backend's
clock and plain reads judge fresh_until by the cache's clock (unix time here). Stored values outlive their
ttl by the stale window, so advancing the policy clock makes a value stale while it is
still stored, on real servers too. The null backend forgets every write: every call loads.
"""

from __future__ import annotations

import random
import time

import pytest

import stratacache as sc
from servers import RedisServer
from stratacache import AsyncCache, Cache, StampedePolicy
from stratacache._async.lease import lease_key
from stratacache.testing import FakeClock


class Loader:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    def __call__(self) -> dict[str, object]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("source down")
        return {"n": self.calls, "items": [1, "two", None]}


def _policy(clock: FakeClock) -> StampedePolicy:
    return StampedePolicy(
        stale_if_error=600,
        early_refresh_beta=1.0,
        wait_timeout=0.03,
        backoff_initial=0.005,
        backoff_max=0.01,
        clock=clock,
        rng=random.Random(3),
    )


def test_policy_on_every_backend(cache: Cache, backend_name: str) -> None:
    clock = FakeClock(time.time())
    policy = _policy(clock)
    loader = Loader()
    first = cache.get_or_set("so", loader, ttl=60, policy=policy)
    assert first == {"n": 1, "items": [1, "two", None]}
    assert cache.get(lease_key("so")) is None  # the lease was released
    second = cache.get_or_set("so", loader, ttl=60, policy=policy)
    if backend_name == "null":
        assert loader.calls == 2  # nothing is ever stored: every call loads
        return
    assert second == first
    assert loader.calls == 1
    assert cache.get("so") == first  # a plain get reads through the envelope
    clock.advance(100)  # stale by the policy's clock, still stored (ttl + stale_if_error)
    loader.fail = True
    assert cache.get_or_set("so", loader, ttl=60, policy=policy) == first  # stale-if-error
    assert loader.calls == 2
    # Another process holds the lease for a missing key: we wait, then time out naming it.
    assert cache.add(lease_key("held"), "another-process", ttl=30)
    with pytest.raises(sc.CacheTimeout, match="'held'"):
        cache.get_or_set("held", Loader(), ttl=60, policy=policy)


async def test_policy_on_every_backend_async(acache: AsyncCache, backend_name: str) -> None:
    clock = FakeClock(time.time())
    policy = _policy(clock)
    loader = Loader()
    first = await acache.get_or_set("so", loader, ttl=60, policy=policy)
    assert first == {"n": 1, "items": [1, "two", None]}
    assert await acache.get(lease_key("so")) is None
    second = await acache.get_or_set("so", loader, ttl=60, policy=policy)
    if backend_name == "null":
        assert loader.calls == 2
        return
    assert second == first
    assert loader.calls == 1
    assert await acache.get("so") == first
    clock.advance(100)
    loader.fail = True
    assert await acache.get_or_set("so", loader, ttl=60, policy=policy) == first
    assert loader.calls == 2
    assert await acache.add(lease_key("held"), "another-process", ttl=30)
    with pytest.raises(sc.CacheTimeout, match="'held'"):
        await acache.get_or_set("held", Loader(), ttl=60, policy=policy)


def test_policy_on_layered_memory_over_redis(redis_server: RedisServer) -> None:
    """A layered cache (memory L1 over Redis L2): the lease and stale values go through both."""
    url = redis_server.url
    clock = FakeClock(time.time())
    policy = _policy(clock)
    with Cache(backend="layered", tiers=["memory://", url], namespace="stampede-layered") as cache:
        cache.clear()
        loader = Loader()
        first = cache.get_or_set("so", loader, ttl=60, policy=policy)
        assert cache.get_or_set("so", loader, ttl=60, policy=policy) == first
        assert cache.get(lease_key("so")) is None
        clock.advance(100)
        loader.fail = True
        assert cache.get_or_set("so", loader, ttl=60, policy=policy) == first
        assert loader.calls == 2


async def test_policy_on_layered_memory_over_redis_async(redis_server: RedisServer) -> None:
    url = redis_server.url
    clock = FakeClock(time.time())
    policy = _policy(clock)
    async with AsyncCache(backend="layered", tiers=["memory://", url], namespace="stampede-layered") as cache:
        await cache.clear()
        loader = Loader()
        first = await cache.get_or_set("so", loader, ttl=60, policy=policy)
        assert await cache.get_or_set("so", loader, ttl=60, policy=policy) == first
        assert await cache.get(lease_key("so")) is None
        clock.advance(100)
        loader.fail = True
        assert await cache.get_or_set("so", loader, ttl=60, policy=policy) == first
        assert loader.calls == 2
