"""MemoryPool: accounting, pressure levels and events, callbacks, coordinated relief, weak members.

The members here are small real stores (``LRUMember``): a dict of key -> size in LRU order
behind their own lock, charging the pool on every change while holding that lock and calling
``relieve()`` after releasing it, the way the real in-memory store does.
"""

from __future__ import annotations

import gc
import itertools
import logging
import random
import threading
import time
import weakref
from collections import OrderedDict
from typing import Any

import pytest

from stratacache._exceptions import ConfigurationError, InvalidArgument
from stratacache.core.pool import MemoryPool, PressureEvent, PressureLevel

N, W, H, C = PressureLevel.NORMAL, PressureLevel.WARNING, PressureLevel.HIGH, PressureLevel.CRITICAL


class LRUMember:
    """A minimal store in a pool: key -> size with LRU order and its own (non-reentrant) lock."""

    def __init__(self, pool: MemoryPool, name: str, *, auto_relieve: bool = True) -> None:
        self.name = name
        self.pool = pool
        self.auto_relieve = auto_relieve
        self.lock = threading.Lock()
        self.data: OrderedDict[str, int] = OrderedDict()
        self.held = 0
        self.evicted: list[str] = []
        self.evict_requests: list[int] = []
        pool.register(self)

    def set(self, key: str, size: int) -> None:
        with self.lock:
            old = self.data.pop(key, 0)
            self.data[key] = size
            if size != old:
                self.held += size - old
                self.pool.charge(self, size - old)
        self._after_write()

    def get(self, key: str) -> bool:
        with self.lock:
            if key not in self.data:
                return False
            self.data.move_to_end(key)
            return True

    def delete(self, key: str) -> bool:
        with self.lock:
            size = self.data.pop(key, None)
            if size is None:
                return False
            self.held -= size
            self.pool.charge(self, -size)
        self._after_write()
        return True

    def _after_write(self) -> None:
        # The store's lock is released here, so relief may call into any store, this one too.
        if self.auto_relieve and self.pool.needs_relief():
            self.pool.relieve()

    def evict_bytes(self, nbytes: int) -> int:
        freed = 0
        with self.lock:
            self.evict_requests.append(nbytes)
            while freed < nbytes and self.data:
                key, size = self.data.popitem(last=False)  # least recently used first
                freed += size
                self.evicted.append(key)
            if freed:
                self.held -= freed
                self.pool.charge(self, -freed)
        return freed

    @property
    def pool_bytes(self) -> int:
        with self.lock:
            return self.held

    def keys(self) -> list[str]:
        with self.lock:
            return list(self.data)

    def fill(self, prefix: str, sizes: list[int]) -> None:
        for i, size in enumerate(sizes):
            self.set(f"{prefix}{i}", size)


def members_of(pool: MemoryPool) -> dict[str, int]:
    return dict(pool.stats().members)


# ---------------------------------------------------------------------- accounting


def test_accounting_across_members() -> None:
    pool = MemoryPool(10_000, name="main")
    a, b, c = (LRUMember(pool, n) for n in "abc")
    a.set("x", 100)
    a.set("y", 250)
    b.set("x", 400)
    c.set("z", 5)
    assert pool.used == 755
    assert members_of(pool) == {"a": 350, "b": 400, "c": 5}

    a.set("x", 40)  # an overwrite charges only the difference
    b.delete("x")
    c.set("w", 1000)
    assert pool.used == 40 + 250 + 1005
    assert members_of(pool) == {"a": 290, "b": 0, "c": 1005}
    assert pool.used == sum(m.pool_bytes for m in (a, b, c))
    stats = pool.stats()
    assert (stats.name, stats.capacity, stats.used, stats.level) == ("main", 10_000, 1295, N)
    assert stats.utilization == pytest.approx(0.1295)
    assert pool.utilization == pytest.approx(0.1295)


def test_register_is_idempotent_and_names_are_summed() -> None:
    pool = MemoryPool(1000)
    a = LRUMember(pool, "shared")
    pool.register(a)
    a.set("k", 10)
    pool.register(a)  # keeps what a has charged
    assert pool.used == 10
    twin = LRUMember(pool, "shared")
    twin.set("k", 5)
    assert pool.used == 15
    assert members_of(pool) == {"shared": 15}


