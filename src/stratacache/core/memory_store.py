"""The in-memory engine's store: a map + an eviction policy + expiry + byte accounting.

Pure logic, no I/O: the sync and async ``memory://`` backends, and later the layered
cache's L1 and the server, all run on it. Values are kept as Python objects. When the
facade serializes (a memory cache given a serializer) values arrive as bytes, and counters
are then decimal ASCII bytes, which :meth:`MemoryStore.incr` understands as well as ``int``.

* **Eviction**: any policy from :mod:`stratacache.core.policies` (``lru``, ``lfu``,
  ``fifo``, ``random``, ``tinylfu``), by ``max_entries`` and/or ``max_bytes`` (weighed by
  ``weigher(key, value)``). Both limits hold after every operation. A value heavier than
  ``max_bytes`` is refused with :class:`ValueTooLarge` and counted as ``rejected``.
* **Expiry**: per-entry TTL (expire-after-write) and optional sliding expiry
  (``expire_after_access``). Expired entries are never returned: they are dropped when
  touched, and reclaimed in bounded batches from a heap of deadlines by
  :meth:`purge_expired`, which the process-wide janitor thread calls (see
  :mod:`stratacache._io.janitor`) — no thread per store.
* **Metadata**: every entry keeps a version (incremented on each write), its creation and
  update times and its expiry (:meth:`entry_info`).
* **Pools**: a store can share a byte budget with other stores through a
  :class:`~stratacache.core.pool.MemoryPool`; under pressure the pool asks it to evict by
  its own policy (:meth:`evict_bytes`).
"""

from __future__ import annotations

import builtins
import heapq
import math
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .._exceptions import ConfigurationError, InvalidArgument, ValueTooLarge, WrongType
from .._types import MISSING, UNSET, Missing
from . import _native
from .glob import compile_glob
from .policies import Policy, make_policy
from .policies.fifo import FIFOPolicy
from .policies.lru import LRUPolicy
from .policies.tinylfu import NO_KEY as _TINYLFU_NO_KEY
from .policies.tinylfu import TinyLFUPolicy

if TYPE_CHECKING:
    from .hooks import Hooks
    from .pool import MemoryPool
    from .stats import StatsRecorder

__all__ = ["EntryInfo", "MemoryStore", "StoreCounters", "default_weigher"]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

# The C fused set's write paths (store._c_writes): none (the Python closure writes), a map
# that is its own order (lru, fifo, unbounded), a TinyLFUPolicy's C functions.
C_WRITES_NONE, C_WRITES_MAP_ORDERED, C_WRITES_TINYLFU = 0, 1, 2

# A stale deadline heap (overwritten / deleted keys) is rebuilt past this many extra items.
_HEAP_SLACK = 1024
# Fixed per-entry overhead in the default weight estimate (list + dict slot + key object).
_ENTRY_OVERHEAD = 64
# Hits buffered for a Python-level policy (lfu, tinylfu) between two drains; see _make_policy.
_READ_BUFFER = 1024
# The fused get drains the read buffer at least once per this many hits (a power of two)...
_DRAIN_PERIOD = 512
# ... and not before it holds this many (see fused_get). Nothing is decided on stale counts:
# every operation that reads or changes the policy drains the buffer first.
_DRAIN_BATCH = 256
# The deadline of a native collection (list/set/hash) without a ttl. Not None, so that the
# fused get's one test, ``entry.expires is not None``, sends collections (which a plain get
# refuses) and ttl'd entries alike off its shortest path; never due, and reported as None.
_FOREVER = math.inf


