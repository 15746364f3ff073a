"""MemoryStore: LRU order and bound, TTL with a fake clock, counters, native collections, threads."""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratacache import MISSING, ConfigurationError, InvalidArgument, ValueTooLarge, WrongType
from stratacache.core import memory_store
from stratacache.core.memory_store import MemoryStore
from stratacache.core.policies import LFUPolicy
from stratacache.testing import FakeClock

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


# The process's janitor thread sweeps on real time: these tests check counters, paths and
# heaps at exact moments of a fake clock, so it is kept out (see conftest.no_janitor).
pytestmark = pytest.mark.usefixtures("no_janitor")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemoryStore:
    return MemoryStore(clock=clock)


# ----------------------------------------------------------------- construction


@pytest.mark.parametrize("bad", [0, -1, 1.5, 2.0, True, False, "10", [3]])
def test_bad_max_entries_is_a_configuration_error(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_entries"):
        MemoryStore(max_entries=bad)


@pytest.mark.parametrize("good", [None, 1, 10_000])
def test_good_max_entries(good: int | None) -> None:
    store = MemoryStore(max_entries=good)
    assert store.max_entries == good
    store.set("k", 1, None)
    assert store.get("k") == 1


# ------------------------------------------------------------------ plain values


def test_get_missing_and_stored_none(store: MemoryStore) -> None:
    assert store.get("nope") is MISSING
    store.set("k", None, None)
    assert store.get("k") is None
    assert store.exists("k")


def test_objects_are_stored_as_given(store: MemoryStore) -> None:
    value = {"a": [1, 2]}
    store.set("k", value, None)
    assert store.get("k") is value


def test_add_only_when_absent(store: MemoryStore, clock: FakeClock) -> None:
    assert store.add("k", 1, 5)
    assert not store.add("k", 2, None)
    assert store.get("k") == 1
    clock.advance(5)
    assert store.add("k", 3, None)  # the old entry expired
    assert store.get("k") == 3
    assert store.ttl("k") is None


def test_delete_and_delete_many(store: MemoryStore) -> None:
    store.set_many({"a": 1, "b": 2, "c": 3}, None)
    assert store.delete("a")
    assert not store.delete("a")
    assert store.delete_many(["b", "b", "c", "zz"]) == 2
    assert store.keys() == []


def test_get_many_leaves_out_misses_and_collections(store: MemoryStore) -> None:
    store.set("a", 1, None)
    store.set("n", None, None)
    store.push("l", [1], left=True)
    assert store.get_many(["a", "n", "l", "zz"]) == {"a": 1, "n": None}


def test_set_replaces_a_collection(store: MemoryStore) -> None:
    store.push("k", [1, 2], left=False)
    store.set("k", "plain", None)
    assert store.get("k") == "plain"
    with pytest.raises(WrongType, match="'k'"):
        store.lrange("k", 0, -1)


# --------------------------------------------------------------------------- LRU


def test_least_recently_used_is_evicted_first() -> None:
    store = MemoryStore(max_entries=3)
    for key in "abc":
        store.set(key, key, None)
    store.set("d", "d", None)
    assert store.keys() == ["b", "c", "d"]
    assert store.get("a") is MISSING
    assert store.evictions == 1
    store.set("e", "e", None)
    assert store.keys() == ["c", "d", "e"]
    assert store.evictions == 2


@pytest.mark.parametrize(
    "touch",
    [
        pytest.param(lambda s: s.get("a"), id="get"),
        pytest.param(lambda s: s.get_many(["a"]), id="get_many"),
        pytest.param(lambda s: s.set("a", 10, None), id="set"),
        pytest.param(lambda s: s.incr("a", 1), id="incr"),
    ],
)
def test_access_refreshes_recency(touch: Callable[[MemoryStore], Any]) -> None:
    store = MemoryStore(max_entries=3)
    for i, key in enumerate("abc"):
        store.set(key, i, None)
    touch(store)
    store.set("d", 3, None)
    assert store.get("b") is MISSING  # b, not a, was least recently used
    assert store.get("a") is not MISSING
    assert store.evictions == 1


def test_set_on_existing_key_replaces_without_evicting() -> None:
    store = MemoryStore(max_entries=2)
    store.set("a", 1, None)
    store.set("b", 2, None)
    store.set("a", 3, None)
    assert store.get("a") == 3
    assert store.get("b") == 2
    assert store.evictions == 0
    assert store.count() == 2


def test_collection_access_refreshes_recency() -> None:
    store = MemoryStore(max_entries=3)
    store.push("l", [1], left=True)
    store.set("b", 1, None)
    store.set("c", 1, None)
    assert store.lrange("l", 0, -1) == [1]
    store.set("d", 1, None)
    assert sorted(store.keys()) == ["c", "d", "l"]


def test_max_entries_bound_holds_after_many_inserts() -> None:
    store = MemoryStore(max_entries=50)
    for i in range(1000):
        store.set(f"k{i}", i, None)
        assert store.count() <= 50
        assert len(store.keys()) <= 50
    assert store.keys() == [f"k{i}" for i in range(950, 1000)]
    assert store.evictions == 950
    assert store.expirations == 0


def test_bound_holds_for_collections_and_counters() -> None:
    store = MemoryStore(max_entries=5)
    for i in range(40):
        kind = i % 4
        if kind == 0:
            store.push(f"l{i}", [i], left=True)
        elif kind == 1:
            store.sadd(f"s{i}", [i])
        elif kind == 2:
            store.hset(f"h{i}", {"f": i})
        else:
            store.incr(f"c{i}", 1)
        assert store.count() <= 5
    assert store.evictions == 35


# --------------------------------------------------------------------------- TTL


def test_expired_entries_are_never_returned(store: MemoryStore, clock: FakeClock) -> None:
    store.set("k", "v", 10)
    clock.advance(9.999)
    assert store.get("k") == "v"
    clock.advance(0.001)  # expires_at <= now: gone at exactly the ttl
    assert store.get("k") is MISSING
    assert not store.exists("k")


EXPIRED_VIEWS: list[tuple[str, Callable[[MemoryStore], Any], Any]] = [
    ("get", lambda s: s.get("k"), MISSING),
    ("get_many", lambda s: s.get_many(["k"]), {}),
    ("exists", lambda s: s.exists("k"), False),
    ("ttl", lambda s: s.ttl("k"), MISSING),
    ("keys", lambda s: s.keys(), []),
    ("keys-pattern", lambda s: s.keys("k*"), []),
    ("count", lambda s: s.count(), 0),
    ("count-prefix", lambda s: s.count("k"), 0),
    ("delete", lambda s: s.delete("k"), False),
    ("delete_many", lambda s: s.delete_many(["k"]), 0),
    ("delete_pattern", lambda s: s.delete_pattern("*"), 0),
    ("expire", lambda s: s.expire("k", 100), False),
    ("incr-restarts", lambda s: s.incr("k", 5), 5),
    ("add", lambda s: s.add("k", 1, None), True),
]


@pytest.mark.parametrize(("view", "expected"), [pytest.param(v, e, id=n) for n, v, e in EXPIRED_VIEWS])
def test_expired_plain_value_is_absent_everywhere(
    store: MemoryStore, clock: FakeClock, view: Callable[[MemoryStore], Any], expected: Any
) -> None:
    store.set("k", 41, 1)
    clock.advance(1)
    assert view(store) == expected


@pytest.mark.parametrize(
    ("make", "view", "expected"),
    [
        (lambda s: s.push("k", [1], True), lambda s: s.lrange("k", 0, -1), []),
        (lambda s: s.push("k", [1], True), lambda s: s.llen("k"), 0),
        (lambda s: s.push("k", [1], True), lambda s: s.pop("k", True), MISSING),
        (lambda s: s.sadd("k", [1]), lambda s: s.smembers("k"), set()),
        (lambda s: s.sadd("k", [1]), lambda s: s.sismember("k", 1), False),
        (lambda s: s.hset("k", {"f": 1}), lambda s: s.hgetall("k"), {}),
        (lambda s: s.hset("k", {"f": 1}), lambda s: s.hget("k", "f"), MISSING),
        (lambda s: s.hset("k", {"f": 1}), lambda s: s.hincrby("k", "g", 2), 2),
    ],
    ids=["lrange", "llen", "pop", "smembers", "sismember", "hgetall", "hget", "hincrby"],
)
def test_expired_collection_is_absent(
    store: MemoryStore,
    clock: FakeClock,
    make: Callable[[MemoryStore], Any],
    view: Callable[[MemoryStore], Any],
    expected: Any,
) -> None:
    make(store)
    assert store.expire("k", 2)
    clock.advance(2)
    assert view(store) == expected


def test_expired_then_push_starts_a_fresh_list(store: MemoryStore, clock: FakeClock) -> None:
    store.push("k", [1, 2], left=False)
    store.expire("k", 1)
    clock.advance(1)
    assert store.push("k", [3], left=False) == 1
    assert store.lrange("k", 0, -1) == [3]
    assert store.ttl("k") is None


def test_ttl_and_expire(store: MemoryStore, clock: FakeClock) -> None:
    assert store.ttl("k") is MISSING
    store.set("k", 1, None)
    assert store.ttl("k") is None
    assert store.expire("k", 30)
    clock.advance(10)
    assert store.ttl("k") == pytest.approx(20)
    assert store.expire("k", None)  # persist
    clock.advance(1000)
    assert store.ttl("k") is None
    assert store.get("k") == 1
    assert not store.expire("missing", 5)


def test_set_replaces_the_expiry(store: MemoryStore, clock: FakeClock) -> None:
    store.set("k", 1, 5)
    store.set("k", 2, None)
    clock.advance(10)
    assert store.get("k") == 2


def test_incr_keeps_the_expiry(store: MemoryStore, clock: FakeClock) -> None:
    store.set("k", 1, 10)
    clock.advance(4)
    assert store.incr("k", 1) == 2
    assert store.ttl("k") == pytest.approx(6)
    clock.advance(6)
    assert store.get("k") is MISSING


def test_expiration_counter(store: MemoryStore, clock: FakeClock) -> None:
    store.set("a", 1, 1)
    store.set("b", 1, 1)
    store.set("c", 1, None)
    clock.advance(1)
    assert store.expirations == 0  # nothing touched yet
    assert store.get("a") is MISSING
    assert store.expirations == 1
    assert store.get("a") is MISSING  # already dropped: not counted twice
    assert store.expirations == 1
    assert not store.exists("b")
    assert store.expirations == 2
    assert store.evictions == 0


def test_lazy_sweep_reclaims_expired_entries_on_writes(store: MemoryStore, clock: FakeClock) -> None:
    for key in ("x1", "x2", "x3"):
        store.set(key, 1, 1)
    store.set("live", 1, None)
    clock.advance(1)
    assert store.expirations == 0
    store.set("new", 1, None)  # a write, no read of the expired keys
    assert store.expirations == 3
    assert store.count() == 2
    assert store.keys() == ["live", "new"]


def test_bounded_store_reclaims_expired_before_evicting(clock: FakeClock) -> None:
    store = MemoryStore(max_entries=4, clock=clock)
    store.set("old1", 1, 1)
    store.set("old2", 1, 1)
    store.set("keep1", 1, None)
    store.set("keep2", 1, None)
    clock.advance(1)
    store.set("new1", 1, None)
    store.set("new2", 1, None)
    assert store.evictions == 0
    assert store.expirations == 2
    assert store.keys() == ["keep1", "keep2", "new1", "new2"]


def test_evictions_and_expirations_are_counted_separately(clock: FakeClock) -> None:
    store = MemoryStore(max_entries=2, clock=clock)
    store.set("a", 1, None)
    store.set("b", 1, None)
    store.set("c", 1, None)
    assert (store.evictions, store.expirations) == (1, 0)
    store.set("d", 1, 1)
    clock.advance(1)
    assert store.get("d") is MISSING
    assert (store.evictions, store.expirations) == (2, 1)


# ------------------------------------------------- count, keys, clear, patterns


@pytest.fixture
def populated(store: MemoryStore, clock: FakeClock) -> MemoryStore:
    store.set("user:1", 1, None)
    store.set("user:2", 2, None)
    store.set("user:3", 3, 1)  # expires
    store.set("user*x", 4, None)
    store.set("userx", 5, None)
    store.push("user:list", [1], left=True)
    store.set("order:1", 6, None)
    clock.advance(1)
    return store


def test_count_with_and_without_prefix(populated: MemoryStore) -> None:
    assert populated.count() == 6
    assert populated.count("user:") == 3
    assert populated.count("user") == 5
    assert populated.count("user*") == 1  # a prefix, not a pattern
    assert populated.count("nothing") == 0
    assert populated.count("") == 6


def test_keys_with_pattern(populated: MemoryStore) -> None:
    assert sorted(populated.keys()) == ["order:1", "user*x", "user:1", "user:2", "user:list", "userx"]
    assert sorted(populated.keys("user:*")) == ["user:1", "user:2", "user:list"]
    assert populated.keys("user:?") == ["user:1", "user:2"]
    assert populated.keys("user\\*x") == ["user*x"]
    assert populated.keys("user:[^1]") == ["user:2"]
    assert populated.keys("nothing*") == []


def test_delete_pattern(populated: MemoryStore) -> None:
    assert populated.delete_pattern("user:?") == 2  # the expired user:3 is not counted
    assert sorted(populated.keys()) == ["order:1", "user*x", "user:list", "userx"]
    assert populated.delete_pattern("user\\*x") == 1
    assert populated.delete_pattern("nomatch*") == 0
    assert populated.delete_pattern("*") == 3
    assert populated.keys() == []


def test_clear_with_prefix_is_literal(populated: MemoryStore) -> None:
    populated.clear("user*")
    assert not populated.exists("user*x")
    assert populated.count() == 5
    populated.clear("user:")
    assert sorted(populated.keys()) == ["order:1", "userx"]
    populated.clear("nothing")
    assert populated.count() == 2
    populated.clear()
    assert populated.keys() == []
    assert populated.count() == 0


# ---------------------------------------------------------------------- counters


def test_incr_on_missing_and_int(store: MemoryStore) -> None:
    assert store.incr("c", 1) == 1
    assert store.incr("c", 5) == 6
    assert store.incr("c", -10) == -4
    assert store.get("c") == -4
    assert type(store.get("c")) is int


@pytest.mark.parametrize(
    ("stored", "delta", "result", "after"),
    [
        (b"5", 2, 7, b"7"),
        (b"-5", 10, 5, b"5"),
        (b"0", -1, -1, b"-1"),
        (b"-0", 3, 3, b"3"),
        (b"9223372036854775806", 1, INT64_MAX, b"9223372036854775807"),
    ],
)
def test_incr_on_decimal_bytes_stays_bytes(
    store: MemoryStore, stored: bytes, delta: int, result: int, after: bytes
) -> None:
    store.set("c", stored, None)
    assert store.incr("c", delta) == result
    value = store.get("c")
    assert value == after
    assert type(value) is bytes


NOT_INTEGERS = [
    "5",
    5.0,
    True,
    False,
    None,
    [1],
    bytearray(b"5"),
    b"",
    b"-",
    b"5.0",
    b"abc",
    b"+5",
    b"0x10",
    b"1_000",
    b" 5",
    b"5 ",
    b"5\n",
    b"--5",
    b"5-",
]


@pytest.mark.parametrize("value", NOT_INTEGERS, ids=repr)
def test_incr_on_non_integer_is_wrong_type_and_unchanged(store: MemoryStore, value: Any) -> None:
    store.set("the-key", value, None)
    with pytest.raises(WrongType, match="'the-key'"):
        store.incr("the-key", 2)
    after = store.get("the-key")
    assert after == value
    assert type(after) is type(value)


@pytest.mark.parametrize(
    ("stored", "delta"),
    [
        (INT64_MAX, 1),
        (INT64_MIN, -1),
        (0, INT64_MAX + 1),
        (2**70, 1),
        (b"9223372036854775807", 1),
        (b"-9223372036854775808", -1),
    ],
)
def test_incr_overflow_is_invalid_argument_and_unchanged(store: MemoryStore, stored: Any, delta: int) -> None:
    store.set("the-key", stored, None)
    with pytest.raises(InvalidArgument, match="'the-key'"):
        store.incr("the-key", delta)
    assert store.get("the-key") == stored
    assert type(store.get("the-key")) is type(stored)


def test_incr_overflow_on_missing_key_creates_nothing(store: MemoryStore) -> None:
    with pytest.raises(InvalidArgument):
        store.incr("c", INT64_MAX + 1)
    assert not store.exists("c")
    assert store.incr("c", INT64_MAX) == INT64_MAX
    assert store.incr("c", INT64_MIN) == -1


# -------------------------------------------------------------------------- lists


def test_push_order_and_lengths(store: MemoryStore) -> None:
    assert store.push("l", [1, 2, 3], left=True) == 3  # LPUSH: the last given ends first
    assert store.lrange("l", 0, -1) == [3, 2, 1]
    assert store.push("l", [4, 5], left=False) == 5
    assert store.lrange("l", 0, -1) == [3, 2, 1, 4, 5]
    assert store.llen("l") == 5
    assert store.pop("l", left=True) == 3
    assert store.pop("l", left=False) == 5
    assert store.lrange("l", 0, -1) == [2, 1, 4]


def test_pop_until_empty_removes_the_key(store: MemoryStore) -> None:
    store.push("l", ["a", "b"], left=False)
    assert store.pop("l", left=True) == "a"
    assert store.pop("l", left=True) == "b"
    assert not store.exists("l")
    assert store.pop("l", left=True) is MISSING
    assert store.pop("l", left=False) is MISSING
    assert store.llen("l") == 0
    assert store.lrange("l", 0, -1) == []
    assert store.keys() == []


def test_push_keeps_the_expiry(store: MemoryStore, clock: FakeClock) -> None:
    store.push("l", [1], left=True)
    store.expire("l", 10)
    store.push("l", [2], left=True)
    assert store.pop("l", left=False) == 1
    assert store.ttl("l") == pytest.approx(10)


def test_push_nothing_neither_creates_nor_evicts() -> None:
    store = MemoryStore(max_entries=2)
    store.set("a", 1, None)
    store.set("b", 2, None)
    assert store.push("l", [], left=True) == 0
    assert store.keys() == ["a", "b"]
    assert store.evictions == 0
    store.push("l2", [1, 2], left=True)
    assert store.push("l2", [], left=False) == 2


def test_lrange_on_missing_key(store: MemoryStore) -> None:
    assert store.lrange("nope", 0, -1) == []
    assert store.lrange("nope", -5, 5) == []


def _redis_lrange_by_slicing(items: list[int], start: int, stop: int) -> list[int]:
    # LRANGE's stop is inclusive; -1 means "to the end", which slicing spells as None.
    return items[start : (stop + 1) or None]


@pytest.mark.parametrize(
    ("start", "stop", "expected"),
    [
        (0, -1, [0, 1, 2, 3, 4]),
        (0, 0, [0]),
        (1, 3, [1, 2, 3]),
        (-2, -1, [3, 4]),
        (-100, 100, [0, 1, 2, 3, 4]),
        (5, 10, []),
        (3, 1, []),
        (0, -6, []),
        (-1, -1, [4]),
        (-5, 0, [0]),
        (2, -3, [2]),
        (4, 4, [4]),
    ],
)
def test_lrange_examples(store: MemoryStore, start: int, stop: int, expected: list[int]) -> None:
    store.push("l", list(range(5)), left=False)
    assert store.lrange("l", start, stop) == expected
    assert _redis_lrange_by_slicing(list(range(5)), start, stop) == expected


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(st.integers(), min_size=1, max_size=12),
    start=st.integers(-20, 20),
    stop=st.integers(-20, 20),
)
def test_lrange_agrees_with_slicing(items: list[int], start: int, stop: int) -> None:
    store = MemoryStore()
    store.push("l", items, left=False)
    assert store.lrange("l", start, stop) == _redis_lrange_by_slicing(items, start, stop)
    assert store.lrange("l", start, stop) == _redis_lrange_by_slicing(items, start, stop)  # read-only


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(st.tuples(st.sampled_from(["lpush", "rpush", "lpop", "rpop"]), st.integers()), max_size=30)
)
def test_push_pop_agrees_with_a_python_list(ops: list[tuple[str, int]]) -> None:
    store = MemoryStore()
    model: list[int] = []
    for op, value in ops:
        if op == "lpush":
            model.insert(0, value)
            assert store.push("l", [value], left=True) == len(model)
        elif op == "rpush":
            model.append(value)
            assert store.push("l", [value], left=False) == len(model)
        elif op == "lpop":
            assert store.pop("l", left=True) == (model.pop(0) if model else MISSING)
        else:
            assert store.pop("l", left=False) == (model.pop() if model else MISSING)
        assert store.lrange("l", 0, -1) == model
        assert store.exists("l") is bool(model)


