"""The optional C helpers (``core/_speedups.c``) against their Python reference.

The C code must leave exactly the state the pure-Python code leaves: the same sketch table
(so the same hash of ``(key, salt)``), the same regions in the same order, the same climber
and sketch counts. Each test drives a pure-Python twin (``_native.speedups`` set to None
around its calls) beside the compiled one and compares everything. CI builds the extension
and sets ``STRATACACHE_REQUIRE_SPEEDUPS=1``, so a build that silently fell back fails here.
"""

from __future__ import annotations

import gc
import os
import random
import signal
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stratacache as sc
from stratacache.core import _native
from stratacache.core.policies import FrequencySketch, RandomPolicy, TinyLFUPolicy
from stratacache.testing import FakeClock
from test_policies import _policy_state  # every piece of TinyLFU state, in comparable form

T = TypeVar("T")

native = _native.speedups
needs_native = pytest.mark.skipif(native is None, reason="the C speedups are not built here")
# Twins are compared step by step; the janitor thread (real time) would sweep one between
# its step and the other's (see conftest.no_janitor).
pytestmark = pytest.mark.usefixtures("no_janitor")


@contextmanager
def pure_python() -> Iterator[None]:
    """Run the block on the pure-Python code paths."""
    saved = _native.speedups
    _native.speedups = None  # type: ignore[assignment]
    try:
        yield
    finally:
        _native.speedups = saved


def in_python(call: Callable[[], T]) -> T:
    with pure_python():
        return call()


def test_speedups_are_built_where_required() -> None:
    if os.environ.get("STRATACACHE_REQUIRE_SPEEDUPS", "") in ("", "0"):
        pytest.skip("STRATACACHE_REQUIRE_SPEEDUPS is not set")
    assert native is not None, "the C extension was not built (is a C compiler installed?)"


class Collides:
    """A key whose hash is chosen by the test (-1 becomes -2 in Python, as it must in C)."""

    def __init__(self, h: int) -> None:
        self.h = h

    def __hash__(self) -> int:
        return self.h

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Collides) and other.h == self.h


keys = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.binary(max_size=8),
    st.tuples(st.integers(), st.text(max_size=3)),
    st.floats(allow_nan=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(Collides),
)


@needs_native
@settings(max_examples=150, deadline=None)
@given(
    st.lists(keys, min_size=1, max_size=60),
    st.integers(min_value=0, max_value=2**64),
    st.integers(min_value=1, max_value=3000),
)
def test_sketch_increment_and_frequency_match_python(batch: list[Hashable], salt: int, entries: int) -> None:
    compiled = FrequencySketch(entries, salt=salt)
    reference = FrequencySketch(entries, salt=salt)
    for key in batch * 3:
        compiled.increment(key)
        in_python(lambda key=key: reference.increment(key))  # type: ignore[misc]
        assert compiled.frequency(key) == in_python(lambda key=key: reference.frequency(key))  # type: ignore[misc]
    assert bytes(compiled._table) == bytes(reference._table)
    assert compiled.size == reference.size


@needs_native
def test_sketch_halves_at_the_same_increment_as_python() -> None:
    compiled, reference = FrequencySketch(8, salt=3), FrequencySketch(8, salt=3)
    assert compiled.sample_size == 80
    for i in range(2_000):
        compiled.increment(i % 37)
        in_python(lambda i=i: reference.increment(i % 37))  # type: ignore[misc]
        assert compiled.size == reference.size
    assert bytes(compiled._table) == bytes(reference._table)


