"""The ``null://`` backend: accepts every write and forgets it; every read misses.

Useful to switch caching off without changing code. Each write behaves as if it acted
on an empty key and was then forgotten: ``incr(k, 5)`` returns 5, ``lpush(k, a, b)``
returns 2, ``sadd`` counts distinct members, and every read finds nothing. The verbs read
the same way: ``get_item`` and ``pull`` miss, and ``replace`` and the compare-and-set and
compare-and-delete find no entry to act on, so they answer False.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from ..._types import MISSING, Item, Missing
from .base import AsyncBackend, Capabilities

__all__ = ["AsyncNullBackend"]


class AsyncNullBackend(AsyncBackend):
    """A backend that stores nothing."""

    name: ClassVar[str] = "null"
    capabilities: ClassVar[Capabilities] = Capabilities(
        stores_objects=True, retains_data=False, delete_pattern=True, collections=True, versions=True
    )

    async def get(self, key: str) -> Any:
        return MISSING

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        return {}

    async def set(self, key: str, value: Any, ttl: float | None) -> None:
        return None

    async def set_many(self, items: Mapping[str, Any], ttl: float | None) -> None:
        return None

    async def add(self, key: str, value: Any, ttl: float | None) -> bool:
        # The key is absent (nothing ever is present), so the add "succeeds".
        return True

    async def delete(self, key: str) -> bool:
        return False

    async def delete_many(self, keys: list[str]) -> int:
        return 0

    async def get_item(self, key: str) -> Item | Missing:
        return MISSING

    async def set_if_version(self, key: str, value: Any, ttl: float | None, version: int | str) -> bool:
        return False

    async def delete_if_version(self, key: str, version: int | str) -> bool:
        return False

    async def pull(self, key: str) -> Any:
        return MISSING

    async def replace(self, key: str, value: Any, ttl: float | None) -> bool:
        return False

    async def exists(self, key: str) -> bool:
        return False

    async def incr(self, key: str, delta: int) -> int:
        return delta

    async def expire(self, key: str, ttl: float | None) -> bool:
        return False

    async def ttl(self, key: str) -> float | Missing | None:
        return MISSING

    async def iter_keys(self, pattern: str) -> AsyncIterator[str]:
        """Nothing: the null backend holds no keys."""
        return
        yield  # an (empty) async generator, like every other backend's

    async def delete_pattern(self, pattern: str) -> int:
        return 0

    async def clear(self, prefix: str | None) -> None:
        return None

    async def push(self, key: str, values: list[Any], left: bool) -> int:
        return len(values)

    async def pop(self, key: str, left: bool) -> Any:
        return MISSING

    async def llen(self, key: str) -> int:
        return 0

    async def lrange(self, key: str, start: int, stop: int) -> list[Any]:
        return []

    async def sadd(self, key: str, members: list[Any]) -> int:
        return len(set(members))

    async def srem(self, key: str, members: list[Any]) -> int:
        return 0

    async def smembers(self, key: str) -> builtins.set[Any]:
        return set()

    async def sismember(self, key: str, member: Any) -> bool:
        return False

    async def scard(self, key: str) -> int:
        return 0

    async def hset(self, key: str, mapping: Mapping[str, Any]) -> int:
        return len(mapping)

    async def hget(self, key: str, field: str) -> Any:
        return MISSING

    async def hgetall(self, key: str) -> dict[str, Any]:
        return {}

    async def hdel(self, key: str, fields: list[str]) -> int:
        return 0

    async def hexists(self, key: str, field: str) -> bool:
        return False

    async def hlen(self, key: str) -> int:
        return 0

    async def hincrby(self, key: str, field: str, delta: int) -> int:
        return delta

    async def ping(self) -> None:
        return None