# --------------------------------------------------------------------------- sets


def test_set_operations(store: MemoryStore) -> None:
    assert store.sadd("s", ["a", "b", "a"]) == 2
    assert store.sadd("s", ["b", "c"]) == 1
    assert store.smembers("s") == {"a", "b", "c"}
    assert store.scard("s") == 3
    assert store.sismember("s", "a")
    assert not store.sismember("s", "z")
    copy = store.smembers("s")
    copy.add("zz")
    assert store.scard("s") == 3  # smembers hands out a copy
    assert store.srem("s", ["a", "zz"]) == 1
    assert store.srem("s", ["b", "c"]) == 2
    assert not store.exists("s")  # an emptied set no longer exists
    assert store.smembers("s") == set()
    assert store.scard("s") == 0
    assert store.srem("s", ["a"]) == 0
    assert store.sadd("s", []) == 0
    assert not store.exists("s")


def test_sadd_unhashable_member_changes_nothing() -> None:
    store = MemoryStore(max_entries=2)
    store.set("a", 1, None)
    store.set("b", 2, None)
    with pytest.raises(TypeError):
        store.sadd("s", ["ok", ["unhashable"]])
    assert store.keys() == ["a", "b"]
    assert store.evictions == 0
    store.sadd("s2", ["x"])
    with pytest.raises(TypeError):
        store.sadd("s2", [{"un": "hashable"}])
    assert store.smembers("s2") == {"x"}