@needs_native
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("capacity", [2, 4, 24, 300])
def test_tinylfu_with_speedups_equals_pure_python(
    seed: int, capacity: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store's calls, long enough for sketch halvings, promotions and climber steps; batches
    # of buffered hits that name keys evicted since; overwrites with new weights, removals and
    # a resize. The compiled policy and its pure-Python twin must agree at every eviction.
    rng = random.Random(seed)
    compiled = TinyLFUPolicy(capacity, seed=seed)
    reference = in_python(lambda: TinyLFUPolicy(capacity, seed=seed))
    # The compiled policy's regions are C LinkedMaps, the reference's OrderedDicts.
    assert type(compiled._window) is native.LinkedMap
    assert type(reference._window) is OrderedDict
    resident: OrderedDict[Hashable, None] = OrderedDict()
    buffer: list[Hashable] = []
    # The rare paths the C code hands back to Python must all have been taken.
    halvings: list[FrequencySketch] = []
    reset = FrequencySketch.reset

    def counting_reset(sketch: FrequencySketch) -> None:
        halvings.append(sketch)
        reset(sketch)

    monkeypatch.setattr(FrequencySketch, "reset", counting_reset)
    windows = {compiled.window_capacity}
    promoted = False

    def both(call: Callable[[TinyLFUPolicy], T]) -> T:
        result = call(compiled)
        assert in_python(lambda: call(reference)) == result
        return result

    for step in range(30_000):
        roll = rng.random()
        key: Hashable = int(rng.paretovariate(1.1)) if roll < 0.75 else f"s{rng.randrange(3 * capacity)}"
        if step == 15_000:
            both(lambda p: p.resize(max(1, capacity // 2)))
            while len(resident) > max(1, capacity // 2):
                victim = both(lambda p: p.evict())
                del resident[victim]
        if key in resident:
            if roll > 0.95:
                # Mostly unit weights (the C path), sometimes heavier: a later unit update then
                # has a weight change to account for.
                weight = 2 if roll > 0.99 else 1
                both(lambda p, key=key, weight=weight: p.on_update(key, weight))  # type: ignore[misc]
            elif roll > 0.94:
                both(lambda p, key=key: p.on_remove(key))  # type: ignore[misc]
                del resident[key]
            else:
                buffer.append(key)
                if len(buffer) >= rng.choice((1, 5, 64, 300)):
                    both(lambda p: p.on_access_many(list(buffer), resident))
                    buffer.clear()
            continue
        both(lambda p: p.on_access_many(list(buffer), resident))
        buffer.clear()
        both(lambda p, key=key: p.record_miss(key))  # type: ignore[misc]
        both(lambda p, key=key: p.on_insert(key))  # type: ignore[misc]
        resident[key] = None
        while len(resident) > compiled.capacity:
            victim = both(lambda p: p.evict())
            del resident[victim]
            if rng.random() < 0.3:
                buffer.append(victim)  # a buffered read of a key evicted since: skipped
        windows.add(compiled.window_capacity)
        promoted = promoted or bool(compiled._protected)
        if step % 1000 == 0:
            assert _policy_state(compiled) == _policy_state(reference)
    both(lambda p: p.on_access_many(tuple(buffer), resident))  # any iterable, not only a list
    assert _policy_state(compiled) == _policy_state(reference)
    assert halvings.count(compiled._sketch) >= 1
    # At capacity 2 protected holds nothing: a probation hit stays in probation.
    assert promoted or (capacity == 2 and compiled.protected_capacity == 0)
    # The climber moved the window (at 24 a step is 1.5 keys, scaled down by a narrow lead).
    assert capacity < 300 or len(windows) > 2


# -- failure cases of the compiled functions -----------------------------------------------


@needs_native
def test_sketch_functions_refuse_bad_tables_masks_and_keys() -> None:
    assert native is not None
    table = bytearray(4 * 64)
    assert native.sketch_increment(table, "k", 0, 63) is True
    assert native.sketch_frequency(table, "k", 0, 63) == 1
    with pytest.raises(TypeError, match="bytearray"):
        native.sketch_increment(bytes(256), "k", 0, 63)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mask 62"):
        native.sketch_increment(table, "k", 0, 62)  # not a power of two minus one
    with pytest.raises(ValueError, match="mask 127"):
        native.sketch_frequency(table, "k", 0, 127)  # rows past the end of the table
    with pytest.raises(TypeError, match="unhashable"):
        native.sketch_increment(table, ["a list"], 0, 63)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes 4 arguments"):
        native.sketch_frequency(table, "k", 0)  # type: ignore[call-arg]
    assert table.count(0) == 4 * 64 - 4  # the refused calls changed nothing


@needs_native
def test_replay_refuses_bad_arguments_and_passes_errors_through() -> None:
    assert native is not None
    table = bytearray(4 * 64)
    window: OrderedDict[Hashable, int] = OrderedDict(a=1, b=1)
    protected: OrderedDict[Hashable, int] = OrderedDict()

    def replay(batch: Any, tracked: Any = None, protected_: Any = protected) -> tuple[int, int, int, int]:
        return native.tinylfu_replay(
            batch, 0, window if tracked is None else tracked, protected_, window,
            protected.move_to_end, window.move_to_end, table, 0, 63, 100, 100,
        )  # fmt: skip

    assert replay(["a", "zz"]) == (2, 1, 1, 0)
    assert list(window) == ["b", "a"]
    with pytest.raises(TypeError, match="keys must be a list"):
        replay(("a",))
    with pytest.raises(TypeError, match="must be dicts"):
        replay(["a"], protected_=[])
    with pytest.raises(TypeError, match="unhashable"):
        replay([["a list"]])
    with pytest.raises(TypeError, match="takes 12 arguments"):
        native.tinylfu_replay([])  # type: ignore[call-arg]

    class Boom(Exception):
        pass

    class Tracked:
        def __contains__(self, key: object) -> bool:
            raise Boom(key)

    with pytest.raises(Boom):
        replay(["a"], tracked=Tracked())
    # A generic container works through `in`, and a key in neither region stops the replay
    # after counting it (probation: Python promotes it).
    assert replay(["b", "p"], tracked={"b", "p"}) == (1, 2, 1, 1)


# -- a memory cache with the speedups against one without ------------------------------------


def _seeded_init(cls: type[Any]) -> Callable[..., None]:
    """``cls.__init__`` with ``seed=1`` by default; patched onto ``cls`` itself, so that the
    policy stays exactly ``cls`` (the C paths serve only exact TinyLFUPolicy instances)."""
    original = cls.__init__

    def __init__(self: Any, capacity: int, **kwargs: Any) -> None:
        original(self, capacity, **{"seed": 1, **kwargs})

    return __init__


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        return ("ok", call())
    except Exception as exc:  # the same error, with the same message, on both sides
        return ("raised", type(exc), str(exc))


def _operation(
    cache: sc.Cache,
    clock: FakeClock,
    seen: list[Any],
    roll: float,
    key: str,
    step: int,
    ttl: Any,
    fallback: Any,
) -> Any:
    """One step of the differential test below, chosen by ``roll``; its outcome."""
    if roll < 0.07:
        return _outcome(lambda: cache.set(key, step))  # the cache's default ttl
    if roll < 0.11:
        return _outcome(lambda: cache.set(key, step, None))
    if roll < 0.15:
        return _outcome(lambda: cache.set(key, step, ttl=ttl))
    if roll < 0.17:
        return _outcome(lambda: cache.lpush(key, step))
    if roll < 0.18:
        return _outcome(lambda: cache.get(7))  # type: ignore[arg-type]
    if roll < 0.19:
        return _outcome(lambda: cache.get(["unhashable"]))  # type: ignore[arg-type]
    if roll < 0.21:
        return _outcome(lambda: cache.get(key, default="d"))
    if roll < 0.22:
        return _outcome(cache.get)  # type: ignore[arg-type]  # no key: a TypeError from both
    if roll < 0.23:
        clock.advance(0.7)
        return None
    if roll < 0.235:
        return _outcome(lambda: cache.hooks.add("after_get", seen.append))
    if roll < 0.24:
        return _outcome(lambda: cache.hooks.remove("after_get", seen.append))
    return _outcome(lambda: cache.get(key, fallback))


@needs_native
@pytest.mark.parametrize("policy", ["lru", "fifo", "random", "lfu", "tinylfu"])
@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"cache": {"namespace": "ns"}},
        {"cache": {"latency_sample": 3}},  # not a power of two: every call is a "tick"
        {"backend": {"expire_after_access": 5.0}},
        {"backend": {"max_entries": None}},
        {"cache": {"default_ttl": 2}},
    ],
    ids=["plain", "namespace", "odd-sample", "sliding", "unbounded", "default-ttl"],
)
def test_a_cache_with_the_speedups_answers_exactly_as_one_without(
    policy: str, variant: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hits (plain, with a ttl, due, sliding, collections), misses, non-str and unhashable keys,
    # keyword defaults, hooks switched on and off, evictions and expiry: every call must give
    # the same value or the same error, and the counters must agree at every step.
    rng = random.Random(policy + str(sorted(variant)))
    clocks = [FakeClock(), FakeClock()]
    backend = {"max_entries": 40, "policy": policy, **variant.get("backend", {})}
    if backend["max_entries"] is None:
        del backend["max_entries"]
    # Randomized policies get a fixed seed, the same in both caches.
    for cls in (RandomPolicy, TinyLFUPolicy):
        monkeypatch.setattr(cls, "__init__", _seeded_init(cls))
    compiled = sc.Cache(sc.MemoryBackend(**backend, clock=clocks[0]), **variant.get("cache", {}))
    with pure_python():
        reference = sc.Cache(sc.MemoryBackend(**backend, clock=clocks[1]), **variant.get("cache", {}))
    assert isinstance(compiled._backend.store._lock, native.StoreLock)  # type: ignore[attr-defined]
    seen: list[list[Any]] = [[], []]
    for step in range(4_000):
        key = f"k{rng.randrange(80)}"
        roll = rng.random()
        ttl = rng.choice([None, 1.0, 30.0])
        fallback = rng.choice([None, 0])
        outcomes = [
            _operation(cache, clocks[side], seen[side], roll, key, step, ttl, fallback)
            for side, cache in enumerate((compiled, reference))
        ]
        assert outcomes[0] == outcomes[1], (step, outcomes)
        if step % 100 == 0:
            a, b = compiled.stats(), reference.stats()
            # Latency counts: the same calls were sampled (C times a set tick itself).
            fields = ("hits", "misses", "sets", "items", "expirations", "evictions")
            assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
            assert a.get_latency.count == b.get_latency.count
            assert a.set_latency.count == b.set_latency.count
            # Every entry's metadata (version, created, updated, expiry, weight) too.
            infos = [
                [c._backend.store.entry_info(c._prefix + f"k{i}") for i in range(80)]  # type: ignore[attr-defined]
                for c in (compiled, reference)
            ]
            assert infos[0] == infos[1]
    assert len(seen[0]) == len(seen[1]) > 0
    for cache in (compiled, reference):
        cache.close()
    assert _outcome(lambda: compiled.set("k", 1)) == _outcome(lambda: reference.set("k", 1))


@pytest.mark.parametrize("policy", ["lru", "fifo", "random", "lfu", "tinylfu", None])
@pytest.mark.parametrize("way", ["c", "python", "ttl", "many"])
def test_a_write_over_an_expired_entry_expires_it_and_makes_a_new_entry(policy: str | None, way: str) -> None:
    # Whether the janitor reached a dead entry before the write or not, the write must give
    # the same answer: the dead entry counts as expired and the write makes a new entry
    # (a fresh version, created now); it does not inherit the dead one's metadata. The fused set
    # (with and without the speedups) and the store's own writes agree.
    if way == "c" and native is None:
        pytest.skip("the C speedups are not built here")
    clock = FakeClock()
    limits = {} if policy is None else {"max_entries": 20, "policy": policy}

    def make() -> sc.Cache:
        return sc.Cache(sc.MemoryBackend(**limits, clock=clock))

    cache = in_python(make) if way == "python" else make()
    # Nine entries due before "k": a write reclaims eight due entries first, so "k" is still
    # in the map, dead, when it is overwritten.
    for i in range(9):
        cache.set(f"a{i}", i, ttl=0.5)
    cache.set("k", 1, ttl=1)
    cache.set("k", 2, ttl=1)
    dead_version = cache._backend.store.entry_info("k").version  # type: ignore[attr-defined]
    clock.advance(5)
    written = clock()
    if way in ("c", "python"):
        call = partial(cache.set, "k", 3)  # the fused set's inline path (no ttl)
        in_python(call) if way == "python" else call()
    elif way == "ttl":
        cache.set("k", 3, ttl=60)
    else:
        cache.set_many({"k": 3})
    store = cache._backend.store  # type: ignore[attr-defined]
    info = store.entry_info("k")
    assert (info.created, info.updated) == (written, written)
    assert info.version > dead_version
    assert cache.stats().expirations == 9  # eight reclaimed by the write, and "k"
    assert cache.get("k") == 3
    assert (cache.stats().items, len(store)) == (1, 2)  # and one dead "a" not yet reclaimed
    cache.close()


@needs_native
@pytest.mark.parametrize("seed", [1, 2])
def test_a_tinylfu_store_with_the_speedups_leaves_the_state_of_one_without(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Plain writes (no ttl, so no expiry heap) between reads and deletes, on LinkedMap regions,
    # the C sketch and replay: the stores, their counters and every piece of the policy's
    # state must match the pure-Python twin's.
    monkeypatch.setattr(TinyLFUPolicy, "__init__", _seeded_init(TinyLFUPolicy))
    rng = random.Random(seed)
    compiled = sc.Cache("memory://?policy=tinylfu&max_entries=50")
    with pure_python():
        reference = sc.Cache("memory://?policy=tinylfu&max_entries=50")
    stores = [c._backend.store for c in (compiled, reference)]  # type: ignore[attr-defined]
    for step in range(6_000):
        hot = rng.random() < 0.6
        key = f"k{min(int(rng.paretovariate(1.1)), 400) if hot else rng.randrange(300)}"
        roll = rng.random()
        for side, cache in enumerate((compiled, reference)):
            call: Callable[[], Any] = (
                (lambda: cache.get(key))  # noqa: B023 - called at once, below
                if roll < 0.45
                else (lambda: cache.set(key, step))  # noqa: B023
                if roll < 0.97
                else (lambda: cache.delete(key))  # noqa: B023
            )
            in_python(call) if side else call()
        if step % 200 == 0 or step == 5_999:
            a, b = compiled.stats(), reference.stats()
            fields = ("hits", "misses", "sets", "items", "evictions")
            assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields], step
            assert sorted(stores[0].keys()) == sorted(stores[1].keys())
            with stores[0]._lock, stores[1]._lock:
                stores[0]._drain_reads()
                in_python(stores[1]._drain_reads)
                assert _policy_state(stores[0]._policy) == _policy_state(stores[1]._policy), step
    assert compiled.stats().evictions > 1_000


def _lock_script(lock: Any) -> list[Any]:
    """Outcomes of every call of threading.Lock's interface, in order (errors by type and text)."""
    steps: list[Callable[[], Any]] = [
        lock.locked,
        lock.release,  # not held: RuntimeError
        lock.acquire,
        lock.locked,
        lambda: lock.acquire(False),  # held: False at once
        lambda: lock.acquire(blocking=False),
        lambda: lock.acquire(True, 0.01),  # held: False after the timeout
        lambda: lock.acquire(timeout=0),
        lambda: lock.acquire(False, 1),  # no timeout for a non-blocking call
        lambda: lock.acquire(timeout=-2),
        lambda: lock.acquire(timeout=1e300),
        lambda: lock.acquire(timeout="soon"),
        lambda: lock.acquire(1, 2, 3),
        lambda: lock.acquire(bogus=1),
        lambda: lock.acquire(True, blocking=True),
        lock.release,
        lock.locked,
        lambda: lock.acquire(blocking=1, timeout=0.5),
        lambda: lock.__exit__(None, None, None),
        lock.__enter__,
        lambda: lock.__exit__(None, None, None),
        lambda: lock.__exit__(None, None, None),  # not held any more
    ]
    return [_outcome(step) for step in steps]


@needs_native
def test_store_lock_answers_as_threading_lock() -> None:
    assert native is not None
    ours, theirs = _lock_script(native.StoreLock()), _lock_script(threading.Lock())
    # The same results and error types; the wording of argument errors varies between
    # Python versions (ours is 3.11's), so only "release unlocked lock" is compared whole.
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a[:2] == b[:2], (step, a, b)
        if a[0] == "raised" and a[1] is RuntimeError:
            assert a == b, (step, a, b)
        elif a[0] == "raised" and a[1] in (ValueError, OverflowError):
            assert "timeout" in a[2], (step, a)
    lock = native.StoreLock()
    assert repr(lock).startswith("<unlocked stratacache.core._speedups.StoreLock object at 0x")
    with lock:
        assert repr(lock).startswith("<locked ")
    assert weakref.ref(lock)() is lock
    with pytest.raises(TypeError, match="takes no arguments"):
        native.StoreLock(1)  # type: ignore[call-arg]
    held = native.StoreLock()
    held.acquire()
    del held  # freed while held: released first, no crash


@needs_native
def test_store_lock_excludes_threads_and_waits_without_the_gil() -> None:
    assert native is not None
    lock = native.StoreLock()
    total = [0]

    def work() -> None:
        for _ in range(2_000):
            with lock:
                value = total[0]
                time.sleep(0) if value % 97 == 0 else None  # a switch while holding it
                total[0] = value + 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert total[0] == 8_000
    # Released by another thread, as threading.Lock may be; a waiter blocked in acquire()
    # (GIL released, else the releasing thread could never run) gets it then.
    lock.acquire()
    releaser = threading.Timer(0.05, lock.release)
    releaser.start()
    started = time.monotonic()
    assert lock.acquire(timeout=5)
    assert time.monotonic() - started >= 0.04
    releaser.join()
    lock.release()


@needs_native
@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_store_lock_wait_is_interrupted_by_a_signal_handler_that_raises() -> None:
    assert native is not None

    class Alarm(Exception):
        pass

    def ring(signum: int, frame: Any) -> None:
        raise Alarm

    lock = native.StoreLock()
    lock.acquire()
    # Should the wait ignore signals, this ends it after 5 s (and the test fails, not hangs).
    rescue = threading.Timer(5.0, lock.release)
    previous = signal.signal(signal.SIGALRM, ring)
    try:
        rescue.start()
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        started = time.monotonic()
        with pytest.raises(Alarm):
            lock.acquire()  # held by this very thread: only the handler can end the wait
        assert time.monotonic() - started < 2.5  # ended by the handler, not by the rescue
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        rescue.cancel()
    assert lock.locked()
    lock.release()


@needs_native
@pytest.mark.parametrize("policy", ["lru", "tinylfu"])
def test_fused_paths_wait_for_a_store_lock_held_by_another_thread(policy: str) -> None:
    cache = sc.Cache(f"memory://?policy={policy}&max_entries=10")
    store = cache._backend.store  # type: ignore[attr-defined]
    assert isinstance(store._lock, native.StoreLock)
    cache.set("k", 1)
    holder = threading.Thread(target=lambda: (store._lock.acquire(), time.sleep(0.1), store._lock.release()))
    holder.start()
    while not store._lock.locked():
        time.sleep(0.001)
    started = time.monotonic()
    cache.set("k", 2)  # the write waits (GIL released) until the holder lets go
    assert time.monotonic() - started >= 0.05
    holder.join()
    assert cache.get("k") == 2
    assert not store._lock.locked()
    cache.close()


# -- LinkedMap: the TinyLFU regions' ordered map, held to an OrderedDict -------------------


class _Key:
    """A key whose hash collides with others', so the map compares keys with __eq__."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __hash__(self) -> int:
        return len(self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and other.name == self.name

    def __repr__(self) -> str:
        return f"_Key({self.name!r})"


@needs_native
@pytest.mark.parametrize("seed", range(6))
def test_linked_map_behaves_as_an_ordered_dict(seed: int) -> None:
    assert native is not None
    rng = random.Random(seed)
    keys: list[Hashable] = [
        *range(12),
        *(f"s{i}" for i in range(12)),
        *(_Key("k" * (i % 3) + str(i)) for i in range(8)),
    ]
    model: OrderedDict[Hashable, Any] = OrderedDict()
    linked = native.LinkedMap()

    # Each operation takes (map, key, value, last); setting is the commonest, clear() rare.
    operations: list[Callable[[Any, Hashable, int, bool], Any]] = [
        lambda m, k, v, last: m.__setitem__(k, v),
        lambda m, k, v, last: m.__setitem__(k, v),
        lambda m, k, v, last: m.__delitem__(k),
        lambda m, k, v, last: m[k],
        lambda m, k, v, last: m.get(k),
        lambda m, k, v, last: m.get(k, "absent"),
        lambda m, k, v, last: m.pop(k),
        lambda m, k, v, last: m.pop(k, None),
        lambda m, k, v, last: m.popitem(last=last),
        lambda m, k, v, last: m.popitem(last),
        lambda m, k, v, last: m.move_to_end(k, last=last),
        lambda m, k, v, last: m.move_to_end(k),
        lambda m, k, v, last: k in m,
    ]
    for step in range(3_000):
        key = rng.choice(keys)
        value = rng.randrange(100)
        last = rng.random() < 0.5
        operation = (lambda m, k, v, last: m.clear()) if rng.random() < 0.003 else rng.choice(operations)
        args = (key, value, last)
        assert _outcome(partial(operation, linked, *args)) == _outcome(partial(operation, model, *args))
        if step % 50 == 0:
            assert list(linked) == list(model)
            assert linked.keys() == list(model.keys())
            assert linked.values() == list(model.values())
            assert linked.items() == list(model.items())
            assert len(linked) == len(model)
            assert bool(linked) == bool(model)
    assert repr(linked) == f"LinkedMap({list(model.items())!r})"


@needs_native
def test_linked_map_refuses_bad_calls_and_mutation_during_iteration() -> None:
    assert native is not None
    linked = native.LinkedMap()
    with pytest.raises(TypeError, match="takes no arguments"):
        native.LinkedMap({"a": 1})  # type: ignore[call-arg]
    with pytest.raises(KeyError, match="dictionary is empty"):
        linked.popitem()
    with pytest.raises(KeyError, match="'a'"):
        linked.move_to_end("a")
    with pytest.raises(TypeError, match="unhashable"):
        linked[[1]] = 1  # type: ignore[index]
    with pytest.raises(TypeError, match="takes 1 or 2 arguments"):
        linked.get()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'first'"):
        linked.popitem(first=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="move_to_end"):
        linked.move_to_end()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unhashable"):
        hash(linked)
    for key in "abc":
        linked[key] = key
    it = iter(linked)
    assert next(it) == "a"
    linked.move_to_end("a")
    with pytest.raises(RuntimeError, match="mutated during iteration"):
        next(it)
    assert list(linked) == ["b", "c", "a"]  # the refused steps changed nothing


@needs_native
def test_linked_map_in_a_reference_cycle_is_collected() -> None:
    assert native is not None

    class Value:
        pass

    linked = native.LinkedMap()
    value = Value()
    value.owner = linked  # type: ignore[attr-defined]
    linked["k"] = value
    alive = weakref.ref(value)
    del linked, value
    gc.collect()
    assert alive() is None


@needs_native
@pytest.mark.parametrize("meddle", ["clear", "pop", "set", "move"])
def test_linked_map_survives_keys_that_change_it_while_compared(meddle: str) -> None:
    # A key's __eq__ is Python code the map's dict calls mid-operation; one that changes the
    # map then may make the operation fail, but the order never names a key the map lost.
    assert native is not None
    linked = native.LinkedMap()

    class Meddler(_Key):
        armed = False
        __hash__ = _Key.__hash__

        def __eq__(self, other: object) -> bool:
            if Meddler.armed:
                Meddler.armed = False
                if meddle == "clear":
                    linked.clear()
                elif meddle == "pop":
                    linked.pop(keys[0], None)
                elif meddle == "set":
                    linked[_Key("fresh")] = 0
                else:
                    linked.move_to_end(keys[-1], last=False)
            return super().__eq__(other)

    keys = [Meddler("aa"), Meddler("bb"), Meddler("cc")]  # one hash: lookups compare keys
    operations: list[Callable[[], Any]] = [
        lambda: linked.__setitem__(Meddler("dd"), 4),
        lambda: linked.pop(keys[1], None),
        lambda: linked.move_to_end(keys[2]),
        lambda: linked.popitem(last=False),
        lambda: keys[1] in linked,
        lambda: linked.get(keys[0]),
    ]
    for operation in operations:
        linked.clear()
        for i, key in enumerate(keys):
            linked[key] = i
        Meddler.armed = True
        _outcome(operation)  # may raise (KeyError, RuntimeError): it must not crash
        Meddler.armed = False
        listed = list(linked)
        assert len(listed) <= len(linked)
        assert all(key in linked for key in listed)
        assert [k for k, _ in linked.items()] == listed
