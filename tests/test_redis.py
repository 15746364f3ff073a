"""The Redis backend beyond the conformance suite: URLs, errors, round trips, faults, recovery.

Every test talks to a real ``redis-server`` started by the fixtures in ``servers.py``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from servers import RedisServer, RedisServerFactory, free_port
from stratacache import (
    AccessDenied,
    AsyncCache,
    BackendUnavailable,
    Cache,
    CacheError,
    CacheTimeout,
    ConfigurationError,
    InvalidTTL,
    WrongType,
)
from stratacache._config import parse_url
from stratacache._sync.backends.redis import RedisBackend
from stratacache._types import MISSING


def commandstats(server: RedisServer) -> dict[str, int]:
    """``INFO commandstats`` as {command: calls}."""
    info = server.command("INFO", "commandstats")
    assert isinstance(info, bytes)
    calls: dict[str, int] = {}
    for line in info.decode().splitlines():
        if line.startswith("cmdstat_"):
            name, _, rest = line.partition(":")
            calls[name.removeprefix("cmdstat_")] = int(rest.split(",")[0].removeprefix("calls="))
    return calls


def calls_during(server: RedisServer, action: Any) -> dict[str, int]:
    """The commands the server ran while ``action()`` ran (CONFIG RESETSTAT before)."""
    server.command("CONFIG", "RESETSTAT")
    action()
    stats = commandstats(server)
    stats.pop("info", None)
    stats.pop("config|resetstat", None)
    return stats


@pytest.fixture
def rcache(redis_server: RedisServer) -> Any:
    """A sync cache on the session server, emptied first."""
    redis_server.flush()
    with Cache(redis_server.url) as cache:
        yield cache


# ------------------------------------------------------------------------------ URLs and options


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://h:1234/2", {"host": "h", "port": 1234, "db": 2}),
        ("redis://u:p%40ss@h", {"username": "u", "password": "p@ss", "host": "h", "port": 6379}),
        ("redis://:pw@h:1/0", {"password": "pw", "host": "h", "port": 1, "db": 0}),
        ("rediss://h:6380/0?ssl_ca_certs=/ca.pem", {"ssl": True, "ssl_ca_certs": "/ca.pem", "port": 6380}),
        ("unix:///run/redis.sock?db=3", {"unix_socket_path": "/run/redis.sock", "db": 3}),
        ("redis+cluster://a:1,b:2", {"mode": "cluster", "nodes": [("a", 1), ("b", 2)]}),
        (
            "redis+sentinel://s1:26379,s2/mymaster/1",
            {
                "mode": "sentinel",
                "sentinels": [("s1", 26379), ("s2", 26379)],
                "service_name": "mymaster",
                "db": 1,
            },
        ),
        ("redis://h?pool_size=4&timeout=0.5&retries=0", {"pool_size": 4, "timeout": 0.5, "retries": 0}),
        ("redis://h?health_check_interval=30&client_name=app", {"health_check_interval": 30.0}),
    ],
)
def test_url_forms(url: str, expected: dict[str, Any]) -> None:
    options = parse_url(url).backend_options
    for name, value in expected.items():
        assert options[name] == value


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h:99999", "port"),
        ("redis://a:1,b:2", "one server"),
        ("redis://h/notadb", "db"),
        ("redis://h/1/2", "path"),
        ("redis+cluster://a:1/3", "database"),
        ("redis+sentinel://s:1", "service name"),
        ("unix://", "socket"),
        ("redis://h?pool_sise=3", "pool_sise"),
        ("redis://h?ssl_cert_reqs=sometimes", "ssl_cert_reqs"),
        ("redis://h?timeout=-1", "timeout"),
        ("redis://h?mode=ring", "mode"),
    ],
)
def test_bad_urls_name_the_fault(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Cache(url)


def test_bad_keywords_name_the_fault() -> None:
    with pytest.raises(ConfigurationError, match="ssl=True"):
        RedisBackend(ssl_ca_certs="/ca.pem")
    with pytest.raises(ConfigurationError, match="pool_size"):
        RedisBackend(pool_size=0)
    with pytest.raises(ConfigurationError, match="mode"):
        RedisBackend(mode="ring")
    with pytest.raises(ConfigurationError, match="nodes"):
        RedisBackend(mode="cluster")
    with pytest.raises(ConfigurationError, match="service_name"):
        RedisBackend(mode="sentinel", sentinels=[("127.0.0.1", 1)])
    with pytest.raises(ConfigurationError, match="unknown option"):
        Cache("redis://127.0.0.1:1", pool_sise=3)


def test_describe_hides_the_password(redis_server: RedisServer) -> None:
    with Cache(f"redis://:hunter2@127.0.0.1:{redis_server.port}/0") as cache:
        assert "hunter2" not in cache.backend.describe()
        assert "hunter2" not in repr(cache.backend)


# ------------------------------------------------------------------------------ errors


def test_wrong_password_is_access_denied(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory(password="right-pw")
    with Cache(f"redis://:wrong-pw@127.0.0.1:{server.port}/0") as cache:
        with pytest.raises(AccessDenied, match="authentication failed"):
            cache.get("k")
        assert not cache.health().healthy
    with Cache(f"redis://127.0.0.1:{server.port}/0") as cache, pytest.raises(AccessDenied):
        cache.set("k", 1)
    with Cache(f"redis://:right-pw@127.0.0.1:{server.port}/0") as cache:
        cache.set("k", 1)
        assert cache.get("k") == 1


def test_closed_port_is_unavailable_quickly(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory()
    port = server.port
    server.stop()
    with Cache(f"redis://127.0.0.1:{port}/0?connect_timeout=0.5&timeout=0.5") as cache:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}") as info:
            cache.get("k")
        assert time.monotonic() - started < 2.0
        assert not isinstance(info.value.__cause__, BackendUnavailable)  # the driver's error, chained
        health = cache.health()
        assert not health.healthy
        assert "BackendUnavailable" in (health.error or "")


async def test_closed_port_is_unavailable_async(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory()
    port = server.port
    server.stop()
    async with AsyncCache(f"redis://127.0.0.1:{port}/0?connect_timeout=0.5") as cache:
        with pytest.raises(BackendUnavailable):
            await cache.set("k", 1)


def test_a_timeout_is_not_retried(redis_server_factory: RedisServerFactory) -> None:
    # Default retries (3): a timed-out command must not be sent again. It may have run (an
    # INCR would count twice), and a hung server would cost 4 x timeout instead of 1.
    server = redis_server_factory(extra_args=["--enable-debug-command", "yes"])
    with Cache(server.url, timeout=0.3) as cache:
        cache.set("n", 0)
        sleeper = threading.Thread(target=server.command, args=("DEBUG", "SLEEP", "1.5"))
        sleeper.start()
        time.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(CacheTimeout, match="'n'"):
            cache.incr("n")
        assert time.monotonic() - started < 1.0
        sleeper.join()
        # The INCR reached the server once; it ran after the sleep, exactly once.
        assert cache.get("n") == 1


async def test_a_timeout_is_not_retried_async(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory(extra_args=["--enable-debug-command", "yes"])
    async with AsyncCache(server.url, timeout=0.3) as cache:
        await cache.set("n", 0)
        sleeper = threading.Thread(target=server.command, args=("DEBUG", "SLEEP", "1.5"))
        sleeper.start()
        await asyncio.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(CacheTimeout, match="'n'"):
            await cache.incr("n")
        assert time.monotonic() - started < 1.0
        await asyncio.to_thread(sleeper.join)
        assert await cache.get("n") == 1


def test_slow_server_is_a_timeout(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory(extra_args=["--enable-debug-command", "yes"])
    with Cache(server.url, timeout=0.2, retries=0) as cache:
        cache.set("k", 1)
        sleeper = threading.Thread(target=server.command, args=("DEBUG", "SLEEP", "1"))
        sleeper.start()
        time.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(CacheTimeout, match="timeout"):
            cache.get("k")
        assert time.monotonic() - started < 0.9
        sleeper.join()
        assert cache.get("k") == 1  # the pool replaced the timed-out connection


def test_kill_and_restart_recovers(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory()
    with Cache(server.url, connect_timeout=0.5, timeout=0.5) as cache:
        cache.set("before", 1)
        server.kill()
        with pytest.raises(BackendUnavailable):
            cache.get("before")
        with pytest.raises(BackendUnavailable):
            cache.set("during", 1)
        server.restart()
        cache.set("after", 2)  # the same Cache object: the pool reconnects by itself
        assert cache.get("after") == 2
        assert cache.ping() is True


async def test_kill_and_restart_recovers_async(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory()
    async with AsyncCache(server.url, connect_timeout=0.5, timeout=0.5) as cache:
        await cache.set("before", 1)
        server.kill()
        with pytest.raises(BackendUnavailable):
            await cache.get("before")
        server.restart()
        await cache.set("after", 2)
        assert await cache.get("after") == 2


def test_wrong_type_names_the_key(rcache: Cache) -> None:
    rcache.rpush("l", 1)
    with pytest.raises(WrongType, match="'l'"):
        rcache.get("l")
    with pytest.raises(WrongType, match="'l'"):
        rcache.incr("l")
    rcache.set("s", "text")
    with pytest.raises(WrongType, match="'s'"):
        rcache.hset("s", mapping={"f": 1})
    assert rcache.get("s") == "text"


# ------------------------------------------------------------------------------ round trips


def test_batches_are_single_commands(rcache: Cache, redis_server: RedisServer) -> None:
    keys = [f"k{i}" for i in range(100)]
    rcache.set_many(dict.fromkeys(keys, 1))
    assert calls_during(redis_server, lambda: rcache.get_many(keys)) == {"mget": 1}
    assert calls_during(redis_server, lambda: rcache.delete_many(keys[:50])) == {"unlink": 1}
    assert calls_during(redis_server, lambda: rcache.set_many({"a": 1, "b": 2})) == {"mset": 1}
    assert calls_during(redis_server, lambda: rcache.add("a", 1)) == {"set": 1}  # SET NX


def test_set_many_with_ttl_sets_every_ttl(rcache: Cache, redis_server: RedisServer) -> None:
    rcache.set_many({"a": 1, "b": 2}, ttl=50)
    for key in ("a", "b"):
        pttl = redis_server.command("PTTL", key)
        assert isinstance(pttl, int)
        assert 45_000 < pttl <= 50_000


def test_enumeration_uses_scan_never_keys(redis_server: RedisServer) -> None:
    redis_server.flush()
    with Cache(redis_server.url, namespace="app", scan_count=7) as app, Cache(redis_server.url) as bare:
        app.set_many({f"user:{i}": i for i in range(40)})
        bare.set("user:1", "outside the namespace")
        stats = calls_during(redis_server, lambda: app.delete_pattern("user:*"))
        assert "keys" not in stats
        assert stats["scan"] >= 1
        assert stats["unlink"] >= 40 // 7  # batches of scan_count
        app.set_many({f"k{i}": i for i in range(10)})
        stats = calls_during(redis_server, app.clear)
        assert "flushdb" not in stats
        assert "flushall" not in stats
        assert bare.get("user:1") == "outside the namespace"
        assert calls_during(redis_server, bare.clear) == {"flushdb": 1}


def test_keys_are_binary_safe(rcache: Cache) -> None:
    rcache.set("other", "kept")
    crlf = "x\r\nFLUSHALL\r\n"
    rcache.set(crlf, "v")
    assert rcache.get(crlf) == "v"
    assert rcache.get("other") == "kept"


def test_counters_interoperate_with_raw_redis(rcache: Cache, redis_server: RedisServer) -> None:
    rcache.set("n", 5)
    assert redis_server.command("GET", "n") == b"5"  # plain decimal: INCRBY understands it
    assert redis_server.command("INCRBY", "n", 10) == 15
    assert rcache.get("n") == 15
    assert rcache.incr("made") == 1
    assert rcache.get("made") == 1


def test_stats_count_server_items(rcache: Cache) -> None:
    rcache.set_many({"a": 1, "b": 2})
    assert rcache.stats().items == 2


def test_small_pool_serves_many_threads(redis_server: RedisServer) -> None:
    redis_server.flush()
    with Cache(redis_server.url, pool_size=2) as cache:
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(50):
                    cache.incr("n")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert cache.get("n") == 400


def test_unix_socket(redis_server_factory: RedisServerFactory, tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    server = redis_server_factory(extra_args=["--unixsocket", str(socket_path), "--unixsocketperm", "700"])
    with Cache(f"unix://{socket_path}?db=1") as cache:
        cache.set("k", "over a unix socket")
        assert cache.get("k") == "over a unix socket"
        assert "unix:" in cache.backend.describe()
    assert server.command("SELECT", 1) == "OK"


def test_database_number_is_used(redis_server: RedisServer) -> None:
    redis_server.flush()
    with Cache(f"redis://127.0.0.1:{redis_server.port}/3") as db3, Cache(redis_server.url) as db0:
        db3.set("k", 3)
        assert db0.get("k") is None
        assert db3.get("k") == 3


# ------------------------------------------------------------------------------ TLS, Cluster, Sentinel


def test_tls_with_client_certificate(redis_tls_server: RedisServer) -> None:
    server = redis_tls_server
    url = f"{server.tls_url}&ssl_certfile={server.client_cert_path}&ssl_keyfile={server.client_key_path}"
    with Cache(url) as cache:
        cache.set("k", "over tls")
        assert cache.get("k") == "over tls"


def test_tls_with_an_unknown_ca_fails_cleanly(redis_tls_server: RedisServer, tmp_path: Path) -> None:
    import trustme

    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    url = f"rediss://127.0.0.1:{redis_tls_server.tls_port}/0?ssl_ca_certs={other_ca}&retries=0"
    with Cache(url) as cache, pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1"):
        cache.get("k")


def test_plain_client_on_tls_port_fails_cleanly(redis_tls_server: RedisServer) -> None:
    url = f"redis://127.0.0.1:{redis_tls_server.tls_port}/0?retries=0&timeout=0.5&connect_timeout=0.5"
    with Cache(url) as cache, pytest.raises((BackendUnavailable, CacheTimeout)):
        cache.get("k")


def test_cluster_batches_span_slots(redis_cluster: Any) -> None:
    redis_cluster.flush()
    keys = [f"user:{i}" for i in range(60)]
    assert len({redis_cluster.node_for_key(key).port for key in keys}) == 3  # every primary gets some
    with Cache(redis_cluster.url) as cache:
        cache.set_many({key: i for i, key in enumerate(keys)}, ttl=60)
        assert cache.get_many(keys) == {key: i for i, key in enumerate(keys)}
        assert cache.delete_many(keys[:30]) == 30
        assert cache.delete_pattern("user:*") == 30  # SCAN on every primary
        cache.set_many(dict.fromkeys(keys, 1))
        cache.clear()  # FLUSHDB on every primary
        assert cache.get_many(keys) == {}


def test_cluster_namespaced_clear_spares_other_keys(redis_cluster: Any) -> None:
    redis_cluster.flush()
    with Cache(redis_cluster.url, namespace="app") as app, Cache(redis_cluster.url) as bare:
        app.set_many({f"k{i}": i for i in range(30)})
        bare.set_many({f"k{i}": i for i in range(30)})
        app.clear()
        assert app.get_many([f"k{i}" for i in range(30)]) == {}
        assert len(bare.get_many([f"k{i}" for i in range(30)])) == 30


async def test_cluster_async(redis_cluster: Any) -> None:
    redis_cluster.flush()
    async with AsyncCache(redis_cluster.url) as cache:
        await cache.set_many({f"k{i}": i for i in range(20)})
        assert len(await cache.get_many([f"k{i}" for i in range(20)])) == 20
        assert await cache.delete_pattern("k*") == 20


def test_cluster_node_down_is_unavailable(redis_cluster_factory: Any) -> None:
    cluster = redis_cluster_factory()
    with Cache(cluster.url, timeout=0.5, connect_timeout=0.5, retries=1) as cache:
        victim = cluster.nodes[0]
        key = next(f"k{i}" for i in range(1000) if cluster.node_for_key(f"k{i}").port == victim.port)
        cache.set(key, 1)
        victim.kill()
        started = time.monotonic()
        with pytest.raises((BackendUnavailable, CacheTimeout)):
            cache.get(key)
        assert time.monotonic() - started < 15


def test_sentinel_follows_a_failover(redis_sentinel_factory: Any) -> None:
    sentinels = redis_sentinel_factory()
    with Cache(sentinels.url, timeout=1.0, connect_timeout=1.0, retries=5) as cache:
        cache.set("k", "before")
        old = sentinels.primary_address()
        new = sentinels.failover()
        assert new != old
        deadline = time.monotonic() + 10
        while True:  # the first call after the switch may meet the demoted primary
            try:
                cache.set("k", "after")
                break
            except BackendUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert cache.get("k") == "after"
        assert sentinels.primary_address() == (new.host, new.port)


async def test_sentinel_async(redis_sentinel: Any) -> None:
    redis_sentinel.flush()
    async with AsyncCache(redis_sentinel.url) as cache:
        await cache.set("k", 1)
        assert await cache.incr("k") == 2
        assert "sentinel" in cache.backend.describe()


def test_acl_user_and_permissions(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory()
    server.command("ACL", "SETUSER", "app", "on", ">app-pw", "~app:*", "+@all", "-flushdb")
    url = f"redis://app:app-pw@127.0.0.1:{server.port}/0"
    with Cache(url, namespace="app") as cache:
        cache.set("k", 1)
        assert cache.get("k") == 1
    with Cache(url) as outside, pytest.raises(AccessDenied, match="ACL"):
        outside.set("other:k", 1)  # a key outside the user's ~app:* pattern
    with Cache(f"redis://app:wrong@127.0.0.1:{server.port}/0") as cache, pytest.raises(AccessDenied):
        cache.get("app:k")


# ------------------------------------------------------------------------------ issue 13: ttl range


@pytest.mark.parametrize("ttl", [1e300, 2.0**70, float("inf")], ids=repr)
def test_backend_ttl_out_of_redis_range_is_invalid_ttl(redis_server: RedisServer, ttl: float) -> None:
    # The facade refuses ttls over MAX_TTL first; used directly, the backend still answers with
    # InvalidTTL (not BackendUnavailable or a raw OverflowError) for a ttl Redis cannot store.
    redis_server.flush()
    backend = RedisBackend(host=redis_server.host, port=redis_server.port)
    try:
        for call in (
            lambda: backend.set("k", b"v", ttl),
            lambda: backend.add("k", b"v", ttl),
            lambda: backend.set_many({"k": b"v"}, ttl),
            lambda: backend.expire("k", ttl),
        ):
            with pytest.raises(InvalidTTL, match="redis"):
                call()
        assert backend.get("k") is MISSING
    finally:
        backend.close()


# ------------------------------------------------------------------------------ issue 13: cluster errors


def _assert_translated(info: pytest.ExceptionInfo[Any]) -> None:
    assert isinstance(info.value, (BackendUnavailable, CacheTimeout))
    assert info.value.__cause__ is not None  # the driver's error, chained


def test_cluster_url_on_a_standalone_server_is_unavailable(redis_server: RedisServer) -> None:
    url = "redis+cluster://" + redis_server.address
    with (
        pytest.raises(BackendUnavailable, match="not a Redis Cluster node") as info,
        Cache(url, timeout=0.5, connect_timeout=0.5, retries=0) as cache,
    ):
        cache.set("k", 1)
    _assert_translated(info)


async def test_cluster_url_on_a_standalone_server_is_unavailable_async(redis_server: RedisServer) -> None:
    url = "redis+cluster://" + redis_server.address
    async with AsyncCache(url, timeout=0.5, connect_timeout=0.5, retries=0) as cache:
        with pytest.raises(BackendUnavailable, match="not a Redis Cluster node") as info:
            await cache.set("k", 1)
        _assert_translated(info)


def test_cluster_url_on_a_closed_port_is_unavailable() -> None:
    url = f"redis+cluster://127.0.0.1:{free_port()}"
    with pytest.raises(BackendUnavailable, match="RedisClusterUnreachableError") as info:
        Cache(url, timeout=0.5, connect_timeout=0.5, retries=0)
    _assert_translated(info)


async def test_cluster_url_on_a_closed_port_is_unavailable_async() -> None:
    url = f"redis+cluster://127.0.0.1:{free_port()}"
    async with AsyncCache(url, timeout=0.5, connect_timeout=0.5, retries=0) as cache:
        with pytest.raises(BackendUnavailable) as info:
            await cache.get("k")
        _assert_translated(info)


def test_cluster_with_every_node_down_raises_only_cache_errors(redis_cluster_factory: Any) -> None:
    cluster = redis_cluster_factory()
    options = {"timeout": 0.5, "connect_timeout": 0.5, "retries": 0}
    keys = [f"k{i}" for i in range(12)]
    operations: list[tuple[str, Any]] = [
        ("get", lambda c: c.get("k1")),
        ("set", lambda c: c.set("k1", 1)),
        ("get_many", lambda c: c.get_many(keys)),
        ("set_many", lambda c: c.set_many(dict.fromkeys(keys, 1), ttl=60)),
        ("delete_many", lambda c: c.delete_many(keys)),
        ("delete_pattern", lambda c: c.delete_pattern("k*")),
        ("clear", lambda c: c.clear()),
        ("incr", lambda c: c.incr("n")),
        ("expire", lambda c: c.expire("k1", None)),
        ("rpush", lambda c: c.rpush("l", 1)),
        ("ping", lambda c: c.ping()),
    ]
    with Cache(cluster.url, **options) as cache:
        cache.set_many(dict.fromkeys(keys, 1))
        for node in cluster.nodes:
            node.kill()
        for name, operation in operations:
            with pytest.raises(CacheError) as info:
                operation(cache)
            assert isinstance(info.value, (BackendUnavailable, CacheTimeout)), name
        assert cache.health().healthy is False
    # A client created while the cluster is down fails the same way (the sync cluster client
    # connects in its constructor).
    with pytest.raises(BackendUnavailable) as info:
        Cache(cluster.url, **options)
    _assert_translated(info)
