"""The Redis backend: standalone, TLS, Unix socket, Cluster and Sentinel, on redis-py (+ hiredis).

URLs (parsed in ``_config.py``): ``redis://[user:pw@]host:port/db``, ``rediss://...`` (TLS),
``unix:///path/to.sock?db=N``, ``redis+cluster://h1:p1,h2:p2`` and
``redis+sentinel://h1:p1,h2:p2/service[/db]``.

Every operation is the fewest round trips Redis allows: ``add`` is ``SET NX``, ``get_many``
one ``MGET`` (one per hash slot on a cluster), ``set_many`` one pipeline, ``delete_many``
one ``UNLINK``; lists, sets and hashes are Redis's own types, so ``WRONGTYPE`` gives the
contract's :class:`WrongType` for free. Keys are enumerated only with ``SCAN`` (never
``KEYS``, which blocks the server), and ``FLUSHDB`` is used only by ``clear()`` on a cache
without a namespace. Driver errors are translated here, at the boundary, into the
stratacache tree with the original chained.
"""

from __future__ import annotations

import asyncio  # unasync: remove
import builtins
import functools
import hashlib
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar, cast

import redis.exceptions as rexc
from redis.asyncio import BlockingConnectionPool, Connection, Redis, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff

from ..._drivers.loops import LoopBinding  # unasync: remove
from ..._drivers.redis_async import close_client
from ..._exceptions import (
    AccessDenied,
    BackendUnavailable,
    CacheError,
    CacheTimeout,
    ConfigurationError,
    InvalidArgument,
    InvalidTTL,
    WrongType,
)
from ..._redact import scrub
from ..._types import MISSING, Item, Missing
from ...core.glob import escape_glob
from .base import AsyncBackend, BackendCounters, Capabilities

__all__ = ["AsyncRedisBackend"]

_IS_ASYNC = True

# redis-py's constructors are partly untyped; one Any-typed name each keeps mypy --strict
# quiet in both flavours without per-line ignores.
_Sentinel: Any = Sentinel
_ClusterNode: Any = ClusterNode
_BlockingConnectionPool: Any = BlockingConnectionPool
_M = TypeVar("_M", bound=Callable[..., Awaitable[Any]])

# PERSIST answers 0 both for "absent" and for "had no expiry"; the contract needs to tell
# them apart, atomically, so it is one script.
_PERSIST = """
if redis.call('exists', KEYS[1]) == 0 then return 0 end
redis.call('persist', KEYS[1])
return 1
"""

# The verbs' versions are the SHA-1 of the stored bytes (hex), computed by the server
# (redis.sha1hex, which our own server implements too) inside each compare script, so the
# compare and the write are one atomic step on a standalone server, a cluster's shard or a
# Sentinel's primary. get_item reads the value and its PTTL in one script and hashes the
# bytes client-side (the same digest: hashlib.sha1(value).hexdigest()).
_GET_ITEM = """
local value = redis.call('get', KEYS[1])
if not value then return false end
return {value, redis.call('pttl', KEYS[1])}
"""
_SET_IF_VERSION = """
local value = redis.call('get', KEYS[1])
if not value or redis.sha1hex(value) ~= ARGV[1] then return 0 end
if ARGV[3] == '' then
  redis.call('set', KEYS[1], ARGV[2])
else
  redis.call('set', KEYS[1], ARGV[2], 'px', ARGV[3])
end
return 1
"""
_DELETE_IF_VERSION = """
local value = redis.call('get', KEYS[1])
if not value or redis.sha1hex(value) ~= ARGV[1] then return 0 end
redis.call('del', KEYS[1])
return 1
"""
_SHA1_HEX = re.compile(r"[0-9a-f]{40}")

# Largest PX sent: 2**62 ms (~146 million years) leaves room for the server's clock in 2**63.
_PX_MAX = 2**62

# Everything redis-py raises: RedisError, and the cluster client's RedisClusterException
# family (RedisClusterUnreachableError, SlotNotCoveredError, ...), which does not derive from
# RedisError and so escaped a plain `except RedisError`.
_DRIVER_ERRORS = (rexc.RedisError, rexc.RedisClusterException)