# ------------------------------------------------------------------------- hashes


def test_hash_operations(store: MemoryStore) -> None:
    assert store.hset("h", {"a": 1, "b": 2}) == 2
    assert store.hset("h", {"b": 3, "c": 4}) == 1
    assert store.hget("h", "b") == 3
    assert store.hget("h", "zz") is MISSING
    assert store.hget("nope", "a") is MISSING
    assert store.hgetall("h") == {"a": 1, "b": 3, "c": 4}
    copy = store.hgetall("h")
    copy["new"] = 1
    assert store.hlen("h") == 3
    assert store.hexists("h", "a")
    assert not store.hexists("h", "zz")
    assert not store.hexists("nope", "a")
    assert store.hdel("h", ["a", "zz"]) == 1
    assert store.hdel("h", ["b", "c"]) == 2
    assert not store.exists("h")
    assert store.hlen("h") == 0
    assert store.hgetall("h") == {}
    assert store.hdel("h", ["a"]) == 0
    assert store.hset("h", {}) == 0
    assert not store.exists("h")


def test_hincrby(store: MemoryStore) -> None:
    assert store.hincrby("h", "n", 5) == 5
    assert store.hincrby("h", "n", -7) == -2
    store.hset("h", {"b": b"10", "s": "text"})
    assert store.hincrby("h", "b", 5) == 15
    assert store.hget("h", "b") == b"15"
    with pytest.raises(WrongType, match="'h'"):
        store.hincrby("h", "s", 1)
    assert store.hget("h", "s") == "text"
    store.hset("h", {"max": INT64_MAX})
    with pytest.raises(InvalidArgument, match="'h'"):
        store.hincrby("h", "max", 1)
    assert store.hget("h", "max") == INT64_MAX


