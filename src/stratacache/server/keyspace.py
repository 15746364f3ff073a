"""A database of the server: Redis's keyspace over one store of the memory engine.

Keys arrive as bytes and are kept as ``str`` decoded from latin-1 (a one-to-one mapping of
bytes to code points, so every byte string is a key and the engine's ``str`` keys are kept);
:func:`skey` and :func:`bkey` convert. Values are Python objects:

* a string is ``bytes``;
* the other types are :class:`RedisValue` subclasses (lists, sets, hashes, sorted sets,
  defined by their command modules), which keep ``nbytes``, an estimate of the memory their
  members take, up to date on every change, so that weighing an entry is O(1).

The store's clock is the wall clock (``time.time``), so an entry's deadline is a Unix time,
which is what EXPIREAT, EXPIRETIME and persistence need.

Every change to a key goes through this class (:meth:`Database.set`, :meth:`Database.delete`,
:meth:`Database.changed`, ...), which tells the server (:attr:`Database.on_change`), so that
WATCH, CLIENT TRACKING and keyspace-level bookkeeping see every write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from .._types import MISSING
from ..core.memory_store import MemoryStore
from .errors import WRONGTYPE
from .resp import ErrorReply

__all__ = ["ENTRY_OVERHEAD", "Database", "RedisValue", "bkey", "server_weigher", "skey", "type_name"]

ENTRY_OVERHEAD = 96
"""Bytes an entry costs beyond its key and value (entry object, map slot, policy node)."""


def skey(key: bytes) -> str:
    """A wire key as the store's key."""
    return key.decode("latin-1")


def bkey(key: str) -> bytes:
    """A store key back to the wire."""
    return key.encode("latin-1")


class RedisValue:
    """Base of the server's collection values. Subclasses set :attr:`type_name` and keep
    :attr:`nbytes` equal to an estimate of their members' memory on every change."""

    __slots__ = ("nbytes",)
    type_name: ClassVar[str] = "none"
    """What TYPE answers: list, set, hash, zset."""

    def __init__(self) -> None:
        self.nbytes = 0

    def encoding(self) -> str:
        """What OBJECT ENCODING answers."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


def server_weigher(key: str, value: Any) -> int:
    """An entry's weight: key, value (bytes, or a collection's ``nbytes``) and overhead. O(1)."""
    if type(value) is bytes:
        return len(key) + len(value) + ENTRY_OVERHEAD
    return len(key) + int(value.nbytes) + ENTRY_OVERHEAD


def type_name(value: Any) -> str:
    """TYPE's answer for a stored value."""
    if type(value) is bytes:
        return "string"
    return value.type_name  # type: ignore[no-any-return]


_MISSING = MISSING


