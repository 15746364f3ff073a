"""The layered backend: tiers, fills, write-through, invalidation, the fill race, fallback.

Conformance runs on memory->memory (fake clock), memory->redis and three tiers, and on
memory->memcached / memory->file when those backends are registered. Everything that
involves Redis uses a real ``redis-server`` from ``servers.py``; the two-process test runs
a second real OS process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from servers import DEFAULT_MEMCACHED_ITEM_SIZE_LIMIT, MemcachedServer, RedisServer, RedisServerFactory
from stratacache import (
    MISSING,
    AsyncCache,
    BackendUnavailable,
    Cache,
    CacheTimeout,
    ConfigurationError,
    WrongType,
)
from stratacache._async.backends.base import AsyncBackend
from stratacache._async.backends.layered import AsyncLayeredBackend
from stratacache._async.backends.memory import AsyncMemoryBackend
from stratacache._config import parse_env, parse_mapping, parse_url
from stratacache._exceptions import CacheError
from stratacache._registry import load_backend
from stratacache._sync.backends.base import Backend
from stratacache._sync.backends.layered import LayeredBackend
from stratacache._sync.backends.memory import MemoryBackend
from stratacache.testing import AsyncCacheConformance, CacheConformance, FakeClock, RealClock

# ---------------------------------------------------------------------------------------- helpers


def _wrapper_class(base: type, asynchronous: bool) -> type:
    """A backend that delegates every method to ``inner``, with hooks to fail or pause.

    ``down``: raise ``error`` (BackendUnavailable by default) from every call.
    ``before[name]`` / ``after[name]``: called (and awaited in the async flavour) around
    the inner call; the pause tests put an event wait there. ``calls`` counts calls.
    Unknown attributes (``client``, ``store``) are the inner backend's.
    """

    def make(method: str) -> Callable[..., Any]:
        if asynchronous:

            async def call(self: Any, *args: Any) -> Any:
                await self._hook("before", method)
                result = await getattr(self.inner, method)(*args)
                await self._hook("after", method)
                return result

        else:

            def call(self: Any, *args: Any) -> Any:
                self._hook_sync("before", method)
                result = getattr(self.inner, method)(*args)
                self._hook_sync("after", method)
                return result

        call.__name__ = method
        return call

    def __init__(self: Any, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.capabilities = inner.capabilities
        self.down = False
        self.error: CacheError = BackendUnavailable("tier is down (test)")
        self.before: dict[str, Any] = {}
        self.after: dict[str, Any] = {}
        self.calls: dict[str, int] = {}
        self.namespaces: list[str] = []

    def check(self: Any, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        if self.down:
            raise self.error

    async def _hook(self: Any, where: str, method: str) -> None:
        if where == "before":
            check(self, method)
        hook = getattr(self, where).pop(method, None)
        if hook is not None:
            await hook()

    def _hook_sync(self: Any, where: str, method: str) -> None:
        if where == "before":
            check(self, method)
        hook = getattr(self, where).pop(method, None)
        if hook is not None:
            hook()

    def attach_namespace(self: Any, prefix: str) -> None:
        self.namespaces.append(prefix)
        self.inner.attach_namespace(prefix)

    def describe(self: Any) -> str:
        return "wrapped " + self.inner.describe()

    def __getattr__(self: Any, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    namespace: dict[str, Any] = {
        "__init__": __init__,
        "_hook": _hook,
        "_hook_sync": _hook_sync,
        "attach_namespace": attach_namespace,
        "describe": describe,
        "__getattr__": __getattr__,
    }
    # Every operation of the contract, the optional ones with base-class defaults included.
    skip = {"describe", "attach_namespace", "attach_codec"}
    methods = {n for n, m in vars(base).items() if callable(m) and not n.startswith("_") and n not in skip}
    for method in methods:
        namespace[method] = make(method)
    return type("Async" + "Wrapped" if asynchronous else "Wrapped", (base,), namespace)


AsyncWrapped = _wrapper_class(AsyncBackend, True)
Wrapped = _wrapper_class(Backend, False)


def l1(cache: Cache | AsyncCache) -> Any:
    """The MemoryStore of the top tier (unwrapped), to look at what L1 holds."""
    tier = cache.backend.tiers[0]  # type: ignore[attr-defined]
    return getattr(tier, "inner", tier).store


def invalidation(cache: Cache) -> dict[str, Any]:
    details: dict[str, Any] = cache.stats().backend["invalidation"]
    return details


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.002)


async def async_wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.002)


def registered(name: str) -> bool:
    try:
        load_backend(name, asynchronous=False)
    except (ConfigurationError, ModuleNotFoundError, ImportError):
        return False
    return True


def memcached_tier(server: MemcachedServer) -> dict[str, Any]:
    """A Memcached tier that accepts values as large as the test server does (``-I``)."""
    return {"url": server.url, "max_value_size": DEFAULT_MEMCACHED_ITEM_SIZE_LIMIT}


def redis_tier(server: RedisServer, **options: Any) -> dict[str, Any]:
    """A Redis tier as a dict, with short timeouts for the fault tests."""
    return {"url": server.url, **options}


# ------------------------------------------------------------------------------- conformance


class TestAsyncMemoryOverMemory(AsyncCacheConformance):
    """memory -> memory on a fake clock (stores objects: no serializer)."""

    @pytest.fixture
    def cache_clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    async def acache(self, cache_clock: FakeClock) -> AsyncIterator[AsyncCache]:
        tiers = [AsyncMemoryBackend(clock=cache_clock), AsyncMemoryBackend(clock=cache_clock)]
        async with AsyncCache(AsyncLayeredBackend(tiers, clock=cache_clock)) as cache:
            yield cache


class TestSyncMemoryOverMemory(CacheConformance):
    """memory -> memory on a fake clock, sync."""

    @pytest.fixture
    def cache_clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def cache(self, cache_clock: FakeClock) -> Iterator[Cache]:
        tiers = [MemoryBackend(clock=cache_clock), MemoryBackend(clock=cache_clock)]
        with Cache(LayeredBackend(tiers, clock=cache_clock)) as cache:
            yield cache


class TestAsyncMemoryOverRedis(AsyncCacheConformance):
    """memory -> redis (the listener task runs)."""

    @pytest.fixture
    def cache_clock(self) -> RealClock:
        return RealClock()

    @pytest.fixture
    async def acache(self, redis_server: RedisServer) -> AsyncIterator[AsyncCache]:
        redis_server.flush()
        async with AsyncCache(backend="layered", tiers=["memory://", redis_server.url]) as cache:
            assert await cache.backend.wait_listening()  # type: ignore[attr-defined]
            yield cache


class TestSyncMemoryOverRedis(CacheConformance):
    """memory -> redis, sync (the listener thread runs)."""

    @pytest.fixture
    def cache_clock(self) -> RealClock:
        return RealClock()

    @pytest.fixture
    def cache(self, redis_server: RedisServer) -> Iterator[Cache]:
        redis_server.flush()
        with Cache(backend="layered", tiers=["memory://", redis_server.url]) as cache:
            assert cache.backend.wait_listening()  # type: ignore[attr-defined]
            yield cache


class TestSyncThreeTiers(CacheConformance):
    """memory -> memory -> redis: fills go into both upper tiers."""

    @pytest.fixture
    def cache_clock(self) -> RealClock:
        return RealClock()

    @pytest.fixture
    def cache(self, redis_server: RedisServer) -> Iterator[Cache]:
        redis_server.flush()
        url = "layered://?tier=memory://&tier=memory://%3Fmax_entries%3D100000&tier=" + _quote(
            redis_server.url
        )
        with Cache(url) as cache:
            assert cache.backend.wait_listening()  # type: ignore[attr-defined]
            yield cache


class TestAsyncThreeTiers(AsyncCacheConformance):
    """memory -> memory -> redis, async."""

    @pytest.fixture
    def cache_clock(self) -> RealClock:
        return RealClock()

    @pytest.fixture
    async def acache(self, redis_server: RedisServer) -> AsyncIterator[AsyncCache]:
        redis_server.flush()
        async with AsyncCache(backend="layered", tiers=["memory", "memory", redis_server.url]) as cache:
            assert await cache.backend.wait_listening()  # type: ignore[attr-defined]
            yield cache


@pytest.mark.skipif(not registered("memcached"), reason="the memcached backend is not registered yet")
class TestSyncMemoryOverMemcached(CacheConformance):
    """memory -> memcached (no channel: l1_ttl is the staleness bound)."""

    @pytest.fixture
    def cache_clock(self) -> RealClock:
        return RealClock()

    @pytest.fixture
    def cache(self, memcached_server: MemcachedServer) -> Iterator[Cache]:
        memcached_server.flush()
        with Cache(backend="layered", tiers=["memory://", memcached_tier(memcached_server)]) as cache:
            yield cache


@pytest.mark.skipif(not registered("memcached"), reason="the memcached backend is not registered yet")
class TestAsyncMemoryOverMemcached(AsyncCacheConformance):
    """memory -> memcached, async."""

    @pytest.fixture
    def cache_clock(self) -> RealClock:
        return RealClock()

    @pytest.fixture
    async def acache(self, memcached_server: MemcachedServer) -> AsyncIterator[AsyncCache]:
        memcached_server.flush()
        async with AsyncCache(
            backend="layered", tiers=["memory://", memcached_tier(memcached_server)]
        ) as cache:
            yield cache


@pytest.mark.skipif(not registered("file"), reason="the file backend is not registered yet")
class TestSyncMemoryOverFile(CacheConformance):
    """memory -> file."""

    @pytest.fixture
    def cache_clock(self) -> RealClock:
        return RealClock()

    @pytest.fixture
    def cache(self, tmp_path: Path) -> Iterator[Cache]:
        with Cache(backend="layered", tiers=["memory://", f"file://{tmp_path}"]) as cache:
            yield cache


@pytest.mark.skipif(not registered("file"), reason="the file backend is not registered yet")
class TestAsyncMemoryOverFile(AsyncCacheConformance):
    """memory -> file, async."""

    @pytest.fixture
    def cache_clock(self) -> RealClock:
        return RealClock()

    @pytest.fixture
    async def acache(self, tmp_path: Path) -> AsyncIterator[AsyncCache]:
        async with AsyncCache(backend="layered", tiers=["memory://", f"file://{tmp_path}"]) as cache:
            yield cache


def _quote(url: str) -> str:
    from urllib.parse import quote

    return quote(url, safe="")


# ------------------------------------------------------------------------- configuration forms


def test_url_form_parses_repeated_tiers_and_options() -> None:
    config = parse_url(
        "layered://?tier=memory://%3Fmax_entries%3D1000&tier=redis://127.0.0.1:6379/0&l1_ttl=30"
        "&channel=inv&on_write_failure=degrade&failure_threshold=5&reset_timeout=0.5&namespace=app"
    )
    assert config.backend == "layered"
    assert config.backend_options == {
        "tiers": ["memory://?max_entries=1000", "redis://127.0.0.1:6379/0"],
        "l1_ttl": 30.0,
        "channel": "inv",
        "on_write_failure": "degrade",
        "failure_threshold": 5,
        "reset_timeout": 0.5,
    }
    assert config.cache_options == {"namespace": "app"}


def test_url_tier_keeps_its_own_percent_escapes() -> None:
    # The tier's password is "p@ss" (p%40ss inside the tier URL, p%2540ss once more outside).
    config = parse_url("layered://?tier=memory://&tier=redis%3A%2F%2F%3Ap%2540ss%40h%3A1%2F0")
    assert config.backend_options["tiers"][1] == "redis://:p%40ss@h:1/0"
    assert parse_url(config.backend_options["tiers"][1]).backend_options["password"] == "p@ss"


def test_cache_from_url_builds_the_tiers() -> None:
    with Cache("layered://?tier=memory://%3Fmax_entries%3D7&tier=memory://&l1_ttl=2&namespace=ns") as cache:
        backend = cache.backend
        assert isinstance(backend, LayeredBackend)
        assert backend.tiers[0].store.max_entries == 7  # type: ignore[attr-defined]
        assert backend.l1_ttl == 2.0
        assert cache.namespace == "ns"
        cache.set("k", 1)
        assert backend.tiers[1].store.get("ns:k") == 1  # type: ignore[attr-defined]


def test_dict_form_and_from_config() -> None:
    config = {
        "backend": "layered",
        "tiers": [{"backend": "memory", "max_entries": 50}, {"url": "memory://?max_entries=60"}],
        "l1_ttl": 1.5,
        "namespace": "app",
    }
    parsed = parse_mapping(config)
    assert parsed.backend_options["l1_ttl"] == 1.5
    with Cache.from_config(config) as cache:
        tiers = cache.backend.tiers  # type: ignore[attr-defined]
        assert [t.store.max_entries for t in tiers] == [50, 60]
        assert cache.namespace == "app"


def test_yaml_file_form(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "cache.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            stratacache:
              backend: layered
              l1_ttl: 10
              on_write_failure: degrade
              tiers:
                - memory://?max_entries=100
                - backend: memory
                  max_entries: 1000
            """
        )
    )
    with Cache.from_file(path) as cache:
        backend = cache.backend
        assert isinstance(backend, LayeredBackend)
        assert backend.on_write_failure == "degrade"
        assert [t.store.max_entries for t in backend.tiers] == [100, 1000]  # type: ignore[attr-defined]