def test_thresholds_are_exact_bytes() -> None:
    # ceil(Fraction(0.9) * 100) is 91 and ceil(0.07 * 100) is 8: the thresholds must be neither.
    pool = MemoryPool(100)
    assert pool.thresholds == (85, 90, 95)
    assert MemoryPool(100, levels=(0.07, 0.14, 0.28)).thresholds == (7, 14, 28)
    assert pool.relief_target == 80
    assert pool.levels == (0.85, 0.90, 0.95)
    assert MemoryPool(1000, levels=(0.5, 0.75, 1.0)).thresholds == (500, 750, 1000)
    assert MemoryPool(1000, levels=(0.5, 0.75, 1.0)).relief_target == 450
    assert MemoryPool(1000, relief_target=0.6).relief_target == 600
    # Relief always ends under the lowest level, even when rounding would put it on it.
    assert MemoryPool(1, levels=(0.1, 0.2, 0.3)).relief_target == 0
    assert MemoryPool(100, relief_target=0.85).relief_target == 84


# ---------------------------------------------------------------------- levels and events


def test_levels_and_events_going_up_and_down() -> None:
    pool = MemoryPool(100, name="p")
    m = LRUMember(pool, "m", auto_relieve=False)

    m.set("a", 84)
    assert (pool.level, pool.events()) == (N, [])
    m.set("b", 1)  # 85: WARNING
    assert pool.level is W
    m.set("c", 4)  # 89: still WARNING, no event
    m.set("d", 1)  # 90: HIGH
    assert pool.level is H
    m.set("e", 5)  # 95: CRITICAL
    assert pool.level is C
    m.delete("e")  # 90
    m.delete("d")  # 89
    m.delete("c")  # 85
    m.delete("b")  # 84
    assert pool.level is N
    m.set("big", 30)  # 114: one event straight from NORMAL to CRITICAL
    assert pool.utilization == pytest.approx(1.14)

    expected = [
        PressureEvent("p", W, N, 85, 100),
        PressureEvent("p", H, W, 90, 100),
        PressureEvent("p", C, H, 95, 100),
        PressureEvent("p", H, C, 90, 100),
        PressureEvent("p", W, H, 89, 100),
        PressureEvent("p", N, W, 84, 100),
        PressureEvent("p", C, N, 114, 100),
    ]
    assert pool.events() == expected
    assert dict(pool.stats().level_changes) == {N: 1, W: 2, H: 2, C: 2}


def test_callbacks_are_deferred_until_dispatch_and_keep_order() -> None:
    pool = MemoryPool(100)
    m = LRUMember(pool, "m", auto_relieve=False)
    seen: list[PressureEvent] = []
    pool.on_pressure(seen.append)

    m.set("a", 92)
    m.delete("a")
    # charge() only records: nothing has run yet, and the store is told to call relieve().
    assert seen == []
    assert pool.level is N
    assert pool.needs_relief()
    assert pool.dispatch() == 2
    assert [(e.previous, e.level, e.used) for e in seen] == [(N, H, 92), (H, N, 0)]
    assert not pool.needs_relief()
    assert pool.dispatch() == 0


def test_event_history_keeps_the_last_hundred() -> None:
    pool = MemoryPool(100)
    m = LRUMember(pool, "m", auto_relieve=False)
    for _ in range(75):
        m.set("k", 90)  # HIGH
        m.set("k", 10)  # NORMAL
    history = pool.events()
    assert len(history) == 100
    assert history[-1] == PressureEvent("default", N, H, 10, 100)
    assert sum(pool.stats().level_changes.values()) == 150


