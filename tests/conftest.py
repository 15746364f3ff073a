"""One parametrized backend fixture for the whole suite, plus the real-server fixtures.

``backend_name`` runs every test that asks for ``cache``/``acache`` once per backend.
Backends that need a server get it from the fixtures in ``servers.py`` (real processes on
free loopback ports, never mocks).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from servers import (  # noqa: F401 - fixtures re-exported for every test module
    memcached_pair,
    memcached_server,
    memcached_server_factory,
    memcached_url,
    redis_cluster,
    redis_cluster_factory,
    redis_password_server,
    redis_sentinel,
    redis_sentinel_factory,
    redis_server,
    redis_server_factory,
    redis_tls_server,
    redis_trio,
)
from stratacache import AsyncCache, AsyncMemoryBackend, Cache, MemoryBackend
from stratacache.testing import FakeClock, RealClock

# One directory for the file backend's conformance runs (each test clears the cache first).
_FILE_DIR = tempfile.mkdtemp(prefix="stratacache-conformance-")
atexit.register(shutil.rmtree, _FILE_DIR, True)

# name -> keyword arguments for Cache/AsyncCache; "clock" is filled in per test.
BACKENDS: dict[str, dict[str, Any] | Callable[[Any], dict[str, Any]]] = {
    "memory": {"backend": "memory", "clock": True},
    # Every eviction policy passes the whole suite (memory's default is tinylfu).
    "memory-lru": {"backend": "memory", "clock": True, "policy": "lru"},
    "memory-lfu": {"backend": "memory", "clock": True, "policy": "lfu"},
    "memory-fifo": {"backend": "memory", "clock": True, "policy": "fifo"},
    "memory-random": {"backend": "memory", "clock": True, "policy": "random"},
    "memory-bytes": {"backend": "memory", "clock": True, "max_bytes": 64 * 2**20, "max_entries": None},
    "memory-msgpack": {"backend": "memory", "clock": True, "serializer": "msgpack"},
    "null": {"backend": "null"},
    "file": {"backend": "file", "clock": True, "directory": _FILE_DIR},
    # Three memory nodes on a ring, sharing the test's clock.
    "sharded-memory": lambda clock: {
        "backend": "sharded",
        "nodes": {f"m{i}": AsyncMemoryBackend(clock=clock) for i in range(3)},
    },
}
# The same in the sync flavour (a sharded cache's nodes are backends of its own flavour).
SYNC_OVERRIDES: dict[str, Callable[[Any], dict[str, Any]]] = {
    "sharded-memory": lambda clock: {
        "backend": "sharded",
        "nodes": {f"m{i}": MemoryBackend(clock=clock) for i in range(3)},
    },
}

# Backends on a real server: name -> (the server fixture, its keyword arguments from the server).
# The server fixture starts only when a test of that backend runs; the clock is real.
SERVER_BACKENDS: dict[str, tuple[str, Callable[[Any], dict[str, Any]]]] = {
    "redis": ("redis_server", lambda server: {"backend": server.url}),
    "redis-password": ("redis_password_server", lambda server: {"backend": server.url}),
    "rediss": ("redis_tls_server", lambda server: {"backend": server.tls_url}),
    "redis-cluster": ("redis_cluster", lambda cluster: {"backend": cluster.url}),
    "redis-sentinel": ("redis_sentinel", lambda sentinels: {"backend": sentinels.url}),
    "memcached": (
        "memcached_server",
        lambda server: {"backend": server.url, "max_value_size": server.item_size_limit},
    ),
    "memcached-2": (
        "memcached_pair",
        lambda pair: {"backend": memcached_url(pair), "max_value_size": pair[0].item_size_limit},
    ),
    "sharded-redis": (
        "redis_trio",
        lambda trio: {"backend": "sharded", "nodes": [server.url for server in trio]},
    ),
    # Our own server (`stratacache serve`) on a thread of the test process.
    "stratacache-server": (
        "stratacache_server",
        lambda running: {"backend": f"redis://127.0.0.1:{running.port}/0"},
    ),
    # The same server's Memcached listener (memcached-port), through the memcached backend.
    "stratacache-memcached": (
        "stratacache_memcached",
        lambda running: {
            "backend": f"memcached://127.0.0.1:{running.server.extra['memcache'].ports[0]}",
            "max_value_size": running.config.memcached_max_item_size,
        },
    ),
}


@pytest.fixture(scope="session", autouse=True)
def _scratch_session_cwd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The whole session runs in a scratch directory: a server started without ``dir`` by a
    module- or session-scoped fixture writes ``./dump.scs`` (its default save schedule) at
    shutdown, which must land neither in the checkout nor where a later test loads it."""
    previous = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("session-cwd"))
    yield
    os.chdir(previous)


