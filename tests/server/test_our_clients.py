"""Our own clients against our server: ``Cache("redis://...")`` and a layered cache whose
cross-process invalidation runs over our pub/sub (in one process and across two)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stratacache import MISSING, AsyncCache, Cache
from stratacache.server import ServerThread


def url_of(ours: ServerThread) -> str:
    return f"redis://127.0.0.1:{ours.port}/0"


def l1(cache: Cache | AsyncCache) -> Any:
    """The top tier's store (what the process holds privately)."""
    tier = cache.backend.tiers[0]  # type: ignore[attr-defined]
    return getattr(tier, "inner", tier).store


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.002)


def test_redis_backend_reads_and_writes_through_our_server(ours: ServerThread) -> None:
    with Cache(url_of(ours)) as cache:
        cache.set("k", {"a": [1, 2]})
        assert cache.get("k") == {"a": [1, 2]}
        assert cache.get("missing") is None


async def test_async_redis_backend_reads_and_writes_through_our_server(ours: ServerThread) -> None:
    async with AsyncCache(url_of(ours)) as cache:
        await cache.set("k", "v")
        assert await cache.get("k") == "v"


def test_layered_caches_invalidate_each_other_through_our_pubsub(ours: ServerThread) -> None:
    url = url_of(ours)
    with (
        Cache(backend="layered", tiers=["memory", url]) as a,
        Cache(backend="layered", tiers=["memory", url]) as b,
    ):
        assert a.backend.wait_listening()  # type: ignore[attr-defined]
        assert b.backend.wait_listening()  # type: ignore[attr-defined]
        heard = invalidations(b)
        a.set("k", 1)
        # b must have applied that message before filling, or it would drop the fresh copy.
        wait_until(lambda: invalidations(b) > heard)
        assert b.get("k") == 1
        assert l1(b).get("k") is not MISSING  # b holds a private copy now
        a.set("k", 2)
        wait_until(lambda: l1(b).get("k") is MISSING)
        assert b.get("k") == 2
        # Own messages are ignored: a's write keeps a's copy.
        assert l1(a).get("k") is not MISSING


async def test_async_layered_caches_invalidate_each_other(ours: ServerThread) -> None:
    url = url_of(ours)
    async with (
        AsyncCache(backend="layered", tiers=["memory", url]) as a,
        AsyncCache(backend="layered", tiers=["memory", url]) as b,
    ):
        assert await a.backend.wait_listening()  # type: ignore[attr-defined]
        assert await b.backend.wait_listening()  # type: ignore[attr-defined]
        heard = (await b.stats()).backend["invalidation"]["received"]
        await a.set("k", "v1")
        while (await b.stats()).backend["invalidation"]["received"] == heard:
            await asyncio.sleep(0.002)
        assert await b.get("k") == "v1"
        assert l1(b).get("k") is not MISSING
        await a.set("k", "v2")
        await async_wait_until(lambda: l1(b).get("k") is MISSING)
        assert await b.get("k") == "v2"


_CHILD = r"""
import sys, time
import stratacache as sc

cache = sc.Cache(backend="layered", tiers=["memory://", sys.argv[1]])
assert cache.backend.wait_listening(10)
assert cache.get("shared") == "v1"
assert cache.backend.tiers[0].store.get("shared") is not sc.MISSING  # held in this process's L1
print("ready", flush=True)
while cache.get("shared") != "v2":
    time.sleep(0.0002)
print(time.monotonic(), flush=True)
cache.close()
"""


def test_two_processes_see_each_others_writes_through_our_server(ours: ServerThread, tmp_path: Path) -> None:
    url = url_of(ours)
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    with Cache(backend="layered", tiers=["memory://", url]) as cache:
        assert cache.backend.wait_listening()  # type: ignore[attr-defined]
        cache.set("shared", "v1")
        with subprocess.Popen(
            [sys.executable, str(script), url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as child:
            try:
                assert child.stdout is not None
                assert child.stderr is not None
                assert child.stdout.readline().strip() == "ready", child.stderr.read()
                started = time.monotonic()  # CLOCK_MONOTONIC is one clock for every process
                cache.set("shared", "v2")
                delay = float(child.stdout.readline()) - started
                assert child.wait(10) == 0, child.stderr.read()
            finally:
                if child.poll() is None:
                    child.kill()
    assert 0 <= delay < 0.1, delay


def invalidations(cache: Cache) -> int:
    """How many invalidation messages from other caches ``cache`` has applied."""
    return int(cache.stats().backend["invalidation"]["received"])


async def async_wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.002)