class _Lock(Protocol):
    """What a store needs of its lock: ``threading.Lock``, or the compiled ``StoreLock``."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...
    def __enter__(self) -> bool: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


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


def _positive_or_none(name: str, value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive integer or None, got {value!r}")
    return value


class _InlineLRU(Policy):
    """``lru`` kept in the store's own map, an ``OrderedDict``, instead of a second structure.

    :class:`~stratacache.core.policies.lru.LRUPolicy` keeps its own ``OrderedDict`` of the
    keys; a store running the built-in ``lru`` or ``fifo`` makes its map an ``OrderedDict``
    and lets this view order it: a hit is ``move_to_end`` on the map, the victim is the map's
    first key, and inserts and removals (which the store does to its map anyway) cost the
    policy nothing. One hash table and one linked list per entry instead of two of each:
    less memory, and no policy call on a write. Same order, same victims as ``LRUPolicy``.
    Weights are the store's business (it evicts until both of its limits hold), so
    ``weight`` is not kept here.
    """

    name: ClassVar[str] = "lru"
    tracks_access: ClassVar[bool] = True

    def __init__(self, capacity: int, order: OrderedDict[str, Any] | None = None) -> None:
        """A view of ``order`` (the store's map) for at most ``capacity``."""
        self.capacity = capacity
        self.weight = 0
        self._order: OrderedDict[str, Any] = OrderedDict() if order is None else order
        if self.tracks_access:
            self.on_access = self._order.move_to_end  # type: ignore[method-assign,assignment]

    def on_insert(self, key: Hashable, weight: int = 1) -> None:
        """Nothing: the store's insert put the key at the end of the map."""

    def on_access(self, key: Hashable) -> None:
        """Make ``key`` the most recently used (replaced per instance by ``move_to_end``)."""
        self._order.move_to_end(key)  # type: ignore[arg-type]

    def on_update(self, key: Hashable, weight: int) -> None:
        """An overwrite makes the key the most recent (and, for fifo, restarts its age)."""
        self._order.move_to_end(key)  # type: ignore[arg-type]

    def on_remove(self, key: Hashable) -> None:
        """Nothing: the store removes the key from its map itself."""

    def evict(self) -> Hashable:
        """The map's first key (the store then removes it)."""
        try:
            return next(iter(self._order))
        except StopIteration:
            raise KeyError(f"evict() from an empty {self.name} policy") from None

    def clear(self) -> None:
        """Nothing: the store clears its map."""

    def __len__(self) -> int:
        """The number of keys in the map."""
        return len(self._order)

    def resize(self, capacity: int) -> None:
        """Set a new capacity."""
        self.capacity = capacity


class _InlineFIFO(_InlineLRU):
    """``fifo`` kept in the store's own map: :class:`_InlineLRU` without the move on a hit."""

    name: ClassVar[str] = "fifo"
    tracks_access: ClassVar[bool] = False

    def on_access(self, key: Hashable) -> None:
        """Nothing: a hit does not change the order."""


_INLINE: dict[type[Policy], type[_InlineLRU]] = {LRUPolicy: _InlineLRU, FIFOPolicy: _InlineFIFO}


class MemoryStore:
    """A thread-safe map with pluggable eviction, per-entry expiry and native collections.

    ``max_entries``/``max_bytes`` bound the store (``None``: unbounded); ``policy`` names
    the eviction policy; ``weigher(key, value) -> int`` weighs entries for ``max_bytes``
    and pools (default :func:`default_weigher`); ``expire_after_access`` turns on sliding
    expiry (each read extends an entry by its own ttl, or by this many seconds for entries
    written without one); ``clock`` returns monotonic seconds (inject a fake in tests);
    ``pool`` shares a byte budget with other stores. Every public method is atomic.
    """

    # What the C fused set reads on every write, as slots (read at their offsets, ~5
    # instructions, against a dict probe of ~110); everything else in the instance dict.
    __slots__ = ("__dict__", "__weakref__", "_c_writes", "_heap", "_policy", "_reads", "max_entries")

    def __init__(
        self,
        *,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        policy: str = "lru",
        weigher: Callable[[str, Any], int] | None = None,
        expire_after_access: float | None = None,
        clock: Callable[[], float] | None = None,
        pool: MemoryPool | None = None,
        name: str = "default",
    ) -> None:
        self.max_entries = _positive_or_none("max_entries", max_entries)
        self.max_bytes = _positive_or_none("max_bytes", max_bytes)
        if weigher is not None and not callable(weigher):
            raise ConfigurationError(f"weigher must be a callable (key, value) -> int, got {weigher!r}")
        if expire_after_access is not None and (
            isinstance(expire_after_access, bool)
            or not isinstance(expire_after_access, (int, float))
            or not expire_after_access > 0
        ):
            raise ConfigurationError(
                "expire_after_access must be a positive number of seconds or None, "
                f"got {expire_after_access!r}"
            )
        if clock is not None and not callable(clock):
            raise ConfigurationError(f"clock must be a callable returning seconds, got {clock!r}")
        self.name = name
        self.policy_name = policy
        self.clock: Callable[[], float] = clock or time.monotonic
        self.expire_after_access = None if expire_after_access is None else float(expire_after_access)
        self._weigher = weigher or default_weigher
        # Weighing costs a call per write: only pay it when a byte limit or a pool needs it.
        self._weighs = self.max_bytes is not None or pool is not None
        # The built-in lru and fifo keep their order in the map itself (see _InlineLRU).
        policy_class = type(make_policy(policy, 1))
        inline = policy_class in _INLINE
        self._data: dict[str, _Entry] = OrderedDict() if inline else {}
        # How the fused get records a hit without the lock, fixed for the store's life (the
        # fused get binds it once; a resize may replace the policy object, not its kind):
        # * None: nothing to record (fifo, random);
        # * the map's own move_to_end (lru, see _InlineLRU): one C call, atomic under the
        #   GIL, so a reader never sees a half-updated order;
        # * otherwise (lfu, tinylfu, registered policies, whose on_access is Python code that
        #   must run under the lock) the append of a read buffer, Caffeine's design: a hit
        #   appends its key (one C call, atomic) and the buffer is drained into the policy, in
        #   order, under the lock, before anything that reads or changes the policy (a write,
        #   an eviction, a locked read) and at least once per _DRAIN_PERIOD hits. The buffer
        #   is bounded (_READ_BUFFER reads); should nothing drain it for that long, the
        #   oldest reads are dropped, as Caffeine's lossy read buffer drops them: the policy
        #   is told less, the store stays correct. With no policy (unbounded) it is emptied.
        self._reads: deque[str] | None = None
        self._fast_access: Callable[[str], object] | None = None
        if inline:
            if policy_class.tracks_access:
                self._fast_access = self._data.move_to_end  # type: ignore[attr-defined]
        elif policy_class.tracks_access:
            self._reads = deque(maxlen=_READ_BUFFER)
            self._fast_access = self._reads.append
        # The compiled StoreLock when the speedups are there: the fused get and set take it
        # without a Python call (see core/_storelock.h); otherwise threading.Lock, the same
        # interface.
        native = _native.speedups
        self._lock: _Lock = threading.Lock() if native is None else native.StoreLock()
        self._heap: list[tuple[float, str]] = []
        self._bytes = 0
        self.evictions = 0
        self.expirations = 0
        self.rejected = 0
        self._pool = pool
        self._policy: Policy | None = None
        self._make_policy(policy)
        if pool is not None:
            pool.register(self)

    # ----------------------------------------------------------------- policy

    def _capacity(self) -> int | None:
        if self.max_entries is not None:
            return self.max_entries
        if self.max_bytes is not None:
            return self.max_bytes
        if self._pool is not None:
            return int(self._pool.capacity)
        return None

    def _make_policy(self, name: str) -> None:
        capacity = self._capacity()
        if capacity is None:
            # Unbounded and in no pool: nothing is ever evicted, so no policy is consulted
            # (the name is still checked, so a typo fails loudly).
            make_policy(name, 1)
            self._policy = None
        else:
            self._policy = make_policy(name, capacity)
            inline = _INLINE.get(type(self._policy))
            if inline is not None and type(self._data) is OrderedDict:
                self._policy = inline(capacity, self._data)
        policy = self._policy
        # Inserts and removals need no policy call when the map is the order.
        self._tracks_keys = policy is not None and not isinstance(policy, _InlineLRU)
        # Bound methods cached once: the hot path calls them without attribute lookups.
        self._on_access = policy.on_access if policy is not None and policy.tracks_access else None
        # None when the policy keeps the base class's no-op (every policy but tinylfu): a
        # miss then needs no lock.
        self._record_miss = (
            policy.record_miss
            if policy is not None and type(policy).record_miss is not Policy.record_miss
            else None
        )
        # With max_entries the policy counts entries; otherwise it weighs bytes.
        self._policy_weighs = self.max_entries is None
        self._update_write_path()

    def _update_write_path(self) -> None:
        # The fused set's inline path (see fused_set) is for stores whose writes need no
        # weighing and no sliding window: every policy counts entries there (weight 1).
        self._simple_writes = not self._weighs and self.expire_after_access is None
        # ... and the C fused set's (core/_speedups.c), one attribute read per write: for stores
        # whose map is their order, and for stores whose policy is exactly TinyLFUPolicy (its
        # insert and evict are C functions there; a subclass may override them, so it takes
        # the Python path).
        if self._simple_writes and not self._tracks_keys and self._reads is None:
            self._c_writes = C_WRITES_MAP_ORDERED
        elif self._simple_writes and type(self._policy) is TinyLFUPolicy:
            self._c_writes = C_WRITES_TINYLFU
        else:
            self._c_writes = C_WRITES_NONE

    def _drain_reads(self) -> None:
        """Replay the buffered hits into the policy, oldest first. Lock held.

        A key removed since it was read (deleted, expired, evicted) is skipped: the policy
        does not track it any more.
        """
        reads = self._reads
        if not reads:
            return
        # Copy then clear: a lock-free reader may append between the two C calls; that one
        # read is dropped (the buffer is lossy by design), the store is unaffected.
        keys = list(reads)
        reads.clear()
        policy = self._policy
        if policy is None:
            return
        policy.on_access_many(keys, self._data)

    def _policy_weight(self, weight: int) -> int:
        return weight if self._policy_weighs else 1

    # --------------------------------------------------------------- internals

    def _live(self, key: str) -> _Entry | None:
        """The entry for ``key`` if present and unexpired (dropping it if expired). Lock held."""
        entry = self._data.get(key)
        if entry is None:
            return None
        expires = entry.expires
        if expires is not None:
            now = self.clock()
            if expires <= now:
                self._expire(key, entry)
                return None
            window = entry.window
            if window is not None:
                entry.expires = now + window
        return entry

    def _touch(self, key: str, entry: _Entry) -> None:
        """Record a read of a live entry. Lock held."""
        if self._on_access is not None:
            if self._reads:
                self._drain_reads()  # the hits before this one first, in order
            self._on_access(key)

    def _expire(self, key: str, entry: _Entry) -> None:
        """Drop the dead entry at ``key`` and count it as expired. Lock held."""
        self._remove(key, entry)
        self.expirations += 1

    def _remove(self, key: str, entry: _Entry) -> None:
        """Forget ``key`` everywhere (map, policy, bytes, pool). Lock held."""
        del self._data[key]
        if self._tracks_keys:
            self._policy.on_remove(key)  # type: ignore[union-attr]
        weight = entry.weight
        if weight:
            self._bytes -= weight
            if self._pool is not None:
                self._pool.charge(self, -weight)

    def _weigh(self, key: str, value: Any) -> int:
        if not self._weighs:
            return 0
        weight = self._weigher(key, value)
        if type(weight) is not int or weight < 0:
            raise ConfigurationError(
                f"weigher returned {weight!r} for key {key!r}; it must return an int >= 0"
            )
        if self.max_bytes is not None and weight > self.max_bytes:
            self.rejected += 1
            raise ValueTooLarge(
                f"the value for key {key!r} weighs {weight} bytes, "
                f"more than the store's max_bytes={self.max_bytes}"
            )
        return weight

    def _deadline(self, ttl: float | None, now: float) -> tuple[float | None, float | None]:
        """(expires, sliding window) for a write with ``ttl``."""
        window = self.expire_after_access
        if ttl is not None:
            return now + ttl, (ttl if window is not None else None)
        if window is not None:
            return now + window, window
        return None, None

    def _schedule(self, key: str, expires: float | None) -> None:
        if expires is None or expires == _FOREVER:
            return
        heap = self._heap
        heapq.heappush(heap, (expires, key))
        if len(heap) > 2 * len(self._data) + _HEAP_SLACK:
            # Overwrites and deletes leave stale deadlines behind; rebuild from the live ones.
            self._heap = [
                (e.expires, k)
                for k, e in self._data.items()
                if e.expires is not None and e.expires != _FOREVER
            ]
            heapq.heapify(self._heap)
        if len(heap) == 1:
            from .._io.janitor import janitor

            janitor.watch(self)

    def _put(self, key: str, value: Any, ttl: float | None) -> _Entry:
        """Insert or replace ``key``, then evict to stay within every limit. Lock held."""
        if self._reads:
            self._drain_reads()
        weight = self._weigh(key, value) if self._weighs else 0
        now = self.clock()
        heap = self._heap
        if heap and heap[0][0] <= now:
            # A write reclaims a few expired entries too, so a store nobody reads from does
            # not wait for the janitor to give memory back.
            self._purge_locked(now, 8)
        if ttl is None and self.expire_after_access is None:
            expires = window = None  # the common case, without a call
        else:
            expires, window = self._deadline(ttl, now)
        data = self._data
        entry = data.get(key)
        if entry is not None and entry.expires is not None and entry.expires <= now:
            # A dead entry is not overwritten but expired, and the write makes a new one
            # (version 1, created now): the same answer whether the janitor got there first.
            self._expire(key, entry)
            entry = None
        policy = self._policy
        policy_weight = weight if self._policy_weighs else 1
        if entry is None:
            if self.expire_after_access is None:
                entry = _new_entry(_Entry)
            else:
                entry = _new_entry(_SlidingEntry)
                entry.window = window
            entry.value = value
            entry.expires = expires
            entry.weight = weight
            entry.version = 1
            entry.created = entry.updated = now
            data[key] = entry
            if self._tracks_keys:
                policy.on_insert(key, policy_weight)  # type: ignore[union-attr]
            delta = weight
            scheduled = None
        else:
            scheduled = entry.expires
            delta = weight - entry.weight
            entry.value = value
            entry.expires = expires
            entry.weight = weight
            entry.version += 1
            entry.updated = now
            if window is not None or type(entry) is _SlidingEntry:
                entry.window = window  # type: ignore[misc]  # a _SlidingEntry here
            if policy is not None:
                policy.on_update(key, policy_weight)
        if expires is not None and (scheduled is None or expires < scheduled):
            # An entry already in the heap with an earlier deadline needs no second item: when
            # that one comes due, the purge sees the later deadline and re-queues it. So the
            # common overwrite with the same ttl pushes nothing.
            self._schedule(key, expires)
        if delta:
            self._bytes += delta
            if self._pool is not None:
                self._pool.charge(self, delta)
        if policy is not None and (
            (self.max_entries is not None and len(data) > self.max_entries)
            or (self.max_bytes is not None and self._bytes > self.max_bytes)
        ):
            self._enforce(over=True)
        return entry

    def _reweigh(self, key: str, entry: _Entry, delta: int | None = None) -> None:
        """A value changed in place: bump its version, re-weigh it, evict if needed. Lock held.

        ``delta`` is the change in weight when the caller knows it (collections with the
        default weigher), so that pushing onto a long list stays O(1) instead of re-weighing
        every element; a custom weigher always sees the whole value.
        """
        entry.version += 1
        entry.updated = self.clock()
        if not self._weighs:
            return
        if delta is None or self._weigher is not default_weigher:
            delta = self._weigher(key, entry.value) - entry.weight
        weight = entry.weight + delta
        if delta:
            entry.weight = weight
            self._bytes += delta
            if self._pool is not None:
                self._pool.charge(self, delta)
            if self._policy is not None:
                self._policy.on_update(key, self._policy_weight(weight))
            self._enforce()

    def _over(self) -> bool:
        max_entries = self.max_entries
        if max_entries is not None and len(self._data) > max_entries:
            return True
        max_bytes = self.max_bytes
        return max_bytes is not None and self._bytes > max_bytes

    def _enforce(self, *, over: bool = False) -> None:
        """Evict by policy until both limits hold (``over``: the caller saw them broken). Lock held."""
        policy = self._policy
        if policy is None or not (over or self._over()):
            return
        if self._reads:
            self._drain_reads()  # the victim is chosen on every hit so far
        heap = self._heap
        if heap:
            now = self.clock()
            if heap[0][0] <= now:
                self._purge_locked(now, 64)  # expired entries go before live ones
        data = self._data
        max_entries = self.max_entries
        max_bytes = self.max_bytes
        pool = self._pool
        # The first key of the map is the victim when the map is the order (_InlineLRU).
        popfirst = data.popitem if not self._tracks_keys else None
        # The loop of _over() and _remove_evicted(), inlined: it runs once per evicted key.
        while (max_entries is not None and len(data) > max_entries) or (
            max_bytes is not None and self._bytes > max_bytes
        ):
            entry: _Entry | None
            if popfirst is not None:
                entry = popfirst(last=False)[1]  # type: ignore[call-arg]
            else:
                victim: Any = policy.evict()
                entry = data.pop(victim, None)
                if entry is None:
                    continue  # the policy knew a key the store had already dropped
            weight = entry.weight
            if weight:
                self._bytes -= weight
                if pool is not None:
                    pool.charge(self, -weight)
            self.evictions += 1

    def _remove_evicted(self, key: str, entry: _Entry) -> None:
        # The policy already forgot the victim; only the map, bytes and pool remain.
        del self._data[key]
        weight = entry.weight
        if weight:
            self._bytes -= weight
            if self._pool is not None:
                self._pool.charge(self, -weight)
        self.evictions += 1

    def _purge_locked(self, now: float, limit: int) -> int:
        heap = self._heap
        data = self._data
        removed = 0
        while heap and heap[0][0] <= now and removed < limit:
            deadline, key = heapq.heappop(heap)
            entry = data.get(key)
            if entry is None:
                continue
            expires = entry.expires
            if expires is None:
                continue
            if expires <= now:
                self._expire(key, entry)
                removed += 1
            elif expires not in (deadline, _FOREVER):
                # Extended since scheduled (sliding expiry or a rewrite): watch the new deadline.
                heapq.heappush(heap, (expires, key))
        return removed

    def _relieve_pool(self) -> None:
        # Called with no lock held: a pool's relief makes other stores evict (their locks).
        pool = self._pool
        if pool is not None and pool.needs_relief():
            pool.relieve()

    # ------------------------------------------------------------ maintenance

    def purge_expired(self, limit: int = 1000) -> int:
        """Reclaim up to ``limit`` expired entries; the janitor calls this. Returns how many."""
        with self._lock:
            removed = self._purge_locked(self.clock(), limit)
        # Also delivers the pool's pending pressure events (a drop back to a lower level).
        self._relieve_pool()
        return removed

    def evict_bytes(self, nbytes: int) -> int:
        """Evict by this store's policy until ``nbytes`` were freed or it is empty (pool relief)."""
        freed = 0
        with self._lock:
            if self._reads:
                self._drain_reads()
            policy = self._policy
            data = self._data
            while freed < nbytes and data:
                if policy is not None:
                    victim: Any = policy.evict()
                    entry = data.get(victim)
                    if entry is None:
                        continue
                    freed += entry.weight
                    self._remove_evicted(victim, entry)
                else:
                    # No policy: oldest inserted first (dicts keep insertion order).
                    victim = next(iter(data))
                    entry = data[victim]
                    freed += entry.weight
                    self._remove(victim, entry)
                    self.evictions += 1
        return freed

    @property
    def pool_bytes(self) -> int:
        """Bytes this store holds, as charged to its pool."""
        return self._bytes

    def resize(self, *, max_entries: Any = UNSET, max_bytes: Any = UNSET) -> None:
        """Change the limits at run time; entries that still fit are kept (the policy picks the rest)."""
        with self._lock:
            if self._reads:
                self._drain_reads()
            if max_entries is not UNSET:
                self.max_entries = _positive_or_none("max_entries", max_entries)
            if max_bytes is not UNSET:
                new_bytes = _positive_or_none("max_bytes", max_bytes)
                if new_bytes is not None and not self._weighs:
                    # Weighing was off: weigh what is already stored.
                    self._weighs = True
                    for key, entry in self._data.items():
                        entry.weight = self._weigher(key, entry.value)
                    self._bytes = sum(e.weight for e in self._data.values())
                self.max_bytes = new_bytes
            capacity = self._capacity()
            if capacity is None:
                self._policy = None
                self._on_access = self._record_miss = None
                self._tracks_keys = False
                self._update_write_path()
                return
            if self._policy is None:
                self._make_policy(self.policy_name)
                policy = self._policy
                assert policy is not None
                for key, entry in self._data.items():
                    policy.on_insert(key, self._policy_weight(entry.weight))
            else:
                self._policy_weighs = self.max_entries is None
                self._policy.resize(capacity)
            self._update_write_path()
            self._enforce()

    def counters(self, prefix: str | None = None) -> StoreCounters:
        """Items (live, optionally under ``prefix``), bytes, evictions, expirations, rejections."""
        return StoreCounters(
            items=self.count(prefix),
            bytes=self._bytes,
            evictions=self.evictions,
            expirations=self.expirations,
            rejected=self.rejected,
        )

    def entry_info(self, key: str) -> EntryInfo | None:
        """Metadata of the live entry at ``key``, or None."""
        with self._lock:
            entry = self._live(key)
            if entry is None:
                return None
            expires = None if entry.expires == _FOREVER else entry.expires
            return EntryInfo(entry.version, entry.created, entry.updated, expires, entry.weight)

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        """Leave the pool and the janitor; the data is dropped."""
        from .._io.janitor import janitor

        janitor.unwatch(self)
        with self._lock:
            self._data.clear()
            self._heap.clear()
            if self._pool is not None and self._bytes:
                self._pool.charge(self, -self._bytes)
            self._bytes = 0
        if self._pool is not None:
            self._pool.unregister(self)

    # ------------------------------------------------------------ plain values

    def fused_get(
        self,
        *,
        prefix: str,
        stats: StatsRecorder,
        hooks: Hooks,
        sample_every: int,
        full_get: Callable[[Any, Any], Any],
        miss_is_final: bool = True,
    ) -> Callable[..., Any]:
        """A ``Cache.get`` for this store in one Python frame (the facades install it).

        ``miss_is_final=False`` sends every miss to ``full_get`` too: for a store that is
        only the top tier of a layered cache, where a miss here must read the lower tiers.

        It serves the common cases inline — a plain value, with or without a ttl, or a miss
        — and counts hits and misses into the facade's ``stats``. Anything else (hooks, a
        non-str key, a collection, an expired or sliding entry) goes to ``full_get``, the
        facade's complete method. One hit in ``sample_every`` (and one miss) is run again
        under a timer for the latency statistics (``stats.get_latency``): what is timed is
        this function, the path a get actually takes. Closure variables instead of attribute
        lookups are what make it cheap.

        **No lock on a hit.** Under the GIL each C-level call (``dict.get``,
        ``OrderedDict.move_to_end``, ``deque.append``) is atomic, and between them this code
        only reads attributes of the entry it found. A hit is therefore a read of the map at
        one instant: a concurrent write replaces the entry's fields (the value before its
        deadline; a reader may pair the new value with the old deadline, both of a write
        that is live) and a concurrent eviction can at worst remove the key between the
        lookup and the recency update, which then raises KeyError and is ignored (the read
        happened before the eviction). Expiry is checked against the clock like the full
        path does; a due entry goes to the full path, which removes it under the lock, so
        an expired value is never returned. Policies whose bookkeeping is Python code (lfu,
        tinylfu) get the hit through the store's read buffer (see ``_make_policy``).

        **Counters.** ``stats.hits = h`` is a load, an add and a store with no call in
        between, which the interpreter does not interrupt (it switches threads at calls and
        backward jumps), as the facade's own ``+= 1`` relies on. The count is also the
        latency-sampling clock: a call that would make the count a multiple of
        ``sample_every`` is not counted but run again by ``timed``, whose run counts it.
        """
        data_get = self._data.get
        lock = self._lock
        clock = self.clock
        store = self
        access = self._fast_access
        reads = self._reads
        sliding = self.expire_after_access is not None  # every deadline slides: full path
        every = sample_every
        # One test per call, ``h & mask``, finds the calls with periodic work (a "tick"): the
        # latency sample (``h % every == 0``) and the read buffer's drain. For a power of two
        # ``every`` the ticks are its multiples, at most _DRAIN_PERIOD apart, and a tick drains
        # once _DRAIN_BATCH hits wait (a drain has a fixed cost, ~2 us, shared by its batch;
        # draining at every 64th hit instead measured ~30 ns more per tinylfu hit); otherwise
        # every call is a tick, which then tests ``h % every`` and drains less often.
        if every & (every - 1) == 0:
            mask = min(every, _DRAIN_PERIOD) - 1
            drain_at = _DRAIN_BATCH
        else:
            mask = 0
            drain_at = _DRAIN_PERIOD
        perf_counter = time.perf_counter
        timing = False  # a timed run is under way (in any thread): do not nest another

        def timed(key: Any, default: Any) -> Any:
            nonlocal timing
            timing = True
            try:
                started = perf_counter()
                value = get(key, default)
                elapsed = perf_counter() - started
            finally:
                timing = False
            stats.get_latency.add(elapsed)
            return value

        def get(key: Any, default: Any = None) -> Any:
            if hooks.active:
                return full_get(key, default)
            try:
                # An unhashable key fails here (as does str + other); a hashable non-str
                # key finds nothing (the map holds str keys) and is checked on the miss
                # branch: both go to the full path, which rejects them as the facade does.
                k = prefix + key if prefix else key
                entry = data_get(k)
            except TypeError:
                return full_get(key, default)
            if entry is None:
                # Non-ASCII: a lone surrogate, which the full path refuses, never hits.
                if type(key) is not str or not miss_is_final or not key.isascii():
                    return full_get(key, default)
                n = stats.misses + 1
                if not n & mask and not n % every and not timing:
                    return timed(key, default)
                record_miss = store._record_miss
                if record_miss is not None:
                    lock.acquire()
                    try:
                        if store._reads:
                            store._drain_reads()
                        record_miss(k)
                    finally:
                        lock.release()
                stats.misses += 1
                return default
            value = entry.value
            expires = entry.expires
            if expires is not None and (expires <= clock() or sliding or type(value) in _NATIVE_TYPES):
                # Due (the full path drops it), sliding (the full path extends it under the
                # lock) or a collection (a plain get refuses it): not for this path.
                return full_get(key, default)
            if access is not None:
                try:  # noqa: SIM105 - contextlib.suppress costs a context manager per hit
                    access(k)
                except KeyError:
                    pass  # evicted by another thread after our read: the read came first
            h = stats.hits + 1
            if h & mask:
                stats.hits = h
                return value
            # A tick: replay the buffered hits into the policy, and perhaps time this call.
            if reads is not None and len(reads) >= drain_at:
                lock.acquire()
                try:
                    store._drain_reads()
                finally:
                    lock.release()
            if h % every or timing:
                stats.hits = h
                return value
            return timed(key, default)

        native = _native.speedups
        if native is None:
            return get
        # The C shortcut through this closure's commonest path (a plain hit; a miss no policy
        # counts); it hands every other call to ``get`` unchanged (see core/_speedups.c).
        return native.fused_get(
            self._data,
            prefix,
            hooks,
            stats,
            self,
            clock,
            access,
            _NATIVE_TYPES,
            get,
            mask,
            sliding,
            miss_is_final,
            _new_entry(_Entry),  # its type's slots are read at their offsets
        )

    def get(self, key: str) -> Any:
        """The value at ``key`` or MISSING; WrongType if it is a native collection."""
        lock = self._lock
        lock.acquire()
        try:
            if self._reads:
                self._drain_reads()
            entry = self._data.get(key)
            if entry is None:
                if self._record_miss is not None:
                    self._record_miss(key)
                return MISSING
            if entry.expires is not None and self._live(key) is None:
                return MISSING
            if self._on_access is not None:
                self._on_access(key)
            value = entry.value
        finally:
            lock.release()
        if type(value) in _NATIVE:
            raise WrongType(f"get on key {key!r}: it holds a {_kind(value)}")
        return value

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The present keys among ``keys`` with their values."""
        found: dict[str, Any] = {}
        with self._lock:
            for key in keys:
                entry = self._live(key)
                if entry is None:
                    if self._record_miss is not None:
                        if self._reads:
                            self._drain_reads()
                        self._record_miss(key)
                elif type(entry.value) not in _NATIVE:
                    self._touch(key, entry)
                    found[key] = entry.value
        return found

    def set(self, key: str, value: Any, ttl: float | None) -> None:
        """Store ``value`` (replacing anything, collections included) for ``ttl`` seconds."""
        lock = self._lock
        lock.acquire()
        try:
            self._put(key, value, ttl)
        finally:
            lock.release()
        if self._pool is not None:
            self._relieve_pool()

    def fused_set(
        self,
        *,
        owner: Any,
        prefix: str,
        stats: StatsRecorder,
        hooks: Hooks,
        sample_every: int,
        full_set: Callable[..., None],
    ) -> Callable[..., None]:
        """A ``Cache.set`` for this store in one Python frame (the sync facade installs it).

        ``owner`` is the facade (its ``default_ttl``, its ``_closed`` flag and its latency
        tick are read per call). The common case — a str key, no hooks, no ttl, a store that
        weighs nothing and has no sliding expiry — is done inline under the store's lock,
        policy calls and eviction included (``_put`` and ``_enforce`` in one frame); anything
        else goes to ``full_set``, the facade's method (which counts errors and fires hooks).
        One write in ``sample_every`` is timed into ``stats.set_latency``: this function's
        path when it takes the write, else the facade's (its tick is set so that it times the
        call). Nothing on the inline path can fail: no weigher runs, no limit
        refuses, and the policies' ``on_insert``/``on_update``/``evict`` with weight 1 raise
        nothing.
        """
        data = self._data
        data_get = data.get
        lock = self._lock
        acquire = lock.acquire
        release = lock.release
        clock = self.clock
        store = self
        reads = self._reads
        move = data.move_to_end if type(data) is OrderedDict else None
        popfirst = data.popitem
        perf_counter = time.perf_counter
        every = sample_every
        mask = every - 1 if every & (every - 1) == 0 else 0

        def set(key: Any, value: Any, ttl: Any = UNSET) -> None:  # noqa: A001 - the facade's name
            if hooks.active or owner._closed or type(key) is not str or not key.isascii():
                return full_set(key, value, ttl)
            if ttl is UNSET:
                seconds = owner.default_ttl
            elif ttl is None:
                seconds = None
            else:
                return full_set(key, value, ttl)  # numbers and timedeltas: validated there
            if seconds is not None or not store._simple_writes:
                return full_set(key, value, ttl)
            n = stats.sets + 1
            # One write in ``every`` is timed, here: the path a write actually takes.
            started = perf_counter() if not n & mask and not n % every else 0.0
            k = prefix + key
            done = False
            acquire()
            try:
                # Re-checked under the lock: a concurrent resize may have turned weighing on.
                if store._simple_writes:
                    done = True
                    if reads:
                        store._drain_reads()  # the policy hears of every hit before this write
                    now = clock()
                    heap = store._heap
                    if heap and heap[0][0] <= now:
                        store._purge_locked(now, 8)  # as _put does
                    policy = store._policy
                    tracks_keys = store._tracks_keys
                    entry = data_get(k)
                    if entry is not None and entry.expires is not None and entry.expires <= now:
                        store._expire(k, entry)  # dead: expired, and a new entry made (as _put)
                        entry = None
                    if entry is None:
                        entry = _new_entry(_Entry)
                        entry.value = value
                        entry.expires = None
                        entry.weight = 0
                        entry.version = 1
                        entry.created = entry.updated = now
                        data[k] = entry
                        if tracks_keys:
                            policy.on_insert(k, 1)  # type: ignore[union-attr]
                        max_entries = store.max_entries
                        if max_entries is not None and policy is not None and len(data) > max_entries:
                            if heap:
                                store._enforce(over=True)  # expired entries go before live ones
                            elif tracks_keys:
                                while len(data) > max_entries:
                                    if data.pop(policy.evict(), None) is not None:  # type: ignore[call-overload]
                                        store.evictions += 1
                            else:
                                # The map is the order: its first key is the victim.
                                while len(data) > max_entries:
                                    popfirst(last=False)  # type: ignore[call-arg]
                                    store.evictions += 1
                    else:
                        entry.value = value
                        entry.expires = None
                        entry.version += 1
                        entry.updated = now
                        if tracks_keys:
                            policy.on_update(k, 1)  # type: ignore[union-attr]
                        elif move is not None:
                            move(k)  # an overwrite refreshes the key (lru) or its age (fifo)
            finally:
                release()
            if not done:
                if started:
                    owner._tick = every  # makes the full path time this call instead
                return full_set(key, value, ttl)
            stats.sets = n
            if started:
                stats.set_latency.add(perf_counter() - started)
            return None

        native = _native.speedups
        if native is None:
            return set
        # The C shortcut through this closure's path for stores whose map is their order
        # (lru, fifo, unbounded) or whose policy is TinyLFUPolicy; every other call goes to
        # ``set`` (see core/_speedups.c).
        return native.fused_set(
            data,
            prefix,
            hooks,
            owner,
            stats,
            self,
            lock,
            clock,
            UNSET,
            set,
            mask,
            _new_entry(_Entry),
            _TINYLFU_NO_KEY,
        )

    def set_many(self, items: Mapping[str, Any], ttl: float | None) -> None:
        """Store every item with the same ttl, atomically (all weighed before any is stored)."""
        with self._lock:
            if self.max_bytes is not None:
                for key, value in items.items():
                    self._weigh(key, value)
            for key, value in items.items():
                self._put(key, value, ttl)
        self._relieve_pool()

    def add(self, key: str, value: Any, ttl: float | None) -> bool:
        """Store only if ``key`` is absent; True when stored."""
        with self._lock:
            if self._live(key) is not None:
                return False
            self._put(key, value, ttl)
        self._relieve_pool()
        return True

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed."""
        with self._lock:
            entry = self._live(key)
            if entry is None:
                return False
            self._remove(key, entry)
            return True

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove every key; the number that existed."""
        with self._lock:
            count = 0
            for key in keys:
                entry = self._live(key)
                if entry is not None:
                    self._remove(key, entry)
                    count += 1
            return count

    def exists(self, key: str) -> bool:
        """True when ``key`` holds anything unexpired."""
        with self._lock:
            return self._live(key) is not None

    def incr(self, key: str, delta: int) -> int:
        """Add ``delta`` to the integer at ``key`` (created from 0 without expiry; keeps an expiry)."""
        with self._lock:
            entry = self._live(key)
            if entry is None:
                result = _add_counter(0, delta, key)
                self._put(key, result, None)
            else:
                current, as_bytes = _as_counter(entry.value, key, "incr")
                result = _add_counter(current, delta, key)
                entry.value = str(result).encode() if as_bytes else result
                self._touch(key, entry)
                self._reweigh(key, entry)
        self._relieve_pool()
        return result

    def expire(self, key: str, ttl: float | None) -> bool:
        """Set the remaining life of ``key`` (None: never expire); False when absent."""
        with self._lock:
            entry = self._live(key)
            if entry is None:
                return False
            expires, window = self._deadline(ttl, self.clock())
            if expires is None and type(entry.value) in _NATIVE:
                expires = _FOREVER
            entry.expires = expires
            if window is not None or type(entry) is _SlidingEntry:
                entry.window = window  # type: ignore[misc]  # a _SlidingEntry here
            self._schedule(key, expires)
            return True

    def ttl(self, key: str) -> float | None | Missing:
        """Seconds left, None for no expiry, MISSING when absent."""
        with self._lock:
            entry = self._live(key)
            if entry is None:
                return MISSING
            expires = entry.expires
            if expires is None or expires == _FOREVER:
                return None
            return max(0.0, expires - self.clock())

    def _live_keys(self, match: Callable[[str], bool] | None) -> list[str]:
        now = self.clock()
        return [
            key
            for key, entry in self._data.items()
            if (entry.expires is None or entry.expires > now) and (match is None or match(key))
        ]

    def keys(self, pattern: str | None = None) -> list[str]:
        """Live keys, optionally filtered by a Redis-style glob."""
        match = compile_glob(pattern) if pattern is not None else None
        with self._lock:
            return self._live_keys(match)

    def delete_pattern(self, pattern: str) -> int:
        """Delete every live key matching the glob; the number deleted."""
        match = compile_glob(pattern)
        with self._lock:
            doomed = self._live_keys(match)
            for key in doomed:
                self._remove(key, self._data[key])
            return len(doomed)

    def clear(self, prefix: str | None = None) -> None:
        """Remove everything, or only the keys starting with ``prefix``."""
        with self._lock:
            if prefix is None:
                if self._pool is not None and self._bytes:
                    self._pool.charge(self, -self._bytes)
                self._data.clear()
                self._heap.clear()
                self._bytes = 0
                if self._policy is not None:
                    self._policy.clear()
                if self._reads is not None:
                    self._reads.clear()
                return
            for key in [k for k in self._data if k.startswith(prefix)]:
                self._remove(key, self._data[key])

    def count(self, prefix: str | None = None) -> int:
        """The number of live entries (with ``prefix``, only those keys)."""
        with self._lock:
            now = self.clock()
            return sum(
                1
                for key, entry in self._data.items()
                if (entry.expires is None or entry.expires > now)
                and (prefix is None or key.startswith(prefix))
            )

    # ------------------------------------------------------------- collections

    def _native(self, key: str, cls: type[Any], op: str, create: bool) -> Any:
        """The native collection at ``key``; WrongType if it holds something else. Lock held."""
        entry = self._live(key)
        if entry is None:
            if not create:
                return None
            value = cls()
            # Version 0: the operation that creates a collection also fills it, and that
            # fill (one write) brings it to version 1.
            entry = self._put(key, value, None)
            entry.version = 0
            if entry.expires is None:
                entry.expires = _FOREVER
            return value
        value = entry.value
        if type(value) is not cls:
            raise WrongType(f"{op} on key {key!r}: it holds a {_kind(value)}, not a {_KIND[cls]}")
        self._touch(key, entry)
        return value

    def _changed(self, key: str, container: Any, delta: int | None = None) -> None:
        """After an in-place change: drop an emptied collection (as Redis does), else re-weigh it."""
        entry = self._data.get(key)
        if entry is None:
            return
        if not container:
            self._remove(key, entry)
        else:
            self._reweigh(key, entry, delta)

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
            self._changed(key, items, sum(_value_weight(v) + 8 for v in values) if self._weighs else 0)
            return length

    def pop(self, key: str, left: bool) -> Any:
        """LPOP/RPOP: remove and return one end, or MISSING when the list is empty/absent."""
        with self._lock:
            items: _List | None = self._native(key, _List, "lpop" if left else "rpop", False)
            if not items:
                return MISSING
            value = items.popleft() if left else items.pop()
            self._changed(key, items, -(_value_weight(value) + 8) if self._weighs else 0)
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
            fresh = new_members - container
            container.update(fresh)
            added = len(fresh)
            if added:
                self._changed(key, container, sum(_value_weight(m) + 8 for m in fresh) if self._weighs else 0)
        self._relieve_pool()
        return added

    def srem(self, key: str, members: Iterable[Any]) -> int:
        """Remove members; the number that were there."""
        with self._lock:
            container: _Set | None = self._native(key, _Set, "srem", False)
            if container is None:
                return 0
            gone = [m for m in set(members) if m in container]
            container.difference_update(gone)
            self._changed(key, container, -sum(_value_weight(m) + 8 for m in gone) if self._weighs else 0)
            return len(gone)

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
            new = 0
            delta = 0
            for field, value in mapping.items():
                old = container.get(field, MISSING)
                if old is MISSING:
                    new += 1
                    if self._weighs:
                        delta += len(field) + 16 + _value_weight(value)
                elif self._weighs:
                    delta += _value_weight(value) - _value_weight(old)
                container[field] = value
            self._changed(key, container, delta)
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
            new_value = str(result).encode() if as_bytes else result
            delta = 0
            if self._weighs:
                delta = _value_weight(new_value) - (
                    -(len(field) + 16) if current is MISSING else _value_weight(current)
                )
            container[field] = new_value
            self._changed(key, container, delta)
        self._relieve_pool()
        return result