def test_hincrby_overflow_on_missing_hash_leaves_nothing(store: MemoryStore) -> None:
    with pytest.raises(InvalidArgument):
        store.hincrby("h", "f", INT64_MAX + 1)
    assert not store.exists("h")
    assert store.keys() == []
    assert store.count() == 0


# -------------------------------------------------------------------- wrong types

WRONG_KIND: list[tuple[str, Callable[[MemoryStore], Any], Callable[[MemoryStore], Any]]] = [
    ("get-list", lambda s: s.push("the-key", [1], True), lambda s: s.get("the-key")),
    ("get-set", lambda s: s.sadd("the-key", [1]), lambda s: s.get("the-key")),
    ("get-hash", lambda s: s.hset("the-key", {"f": 1}), lambda s: s.get("the-key")),
    ("incr-list", lambda s: s.push("the-key", [1], True), lambda s: s.incr("the-key", 1)),
    ("incr-hash", lambda s: s.hset("the-key", {"f": 1}), lambda s: s.incr("the-key", 1)),
    ("lpush-plain", lambda s: s.set("the-key", 1, None), lambda s: s.push("the-key", [1], True)),
    ("rpush-set", lambda s: s.sadd("the-key", [1]), lambda s: s.push("the-key", [1], False)),
    ("lpop-plain", lambda s: s.set("the-key", 1, None), lambda s: s.pop("the-key", True)),
    ("llen-hash", lambda s: s.hset("the-key", {"f": 1}), lambda s: s.llen("the-key")),
    ("lrange-plain", lambda s: s.set("the-key", [1], None), lambda s: s.lrange("the-key", 0, -1)),
    ("sadd-plain", lambda s: s.set("the-key", {1}, None), lambda s: s.sadd("the-key", [1])),
    ("sadd-empty-list", lambda s: s.push("the-key", [1], True), lambda s: s.sadd("the-key", [])),
    ("srem-list", lambda s: s.push("the-key", [1], True), lambda s: s.srem("the-key", [1])),
    ("smembers-hash", lambda s: s.hset("the-key", {"f": 1}), lambda s: s.smembers("the-key")),
    ("hset-plain", lambda s: s.set("the-key", {"f": 1}, None), lambda s: s.hset("the-key", {"f": 2})),
    ("hset-empty-set", lambda s: s.sadd("the-key", [1]), lambda s: s.hset("the-key", {})),
    ("hget-list", lambda s: s.push("the-key", [1], True), lambda s: s.hget("the-key", "f")),
    ("hincrby-plain", lambda s: s.set("the-key", 1, None), lambda s: s.hincrby("the-key", "f", 1)),
    ("hincrby-set", lambda s: s.sadd("the-key", [1]), lambda s: s.hincrby("the-key", "f", 1)),
]


