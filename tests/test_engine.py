"""The in-memory engine: limits, weights, expiry, janitor, metadata, resize, pools, engine."""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

import pytest

import stratacache as sc
from stratacache import ConfigurationError, ValueTooLarge
from stratacache._io.janitor import Janitor, janitor
from stratacache._types import MISSING
from stratacache.core.engine import Engine
from stratacache.core.memory_store import MemoryStore, default_weigher
from stratacache.core.pool import MemoryPool
from stratacache.testing import FakeClock

POLICIES = ["lru", "lfu", "fifo", "random", "tinylfu"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# ------------------------------------------------------------------------ limits


@pytest.mark.parametrize("policy", POLICIES)
def test_both_limits_hold_after_every_operation(policy: str) -> None:
    store = MemoryStore(max_entries=50, max_bytes=4000, policy=policy)
    rng = random.Random(7)
    for i in range(3000):
        key = f"k{rng.randrange(200)}"
        op = rng.random()
        if op < 0.6:
            store.set(key, "x" * rng.randrange(1, 120), None)
        elif op < 0.8:
            store.get(key)
        elif op < 0.9:
            store.push(f"l{i % 7}", ["y" * 10], left=True)
        else:
            store.delete(key)
        assert len(store) <= 50
        assert store.pool_bytes <= 4000
        assert store.pool_bytes == sum(default_weigher(k, store._data[k].value) for k in store._data)
    assert store.evictions > 0


def test_value_over_max_bytes_is_refused_and_counted() -> None:
    store = MemoryStore(max_bytes=1000)
    store.set("small", "x", None)
    with pytest.raises(ValueTooLarge, match=r"'big'.*max_bytes=1000"):
        store.set("big", "x" * 2000, None)
    assert store.rejected == 1
    assert store.get("small") == "x"
    assert store.get("big") is MISSING
    cache = sc.Cache("memory", max_bytes=500, max_entries=None)
    with pytest.raises(ValueTooLarge):
        cache.set("k", b"x" * 1000)
    assert cache.stats().errors == 1


def test_custom_weigher_and_bad_weigher() -> None:
    store = MemoryStore(max_bytes=10, weigher=lambda key, value: value, policy="lru")
    for i in range(5):
        store.set(f"k{i}", 3, None)
    assert len(store) == 3
    assert store.pool_bytes == 9
    bad = MemoryStore(max_bytes=10, weigher=lambda key, value: "heavy")  # type: ignore[arg-type, return-value]
    with pytest.raises(ConfigurationError, match="weigher returned 'heavy'"):
        bad.set("k", 1, None)
    with pytest.raises(ConfigurationError, match="weigher must be"):
        MemoryStore(weigher=5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_entries": 0}, "max_entries"),
        ({"max_entries": -3}, "max_entries"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_bytes": 1.5}, "max_bytes"),
        ({"policy": "nope"}, "unknown policy 'nope'"),
        ({"expire_after_access": 0}, "expire_after_access"),
        ({"expire_after_access": True}, "expire_after_access"),
        ({"clock": 3}, "clock"),
    ],
)
def test_bad_store_options(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MemoryStore(**kwargs)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memory://?policy=mru", "unknown policy 'mru'"),
        ("memory://?max_bytes=0", "'max_bytes'"),
        ("memory://?max_entries=-1", "'max_entries'"),
        ("memory://?expire_after_access=-5", "expire_after_access"),
    ],
)
def test_bad_memory_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        sc.Cache(url)


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_by_url(policy: str) -> None:
    cache = sc.Cache(f"memory://?policy={policy}&max_entries=100&max_bytes=100000")
    for i in range(500):
        cache.set(f"k{i}", i)
        cache.get(f"k{i // 2}")
    stats = cache.stats()
    assert stats.items <= 100
    assert stats.evictions >= 400
    assert cache.backend.policy == policy


# ------------------------------------------------------------------------ expiry


