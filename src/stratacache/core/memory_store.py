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
* **Metadata**: every entry keeps a version (a fresh number from the store's one counter on
  each write, so a version is never reused, even for a key deleted and written again), its
  creation and update times and its expiry (:meth:`entry_info`, :meth:`item`).
* **Verbs**: compare-and-set and compare-and-delete on that version, get-and-delete
  (:meth:`pull`) and store-if-present (:meth:`replace`), each under the lock.
* **Pools**: a store can share a byte budget with other stores through a
  :class:`~stratacache.core.pool.MemoryPool`; under pressure the pool asks it to evict by
  its own policy (:meth:`evict_bytes`).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .._exceptions import CacheError, ConfigurationError, ValueTooLarge, WrongType
from .._types import MISSING, UNSET, Missing
from . import _native
from .entries import (
    _FOREVER,
    _INERT,
    _NATIVE,
    _NATIVE_TYPES,
    EntryInfo,
    StoreCounters,
    _add_counter,
    _as_counter,
    _Entry,
    _kind,
    _new_entry,
    _SlidingEntry,
    default_weigher,
)
from .envelope import Envelope
from .glob import compile_glob
from .hooks import HookEvent
from .policies import Policy, make_policy
from .policies.fifo import FIFOPolicy
from .policies.lru import LRUPolicy
from .store_collections import CollectionsMixin

if TYPE_CHECKING:
    from .hooks import Hooks
    from .pool import MemoryPool
    from .stats import StatsRecorder

__all__ = ["EntryInfo", "MemoryStore", "StoreCounters", "default_weigher"]

# A stale deadline heap (overwritten / deleted keys) is rebuilt past this many extra items.
_HEAP_SLACK = 1024
# Hits buffered for a Python-level policy (lfu, tinylfu) between two drains; see _make_policy.
_READ_BUFFER = 1024
# A lock-free hit drains the read buffer once it holds this many reads (a drain has a fixed
# cost, shared by its batch). Nothing is decided on stale counts: every operation that reads
# or changes the policy drains the buffer first.
_DRAIN_BATCH = 256