@pytest.mark.parametrize(("make", "op"), [pytest.param(m, o, id=n) for n, m, o in WRONG_KIND])
def test_wrong_type_names_the_key_and_changes_nothing(
    store: MemoryStore, make: Callable[[MemoryStore], Any], op: Callable[[MemoryStore], Any]
) -> None:
    make(store)
    before = store.keys()
    with pytest.raises(WrongType, match="'the-key'") as info:
        op(store)
    assert isinstance(info.value, TypeError)
    assert store.keys() == before
    assert store.exists("the-key")


# ------------------------------------------------------------------------ threads

THREADS = 8
OPS = 5000


def _run_threads(target: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def run(tid: int) -> None:
        try:
            barrier.wait()
            target(tid)
        except BaseException as exc:
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # many more interleavings per operation
    try:
        threads = [threading.Thread(target=run, args=(tid,)) for tid in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "a worker hung"
    finally:
        sys.setswitchinterval(old)
    return errors


def test_threads_keep_the_bound_on_a_bounded_store() -> None:
    limit = 48
    store = MemoryStore(max_entries=limit)
    observations: list[int] = []

    def work(tid: int) -> None:
        rng = random.Random(tid)
        seen: list[int] = []
        for i in range(OPS):
            n = rng.randrange(40)
            op = rng.randrange(7)
            if op == 0:
                store.set(f"v{n}", (tid, i), None)
            elif op == 1:
                value = store.get(f"v{n}")
                assert value is MISSING or (type(value) is tuple and len(value) == 2)
            elif op == 2:
                assert store.incr(f"c{n}", 1) >= 1
            elif op == 3:
                counter = store.get(f"c{n}")
                assert counter is MISSING or (type(counter) is int and counter >= 1)
            elif op == 4:
                store.delete(rng.choice("vcl") + str(n))
            elif op == 5:
                assert store.push(f"l{n}", [i], left=bool(i % 2)) >= 1
                assert all(type(x) is int for x in store.lrange(f"l{n}", 0, -1))
            else:
                seen.append(store.count())
                seen.append(len(store.keys()))
        observations.extend(seen)

    errors = _run_threads(work)
    assert errors == []
    assert observations
    assert max(observations) <= limit
    assert store.count() <= limit
    assert len(store.keys()) <= limit
    assert store.evictions > 0  # 120 distinct keys through 48 slots


def test_threads_lose_no_increments_on_an_unbounded_store() -> None:
    store = MemoryStore()
    burst = 1500  # back-to-back increments of one shared key: the likeliest lost update
    # Plans are drawn up front so that the threads spend their time inside the store.
    plans: dict[int, list[tuple[int, int, int]]] = {}
    for tid in range(THREADS):
        rng = random.Random(1000 + tid)
        plans[tid] = [(rng.randrange(6), rng.randint(1, 3), rng.randrange(20)) for _ in range(OPS - burst)]

    rounds = 15
    sync = threading.Barrier(THREADS)

    def work(tid: int) -> None:
        for _ in range(rounds):
            sync.wait(30)  # several starts in step: more chances for a racy incr to lose one
            for _ in range(burst // rounds):
                store.incr("shared", 1)
        own = f"thread:{tid}"
        for i, (op, amount, n) in enumerate(plans[tid]):
            if op == 0:
                store.incr(own, amount)
            elif op <= 2:
                store.incr("shared", 1)
            elif op == 3:
                store.set(f"noise:{n}", i, None)
            elif op == 4:
                store.delete(f"noise:{n}")
            else:
                store.push(f"list:{n % 4}", [i], left=True)

    errors = _run_threads(work)
    assert errors == []
    for tid in range(THREADS):
        assert store.get(f"thread:{tid}") == sum(amount for op, amount, _ in plans[tid] if op == 0)
    shared = THREADS * burst + sum(1 for plan in plans.values() for op, _, _ in plan if 1 <= op <= 2)
    assert store.get("shared") == shared
    pushed = sum(1 for plan in plans.values() for op, _, _ in plan if op == 5)
    assert sum(store.llen(f"list:{n}") for n in range(4)) == pushed
    assert store.evictions == 0


# --------------------------------------------------------------- fused get and read buffer


def _fused(store: MemoryStore, sample_every: int = 64, prefix: str = "") -> tuple[Any, Any, list[Any]]:
    from stratacache.core.hooks import Hooks
    from stratacache.core.stats import StatsRecorder

    stats = StatsRecorder()
    deferred: list[Any] = []

    def full_get(key: Any, default: Any) -> Any:
        deferred.append(key)
        if type(key) is not str:
            return default  # the facade raises InvalidKey here
        value = store.get(prefix + key)
        return default if value is MISSING else value

    get = store.fused_get(
        prefix=prefix, stats=stats, hooks=Hooks(), sample_every=sample_every, full_get=full_get
    )
    return get, stats, deferred


@pytest.mark.parametrize("policy", ["lru", "fifo", "random", "lfu", "tinylfu"])
def test_fused_get_serves_ttl_entries_and_never_returns_expired(policy: str, clock: FakeClock) -> None:
    store = MemoryStore(max_entries=10, policy=policy, clock=clock)
    get, stats, deferred = _fused(store)
    store.set("t", "v", 5)
    assert get("t") == "v"
    clock.advance(5)
    assert get("t", "gone") == "gone"
    assert deferred == []  # the fast path calls the store's one get, which drops the due entry
    assert store.counters().expirations == 1
    assert (stats.hits, stats.misses) == (1, 1)


def test_fused_get_extends_sliding_entries_and_leaves_errors_to_the_full_path(clock: FakeClock) -> None:
    store = MemoryStore(max_entries=10, expire_after_access=10, clock=clock)
    get, _, deferred = _fused(store)
    store.set("s", 1, None)
    clock.advance(6)
    assert get("s") == 1
    clock.advance(6)
    assert get("s") == 1  # the read 6 s ago extended it by its window
    assert deferred == []
    plain = MemoryStore(max_entries=10, clock=clock)
    get, _, deferred = _fused(plain)
    plain.push("l", [1], left=False)
    with pytest.raises(WrongType):
        get("l")
    assert deferred == ["l"]


def test_collections_without_ttl_report_no_expiry(store: MemoryStore) -> None:
    store.push("l", [1], left=False)
    store.sadd("s", ["a"])
    store.hset("h", {"f": 1})
    for key in ("l", "s", "h"):
        assert store.ttl(key) is None
        info = store.entry_info(key)
        assert info is not None
        assert info.expires is None
    assert store.expire("l", 5)
    assert store.ttl("l") == 5
    assert store.expire("l", None)
    assert store.ttl("l") is None
    assert store.keys() == ["l", "s", "h"]
    assert store.count() == 3


def test_fused_get_rejects_non_str_keys_through_the_full_path(store: MemoryStore) -> None:
    get, stats, deferred = _fused(store)
    store.set("k", 1, None)
    get(["unhashable"])
    get(5)
    assert deferred == [["unhashable"], 5]
    assert (stats.hits, stats.misses) == (0, 0)
    get, _, deferred = _fused(store, prefix="ns:")
    get(b"k")
    assert deferred == [b"k"]


@pytest.mark.parametrize("every", [1, 3, 4, 64])
def test_fused_get_times_one_call_in_sample_every(store: MemoryStore, every: int) -> None:
    get, stats, deferred = _fused(store, sample_every=every)
    store.set("k", 1, None)
    for _ in range(12):
        assert get("k") == 1
        assert get("absent") is None
    assert (stats.hits, stats.misses) == (12, 12)
    assert stats.get_latency.total == 2 * (12 // every)
    assert deferred == []


def test_buffered_hits_reach_lfu_before_it_evicts() -> None:
    store = MemoryStore(max_entries=3, policy="lfu")
    get, _, _ = _fused(store)
    for key in ("a", "b", "c"):
        store.set(key, key, None)
    for _ in range(3):
        get("a")
        get("c")
    store.set("d", "d", None)  # b has the lowest count: the buffered hits were replayed first
    assert sorted(store.keys()) == ["a", "c", "d"]


def test_read_buffer_skips_keys_removed_since_they_were_read() -> None:
    store = MemoryStore(max_entries=3, policy="tinylfu")
    get, _, _ = _fused(store)
    store.set("a", 1, None)
    get("a")
    store.delete("a")  # a buffered hit on a key that is gone must not reach the policy
    store.set("b", 2, None)
    assert store.get("b") == 2
    assert len(store._policy or ()) == 1


@pytest.mark.parametrize("every", [64, 100, 2**62])
def test_read_buffer_is_drained_by_hits_alone(every: int) -> None:
    from stratacache.core import memory_store

    store = MemoryStore(max_entries=10, policy="lfu")
    get, _, _ = _fused(store, sample_every=every)
    store.set("k", 1, None)
    store.set("j", 1, None)
    reads = store._reads
    assert reads is not None
    assert reads.maxlen == memory_store._READ_BUFFER  # bounded even if nothing drained it
    for _ in range(3 * memory_store._READ_BUFFER):
        get("k")
        assert len(reads) < memory_store._DRAIN_BATCH
    policy = store._policy
    assert isinstance(policy, LFUPolicy)
    assert policy.frequency("k") > policy.frequency("j")


def test_lru_and_fifo_keep_their_order_in_the_map() -> None:
    for policy in ("lru", "fifo"):
        store = MemoryStore(max_entries=3, policy=policy)
        for key in "abc":
            store.set(key, key, None)
        store.get("a")
        store.set("b", "B", None)  # an overwrite refreshes the key in both
        store.set("d", "d", None)
        expected = ["a", "b", "d"] if policy == "lru" else ["c", "b", "d"]
        assert store.keys() == expected, policy
        store.delete("a")
        store.set("e", "e", None)
        store.set("f", "f", None)
        assert len(store) == 3


@pytest.mark.parametrize("policy", ["lru", "fifo", "random", "lfu", "tinylfu"])
def test_fused_set_through_the_facade(policy: str, clock: FakeClock) -> None:
    import stratacache as sc

    cache = sc.Cache("memory", policy=policy, max_entries=4, latency_sample=4, clock=clock)
    store = cache.backend.store  # type: ignore[attr-defined]
    for i in range(10):
        cache.set(f"k{i}", i)
    assert len(store) == 4
    assert store.counters().evictions == 6
    stats = cache.stats()
    assert stats.sets == 10
    assert stats.set_latency.count == 2  # one write in four is timed by the full path
    cache.set("t", "v", ttl=5)
    assert cache.ttl("t") == 5
    first_version = store.entry_info("t").version  # type: ignore[union-attr]
    cache.set("t", "w")  # no ttl: the default (none) replaces the old one
    assert cache.ttl("t") is None
    info = store.entry_info("t")
    assert info is not None
    assert info.version > first_version  # the fused set is a write like any other
    seen: list[Any] = []
    cache.hooks.add("after_set", seen.append)
    cache.set("h", 1)
    assert len(seen) == 1
    cache.close()
    with pytest.raises(sc.CacheClosed):
        cache.set("x", 1)


def test_fused_set_counts_errors_through_the_full_path() -> None:
    import stratacache as sc

    cache = sc.Cache("memory", policy="lru", max_bytes=100)
    with pytest.raises(sc.ValueTooLarge):
        cache.set("big", "x" * 200)
    assert cache.stats().errors == 1
    cache.close()


def test_fused_set_after_a_resize_weighs_entries() -> None:
    import stratacache as sc

    cache = sc.Cache("memory", policy="lru", max_entries=10)
    store = cache.backend.store  # type: ignore[attr-defined]
    cache.set("a", "xx")
    store.resize(max_bytes=10_000)
    cache.set("b", "yyyy")
    assert store.pool_bytes == sum(memory_store.default_weigher(k, e.value) for k, e in store._data.items())
    cache.close()


def test_only_sliding_stores_pay_for_a_window_slot(clock: FakeClock) -> None:
    plain = MemoryStore(clock=clock)
    plain.set("k", 1, 5)
    plain.expire("k", 7)
    assert not hasattr(plain._data["k"], "__dict__")
    assert type(plain._data["k"]).__name__ == "_Entry"
    sliding = MemoryStore(clock=clock, expire_after_access=10)
    sliding.set("k", 1, None)
    sliding.set("t", 1, 3)  # its own ttl is its window
    sliding.push("l", [1], left=False)
    for _ in range(3):
        clock.advance(2)
        assert sliding.get("t") == 1
        assert sliding.llen("l") == 1
    assert sliding.ttl("t") == 3
    sliding.set("t", 2, None)  # rewritten without a ttl: the store's window
    assert sliding.ttl("t") == 10
    assert sliding.expire("k", 4)
    clock.advance(3)
    assert sliding.get("k") == 1
    assert sliding.ttl("k") == 4


# ------------------------------------------------- finalizers and re-entrance (deadlocks)


def _finishes(call: Callable[[], Any], timeout: float = 10.0) -> bool:
    """Run ``call`` in a daemon thread; False when it has not returned after ``timeout`` (a
    deadlock: the thread is left blocked, the test fails instead of hanging)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    if errors:
        raise errors[0]
    return not worker.is_alive()


class _UsesTheStoreWhenFreed:
    """A value whose finalizer writes to the store that held it."""

    def __init__(self, store: MemoryStore, freed: list[str]) -> None:
        self.store = store
        self.freed = freed

    def __del__(self) -> None:
        self.store.set("written-by-a-finalizer", 1, None)
        self.freed.append("freed")


@pytest.mark.parametrize("policy", ["lru", "fifo", "random", "lfu", "tinylfu", None])
@pytest.mark.parametrize("how", ["overwrite", "evict", "delete", "clear", "expire", "pattern", "many"])
def test_a_finalizer_that_uses_the_store_runs_after_the_lock_is_given_back(
    policy: str | None, how: str, clock: FakeClock
) -> None:
    limits: dict[str, Any] = {} if policy is None else {"max_entries": 3, "policy": policy}
    store = MemoryStore(clock=clock, **limits)
    freed: list[str] = []
    store.set("a", _UsesTheStoreWhenFreed(store, freed), 1 if how == "expire" else None)

    def drop() -> None:
        if how == "overwrite":
            store.set("a", 2, None)
        elif how == "evict":
            for i in range(200):
                if freed:
                    break
                for _ in range(3):  # warm (tinylfu admits a newcomer more popular than "a")
                    store.get(f"k{i}")
                store.set(f"k{i}", i, None)
        elif how == "delete":
            store.delete("a")
        elif how == "clear":
            store.clear()
        elif how == "expire":
            clock.advance(2)
            store.set("b", 2, None)  # a write reclaims due entries
        elif how == "pattern":
            store.delete_pattern("a*")
        else:
            store.set_many({"a": 3, "b": 4}, None)

    if how == "evict" and policy is None:
        pytest.skip("an unbounded store evicts nothing")
    assert _finishes(drop), f"deadlock: a finalizer ran under the store's lock ({how})"
    assert freed == ["freed"]
    assert store.get("written-by-a-finalizer") == 1


@pytest.mark.parametrize("asynchronous", [False, True])
def test_get_or_set_whose_factory_reenters_for_the_same_key_raises(asynchronous: bool) -> None:
    import asyncio

    from stratacache import AsyncCache, Cache

    if asynchronous:

        async def scenario() -> None:
            cache = AsyncCache("memory://")

            async def factory() -> int:
                return int(await cache.get_or_set("k", factory))

            with pytest.raises(InvalidArgument, match="called again by its own factory"):
                await cache.get_or_set("k", factory)
            assert await cache.get("k") is None  # nothing stored
            assert await cache.get_or_set("other", lambda: 5) == 5  # the group is usable
            await cache.close()

        assert _finishes(lambda: asyncio.run(scenario()))
        return
    cache = Cache("memory://")

    def factory() -> int:
        return int(cache.get_or_set("k", factory))

    def scenario() -> None:
        with pytest.raises(InvalidArgument, match="called again by its own factory"):
            cache.get_or_set("k", factory)
        assert cache.get("k") is None
        assert cache.get_or_set("k", lambda: 7) == 7  # a later call leads a new flight

    assert _finishes(scenario)
    cache.close()


# ------------------------------------------------------------- str subclass keys (defect 7)


@pytest.mark.parametrize("url", ["memory://", "memory://?namespace=ns", "file"])
def test_a_str_subclass_key_is_its_content_on_every_path(url: str, tmp_path: Any) -> None:
    import enum

    from stratacache import Cache

    class Color(str, enum.Enum):  # noqa: UP042 - the mixin whose __str__ is not its value
        RED = "red"

    class Loud(str):
        def __str__(self) -> str:
            return self.upper()

        def __hash__(self) -> int:
            raise TypeError("no hashing")

    cache = Cache(f"file://{tmp_path}" if url == "file" else url)
    try:
        cache.set(Color.RED, 1)
        assert cache.get("red") == 1
        assert cache.get(Color.RED) == 1
        assert cache.get_many([Color.RED]) == {Color.RED: 1}
        cache.set(Loud("quiet"), 2)
        assert cache.get("quiet") == 2
        assert cache.get(Loud("quiet")) == 2
        assert cache.delete(Loud("quiet"))
        assert cache.exists("red")
        assert cache.delete_pattern("r*") == 1
    finally:
        cache.close()


# ----------------------------------------------- collection writes and weighers (defect 7)

_COLLECTION_WRITES: dict[str, Callable[[MemoryStore, str], Any]] = {
    "lpush": lambda s, k: s.push(k, ["x" * 400], left=True),
    "rpush": lambda s, k: s.push(k, ["x" * 400], left=False),
    "sadd": lambda s, k: s.sadd(k, ["x" * 400]),
    "hset": lambda s, k: s.hset(k, {"f": "x" * 400}),
    "hincrby": lambda s, k: s.hincrby(k, "f" * 400, 1),
}


def _snapshot(store: MemoryStore) -> Any:
    return sorted((k, repr(store._data[k].value), store.entry_info(k)) for k in store.keys()), store._bytes  # noqa: SIM118 - the store, not a dict


@pytest.mark.parametrize("op", sorted(_COLLECTION_WRITES))
@pytest.mark.parametrize("weigher", ["default", "custom"])
@pytest.mark.parametrize("existing", [False, True])
def test_a_collection_write_past_max_bytes_raises_and_changes_nothing(
    op: str, weigher: str, existing: bool
) -> None:
    from stratacache import ValueTooLarge
    from stratacache.core.memory_store import default_weigher

    custom: Any = None if weigher == "default" else (lambda k, v: default_weigher(k, v) + 1)
    store = MemoryStore(max_bytes=300, policy="lru", weigher=custom)
    for i in range(3):
        store.set(f"plain{i}", "v", None)
    if existing:
        if op in ("lpush", "rpush"):
            store.push("c", ["a"], left=False)
        elif op == "sadd":
            store.sadd("c", ["a"])
        else:
            store.hset("c", {"a": 1})
    before, evictions = _snapshot(store), store.evictions
    with pytest.raises(ValueTooLarge, match="'c'"):
        _COLLECTION_WRITES[op](store, "c")
    assert _snapshot(store) == before  # nothing evicted, nothing written
    assert store.counters().rejected == 1
    assert store.evictions == evictions


@pytest.mark.parametrize("op", sorted(_COLLECTION_WRITES))
@pytest.mark.parametrize("bad", [-1, 2.5, "10", None, "raises"])
def test_weigher_results_are_checked_on_collection_writes(op: str, bad: Any) -> None:
    def weigher(key: str, value: Any) -> Any:
        if key != "c":
            return 1
        if bad == "raises":
            raise KeyError("boom")
        return bad

    store = MemoryStore(max_bytes=10_000, weigher=weigher)
    store.set("keep", "v", None)
    before = _snapshot(store)
    with pytest.raises(ConfigurationError, match="'c'"):
        _COLLECTION_WRITES[op](store, "c")
    assert _snapshot(store) == before


@pytest.mark.parametrize("way", ["set", "set_many", "incr"])
def test_a_raising_weigher_gives_a_cache_error_naming_the_key_and_loses_nothing(way: str) -> None:
    from stratacache.core.pool import MemoryPool

    def weigher(key: str, value: Any) -> int:
        if key == "bad":
            raise RuntimeError("weigher failed")
        return 1

    # A pool (no max_bytes) weighs too: set_many must weigh every item before storing any.
    store = MemoryStore(weigher=weigher, pool=MemoryPool(10_000))
    store.set("good", 1, None)
    if way == "incr":
        with pytest.raises(ConfigurationError, match="'bad'"):
            store.incr("bad", 1)
    elif way == "set":
        with pytest.raises(ConfigurationError, match="'bad'"):
            store.set("bad", 1, None)
    else:
        with pytest.raises(ConfigurationError, match="'bad'"):
            store.set_many({"a": 1, "bad": 2}, None)
    assert store.keys() == ["good"]
    assert store.get("good") == 1


class _Grows:
    """A value its owner changes in place, weighing what it holds."""

    def __init__(self) -> None:
        self.items: list[int] = []


def _grows_weigher(key: str, value: Any) -> int:
    return 10 + 10 * len(value.items) if isinstance(value, _Grows) else 10


def test_reweigh_counts_an_in_place_change_and_evicts_to_stay_within_max_bytes() -> None:
    store = MemoryStore(max_bytes=100, policy="lru", weigher=_grows_weigher)
    store.set("old", 1, None)
    grows = _Grows()
    store.set("g", grows, None)
    assert store.pool_bytes == 20
    before = store.entry_info("g").version  # type: ignore[union-attr]
    grows.items.extend(range(8))  # now weighs 90: with "old" (10) the store holds 100
    assert store.reweigh("g") is True
    assert store.pool_bytes == 100
    assert store.entry_info("g").version > before  # type: ignore[union-attr]
    grows.items.append(8)  # 100 on its own: "old", the least recently used, must go
    assert store.reweigh("g") is True
    assert store.get("old") is MISSING
    assert store.pool_bytes == 100


def test_reweigh_of_an_absent_key_is_false_and_a_bad_weight_changes_nothing() -> None:
    store = MemoryStore(max_bytes=100, weigher=_grows_weigher)
    assert store.reweigh("nope") is False
    grows = _Grows()
    store.set("g", grows, None)
    grows.items.extend(range(50))  # 510 bytes: more than max_bytes
    with pytest.raises(ValueTooLarge):
        store.reweigh("g")
    assert store.pool_bytes == 10  # the recorded weight is unchanged


def test_absolute_deadlines_are_kept_exactly(clock: FakeClock) -> None:
    # The server's store runs on the wall clock; a deadline turned into a ttl and back
    # drifted by whatever ran between the two clock readings (8 ms seen on a loaded CI).
    store = MemoryStore(clock=clock)
    deadline = clock() + 12.345678
    store.set_until("k", b"v", deadline)
    info = store.entry_info("k")
    assert info is not None
    assert info.expires == deadline
    clock.advance(3)
    assert store.expire_until("k", deadline + 1) is True
    info = store.entry_info("k")
    assert info is not None
    assert info.expires == deadline + 1
    assert store.expire_until("absent", deadline) is False
    clock.advance(10)  # 13 s in: alive until 13.345678
    assert store.get("k") == b"v"
    clock.advance(0.5)
    assert store.get("k") is MISSING
