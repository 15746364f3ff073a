"""A memory pool: one byte budget shared by several in-memory stores.

Each store keeps its own limits (entries, bytes) and its own eviction policy. A pool adds a
budget they share, and coordinates eviction across them when that budget runs short.

How a store uses a pool (the protocol is :class:`PoolMember`)::

    pool.register(store)                  # once, while the store is still empty
    with store_lock:                      # every add / update / removal ...
        ...
        pool.charge(store, delta)         # ... charges its change in bytes (negative on removal)
    if pool.needs_relief():               # after releasing the store lock
        pool.relieve()

**Accounting** is O(1): :meth:`MemoryPool.charge` adds ``delta`` to the member's ledger and
to the pool's total under the pool's lock, and compares the total with three byte
thresholds computed once in ``__init__``. It never refuses a charge (usage may overshoot the
budget briefly) and never calls into a member: stores call it while holding their own lock,
and calling back into a store from there could deadlock.

**Pressure levels** are :class:`PressureLevel`: ``WARNING`` at 85%, ``HIGH`` at 90% and
``CRITICAL`` at 95% of the budget by default. A level change is detected in ``charge()`` and
recorded; the callbacks registered with :meth:`MemoryPool.on_pressure` are *delivered* later,
by the next :meth:`MemoryPool.relieve` or :meth:`MemoryPool.dispatch`, which must be called
with no store lock held. So no callback ever runs under the pool's lock or a store's lock,
and a callback may use the pool and the stores freely.

**Relief**: when usage reaches the lowest level, :meth:`MemoryPool.relieve` asks members to
evict, *largest holder first*, until usage is at or below the relief target (80% of the
budget by default, a margin under the lowest level so that the pool does not thrash around
it). Each member evicts by its own policy. Only one thread relieves at a time; the others
return at once.

Pure logic plus one lock: no I/O and no threads of its own.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from .._exceptions import ConfigurationError, InvalidArgument

__all__ = ["MemoryPool", "PoolMember", "PoolStats", "PressureEvent", "PressureLevel"]

logger = logging.getLogger("stratacache")

_HISTORY = 100
"""How many level changes :meth:`MemoryPool.events` keeps."""
_PENDING = 1024
"""How many undelivered level changes are kept; past that the oldest are dropped, so a pool
whose owner never dispatches cannot grow without bound."""
_MARGIN = Fraction(1, 20)
"""Default hysteresis: relief aims this fraction of the budget under the lowest level."""


class PoolMember(Protocol):
    """What a store must provide to join a :class:`MemoryPool`.

    The store must support weak references (the pool does not keep it alive), and must charge
    every change of its holdings with :meth:`MemoryPool.charge`.
    """

    @property
    def name(self) -> str:
        """The store's name, used in :class:`PoolStats` and log messages."""
        ...

    def evict_bytes(self, nbytes: int) -> int:
        """Evict by the store's own policy until ``nbytes`` were freed or the store is empty.

        Returns the bytes freed. The store charges ``-freed`` to the pool for what it removes,
        as for any removal. Called by :meth:`MemoryPool.relieve` with no pool lock held.
        """
        ...

    @property
    def pool_bytes(self) -> int:
        """The bytes the store currently holds; equal to what it has charged to the pool."""
        ...


class PressureLevel(enum.IntEnum):
    """How close a pool's usage is to its budget (thresholds are set per pool)."""

    NORMAL = 0
    """Below the lowest threshold (85% by default)."""
    WARNING = 1
    """At or above the first threshold (85% by default)."""
    HIGH = 2
    """At or above the second threshold (90% by default)."""
    CRITICAL = 3
    """At or above the third threshold (95% by default)."""


_LEVELS = tuple(PressureLevel)