class _Lock(Protocol):
    """What a store needs of its lock: ``threading.Lock``, or the compiled ``StoreLock``."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...
    def __enter__(self) -> bool: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


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


class _Guard:
    """``with store._guard:``: the store's lock, and on leaving, :meth:`MemoryStore._unlock`
    (which releases what the locked code dropped only once the lock is given back)."""

    __slots__ = ("_acquire", "_store")

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._acquire = store._lock.acquire

    def __enter__(self) -> None:
        self._acquire()

    def __exit__(self, *exc: object) -> None:
        self._store._unlock()


class MemoryStore(CollectionsMixin):
    """A thread-safe map with pluggable eviction, per-entry expiry and native collections.

    ``max_entries``/``max_bytes`` bound the store (``None``: unbounded); ``policy`` names
    the eviction policy; ``weigher(key, value) -> int`` weighs entries for ``max_bytes``
    and pools (default :func:`default_weigher`); ``expire_after_access`` turns on sliding
    expiry (each read extends an entry by its own ttl, or by this many seconds for entries
    written without one); ``clock`` returns monotonic seconds (inject a fake in tests);
    ``pool`` shares a byte budget with other stores. Every public method is atomic.
    """

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
        # The compiled StoreLock when the speedups are there (cheaper to take and give than
        # threading.Lock, see core/_storelock.h); otherwise threading.Lock, the same interface.
        native = _native.speedups
        self._lock: _Lock = threading.Lock() if native is None else native.StoreLock()
        # What the locked code dropped (evicted, overwritten, deleted entries and values): it
        # is released by _unlock after the lock is given back, so that a finalizer that uses
        # this store (a __del__, a weakref callback) never runs under its lock.
        self._doomed: list[Any] = []
        self._guard = _Guard(self)
        self._heap: list[tuple[float, str]] = []
        # One counter for every entry's version (next() is one atomic C call): a per-entry
        # count would restart at 1 for a key deleted and written again, and a compare-and-set
        # holding the old entry's version would then wrongly match the new one (ABA).
        self._next_version: Callable[[], int] = itertools.count(1).__next__
        self._bytes = 0
        self.evictions = 0
        self.expirations = 0
        self.rejected = 0
        # (store, key) of each eviction is appended here when set (the server's append-only
        # log writes them as DEL); None: nobody listens, nothing is kept.
        self.eviction_sink: list[tuple[MemoryStore, str]] | None = None
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
        # None when the policy keeps the base class's no-op (every policy but tinylfu): a
        # miss then needs no lock.
        self._record_miss = (
            policy.record_miss
            if policy is not None and type(policy).record_miss is not Policy.record_miss
            else None
        )
        # With max_entries the policy counts entries; otherwise it weighs bytes.
        self._policy_weighs = self.max_entries is None

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

    def _touch(self, key: str) -> None:
        """Record a read of ``key``, with or without the lock: the one definition of a hit's
        effect on the policy.

        It is one C call, atomic under the GIL: the map's own ``move_to_end`` (lru, see
        _InlineLRU), or the append to the read buffer of a policy whose bookkeeping is Python
        code (see _make_policy), or nothing (fifo, random). A concurrent eviction may remove
        the key first; the KeyError is ignored (the read happened before the eviction).
        """
        access = self._fast_access
        if access is not None:
            try:  # noqa: SIM105 - contextlib.suppress costs a context manager per hit
                access(key)
            except KeyError:
                pass

    def _drain(self) -> None:
        """Take the lock and replay the buffered hits into the policy."""
        self._lock.acquire()
        try:
            self._drain_reads()
        finally:
            self._unlock()

    def _unlock(self) -> None:
        """Give the lock back, then release what the locked code dropped (see ``_doomed``)."""
        doomed = self._doomed
        if doomed:
            self._doomed = []
            self._lock.release()
            del doomed  # the last reference: finalizers run here, with the lock free
        else:
            self._lock.release()

    def _miss(self, key: str) -> None:
        """Tell the policy of a miss on ``key`` (tinylfu counts misses). Lock held."""
        if self._record_miss is not None:
            if self._reads:
                self._drain_reads()
            self._record_miss(key)

    def _expire(self, key: str, entry: _Entry) -> None:
        """Drop the dead entry at ``key`` and count it as expired. Lock held."""
        self._remove(key, entry)
        self.expirations += 1

    def _remove(self, key: str, entry: _Entry) -> None:
        """Forget ``key`` everywhere (map, policy, bytes, pool). Lock held."""
        if type(entry.value) not in _INERT:
            self._doomed.append(entry)
        del self._data[key]
        if self._tracks_keys:
            self._policy.on_remove(key)  # type: ignore[union-attr]
        weight = entry.weight
        if weight:
            self._bytes -= weight
            if self._pool is not None:
                self._pool.charge(self, -weight)

    def _weigh(self, key: str, value: Any) -> int:
        """``weigher(key, value)``, checked: an int >= 0 that fits ``max_bytes``. The one
        check of a weight, for plain and collection writes alike; raises before any change."""
        if not self._weighs:
            return 0
        try:
            weight = self._weigher(key, value)
        except Exception as exc:  # a user's callable: its error must not escape raw
            raise ConfigurationError(f"weigher raised {type(exc).__name__} for key {key!r}: {exc}") from exc
        if type(weight) is int and weight >= 0 and (self.max_bytes is None or weight <= self.max_bytes):
            return weight  # _fits's common case, without its frame
        return self._fits(key, weight)

    def _fits(self, key: str, weight: Any) -> int:
        """``weight`` if it is an int >= 0 within ``max_bytes``; else ConfigurationError or
        ValueTooLarge (counted as rejected)."""
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
                (e.expires, k) for k, e in self._items() if e.expires is not None and e.expires != _FOREVER
            ]
            heapq.heapify(self._heap)
        if len(heap) == 1:
            from .._io.janitor import janitor

            janitor.watch(self)

    def _put(
        self, key: str, value: Any, ttl: float | None, weight: int | None = None, at: float | None = None
    ) -> _Entry:
        """Insert or replace ``key``, then evict to stay within every limit. Lock held.

        The one definition of a write. ``weight``: already computed by :meth:`_weigh`.
        ``at``: an absolute deadline on the store's clock, used instead of ``ttl``.
        """
        if self._reads:
            self._drain_reads()
        if weight is None:
            weight = self._weigh(key, value) if self._weighs else 0
        now = self.clock()
        heap = self._heap
        if heap and heap[0][0] <= now:
            # A write reclaims a few expired entries too, so a store nobody reads from does
            # not wait for the janitor to give memory back.
            self._purge_locked(now, 8)
        expires: float | None
        window: float | None
        if at is not None:
            expires, window = at, None
        elif ttl is None and self.expire_after_access is None:
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
            entry.version = self._next_version()
            entry.created = entry.updated = now
            data[key] = entry
            if self._tracks_keys:
                policy.on_insert(key, policy_weight)  # type: ignore[union-attr]
            delta = weight
            scheduled = None
        else:
            scheduled = entry.expires
            delta = weight - entry.weight
            if type(entry.value) not in _INERT:
                self._doomed.append(entry.value)
            entry.value = value
            entry.expires = expires
            entry.weight = weight
            entry.version = self._next_version()
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

    def _reweigh(self, key: str, entry: _Entry, weight: int) -> None:
        """A value changed in place: bump its version, record its new ``weight`` (checked by
        the caller), evict if needed. Lock held."""
        entry.version = self._next_version()
        entry.updated = self.clock()
        if not self._weighs:
            return
        delta = weight - entry.weight
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
            victim: Any
            if popfirst is not None:
                victim, entry = popfirst(False)  # type: ignore[call-arg]  # the oldest (a keyword call costs more)
            else:
                victim = policy.evict()
                entry = data.pop(victim, None)
                if entry is None:
                    continue  # the policy knew a key the store had already dropped
            if self.eviction_sink is not None:
                self.eviction_sink.append((self, victim))
            if type(entry.value) not in _INERT:
                self._doomed.append(entry)
            weight = entry.weight
            if weight:
                self._bytes -= weight
                if pool is not None:
                    pool.charge(self, -weight)
            self.evictions += 1

    def _remove_evicted(self, key: str, entry: _Entry) -> None:
        # The policy already forgot the victim; only the map, bytes and pool remain.
        if self.eviction_sink is not None:
            self.eviction_sink.append((self, key))
        if type(entry.value) not in _INERT:
            self._doomed.append(entry)
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
        with self._guard:
            removed = self._purge_locked(self.clock(), limit)
        # Also delivers the pool's pending pressure events (a drop back to a lower level).
        self._relieve_pool()
        return removed

    def evict_bytes(self, nbytes: int) -> int:
        """Evict by this store's policy until ``nbytes`` were freed or it is empty (pool relief)."""
        freed = 0
        with self._guard:
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
                    if self.eviction_sink is not None:
                        self.eviction_sink.append((self, victim))
        return freed

    @property
    def pool_bytes(self) -> int:
        """Bytes this store holds, as charged to its pool."""
        return self._bytes

    def resize(self, *, max_entries: Any = UNSET, max_bytes: Any = UNSET) -> None:
        """Change the limits at run time; entries that still fit are kept (the policy picks the rest)."""
        with self._guard:
            if self._reads:
                self._drain_reads()
            if max_entries is not UNSET:
                self.max_entries = _positive_or_none("max_entries", max_entries)
            if max_bytes is not UNSET:
                new_bytes = _positive_or_none("max_bytes", max_bytes)
                if new_bytes is not None and not self._weighs:
                    # Weighing was off: weigh what is already stored.
                    self._weighs = True
                    for key, entry in self._items():
                        entry.weight = self._weigher(key, entry.value)
                    self._bytes = sum(e.weight for _, e in self._items())
                self.max_bytes = new_bytes
            capacity = self._capacity()
            if capacity is None:
                self._policy = None
                self._record_miss = None
                self._tracks_keys = False
                return
            if self._policy is None:
                self._make_policy(self.policy_name)
                policy = self._policy
                assert policy is not None
                for key, entry in self._items():
                    policy.on_insert(key, self._policy_weight(entry.weight))
            else:
                self._policy_weighs = self.max_entries is None
                self._policy.resize(capacity)
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
        with self._guard:
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
        with self._guard:
            self._doomed.extend(self._data.values())
            self._data.clear()
            self._heap.clear()
            if self._pool is not None and self._bytes:
                self._pool.charge(self, -self._bytes)
            self._bytes = 0
        if self._pool is not None:
            self._pool.unregister(self)

    # ------------------------------------------------------------ plain values

    def get(self, key: str, count_miss: bool = True) -> Any:
        """The value at ``key`` or MISSING; WrongType if it is a native collection.

        The one definition of a read: the facades' fast paths (:meth:`fused_get`), the
        backends and :meth:`get_many` all come here or to :meth:`_live`, which holds the
        expiry rules. ``count_miss=False`` does not tell the policy of a miss (for a layered
        cache's top tier, whose caller reads again through the full path on a miss).

        **No lock for an entry without a deadline, or a miss no policy counts.** Under the
        GIL each C-level call (``dict.get``, ``OrderedDict.move_to_end``, ``deque.append``)
        is atomic, and between them this code only reads attributes of the entry it found:
        such a hit is a read of the map at one instant (a concurrent write replaces the
        entry's value; a concurrent eviction may remove the key before the recency update,
        see :meth:`_touch`). An entry with a deadline (a ttl, sliding expiry, a collection)
        is read under the lock by :meth:`_live`, which drops it if it is due.
        """
        entry = self._data.get(key)
        if entry is None or entry.expires is not None:
            if entry is None and (self._record_miss is None or not count_miss):
                return MISSING
            self._lock.acquire()
            try:
                entry = self._live(key)
                if entry is None and count_miss:
                    self._miss(key)
            finally:
                self._unlock()
            if entry is None:
                return MISSING
            if type(entry.value) in _NATIVE_TYPES:
                raise WrongType(f"get on key {key!r}: it holds a {_kind(entry.value)}")
        # _touch, inlined (a frame is a fifth of a hit): the access callable it names.
        access = self._fast_access
        if access is not None:
            try:  # noqa: SIM105 - contextlib.suppress costs a context manager per hit
                access(key)
            except KeyError:
                pass  # evicted by another thread after our read: the read came first
            reads = self._reads
            if reads is not None and len(reads) >= _DRAIN_BATCH:
                self._drain()
        return entry.value

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
        """A ``Cache.get`` for this store in one Python frame over :meth:`get` (the facades install it).

        It calls :meth:`get` (which holds every rule of a read) and counts hits and misses
        into the facade's ``stats``, skipping the facade's and the backend's frames. Anything
        else — get hooks, a non-str key, an error — goes to ``full_get``, the facade's complete
        method (which checks the key, counts the error and fires hooks).
        ``miss_is_final=False`` sends every miss to ``full_get`` too: for a store that is
        only the top tier of a layered cache, where a miss here must read the lower tiers.

        One call in ``sample_every`` is run again under a timer for the latency statistics
        (``stats.get_latency``) and told to the hooks' samplers. ``stats.hits = h`` is a load,
        an add and a store with no call in between, which the interpreter does not interrupt,
        as the facade's own ``+= 1`` relies on.
        """
        store_get = self.get
        every = sample_every
        # For a power of two ``every`` one test, ``n & mask``, finds the calls to time.
        mask = every - 1 if every & (every - 1) == 0 else 0
        perf_counter = time.perf_counter
        timing = False  # a timed run is under way (in any thread): do not nest another
        envelope = Envelope  # a closure cell: cheaper than the global on every hit

        def timed(key: Any, default: Any) -> Any:
            # The call is made again under the timer, and counted then. Its first run was a
            # hit (recorded twice, as a tick's rare cost) or a miss (the rerun does not tell
            # the policy again).
            nonlocal timing
            timing = True
            try:
                started = perf_counter()
                value = get(key, default)
                elapsed = perf_counter() - started
            finally:
                timing = False
            stats.get_latency.add(elapsed)
            if hooks.samplers:
                hooks.sample("get", elapsed, every)  # one hit (or miss) in ``every``
            return value

        def hooked(key: str, default: Any) -> Any:
            # An after_get hook wants every call timed and told: done here for a plain hit or
            # miss, without the facade's and the backend's frames (the event is the same).
            started = perf_counter()
            try:
                value = store_get(prefix + key, True)
            except CacheError:
                return full_get(key, default)  # which raises it again, counted and told
            if type(value) is envelope or (value is MISSING and not key.isascii()):
                return full_get(key, default)
            elapsed = perf_counter() - started
            stats.get_latency.add(elapsed)
            if hooks.samplers:
                hooks.sample("get", elapsed, 1)  # every call is timed: each stands for itself
            if value is MISSING:
                stats.misses += 1
                value = default
                hit = False
            else:
                stats.hits += 1
                hit = True
            hooks.fire("after_get", HookEvent("get", key, result=value, duration=elapsed, hit=hit))
            return value

        def get(key: Any, default: Any = None) -> Any:
            if hooks.on_get or type(key) is not str:  # samplers alone keep this path
                if type(key) is str and miss_is_final and not hooks.wants_before:
                    return hooked(key, default)
                return full_get(key, default)
            try:
                value = store_get(prefix + key, miss_is_final and not timing)
            except CacheError:
                return full_get(key, default)  # which raises it again, counted
            if type(value) is envelope:  # tags / freshness metadata: the facade unwraps it
                return full_get(key, default)
            if value is not MISSING:
                h = stats.hits + 1
                # ``h & mask`` is nonzero on all calls but one in ``every`` (a power of two).
                if h & mask or h % every or timing:
                    stats.hits = h
                    return value
                return timed(key, default)
            # Non-ASCII: perhaps a lone surrogate, which the full path refuses (it never hits).
            if not miss_is_final or not key.isascii():
                return full_get(key, default)
            n = stats.misses + 1
            if n & mask or n % every or timing:
                stats.misses = n
                return default
            return timed(key, default)

        return get

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The present keys among ``keys`` with their values."""
        found: dict[str, Any] = {}
        with self._guard:
            for key in keys:
                entry = self._live(key)
                if entry is None:
                    self._miss(key)
                elif type(entry.value) not in _NATIVE:
                    self._touch(key)
                    found[key] = entry.value
        return found

    def set(self, key: str, value: Any, ttl: float | None) -> None:
        """Store ``value`` (replacing anything, collections included) for ``ttl`` seconds.

        The one definition of a write (:meth:`_put`, under the lock), which every path takes.
        """
        lock = self._lock
        lock.acquire()
        try:
            self._put(key, value, ttl)
        finally:
            if self._doomed:
                self._unlock()
            else:
                lock.release()  # _unlock's common case, without its frame
        pool = self._pool
        if pool is not None and pool.needs_relief():  # _relieve_pool, without its frame
            pool.relieve()

    def fused_set(
        self,
        *,
        owner: Any,
        prefix: str,
        stats: StatsRecorder,
        hooks: Hooks,
        sample_every: int,
        full_set: Callable[..., bool],
    ) -> Callable[..., bool]:
        """A ``Cache.set`` for this store in one Python frame over :meth:`set` (the sync facade installs it).

        ``owner`` is the facade (its ``default_ttl`` and ``_closed`` flag are read per call).
        A str key, no set hooks (samplers are fine), and a ttl left to the default or None:
        :meth:`set` is called directly; anything else goes to ``full_set``, the facade's
        method (which validates the ttl and fires hooks). One write in ``sample_every`` is
        timed into ``stats.set_latency`` and told to the hooks' samplers.
        """
        store_set = self.set
        perf_counter = time.perf_counter
        every = sample_every
        mask = every - 1 if every & (every - 1) == 0 else 0

        def set(key: Any, value: Any, ttl: Any = UNSET, **options: Any) -> bool:  # noqa: A001 - the facade's name
            # Keyword options (if_version=, tags=, and any the facade grows) take the full path.
            if options or hooks.on_set or owner._closed or type(key) is not str or not key.isascii():
                return full_set(key, value, ttl, **options)
            if ttl is UNSET:
                seconds = owner.default_ttl
            elif ttl is None:
                seconds = None
            else:
                return full_set(key, value, ttl)  # numbers and timedeltas: validated there
            n = stats.sets + 1
            try:
                if not n & mask and not n % every:
                    started = perf_counter()
                    store_set(prefix + key, value, seconds)
                    elapsed = perf_counter() - started
                    stats.set_latency.add(elapsed)
                    if hooks.samplers:
                        hooks.sample("set", elapsed, every)
                else:
                    store_set(prefix + key, value, seconds)
            except CacheError as exc:
                owner._failed("set", key, exc)  # counted, and told to on_error hooks, as the facade does
                raise
            stats.sets = n
            return True

        return set

    def set_many(self, items: Mapping[str, Any], ttl: float | None) -> None:
        """Store every item with the same ttl, atomically (all weighed before any is stored)."""
        with self._guard:
            # Every weight first: a refused or failing one must leave the store unchanged.
            weights = {key: self._weigh(key, value) for key, value in items.items()}
            for key, value in items.items():
                self._put(key, value, ttl, weights[key])
        self._relieve_pool()

    def add(self, key: str, value: Any, ttl: float | None) -> bool:
        """Store only if ``key`` is absent; True when stored."""
        with self._guard:
            if self._live(key) is not None:
                return False
            self._put(key, value, ttl)
        self._relieve_pool()
        return True

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed."""
        with self._guard:
            entry = self._live(key)
            if entry is None:
                return False
            self._remove(key, entry)
            return True

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove every key; the number that existed."""
        with self._guard:
            count = 0
            for key in keys:
                entry = self._live(key)
                if entry is not None:
                    self._remove(key, entry)
                    count += 1
            return count

    def exists(self, key: str) -> bool:
        """True when ``key`` holds anything unexpired."""
        with self._guard:
            return self._live(key) is not None

    def incr(self, key: str, delta: int) -> int:
        """Add ``delta`` to the integer at ``key`` (created from 0 without expiry; keeps an expiry)."""
        with self._guard:
            entry = self._live(key)
            if entry is None:
                result = _add_counter(0, delta, key)
                self._put(key, result, None)
            else:
                current, as_bytes = _as_counter(entry.value, key, "incr")
                result = _add_counter(current, delta, key)
                new_value = str(result).encode() if as_bytes else result
                weight = self._weigh(key, new_value)  # checked before anything changes
                entry.value = new_value
                self._touch(key)
                self._reweigh(key, entry, weight)
        self._relieve_pool()
        return result

    def reweigh(self, key: str) -> bool:
        """The value at ``key`` was changed in place by its owner: weigh it again (evicting
        to stay within the limits) and count the change as an update. False when absent.

        For values the store does not manage itself (the server's collections), whose owner
        changes them under its own discipline and then reports the change here.
        """
        with self._guard:
            entry = self._live(key)
            if entry is None:
                return False
            weight = self._weigh(key, entry.value)
            self._reweigh(key, entry, weight)
        self._relieve_pool()
        return True

    def set_until(self, key: str, value: Any, expires: float) -> None:
        """:meth:`set` with an absolute deadline on the store's clock (a Unix time when the
        clock is the wall clock, as the server's is), kept exactly: a ttl worked out from a
        deadline by the caller would drift by the time between two clock readings."""
        with self._guard:
            self._put(key, value, None, at=expires)
        self._relieve_pool()

    def expire_until(self, key: str, expires: float) -> bool:
        """:meth:`expire` with an absolute deadline on the store's clock; False when absent."""
        return self.expire(key, None, at=expires)

    def expire(self, key: str, ttl: float | None, *, at: float | None = None) -> bool:
        """Set the remaining life of ``key`` (None: never expire); False when absent.
        ``at``: an absolute deadline on the store's clock instead (:meth:`expire_until`)."""
        with self._guard:
            entry = self._live(key)
            if entry is None:
                return False
            expires: float | None
            window: float | None
            if at is not None:
                expires, window = at, None
            else:
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
        with self._guard:
            entry = self._live(key)
            if entry is None:
                return MISSING
            expires = entry.expires
            if expires is None or expires == _FOREVER:
                return None
            return max(0.0, expires - self.clock())

    # ------------------------------------------------------------------ verbs

    def item(self, key: str) -> tuple[Any, EntryInfo] | None:
        """The value at ``key`` and its metadata, read together under the lock, or None.

        WrongType if it is a native collection (as :meth:`get`).
        """
        with self._guard:
            entry = self._live(key)
            if entry is None:
                self._miss(key)
                return None
            if type(entry.value) in _NATIVE_TYPES:
                raise WrongType(f"get_item on key {key!r}: it holds a {_kind(entry.value)}")
            self._touch(key)
            expires = None if entry.expires == _FOREVER else entry.expires
            return entry.value, EntryInfo(entry.version, entry.created, entry.updated, expires, entry.weight)

    def set_if_version(self, key: str, value: Any, ttl: float | None, version: int | str) -> bool:
        """Store ``value`` only if the live entry at ``key`` has version ``version``; True when stored."""
        with self._guard:
            entry = self._live(key)
            if entry is None or entry.version != version:
                return False
            self._put(key, value, ttl)
        self._relieve_pool()
        return True

    def delete_if_version(self, key: str, version: int | str) -> bool:
        """Remove ``key`` only if its live entry has version ``version``; True when removed."""
        with self._guard:
            entry = self._live(key)
            if entry is None or entry.version != version:
                return False
            self._remove(key, entry)
            return True

    def pull(self, key: str) -> Any:
        """Remove ``key`` and return its value (MISSING when absent); WrongType on a collection."""
        with self._guard:
            entry = self._live(key)
            if entry is None:
                return MISSING
            value = entry.value
            if type(value) in _NATIVE_TYPES:
                raise WrongType(f"pull on key {key!r}: it holds a {_kind(value)}")
            self._remove(key, entry)
            return value

    def replace(self, key: str, value: Any, ttl: float | None) -> bool:
        """Store ``value`` only if ``key`` holds something live; True when stored."""
        with self._guard:
            if self._live(key) is None:
                return False
            self._put(key, value, ttl)
        self._relieve_pool()
        return True

    def _items(self) -> list[tuple[str, Any]]:
        """The map's items as a list, made in one C call (no thread switch inside it).

        A hit on an entry without a deadline is served without the lock and may move its key
        in the policy's order (an OrderedDict map): iterating the map itself from Python code,
        even under the lock, could then fail with "mutated during iteration".
        """
        return list(self._data.items())

    def export_entries(self) -> list[tuple[str, Any, float | None]]:
        """(key, value, seconds left or None) for every live entry, read at one instant under
        the lock (a warm-restart snapshot); native lists, sets and hashes are copied, so
        the caller may read them while other threads write."""
        with self._guard:
            now = self.clock()
            exported: list[tuple[str, Any, float | None]] = []
            for key, entry in self._items():
                expires = entry.expires
                left: float | None = None
                if expires is not None and expires != _FOREVER:
                    if expires <= now:
                        continue
                    left = expires - now
                value = entry.value
                if type(value) in _NATIVE_TYPES:
                    value = type(value)(value)
                exported.append((key, value, left))
            return exported

    def _live_keys(self, match: Callable[[str], bool] | None) -> list[str]:
        now = self.clock()
        return [
            key
            for key, entry in self._items()
            if (entry.expires is None or entry.expires > now) and (match is None or match(key))
        ]

    def keys(self, pattern: str | None = None) -> list[str]:
        """Live keys, optionally filtered by a Redis-style glob."""
        match = compile_glob(pattern) if pattern is not None else None
        with self._guard:
            return self._live_keys(match)

    def delete_pattern(self, pattern: str) -> int:
        """Delete every live key matching the glob; the number deleted."""
        match = compile_glob(pattern)
        with self._guard:
            doomed = self._live_keys(match)
            for key in doomed:
                self._remove(key, self._data[key])
            return len(doomed)

    def clear(self, prefix: str | None = None) -> None:
        """Remove everything, or only the keys starting with ``prefix``."""
        with self._guard:
            if prefix is None:
                if self._pool is not None and self._bytes:
                    self._pool.charge(self, -self._bytes)
                self._doomed.extend(self._data.values())
                self._data.clear()
                self._heap.clear()
                self._bytes = 0
                if self._policy is not None:
                    self._policy.clear()
                if self._reads is not None:
                    self._reads.clear()
                return
            for key in [k for k, _ in self._items() if k.startswith(prefix)]:
                self._remove(key, self._data[key])

    def count(self, prefix: str | None = None) -> int:
        """The number of live entries (with ``prefix``, only those keys)."""
        with self._guard:
            now = self.clock()
            return sum(
                1
                for key, entry in self._items()
                if (entry.expires is None or entry.expires > now)
                and (prefix is None or key.startswith(prefix))
            )
