"""The library's ``redis+cluster://`` backend over three ``stratacache serve`` cluster nodes:
the whole public conformance suite, in both flavours (the same suite every backend passes)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from clusternodes import HOST, node_configs, start_threads, stop_threads

from stratacache import AsyncCache, Cache
from stratacache.server import ServerThread
from stratacache.testing import AsyncCacheConformance, CacheConformance, RealClock


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    """Three cluster nodes on threads; the URL naming them all."""
    threads: list[ServerThread] = start_threads(node_configs())
    yield "redis+cluster://" + ",".join(f"{HOST}:{node.port}" for node in threads) + "/"
    stop_threads(threads)


@pytest.fixture
def cache_clock() -> RealClock:
    """A server's clock cannot be driven: real time."""
    return RealClock()


class TestAsyncClusterConformance(AsyncCacheConformance):
    """AsyncCache over ``redis+cluster://`` on our three nodes."""

    @pytest.fixture
    async def acache(self, cluster_url: str) -> AsyncIterator[AsyncCache]:
        async with AsyncCache(backend=cluster_url) as cache:
            await cache.clear()
            assert cache.backend.is_cluster  # type: ignore[attr-defined]
            yield cache


class TestSyncClusterConformance(CacheConformance):
    """Cache over ``redis+cluster://`` on our three nodes."""

    @pytest.fixture
    def cache(self, cluster_url: str) -> Iterator[Cache]:
        with Cache(backend=cluster_url) as cache:
            cache.clear()
            yield cache