def test_env_form_takes_space_separated_tiers() -> None:
    parsed = parse_env(
        {"STRATACACHE_BACKEND": "layered", "STRATACACHE_TIERS": "memory:// memory://?max_entries=9"}
    )
    assert parsed.backend_options["tiers"] == ["memory://", "memory://?max_entries=9"]


def test_keyword_form_with_backend_objects() -> None:
    top, bottom = MemoryBackend(), MemoryBackend()
    with Cache(backend="layered", tiers=[top, bottom]) as cache:
        assert cache.backend.tiers == (top, bottom)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("tiers", "match"),
    [
        (
            ["memory://?namespace=x", "memory://"],
            r"layered tier 0: cache options \(namespace\).*layered cache",
        ),
        (["memory://", {"backend": "memory", "serializer": "json"}], r"tier 1: cache options \(serializer\)"),
        (["memory://", {"url": "memory://", "default_ttl": 5, "namespace": "n"}], r"default_ttl, namespace"),
        (["memory://", "nope://x"], r"layered tier 1: unknown URL scheme 'nope'"),
        (["memory://", "nosuchbackend"], r"layered tier 1: unknown backend 'nosuchbackend'"),
        (
            ["memory://", {"backend": "memory", "bogus": 1}],
            r"tier 1: unknown configuration parameter 'bogus'",
        ),
        (["memory://", 42], r"layered tier 1: a backend is given as a URL.*not int"),
        (
            ["memory://", AsyncMemoryBackend()],
            r"tier 1: AsyncMemoryBackend is a backend of the other flavour",
        ),
        (["memory://"], r"at least two tiers, got 1"),
        ([], r"at least two tiers, got 0"),
    ],
)
def test_bad_tiers_are_refused_naming_them(tiers: Any, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        LayeredBackend(tiers)


@pytest.mark.parametrize("tiers", ["memory:// memory://", {"a": 1}, None, 3])
def test_tiers_must_be_a_list(tiers: Any) -> None:
    with pytest.raises(ConfigurationError, match="'tiers'"):
        LayeredBackend(tiers)


def test_async_flavour_refuses_sync_tiers() -> None:
    with pytest.raises(ConfigurationError, match="MemoryBackend is a backend of the other flavour"):
        AsyncLayeredBackend([MemoryBackend(), "memory"])


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"on_write_failure": "ignore"}, "on_write_failure"),
        ({"l1_ttl": 0}, "l1_ttl"),
        ({"l1_ttl": -3}, "l1_ttl"),
        ({"l1_ttl": "soon"}, "l1_ttl"),
        ({"channel": ""}, "channel"),
        ({"channel": 5}, "channel"),
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"reset_timeout": 0}, "reset_timeout"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        LayeredBackend(["memory", "memory"], **options)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("layered://host/?tier=memory://&tier=memory://", "takes no host or path"),
        ("layered://?tier=memory://", "at least two tiers, got 1"),
        ("layered://?tier=memory://&tier=memory://&l1_ttl=1&l1_ttl=2", "'l1_ttl' is given twice"),
        ("layered://?tier=memory://&tier=memory://&tiers=memory://%20memory://", "not both"),
        ("layered://?tier=memory://&tier=memory://&bogus=1", "unknown URL parameter 'bogus'"),
        ("layered://?tier=memory://&tier=memory://&on_write_failure=maybe", "on_write_failure"),
        ("memory://?tier=memory://&tier=memory://", "unknown URL parameter 'tier'"),
    ],
)
def test_bad_urls_are_refused(url: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        parse_url(url)


def test_l1_ttl_default_depends_on_the_channel(redis_server: RedisServer) -> None:
    assert LayeredBackend(["memory", "memory"]).l1_ttl == 5.0
    with Cache(backend="layered", tiers=["memory", redis_server.url]) as cache:
        assert cache.backend.l1_ttl == 60.0  # type: ignore[attr-defined]
    with Cache(backend="layered", tiers=["memory", redis_server.url], channel=None) as cache:
        assert cache.backend.l1_ttl == 5.0  # type: ignore[attr-defined]
        assert invalidation(cache)["state"] == "off (channel=None)"
    assert LayeredBackend(["memory", "memory"], l1_ttl=None).l1_ttl is None


# ------------------------------------------------------------------- reads, fills, write-through


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def two_tiers(clock: FakeClock, **options: Any) -> tuple[Cache, Any, Any]:
    """A cache over memory -> wrapped memory, and the two tiers."""
    top = MemoryBackend(clock=clock)
    bottom = Wrapped(MemoryBackend(clock=clock))
    cache = Cache(LayeredBackend([top, bottom], clock=clock, **options))
    return cache, top, bottom


def test_lower_hit_fills_upper_with_remaining_ttl(clock: FakeClock) -> None:
    cache, top, bottom = two_tiers(clock, l1_ttl=100)
    bottom.inner.store.set("k", "v", 30)
    clock.advance(10)
    assert cache.get("k") == "v"
    assert top.store.ttl("k") == pytest.approx(20)  # the entry's remaining life, not 30
    bottom.calls.clear()
    assert cache.get("k") == "v"
    assert bottom.calls == {}  # served by L1


def test_fill_is_capped_by_l1_ttl(clock: FakeClock) -> None:
    cache, top, bottom = two_tiers(clock, l1_ttl=5)
    bottom.inner.store.set("forever", 1, None)
    bottom.inner.store.set("long", 2, 60)
    assert cache.get_many(["forever", "long"]) == {"forever": 1, "long": 2}
    assert top.store.ttl("forever") == pytest.approx(5)
    assert top.store.ttl("long") == pytest.approx(5)
    clock.advance(5.1)
    assert top.store.get("forever") is MISSING
    assert cache.get("forever") == 1  # refilled from the source of truth


def test_l1_ttl_none_keeps_the_entry_ttl(clock: FakeClock) -> None:
    cache, top, bottom = two_tiers(clock, l1_ttl=None)
    bottom.inner.store.set("k", 1, None)
    cache.get("k")
    assert top.store.ttl("k") is None


def test_writes_go_to_every_tier_with_capped_ttl(clock: FakeClock) -> None:
    cache, top, bottom = two_tiers(clock, l1_ttl=5)
    cache.set("k", "v", ttl=60)
    assert top.store.ttl("k") == pytest.approx(5)
    assert bottom.inner.store.ttl("k") == pytest.approx(60)
    cache.set_many({"a": 1, "b": 2})
    assert top.store.ttl("a") == pytest.approx(5)
    assert bottom.inner.store.ttl("a") is None
    assert cache.ttl("k") == pytest.approx(60)  # the source of truth answers ttl()
    assert cache.expire("k", 100) is True
    assert top.store.ttl("k") == pytest.approx(5)
    assert bottom.inner.store.ttl("k") == pytest.approx(100)
    assert cache.expire("absent", 1) is False
    assert cache.delete("k") is True
    assert top.store.get("k") is MISSING
    assert bottom.inner.store.get("k") is MISSING
    assert cache.delete_many(["a", "b", "zz"]) == 2
    assert cache.delete_many([]) == 0
    assert top.store.get("a") is MISSING


def test_source_of_truth_is_written_first(clock: FakeClock) -> None:
    order: list[str] = []
    top = Wrapped(MemoryBackend(clock=clock))
    bottom = Wrapped(MemoryBackend(clock=clock))
    top.before["set"] = lambda: order.append("top")
    bottom.before["set"] = lambda: order.append("bottom")
    with Cache(LayeredBackend([top, bottom], clock=clock)) as cache:
        cache.set("k", 1)
    assert order == ["bottom", "top"]


def test_get_many_goes_tier_by_tier_for_missing_keys(clock: FakeClock) -> None:
    cache, top, bottom = two_tiers(clock)
    top.store.set("a", 1, None)
    bottom.inner.store.set("a", 1, None)
    bottom.inner.store.set("b", 2, None)
    bottom.calls.clear()
    got = cache.get_many(["a", "b", "c", "a"])
    assert got == {"a": 1, "b": 2}
    assert bottom.calls["get_many"] == 1
    assert top.store.get("b") == 2  # filled


def test_exists_looks_down_the_tiers(clock: FakeClock) -> None:
    cache, _top, bottom = two_tiers(clock)
    bottom.inner.store.set("low", 1, None)
    assert cache.exists("low") is True
    assert cache.exists("absent") is False


def test_atomic_operations_run_on_the_source_and_drop_copies(clock: FakeClock) -> None:
    cache, top, bottom = two_tiers(clock)
    cache.set("n", 1)
    assert top.store.get("n") == 1
    assert cache.incr("n", 5) == 6
    assert top.store.get("n") is MISSING  # the copy is dropped, the counter lives below
    assert cache.get("n") == 6
    assert cache.add("n", 0) is False
    assert cache.add("fresh", "x") is True
    assert top.store.get("fresh") is MISSING
    assert cache.get("fresh") == "x"
    cache.rpush("l", 1, 2)
    cache.sadd("s", 1)
    cache.hset("h", "f", 1)
    assert top.store.get("l") is MISSING
    assert top.store.exists("s") is False
    assert bottom.inner.store.llen("l") == 2
    assert cache.hincrby("h", "f", 2) == 3
    with pytest.raises(WrongType):
        cache.get("l")  # a collection in the source of truth is not a plain value


def test_verbs_run_on_the_source_and_keep_l1_coherent(clock: FakeClock) -> None:
    cache, top, bottom = two_tiers(clock)
    top.store.set("other", 0, None)  # the tiers' version counters now differ
    cache.set("k", "one")
    assert top.store.get("k") == "one"
    # The version is the source of truth's: L1's copy has a version of its own.
    item = cache.get_item("k")
    assert item is not None
    assert item.version == bottom.inner.store.entry_info("k").version
    assert item.version != top.store.entry_info("k").version
    assert cache.set("k", "two", if_version=item.version) is True
    assert top.store.get("k") is MISSING  # the copy is dropped, not left stale
    assert cache.get("k") == "two"
    assert cache.set("k", "three", if_version=item.version) is False
    assert cache.get("k") == "two"
    assert top.store.get("k") == "two"  # filled again by the read
    assert cache.replace("k", "four") is True
    assert top.store.get("k") is MISSING
    assert cache.get("k") == "four"
    assert cache.pull("k") == "four"
    assert (top.store.get("k"), bottom.inner.store.get("k")) == (MISSING, MISSING)
    assert cache.get("k") is None
    cache.set("lease", "token")
    lease = cache.get_item("lease")
    assert lease is not None
    assert cache.delete("lease", if_version=lease.version) is True
    assert (top.store.get("lease"), cache.get("lease")) == (MISSING, None)


def test_verbs_never_degrade(clock: FakeClock) -> None:
    cache, _top, bottom = flaky(clock, on_write_failure="degrade")
    cache.set("k", 1)
    item = cache.get_item("k")
    assert item is not None
    bottom.down = True
    for call in (
        lambda: cache.get_item("k"),
        lambda: cache.set("k", 2, if_version=item.version),
        lambda: cache.delete("k", if_version=item.version),
        lambda: cache.pull("k"),
        lambda: cache.replace("k", 2),
    ):
        with pytest.raises(BackendUnavailable):
            call()
    bottom.down = False
    assert cache.get("k") == 1


def test_verbs_invalidate_other_caches_l1(redis_server: RedisServer) -> None:
    redis_server.flush()
    with (
        Cache(backend="layered", tiers=["memory", redis_server.url]) as a,
        Cache(backend="layered", tiers=["memory", redis_server.url]) as b,
    ):
        assert a.backend.wait_listening()  # type: ignore[attr-defined]
        assert b.backend.wait_listening()  # type: ignore[attr-defined]
        received = invalidation(b)["received"]
        a.set_many({"cas": 1, "pulled": 1, "replaced": 1})
        wait_until(lambda: invalidation(b)["received"] > received)
        for key in ("cas", "pulled", "replaced"):
            assert b.get(key) == 1
            assert l1(b).get(key) is not MISSING
        item = a.get_item("cas")
        assert item is not None
        assert a.set("cas", 2, if_version=item.version) is True
        assert a.pull("pulled") == 1
        assert a.replace("replaced", 2) is True
        wait_until(lambda: all(l1(b).get(key) is MISSING for key in ("cas", "pulled", "replaced")))
        assert (b.get("cas"), b.get("pulled"), b.get("replaced")) == (2, None, 2)


def test_collection_write_drops_a_stale_plain_copy(clock: FakeClock) -> None:
    cache, top, _bottom = two_tiers(clock)
    top.store.set("k", "stale plain value", None)  # e.g. left by a degraded write
    cache.rpush("k", 1)
    with pytest.raises(WrongType):
        cache.get("k")


def test_clear_and_delete_pattern_reach_every_tier(clock: FakeClock) -> None:
    cache, top, bottom = two_tiers(clock)
    ns = Cache(cache.backend, namespace="ns")
    for key in ("user:1", "user:2", "item:1"):
        ns.set(key, 1)
        cache.set(key, 1)
    assert ns.delete_pattern("user:*") == 2
    assert top.store.get("ns:user:1") is MISSING
    assert top.store.get("user:1") == 1
    ns.clear()
    assert top.store.get("ns:item:1") is MISSING
    assert bottom.inner.store.get("ns:item:1") is MISSING
    assert cache.get("item:1") == 1
    assert bottom.namespaces == ["ns:"]  # attach_namespace reached the tier


def test_three_tiers_fill_every_tier_above_the_hit(clock: FakeClock) -> None:
    tiers = [MemoryBackend(clock=clock), MemoryBackend(clock=clock), MemoryBackend(clock=clock)]
    with Cache(LayeredBackend(tiers, clock=clock, l1_ttl=30)) as cache:
        tiers[2].store.set("k", "deep", 10)
        assert cache.get("k") == "deep"
        assert tiers[0].store.ttl("k") == pytest.approx(10)
        assert tiers[1].store.ttl("k") == pytest.approx(10)
        tiers[0].store.delete("k")
        tiers[2].store.delete("k")
        assert cache.get("k") == "deep"  # from the middle tier
        assert tiers[0].store.get("k") == "deep"


def test_capabilities_combine_the_tiers(redis_server: RedisServer) -> None:
    assert LayeredBackend(["memory", "memory"]).capabilities.stores_objects is True
    slow = Wrapped(MemoryBackend())
    slow.capabilities = type(slow.capabilities)(
        stores_objects=True, delete_pattern=False, collections=True, ttl_resolution=1.0
    )
    backend = LayeredBackend(["memory", slow])
    assert backend.capabilities.delete_pattern is False
    assert backend.capabilities.ttl_resolution == 1.0
    with Cache(backend="layered", tiers=["memory", redis_server.url], channel=None) as cache:
        caps = cache.backend.capabilities
        assert caps.stores_objects is False  # Redis serializes, so the whole cache does
        assert cache._codec is not None
        cache.set("k", {"a": [1, 2]})
        assert cache.get("k") == {"a": [1, 2]}
    assert LayeredBackend(["memory", "null"]).capabilities.retains_data is False


def test_expired_between_read_and_fill_is_not_copied(clock: FakeClock) -> None:
    cache, top, bottom = two_tiers(clock)
    bottom.inner.store.set("k", "v", 1)

    def expire_it() -> None:
        clock.advance(2)

    bottom.after["get"] = expire_it
    assert cache.get("k") == "v"
    assert top.store.get("k") is MISSING


def test_describe_repr_and_counters(clock: FakeClock) -> None:
    cache, _top, bottom = two_tiers(clock)
    assert cache.backend.describe().startswith("layered(memory(")
    assert " > wrapped memory(" in repr(cache.backend)
    cache.set("k", 1)
    bottom.inner.store.set("low", 1, None)
    cache.get("low")
    stats = cache.stats()
    assert stats.items == 2  # the source of truth's count
    details = stats.backend
    assert details["fills"] == 1
    assert [tier["circuit"] for tier in details["tiers"]] == ["closed", "closed"]
    assert details["invalidation"]["state"] == "off (no Redis tier)"


def test_close_closes_every_tier(clock: FakeClock) -> None:
    cache, _top, bottom = two_tiers(clock)
    cache.close()
    assert bottom.calls.get("close") == 1
    cache.backend.close()  # idempotent (the facade swapped it out; the layered one is idempotent too)


# -------------------------------------------------------------------------------- the fill race


def test_local_write_during_a_fill_leaves_no_stale_copy(clock: FakeClock) -> None:
    """Reader reads L2 ("old"), pauses; a writer stores "new"; the reader must not fill "old"."""
    cache, top, bottom = two_tiers(clock, l1_ttl=None)
    cache.set("k", "old")
    top.store.delete("k")
    paused, resume = threading.Event(), threading.Event()

    def pause() -> None:
        paused.set()
        assert resume.wait(5)

    bottom.after["get"] = pause
    got: list[Any] = []
    reader = threading.Thread(target=lambda: got.append(cache.get("k")))
    reader.start()
    assert paused.wait(5)
    cache.set("k", "new")
    resume.set()
    reader.join(5)
    assert got == ["old"]  # it read before the write: fine
    assert top.store.get("k") in ("new", MISSING)  # but "old" must not be in L1
    assert cache.get("k") == "new"
    assert cache.stats().backend["fills_skipped"] == 1


def test_write_between_check_and_fill_is_undone(clock: FakeClock) -> None:
    """The writer slips in while the reader is inside L1's set: the post-fill check undoes it."""
    top = Wrapped(MemoryBackend(clock=clock))
    bottom = MemoryBackend(clock=clock)
    cache = Cache(LayeredBackend([top, bottom], clock=clock, l1_ttl=None))
    bottom.store.set("k", "old", None)
    paused, resume = threading.Event(), threading.Event()

    def pause() -> None:
        paused.set()
        assert resume.wait(5)

    top.before["set"] = pause  # the first set on L1 is the reader's fill
    reader = threading.Thread(target=cache.get, args=("k",))
    reader.start()
    assert paused.wait(5)
    cache.set("k", "new")  # L2 and L1 get "new"; then the reader's fill writes "old" over it
    resume.set()
    reader.join(5)
    assert top.inner.store.get("k") in ("new", MISSING)
    assert cache.get("k") == "new"


async def test_local_write_during_a_fill_async() -> None:
    clock = FakeClock()
    top = AsyncMemoryBackend(clock=clock)
    bottom = AsyncWrapped(AsyncMemoryBackend(clock=clock))
    cache = AsyncCache(AsyncLayeredBackend([top, bottom], clock=clock, l1_ttl=None))
    await cache.set("k", "old")
    top.store.delete("k")
    paused, resume = asyncio.Event(), asyncio.Event()

    async def pause() -> None:
        paused.set()
        await resume.wait()

    bottom.after["get"] = pause
    reader = asyncio.create_task(cache.get("k"))
    await paused.wait()
    await cache.set("k", "new")
    resume.set()
    assert await reader == "old"
    assert top.store.get("k") in ("new", MISSING)
    assert await cache.get("k") == "new"
    await cache.close()


def test_remote_invalidation_during_a_fill_leaves_no_stale_copy(redis_server: RedisServer) -> None:
    """Process B reads L2, pauses; A writes and publishes; B's listener applies it; B resumes."""
    redis_server.flush()
    inner = load_backend("redis", asynchronous=False)(port=redis_server.port)
    wrapped = Wrapped(inner)
    with (
        Cache(backend="layered", tiers=["memory", redis_server.url]) as a,
        Cache(LayeredBackend(["memory", wrapped], l1_ttl=None)) as b,
    ):
        assert a.backend.wait_listening()  # type: ignore[attr-defined]
        assert b.backend.wait_listening()  # type: ignore[attr-defined]
        a.set("k", "old")
        paused, resume = threading.Event(), threading.Event()

        def pause() -> None:
            paused.set()
            assert resume.wait(5)

        wrapped.after["get"] = pause
        got: list[Any] = []
        reader = threading.Thread(target=lambda: got.append(b.get("k")))
        reader.start()
        assert paused.wait(5)
        received = invalidation(b)["received"]
        a.set("k", "new")
        wait_until(lambda: invalidation(b)["received"] > received)
        resume.set()
        reader.join(5)
        assert got == ["old"]
        assert l1(b).get("k") is MISSING
        assert b.get("k") == "new"


async def test_remote_invalidation_during_a_fill_async(redis_server: RedisServer) -> None:
    redis_server.flush()
    inner = load_backend("redis", asynchronous=True)(port=redis_server.port)
    wrapped = AsyncWrapped(inner)
    async with (
        AsyncCache(backend="layered", tiers=["memory", redis_server.url]) as a,
        AsyncCache(AsyncLayeredBackend(["memory", wrapped], l1_ttl=None)) as b,
    ):
        assert await a.backend.wait_listening()  # type: ignore[attr-defined]
        assert await b.backend.wait_listening()  # type: ignore[attr-defined]
        await a.set("k", "old")
        paused, resume = asyncio.Event(), asyncio.Event()

        async def pause() -> None:
            paused.set()
            await resume.wait()

        wrapped.after["get"] = pause
        reader = asyncio.create_task(b.get("k"))
        await paused.wait()
        received = b.backend._received  # type: ignore[attr-defined]
        await a.set("k", "new")
        await async_wait_until(lambda: b.backend._received > received)  # type: ignore[attr-defined]
        resume.set()
        assert await reader == "old"
        assert l1(b).get("k") is MISSING
        assert await b.get("k") == "new"


# -------------------------------------------------------------------- cross-process invalidation


def test_invalidation_between_caches_in_one_process(redis_server: RedisServer) -> None:
    redis_server.flush()
    with (
        Cache(backend="layered", tiers=["memory", redis_server.url]) as a,
        Cache(backend="layered", tiers=["memory", redis_server.url], namespace="ns") as b_ns,
    ):
        b = Cache(b_ns.backend)
        assert a.backend.wait_listening()  # type: ignore[attr-defined]
        assert b.backend.wait_listening()  # type: ignore[attr-defined]

        def fresh_in_b(key: str, value: Any) -> None:
            assert b.get(key) == value
            assert l1(b).get(key) is not MISSING

        received = invalidation(b)["received"]
        a.set_many(dict.fromkeys(("k", "m1", "m2", "n", "e"), 1))
        # b must have applied that message before filling, or it would drop the fresh copies.
        wait_until(lambda: invalidation(b)["received"] > received)
        for key in ("k", "m1", "m2", "n", "e"):
            fresh_in_b(key, 1)
        a.set("k", 2)
        wait_until(lambda: l1(b).get("k") is MISSING)
        a.set_many({"m1": 2, "m2": 2})
        wait_until(lambda: l1(b).get("m1") is MISSING and l1(b).get("m2") is MISSING)
        a.incr("n")
        wait_until(lambda: l1(b).get("n") is MISSING)
        assert b.get("n") == 2
        a.expire("e", 100)
        wait_until(lambda: l1(b).get("e") is MISSING)
        fresh_in_b("k", 2)
        a.delete("k")
        wait_until(lambda: l1(b).get("k") is MISSING)
        assert b.get("k") is None
        received = invalidation(b)["received"]
        a.set_many(dict.fromkeys(("p:1", "p:2", "q"), 1))
        wait_until(lambda: invalidation(b)["received"] > received)
        for key in ("p:1", "p:2", "q"):
            fresh_in_b(key, 1)
        a.delete_pattern("p:*")
        wait_until(lambda: l1(b).get("p:1") is MISSING and l1(b).get("p:2") is MISSING)
        b_ns.set("x", 1)
        assert l1(b).get("q") is not MISSING
        a.clear()
        wait_until(lambda: l1(b).get("q") is MISSING)
        # Own messages are ignored: b's own write keeps its L1 copy.
        own = invalidation(b)["received"]
        b.set("mine", 1)
        time.sleep(0.05)
        assert l1(b).get("mine") is not MISSING
        assert invalidation(b)["received"] == own


def test_bad_messages_are_counted_and_ignored(redis_server: RedisServer) -> None:
    with Cache(backend="layered", tiers=["memory", redis_server.url], channel="test:bad") as cache:
        assert cache.backend.wait_listening()  # type: ignore[attr-defined]
        for payload in ("not json", json.dumps({"k": ["x"]}), json.dumps({"s": "other", "z": 1})):
            redis_server.command("PUBLISH", "test:bad", payload)
        wait_until(lambda: invalidation(cache)["bad_messages"] == 3)
        cache.set("k", 1)
        assert cache.get("k") == 1


def test_no_fill_before_the_subscription_is_live(redis_server: RedisServer) -> None:
    redis_server.flush()
    with Cache(backend="layered", tiers=["memory", redis_server.url]) as cache:
        backend = cache.backend
        redis_server.command("SET", "k", "1")  # a counter-like raw value
        backend._state = "connecting"  # type: ignore[attr-defined]  # as before the first SUBSCRIBE reply
        backend._listen_due = False  # type: ignore[attr-defined]
        assert cache.get("k") == 1
        assert l1(cache).get("k") is MISSING
        assert cache.stats().backend["fills_skipped"] == 1


def test_reconnect_clears_the_upper_tiers(redis_server: RedisServer) -> None:
    """Messages may be lost while the listener is disconnected: on reconnect L1 is emptied."""
    redis_server.flush()
    with Cache(backend="layered", tiers=["memory", redis_server.url], channel="test:reconnect") as cache:
        assert cache.backend.wait_listening()  # type: ignore[attr-defined]
        cache.set("k", "v1")
        assert l1(cache).get("k") is not MISSING
        subscriptions = invalidation(cache)["subscriptions"]
        redis_server.command("CLIENT", "KILL", "TYPE", "pubsub")
        # A write nobody hears about (as if its message were lost while we were away).
        redis_server.command("DEL", "k")
        wait_until(lambda: invalidation(cache)["subscriptions"] > subscriptions)
        assert l1(cache).get("k") is MISSING
        assert cache.get("k") is None
        assert invalidation(cache)["state"] == "listening"


async def test_reconnect_clears_the_upper_tiers_async(redis_server: RedisServer) -> None:
    redis_server.flush()
    async with AsyncCache(
        backend="layered", tiers=["memory", redis_server.url], channel="test:reconnect-async"
    ) as cache:
        backend = cache.backend
        assert await backend.wait_listening()  # type: ignore[attr-defined]
        await cache.set("k", "v1")
        subscriptions = backend._subscriptions  # type: ignore[attr-defined]
        redis_server.command("CLIENT", "KILL", "TYPE", "pubsub")
        redis_server.command("DEL", "k")
        await async_wait_until(lambda: backend._subscriptions > subscriptions)  # type: ignore[attr-defined]
        assert l1(cache).get("k") is MISSING
        assert await cache.get("k") is None


_CHILD = r"""
import sys, time
import stratacache as sc

cache = sc.Cache(backend="layered", tiers=["memory://", sys.argv[1]])
assert cache.backend.wait_listening(10)
assert cache.get("shared") == "v1"
assert cache.backend.tiers[0].store.get("shared") is not sc.MISSING  # held in this process's L1
print("ready", flush=True)
for expected in ("v2", None):
    while cache.get("shared") != expected:
        time.sleep(0.0002)
    print(time.monotonic(), flush=True)
cache.close()
"""


def test_two_processes_see_each_others_writes_within_100ms(redis_server: RedisServer, tmp_path: Path) -> None:
    redis_server.flush()
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    with Cache(backend="layered", tiers=["memory://", redis_server.url]) as cache:
        assert cache.backend.wait_listening()  # type: ignore[attr-defined]
        cache.set("shared", "v1")
        with subprocess.Popen(
            [sys.executable, str(script), redis_server.url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as child:
            try:
                assert child.stdout is not None
                assert child.stderr is not None
                assert child.stdout.readline().strip() == "ready", child.stderr.read()
                delays = []
                for action in (lambda: cache.set("shared", "v2"), lambda: cache.delete("shared")):
                    started = time.monotonic()  # CLOCK_MONOTONIC is one clock for every process
                    action()
                    seen = float(child.stdout.readline())
                    delays.append(seen - started)
                assert child.wait(10) == 0, child.stderr.read()
            finally:
                if child.poll() is None:
                    child.kill()
    print(f"cross-process staleness: set {delays[0] * 1000:.2f} ms, delete {delays[1] * 1000:.2f} ms")
    assert all(0 <= delay < 0.1 for delay in delays), delays


# ------------------------------------------------------------------------ fallback and breaker


def flaky(clock: FakeClock, **options: Any) -> tuple[Cache, Any, Any]:
    top = MemoryBackend(clock=clock)
    bottom = Wrapped(MemoryBackend(clock=clock))
    options = {"failure_threshold": 2, "reset_timeout": 10, **options}
    return Cache(LayeredBackend([top, bottom], clock=clock, **options)), top, bottom


def test_reads_are_served_by_the_tiers_that_answer(clock: FakeClock) -> None:
    cache, _top, bottom = flaky(clock)
    cache.set("hot", 1)
    bottom.down = True
    assert cache.get("hot") == 1  # L1 hit: the lower tier is not even asked
    assert cache.get("cold", "dflt") == "dflt"  # L1 miss, L2 down: a miss, not an error
    assert cache.get_many(["hot", "cold"]) == {"hot": 1}
    assert cache.exists("hot") is True
    assert cache.ttl("hot") == pytest.approx(5.0)  # the source is down: L1's (capped) answer
    tiers = cache.stats().backend["tiers"]
    assert tiers[1]["failures"] >= 2
    assert tiers[1]["circuit"] == "open"
    assert tiers[0]["failures"] == 0


def test_open_circuit_skips_the_tier_and_recovers(clock: FakeClock) -> None:
    cache, _top, bottom = flaky(clock)
    bottom.down = True
    cache.get("a")
    cache.get("b")  # second consecutive failure: open
    bottom.calls.clear()
    for _ in range(50):
        assert cache.get("c") is None
    assert bottom.calls == {}  # skipped at once, never called
    assert cache.stats().backend["tiers"][1]["skipped"] >= 50
    bottom.down = False
    bottom.inner.store.set("c", 3, None)
    assert cache.get("c") is None  # still open until reset_timeout
    clock.advance(10)
    assert cache.get("c") == 3  # the probe goes through and closes the circuit
    assert cache.stats().backend["tiers"][1]["circuit"] == "closed"


def test_timeouts_count_as_failures(clock: FakeClock) -> None:
    cache, _top, bottom = flaky(clock)
    bottom.error = CacheTimeout("slow (test)")
    bottom.down = True
    assert cache.get("x") is None
    assert cache.get("y") is None
    assert cache.stats().backend["tiers"][1]["circuit"] == "open"


def test_other_errors_are_answers_not_failures(clock: FakeClock) -> None:
    cache, _top, _bottom = flaky(clock)
    cache.rpush("l", 1)
    for _ in range(5):
        with pytest.raises(WrongType):
            cache.get("l")
    assert cache.stats().backend["tiers"][1]["failures"] == 0


def test_write_failure_raise_drops_the_upper_copy(clock: FakeClock) -> None:
    cache, top, bottom = flaky(clock)
    cache.set("k", "old")
    bottom.down = True
    with pytest.raises(BackendUnavailable, match="down"):
        cache.set("k", "new")
    assert top.store.get("k") is MISSING  # neither old nor new stays above
    with pytest.raises(BackendUnavailable):
        cache.set_many({"k": 1})
    with pytest.raises(BackendUnavailable, match="circuit open"):
        cache.delete("k")
    with pytest.raises(BackendUnavailable):
        cache.expire("k", 5)
    with pytest.raises(BackendUnavailable):
        cache.delete_many(["k"])
    top.store.set("p:1", 1, None)
    with pytest.raises(BackendUnavailable):
        cache.delete_pattern("p:*")
    assert top.store.get("p:1") is MISSING
    top.store.set("c", 1, None)
    with pytest.raises(BackendUnavailable):
        cache.clear()
    assert top.store.get("c") is MISSING


def test_write_failure_degrade_writes_the_upper_tiers(clock: FakeClock) -> None:
    cache, top, bottom = flaky(clock, on_write_failure="degrade", l1_ttl=3)
    bottom.down = True
    cache.set("k", "v", ttl=100)
    assert cache.get("k") == "v"
    assert top.store.ttl("k") == pytest.approx(3)  # bounded by l1_ttl like any copy
    cache.set_many({"a": 1, "b": 2})
    assert cache.expire("a", 1) is True
    assert cache.delete("b") is True
    assert cache.delete_many(["a", "zz"]) == 1
    top.store.set("p:1", 1, None)
    assert cache.delete_pattern("p:*") == 1
    cache.clear()
    assert cache.stats().backend["degraded_writes"] == 7


@pytest.mark.parametrize("mode", ["raise", "degrade"])
def test_atomic_operations_never_degrade(clock: FakeClock, mode: str) -> None:
    cache, top, bottom = flaky(clock, on_write_failure=mode)
    bottom.down = True
    for call in (
        lambda: cache.incr("n"),
        lambda: cache.add("k", 1),
        lambda: cache.rpush("l", 1),
        lambda: cache.lrange("l"),
        lambda: cache.hset("h", "f", 1),
        lambda: cache.smembers("s"),
    ):
        with pytest.raises(BackendUnavailable):
            call()
    assert top.store.get("n") is MISSING


def test_every_tier_down_is_an_error_not_a_miss(clock: FakeClock) -> None:
    top = Wrapped(MemoryBackend(clock=clock))
    bottom = Wrapped(MemoryBackend(clock=clock))
    cache = Cache(LayeredBackend([top, bottom], clock=clock))
    top.down = bottom.down = True
    for call in (
        lambda: cache.get("k"),
        lambda: cache.get_many(["k"]),
        lambda: cache.exists("k"),
        lambda: cache.ttl("k"),
    ):
        with pytest.raises(BackendUnavailable):
            call()
    with pytest.raises(BackendUnavailable, match=r"tier 0 .*tier 1"):
        cache.ping()
    assert cache.health().healthy is False
    assert cache.stats().items == 0  # counters answer even then


def test_top_tier_down_reads_from_below(clock: FakeClock) -> None:
    top = Wrapped(MemoryBackend(clock=clock))
    bottom = MemoryBackend(clock=clock)
    cache = Cache(LayeredBackend([top, bottom], clock=clock, failure_threshold=1))
    bottom.store.set("k", 1, None)
    top.down = True
    assert cache.get("k") == 1  # the fast path fails over
    assert cache.get("k") == 1  # open circuit: the slow path skips the top tier
    cache.set("k", 2)  # the source of truth takes it; the upper failure is counted
    assert bottom.store.get("k") == 2
    assert cache.stats().backend["tiers"][0]["circuit"] == "open"


async def test_fallback_async() -> None:
    clock = FakeClock()
    top = AsyncMemoryBackend(clock=clock)
    bottom = AsyncWrapped(AsyncMemoryBackend(clock=clock))
    cache = AsyncCache(AsyncLayeredBackend([top, bottom], clock=clock, failure_threshold=1, reset_timeout=1))
    await cache.set("hot", 1)
    bottom.down = True
    assert await cache.get("hot") == 1
    assert await cache.get("cold") is None
    with pytest.raises(BackendUnavailable):
        await cache.set("hot", 2)
    assert top.store.get("hot") is MISSING
    bottom.down = False
    clock.advance(1)
    await cache.set("hot", 3)
    assert await cache.get("hot") == 3
    assert (await cache.stats()).backend["tiers"][1]["circuit"] == "closed"
    await cache.close()


def test_stopping_redis_degrades_to_l1_without_hanging(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory()
    tier = redis_tier(server, connect_timeout=0.5, timeout=0.5, retries=0)
    with Cache(backend="layered", tiers=["memory", tier], failure_threshold=2, reset_timeout=0.3) as cache:
        assert cache.backend.wait_listening()  # type: ignore[attr-defined]
        cache.set("hot", "v")
        server.stop()
        started = time.monotonic()
        for i in range(200):
            assert cache.get("hot") == "v"  # served by L1
            assert cache.get(f"cold{i}") is None  # L2 unreachable: a miss
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"400 reads took {elapsed:.2f}s with Redis down"
        details = cache.stats().backend
        failures = details["tiers"][1]["failures"]
        assert failures >= 2
        assert details["tiers"][1]["circuit"] in ("open", "half-open")
        with pytest.raises(BackendUnavailable):
            cache.set("during", 1)
        time.sleep(0.35)
        cache.get("cold-again")  # a probe: fails again, counted
        assert cache.stats().backend["tiers"][1]["failures"] > failures
        assert invalidation(cache)["state"] == "disconnected"

        server.restart()
        deadline = time.monotonic() + 5
        while True:
            try:
                cache.set("after", 1)
                break
            except BackendUnavailable:
                assert time.monotonic() < deadline, "Redis tier not used again after restart"
                time.sleep(0.05)
        assert server.command("EXISTS", "after") == 1
        assert cache.get("after") == 1
        wait_until(lambda: invalidation(cache)["state"] == "listening")
        # The resubscription cleared L1: "hot" (gone with the restarted, empty Redis) is no more.
        assert cache.get("hot") is None
        assert cache.stats().backend["tiers"][1]["circuit"] == "closed"


async def test_stopping_redis_degrades_to_l1_async(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory()
    tier = redis_tier(server, connect_timeout=0.5, timeout=0.5, retries=0)
    async with AsyncCache(
        backend="layered", tiers=["memory", tier], failure_threshold=2, reset_timeout=0.3
    ) as cache:
        assert await cache.backend.wait_listening()  # type: ignore[attr-defined]
        await cache.set("hot", "v")
        server.stop()
        started = time.monotonic()
        for i in range(200):
            assert await cache.get("hot") == "v"
            assert await cache.get(f"cold{i}") is None
        assert time.monotonic() - started < 1.0
        assert (await cache.stats()).backend["tiers"][1]["failures"] >= 2
        server.restart()
        deadline = time.monotonic() + 5
        while True:
            try:
                await cache.set("after", 1)
                break
            except BackendUnavailable:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        assert await cache.get("after") == 1
        backend = cache.backend
        await async_wait_until(lambda: backend._state == "listening")  # type: ignore[attr-defined]
        assert await cache.get("hot") is None


def test_a_hung_redis_does_not_make_every_call_wait(redis_server_factory: RedisServerFactory) -> None:
    """SIGSTOP: connections hang; after failure_threshold timeouts the circuit answers at once."""
    server = redis_server_factory()
    tier = redis_tier(server, connect_timeout=0.3, timeout=0.3, retries=0)
    with Cache(backend="layered", tiers=["memory", tier], failure_threshold=2, reset_timeout=30) as cache:
        assert cache.backend.wait_listening()  # type: ignore[attr-defined]
        cache.set("hot", 1)
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            assert cache.get("a") is None
            assert cache.get("b") is None
            assert 0.5 <= time.monotonic() - started < 2.0  # two timeouts waited out
            started = time.monotonic()
            for i in range(100):
                assert cache.get(f"c{i}") is None
                assert cache.get("hot") == 1
            assert time.monotonic() - started < 0.2  # then none
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert cache.stats().backend["tiers"][1]["circuit"] == "open"


def test_close_stops_the_listener_thread(redis_server: RedisServer) -> None:
    cache = Cache(backend="layered", tiers=["memory", redis_server.url])
    assert cache.backend.wait_listening()  # type: ignore[attr-defined]
    backend = cache.backend
    thread = backend._listener  # type: ignore[attr-defined]
    assert thread is not None
    assert thread.is_alive()
    assert thread.daemon
    started = time.monotonic()
    cache.close()
    assert not thread.is_alive()
    assert time.monotonic() - started < 1.0
    assert backend.wait_listening(0.01) is False  # type: ignore[attr-defined]


async def test_close_cancels_the_listener_task(redis_server: RedisServer) -> None:
    cache = AsyncCache(backend="layered", tiers=["memory", redis_server.url])
    backend = cache.backend
    assert backend._listener is None  # type: ignore[attr-defined]  # lazily: not before first use
    assert await backend.wait_listening()  # type: ignore[attr-defined]
    task = backend._listener  # type: ignore[attr-defined]
    assert isinstance(task, asyncio.Task)
    await cache.close()
    assert task.done()


def test_wait_listening_without_channel_is_true() -> None:
    assert LayeredBackend(["memory", "memory"]).wait_listening() is True


def test_ping_and_health_with_redis(redis_server: RedisServer) -> None:
    with Cache(backend="layered", tiers=["memory", redis_server.url]) as cache:
        assert cache.ping() is True
        report = cache.health()
        assert report.healthy
        assert report.backend.startswith("layered(memory(")


async def test_fallback_paths_async() -> None:
    """The async flavour's fallback branches (the sync ones are covered above)."""
    clock = FakeClock()
    top = AsyncWrapped(AsyncMemoryBackend(clock=clock))
    bottom = AsyncWrapped(AsyncMemoryBackend(clock=clock))
    backend = AsyncLayeredBackend([top, bottom], clock=clock, on_write_failure="degrade", failure_threshold=1)
    cache = AsyncCache(backend)
    await cache.set_many({"a": 1, "b": 2})
    top.inner.store.clear(None)
    assert await cache.get_many(["a", "b"]) == {"a": 1, "b": 2}  # filled from below
    assert top.inner.store.get("a") == 1
    bottom.down = True
    assert await cache.get_many(["a", "zz"]) == {"a": 1}
    assert await cache.exists("a") is True
    assert await cache.exists("zz") is False
    assert await cache.ttl("a") == pytest.approx(5.0)
    await cache.set("c", 3)
    await cache.set_many({"d": 4})
    assert await cache.expire("c", 10) is True
    assert await cache.delete("c") is True
    assert await cache.delete_many(["d"]) == 1
    assert await cache.delete_pattern("*") >= 1
    await cache.clear()
    for call in (cache.incr("n"), cache.add("x", 1), cache.lpush("l", 1), cache.hgetall("h")):
        with pytest.raises(BackendUnavailable):
            await call
    with pytest.raises(BackendUnavailable, match="tier 1"):
        await cache.ping()
    assert (await cache.health()).healthy is False
    top.down = True
    for check in (cache.get("a"), cache.get_many(["a"]), cache.exists("a"), cache.ttl("a")):
        with pytest.raises(BackendUnavailable):
            await check
    stats = await cache.stats()
    assert stats.backend["degraded_writes"] == 7
    assert [tier["circuit"] for tier in stats.backend["tiers"]] == ["open", "open"]
    top.down = bottom.down = False
    clock.advance(2)
    await cache.set("back", 1)
    assert await cache.get("back") == 1
    await cache.close()
    assert bottom.calls["close"] == 1


async def test_write_failure_raise_async() -> None:
    clock = FakeClock()
    top = AsyncMemoryBackend(clock=clock)
    bottom = AsyncWrapped(AsyncMemoryBackend(clock=clock))
    cache = AsyncCache(AsyncLayeredBackend([top, bottom], clock=clock))
    await cache.set("k", 1)
    top.store.set("p:1", 1, None)
    bottom.down = True
    for call in (
        cache.set("k", 2),
        cache.set_many({"k": 2}),
        cache.delete("k"),
        cache.delete_many(["k"]),
        cache.expire("k", 1),
        cache.delete_pattern("p:*"),
        cache.clear(),
    ):
        with pytest.raises(BackendUnavailable):
            await call
    assert top.store.get("k") is MISSING
    assert top.store.get("p:1") is MISSING
    await cache.close()


async def test_invalidation_between_caches_async(redis_server: RedisServer) -> None:
    redis_server.flush()
    async with (
        AsyncCache(backend="layered", tiers=["memory", redis_server.url]) as a,
        AsyncCache(backend="layered", tiers=["memory", redis_server.url]) as b,
    ):
        assert await a.backend.wait_listening()  # type: ignore[attr-defined]
        assert await b.backend.wait_listening()  # type: ignore[attr-defined]
        backend = b.backend
        received = backend._received  # type: ignore[attr-defined]
        await a.set_many({"k": 1, "p:1": 1})
        await async_wait_until(lambda: backend._received > received)  # type: ignore[attr-defined]
        assert await b.get_many(["k", "p:1"]) == {"k": 1, "p:1": 1}
        assert l1(b).get("k") is not MISSING
        await a.delete_pattern("p:*")
        await async_wait_until(lambda: l1(b).get("p:1") is MISSING)
        await a.clear()
        await async_wait_until(lambda: l1(b).get("k") is MISSING)
        assert (await b.stats()).backend["invalidation"]["state"] == "listening"