@pytest.fixture(scope="session")
def stratacache_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``stratacache serve`` on a thread, shared by the session (its port is the OS's pick)."""
    from stratacache.server import ServerConfig, ServerThread

    # A scratch dir and no save schedule: no dump.scs read from or left in the working dir.
    config = ServerConfig(port=0, save="", dir=str(tmp_path_factory.mktemp("conformance-server")))
    with ServerThread(config) as running:
        yield running


@pytest.fixture
def stratacache_server(stratacache_server_session: Any) -> Any:
    """The session's ``stratacache serve``, every database flushed."""
    running = stratacache_server_session
    for db in running.server.databases:
        running.call(db.flush)
    return running


@pytest.fixture(scope="session")
def stratacache_memcached_session() -> Iterator[Any]:
    """``stratacache serve`` with a Memcached listener on a thread, shared by the session."""
    from servers import DEFAULT_MEMCACHED_ITEM_SIZE_LIMIT, free_port
    from stratacache.server import ServerConfig, ServerThread

    # The item size limit of the real memcached fixtures (-I), so the same values fit.
    config = ServerConfig(
        port=0, memcached_port=free_port(), memcached_max_item_size=DEFAULT_MEMCACHED_ITEM_SIZE_LIMIT
    )
    with ServerThread(config) as running:
        yield running


@pytest.fixture
def stratacache_memcached(stratacache_memcached_session: Any) -> Any:
    """The session's ``stratacache serve`` with a Memcached listener, every database flushed."""
    running = stratacache_memcached_session
    for db in running.server.databases:
        running.call(db.flush)
    return running


def cache_kwargs(
    name: str, clock: Any, request: pytest.FixtureRequest, *, asynchronous: bool = True
) -> dict[str, Any]:
    """The keyword arguments that build the cache called ``name``."""
    if name in SERVER_BACKENDS:
        fixture, make = SERVER_BACKENDS[name]
        return make(request.getfixturevalue(fixture))
    entry = BACKENDS[name] if asynchronous else SYNC_OVERRIDES.get(name, BACKENDS[name])
    if callable(entry):
        return entry(clock)
    kwargs = dict(entry)
    if kwargs.pop("clock", False):
        kwargs["clock"] = clock
    return kwargs


@pytest.fixture
def no_janitor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory stores made in the test are never swept by the process's janitor thread.

    The janitor runs on real time, whatever clock a store has: a test that checks a counter
    at an exact moment (or compares two twins step by step) must not see it reclaim expired
    entries in between. Expiry on touch and on write still happens; the test decides.
    """
    from stratacache._io.janitor import janitor

    monkeypatch.setattr(janitor, "watch", lambda store: None)


@pytest.fixture
def cache_clock(request: pytest.FixtureRequest) -> FakeClock | RealClock:
    """The clock every fake-clock backend in a test shares; a real one for server backends."""
    if "backend_name" in request.fixturenames and request.getfixturevalue("backend_name") in SERVER_BACKENDS:
        return RealClock()
    return FakeClock()


@pytest.fixture(params=sorted(BACKENDS.keys() | SERVER_BACKENDS.keys()))
def backend_name(request: pytest.FixtureRequest) -> str:
    """Each backend in turn."""
    name: str = request.param
    return name


@pytest.fixture
def cache(backend_name: str, cache_clock: Any, request: pytest.FixtureRequest) -> Iterator[Cache]:
    """A sync cache over the backend under test, emptied first (servers are shared), closed afterwards."""
    with Cache(**cache_kwargs(backend_name, cache_clock, request, asynchronous=False)) as c:
        c.clear()
        yield c


@pytest.fixture
async def acache(
    backend_name: str, cache_clock: Any, request: pytest.FixtureRequest
) -> AsyncIterator[AsyncCache]:
    """An async cache over the backend under test, emptied first, closed afterwards."""
    async with AsyncCache(**cache_kwargs(backend_name, cache_clock, request)) as c:
        await c.clear()
        yield c