def test_sliding_expiry(clock: FakeClock) -> None:
    store = MemoryStore(expire_after_access=10, clock=clock)
    store.set("session", "s", None)  # no ttl: the store's window
    store.set("short", "s", 3)  # its own ttl is its window
    for _ in range(5):
        clock.advance(2)
        assert store.get("session") == "s"
        assert store.get("short") == "s"
    clock.advance(3.5)
    assert store.get("short") is MISSING
    assert store.get("session") == "s"
    clock.advance(10.5)
    assert store.get("session") is MISSING


@pytest.mark.usefixtures("no_janitor")  # counts checked at fake-clock moments
def test_janitor_reclaims_unread_entries(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    for i in range(100):
        store.set(f"k{i}", i, 5)
    store.set("forever", 1, None)
    clock.advance(6)
    sweeper = Janitor(batch=30)
    sweeper.watch(store)
    try:
        assert sweeper.run_once() == 30  # bounded batches
        while sweeper.run_once():
            pass
    finally:
        sweeper.stop()
    assert len(store) == 1
    assert store.expirations == 100


def test_shared_janitor_starts_on_first_ttl_and_is_one_thread() -> None:
    stores = [MemoryStore() for _ in range(5)]
    for store in stores:
        store.set("k", 1, None)
    for store in stores:
        store.set("t", 1, 30)
    assert janitor.running
    names = [t.name for t in threading.enumerate()]
    assert names.count("stratacache-janitor") == 1
    for store in stores:
        store.close()


def test_janitor_thread_sweeps_on_its_own() -> None:
    sweeper = Janitor(interval=0.01)
    store = MemoryStore()
    store.set("k", 1, 0.01)
    sweeper.watch(store)
    deadline = time.monotonic() + 5
    while len(store) and time.monotonic() < deadline:
        time.sleep(0.01)
    sweeper.stop()
    assert len(store) == 0
    assert not sweeper.running


@pytest.mark.usefixtures("no_janitor")  # counts checked at fake-clock moments
def test_overwrite_and_expire_reschedule(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    store.set("k", 1, 5)
    store.set("k", 2, 50)  # the old deadline is stale, not the entry's
    clock.advance(6)
    assert store.purge_expired() == 0
    assert store.get("k") == 2
    store.expire("k", 1)
    clock.advance(2)
    assert store.purge_expired() == 1


# ---------------------------------------------------------------------- metadata


def test_entry_metadata(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    store.set("k", "a", 100)
    first = store.entry_info("k")
    assert first is not None
    assert (first.created, first.updated) == (clock(), clock())
    assert first.expires == clock() + 100
    clock.advance(3)
    store.set("k", "b", None)
    second = store.entry_info("k")
    assert second is not None
    assert second.version > first.version
    assert second.created == first.created
    assert second.updated == first.updated + 3
    assert second.expires is None
    store.incr("n", 1)
    counter = store.entry_info("n")
    store.incr("n", 1)
    info = store.entry_info("n")
    assert counter is not None
    assert info is not None
    assert info.version > counter.version
    store.push("l", [1], left=False)
    pushed = store.entry_info("l")
    store.push("l", [2], left=False)
    list_info = store.entry_info("l")
    assert pushed is not None
    assert list_info is not None
    assert list_info.version > pushed.version
    # Versions come from one counter: a key deleted and written again never gets back an
    # old version (a compare-and-set holding it must not match the new entry).
    store.delete("k")
    store.set("k", "b", None)
    reborn = store.entry_info("k")
    assert reborn is not None
    assert reborn.version not in {first.version, second.version}
    assert store.entry_info("absent") is None


# ------------------------------------------------------------------------ resize


@pytest.mark.parametrize("policy", POLICIES)
def test_resize_keeps_what_fits(policy: str) -> None:
    store = MemoryStore(max_entries=100, policy=policy)
    for i in range(100):
        store.set(f"k{i}", i, None)
    store.resize(max_entries=40)
    assert len(store) == 40
    survivors = store.keys()
    store.resize(max_entries=200)
    assert sorted(store.keys()) == sorted(survivors)
    for i in range(150):
        store.set(f"n{i}", i, None)
    assert len(store) == 190
    store.resize(max_bytes=5000)
    assert store.pool_bytes <= 5000
    with pytest.raises(ConfigurationError):
        store.resize(max_entries=0)


def test_resize_unbounded_store_gets_a_policy() -> None:
    store = MemoryStore(policy="lru")
    for i in range(10):
        store.set(f"k{i}", i, None)
    store.get("k0")
    store.resize(max_entries=5)
    assert len(store) == 5
    store.resize(max_entries=None)
    for i in range(10, 30):
        store.set(f"k{i}", i, None)
    assert len(store) == 25


# -------------------------------------------------------------------------- pools


def test_pool_makes_stores_evict_across_each_other() -> None:
    pool = MemoryPool(10_000)
    events: list[Any] = []
    pool.on_pressure(events.append)
    big = MemoryStore(pool=pool, policy="lru", name="big")
    small = MemoryStore(pool=pool, policy="lru", name="small")
    for i in range(40):
        small.set(f"s{i}", "x" * 20, None)
    for i in range(200):
        big.set(f"b{i}", "y" * 100, None)
        assert pool.used <= pool.capacity
    assert pool.used < pool.thresholds[0]
    assert pool.used == big.pool_bytes + small.pool_bytes
    assert big.evictions > 0
    assert big.get("b199") is not MISSING  # the most recent entries stayed
    assert any(event.level > event.previous for event in events)
    big.close()
    assert pool.used == small.pool_bytes


def test_ttl_only_store_in_a_pool_is_bounded_by_the_pool() -> None:
    engine = Engine(
        {"pools": {"p": {"max_bytes": 20_000}}, "stores": {"tokens": {"type": "ttl-only", "pool": "p"}}}
    )
    tokens = engine.store("tokens")
    for i in range(1000):
        tokens.set(f"t{i}", "z" * 50, 60)
    assert engine.pool("p").used <= 20_000
    assert tokens.evictions > 0
    assert tokens.get("t999") is not MISSING  # the oldest went first
    assert tokens.get("t0") is MISSING


# ------------------------------------------------------------------------- engine


def test_engine_from_config(clock: FakeClock) -> None:
    engine = Engine(
        {
            "pools": {"main": {"max_bytes": 1_000_000}},
            "stores": {
                "pages": {"type": "general", "policy": "tinylfu", "max_entries": 100, "pool": "main"},
                "sessions": {"type": "session", "max_entries": 10, "expire_after_access": 30},
                "tokens": {"type": "ttl-only"},
            },
        },
        clock=clock,
    )
    assert engine.store_names == ["pages", "sessions", "tokens"]
    pages = sc.Cache(sc.MemoryBackend(store=engine.store("pages")), namespace="p")
    for i in range(300):
        pages.set(f"k{i}", i)
    sessions = engine.store("sessions")
    sessions.set("s1", {"user": 1}, None)
    clock.advance(20)
    assert sessions.get("s1") == {"user": 1}
    clock.advance(20)
    assert sessions.get("s1") == {"user": 1}  # sliding: each read extends it
    clock.advance(31)
    assert sessions.get("s1") is MISSING
    stats = engine.stats()
    assert stats["pages"].items == 100
    assert stats["pages"].evictions == 200
    assert stats["*"].items == stats["pages"].items + stats["sessions"].items + stats["tokens"].items
    assert engine.health().healthy
    engine.resize("pages", max_entries=50)
    assert engine.stats()["pages"].items == 50
    pages.close()  # a cache over an engine's store leaves the store to the engine
    assert len(engine.store("pages")) == 50
    engine.close()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"stores": {"a": {"type": "lru-ish"}}}, "unknown store type 'lru-ish'"),
        ({"stores": {"a": {"colour": 1}}}, r"unknown option\(s\) \['colour'\]"),
        ({"stores": {"a": {"pool": "none"}}}, "names pool 'none'"),
        ({"stores": {"a": {"type": "session", "policy": "lfu"}}}, "session store uses lru"),
        ({"stores": {"a": {"type": "ttl-only", "max_entries": 5}}}, "no size limit"),
        ({"pools": {"p": {"max_bytes": 0}}}, "max_bytes"),
        ({"extra": {}}, "unknown engine configuration keys"),
    ],
)
def test_engine_config_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Engine(config)