_CERT_REQS = {"required": "required", "optional": "optional", "none": "none"}


def _ms(ttl: float) -> int:
    """Seconds -> whole milliseconds, rounded up so a tiny ttl never becomes 0 (an error)."""
    # Redis stores now + ttl in signed 64-bit milliseconds and answers a PX past that with an
    # error that reads like a wrong type ("not an integer or out of range"): refuse it here.
    if not math.isfinite(ttl) or ttl * 1000 > _PX_MAX:
        raise InvalidTTL(f"redis: ttl {ttl!r} is out of the range Redis can store (2**62 milliseconds)")
    return max(1, math.ceil(ttl * 1000))


def _translating(operation: str) -> Callable[[_M], _M]:
    """Wrap one contract method so that redis-py's errors leave it as stratacache errors."""

    def decorate(method: _M) -> _M:
        @functools.wraps(method)
        async def wrapper(self: AsyncRedisBackend, *args: Any) -> Any:
            if asyncio.get_running_loop() is not self._binding.loop:  # unasync: remove
                self._binding.check()  # unasync: remove
            try:
                return await method(self, *args)
            except _DRIVER_ERRORS as exc:
                key = args[0] if args and isinstance(args[0], str) else None
                raise self._translate(exc, operation, key) from exc

        return cast(_M, wrapper)

    return decorate