class Database:
    """One numbered database (SELECT n) over a :class:`MemoryStore` with the wall clock.

    ``on_change(db, key)`` is called after every change of a key (writes, deletes, in-place
    collection changes, expiry set or removed): the server hangs WATCH and tracking on it.
    """

    __slots__ = (
        "_get",
        "_set",
        "flushing",
        "hits",
        "index",
        "kind",
        "misses",
        "on_change",
        "on_flush",
        "store",
    )

    def __init__(
        self,
        index: int,
        store: MemoryStore,
        on_change: Callable[[Database, str], None] | None = None,
        kind: str = "general",
    ) -> None:
        self.index = index
        self.store = store
        self.kind = kind
        self.on_change = on_change
        # Called at the start of every flush (CLIENT TRACKING sends one null invalidation
        # instead of one per key); ``flushing`` is True while the per-key changes go out.
        self.on_flush: Callable[[Database], None] | None = None
        self.flushing = False
        # The store's read and write, bound once (the GET/SET hot path).
        self._get = store.get
        self._set = store.set
        # Keyspace hits and misses of string reads in this database (the server's
        # keyspace_hits/misses, INFO's, are their sums).
        self.hits = 0
        self.misses = 0

    def replace_store(self, store: MemoryStore) -> None:
        """Serve this database from ``store`` from now on (CONFIG SET maxmemory-policy
        rebuilds a store with another eviction policy)."""
        self.store = store
        self._get = store.get
        self._set = store.set

    # ------------------------------------------------------------------ reads

    def get(self, key: str) -> Any:
        """The value at ``key`` (bytes or a RedisValue), or None when absent or expired."""
        value = self._get(key)
        return None if value is _MISSING else value

    def get_string(self, key: str) -> bytes | None:
        """The string at ``key`` or None; WRONGTYPE if it holds another type."""
        value = self._get(key)
        if value is _MISSING:
            return None
        if type(value) is not bytes:
            raise ErrorReply(WRONGTYPE)
        return value

    def get_typed(self, key: str, cls: type[Any]) -> Any:
        """The ``cls`` value at ``key`` or None; WRONGTYPE if it holds another type."""
        value = self._get(key)
        if value is _MISSING:
            return None
        if type(value) is not cls:
            raise ErrorReply(WRONGTYPE)
        return value

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds a live value (no access is recorded)."""
        return self.store.exists(key)

    def deadline(self, key: str) -> float | None:
        """The Unix time at which ``key`` expires, None when it has no expiry or is absent."""
        info = self.store.entry_info(key)
        if info is None:
            return None
        return info.expires

    def ttl_ms(self, key: str) -> int:
        """PTTL's answer: milliseconds left, -1 without expiry, -2 when absent."""
        info = self.store.entry_info(key)
        if info is None:
            return -2
        if info.expires is None:
            return -1
        return max(0, round((info.expires - time.time()) * 1000))

    def __len__(self) -> int:
        return self.store.count()

    def keys(self) -> list[str]:
        """Every live key (a snapshot)."""
        return self.store.keys()

    def iter_items(self) -> Iterator[tuple[str, Any]]:
        """(key, value) for every live key, from a snapshot of the keys."""
        get = self._get
        for key in self.keys():
            value = get(key, False)
            if value is not _MISSING:
                yield key, value

    # ----------------------------------------------------------------- writes

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` at ``key`` (replacing any type), expiring in ``ttl`` seconds or never."""
        self._set(key, value, ttl)
        on_change = self.on_change
        if on_change is not None:
            on_change(self, key)

    def set_at(self, key: str, value: Any, when: float) -> None:
        """Store ``value`` at ``key`` expiring at Unix time ``when`` exactly (SET PXAT, a log
        or snapshot being loaded): the store's clock is the wall clock, so the deadline is
        kept as given rather than turned into a ttl and back. ``when`` must be ahead."""
        self.store.set_until(key, value, when)
        on_change = self.on_change
        if on_change is not None:
            on_change(self, key)

    def set_keep_ttl(self, key: str, value: Any) -> None:
        """Store ``value`` at ``key``, keeping the key's current expiry (KEEPTTL, APPEND, ...)."""
        deadline = self.deadline(key)
        if deadline is None:
            self.set(key, value)
        else:
            self.set_at(key, value, deadline)

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed."""
        removed = self.store.delete(key)
        if removed and self.on_change is not None:
            self.on_change(self, key)
        return removed

    def changed(self, key: str, value: Any) -> None:
        """``value``, a collection stored at ``key``, was changed in place: drop it when it is
        empty (as Redis does), else re-weigh it (which may evict to stay within limits)."""
        if len(value) == 0:
            self.store.delete(key)
        else:
            self.store.reweigh(key)
        if self.on_change is not None:
            self.on_change(self, key)

    def expire_at(self, key: str, when: float) -> bool:
        """Expire ``key`` at Unix time ``when`` (in the past: delete it); False when absent."""
        if when <= time.time():
            return self.delete(key)
        done = self.store.expire_until(key, when)
        if done and self.on_change is not None:
            self.on_change(self, key)
        return done

    def persist(self, key: str) -> bool:
        """Remove the expiry of ``key``; True when it had one."""
        info = self.store.entry_info(key)
        if info is None or info.expires is None:
            return False
        self.store.expire(key, None)
        if self.on_change is not None:
            self.on_change(self, key)
        return True

    def flush(self) -> None:
        """Remove every key (FLUSHDB)."""
        keys = self.store.keys() if self.on_change is not None else ()
        self.store.clear()
        if self.on_flush is not None:
            self.on_flush(self)
        on_change = self.on_change
        if on_change is not None:
            self.flushing = True
            try:
                for key in keys:
                    on_change(self, key)
            finally:
                self.flushing = False
