"""The ``file://`` backend: a durable on-disk cache that threads and processes can share.

URL: ``file:///absolute/path/to/dir?max_bytes=1000000000&policy=lru`` (or the ``directory``
keyword). The engine is :class:`~stratacache._io.file_store.FileStore` (an SQLite index in
WAL mode, large values in their own files); this backend only hands it each call, in a worker
thread in the async flavour (``_drivers.offload_async``) and directly in the generated sync
one. The store translates sqlite3 and OS errors into the stratacache tree. See
``docs/file-backend.md`` for the options, durability and crash-safety guarantees.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, ClassVar

from ..._drivers.offload_async import run
from ..._exceptions import ConfigurationError
from ..._io.file_store import FileStore
from ..._types import Item, Missing
from .base import AsyncBackend, BackendCounters, Capabilities

__all__ = ["AsyncFileBackend"]

_IS_ASYNC = True
# Keys per index query of iter_keys: one thread hop per page in the async flavour, and a
# bounded list per step whatever the size of the key space.
ITER_KEYS_PAGE = 1000
# Contract methods whose FileStore twin has the same name and signature.
_SAME_AS_STORE = (
    "get", "get_many", "set", "set_many", "add", "delete", "delete_many", "exists", "incr",
    "expire", "ttl", "delete_pattern", "clear", "push", "pop", "llen", "lrange",
    "sadd", "srem", "smembers", "sismember", "scard",
    "hset", "hget", "hgetall", "hdel", "hexists", "hlen", "hincrby", "ping",
    "get_item", "set_if_version", "delete_if_version", "pull", "replace",
)  # fmt: skip


class AsyncFileBackend(AsyncBackend):
    """A cache in a directory, shared by every thread and process that opens it.

    ``directory`` (created with ``dir_mode``, default 0o700, if missing); ``file_mode``
    (default 0o600) for the database and value files; ``prefix`` for value file names;
    ``max_bytes`` bounds keys + values (None: unbounded), evicting by ``policy`` (``lru``
    default, ``lfu``, ``fifo``); ``janitor_interval`` seconds between sweeps of expired
    entries (default 60; None: none); ``inline_threshold`` bytes (default 32 KiB): larger
    values get their own file; ``sync``: ``normal`` (default) or ``full`` (every write
    survives power loss once it returns); ``timeout``: seconds a write waits for another
    process's lock; ``clock``: wall-clock seconds, for tests (shared by all users).
    """

    name: ClassVar[str] = "file"
    capabilities: ClassVar[Capabilities] = Capabilities(
        stores_objects=False, delete_pattern=True, collections=True, versions=True
    )

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        file_mode: int = 0o600,
        dir_mode: int = 0o700,
        prefix: str = "",
        max_bytes: int | None = None,
        policy: str | None = "lru",
        janitor_interval: float | None = 60.0,
        inline_threshold: int = 32 * 1024,
        sync: str | None = "normal",
        timeout: float = 10.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if directory is None:
            raise ConfigurationError(
                "the file backend needs a directory: file:///path/to/dir or directory='/path/to/dir'"
            )
        self.store = FileStore(
            directory,
            file_mode=file_mode,
            dir_mode=dir_mode,
            prefix=prefix,
            max_bytes=max_bytes,
            policy=policy or "lru",
            janitor_interval=janitor_interval,
            inline_threshold=inline_threshold,
            sync=sync or "normal",
            timeout=timeout,
            clock=clock,
        )
        if not _IS_ASYNC:
            # The sync flavour calls the store's own methods: same names, same signatures,
            # one Python frame less on every operation.
            for method in _SAME_AS_STORE:
                setattr(self, method, getattr(self.store, method))

    @property
    def directory(self) -> str:
        """The cache directory (absolute)."""
        return self.store.directory

    def describe(self) -> str:
        """Directory, policy and bound."""
        return self.store.describe()

    async def get(self, key: str) -> Any:
        return await run(self.store.get, key)

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        return await run(self.store.get_many, keys)

    async def set(self, key: str, value: Any, ttl: float | None) -> None:
        await run(self.store.set, key, value, ttl)

    async def set_many(self, items: Mapping[str, Any], ttl: float | None) -> None:
        await run(self.store.set_many, items, ttl)

    async def add(self, key: str, value: Any, ttl: float | None) -> bool:
        return await run(self.store.add, key, value, ttl)

    async def delete(self, key: str) -> bool:
        return await run(self.store.delete, key)

    async def delete_many(self, keys: list[str]) -> int:
        return await run(self.store.delete_many, keys)

    async def get_item(self, key: str) -> Item | Missing:
        return await run(self.store.get_item, key)

    async def set_if_version(self, key: str, value: Any, ttl: float | None, version: int | str) -> bool:
        return await run(self.store.set_if_version, key, value, ttl, version)

    async def delete_if_version(self, key: str, version: int | str) -> bool:
        return await run(self.store.delete_if_version, key, version)

    async def pull(self, key: str) -> Any:
        return await run(self.store.pull, key)

    async def replace(self, key: str, value: Any, ttl: float | None) -> bool:
        return await run(self.store.replace, key, value, ttl)

    async def exists(self, key: str) -> bool:
        return await run(self.store.exists, key)

    async def incr(self, key: str, delta: int) -> int:
        return await run(self.store.incr, key, delta)

    async def expire(self, key: str, ttl: float | None) -> bool:
        return await run(self.store.expire, key, ttl)

    async def ttl(self, key: str) -> float | Missing | None:
        return await run(self.store.ttl, key)

    async def iter_keys(self, pattern: str) -> AsyncIterator[str]:
        """The index's live keys matching ``pattern``, in key order, a page of
        ``ITER_KEYS_PAGE`` keys per query (keyset pagination: each page starts after the last
        key of the one before, so a key present throughout the walk is seen exactly once)."""
        after: str | None = None
        while True:
            page = await run(self.store.keys_page, pattern, after, ITER_KEYS_PAGE)
            for key in page:
                yield key
            if len(page) < ITER_KEYS_PAGE:
                return
            after = page[-1]

    async def delete_pattern(self, pattern: str) -> int:
        return await run(self.store.delete_pattern, pattern)

    async def clear(self, prefix: str | None) -> None:
        await run(self.store.clear, prefix)

    async def push(self, key: str, values: list[Any], left: bool) -> int:
        return await run(self.store.push, key, values, left)

    async def pop(self, key: str, left: bool) -> Any:
        return await run(self.store.pop, key, left)

    async def llen(self, key: str) -> int:
        return await run(self.store.llen, key)

    async def lrange(self, key: str, start: int, stop: int) -> list[Any]:
        return await run(self.store.lrange, key, start, stop)

    async def sadd(self, key: str, members: list[Any]) -> int:
        return await run(self.store.sadd, key, members)

    async def srem(self, key: str, members: list[Any]) -> int:
        return await run(self.store.srem, key, members)

    async def smembers(self, key: str) -> builtins.set[Any]:
        return await run(self.store.smembers, key)

    async def sismember(self, key: str, member: Any) -> bool:
        return await run(self.store.sismember, key, member)

    async def scard(self, key: str) -> int:
        return await run(self.store.scard, key)

    async def hset(self, key: str, mapping: Mapping[str, Any]) -> int:
        return await run(self.store.hset, key, mapping)

    async def hget(self, key: str, field: str) -> Any:
        return await run(self.store.hget, key, field)

    async def hgetall(self, key: str) -> dict[str, Any]:
        return await run(self.store.hgetall, key)

    async def hdel(self, key: str, fields: list[str]) -> int:
        return await run(self.store.hdel, key, fields)

    async def hexists(self, key: str, field: str) -> bool:
        return await run(self.store.hexists, key, field)

    async def hlen(self, key: str) -> int:
        return await run(self.store.hlen, key)

    async def hincrby(self, key: str, field: str, delta: int) -> int:
        return await run(self.store.hincrby, key, field, delta)

    async def ping(self) -> None:
        await run(self.store.ping)

    async def counters(self, prefix: str | None) -> BackendCounters:
        counters = await run(self.store.counters, prefix)
        return BackendCounters(
            items=counters.items,
            bytes=counters.bytes,
            evictions=counters.evictions,
            expirations=counters.expirations,
            # Index entries naming a path the store refused to follow (docs/file-backend.md).
            details={"unsafe_paths": self.store.unsafe_paths},
        )

    async def close(self) -> None:
        """Flush, stop sweeping and close every connection. Idempotent."""
        await run(self.store.close)
