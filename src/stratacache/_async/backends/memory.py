"""The ``memory://`` backend: an in-process store, objects kept as they are."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ..._exceptions import ConfigurationError
from ..._types import Missing
from ...core.memory_store import MemoryStore
from .base import AsyncBackend, BackendCounters, Capabilities

__all__ = ["AsyncMemoryBackend"]

POLICIES = ("lru",)
DEFAULT_MAX_ENTRIES = 10_000


class AsyncMemoryBackend(AsyncBackend):
    """An in-process cache: LRU by entries, per-entry TTL, thread-safe.

    ``max_entries`` bounds the number of keys (default 10,000; ``None`` for unbounded).
    ``clock`` is a callable returning monotonic seconds, for tests (see ``FakeClock``).
    Values are stored as the objects you pass, like ``cachetools``: mutating a stored
    object mutates the cached value. Configure a ``serializer`` on the cache to store copies.
    """

    name: ClassVar[str] = "memory"
    capabilities: ClassVar[Capabilities] = Capabilities(stores_objects=True)

    def __init__(
        self,
        *,
        max_entries: int | None = DEFAULT_MAX_ENTRIES,
        policy: str = "lru",
        clock: Callable[[], float] | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise ConfigurationError(
                f"unknown policy {policy!r} for memory backend; valid: {', '.join(POLICIES)}"
            )
        if clock is not None and not callable(clock):
            raise ConfigurationError(
                f"clock must be a callable returning seconds, got {type(clock).__name__}"
            )
        self.policy = policy
        self.store = MemoryStore(max_entries=max_entries, clock=clock)

    def describe(self) -> str:
        """Policy and bound."""
        return f"memory(policy={self.policy}, max_entries={self.store.max_entries})"

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

    async def delete_pattern(self, pattern: str) -> int:
        return self.store.delete_pattern(pattern)

    async def clear(self, prefix: str | None) -> None:
        self.store.clear(prefix)

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
        return BackendCounters(
            items=store.count(prefix), evictions=store.evictions, expirations=store.expirations
        )