def test_callbacks_run_outside_every_lock() -> None:
    pool = MemoryPool(100)
    a = LRUMember(pool, "a")
    b = LRUMember(pool, "b")
    results: list[Any] = []

    def callback(event: PressureEvent) -> None:
        # Each call below takes a lock that would already be held if the callback ran inside
        # charge() (the pool's) or inside a store's write (the store's): it would deadlock.
        results.append(
            (event.level, pool.stats().used, a.pool_bytes, b.get("b0"), a.lock.locked(), b.lock.locked())
        )
        if event.level is W:
            b.set("from-callback", 1)  # a write, with its own charge and relief, from a callback

    pool.on_pressure(callback)

    def scenario() -> None:
        b.fill("b", [10, 10])
        a.fill("a", [10] * 6 + [5])  # 85: WARNING during a's write, relieved after it

    worker = threading.Thread(target=scenario, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "a pressure callback deadlocked"
    assert pool.dispatch() == 0
    assert [r[0] for r in results] == [W, N]
    assert all(r[4:] == (False, False) for r in results)
    assert results[0][3] is True
    assert "from-callback" in b.data
    assert pool.used == a.pool_bytes + b.pool_bytes < pool.thresholds[0]


def test_a_failing_callback_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    pool = MemoryPool(100, name="p")
    m = LRUMember(pool, "m")
    seen: list[PressureLevel] = []

    def broken(event: PressureEvent) -> None:
        raise RuntimeError("callback boom")

    pool.on_pressure(broken)
    pool.on_pressure(lambda event: seen.append(event.level))
    with caplog.at_level(logging.ERROR, logger="stratacache"):
        m.set("k", 90)  # HIGH, relieved back to NORMAL: two events, both delivered
    assert seen == [H, N]
    failures = [r for r in caplog.records if "pressure callback" in r.getMessage()]
    assert len(failures) == 2
    assert failures[0].name == "stratacache"
    assert failures[0].exc_info is not None
    assert isinstance(failures[0].exc_info[1], RuntimeError)


# ---------------------------------------------------------------------- relief


def test_charge_never_evicts_and_never_calls_members() -> None:
    pool = MemoryPool(100)
    a = LRUMember(pool, "a", auto_relieve=False)
    a.fill("a", [50, 50, 50, 50])  # 200% of the budget: accepted, nothing evicted
    assert pool.used == 200
    assert pool.level is C
    assert a.evict_requests == []
    assert a.keys() == ["a0", "a1", "a2", "a3"]
    assert pool.needs_relief()


def test_relieve_evicts_the_largest_holders_lru_entries() -> None:
    pool = MemoryPool(100)
    a = LRUMember(pool, "a", auto_relieve=False)
    b = LRUMember(pool, "b", auto_relieve=False)
    c = LRUMember(pool, "c", auto_relieve=False)
    b.fill("b", [10, 10, 10])
    a.fill("a", [10, 10, 10, 10, 10])
    c.fill("c", [5])
    assert pool.used == 85
    assert pool.needs_relief()
    assert a.get("a0")  # a's own policy: a0 is now its most recently used entry

    assert pool.relieve() == 10
    assert a.evict_requests == [5]  # asked for the excess over the 80-byte target
    assert a.evicted == ["a1"]
    assert b.evict_requests == c.evict_requests == []
    assert pool.used == 75
    assert pool.level is N
    assert not pool.needs_relief()
    stats = pool.stats()
    assert (stats.relief_runs, stats.bytes_relieved) == (1, 10)
    assert pool.relieve() == 0  # under the lowest level: nothing to do
    assert pool.stats().relief_runs == 1


def test_relief_hysteresis_between_target_and_lowest_level() -> None:
    pool = MemoryPool(100)
    a = LRUMember(pool, "a", auto_relieve=False)
    a.fill("a", [1] * 84)
    assert pool.relieve() == 0  # 84% is under the lowest level: relief does not start
    a.set("last", 1)  # 85%: it does, and goes on to the 80% target, not just under 85%
    assert pool.relieve() == 5
    assert a.evicted == ["a0", "a1", "a2", "a3", "a4"]
    assert pool.used == 80


def test_relief_spills_over_to_the_next_largest_holder() -> None:
    pool = MemoryPool(100)
    a = LRUMember(pool, "a", auto_relieve=False)
    b = LRUMember(pool, "b", auto_relieve=False)
    c = LRUMember(pool, "c", auto_relieve=False)
    d = LRUMember(pool, "d", auto_relieve=False)
    d.fill("d", [10, 10])
    c.fill("c", [10, 10, 10])
    b.fill("b", [7] * 5)
    a.fill("a", [10] * 4)
    assert pool.used == 125  # excess over the target: 45, more than a holds

    assert pool.relieve() == 47
    assert a.evict_requests == [45]
    assert a.keys() == []
    assert b.evict_requests == [5]
    assert b.evicted == ["b0"]
    assert c.evict_requests == d.evict_requests == []
    assert pool.used == 78
    assert members_of(pool) == {"a": 0, "b": 28, "c": 30, "d": 20}


def test_ties_go_to_the_member_registered_first() -> None:
    pool = MemoryPool(100)
    first = LRUMember(pool, "first", auto_relieve=False)
    second = LRUMember(pool, "second", auto_relieve=False)
    second.fill("s", [15, 15, 15])
    first.fill("f", [15, 15, 15])
    assert pool.relieve() == 15
    assert first.evicted == ["f0"]
    assert second.evicted == []


def test_writes_relieve_automatically() -> None:
    pool = MemoryPool(1000)
    a = LRUMember(pool, "a")
    b = LRUMember(pool, "b")
    b.fill("b", [100] * 3)
    a.fill("a", [50] * 20)  # the write that reaches 85% makes the largest holder (a) evict
    assert pool.used <= pool.relief_target
    assert b.evicted == []
    assert a.evicted[0] == "a0"
    assert pool.stats().relief_runs >= 1


def test_relief_skips_a_member_that_fails(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(LRUMember):
        def evict_bytes(self, nbytes: int) -> int:
            raise RuntimeError("evict boom")

    pool = MemoryPool(100)
    broken = Broken(pool, "broken", auto_relieve=False)
    ok = LRUMember(pool, "ok", auto_relieve=False)
    broken.fill("x", [60])
    ok.fill("y", [10, 10, 10])
    with caplog.at_level(logging.ERROR, logger="stratacache"):
        assert pool.relieve() == 10
    assert ok.evicted == ["y0"]
    assert any("failed to evict" in r.getMessage() and "broken" in r.getMessage() for r in caplog.records)


def test_only_one_relief_at_a_time() -> None:
    entered = threading.Event()
    release = threading.Event()
    nested: list[int] = []

    class Slow(LRUMember):
        def evict_bytes(self, nbytes: int) -> int:
            entered.set()
            release.wait(10)
            freed = super().evict_bytes(nbytes)
            nested.append(self.pool.relieve())  # a member re-entering relief
            return freed

    pool = MemoryPool(100)
    slow = Slow(pool, "slow", auto_relieve=False)
    slow.fill("s", [10] * 9)
    outcome: list[int] = []
    worker = threading.Thread(target=lambda: outcome.append(pool.relieve()), daemon=True)
    worker.start()
    assert entered.wait(10)
    started = time.monotonic()
    assert pool.relieve() == 0  # another thread is relieving: return at once
    assert time.monotonic() - started < 1
    release.set()
    worker.join(10)
    assert not worker.is_alive()
    assert outcome == [10]
    assert nested == [0]
    assert pool.used == 80


# ---------------------------------------------------------------------- concurrency


def test_concurrent_charges_and_relief_keep_exact_accounts() -> None:
    pool = MemoryPool(20_000)
    members = [LRUMember(pool, f"m{i}") for i in range(3)]
    delivered: list[PressureEvent] = []
    pool.on_pressure(delivered.append)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            start.wait()
            for _ in range(3000):
                member = members[rng.randrange(3)]
                key = f"k{rng.randrange(150)}"
                roll = rng.random()
                if roll < 0.6:
                    member.set(key, rng.randint(1, 200))
                elif roll < 0.85:
                    member.delete(key)
                elif roll < 0.95:
                    member.get(key)
                else:
                    pool.relieve()  # a janitor's call
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []

    held = {m.name: sum(m.data.values()) for m in members}
    assert {m.name: m.pool_bytes for m in members} == held
    assert members_of(pool) == held
    assert pool.used == sum(held.values())
    stats = pool.stats()
    # The run did put the pool under pressure.
    assert stats.relief_runs > 0
    assert stats.bytes_relieved > 0

    pool.relieve()
    assert pool.used < pool.thresholds[0]
    assert pool.level is N
    assert not pool.needs_relief()
    # Every level change reached the callback once, in the order it happened.
    assert len(delivered) == sum(pool.stats().level_changes.values())
    assert all(e.level != e.previous for e in delivered)
    assert all(later.previous == earlier.level for earlier, later in itertools.pairwise(delivered))


# ---------------------------------------------------------------------- membership


def test_a_collected_member_leaves_the_pool() -> None:
    pool = MemoryPool(100)
    a = LRUMember(pool, "a", auto_relieve=False)
    b = LRUMember(pool, "b", auto_relieve=False)
    a.set("x", 60)
    b.set("y", 30)
    assert pool.level is H
    ref = weakref.ref(a)
    del a
    assert ref() is None  # the pool did not keep it alive
    gc.collect()
    assert pool.used == 30
    assert members_of(pool) == {"b": 30}
    assert pool.level is N
    assert pool.events()[-1] == PressureEvent("default", N, H, 30, 100)
    # A new member (possibly at the dead one's address) starts from nothing.
    c = LRUMember(pool, "c", auto_relieve=False)
    c.set("z", 5)
    assert members_of(pool) == {"b": 30, "c": 5}
    assert pool.used == 35


def test_unregister_releases_the_members_bytes() -> None:
    pool = MemoryPool(100)
    a = LRUMember(pool, "a", auto_relieve=False)
    b = LRUMember(pool, "b", auto_relieve=False)
    a.set("x", 70)
    b.set("y", 20)
    pool.unregister(a)
    assert pool.used == 20
    assert members_of(pool) == {"b": 20}
    assert pool.level is N
    pool.unregister(a)  # again: nothing to do
    with pytest.raises(ConfigurationError, match="not a member"):
        pool.charge(a, 1)
    pool.register(a)  # back again, from zero
    assert members_of(pool) == {"a": 0, "b": 20}
    pool.charge(a, 5)
    assert pool.used == 25


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize("max_bytes", [0, -1, 1.5, True, "100", None])
def test_bad_max_bytes(max_bytes: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_bytes"):
        MemoryPool(max_bytes)


@pytest.mark.parametrize(
    "levels",
    [
        (0.9, 0.85, 0.95),
        (0.85, 0.85, 0.95),
        (0, 0.5, 0.9),
        (-0.1, 0.5, 0.9),
        (0.5, 0.9, 1.1),
        (0.5, 0.9),
        (0.5, 0.6, 0.7, 0.8),
        (float("nan"), 0.9, 0.95),
        (0.5, 0.9, float("inf")),
        ("0.5", 0.9, 0.95),
        (True, 0.9, 0.95),
        0.85,
    ],
)
def test_bad_levels(levels: Any) -> None:
    with pytest.raises(ConfigurationError, match="level"):
        MemoryPool(100, levels=levels)


@pytest.mark.parametrize("target", [0, -0.5, 0.86, 1.0, float("nan"), "0.8"])
def test_bad_relief_target(target: Any) -> None:
    with pytest.raises(ConfigurationError, match="relief_target"):
        MemoryPool(100, relief_target=target)


def test_charge_from_an_unregistered_member() -> None:
    pool = MemoryPool(100)
    other = MemoryPool(100)
    stranger = LRUMember(other, "stranger")
    with pytest.raises(ConfigurationError, match="stranger"):
        pool.charge(stranger, 10)
    assert pool.used == 0


def test_members_that_cannot_join() -> None:
    class NoWeakref:
        __slots__ = ("name",)

        def __init__(self) -> None:
            self.name = "slotted"

        def evict_bytes(self, nbytes: int) -> int:
            return 0

        @property
        def pool_bytes(self) -> int:
            return 0

    pool = MemoryPool(100)
    with pytest.raises(ConfigurationError, match="weak references"):
        pool.register(NoWeakref())
    nameless = LRUMember(MemoryPool(100), "x")
    nameless.name = 42  # type: ignore[assignment]
    with pytest.raises(ConfigurationError, match="str name"):
        pool.register(nameless)
    with pytest.raises(ConfigurationError, match="callable"):
        pool.on_pressure("not a function")  # type: ignore[arg-type]


def test_usage_never_goes_negative() -> None:
    pool = MemoryPool(100)
    a = LRUMember(pool, "a")
    b = LRUMember(pool, "b")
    a.set("x", 10)
    b.set("y", 50)
    with pytest.raises(InvalidArgument, match=r"'a'.*-5 bytes"):
        pool.charge(a, -15)  # releasing more than a charged, though the pool holds enough
    with pytest.raises(InvalidArgument, match="int"):
        pool.charge(a, 1.5)  # type: ignore[arg-type]
    assert members_of(pool) == {"a": 10, "b": 50}
    assert pool.used == 60
