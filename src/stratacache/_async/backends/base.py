"""The backend contract: a small required core plus optional capabilities.

**Required** (abstract): ``get``, ``set``, ``add``, ``delete``, ``exists``, ``incr``,
``expire``, ``ttl``, ``clear`` and ``ping``, with ``close`` when the backend holds
connections or threads: about eleven methods make a working backend. **With defaults**: the
batch methods ``get_many``, ``set_many`` and ``delete_many`` loop over the single-key ones
(override them when the store has a faster way). **Optional capabilities**, each announced by
a :class:`Capabilities` flag: ``delete_pattern`` (enumerating keys by glob: ``iter_keys``
and ``delete_pattern``),
``collections`` (lists, sets, hashes) and ``versions`` (the verbs ``get_item``,
``set_if_version``, ``delete_if_version``, ``pull`` and ``replace``, all atomic). Their default methods raise
:class:`~stratacache.UnsupportedOperation` naming the backend and the operation, so a backend
without them still gives a clear answer and never a silent wrong one; the conformance suite
skips what a backend says it cannot do.

A backend deals in already-namespaced ``str`` keys and in values that are either Python
objects (``capabilities.stores_objects``) or the ``bytes`` the facade's codec produced.
Namespacing, serialization, TTL defaults, stats, hooks and stampede control live once, in
the facade (``AsyncCache``), never here. Backends translate their driver's errors into the
stratacache exception tree at this boundary and chain the original.

Conventions every backend follows (the conformance suite checks them):

* ``ttl`` is ``None`` (never expire) or a positive number of seconds, already validated.
* A missing key reads as :data:`~stratacache.MISSING`; an emptied list/set/hash is deleted.
* ``incr``/``hincrby`` create the counter from 0 without expiry and keep an existing expiry;
  a non-integer value raises :class:`~stratacache.WrongType` and is left unchanged.
* A plain-value operation on a collection key, or a collection operation on a plain value,
  raises :class:`~stratacache.WrongType`.
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..._exceptions import UnsupportedOperation
from ..._types import MISSING, Item, Missing

__all__ = ["AsyncBackend", "BackendCounters", "Capabilities", "Decoded"]


class Decoded:
    """A value a backend returns already decoded, so the facade does not decode it again.

    A layered cache keeps objects (not bytes) in an in-process top tier once a cache has
    attached its codec (:meth:`AsyncBackend.attach_codec`), and wraps its top-tier hits in
    this marker. Every other value a bytes backend returns is still decoded by the facade.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do, so the facade and the conformance suite can adapt.

    ``stores_objects``: values are kept as Python objects (no serialization by default).
    ``retains_data``: False only for the null backend, which forgets every write.
    ``delete_pattern``: the backend can enumerate keys by glob (``iter_keys``, ``delete_pattern``).
    ``collections``: the backend implements lists, sets and hashes.
    ``ttl_resolution``: the granularity of expiry in seconds (0 = exact; Memcached: 1 s).
    ``versions``: the backend implements the verbs ``get_item``, ``set_if_version``,
    ``delete_if_version``, ``pull`` and ``replace``, each atomically (docs/patterns/verbs.md).

    The optional capabilities default to False: a backend claims only what it implements.
    """

    stores_objects: bool = False
    retains_data: bool = True
    delete_pattern: bool = False
    collections: bool = False
    ttl_resolution: float = 0.0
    versions: bool = False


@dataclass(frozen=True, slots=True)
class BackendCounters:
    """What a backend reports for ``stats()``; 0 where it cannot tell.

    ``details`` carries what only some backends know (a layered cache's per-tier failures
    and circuit states, a sharded cache's live nodes); it reaches ``Stats.backend``.
    """

    items: int = 0
    bytes: int = 0
    evictions: int = 0
    expirations: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)


class AsyncBackend(abc.ABC):
    """The contract of a storage engine. Subclasses implement every abstract method."""

    name: ClassVar[str] = "backend"
    capabilities: ClassVar[Capabilities] = Capabilities()

    # -- plain values
    @abc.abstractmethod
    async def get(self, key: str) -> Any:
        """The value at ``key`` or MISSING."""

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        """The present keys among ``keys``, with their values (by default one ``get`` each)."""
        found: dict[str, Any] = {}
        for key in keys:
            value = await self.get(key)
            if value is not MISSING:
                found[key] = value
        return found

    @abc.abstractmethod
    async def set(self, key: str, value: Any, ttl: float | None) -> None:
        """Store ``value`` at ``key`` for ``ttl`` seconds (None: no expiry)."""

    async def set_many(self, items: Mapping[str, Any], ttl: float | None) -> None:
        """Store every item with one ttl (by default one ``set`` each, so not atomically)."""
        for key, value in items.items():
            await self.set(key, value, ttl)

    @abc.abstractmethod
    async def add(self, key: str, value: Any, ttl: float | None) -> bool:
        """Store only if absent, atomically; True when stored."""

    @abc.abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed."""

    async def delete_many(self, keys: list[str]) -> int:
        """Remove keys; how many existed (by default one ``delete`` each)."""
        removed = 0
        for key in keys:
            removed += await self.delete(key)
        return removed

    @abc.abstractmethod
    async def exists(self, key: str) -> bool:
        """True when ``key`` holds anything."""

    @abc.abstractmethod
    async def incr(self, key: str, delta: int) -> int:
        """Atomically add ``delta`` to the integer at ``key``; the new value."""

    @abc.abstractmethod
    async def expire(self, key: str, ttl: float | None) -> bool:
        """Set the remaining life of ``key`` (None: persist); False when absent."""

    @abc.abstractmethod
    async def ttl(self, key: str) -> float | Missing | None:
        """Seconds left, None for no expiry, MISSING when absent."""

    def iter_keys(self, pattern: str) -> AsyncIterator[str]:
        """The live keys matching a Redis-style glob, in no set order (capability ``delete_pattern``).

        Backends implement it as an async generator over the same enumeration their
        ``delete_pattern`` uses, walking the key space in batches (Redis: ``SCAN MATCH``, never
        ``KEYS``) so that a large one is never held in memory at once. A key written or
        deleted during the walk may or may not be seen; Redis may yield a key twice. This
        default is a plain method so that it raises at the call, before any iteration.
        """
        raise self._unsupported("iter_keys", "it cannot enumerate keys")

    async def delete_pattern(self, pattern: str) -> int:
        """Delete keys matching a Redis-style glob; how many (capability ``delete_pattern``)."""
        raise self._unsupported("delete_pattern", "it cannot enumerate keys")

    @abc.abstractmethod
    async def clear(self, prefix: str | None) -> None:
        """Delete everything, or only the keys starting with ``prefix``."""

    # -- verbs (capability ``versions``): metadata, compare-and-set, get-and-delete, replace
    async def get_item(self, key: str) -> Item | Missing:
        """The entry at ``key`` with its metadata, or MISSING.

        The :class:`~stratacache.Item` carries the raw key and the stored value (bytes for a
        serializing backend); the facade decodes it. ``version`` must change on every write
        to the entry (at least whenever its stored value changes) and never be reused for a
        different value while a caller may hold the old one.
        """
        raise self._unsupported("get_item", "it keeps no entry versions")

    async def set_if_version(self, key: str, value: Any, ttl: float | None, version: int | str) -> bool:
        """Store only if the entry at ``key`` exists and its version is still ``version``,
        atomically; True when stored (an absent key never matches)."""
        raise self._unsupported("set_if_version", "it has no atomic compare-and-set")

    async def delete_if_version(self, key: str, version: int | str) -> bool:
        """Remove ``key`` only if its version is still ``version``, atomically; True when removed."""
        raise self._unsupported("delete_if_version", "it has no atomic compare-and-delete")

    async def pull(self, key: str) -> Any:
        """Remove ``key`` and return its value, atomically (one caller gets it); MISSING when absent."""
        raise self._unsupported("pull", "it has no atomic get-and-delete")

    async def replace(self, key: str, value: Any, ttl: float | None) -> bool:
        """Store only if ``key`` holds a value, atomically; True when stored."""
        raise self._unsupported("replace", "it has no atomic store-if-present")

    # -- collections (capability ``collections``): lists, sets, hashes
    # -- lists
    async def push(self, key: str, values: list[Any], left: bool) -> int:
        """LPUSH (left) or RPUSH; the new length."""
        raise self._unsupported("push")

    async def pop(self, key: str, left: bool) -> Any:
        """LPOP (left) or RPOP; MISSING when empty."""
        raise self._unsupported("pop")

    async def llen(self, key: str) -> int:
        """Length of the list (0 when absent)."""
        raise self._unsupported("llen")

    async def lrange(self, key: str, start: int, stop: int) -> list[Any]:
        """Elements start..stop inclusive (Redis LRANGE indexing)."""
        raise self._unsupported("lrange")

    # -- sets
    async def sadd(self, key: str, members: list[Any]) -> int:
        """Add members; how many were new."""
        raise self._unsupported("sadd")

    async def srem(self, key: str, members: list[Any]) -> int:
        """Remove members; how many were there."""
        raise self._unsupported("srem")

    async def smembers(self, key: str) -> builtins.set[Any]:
        """Every member (empty when absent)."""
        raise self._unsupported("smembers")

    async def sismember(self, key: str, member: Any) -> bool:
        """Membership test."""
        raise self._unsupported("sismember")

    async def scard(self, key: str) -> int:
        """Set size (0 when absent)."""
        raise self._unsupported("scard")

    # -- hashes
    async def hset(self, key: str, mapping: Mapping[str, Any]) -> int:
        """Set fields; how many were new."""
        raise self._unsupported("hset")

    async def hget(self, key: str, field: str) -> Any:
        """One field's value or MISSING."""
        raise self._unsupported("hget")

    async def hgetall(self, key: str) -> dict[str, Any]:
        """Every field (empty when absent)."""
        raise self._unsupported("hgetall")

    async def hdel(self, key: str, fields: list[str]) -> int:
        """Remove fields; how many existed."""
        raise self._unsupported("hdel")

    async def hexists(self, key: str, field: str) -> bool:
        """Field presence."""
        raise self._unsupported("hexists")

    async def hlen(self, key: str) -> int:
        """Number of fields (0 when absent)."""
        raise self._unsupported("hlen")

    async def hincrby(self, key: str, field: str, delta: int) -> int:
        """Atomically add ``delta`` to an integer field; the new value."""
        raise self._unsupported("hincrby")

    # -- lifecycle and introspection
    @abc.abstractmethod
    async def ping(self) -> None:
        """Return when the backend answers; raise BackendUnavailable when it does not."""

    async def counters(self, prefix: str | None) -> BackendCounters:
        """Items, bytes, evictions and expirations for ``stats()`` (zeros by default)."""
        return BackendCounters()

    def attach_namespace(self, prefix: str) -> None:  # noqa: B027 - most backends need nothing
        """Called by every cache with a namespace over this backend, with its key prefix ("app:").

        A backend that keeps state per namespace (Memcached's generation counters, which make a
        namespaced ``clear()`` O(1)) learns the prefixes here; keys then arrive already prefixed.
        """

    def attach_codec(self, codec: Any) -> None:  # noqa: B027 - most backends need nothing
        """Called by every cache that serializes, with its :class:`~stratacache.serializers.Codec`.

        A backend that can keep decoded objects somewhere (a layered cache's in-process top
        tier) may use it to decode once on the way in and return :class:`Decoded` values.
        """

    def attach_cache(self, codec: Any | None) -> None:  # noqa: B027 - most backends need nothing
        """Called once by every cache built over this backend, last in its construction, with
        its :class:`~stratacache.serializers.Codec` (None: the cache stores objects as they are).

        A backend that loads state when it opens (the memory backend's ``snapshot=``) does it
        here, once it knows how the cache's values are stored.
        """

    async def close(self) -> None:  # noqa: B027 - a no-op default is right for in-process backends
        """Release connections and threads. Idempotent."""

    def _unsupported(
        self, operation: str, reason: str = "it has no lists, sets or hashes"
    ) -> UnsupportedOperation:
        """The error an optional method raises on a backend that lacks its capability."""
        return UnsupportedOperation(self.describe(), operation, reason)

    def describe(self) -> str:
        """A short human description (no secrets), for errors and health reports."""
        return self.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"
