"""The memory store's native collections (lists, sets, hashes), as a base class of the store.

Every method runs under the store's lock (``self._guard``) and writes through one rule,
:meth:`CollectionsMixin._write_native`, which checks the new weight before anything changes.
The store's own rules (expiry in ``_live``, a hit in ``_touch``, a write in ``_put``,
removal, weighing) are used as they are: nothing here redefines them.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping
from itertools import islice
from typing import TYPE_CHECKING, Any

from .._exceptions import WrongType
from .._types import MISSING
from .entries import (
    _FOREVER,
    _KIND,
    _add_counter,
    _as_counter,
    _Entry,
    _Hash,
    _kind,
    _List,
    _Set,
    _value_weight,
    default_weigher,
)

__all__ = ["CollectionsMixin"]


class CollectionsMixin:
    """LPUSH/RPUSH/LPOP/..., SADD/..., HSET/... for :class:`~stratacache.core.memory_store.MemoryStore`."""

    __slots__ = ()

    if TYPE_CHECKING:  # provided by MemoryStore
        _data: dict[str, _Entry]
        _doomed: list[Any]
        _guard: Any
        _weighs: bool
        _weigher: Callable[[str, Any], int]

        def _live(self, key: str) -> _Entry | None: ...
        def _touch(self, key: str) -> None: ...
        def _put(self, key: str, value: Any, ttl: float | None, weight: int | None = None) -> _Entry: ...
        def _remove(self, key: str, entry: _Entry) -> None: ...
        def _reweigh(self, key: str, entry: _Entry, weight: int) -> None: ...
        def _weigh(self, key: str, value: Any) -> int: ...
        def _fits(self, key: str, weight: Any) -> int: ...
        def _relieve_pool(self) -> None: ...

    def _native(self, key: str, cls: type[Any], op: str) -> Any:
        """The native collection at ``key`` (None when absent); WrongType if it holds
        something else. Lock held. Writes go through :meth:`_write_native`."""
        entry = self._live(key)
        if entry is None:
            return None
        value = entry.value
        if type(value) is not cls:
            raise WrongType(f"{op} on key {key!r}: it holds a {_kind(value)}, not a {_KIND[cls]}")
        self._touch(key)
        return value

    def _changed(self, key: str, container: Any, delta: int = 0) -> None:
        """After an in-place removal: drop an emptied collection (as Redis does), else re-weigh
        it (``delta``: the change in default weight)."""
        entry = self._data.get(key)
        if entry is None:
            return
        if not container:
            self._remove(key, entry)
        elif self._weighs:
            if self._weigher is default_weigher:
                self._reweigh(key, entry, entry.weight + delta)
            else:
                self._reweigh(key, entry, self._weigh(key, container))
        else:
            self._reweigh(key, entry, 0)

    def _write_native(
        self, key: str, cls: type[Any], op: str, change: Callable[[Any], Any], delta: int
    ) -> Any:
        """Apply ``change`` (container -> result) to the ``cls`` collection at ``key``, made
        when absent: the one write rule of the collections, all or nothing. Lock held.

        The new weight is checked before the store changes: with the default weigher from
        ``delta`` (the change in weight, which the caller computes from the new elements, so
        that pushing onto a long list stays O(1)); with a custom one, ``change`` runs on a
        copy, which the weigher sees whole and which replaces the collection. A weight that
        fails the checks (see :meth:`_weigh`) raises, and nothing is changed or evicted.
        """
        entry = self._live(key)
        if entry is not None and type(entry.value) is not cls:
            raise WrongType(f"{op} on key {key!r}: it holds a {_kind(entry.value)}, not a {_KIND[cls]}")
        container = cls() if entry is None else entry.value
        weight = 0
        if not self._weighs:
            result = change(container)
        elif self._weigher is default_weigher:
            base = default_weigher(key, container) if entry is None else entry.weight
            weight = self._fits(key, base + delta)
            result = change(container)
        else:
            container = cls(container)
            result = change(container)
            weight = self._weigh(key, container)
        if entry is None:
            if container:
                # Version 1 and no deadline (_FOREVER: see its definition), like any new entry.
                self._put(key, container, None, weight).expires = _FOREVER
            return result
        if container is not entry.value:
            self._doomed.append(entry.value)
            entry.value = container
        self._touch(key)
        self._reweigh(key, entry, weight)
        return result

    # ------------------------------------------------------------------- lists

    def push(self, key: str, values: Iterable[Any], left: bool) -> int:
        """LPUSH/RPUSH: add ``values`` at one end; the new length."""
        values = list(values)
        op = "lpush" if left else "rpush"
        with self._guard:
            if not values:
                # Nothing to add: do not create (and possibly evict for) an empty list.
                existing = self._native(key, _List, op)
                return 0 if existing is None else len(existing)

            def change(items: _List) -> int:
                if left:
                    items.extendleft(values)
                else:
                    items.extend(values)
                return len(items)

            delta = sum(_value_weight(v) + 8 for v in values) if self._weighs else 0
            length: int = self._write_native(key, _List, op, change, delta)
        self._relieve_pool()
        return length

    def pop(self, key: str, left: bool) -> Any:
        """LPOP/RPOP: remove and return one end, or MISSING when the list is empty/absent."""
        with self._guard:
            items: _List | None = self._native(key, _List, "lpop" if left else "rpop")
            if not items:
                return MISSING
            value = items.popleft() if left else items.pop()
            self._changed(key, items, -(_value_weight(value) + 8) if self._weighs else 0)
            return value

    def llen(self, key: str) -> int:
        """The length of the list at ``key`` (0 when absent)."""
        with self._guard:
            items = self._native(key, _List, "llen")
            return 0 if items is None else len(items)

    def lrange(self, key: str, start: int, stop: int) -> list[Any]:
        """Elements ``start..stop`` inclusive, negative indexes from the end (Redis LRANGE)."""
        with self._guard:
            items = self._native(key, _List, "lrange")
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
        with self._guard:
            existing = self._native(key, _Set, "sadd")  # WrongType on another kind
            fresh = new_members if existing is None else new_members - existing
            if not fresh:
                return 0
            delta = sum(_value_weight(m) + 8 for m in fresh) if self._weighs else 0
            self._write_native(key, _Set, "sadd", lambda container: container.update(fresh), delta)
        self._relieve_pool()
        return len(fresh)

    def srem(self, key: str, members: Iterable[Any]) -> int:
        """Remove members; the number that were there."""
        with self._guard:
            container: _Set | None = self._native(key, _Set, "srem")
            if container is None:
                return 0
            gone = [m for m in set(members) if m in container]
            container.difference_update(gone)
            self._changed(key, container, -sum(_value_weight(m) + 8 for m in gone) if self._weighs else 0)
            return len(gone)

    def smembers(self, key: str) -> builtins.set[Any]:
        """A copy of the set at ``key`` (empty when absent)."""
        with self._guard:
            container = self._native(key, _Set, "smembers")
            return set() if container is None else set(container)

    def sismember(self, key: str, member: Any) -> bool:
        """True when ``member`` is in the set at ``key``."""
        with self._guard:
            container = self._native(key, _Set, "sismember")
            return container is not None and member in container

    def scard(self, key: str) -> int:
        """The size of the set at ``key`` (0 when absent)."""
        with self._guard:
            container = self._native(key, _Set, "scard")
            return 0 if container is None else len(container)

    # ------------------------------------------------------------------ hashes

    def hset(self, key: str, mapping: Mapping[str, Any]) -> int:
        """Set fields; the number of fields that were new."""
        with self._guard:
            existing: _Hash | None = self._native(key, _Hash, "hset")  # WrongType on another kind
            if not mapping:
                return 0
            new = 0
            delta = 0
            for field, value in mapping.items():
                old = MISSING if existing is None else existing.get(field, MISSING)
                if old is MISSING:
                    new += 1
                    if self._weighs:
                        delta += len(field) + 16 + _value_weight(value)
                elif self._weighs:
                    delta += _value_weight(value) - _value_weight(old)
            # The values replaced stay referenced until the lock is given back (finalizers).
            replaced: list[Any] = []

            def change(container: _Hash) -> None:
                for field, value in mapping.items():
                    replaced.append(container.get(field))
                    container[field] = value

            self._write_native(key, _Hash, "hset", change, delta)
        self._relieve_pool()
        return new

    def hget(self, key: str, field: str) -> Any:
        """The value of ``field`` or MISSING."""
        with self._guard:
            container = self._native(key, _Hash, "hget")
            if container is None:
                return MISSING
            return container.get(field, MISSING)

    def hgetall(self, key: str) -> dict[str, Any]:
        """A copy of the hash at ``key`` (empty when absent)."""
        with self._guard:
            container = self._native(key, _Hash, "hgetall")
            return {} if container is None else dict(container)

    def hdel(self, key: str, fields: Iterable[str]) -> int:
        """Remove fields; the number that existed."""
        with self._guard:
            container: _Hash | None = self._native(key, _Hash, "hdel")
            if container is None:
                return 0
            removed = 0
            delta = 0
            for field in fields:
                old = container.pop(field, MISSING)
                if old is not MISSING:
                    removed += 1
                    if self._weighs:
                        delta -= len(field) + 16 + _value_weight(old)
            self._changed(key, container, delta)
            return removed

    def hexists(self, key: str, field: str) -> bool:
        """True when the hash at ``key`` has ``field``."""
        with self._guard:
            container = self._native(key, _Hash, "hexists")
            return container is not None and field in container

    def hlen(self, key: str) -> int:
        """The number of fields in the hash at ``key`` (0 when absent)."""
        with self._guard:
            container = self._native(key, _Hash, "hlen")
            return 0 if container is None else len(container)

    def hincrby(self, key: str, field: str, delta: int) -> int:
        """Add ``delta`` to the integer in ``field`` (created from 0)."""
        with self._guard:
            container: _Hash | None = self._native(key, _Hash, "hincrby")
            current = MISSING if container is None else container.get(field, MISSING)
            if current is MISSING:
                number, as_bytes = 0, False
            else:
                number, as_bytes = _as_counter(current, key, "hincrby")
            # Computed before the hash is touched: an overflow must leave no empty hash behind.
            result = _add_counter(number, delta, key, "hincrby")
            new_value = str(result).encode() if as_bytes else result
            weight_delta = 0
            if self._weighs:
                weight_delta = _value_weight(new_value) - (
                    -(len(field) + 16) if current is MISSING else _value_weight(current)
                )
            self._write_native(
                key, _Hash, "hincrby", lambda hash_: hash_.__setitem__(field, new_value), weight_delta
            )
        self._relieve_pool()
        return result