@dataclass(frozen=True, slots=True)
class PressureEvent:
    """One change of a pool's pressure level, up or down.

    A change that crosses several thresholds at once (one large charge) is one event, from
    ``previous`` straight to ``level``. ``used`` is the usage that caused the change.
    """

    pool: str
    level: PressureLevel
    previous: PressureLevel
    used: int
    capacity: int


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of a pool (``pool.stats()``).

    ``members`` maps each live member's name to the bytes it has charged; members that share
    a name are added together. ``level_changes`` counts the level changes *into* each level
    since the pool was made (so ``level_changes[PressureLevel.NORMAL]`` counts recoveries).
    ``relief_runs`` counts the :meth:`MemoryPool.relieve` calls that had to evict, and
    ``bytes_relieved`` the bytes that members reported freeing for them.
    """

    name: str
    capacity: int
    used: int
    level: PressureLevel
    utilization: float
    members: Mapping[str, int]
    level_changes: Mapping[PressureLevel, int]
    relief_runs: int
    bytes_relieved: int


class _Account:
    """The pool's ledger line for one member: a weak reference and the bytes it charged."""

    __slots__ = ("bytes", "ref")

    def __init__(self, ref: weakref.ref[PoolMember]) -> None:
        self.ref = ref
        self.bytes = 0


