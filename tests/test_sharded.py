"""The sharded backend: ring placement, one batch per node, failover and rejoin on real Redis servers."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest

from servers import RedisServer, RedisServerFactory
from stratacache import AsyncCache, BackendUnavailable, Cache, ConfigurationError, MemoryBackend
from stratacache._sync.backends.sharded import ShardedBackend
from stratacache.testing import FakeClock


def mget_calls(server: RedisServer) -> int:
    info = server.command("INFO", "commandstats")
    assert isinstance(info, bytes)
    for line in info.decode().splitlines():
        if line.startswith("cmdstat_mget:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def memory_nodes(count: int = 3, clock: FakeClock | None = None) -> dict[str, MemoryBackend]:
    return {f"m{i}": MemoryBackend(clock=clock) for i in range(count)}


# ------------------------------------------------------------------------------ placement


def test_keys_spread_over_every_node_and_placement_is_stable() -> None:
    nodes = memory_nodes()
    with Cache(ShardedBackend(nodes)) as cache:
        cache.set_many({f"k{i}": i for i in range(3000)})
        sizes = [len(node.store) for node in nodes.values()]
        assert sum(sizes) == 3000
        assert min(sizes) > 700  # ketama with 160 points per node: within ~25% of a third
    # Another instance (another process) with the same ids puts every key in the same place.
    first = ShardedBackend(memory_nodes())
    second = ShardedBackend(memory_nodes())
    assert all(first.node_for(f"k{i}") == second.node_for(f"k{i}") for i in range(1000))


def test_weights_give_a_larger_share() -> None:
    nodes = memory_nodes(2)
    with Cache(ShardedBackend(nodes, weights={"m0": 3})) as cache:
        cache.set_many({f"k{i}": i for i in range(4000)})
        assert len(nodes["m0"].store) > 2 * len(nodes["m1"].store)


def test_batches_are_one_per_node(redis_trio: Any) -> None:
    for server in redis_trio:
        server.flush()
        server.command("CONFIG", "RESETSTAT")
    with Cache("sharded", nodes=[server.url for server in redis_trio]) as cache:
        keys = [f"user:{i}" for i in range(300)]
        cache.set_many(dict.fromkeys(keys, 1))
        assert len(cache.get_many(keys)) == 300
        assert [mget_calls(server) for server in redis_trio] == [1, 1, 1]
        assert cache.delete_pattern("user:1*") == 111  # fans out to every node
        cache.clear()
        assert cache.get_many(keys) == {}


def test_url_form(redis_trio: Any) -> None:
    url = "sharded://?" + "&".join(f"node={quote(server.url, safe='')}" for server in redis_trio)
    with Cache(url + "&failure_threshold=3&dead_retry=2&namespace=app") as cache:
        cache.set("k", 1)
        assert cache.get("k") == 1
        assert cache.namespace == "app"
        assert "sharded" in cache.backend.describe()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nodes": ["memory"]}, "at least two nodes"),
        ({"nodes": "memory"}, "list or mapping"),
        ({"nodes": 5}, "nodes"),
        ({"nodes": ["memory://", "memory://"]}, "given twice"),
        ({"nodes": ["memory://?namespace=x", "null://"]}, "cache options"),
        ({"nodes": ["memory://", "bogus://"]}, "node 1"),
        ({"nodes": {"a": "memory", "b": "null"}, "weights": {"c": 2}}, "no node has the id 'c'"),
        ({"nodes": {"a": "memory", "b": "null"}, "weights": {"a": 0}}, "positive"),
        ({"nodes": {"a": "memory", "b": "null"}, "failure_threshold": 0}, "failure_threshold"),
    ],
)
def test_bad_configuration_names_the_fault(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Cache("sharded", **kwargs)


def test_bad_url_parameters() -> None:
    with pytest.raises(ConfigurationError, match="nodes"):
        Cache("sharded://?node=memory://&nodes=memory://")
    with pytest.raises(ConfigurationError, match="weights"):
        Cache("sharded://?node=memory://&node=null://&weights=memory://")
    with pytest.raises(ConfigurationError, match="no host"):
        Cache("sharded://somehost?node=memory://")


def test_mixed_flavours_are_refused() -> None:
    from stratacache import AsyncMemoryBackend

    with pytest.raises(ConfigurationError, match="other flavour"):
        Cache("sharded", nodes=[AsyncMemoryBackend(), MemoryBackend()])


# ------------------------------------------------------------------------------ failure and rejoin


def test_a_stopped_node_is_routed_around_and_rejoins(redis_server_factory: RedisServerFactory) -> None:
    servers = [redis_server_factory() for _ in range(3)]
    urls = [f"{server.url}?timeout=0.5&connect_timeout=0.5&retries=0" for server in servers]
    with Cache("sharded", nodes=urls, failure_threshold=2, dead_retry=1.0) as cache:
        keys = [f"k{i}" for i in range(300)]
        cache.set_many(dict.fromkeys(keys, 1))
        victim = servers[1]
        victim_url = urls[1]
        backend = cache.backend
        assert isinstance(backend, ShardedBackend)
        on_victim = [key for key in keys if backend.node_for(key) == victim_url]
        others = [key for key in keys if backend.node_for(key) != victim_url]
        assert on_victim
        assert others
        victim.kill()
        # Keys of the live nodes never notice.
        assert all(cache.get(key) == 1 for key in others)
        # The victim's keys: failures until it is marked down, then its successor serves them.
        failed: list[str] = []
        started = time.monotonic()
        for key in on_victim:
            try:
                cache.set(key, 2)
            except BackendUnavailable:
                failed.append(key)
        assert len(failed) <= 2  # failure_threshold, not one timeout per call
        assert time.monotonic() - started < 3
        assert all(cache.get(key) == 2 for key in on_victim if key not in failed)
        stats = cache.stats().backend
        assert stats["nodes"][victim_url] == "dead"
        assert stats["live_nodes"] == 2
        victim.restart()
        time.sleep(1.1)  # dead_retry: the next call routed to it is its probe
        assert cache.ping() is True
        assert cache.stats().backend["nodes"][victim_url] == "alive"
        assert backend.node_for(on_victim[0]) == victim_url
        cache.set(on_victim[0], 3)
        assert victim.command("EXISTS", on_victim[0]) == 1


def test_every_node_down_is_unavailable(redis_server_factory: RedisServerFactory) -> None:
    servers = [redis_server_factory() for _ in range(2)]
    urls = [f"{server.url}?timeout=0.3&connect_timeout=0.3&retries=0" for server in servers]
    with Cache("sharded", nodes=urls, failure_threshold=1, dead_retry=30) as cache:
        for server in servers:
            server.kill()
        with pytest.raises(BackendUnavailable):
            cache.set("a", 1)
        with pytest.raises(BackendUnavailable):
            cache.set("b", 1)
        with pytest.raises(BackendUnavailable, match=r"every node is down|no node answered"):
            cache.get("c")
        assert not cache.health().healthy
        with pytest.raises(BackendUnavailable):
            cache.clear()


def test_memory_nodes_share_the_fake_clock() -> None:
    clock = FakeClock()
    with Cache(ShardedBackend(memory_nodes(clock=clock), clock=clock)) as cache:
        cache.set("k", 1, ttl=10)
        clock.advance(11)
        assert cache.get("k") is None


async def test_async_flavour(redis_trio: Any) -> None:
    for server in redis_trio:
        server.flush()
    async with AsyncCache("sharded", nodes=[server.url for server in redis_trio]) as cache:
        await cache.set_many({f"k{i}": i for i in range(50)})
        assert len(await cache.get_many([f"k{i}" for i in range(50)])) == 50
        assert await cache.incr("n", 5) == 5
        assert cache.backend.capabilities.delete_pattern


def test_node_ids_of_urls_hide_passwords_and_keep_placement(redis_trio: Any) -> None:
    # A URL without a password is its own id (the ring, and so every key's place, is as
    # before); with one, the id shows it as ***, so rotating a password moves no key.
    plain = [server.url for server in redis_trio]
    with_password = [f"redis://:old%2Fpw@127.0.0.1:{server.port}/0" for server in redis_trio]
    rotated = [url.replace("old%2Fpw", "new-pw") for url in with_password]
    rings = [
        ShardedBackend(plain),
        ShardedBackend(with_password),
        ShardedBackend(rotated),
        ShardedBackend(with_password, weights={with_password[0]: 5}),
    ]
    try:
        unchanged, protected, rotated_ring, weighted = rings
        assert unchanged.node_states().keys() == set(plain)
        ids = list(protected.node_states())
        assert ids == [f"redis://:***@127.0.0.1:{server.port}/0" for server in redis_trio]
        assert all(protected.node_for(f"k{i}") == rotated_ring.node_for(f"k{i}") for i in range(500))
        assert "old" not in repr(protected)
        assert "pw" not in protected.describe()
        share = sum(weighted.node_for(f"k{i}") == ids[0] for i in range(3000))
        assert share > 1500  # weight 5 of 7: the weight keyed by the full URL found its node
    finally:
        for ring in rings:
            ring.close()
