"""Internal state (lease tokens, token buckets) on a cache whose serializer is raw.

The raw serializer stores only bytes and ints and reads every value back as bytes, so
the lease token and the token bucket's state must be bytes there; on every other
serializer they stay as they were. Real redis-server and memcached from ``servers.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import stratacache as sc
from stratacache._sync.lease import Lease
from stratacache.testing import FakeClock

START = 1_700_000_000.0
BACKENDS = ["memory", "file", "memcached", "redis"]


def _backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if name == "memory":
        return {"backend": "memory"}
    if name == "file":
        return {"backend": "file", "directory": str(tmp_path / "cache")}
    if name == "memcached":
        return {"backend": request.getfixturevalue("memcached_server").url}
    return {"backend": request.getfixturevalue("redis_server").url}


@pytest.mark.parametrize("name", BACKENDS)
def test_token_bucket_on_raw(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    with sc.Cache(serializer="raw", **_backend(name, request, tmp_path)) as cache:
        cache.clear()
        clock = FakeClock(START)
        limiter = sc.RateLimiter(cache, 3, 1, algorithm="token_bucket", clock=clock)
        assert [limiter.hit("u").allowed for _ in range(4)] == [True, True, True, False]
        stored = cache.get("ratelimit:tb:u")
        assert isinstance(stored, bytes)  # the "units at" text, on Lua and CAS paths alike
        clock.advance(0.34)
        assert limiter.hit("u").allowed  # one token refilled, read back from the bytes
        assert not limiter.hit("u").allowed


@pytest.mark.parametrize("name", BACKENDS)
def test_lease_on_raw(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    policy = sc.StampedePolicy(lease_ttl=5)
    with sc.Cache(serializer="raw", **_backend(name, request, tmp_path)) as cache:
        cache.clear()
        assert cache.get_or_set("k", lambda: b"v", ttl=30, policy=policy) == b"v"
        assert cache.get("stratacache-lease:k") is None  # taken and released
        # A lease someone else holds is not released by a holder whose token differs.
        lease = Lease(cache, "other", 5)
        assert isinstance(lease.token, bytes)
        assert lease.acquire()
        cache.set("stratacache-lease:other", b"someone else", ttl=5)
        assert not lease.release()
        assert cache.get("stratacache-lease:other") == b"someone else"


@pytest.mark.parametrize("name", ["memory", "redis"])
async def test_raw_state_async(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    async with sc.AsyncCache(serializer="raw", **_backend(name, request, tmp_path)) as cache:
        await cache.clear()
        limiter = sc.AsyncRateLimiter(cache, 2, 1, algorithm="token_bucket", clock=FakeClock(START))
        assert [(await limiter.hit("u")).allowed for _ in range(3)] == [True, True, False]
        policy = sc.StampedePolicy(lease_ttl=5)

        async def load() -> bytes:
            return b"v"

        assert await cache.get_or_set("k", load, ttl=30, policy=policy) == b"v"
        assert await cache.get("stratacache-lease:k") is None


def test_other_serializers_keep_text_tokens() -> None:
    # JSON cannot store bytes: the token stays text wherever text can be stored.
    with sc.Cache(backend="memory", serializer="json") as cache:
        lease = Lease(cache, "k", 5)
        assert isinstance(lease.token, str)
        assert lease.acquire()
        assert lease.release()
        limiter = sc.RateLimiter(cache, 2, 1, algorithm="token_bucket", clock=FakeClock(START))
        assert [limiter.hit("u").allowed for _ in range(3)] == [True, True, False]