def _fraction(value: object, what: str) -> Fraction:
    """``value`` as an exact fraction; ConfigurationError unless it is a finite real number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(f"{what} must be a finite number, got {value!r}")
    # Through str(): Fraction(0.9) is the binary value 0.9000000000000000222..., which would put
    # the 90% threshold of a 100-byte pool at 91 bytes. str() gives back the decimal written.
    return Fraction(str(value))


class MemoryPool:
    """A byte budget shared by several stores, with pressure levels and coordinated eviction.

    ``max_bytes`` is the budget (a positive int). ``levels`` are the fractions of it at which
    the pool enters ``WARNING``, ``HIGH`` and ``CRITICAL``: strictly increasing, in (0, 1].
    ``relief_target`` is the fraction :meth:`relieve` brings usage down to; by default 5
    points under the lowest level (``0.80`` with the default levels), and never less than half
    of it. It must lie in (0, ``levels[0]``]. Thresholds are exact: with ``max_bytes=100`` the
    levels are entered at 85, 90 and 95 bytes, and relief stops at 80 bytes or less.

    Thread-safe. Members are held by weak reference: a store that is garbage-collected leaves
    the pool, and the bytes it had charged are released.
    """

    def __init__(
        self,
        max_bytes: int,
        *,
        name: str = "default",
        levels: tuple[float, float, float] = (0.85, 0.90, 0.95),
        relief_target: float | None = None,
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ConfigurationError(f"max_bytes must be a positive int, got {max_bytes!r}")
        if not isinstance(name, str):
            raise ConfigurationError(f"a pool's name must be a str, got {name!r}")
        fractions = self._check_levels(levels)
        if relief_target is None:
            target = max(fractions[0] - _MARGIN, fractions[0] / 2)
        else:
            target = _fraction(relief_target, "relief_target")
            if not 0 < target <= fractions[0]:
                lowest = float(fractions[0])
                raise ConfigurationError(
                    f"relief_target must lie in (0, {lowest}] (up to the lowest level), got {relief_target!r}"
                )
        self._name = name
        self._capacity = max_bytes
        self._levels = (float(fractions[0]), float(fractions[1]), float(fractions[2]))
        self._fractions = fractions
        self._target_fraction = target
        self._set_thresholds(max_bytes)
        self._relief_enabled = True

        self._lock = threading.Lock()
        self._used = 0
        self._level = PressureLevel.NORMAL
        # Keyed by id(member); the account's weak reference tells a reused id apart.
        self._accounts: dict[int, _Account] = {}
        # Weak-reference callbacks only append here (deque.append is atomic): a member can be
        # collected at any allocation, even in a thread that holds self._lock, so the callback
        # must not take the lock. The ledger drops dead members the next time the lock is held.
        self._dead: deque[tuple[int, weakref.ref[PoolMember]]] = deque()
        self._history: deque[PressureEvent] = deque(maxlen=_HISTORY)
        self._pending: deque[PressureEvent] = deque(maxlen=_PENDING)
        self._level_changes = [0] * len(_LEVELS)
        # A tuple, replaced whole on registration, so dispatch() can read it without the lock.
        self._callbacks: tuple[Callable[[PressureEvent], None], ...] = ()
        self._relief_runs = 0
        self._bytes_relieved = 0
        # Both guards are only ever acquired without blocking, so nothing can wait on them:
        # a second relieve()/dispatch() (another thread, or a member or callback re-entering)
        # returns at once instead of deadlocking.
        self._relieving = threading.Lock()
        self._dispatching = threading.Lock()

    def _set_thresholds(self, max_bytes: int) -> None:
        # Byte thresholds, computed once per budget so that charge() only compares ints.
        t1, t2, t3 = (math.ceil(f * max_bytes) for f in self._fractions)
        self._t1, self._t2, self._t3 = t1, t2, t3
        # Relief must end strictly under the lowest level, whatever the rounding.
        self._target = min(math.floor(self._target_fraction * max_bytes), t1 - 1)

    def resize(self, max_bytes: int) -> None:
        """Change the budget at run time; the levels and the relief target keep their fractions.

        The level is re-evaluated at once (a change is an event, as for a charge). Nothing is
        evicted here (this may be called with a store lock held): when the new budget puts
        usage at or above the lowest level, the next :meth:`relieve` brings it down; call it
        (with no store lock held) to shrink now. ConfigurationError unless a positive int.
        """
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ConfigurationError(f"max_bytes must be a positive int, got {max_bytes!r}")
        with self._lock:
            self._reap()
            self._capacity = max_bytes
            self._set_thresholds(max_bytes)
            self._apply(0)

    @property
    def relief_enabled(self) -> bool:
        """Whether :meth:`relieve` evicts (True by default). With False the pool still counts
        usage and reports levels, but never asks members to evict: a budget enforced by its
        owner instead (a server refusing writes when full, Redis's ``noeviction``)."""
        return self._relief_enabled

    @relief_enabled.setter
    def relief_enabled(self, value: bool) -> None:
        self._relief_enabled = bool(value)

    @staticmethod
    def _check_levels(levels: Iterable[float]) -> tuple[Fraction, Fraction, Fraction]:
        try:
            values = tuple(levels)
        except TypeError:
            raise ConfigurationError(f"levels must be three fractions, got {levels!r}") from None
        if len(values) != 3:
            raise ConfigurationError(f"levels must be three fractions, got {len(values)}: {values!r}")
        first, second, third = (_fraction(v, "each level") for v in values)
        if not 0 < first < second < third <= 1:
            raise ConfigurationError(f"levels must be strictly increasing in (0, 1], got {values!r}")
        return first, second, third

    # ------------------------------------------------------------------ properties

    @property
    def name(self) -> str:
        """The pool's name, carried by its events and stats."""
        return self._name

    @property
    def capacity(self) -> int:
        """The budget in bytes (``max_bytes``)."""
        return self._capacity

    @property
    def used(self) -> int:
        """The bytes charged by all live members."""
        with self._lock:
            self._reap()
            return self._used

    @property
    def level(self) -> PressureLevel:
        """The current pressure level."""
        with self._lock:
            self._reap()
            return self._level

    @property
    def utilization(self) -> float:
        """``used / capacity``; above 1.0 while usage overshoots the budget."""
        return self.used / self._capacity

    @property
    def levels(self) -> tuple[float, float, float]:
        """The fractions of the budget at which ``WARNING``, ``HIGH`` and ``CRITICAL`` begin."""
        return self._levels

    @property
    def thresholds(self) -> tuple[int, int, int]:
        """The usage in bytes at which ``WARNING``, ``HIGH`` and ``CRITICAL`` begin."""
        return self._t1, self._t2, self._t3

    @property
    def relief_target(self) -> int:
        """The usage in bytes that :meth:`relieve` brings the pool down to (at most)."""
        return self._target

    # ------------------------------------------------------------------ members

    def register(self, member: PoolMember) -> None:
        """Add ``member`` to the pool with 0 bytes charged; registering it again does nothing.

        Register a store while it is empty, or charge what it already holds right after.
        ConfigurationError if the member has no ``str`` name or cannot be weakly referenced.
        """
        name = getattr(member, "name", None)
        if not isinstance(name, str):
            raise ConfigurationError(f"a pool member needs a str name, got {name!r} on {member!r}")
        key = id(member)
        dead = self._dead
        try:
            ref = weakref.ref(member, lambda r: dead.append((key, r)))
        except TypeError:
            raise ConfigurationError(
                f"pool member {name!r} ({type(member).__name__}) must support weak references"
                " (add '__weakref__' to its __slots__)"
            ) from None
        with self._lock:
            # Reaping first matters: a new object can reuse the id of a collected member.
            self._reap()
            account = self._accounts.get(key)
            if account is not None and account.ref() is member:
                return
            self._accounts[key] = _Account(ref)

    def unregister(self, member: PoolMember) -> None:
        """Remove ``member`` and release the bytes it had charged; unknown members are ignored.

        After this the member must not charge the pool again unless it registers again.
        """
        with self._lock:
            self._reap()
            account = self._accounts.get(id(member))
            if account is None or account.ref() is not member:
                return
            del self._accounts[id(member)]
            self._apply(-account.bytes)

    def _reap(self) -> None:
        """Release the accounts of collected members. Pool lock held."""
        dead = self._dead
        while dead:
            key, ref = dead.popleft()
            account = self._accounts.get(key)
            # The id may already belong to a newer member: only drop the dead one's account.
            if account is not None and account.ref is ref:
                del self._accounts[key]
                self._apply(-account.bytes)

    # ------------------------------------------------------------------ accounting

    def charge(self, member: PoolMember, delta: int) -> None:
        """Add ``delta`` bytes (negative on removal) to ``member``'s and the pool's usage. O(1).

        Safe to call while holding the member's own lock: it takes only the pool's lock, never
        calls into a member and never runs a callback. A level change is recorded and
        delivered later (:meth:`relieve`, :meth:`dispatch`). The charge is never refused, even
        over the budget; check :meth:`needs_relief` once the store's lock is released.

        ConfigurationError if ``member`` is not registered; InvalidArgument if ``delta`` is not
        an int or would make the member's usage negative (a bookkeeping bug in the store: it
        released more than it charged). Nothing is changed in either case.
        """
        if type(delta) is not int:
            raise InvalidArgument(f"charge() needs an int number of bytes, got {delta!r}")
        with self._lock:
            if self._dead:
                self._reap()
            account = self._accounts.get(id(member))
            if account is None or account.ref() is not member:
                raise ConfigurationError(
                    f"{getattr(member, 'name', member)!r} is not a member of pool {self._name!r};"
                    " register() it before charging"
                )
            held = account.bytes + delta
            if held < 0:
                raise InvalidArgument(
                    f"charge({delta}) would make member {member.name!r} of pool {self._name!r} hold"
                    f" {held} bytes (it holds {account.bytes}); a store may release only what it charged"
                )
            account.bytes = held
            self._apply(delta)

    def _apply(self, delta: int) -> None:
        """Change the pool's usage and record a level change. Pool lock held; O(1)."""
        used = self._used + delta
        self._used = used
        if used >= self._t1:
            if used >= self._t3:
                level = PressureLevel.CRITICAL
            elif used >= self._t2:
                level = PressureLevel.HIGH
            else:
                level = PressureLevel.WARNING
        else:
            level = PressureLevel.NORMAL
        previous = self._level
        if level is previous:
            return
        self._level = level
        event = PressureEvent(self._name, level, previous, used, self._capacity)
        self._history.append(event)
        self._level_changes[level] += 1
        # Nobody to tell: do not queue, so needs_relief() stays False on the fast path.
        if self._callbacks:
            self._pending.append(event)

    def needs_relief(self) -> bool:
        """Whether the store should call :meth:`relieve` now (with its lock released).

        True when usage is at or above the lowest level, or level changes await delivery to
        callbacks. Cheap and lock-free (a hint: another thread may change it at any time).
        """
        return self._level is not PressureLevel.NORMAL or bool(self._pending)

    # ------------------------------------------------------------------ relief

    def relieve(self) -> int:
        """Bring usage down if it is at or above the lowest level; returns the bytes freed.

        Call it with **no store lock held**: it calls members' :meth:`~PoolMember.evict_bytes`,
        which takes their locks. Members are asked largest holder first (by the bytes they have
        charged; ties go to the earlier registered), each for the whole remaining excess over
        the relief target, and each at most once per call, until usage is at or below the
        target. So the biggest store gives up its least valuable entries (by its own policy)
        and small stores keep theirs; a later member is asked only when the larger ones could
        not free enough. A member whose ``evict_bytes`` raises is logged and skipped.

        If another thread is already relieving (or a member re-enters), returns 0 at once.
        Afterwards it delivers pending level-change callbacks (see :meth:`dispatch`).
        """
        freed = 0
        if self._relieving.acquire(blocking=False):
            try:
                freed = self._relieve()
            finally:
                self._relieving.release()
        self.dispatch()
        return freed

    def _relieve(self) -> int:
        """The eviction loop of :meth:`relieve`. Relief guard held, pool lock not held."""
        with self._lock:
            self._reap()
            if self._used < self._t1 or not self._relief_enabled:
                return 0
            self._relief_runs += 1
        freed = 0
        asked: set[int] = set()
        while True:
            with self._lock:
                self._reap()
                excess = self._used - self._target
                if excess <= 0:
                    break
                best: PoolMember | None = None
                best_key = 0
                best_bytes = 0
                for key, account in self._accounts.items():
                    if key in asked or account.bytes <= best_bytes:
                        continue
                    member = account.ref()
                    if member is not None:
                        best, best_key, best_bytes = member, key, account.bytes
                if best is None:
                    break  # every member with bytes was asked: nothing more to do this time
                asked.add(best_key)
            # Outside the pool lock: the member takes its own lock and charges what it frees.
            try:
                got = best.evict_bytes(excess)
            except Exception:
                logger.exception("pool %r: member %r failed to evict", self._name, best.name)
                continue
            if type(got) is int and got > 0:
                freed += got
        with self._lock:
            self._bytes_relieved += freed
        return freed

    # ------------------------------------------------------------------ callbacks

    def on_pressure(self, callback: Callable[[PressureEvent], None]) -> None:
        """Call ``callback(event)`` on every level change, up and down, from now on.

        Callbacks run in the thread that calls :meth:`relieve` or :meth:`dispatch`, after the
        change, in order, never under the pool's or a store's lock: they may use the pool and
        its members. An exception in a callback is logged (logger ``"stratacache"``), not
        raised, and the other callbacks still run.
        """
        if not callable(callback):
            raise ConfigurationError(f"on_pressure() needs a callable, got {callback!r}")
        with self._lock:
            self._callbacks = (*self._callbacks, callback)

    def dispatch(self) -> int:
        """Deliver pending level changes to the callbacks; returns how many events were delivered.

        Call it with no store lock held (the pool lock is never held here). :meth:`relieve`
        calls it; call it yourself (from a janitor, say) to deliver events promptly when no
        store writes. If another thread is delivering, returns 0: that thread delivers these
        events too, so their order is kept.
        """
        delivered = 0
        pending = self._pending
        # Re-check after releasing the guard: an event queued just before the release would
        # otherwise wait for the next dispatch.
        while pending:
            if not self._dispatching.acquire(blocking=False):
                break
            try:
                while pending:
                    try:
                        event = pending.popleft()
                    except IndexError:  # another thread took it between the test and the pop
                        break
                    for callback in self._callbacks:
                        try:
                            callback(event)
                        except Exception:
                            logger.exception("pool %r: pressure callback %r failed", self._name, callback)
                    delivered += 1
            finally:
                self._dispatching.release()
        return delivered

    # ------------------------------------------------------------------ inspection

    def stats(self) -> PoolStats:
        """A consistent snapshot of usage, members, level changes and relief."""
        with self._lock:
            self._reap()
            members: dict[str, int] = {}
            for account in self._accounts.values():
                member = account.ref()
                if member is not None:
                    members[member.name] = members.get(member.name, 0) + account.bytes
            return PoolStats(
                name=self._name,
                capacity=self._capacity,
                used=self._used,
                level=self._level,
                utilization=self._used / self._capacity,
                members=members,
                level_changes={level: self._level_changes[level] for level in _LEVELS},
                relief_runs=self._relief_runs,
                bytes_relieved=self._bytes_relieved,
            )

    def events(self) -> list[PressureEvent]:
        """The last 100 level changes, oldest first (whether or not delivered yet)."""
        with self._lock:
            self._reap()
            return list(self._history)

    def __repr__(self) -> str:
        return (
            f"<MemoryPool {self._name!r} used={self._used}/{self._capacity}"
            f" level={self._level.name} members={len(self._accounts)}>"
        )