def test_engine_lookup_errors() -> None:
    engine = Engine({"stores": {"a": {}}})
    with pytest.raises(ConfigurationError, match="no store 'b'; stores: a"):
        engine.store("b")
    with pytest.raises(ConfigurationError, match="no pool"):
        engine.pool("x")
    with pytest.raises(ConfigurationError, match="already exists"):
        engine.create_store("a")
    with pytest.raises(ConfigurationError, match="resize takes"):
        engine.resize("a", size=3)
    with pytest.raises(ConfigurationError, match="must be a MemoryStore"):
        sc.MemoryBackend(store="a")  # type: ignore[arg-type]


# ---------------------------------------------------------------- thread safety


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("weighed", [True, False], ids=["entries+bytes", "entries"])
def test_threads_keep_every_invariant(policy: str, weighed: bool) -> None:
    # Without max_bytes, plain writes take the fused set (in C for lru, fifo and tinylfu).
    limits: dict[str, Any] = {"max_entries": 300, "max_bytes": 60_000 if weighed else None}
    cache = sc.Cache("memory", policy=policy, **limits)
    counters = sc.Cache(cache.backend, namespace="counters")
    store = cache.backend.store
    errors: list[BaseException] = []
    increments = [0] * 10
    # STRATACACHE_STRESS_SECONDS=30 runs the long version by hand; CI keeps it short.
    stop = time.monotonic() + float(os.environ.get("STRATACACHE_STRESS_SECONDS", "1.5"))

    def worker(n: int) -> None:
        rng = random.Random(n)
        try:
            while time.monotonic() < stop:
                key = f"k{rng.randrange(600)}"
                roll = rng.random()
                if roll < 0.4:
                    value = cache.get(key)
                    assert value is None or value == key * 3
                elif roll < 0.7:
                    cache.set(key, key * 3, ttl=rng.choice([None, 5.0]))
                elif roll < 0.8:
                    cache.delete(key)
                elif roll < 0.9:
                    # A counter in a bounded cache may be evicted: count only what landed.
                    counters.incr(f"c{n}")
                    increments[n] += 1
                else:
                    # Observed as any public method sees the store: between operations.
                    with store._lock:
                        assert len(store) <= 300
                        assert not weighed or store.pool_bytes <= 60_000
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(store) <= 300
    if weighed:
        assert store.pool_bytes <= 60_000
        assert store.pool_bytes == sum(default_weigher(k, e.value) for k, e in store._data.items())
    if store._policy is not None and store._tracks_keys:
        assert len(store._policy) == len(store)  # the policy tracks exactly the stored keys
    for n in range(10):
        value = counters.get(f"c{n}")
        assert value is None or 0 < value <= increments[n]


def test_unbounded_counters_add_up_across_threads() -> None:
    cache = sc.Cache("memory", max_entries=None, policy="tinylfu")

    def worker() -> None:
        for _ in range(2000):
            cache.incr("shared")
            cache.hincrby("h", "f")

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.get("shared") == 20_000
    assert cache.hget("h", "f") == 20_000
    stats = cache.stats()
    assert stats.errors == 0


@pytest.mark.usefixtures("no_janitor")  # counts checked at fake-clock moments
def test_overwrites_keep_the_deadline_heap_small_and_correct(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    for _ in range(1000):
        store.set("k", 1, 10)  # same ttl again and again: the first heap item covers them
        clock.advance(0.001)
    assert len(store._heap) == 1
    store.set("k", 1, 2)  # an earlier deadline than the queued one: queued again
    store.set("later", 1, 50)
    store.set("later", 1, 100)
    clock.advance(3)
    assert store.purge_expired() == 1
    assert store.get("k") is MISSING
    clock.advance(48)  # "later" was pushed back to 100 s: its 50 s item re-queues it
    assert store.purge_expired() == 0
    assert store.get("later") == 1
    clock.advance(50)
    assert store.purge_expired() == 1
    assert len(store) == 0
