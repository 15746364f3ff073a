"""One parametrized backend fixture for the whole suite, plus the real-server fixtures.

``backend_name`` runs every test that asks for ``cache``/``acache`` once per backend.
Backends that need a server get it from the fixtures in ``servers.py`` (real processes on
free loopback ports, never mocks).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from servers import (  # noqa: F401 - fixtures re-exported for every test module
    memcached_server,
    memcached_server_factory,
    redis_server,
    redis_server_factory,
)
from stratacache import AsyncCache, Cache
from stratacache.testing import FakeClock

# name -> keyword arguments for Cache/AsyncCache; "clock" is filled in per test.
BACKENDS: dict[str, dict[str, Any]] = {
    "memory": {"backend": "memory", "clock": True},
    # Every eviction policy passes the whole suite (memory's default is tinylfu).
    "memory-lru": {"backend": "memory", "clock": True, "policy": "lru"},
    "memory-lfu": {"backend": "memory", "clock": True, "policy": "lfu"},
    "memory-fifo": {"backend": "memory", "clock": True, "policy": "fifo"},
    "memory-random": {"backend": "memory", "clock": True, "policy": "random"},
    "memory-bytes": {"backend": "memory", "clock": True, "max_bytes": 64 * 2**20, "max_entries": None},
    "memory-msgpack": {"backend": "memory", "clock": True, "serializer": "msgpack"},
    "null": {"backend": "null"},
}


def cache_kwargs(name: str, clock: FakeClock) -> dict[str, Any]:
    """The keyword arguments that build the cache called ``name``."""
    kwargs = dict(BACKENDS[name])
    if kwargs.pop("clock", False):
        kwargs["clock"] = clock
    return kwargs


@pytest.fixture
def cache_clock() -> FakeClock:
    """The clock every fake-clock backend in a test shares."""
    return FakeClock()


@pytest.fixture(params=sorted(BACKENDS))
def backend_name(request: pytest.FixtureRequest) -> str:
    """Each backend in turn."""
    name: str = request.param
    return name


@pytest.fixture
def cache(backend_name: str, cache_clock: FakeClock) -> Iterator[Cache]:
    """A sync cache over the backend under test, closed afterwards."""
    with Cache(**cache_kwargs(backend_name, cache_clock)) as c:
        yield c


@pytest.fixture
async def acache(backend_name: str, cache_clock: FakeClock) -> AsyncIterator[AsyncCache]:
    """An async cache over the backend under test, closed afterwards."""
    async with AsyncCache(**cache_kwargs(backend_name, cache_clock)) as c:
        yield c
