"""The memory store's entries and values: what one key holds, how it is weighed and counted.

:class:`~stratacache.core.memory_store.MemoryStore` keeps an ``_Entry`` per key; native
collections are the ``_List``/``_Set``/``_Hash`` subclasses, told apart from user values by
their exact type. Pure data and arithmetic, no locking.
"""

from __future__ import annotations

import math
import sys
from collections import deque
from dataclasses import dataclass
from typing import Any

from .._exceptions import InvalidArgument, WrongType

__all__ = ["EntryInfo", "StoreCounters", "default_weigher"]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

# Fixed per-entry overhead in the default weight estimate (list + dict slot + key object).
_ENTRY_OVERHEAD = 64
# The deadline of a native collection (list/set/hash) without a ttl. Not None, so that get's
# one test, ``entry.expires is not None``, sends collections (which a plain get refuses) and
# ttl'd entries alike to its locked branch; never due, and reported as None.
_FOREVER = math.inf


class _List(deque[Any]):
    """A native list value (``lpush``/``rpush``); a subclass so it is told apart from user deques."""

    __slots__ = ()


class _Set(set[Any]):
    """A native set value (``sadd``)."""

    __slots__ = ()


class _Hash(dict[str, Any]):
    """A native hash value (``hset``)."""

    __slots__ = ()


class _Entry:
    """One stored value and its metadata, in six slots (88 bytes with the object's headers).

    ``value``; ``expires``, a monotonic deadline or None; ``weight`` in bytes when the store
    weighs entries, else 0; ``version``, incremented on every write; ``created`` and
    ``updated`` (one float object for both until the first overwrite). Built with
    ``object.__new__`` and its fields set by the store (no ``__init__`` frame per insert).
    """

    __slots__ = ("created", "expires", "updated", "value", "version", "weight")

    value: Any
    expires: float | None
    weight: int
    version: int
    created: float
    updated: float
    #: The sliding-expiry window: always None here; see _SlidingEntry.
    window: float | None = None


class _SlidingEntry(_Entry):
    """An entry of a store with ``expire_after_access``: a seventh slot for its window.

    Only such stores have windows, so the other stores' entries do without the slot (8 bytes
    an entry); the class attribute ``_Entry.window`` reads as None for them.
    """

    __slots__ = ("window",)


_new_entry = object.__new__
_NATIVE = (_List, _Set, _Hash)
_NATIVE_TYPES = frozenset(_NATIVE)  # ``type(v) in`` a frozenset: one hash probe, not three compares
# Values whose release runs no code (no finalizer, no references): not worth deferring past
# the lock (see MemoryStore._doomed), which would cost a list per write.
_INERT = frozenset({int, float, str, bytes, bool, type(None)})
_KIND: dict[type, str] = {_List: "list", _Set: "set", _Hash: "hash"}


def _kind(value: Any) -> str:
    return _KIND.get(type(value), "plain value")


def _value_weight(value: Any) -> int:
    cls = type(value)
    if cls is bytes or cls is str or cls is bytearray:
        return len(value)
    if cls is _List or cls is _Set:
        return sum(_value_weight(v) for v in value) + 8 * len(value)
    if cls is _Hash:
        return sum(len(f) + _value_weight(v) for f, v in value.items()) + 16 * len(value)
    return sys.getsizeof(value)


def default_weigher(key: str, value: Any) -> int:
    """The default weight of an entry, in bytes: an estimate of what it holds.

    ``len(key)`` + ``len(value)`` for ``bytes``/``str``/``bytearray`` values (the common
    case once a serializer is on), ``sys.getsizeof(value)`` (shallow) for other objects,
    the sum of the elements' weights for native lists/sets/hashes, plus a fixed
    64-byte per-entry overhead. Pass ``weigher=`` for anything more exact.
    """
    return len(key) + _value_weight(value) + _ENTRY_OVERHEAD


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


@dataclass(frozen=True, slots=True)
class EntryInfo:
    """Metadata of one entry: write version, creation/update times, expiry and weight."""

    version: int
    created: float
    updated: float
    expires: float | None
    weight: int


@dataclass(frozen=True, slots=True)
class StoreCounters:
    """A store's running totals."""

    items: int
    bytes: int
    evictions: int
    expirations: int
    rejected: int
