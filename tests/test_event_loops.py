"""One ``AsyncCache`` used from several event loops (issue 13, defect 10).

Connections belong to the loop that opened them, so a Redis or Memcached ``AsyncCache`` is
bound to the first loop that uses it: from any other loop (a second ``asyncio.run()``, or a
thread with its own loop) every call raises a ``CacheError`` that says why, never hangs
and never leaks the bare ``RuntimeError`` asyncio raises. The memory backend holds no
connection and works from any loop, single-flight included. Every wait here has a timeout,
so a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from servers import MemcachedServer, RedisServer
from stratacache import AsyncCache, CacheError

pytestmark = pytest.mark.timeout(60)

# Calls are bounded by this (seconds): the cache's own timeouts are shorter.
BOUND = 10.0


def run(factory: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """``asyncio.run`` of one coroutine under a time bound (a new loop each time)."""

    async def bounded() -> Any:
        return await asyncio.wait_for(factory(), BOUND)

    return asyncio.run(bounded())


def in_threads(*factories: Callable[[], Coroutine[Any, Any, Any]]) -> list[Any]:
    """Run each coroutine in its own thread with its own loop, at once: results or exceptions."""
    results: list[Any] = [None] * len(factories)
    start = threading.Barrier(len(factories))

    def worker(index: int) -> None:
        start.wait()
        try:
            results[index] = run(factories[index])
        except BaseException as exc:  # returned to the test's thread
            results[index] = exc

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(factories))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND * 2)
    assert not any(thread.is_alive() for thread in threads), "a loop hung"
    return results


def server_url(request: pytest.FixtureRequest, kind: str) -> str:
    if kind == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        return redis.url
    memcached: MemcachedServer = request.getfixturevalue("memcached_server")
    return memcached.url


@pytest.fixture(params=["redis", "memcached"])
def url(request: pytest.FixtureRequest) -> str:
    """A server backend's URL: these hold connections, so they bind to one loop."""
    return server_url(request, request.param) + "?namespace=loops"


def assert_loop_error(error: object) -> None:
    assert isinstance(error, CacheError), repr(error)
    assert "event loop" in str(error)
    assert "one AsyncCache per event loop" in str(error)


def test_second_loop_raises_a_clear_cache_error(url: str) -> None:
    cache = AsyncCache(url, timeout=1.0)

    async def use() -> Any:
        await cache.set("k", 1)
        return await cache.get("k")

    first = asyncio.new_event_loop()
    try:
        assert first.run_until_complete(use()) == 1
        # A second asyncio.run() while the first loop still holds the connections.
        for _ in range(2):
            with pytest.raises(CacheError) as info:
                run(use)
            assert_loop_error(info.value)
            assert "still open" in str(info.value)
            assert info.value.__cause__ is None  # ours, not a translated RuntimeError
        assert first.run_until_complete(use()) == 1  # the first loop still works
        first.run_until_complete(cache.close())
    finally:
        first.close()


def test_two_threads_with_their_own_loops_never_hang(url: str) -> None:
    cache = AsyncCache(url, timeout=1.0)
    owner_ready, others_done = threading.Event(), threading.Event()

    async def owner() -> str:
        await cache.set("owner", 1)
        owner_ready.set()
        # Keep this loop alive (and the cache bound to it) while the other thread tries.
        while not others_done.is_set():
            await asyncio.sleep(0.01)
        assert await cache.get("owner") == 1
        await cache.close()
        return "owner ok"

    async def other() -> Any:
        await asyncio.get_running_loop().run_in_executor(None, owner_ready.wait, BOUND)
        try:
            await cache.get("owner")
        except CacheError as exc:
            return exc
        finally:
            others_done.set()
        return "no error"

    first, second = in_threads(owner, other)
    assert first == "owner ok"
    assert_loop_error(second)
    assert "still open" in str(second)


def test_memory_works_from_any_loop_single_flight_included() -> None:
    cache = AsyncCache("memory://", namespace="loops")
    calls: list[int] = []

    async def use(value: int) -> Any:
        await cache.set("k", value)
        return await cache.get("k")

    assert run(lambda: use(1)) == 1
    assert run(lambda: use(2)) == 2

    async def slow_factory() -> str:
        calls.append(1)
        await asyncio.sleep(0.3)
        return "built"

    async def get_or_set() -> Any:
        return await cache.get_or_set("flight", slow_factory, ttl=60)

    # Two loops at once on one key: one builds, the other waits for it across loops and is
    # woken as soon as it is built (not when something else happens to wake its loop).
    started = time.monotonic()
    assert in_threads(get_or_set, get_or_set) == ["built", "built"]
    assert time.monotonic() - started < 3.0
    assert len(calls) == 1
    run(cache.close)