class AsyncRedisBackend(AsyncBackend):
    """A cache on a Redis server, a Redis Cluster, or a Sentinel-managed primary.

    Connection keywords (each also a URL query parameter): ``host``/``port``/``db``,
    ``username``/``password`` (ACL), ``unix_socket_path``; TLS with ``ssl=True`` (the
    ``rediss://`` scheme) and ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``,
    ``ssl_cert_reqs`` (required/optional/none), ``ssl_check_hostname``; ``pool_size``
    connections at most (callers wait up to ``timeout`` for a free one), ``connect_timeout``
    and ``timeout`` (socket read/write) in seconds, ``retries`` on connection errors with
    exponential backoff from ``retry_backoff`` seconds, ``health_check_interval`` (seconds
    between PINGs on idle connections; 0 = off), ``client_name``; ``scan_count`` keys per
    SCAN/UNLINK batch. ``mode`` is ``standalone``, ``cluster`` (``nodes`` = startup
    addresses) or ``sentinel`` (``sentinels`` + ``service_name``, with
    ``sentinel_username``/``sentinel_password`` for the Sentinels themselves).
    """

    name: ClassVar[str] = "redis"
    capabilities: ClassVar[Capabilities] = Capabilities(
        stores_objects=False, delete_pattern=True, collections=True, versions=True
    )

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        *,
        username: str | None = None,
        password: str | None = None,
        unix_socket_path: str | None = None,
        ssl: bool = False,
        ssl_ca_certs: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        ssl_cert_reqs: str | None = None,
        ssl_check_hostname: bool = False,
        pool_size: int = 16,
        connect_timeout: float = 2.0,
        timeout: float = 2.0,
        retries: int = 3,
        retry_backoff: float = 0.02,
        health_check_interval: float = 0.0,
        client_name: str | None = None,
        scan_count: int = 500,
        mode: str | None = None,
        nodes: Sequence[tuple[str, int]] | None = None,
        sentinels: Sequence[tuple[str, int]] | None = None,
        service_name: str | None = None,
        sentinel_username: str | None = None,
        sentinel_password: str | None = None,
    ) -> None:
        mode = mode or ("cluster" if nodes else "sentinel" if sentinels else "standalone")
        if mode not in ("standalone", "cluster", "sentinel"):
            raise ConfigurationError(
                f"parameter 'mode': expected standalone, cluster or sentinel, got {mode!r}"
            )
        if ssl_cert_reqs is not None and ssl_cert_reqs not in _CERT_REQS:
            raise ConfigurationError(
                f"parameter 'ssl_cert_reqs': expected required, optional or none, got {ssl_cert_reqs!r}"
            )
        for name, number in (("pool_size", pool_size), ("scan_count", scan_count)):
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise ConfigurationError(f"parameter {name!r}: expected a positive integer, got {number!r}")
        for name, secret in (("password", password), ("sentinel_password", sentinel_password)):
            if secret is not None and not isinstance(secret, (str, bytes)):
                raise ConfigurationError(
                    f"parameter {name!r}: expected a string, got a {type(secret).__name__} "
                    "(the value is not shown)"
                )
        # Masked out of any driver message passed on (see _translate).
        self._secrets = tuple(s for s in (password, sentinel_password) if s)
        self.mode = mode
        self.scan_count = scan_count
        self._db = db
        self._where = _describe_where(mode, host, port, db, unix_socket_path, nodes, sentinels, service_name)
        # Retry a command only on connection errors: a timeout may mean the server did run
        # it, and retrying an INCR would count twice (and a hung server would cost
        # (retries + 1) x timeout). Retry's own default also retries TimeoutError, and
        # retry_on_error only adds to that list, hence supported_errors.
        retry = Retry(
            ExponentialWithJitterBackoff(base=retry_backoff, cap=1.0),
            retries,
            supported_errors=(rexc.ConnectionError,),
        )
        common: dict[str, Any] = {
            "username": username,
            "password": password,
            "socket_connect_timeout": connect_timeout,
            "socket_timeout": timeout,
            "retry": retry,
            "retry_on_error": [rexc.ConnectionError],
            "health_check_interval": health_check_interval,
            "client_name": client_name,
        }
        tls: dict[str, Any] = {}
        if ssl:
            tls = {
                "ssl_ca_certs": ssl_ca_certs,
                "ssl_certfile": ssl_certfile,
                "ssl_keyfile": ssl_keyfile,
                "ssl_cert_reqs": ssl_cert_reqs or "required",
                "ssl_check_hostname": ssl_check_hostname,
            }
        elif any((ssl_ca_certs, ssl_certfile, ssl_keyfile)):
            raise ConfigurationError(
                "TLS files were given without ssl=True (use a rediss:// URL or ssl=true)"
            )
        self._sentinel: Any = None
        self._client: Any
        try:
            if mode == "cluster":
                if not nodes:
                    raise ConfigurationError("a Redis Cluster needs at least one startup node ('nodes')")
                if db:
                    raise ConfigurationError("Redis Cluster has only database 0; 'db' must be 0")
                self._client = RedisCluster(
                    startup_nodes=[_ClusterNode(h, p) for h, p in nodes],
                    max_connections=pool_size,
                    ssl=ssl,
                    **tls,
                    **common,
                )
            elif mode == "sentinel":
                if not sentinels or not service_name:
                    raise ConfigurationError("Sentinel mode needs 'sentinels' and 'service_name'")
                sentinel_kwargs = {
                    "username": sentinel_username,
                    "password": sentinel_password,
                    "socket_connect_timeout": connect_timeout,
                    "socket_timeout": timeout,
                }
                self._sentinel = _Sentinel(
                    list(sentinels), sentinel_kwargs=sentinel_kwargs, db=db, ssl=ssl, **tls, **common
                )
                self._client = self._sentinel.master_for(service_name, max_connections=pool_size)
            else:
                pool_kwargs: dict[str, Any] = {"db": db, **common}
                if unix_socket_path:
                    pool_kwargs.update(connection_class=UnixDomainSocketConnection, path=unix_socket_path)
                elif ssl:
                    pool_kwargs.update(connection_class=SSLConnection, host=host, port=port, **tls)
                else:
                    pool_kwargs.update(connection_class=Connection, host=host, port=port)
                # A blocking pool makes a burst wait (up to ``timeout``) for a free connection
                # instead of failing with "Too many connections".
                pool = _BlockingConnectionPool(max_connections=pool_size, timeout=timeout, **pool_kwargs)
                self._client = Redis.from_pool(pool)  # from_pool: closing the client closes the pool
        except CacheError:
            raise
        except _DRIVER_ERRORS as exc:  # the sync cluster client connects in its constructor
            raise self._translate(exc, "connect", None) from exc
        except (TypeError, ValueError) as exc:
            text = scrub(str(exc), self._secrets)
            raise ConfigurationError(f"redis backend ({self._where}): {text}") from exc
        self._cluster = mode == "cluster"
        # The event loop the client's connections belong to (see _drivers/loops.py).
        self._binding = LoopBinding(self.describe())  # unasync: remove

    # ------------------------------------------------------------------ plumbing

    @property
    def client(self) -> Any:
        """The redis-py client (``redis.asyncio`` in this flavour), e.g. for pub/sub."""
        return self._client

    @property
    def is_cluster(self) -> bool:
        """True on a Redis Cluster (pub/sub there goes through the cluster client)."""
        return self._cluster

    def describe(self) -> str:
        """Where the backend points, without credentials."""
        return f"redis {self._where}"

    def _translate(self, exc: Exception, operation: str, key: str | None) -> CacheError:
        """The stratacache error for a redis-py error raised by ``operation`` on ``key``."""
        where = f"{self.describe()}: {operation}()" + (f" on key {key!r}" if key is not None else "")
        text = scrub(str(exc), self._secrets)
        if isinstance(exc, rexc.AuthenticationError) or "WRONGPASS" in text or "NOAUTH" in text:
            return AccessDenied(f"{where}: authentication failed (wrong username or password?): {text}")
        if isinstance(exc, rexc.NoPermissionError):
            return AccessDenied(f"{where}: the ACL user may not run this: {text}")
        if isinstance(exc, rexc.TimeoutError):
            return CacheTimeout(f"{where}: no answer within the timeout: {text}")
        if isinstance(exc, (rexc.ConnectionError, rexc.ClusterError, rexc.BusyLoadingError)):
            return BackendUnavailable(f"{where}: {text or type(exc).__name__}")
        if "WRONGTYPE" in text:
            return WrongType(f"{operation} on key {key!r}: the key holds another kind of value")
        if "invalid expire time" in text:
            # Redis's own range (milliseconds from now must fit a signed 64-bit time).
            return InvalidTTL(f"{where}: the ttl is out of the range Redis can store: {text}")
        if "not an integer" in text or "not a valid float" in text:
            return WrongType(f"{operation} on key {key!r}: the value is not an integer")
        if "overflow" in text:
            return InvalidArgument(
                f"{operation} on key {key!r}: the result would overflow Redis's 64-bit integer"
            )
        if isinstance(exc, rexc.ReadOnlyError):
            return BackendUnavailable(f"{where}: the server is a read-only replica: {text}")
        if isinstance(exc, rexc.RedisClusterException):
            if "cluster mode is not enabled" in text.lower():
                return BackendUnavailable(
                    f"{where}: the server is not a Redis Cluster node (for a standalone server use "
                    f"redis://, not redis+cluster://): {text}"
                )
            return BackendUnavailable(f"{where}: {type(exc).__name__}: {text}")
        return BackendUnavailable(f"{where}: {type(exc).__name__}: {text}")

    def _scan(self, match: str) -> AsyncIterator[Any]:
        """The raw keys matching ``match``: SCAN MATCH with ``scan_count`` as its COUNT hint,
        on every primary of a cluster; never KEYS, which would block the server. The one
        enumeration behind ``iter_keys``, ``delete_pattern``, ``clear`` and ``counters``."""
        iterator: AsyncIterator[Any] = self._client.scan_iter(match=match, count=self.scan_count)
        return iterator

    async def _scan_delete(self, match: str) -> int:
        """Delete every key matching ``match`` by SCAN + UNLINK in batches of ``scan_count``."""
        deleted = 0
        batch: list[Any] = []
        # Raw keys, not iter_keys' decoded ones: a key that is not UTF-8 is still deleted.
        async for key in self._scan(match):
            batch.append(key)
            if len(batch) >= self.scan_count:
                deleted += await self._client.unlink(*batch)
                batch = []
        if batch:
            deleted += await self._client.unlink(*batch)
        return deleted

    # ------------------------------------------------------------------ plain values

    @_translating("get")
    async def get(self, key: str) -> Any:
        """GET."""
        value = await self._client.get(key)
        return MISSING if value is None else value

    @_translating("get_many")
    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        """One MGET (one per hash slot on a cluster)."""
        if not keys:
            return {}
        values = await (self._client.mget_nonatomic(keys) if self._cluster else self._client.mget(keys))
        return {key: value for key, value in zip(keys, values, strict=True) if value is not None}

    @_translating("set")
    async def set(self, key: str, value: Any, ttl: float | None) -> None:
        """SET [PX]."""
        await self._client.set(key, value, px=None if ttl is None else _ms(ttl))

    @_translating("set_many")
    async def set_many(self, items: Mapping[str, Any], ttl: float | None) -> None:
        """MSET without a ttl; with one, a pipeline of SET PX (one round trip either way)."""
        if not items:
            return
        if ttl is None:
            if self._cluster:
                await self._client.mset_nonatomic(dict(items))
            else:
                await self._client.mset(dict(items))
            return
        px = _ms(ttl)
        async with self._client.pipeline(transaction=False) as pipe:
            for key, value in items.items():
                pipe.set(key, value, px=px)
            await pipe.execute()

    @_translating("add")
    async def add(self, key: str, value: Any, ttl: float | None) -> bool:
        """SET NX [PX]."""
        return bool(await self._client.set(key, value, nx=True, px=None if ttl is None else _ms(ttl)))

    @_translating("delete")
    async def delete(self, key: str) -> bool:
        """UNLINK (frees memory off the server's main thread)."""
        return bool(await self._client.unlink(key))

    @_translating("delete_many")
    async def delete_many(self, keys: list[str]) -> int:
        """One UNLINK (split by slot on a cluster)."""
        if not keys:
            return 0
        return int(await self._client.unlink(*keys))

    @_translating("exists")
    async def exists(self, key: str) -> bool:
        """EXISTS."""
        return bool(await self._client.exists(key))

    @_translating("incr")
    async def incr(self, key: str, delta: int) -> int:
        """INCRBY: creates from 0, keeps the expiry, refuses a non-integer value."""
        return int(await self._client.incrby(key, delta))

    @_translating("expire")
    async def expire(self, key: str, ttl: float | None) -> bool:
        """PEXPIRE, or an atomic exists-then-PERSIST script for ``None``."""
        if ttl is None:
            return bool(await self._client.eval(_PERSIST, 1, key))
        return bool(await self._client.pexpire(key, _ms(ttl)))

    @_translating("ttl")
    async def ttl(self, key: str) -> float | Missing | None:
        """PTTL: -2 absent, -1 no expiry."""
        remaining = int(await self._client.pttl(key))
        if remaining == -2:
            return MISSING
        if remaining == -1:
            return None
        return remaining / 1000.0

    async def iter_keys(self, pattern: str) -> AsyncIterator[str]:
        """SCAN MATCH, ``scan_count`` keys per round trip (every primary on a cluster); a key
        that is not UTF-8 (not written by stratacache) comes out with U+FFFD replacements."""
        if asyncio.get_running_loop() is not self._binding.loop:  # unasync: remove
            self._binding.check()  # unasync: remove
        try:
            async for key in self._scan(pattern):
                yield key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        except _DRIVER_ERRORS as exc:
            raise self._translate(exc, "iter_keys", None) from exc

    @_translating("delete_pattern")
    async def delete_pattern(self, pattern: str) -> int:
        """SCAN MATCH + UNLINK in batches (every primary on a cluster)."""
        return await self._scan_delete(pattern)

    @_translating("clear")
    async def clear(self, prefix: str | None) -> None:
        """FLUSHDB for a cache without namespace; otherwise SCAN + UNLINK of the prefix."""
        if prefix is None:
            await self._client.flushdb()
        else:
            await self._scan_delete(escape_glob(prefix) + "*")

    # ------------------------------------------------------------------ verbs

    @_translating("get_item")
    async def get_item(self, key: str) -> Item | Missing:
        """One script: GET and PTTL together; the version is the SHA-1 of the bytes."""
        found = await self._client.eval(_GET_ITEM, 1, key)
        if not found:  # Lua's false: a nil reply (a RESP3 false from some servers)
            return MISSING
        value, remaining = found[0], int(found[1])
        expires_at = None if remaining < 0 else time.time() + remaining / 1000.0
        version = hashlib.sha1(value, usedforsecurity=False).hexdigest()
        return Item(key, value, version, None, expires_at, (), len(value))

    @_translating("set_if_version")
    async def set_if_version(self, key: str, value: Any, ttl: float | None, version: int | str) -> bool:
        """A script: SET [PX] only if the SHA-1 of the stored bytes is still ``version``."""
        if type(version) is not str or _SHA1_HEX.fullmatch(version) is None:
            return False  # no stored value has that version
        px = "" if ttl is None else str(_ms(ttl))
        return bool(await self._client.eval(_SET_IF_VERSION, 1, key, version, value, px))

    @_translating("delete_if_version")
    async def delete_if_version(self, key: str, version: int | str) -> bool:
        """A script: DEL only if the SHA-1 of the stored bytes is still ``version``."""
        if type(version) is not str or _SHA1_HEX.fullmatch(version) is None:
            return False
        return bool(await self._client.eval(_DELETE_IF_VERSION, 1, key, version))

    @_translating("pull")
    async def pull(self, key: str) -> Any:
        """GETDEL (Redis 6.2+): one atomic command."""
        value = await self._client.getdel(key)
        return MISSING if value is None else value

    @_translating("replace")
    async def replace(self, key: str, value: Any, ttl: float | None) -> bool:
        """SET XX [PX]."""
        return bool(await self._client.set(key, value, xx=True, px=None if ttl is None else _ms(ttl)))

    # ------------------------------------------------------------------ lists

    @_translating("push")
    async def push(self, key: str, values: list[Any], left: bool) -> int:
        """LPUSH / RPUSH."""
        return int(await (self._client.lpush(key, *values) if left else self._client.rpush(key, *values)))

    @_translating("pop")
    async def pop(self, key: str, left: bool) -> Any:
        """LPOP / RPOP."""
        value = await (self._client.lpop(key) if left else self._client.rpop(key))
        return MISSING if value is None else value

    @_translating("llen")
    async def llen(self, key: str) -> int:
        """LLEN."""
        return int(await self._client.llen(key))

    @_translating("lrange")
    async def lrange(self, key: str, start: int, stop: int) -> list[Any]:
        """LRANGE."""
        return list(await self._client.lrange(key, start, stop))

    # ------------------------------------------------------------------ sets

    @_translating("sadd")
    async def sadd(self, key: str, members: list[Any]) -> int:
        """SADD."""
        return int(await self._client.sadd(key, *members))

    @_translating("srem")
    async def srem(self, key: str, members: list[Any]) -> int:
        """SREM."""
        return int(await self._client.srem(key, *members))

    @_translating("smembers")
    async def smembers(self, key: str) -> builtins.set[Any]:
        """SMEMBERS."""
        return builtins.set(await self._client.smembers(key))

    @_translating("sismember")
    async def sismember(self, key: str, member: Any) -> bool:
        """SISMEMBER."""
        return bool(await self._client.sismember(key, member))

    @_translating("scard")
    async def scard(self, key: str) -> int:
        """SCARD."""
        return int(await self._client.scard(key))

    # ------------------------------------------------------------------ hashes

    @_translating("hset")
    async def hset(self, key: str, mapping: Mapping[str, Any]) -> int:
        """HSET with several fields."""
        return int(await self._client.hset(key, mapping=dict(mapping)))

    @_translating("hget")
    async def hget(self, key: str, field: str) -> Any:
        """HGET."""
        value = await self._client.hget(key, field)
        return MISSING if value is None else value

    @_translating("hgetall")
    async def hgetall(self, key: str) -> dict[str, Any]:
        """HGETALL; field names decoded from UTF-8 (they were written as str)."""
        raw = await self._client.hgetall(key)
        return {name.decode() if isinstance(name, bytes) else name: value for name, value in raw.items()}

    @_translating("hdel")
    async def hdel(self, key: str, fields: list[str]) -> int:
        """HDEL."""
        return int(await self._client.hdel(key, *fields))

    @_translating("hexists")
    async def hexists(self, key: str, field: str) -> bool:
        """HEXISTS."""
        return bool(await self._client.hexists(key, field))

    @_translating("hlen")
    async def hlen(self, key: str) -> int:
        """HLEN."""
        return int(await self._client.hlen(key))

    @_translating("hincrby")
    async def hincrby(self, key: str, field: str, delta: int) -> int:
        """HINCRBY."""
        return int(await self._client.hincrby(key, field, delta))

    # ------------------------------------------------------------------ lifecycle

    @_translating("ping")
    async def ping(self) -> None:
        """PING (every node on a cluster)."""
        await self._client.ping()

    @_translating("counters")
    async def counters(self, prefix: str | None) -> BackendCounters:
        """Keys (DBSIZE, or a SCAN count under a namespace), memory and the server's counters."""
        if prefix is None:
            items = int(await self._client.dbsize())
        else:
            items = 0
            async for _ in self._scan(escape_glob(prefix) + "*"):
                items += 1
        stats = _merge_info(await self._client.info("stats"))
        memory = _merge_info(await self._client.info("memory"))
        return BackendCounters(
            items=items,
            bytes=int(memory.get("used_memory", 0)) if prefix is None else 0,
            evictions=int(stats.get("evicted_keys", 0)),
            expirations=int(stats.get("expired_keys", 0)),
        )

    async def close(self) -> None:
        """Close the connection pool (and the Sentinel connections). Idempotent."""
        bound = self._binding.loop  # unasync: remove
        if bound is not None and bound is not asyncio.get_running_loop():  # unasync: remove
            if not bound.is_closed():
                raise self._binding.error()
            return  # its loop is gone, and the connections' transports with it
        try:
            await close_client(self._client)
            if self._sentinel is not None:
                for sentinel in self._sentinel.sentinels:
                    await close_client(sentinel)
        except _DRIVER_ERRORS:  # closing a pool whose server is gone is not an error
            pass

    # ---- limits: server-side scripts (the rate limiter's atomic steps)

    can_run_scripts: ClassVar[bool] = True
    """Scripts run atomically here (Redis, Cluster, Sentinel, and ``stratacache serve``)."""

    async def run_script(self, script: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        """Run a Lua ``script`` atomically with ``KEYS`` and ``ARGV``; its reply.

        EVALSHA first (the script's body travels once per server), EVAL when the server
        does not know the script yet (which also caches it there). On a cluster every key
        must hash to one slot (one key always does). Errors name the first key, not the
        script.
        """
        if asyncio.get_running_loop() is not self._binding.loop:  # unasync: remove
            self._binding.check()  # unasync: remove
        digest = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
        try:
            try:
                return await self._client.evalsha(digest, len(keys), *keys, *args)
            except rexc.NoScriptError:
                return await self._client.eval(script, len(keys), *keys, *args)
        except _DRIVER_ERRORS as exc:
            raise self._translate(exc, "run_script", keys[0] if keys else None) from exc


def _describe_where(  # noqa: PLR0917 - private, called once with every part
    mode: str,
    host: str,
    port: int,
    db: int,
    unix_socket_path: str | None,
    nodes: Sequence[tuple[str, int]] | None,
    sentinels: Sequence[tuple[str, int]] | None,
    service_name: str | None,
) -> str:
    """Where a backend points, without credentials."""
    if mode == "cluster":
        return "cluster " + ",".join(f"{h}:{p}" for h, p in nodes or ())
    if mode == "sentinel":
        return f"sentinel {','.join(f'{h}:{p}' for h, p in sentinels or ())}/{service_name}"
    if unix_socket_path:
        return f"unix:{unix_socket_path} db {db}"
    return f"{host}:{port}/{db}"


def _merge_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """INFO of one server as is; a cluster's per-node INFO summed field by field."""
    if info and all(isinstance(v, Mapping) for v in info.values()):
        total: dict[str, Any] = {}
        for node_info in info.values():
            for name, value in cast(Mapping[str, Any], node_info).items():
                if isinstance(value, int):
                    total[name] = total.get(name, 0) + value
        return total
    return dict(info)
