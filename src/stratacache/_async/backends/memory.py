"""The ``memory://`` backend: an in-process store, objects kept as they are."""

from __future__ import annotations

import asyncio  # unasync: remove
import builtins
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from ..._config import parse_ttl
from ..._exceptions import ConfigurationError
from ..._io.store_snapshot import PeriodicSaver, check_path, load_store, save_store
from ..._types import MISSING, Item, Missing
from ...core.memory_store import MemoryStore
from .base import AsyncBackend, BackendCounters, Capabilities

if TYPE_CHECKING:
    from ...core.pool import MemoryPool

__all__ = ["AsyncMemoryBackend"]

_IS_ASYNC = True
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_POLICY = "tinylfu"
# Contract methods whose MemoryStore twin has the same name and signature.
_SAME_AS_STORE = (
    "get", "get_many", "set", "set_many", "add", "delete", "delete_many", "exists", "incr",
    "expire", "ttl", "delete_pattern", "clear", "push", "pop", "llen", "lrange",
    "sadd", "srem", "smembers", "sismember", "scard",
    "hset", "hget", "hgetall", "hdel", "hexists", "hlen", "hincrby",
    "set_if_version", "delete_if_version", "pull", "replace",
)  # fmt: skip


class AsyncMemoryBackend(AsyncBackend):
    """An in-process cache on the in-memory engine (:class:`~stratacache.core.memory_store.MemoryStore`).

    ``max_entries`` bounds the number of keys (default 10,000; ``None`` for unbounded),
    ``max_bytes`` their total weight (``weigher(key, value) -> int``, default an estimate
    documented in :func:`~stratacache.core.memory_store.default_weigher`); ``policy`` is
    ``tinylfu`` (default), ``lru``, ``lfu``, ``fifo``, ``random`` or a registered name;
    ``expire_after_access`` turns on sliding expiry; ``clock`` is a callable returning
    monotonic seconds, for tests (see ``FakeClock``); ``pool`` shares a byte budget with
    other stores; ``store`` runs the backend on an existing store (e.g. one of an Engine's).
    Values are stored as the objects you pass, like ``cachetools``: mutating a stored
    object mutates the cached value. Configure a ``serializer`` on the cache to store copies.

    ``snapshot`` (a file path) gives warm restarts: the file is loaded when a cache is built
    over the backend (expired entries dropped; a missing file is an empty start; a corrupt
    one raises :class:`~stratacache.SnapshotError` naming the file and the offset) and saved
    at ``close()``, and every ``snapshot_interval`` seconds when given (a daemon thread),
    always atomically. The format is the server's (docs/persistence.md).
    """

    name: ClassVar[str] = "memory"
    capabilities: ClassVar[Capabilities] = Capabilities(
        stores_objects=True, delete_pattern=True, collections=True, versions=True
    )

    def __init__(
        self,
        *,
        max_entries: int | None = DEFAULT_MAX_ENTRIES,
        max_bytes: int | None = None,
        policy: str = DEFAULT_POLICY,
        weigher: Callable[[str, Any], int] | None = None,
        expire_after_access: float | None = None,
        clock: Callable[[], float] | None = None,
        pool: MemoryPool | None = None,
        store: MemoryStore | None = None,
        snapshot: str | os.PathLike[str] | None = None,
        snapshot_interval: float | timedelta | None = None,
    ) -> None:
        interval = parse_ttl("snapshot_interval", snapshot_interval)
        if interval is not None and snapshot is None:
            raise ConfigurationError("snapshot_interval: needs a snapshot file (snapshot=...)")
        self.snapshot_path = None if snapshot is None else check_path(os.fspath(snapshot))
        self._snapshot_interval = interval
        self._snapshot_codec: Any = None
        self._snapshot_opened = False
        self._saver: PeriodicSaver | None = None
        if store is not None:
            if not isinstance(store, MemoryStore):
                raise ConfigurationError(f"store must be a MemoryStore, got {type(store).__name__}")
            self.store = store
            # A store handed in (an Engine's) belongs to its owner; close() leaves it alone.
            self._owns_store = False
        else:
            self.store = MemoryStore(
                max_entries=max_entries,
                max_bytes=max_bytes,
                policy=policy,
                weigher=weigher,
                expire_after_access=expire_after_access,
                clock=clock,
                pool=pool,
            )
            self._owns_store = True
        self.policy = self.store.policy_name
        if not _IS_ASYNC:
            # The sync flavour calls the store's own methods: same names, same signatures,
            # one Python frame less on every operation.
            for name in _SAME_AS_STORE:
                setattr(self, name, getattr(self.store, name))

    def describe(self) -> str:
        """Policy and bounds."""
        store = self.store
        return f"memory(policy={self.policy}, max_entries={store.max_entries}, max_bytes={store.max_bytes})"

    @property
    def fused_get(self) -> Any:
        """The store's one-frame ``get`` builder, used by the sync facade (see MemoryStore.fused_get)."""
        return self.store.fused_get

    @property
    def fused_set(self) -> Any:
        """The store's one-frame ``set`` builder, used by the sync facade (see MemoryStore.fused_set)."""
        return self.store.fused_set

    async def get(self, key: str) -> Any:
        return self.store.get(key)

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        return self.store.get_many(keys)

    async def set(self, key: str, value: Any, ttl: float | None) -> None:
        self.store.set(key, value, ttl)

    async def set_many(self, items: Mapping[str, Any], ttl: float | None) -> None:
        self.store.set_many(items, ttl)

    async def add(self, key: str, value: Any, ttl: float | None) -> bool:
        return self.store.add(key, value, ttl)

    async def delete(self, key: str) -> bool:
        return self.store.delete(key)

    async def delete_many(self, keys: list[str]) -> int:
        return self.store.delete_many(keys)

    async def exists(self, key: str) -> bool:
        return self.store.exists(key)

    async def incr(self, key: str, delta: int) -> int:
        return self.store.incr(key, delta)

    async def expire(self, key: str, ttl: float | None) -> bool:
        return self.store.expire(key, ttl)

    async def ttl(self, key: str) -> float | Missing | None:
        return self.store.ttl(key)

    async def iter_keys(self, pattern: str) -> AsyncIterator[str]:
        """The store's live keys matching ``pattern`` (the walk ``delete_pattern`` makes), taken
        under its lock at the first step: the keys are in memory already."""
        for key in self.store.keys(pattern):
            yield key

    async def delete_pattern(self, pattern: str) -> int:
        return self.store.delete_pattern(pattern)

    async def clear(self, prefix: str | None) -> None:
        self.store.clear(prefix)

    async def get_item(self, key: str) -> Item | Missing:
        """The store's entry as an Item, its monotonic times turned into unix times."""
        found = self.store.item(key)
        if found is None:
            return MISSING
        value, info = found
        # The store runs on its own (monotonic, or a test's fake) clock: shift by the offset.
        offset = time.time() - self.store.clock()
        expires = None if info.expires is None else info.expires + offset
        # Bytes (a cache with a serializer) have a size; objects only a weight, when weighed.
        size = len(value) if type(value) is bytes else (info.weight or None)
        return Item(key, value, info.version, info.created + offset, expires, (), size)

    async def set_if_version(self, key: str, value: Any, ttl: float | None, version: int | str) -> bool:
        return self.store.set_if_version(key, value, ttl, version)

    async def delete_if_version(self, key: str, version: int | str) -> bool:
        return self.store.delete_if_version(key, version)

    async def pull(self, key: str) -> Any:
        return self.store.pull(key)

    async def replace(self, key: str, value: Any, ttl: float | None) -> bool:
        return self.store.replace(key, value, ttl)

    async def push(self, key: str, values: list[Any], left: bool) -> int:
        return self.store.push(key, values, left)

    async def pop(self, key: str, left: bool) -> Any:
        return self.store.pop(key, left)

    async def llen(self, key: str) -> int:
        return self.store.llen(key)

    async def lrange(self, key: str, start: int, stop: int) -> list[Any]:
        return self.store.lrange(key, start, stop)

    async def sadd(self, key: str, members: list[Any]) -> int:
        return self.store.sadd(key, members)

    async def srem(self, key: str, members: list[Any]) -> int:
        return self.store.srem(key, members)

    async def smembers(self, key: str) -> builtins.set[Any]:
        return self.store.smembers(key)

    async def sismember(self, key: str, member: Any) -> bool:
        return self.store.sismember(key, member)

    async def scard(self, key: str) -> int:
        return self.store.scard(key)

    async def hset(self, key: str, mapping: Mapping[str, Any]) -> int:
        return self.store.hset(key, mapping)

    async def hget(self, key: str, field: str) -> Any:
        return self.store.hget(key, field)

    async def hgetall(self, key: str) -> dict[str, Any]:
        return self.store.hgetall(key)

    async def hdel(self, key: str, fields: list[str]) -> int:
        return self.store.hdel(key, fields)

    async def hexists(self, key: str, field: str) -> bool:
        return self.store.hexists(key, field)

    async def hlen(self, key: str) -> int:
        return self.store.hlen(key)

    async def hincrby(self, key: str, field: str, delta: int) -> int:
        return self.store.hincrby(key, field, delta)

    async def ping(self) -> None:
        return None

    async def counters(self, prefix: str | None) -> BackendCounters:
        store = self.store
        counters = store.counters(prefix)
        return BackendCounters(
            items=counters.items,
            bytes=counters.bytes,
            evictions=counters.evictions,
            expirations=counters.expirations,
        )

    def attach_cache(self, codec: Any | None) -> None:
        """Load the snapshot (once, by the first cache built over the backend: its codec
        says how values are stored) and start the periodic saver."""
        if self.snapshot_path is None or self._snapshot_opened:
            return
        self._snapshot_opened = True
        self._snapshot_codec = codec
        load_store(self.store, self.snapshot_path, codec)
        if self._snapshot_interval is not None:
            self._saver = PeriodicSaver(self.save_snapshot, self._snapshot_interval, self.snapshot_path)

    def save_snapshot(self) -> int:
        """Write the snapshot file now (atomically); the number of keys saved. Blocking
        file I/O, in both flavours. SnapshotError naming the path when it cannot be written."""
        if self.snapshot_path is None:
            raise ConfigurationError("save_snapshot: this memory backend has no snapshot file")
        return save_store(self.store, self.snapshot_path, self._snapshot_codec)

    async def close(self) -> None:
        saver, self._saver = self._saver, None
        if saver is not None:
            saver.stop()
        try:
            if self._snapshot_opened and self.snapshot_path is not None:
                # Only after a load: a backend never opened by a cache would save an empty
                # store over the file.
                self._snapshot_opened = False
                if _IS_ASYNC:  # unasync: remove
                    # Seconds of file I/O for a big store: off the event loop.
                    await asyncio.to_thread(self.save_snapshot)
                    return
                self.save_snapshot()
        finally:
            # A store handed in (an Engine's) belongs to its owner; only our own is released.
            if self._owns_store:
                self.store.close()
