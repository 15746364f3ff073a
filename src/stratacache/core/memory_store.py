"""A thread-safe in-process store: a map with LRU order, per-entry TTL and native collections.

Pure logic, no I/O: the sync and async ``memory://`` backends both wrap one of these.
Values are kept as Python objects. When the facade serializes (a memory cache configured
with a serializer) values arrive as bytes, and counters are then decimal ASCII bytes, which
:meth:`MemoryStore.incr` understands as well as plain ``int`` objects.

Expired entries are never returned: they are dropped lazily when touched, and in a bounded
sweep of the oldest entries on every write, so memory held by dead entries stays small
without a background thread.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from itertools import islice
from typing import Any

from .._exceptions import ConfigurationError, InvalidArgument, WrongType
from .._types import MISSING, Missing
from .glob import compile_glob

__all__ = ["MemoryStore"]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
# How many of the least recently used entries a write looks at for expired ones.
_SWEEP = 4


class _List(deque[Any]):
    """A native list value (``lpush``/``rpush``); a subclass so it is told apart from user deques."""

    __slots__ = ()


class _Set(set[Any]):
    """A native set value (``sadd``)."""

    __slots__ = ()


class _Hash(dict[str, Any]):
    """A native hash value (``hset``)."""

    __slots__ = ()


_NATIVE = (_List, _Set, _Hash)
_KIND: dict[type, str] = {_List: "list", _Set: "set", _Hash: "hash"}


def _kind(value: Any) -> str:
    return _KIND.get(type(value), "plain value")


def _as_counter(value: Any, key: str, what: str) -> tuple[int, bool]:
    """Read a counter stored as ``int`` or decimal bytes; returns (number, stored_as_bytes)."""
    if type(value) is int:
        return value, False
    if type(value) is bytes:
        # Strictly ``-?[0-9]+``: int() alone would also take b"1_000", b" 12" or b"7\n".
        # bytes.isdigit() is ASCII-only (the same rule as the codec's integer parsing).
        digits = value[1:] if value[:1] == b"-" else value
        if digits.isdigit():
            try:
                return int(value), True
            except ValueError:  # more digits than sys.get_int_max_str_digits()
                pass
    raise WrongType(f"{what} on key {key!r}: the value is not an integer ({type(value).__name__})")


def _add_counter(current: int, delta: int, key: str, what: str = "incr") -> int:
    result = current + delta
    if not _INT64_MIN <= result <= _INT64_MAX:
        raise InvalidArgument(f"{what} on key {key!r} would overflow a 64-bit counter")
    return result


class MemoryStore:
    """A bounded, thread-safe map with LRU eviction, per-entry expiry and native collections.

    ``max_entries=None`` means unbounded. ``clock`` returns seconds (monotonic); inject a
    fake one in tests. Every public method takes the one lock, so each is atomic.
    """

    def __init__(self, *, max_entries: int | None = None, clock: Callable[[], float] | None = None) -> None:
        if max_entries is not None and (
            not isinstance(max_entries, int) or isinstance(max_entries, bool) or max_entries <= 0
        ):
            raise ConfigurationError(f"max_entries must be a positive integer or None, got {max_entries!r}")
        self.max_entries = max_entries
        self.clock: Callable[[], float] = clock or time.monotonic
        # key -> [value, expires_at or None]; order = least recently used first.
        self._data: OrderedDict[str, list[Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.evictions = 0
        self.expirations = 0

    # ----------------------------------------------------------------- internals

    def _live(self, key: str) -> list[Any] | None:
        """The entry for ``key`` if present and unexpired (dropping it if expired). Lock held."""
        entry = self._data.get(key)
        if entry is None:
            return None
        expires = entry[1]
        if expires is not None and expires <= self.clock():
            del self._data[key]
            self.expirations += 1
            return None
        return entry

    def _expiry(self, ttl: float | None) -> float | None:
        return None if ttl is None else self.clock() + ttl

    def _put(self, key: str, value: Any, expires: float | None) -> None:
        """Insert or replace ``key`` as most recently used, evicting to stay in bounds. Lock held."""
        data = self._data
        if key in data:
            data[key] = [value, expires]
            data.move_to_end(key)
            return
        data[key] = [value, expires]
        self._sweep()
        limit = self.max_entries
        while limit is not None and len(data) > limit:
            data.popitem(last=False)
            self.evictions += 1

    def _sweep(self) -> None:
        """Drop expired entries among the few least recently used ones. Lock held."""
        data = self._data
        now: float | None = None
        for key in list(islice(data, _SWEEP)):
            expires = data[key][1]
            if expires is not None:
                if now is None:
                    now = self.clock()
                if expires <= now:
                    del data[key]
                    self.expirations += 1

    def _native(self, key: str, cls: type[Any], op: str, create: bool) -> Any:
        """The native collection at ``key``; WrongType if it holds something else. Lock held."""
        entry = self._live(key)
        if entry is None:
            if not create:
                return None
            value = cls()
            self._put(key, value, None)
            return value
        value = entry[0]
        if type(value) is not cls:
            raise WrongType(f"{op} on key {key!r}: it holds a {_kind(value)}, not a {_KIND[cls]}")
        self._data.move_to_end(key)
        return value

    def _drop_if_empty(self, key: str, container: Any) -> None:
        # Like Redis, an emptied collection no longer exists.
        if not container:
            self._data.pop(key, None)

    # ------------------------------------------------------------ plain values

    def get(self, key: str) -> Any:
        """The value at ``key`` or MISSING; WrongType if it is a native collection."""
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return MISSING
            expires = entry[1]
            if expires is not None and expires <= self.clock():
                del self._data[key]
                self.expirations += 1
                return MISSING
            self._data.move_to_end(key)
            value = entry[0]
        if type(value) in _NATIVE:
            raise WrongType(f"get on key {key!r}: it holds a {_kind(value)}")
        return value

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The present keys among ``keys`` with their values."""
        found: dict[str, Any] = {}
        with self._lock:
            for key in keys:
                entry = self._live(key)
                if entry is not None and type(entry[0]) not in _NATIVE:
                    self._data.move_to_end(key)
                    found[key] = entry[0]
        return found

    def set(self, key: str, value: Any, ttl: float | None) -> None:
        """Store ``value`` (replacing anything, collections included) for ``ttl`` seconds."""
        with self._lock:
            self._put(key, value, self._expiry(ttl))

    def set_many(self, items: Mapping[str, Any], ttl: float | None) -> None:
        """Store every item with the same ttl, atomically."""
        with self._lock:
            expires = self._expiry(ttl)
            for key, value in items.items():
                self._put(key, value, expires)

    def add(self, key: str, value: Any, ttl: float | None) -> bool:
        """Store only if ``key`` is absent; True when stored."""
        with self._lock:
            if self._live(key) is not None:
                return False
            self._put(key, value, self._expiry(ttl))
            return True

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed."""
        with self._lock:
            existed = self._live(key) is not None
            self._data.pop(key, None)
            return existed

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove every key; the number that existed."""
        with self._lock:
            count = 0
            for key in keys:
                if self._live(key) is not None:
                    del self._data[key]
                    count += 1
            return count

    def exists(self, key: str) -> bool:
        """True when ``key`` holds anything unexpired."""
        with self._lock:
            return self._live(key) is not None

    def incr(self, key: str, delta: int) -> int:
        """Add ``delta`` to the integer at ``key`` (created from 0, keeping its expiry)."""
        with self._lock:
            entry = self._live(key)
            if entry is None:
                result = _add_counter(0, delta, key)
                self._put(key, result, None)
                return result
            current, as_bytes = _as_counter(entry[0], key, "incr")
            result = _add_counter(current, delta, key)
            entry[0] = str(result).encode() if as_bytes else result
            self._data.move_to_end(key)
            return result

    def expire(self, key: str, ttl: float | None) -> bool:
        """Set the remaining life of ``key`` (None: never expire); False when absent."""
        with self._lock:
            entry = self._live(key)
            if entry is None:
                return False
            entry[1] = self._expiry(ttl)
            return True

    def ttl(self, key: str) -> float | Missing | None:
        """Seconds left, None for no expiry, MISSING when absent."""
        with self._lock:
            entry = self._live(key)
            if entry is None:
                return MISSING
            expires = entry[1]
            return None if expires is None else max(0.0, expires - self.clock())

    def keys(self, pattern: str | None = None) -> list[str]:
        """Live keys, optionally filtered by a Redis-style glob."""
        with self._lock:
            now = self.clock()
            match = compile_glob(pattern) if pattern is not None else None
            return [
                key
                for key, (_, expires) in self._data.items()
                if (expires is None or expires > now) and (match is None or match(key))
            ]

    def delete_pattern(self, pattern: str) -> int:
        """Delete every live key matching the glob; the number deleted."""
        match = compile_glob(pattern)
        with self._lock:
            now = self.clock()
            doomed = [k for k, (_, exp) in self._data.items() if match(k) and (exp is None or exp > now)]
            for key in doomed:
                del self._data[key]
            return len(doomed)

    def clear(self, prefix: str | None = None) -> None:
        """Remove everything, or only the keys starting with ``prefix``."""
        with self._lock:
            if prefix is None:
                self._data.clear()
                return
            for key in [k for k in self._data if k.startswith(prefix)]:
                del self._data[key]

    def count(self, prefix: str | None = None) -> int:
        """The number of live entries (with ``prefix``, only those keys)."""
        with self._lock:
            now = self.clock()
            return sum(
                1
                for key, (_, expires) in self._data.items()
                if (expires is None or expires > now) and (prefix is None or key.startswith(prefix))
            )

    # ------------------------------------------------------------------- lists

    def push(self, key: str, values: Iterable[Any], left: bool) -> int:
        """LPUSH/RPUSH: add ``values`` at one end; the new length."""
        values = list(values)
        with self._lock:
            if not values:
                # Nothing to add: do not create (and possibly evict for) an empty list.
                existing = self._native(key, _List, "lpush" if left else "rpush", False)
                return 0 if existing is None else len(existing)
            items: _List = self._native(key, _List, "lpush" if left else "rpush", True)
            if left:
                items.extendleft(values)
            else:
                items.extend(values)
            length = len(items)
            self._drop_if_empty(key, items)
            return length

    def pop(self, key: str, left: bool) -> Any:
        """LPOP/RPOP: remove and return one end, or MISSING when the list is empty/absent."""
        with self._lock:
            items: _List | None = self._native(key, _List, "lpop" if left else "rpop", False)
            if not items:
                return MISSING
            value = items.popleft() if left else items.pop()
            self._drop_if_empty(key, items)
            return value

    def llen(self, key: str) -> int:
        """The length of the list at ``key`` (0 when absent)."""
        with self._lock:
            items = self._native(key, _List, "llen", False)
            return 0 if items is None else len(items)

    def lrange(self, key: str, start: int, stop: int) -> list[Any]:
        """Elements ``start..stop`` inclusive, negative indexes from the end (Redis LRANGE)."""
        with self._lock:
            items = self._native(key, _List, "lrange", False)
            if items is None:
                return []
            n = len(items)
            if start < 0:
                start = max(0, n + start)
            if stop < 0:
                stop = n + stop
            stop = min(stop, n - 1)
            if start > stop:
                return []
            return list(islice(items, start, stop + 1))

    # -------------------------------------------------------------------- sets

    def sadd(self, key: str, members: Iterable[Any]) -> int:
        """Add members; the number that were new."""
        # Hashing happens here, before the store is touched: an unhashable member must not
        # create (and evict for) a set that is then dropped again.
        new_members = set(members)
        with self._lock:
            if not new_members:
                self._native(key, _Set, "sadd", False)  # still WrongType on another kind
                return 0
            container: _Set = self._native(key, _Set, "sadd", True)
            before = len(container)
            container.update(new_members)
            return len(container) - before

    def srem(self, key: str, members: Iterable[Any]) -> int:
        """Remove members; the number that were there."""
        with self._lock:
            container: _Set | None = self._native(key, _Set, "srem", False)
            if container is None:
                return 0
            before = len(container)
            container.difference_update(members)
            removed = before - len(container)
            self._drop_if_empty(key, container)
            return removed

    def smembers(self, key: str) -> builtins.set[Any]:
        """A copy of the set at ``key`` (empty when absent)."""
        with self._lock:
            container = self._native(key, _Set, "smembers", False)
            return set() if container is None else set(container)

    def sismember(self, key: str, member: Any) -> bool:
        """True when ``member`` is in the set at ``key``."""
        with self._lock:
            container = self._native(key, _Set, "sismember", False)
            return container is not None and member in container

    def scard(self, key: str) -> int:
        """The size of the set at ``key`` (0 when absent)."""
        with self._lock:
            container = self._native(key, _Set, "scard", False)
            return 0 if container is None else len(container)

    # ------------------------------------------------------------------ hashes

    def hset(self, key: str, mapping: Mapping[str, Any]) -> int:
        """Set fields; the number of fields that were new."""
        with self._lock:
            if not mapping:
                self._native(key, _Hash, "hset", False)  # still WrongType on another kind
                return 0
            container: _Hash = self._native(key, _Hash, "hset", True)
            new = sum(1 for field in mapping if field not in container)
            container.update(mapping)
            self._drop_if_empty(key, container)
            return new

    def hget(self, key: str, field: str) -> Any:
        """The value of ``field`` or MISSING."""
        with self._lock:
            container = self._native(key, _Hash, "hget", False)
            if container is None:
                return MISSING
            return container.get(field, MISSING)

    def hgetall(self, key: str) -> dict[str, Any]:
        """A copy of the hash at ``key`` (empty when absent)."""
        with self._lock:
            container = self._native(key, _Hash, "hgetall", False)
            return {} if container is None else dict(container)

    def hdel(self, key: str, fields: Iterable[str]) -> int:
        """Remove fields; the number that existed."""
        with self._lock:
            container: _Hash | None = self._native(key, _Hash, "hdel", False)
            if container is None:
                return 0
            removed = 0
            for field in fields:
                if field in container:
                    del container[field]
                    removed += 1
            self._drop_if_empty(key, container)
            return removed

    def hexists(self, key: str, field: str) -> bool:
        """True when the hash at ``key`` has ``field``."""
        with self._lock:
            container = self._native(key, _Hash, "hexists", False)
            return container is not None and field in container

    def hlen(self, key: str) -> int:
        """The number of fields in the hash at ``key`` (0 when absent)."""
        with self._lock:
            container = self._native(key, _Hash, "hlen", False)
            return 0 if container is None else len(container)

    def hincrby(self, key: str, field: str, delta: int) -> int:
        """Add ``delta`` to the integer in ``field`` (created from 0)."""
        with self._lock:
            container: _Hash | None = self._native(key, _Hash, "hincrby", False)
            current = MISSING if container is None else container.get(field, MISSING)
            if current is MISSING:
                number, as_bytes = 0, False
            else:
                number, as_bytes = _as_counter(current, key, "hincrby")
            # Computed before the hash is created: an overflow must leave no empty hash behind.
            result = _add_counter(number, delta, key, "hincrby")
            if container is None:
                container = self._native(key, _Hash, "hincrby", True)
            container[field] = str(result).encode() if as_bytes else result
            return result
