"""``cache.keys()`` / ``cache.iter_keys()`` beyond the conformance suite: the file backend's
paged walk, a layered cache's source of truth, sharded and Redis failures, hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import stratacache as sc
import stratacache._async.backends.file as async_file
import stratacache._sync.backends.file as sync_file
from servers import free_port
from stratacache.testing import FakeClock


@pytest.mark.parametrize("page", [1, 3, 1000])
def test_file_walk_pages_see_each_key_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: int
) -> None:
    monkeypatch.setattr(sync_file, "ITER_KEYS_PAGE", page)
    names = [f"k{i:02}" for i in range(10)]
    clock = FakeClock()
    with sc.Cache(sc.FileBackend(str(tmp_path), clock=clock), namespace="f") as cache:
        cache.set_many(dict.fromkeys(names, 1))
        cache.set("k-gone", 1, ttl=1)
        cache.set("other", 1)
        clock.advance(2)
        assert list(cache.iter_keys("k*")) == names  # the index's key order, no expired key
        assert cache.keys("k0?") == names


async def test_async_file_walk_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(async_file, "ITER_KEYS_PAGE", 2)
    async with sc.AsyncCache(f"file://{tmp_path}") as cache:
        await cache.set_many({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})
        assert [key async for key in cache.iter_keys()] == ["a", "b", "c", "d", "e"]


def test_layered_lists_the_source_of_truth(tmp_path: Path) -> None:
    l2 = sc.FileBackend(str(tmp_path))
    with sc.Cache(sc.LayeredBackend(tiers=[sc.MemoryBackend(), l2])) as cache:
        cache.set("both", 1)
        with sc.Cache(sc.FileBackend(str(tmp_path))) as direct:
            direct.set("only-l2", 2)  # never copied to the memory tier
        assert cache.keys() == ["both", "only-l2"]


def test_unreachable_redis_is_backend_unavailable() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0?connect_timeout=1&retries=0"
    with sc.Cache(url) as cache:
        with pytest.raises(sc.BackendUnavailable, match=r"iter_keys\(\)"):
            cache.keys()
        keys = cache.iter_keys()
        with pytest.raises(sc.BackendUnavailable, match=r"iter_keys\(\)"):
            next(keys)


async def test_unreachable_redis_async_and_hooks() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0?connect_timeout=1&retries=0"
    seen: list[tuple[str, Any]] = []
    async with sc.AsyncCache(url) as cache:
        cache.hooks.add("on_error", lambda event: seen.append((event.operation, event.key)))
        with pytest.raises(sc.BackendUnavailable):
            [key async for key in cache.iter_keys("user:*")]
        with pytest.raises(sc.BackendUnavailable):
            await cache.keys("k*")
    assert seen == [("iter_keys", "user:*"), ("keys", "k*")]


def test_sharded_with_a_dead_node_raises_then_skips_it() -> None:
    live = sc.MemoryBackend()
    sc.Cache(live).set("a", 1)  # straight onto the live node, wherever the ring sends "a"
    dead = sc.RedisBackend(port=free_port(), connect_timeout=1, retries=0)
    with sc.Cache(sc.ShardedBackend(nodes={"live": live, "dead": dead}, failure_threshold=1)) as cache:
        with pytest.raises(sc.BackendUnavailable):
            cache.keys()
        # The failure marked the node down: like delete_pattern, the walk now skips it.
        assert cache.keys() == ["a"]
