"""Eviction policies: each policy's order, weights, resize and bookkeeping, plus the registry.

The per-policy orders are checked exactly where the policy is deterministic (lru, fifo, lfu);
TinyLFU is checked through its observable behaviour (scan resistance, admission, the sketch
and the hill climber) on small synthetic workloads with fixed seeds. A hypothesis state
machine per policy drives random insert/access/update/remove/evict/resize/clear sequences
and checks ``len``/``weight`` against a model of the tracked keys.
"""

from __future__ import annotations

import random
import types
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Iterator
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from stratacache import ConfigurationError
from stratacache._exceptions import InvalidArgument
from stratacache.core.policies import (
    POLICIES,
    FIFOPolicy,
    FrequencySketch,
    LFUPolicy,
    LRUPolicy,
    Policy,
    RandomPolicy,
    TinyLFUPolicy,
    make_policy,
    register_policy,
)

NAMES = ["lru", "lfu", "fifo", "random", "tinylfu"]
# Deterministic constructions: random victims and TinyLFU's coin and hash salt are seeded.
KWARGS: dict[str, dict[str, Any]] = {"random": {"seed": 7}, "tinylfu": {"seed": 7}}


def new(name: str, capacity: int, **kwargs: Any) -> Policy:
    return make_policy(name, capacity, **{**KWARGS.get(name, {}), **kwargs})


def drain(policy: Policy) -> list[Hashable]:
    """Evict everything, in eviction order."""
    return [policy.evict() for _ in range(len(policy))]


def replay(policy: Policy, keys: Iterable[Hashable], size: int) -> float:
    """Drive ``policy`` as a store would: get; on a miss, set; evict while over ``size``."""
    resident: set[Hashable] = set()
    hits = requests = 0
    for key in keys:
        requests += 1
        if key in resident:
            hits += 1
            policy.on_access(key)
        else:
            policy.record_miss(key)
            policy.on_insert(key)
            resident.add(key)
            while len(resident) > size:
                resident.remove(policy.evict())
    return hits / requests


# -- registry ----------------------------------------------------------------------------


@pytest.fixture
def registry() -> Iterator[dict[str, type[Policy]]]:
    """The registry, restored afterwards so no test leaks a registration into another."""
    saved = dict(POLICIES)
    yield POLICIES
    POLICIES.clear()
    POLICIES.update(saved)


def test_builtin_policies_are_registered() -> None:
    assert sorted(POLICIES) == sorted(NAMES)
    for name, cls in POLICIES.items():
        assert cls.name == name
        assert isinstance(make_policy(name, 3), cls)


def test_unknown_policy_names_the_value_and_the_valid_names() -> None:
    with pytest.raises(ConfigurationError) as info:
        make_policy("lruu", 10)
    message = str(info.value)
    assert "'lruu'" in message
    for name in NAMES:
        assert name in message


@pytest.mark.parametrize("capacity", [0, -1, 1.5, "10", None, True])
def test_bad_capacity_is_a_configuration_error(capacity: Any) -> None:
    with pytest.raises(ConfigurationError, match="capacity"):
        make_policy("lru", capacity)


@pytest.mark.parametrize("name", NAMES)
def test_resize_validates_capacity(name: str) -> None:
    policy = new(name, 4)
    with pytest.raises(ConfigurationError):
        policy.resize(0)
    assert policy.capacity == 4


def test_unknown_keyword_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="lru"):
        make_policy("lru", 10, seed=1)


def test_register_policy_plugs_in_a_user_class(registry: dict[str, type[Policy]]) -> None:
    class MRUPolicy(LRUPolicy):
        name = "mru"

        def evict(self) -> Hashable:
            key, weight = self._order.popitem(last=True)
            self.weight -= weight
            return key

    register_policy("mru", MRUPolicy)
    policy = make_policy("mru", 2)
    assert isinstance(policy, MRUPolicy)
    for key in "abc":
        policy.on_insert(key)
    assert policy.evict() == "c"
    # Registering the same class again is harmless; another class needs replace=True.
    register_policy("mru", MRUPolicy)
    with pytest.raises(ConfigurationError, match="already registered"):
        register_policy("lru", MRUPolicy)
    register_policy("lru", MRUPolicy, replace=True)
    assert registry["lru"] is MRUPolicy


@pytest.mark.parametrize("cls", [dict, object, "lru", LRUPolicy(3)])
def test_register_policy_refuses_non_policies(registry: dict[str, type[Policy]], cls: Any) -> None:
    with pytest.raises(ConfigurationError, match="not a subclass"):
        register_policy("bad", cls)
    assert "bad" not in registry


def test_register_policy_refuses_empty_name(registry: dict[str, type[Policy]]) -> None:
    with pytest.raises(ConfigurationError, match="name"):
        register_policy("", LRUPolicy)


# -- behaviour common to every policy ------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_evict_on_empty_raises_key_error(name: str) -> None:
    policy = new(name, 3)
    with pytest.raises(KeyError):
        policy.evict()
    policy.on_insert("a")
    assert policy.evict() == "a"
    with pytest.raises(KeyError):
        policy.evict()


@pytest.mark.parametrize("name", NAMES)
def test_on_remove_of_unknown_key_is_ignored(name: str) -> None:
    policy = new(name, 3)
    policy.on_insert("a", 2)
    policy.on_remove("zzz")
    assert len(policy) == 1
    assert policy.weight == 2
    policy.on_remove("a")
    policy.on_remove("a")
    assert len(policy) == 0
    assert policy.weight == 0


@pytest.mark.parametrize("name", NAMES)
def test_clear_forgets_every_key(name: str) -> None:
    policy = new(name, 5)
    for key in "abcd":
        policy.on_insert(key, 2)
    policy.on_access("a")
    policy.clear()
    assert len(policy) == 0
    assert policy.weight == 0
    assert policy.capacity == 5
    with pytest.raises(KeyError):
        policy.evict()
    policy.on_insert("a")  # a cleared key is new again
    assert policy.evict() == "a"


@pytest.mark.parametrize("name", NAMES)
def test_weights_are_tracked(name: str) -> None:
    policy = new(name, 100)
    policy.on_insert("a", 10)
    policy.on_insert("b", 25)
    policy.on_insert("c")
    assert policy.weight == 36
    policy.on_update("b", 5)
    assert policy.weight == 16
    policy.on_remove("a")
    assert policy.weight == 6
    victims = drain(policy)
    assert sorted(victims) == ["b", "c"]
    assert policy.weight == 0


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("weight", [-1, 1.5, "2", True])
def test_bad_weight_is_refused(name: str, weight: Any) -> None:
    policy = new(name, 10)
    with pytest.raises(InvalidArgument):
        policy.on_insert("a", weight)
    policy.on_insert("b", 3)
    with pytest.raises(InvalidArgument):
        policy.on_update("b", weight)
    assert policy.weight == 3


@pytest.mark.parametrize("name", NAMES)
def test_store_loop_keeps_weight_within_capacity(name: str) -> None:
    """Driven like the store: insert, then evict while over capacity; weights vary."""
    policy = new(name, 50)
    rng = random.Random(1)
    resident: dict[int, int] = {}
    for step in range(3000):
        key = rng.randrange(200)
        if key in resident:
            if step % 5 == 0:
                resident[key] = rng.randint(1, 9)
                policy.on_update(key, resident[key])
            else:
                policy.on_access(key)
        else:
            policy.record_miss(key)
            resident[key] = rng.randint(1, 9)
            policy.on_insert(key, resident[key])
        while policy.weight > policy.capacity:
            victim = policy.evict()
            del resident[victim]  # type: ignore[arg-type]
        assert policy.weight == sum(resident.values()) <= 50
        assert len(policy) == len(resident)


@pytest.mark.parametrize("name", NAMES)
def test_resize_shrinks(name: str) -> None:
    policy = new(name, 20)
    for key in range(20):
        policy.on_insert(key)
    policy.resize(5)
    assert policy.capacity == 5
    victims = set()
    while policy.weight > policy.capacity:
        victims.add(policy.evict())
    assert len(victims) == 15
    assert len(policy) == 5
    # The survivors are exactly the keys that were not evicted.
    assert set(drain(policy)) == set(range(20)) - victims


@pytest.mark.parametrize("name", NAMES)
def test_tracks_access_flag(name: str) -> None:
    expected = name not in ("fifo", "random")
    assert POLICIES[name].tracks_access is expected


# -- lru ---------------------------------------------------------------------------------


def test_lru_exact_order() -> None:
    policy = LRUPolicy(10)
    for key in "abcde":
        policy.on_insert(key)
    policy.on_access("a")
    policy.on_access("c")
    policy.on_update("b", 1)
    # least recent first: d, e (untouched, in insertion order), then a, c, b by last use
    assert drain(policy) == ["d", "e", "a", "c", "b"]


def test_lru_on_access_is_the_bound_c_method() -> None:
    policy = LRUPolicy(3)
    # No Python frame per hit: on_access is OrderedDict.move_to_end bound to the order.
    assert isinstance(policy.on_access, types.BuiltinMethodType)
    assert policy.on_access.__name__ == "move_to_end"
    other = LRUPolicy(3)
    assert other.on_access.__self__ is not policy.on_access.__self__


def test_lru_resize_evicts_least_recent() -> None:
    policy = LRUPolicy(4)
    for key in "abcd":
        policy.on_insert(key)
    policy.on_access("a")
    policy.resize(2)
    victims = []
    while policy.weight > policy.capacity:
        victims.append(policy.evict())
    assert victims == ["b", "c"]


def test_lru_weighted_eviction_frees_enough() -> None:
    policy = LRUPolicy(10)
    policy.on_insert("big", 8)
    policy.on_insert("s1", 1)
    policy.on_insert("s2", 1)
    policy.on_insert("new", 5)  # weight 15 > 10: the least recent go until it fits
    victims = []
    while policy.weight > policy.capacity:
        victims.append(policy.evict())
    assert victims == ["big"]
    assert policy.weight == 7


# -- fifo --------------------------------------------------------------------------------


def test_fifo_exact_order_ignores_hits() -> None:
    policy = FIFOPolicy(10)
    for key in "abcd":
        policy.on_insert(key)
    policy.on_access("a")
    policy.on_access("b")
    assert drain(policy) == ["a", "b", "c", "d"]


def test_fifo_overwrite_requeues() -> None:
    policy = FIFOPolicy(10)
    for key in "abc":
        policy.on_insert(key)
    policy.on_update("a", 2)
    assert drain(policy) == ["b", "c", "a"]


# -- random ------------------------------------------------------------------------------


def test_random_evicts_only_tracked_keys() -> None:
    policy = RandomPolicy(10, seed=3)
    keys = set(range(50))
    for key in keys:
        policy.on_insert(key)
    for key in range(0, 50, 3):
        policy.on_remove(key)
        keys.discard(key)
    victims = drain(policy)
    assert sorted(victims) == sorted(keys)
    # Not simply insertion order: the victims are random.
    assert victims != sorted(keys)


def test_random_is_reproducible_with_a_seed_and_varies_without() -> None:
    def victims(seed: int) -> list[Hashable]:
        policy = RandomPolicy(10, seed=seed)
        for key in range(30):
            policy.on_insert(key)
        return [policy.evict() for _ in range(10)]

    assert victims(1) == victims(1)
    assert victims(1) != victims(2)


def test_random_picks_every_position_but_the_newest() -> None:
    counts = dict.fromkeys(range(5), 0)
    policy = RandomPolicy(5, seed=11)
    for _ in range(2000):
        for key in range(5):
            policy.on_insert(key)
        counts[policy.evict()] += 1  # type: ignore[index]
        policy.clear()
    assert counts[4] == 0  # the key written last is never the victim
    assert min(counts[key] for key in range(4)) > 400  # uniform over the others: ~500 each


def test_random_never_evicts_the_key_just_inserted() -> None:
    policy = RandomPolicy(3)
    for key in range(1000):
        policy.on_insert(key)
        while len(policy) > 3:
            assert policy.evict() != key
    lonely = RandomPolicy(1)
    lonely.on_insert("only")
    assert lonely.evict() == "only"  # the only key can still go


# -- lfu ---------------------------------------------------------------------------------


def test_lfu_evicts_least_frequent_ties_by_recency() -> None:
    policy = LFUPolicy(10)
    for key in "abcde":
        policy.on_insert(key)
    for key, hits in {"a": 3, "b": 1, "c": 1, "e": 2}.items():
        for _ in range(hits):
            policy.on_access(key)
    # counts: a=4, b=2, c=2, d=1, e=3; among b and c (tie) b was used least recently
    assert [policy.frequency(k) for k in "abcde"] == [4, 2, 2, 1, 3]
    assert drain(policy) == ["d", "b", "c", "e", "a"]


def test_lfu_ties_among_new_keys_go_in_insertion_order() -> None:
    policy = LFUPolicy(10)
    for key in "xyz":
        policy.on_insert(key)
    policy.on_update("x", 1)  # an overwrite is an access
    assert drain(policy) == ["y", "z", "x"]


def test_lfu_on_remove_keeps_order_of_others() -> None:
    policy = LFUPolicy(10)
    for key in "abc":
        policy.on_insert(key)
    policy.on_access("a")
    policy.on_remove("b")
    assert drain(policy) == ["c", "a"]


def test_lfu_aging_halves_counts() -> None:
    policy = LFUPolicy(4, sample_size=20)
    policy.on_insert("a")  # op 1
    for _ in range(10):  # ops 2-11: a reaches 11
        policy.on_access("a")
    policy.on_insert("b")  # op 12
    for _ in range(3):  # ops 13-15: b reaches 4
        policy.on_access("b")
    assert (policy.frequency("a"), policy.frequency("b")) == (11, 4)
    for _ in range(5):  # ops 16-20: the 20th operation ages everything
        policy.on_access("b")
    # b reached 9 then was halved with a: ceil(11/2) = 6, ceil(9/2) = 5
    assert (policy.frequency("a"), policy.frequency("b")) == (6, 5)
    assert drain(policy) == ["b", "a"]


def test_lfu_aging_merges_buckets_in_order() -> None:
    policy = LFUPolicy(10, sample_size=1000)
    for key in "abcd":
        policy.on_insert(key)
    policy.on_access("b")  # b=2
    policy.on_access("d")
    policy.on_access("d")  # d=3
    policy.on_access("c")
    policy.on_access("c")
    policy.on_access("c")  # c=4
    policy._age()  # a=1 b=1 (from 1, 2), d=2 c=2 (from 3, 4)
    assert [policy.frequency(k) for k in "abcd"] == [1, 1, 2, 2]
    # Within a merged count the keys of the lower old count go first.
    assert drain(policy) == ["a", "b", "d", "c"]


class _LFUModel:
    """LFU with aging as plain lists: count -> keys, least recent first (O(n), obviously right)."""

    def __init__(self) -> None:
        self.buckets: dict[int, list[Hashable]] = {}
        self.count: dict[Hashable, int] = {}

    def _move(self, key: Hashable, count: int) -> None:
        old = self.count.get(key)
        if old is not None:
            self.buckets[old].remove(key)
        self.buckets.setdefault(count, []).append(key)
        self.count[key] = count

    def insert(self, key: Hashable) -> None:
        self._move(key, 1)

    def access(self, key: Hashable) -> None:
        self._move(key, self.count[key] + 1)

    def remove(self, key: Hashable) -> None:
        self.buckets[self.count.pop(key)].remove(key)

    def evict(self) -> Hashable:
        low = min(c for c, keys in self.buckets.items() if keys)
        key = self.buckets[low][0]
        self.remove(key)
        return key

    def age(self) -> None:
        # Merged buckets keep the keys of the lower old count first.
        aged: dict[int, list[Hashable]] = {}
        for count in sorted(self.buckets):
            for key in self.buckets[count]:
                aged.setdefault((count + 1) >> 1, []).append(key)
                self.count[key] = (count + 1) >> 1
        self.buckets = aged


@pytest.mark.parametrize("seed", range(6))
def test_lfu_matches_a_list_model_through_aging(seed: int) -> None:
    # Skewed and uniform phases make merges of a small bucket into a large one and of a large
    # one into a small one; removes empty buckets in the middle of the list.
    rng = random.Random(seed)
    sample = rng.choice((7, 23, 50))
    policy, model = LFUPolicy(40, sample_size=sample), _LFUModel()
    ops = 0
    for step in range(3000):
        skew = (step // 500) % 2 == 0
        key = min(int(rng.paretovariate(1.1)), 60) if skew else rng.randrange(60)
        action = rng.random()
        if key in model.count:
            if action < 0.1:
                policy.on_remove(key)
                model.remove(key)
                continue
            if action < 0.2:
                policy.on_update(key, 1)
            else:
                policy.on_access(key)
            model.access(key)
        else:
            policy.on_insert(key)
            model.insert(key)
        ops += 1
        if ops == sample:  # the policy aged inside the call that ended the epoch
            ops = 0
            model.age()
        if len(model.count) > 40:
            assert policy.evict() == model.evict()
        assert len(policy) == len(model.count)
    assert {k: policy.frequency(k) for k in model.count} == model.count
    assert drain(policy) == [model.evict() for _ in range(len(model.count))]


def _hot_set_survives(policy: LFUPolicy) -> set[Hashable]:
    """Make a, b very hot, then run a new hot set c, d long enough for several epochs while
    cold keys churn through the remaining slots; return which hot keys are still tracked."""
    size = 4
    resident: set[Hashable] = set()

    def request(key: Hashable) -> None:
        if key in resident:
            policy.on_access(key)
            return
        policy.on_insert(key)
        resident.add(key)
        while len(resident) > size:
            resident.remove(policy.evict())

    for _ in range(200):
        request("a")
        request("b")
    for i in range(400):
        request("c")
        request("d")
        request(f"cold{i}")
        request(f"cold{i}")
    return resident & {"a", "b", "c", "d"}


def test_lfu_aging_lets_a_new_hot_set_displace_an_old_one() -> None:
    # With aging the old counts halve away and the new hot pair takes over ...
    assert _hot_set_survives(LFUPolicy(4)) == {"c", "d"}
    # ... without it (an epoch longer than the run) the once-popular pair stays forever.
    assert _hot_set_survives(LFUPolicy(4, sample_size=10**9)) == {"a", "b"}


def test_lfu_bad_sample_size() -> None:
    with pytest.raises(ConfigurationError, match="sample_size"):
        LFUPolicy(4, sample_size=0)


def test_lfu_weighted_epoch_follows_entries() -> None:
    policy = LFUPolicy(10**9)  # capacity in bytes: 10 x capacity would never age
    policy.on_insert("a", 500)
    assert policy._sample == 10 * 16


# -- tinylfu: the sketch -------------------------------------------------------------------


def test_sketch_counts_saturate_at_15() -> None:
    sketch = FrequencySketch(1000, salt=1)
    for _ in range(5):
        sketch.increment("k")
    assert sketch.frequency("k") == 5
    for _ in range(30):
        sketch.increment("k")
    assert sketch.frequency("k") == 15
    assert sketch.frequency("other") == 0


def test_sketch_halves_on_reset() -> None:
    sketch = FrequencySketch(100, salt=2)
    for _ in range(10):
        sketch.increment("a")
    for _ in range(7):
        sketch.increment("b")
    sketch.reset()
    assert (sketch.frequency("a"), sketch.frequency("b")) == (5, 3)


def test_sketch_halves_itself_after_sample_size_increments() -> None:
    sketch = FrequencySketch(8, salt=3)
    assert sketch.sample_size == 80
    for _ in range(12):
        sketch.increment("hot")
    # 67 more increments over a few keys (many distinct keys would collide with "hot").
    for i in range(67):
        sketch.increment(i % 13)
    assert sketch.frequency("hot") == 12  # 79 increments: not yet
    sketch.increment("x")
    assert sketch.frequency("hot") == 6
    assert sketch.size < 80 // 2 + 1


def test_sketch_estimates_are_never_low_and_rarely_high() -> None:
    sketch = FrequencySketch(1000, salt=4)
    rng = random.Random(4)
    truth = {key: rng.randint(0, 12) for key in range(1000)}
    for key, count in truth.items():
        for _ in range(count):
            sketch.increment(key)
    wrong = sum(sketch.frequency(key) != count for key, count in truth.items())
    assert all(sketch.frequency(key) >= count for key, count in truth.items())
    assert wrong < 20


def test_sketch_grows_and_forgets() -> None:
    sketch = FrequencySketch(10)
    sketch.increment("a")
    width = sketch.width
    sketch.ensure_capacity(5)  # smaller: nothing changes
    assert sketch.frequency("a") == 1
    sketch.ensure_capacity(1000)
    assert sketch.width > width
    assert sketch.frequency("a") == 0


# -- tinylfu: the policy -------------------------------------------------------------------


def _request(policy: Policy, key: Hashable, weight: int = 1) -> list[Hashable]:
    """A store's miss: count it, insert, evict while over capacity; returns the victims."""
    policy.record_miss(key)
    policy.on_insert(key, weight)
    victims = []
    while policy.weight > policy.capacity:
        victims.append(policy.evict())
    return victims


def test_tinylfu_rejects_cold_candidates() -> None:
    # Int keys: hash(int) does not vary with PYTHONHASHSEED, so the sketch's collisions (and
    # with them this test) are the same in every run.
    policy = TinyLFUPolicy(10, seed=1, adaptive=False)
    assert policy.window_capacity == 1
    hot = list(range(10))
    for key in hot:
        _request(policy, key)
        for _ in range(3):
            policy.on_access(key)
    _request(policy, 1000)  # pushes 9 out of the window; ties go to the incumbent
    for i in range(1, 20):
        # Each cold key leaves the window as a candidate at the next insert and loses to
        # probation's (hot) victim: the policy evicts the key it was just given.
        assert _request(policy, 1000 + i) == [1000 + i - 1]
    assert set(hot[:9]) <= {k for k in hot if policy.region(k) is not None}


def test_tinylfu_admits_a_more_frequent_candidate() -> None:
    policy = TinyLFUPolicy(10, seed=1, adaptive=False)
    for i in range(10):
        _request(policy, f"k{i}")
    for _ in range(4):
        policy.record_miss("hot")  # misses count too (Caffeine counts every access)
    assert _request(policy, "hot") == ["k9"]  # k9 (seen once) was the candidate: rejected
    assert policy.frequency("hot") == 5
    assert _request(policy, "pad") == ["k0"]  # now "hot" is the candidate: it wins
    assert policy.region("hot") == "probation"


def test_tinylfu_scan_does_not_flush_the_hot_set() -> None:
    size = 100
    hot = [f"hot{i}" for i in range(50)]
    warmup = hot * 10
    scan = [f"scan{i}" for i in range(5000)]  # a loop 50x larger than the cache, seen once

    def survivors(policy: Policy) -> int:
        resident: set[Hashable] = set()
        for key in warmup + scan:
            if key in resident:
                policy.on_access(key)
                continue
            policy.record_miss(key)
            policy.on_insert(key)
            resident.add(key)
            while len(resident) > size:
                resident.remove(policy.evict())
        return len(resident & set(hot))

    assert survivors(TinyLFUPolicy(size, seed=5)) >= 48
    assert survivors(LRUPolicy(size)) == 0  # the same scan flushes LRU completely


def test_tinylfu_probation_hit_promotes_and_protected_overflow_demotes() -> None:
    policy = TinyLFUPolicy(100, seed=1, adaptive=False)
    for key in range(100):
        policy.on_insert(key)
    assert policy.window_capacity == 1
    assert policy.protected_capacity == 79
    assert policy.region(99) == "window"
    assert policy.region(0) == "probation"
    for key in range(80):
        policy.on_access(key)
    # 80 promotions into a protected segment of 79: the least recent one was demoted.
    assert policy.region(0) == "probation"
    assert all(policy.region(key) == "protected" for key in range(1, 80))


def test_tinylfu_set_without_get_is_counted_once_after_a_miss() -> None:
    policy = TinyLFUPolicy(10, seed=1)
    policy.record_miss("a")
    policy.on_insert("a")
    assert policy.frequency("a") == 1  # not twice
    policy.on_insert("b")  # no record_miss first: counted by on_insert
    assert policy.frequency("b") == 1


def test_tinylfu_heavy_candidate_is_evicted_at_once() -> None:
    policy = TinyLFUPolicy(10, seed=1)
    _request(policy, "a", 3)
    for _ in range(10):
        policy.record_miss("huge")  # however popular: it can never fit
    # Heavier than the window, it enters at the window's old end and is the candidate at once.
    assert _request(policy, "huge", 11) == ["huge"]
    assert policy.weight == 3


def test_tinylfu_weighted_regions() -> None:
    policy = TinyLFUPolicy(1000, seed=2, adaptive=False)
    assert policy.window_capacity == 10
    for key in range(20):
        policy.on_insert(key, 10)
    # Only the newest fits the window (10 of weight); the rest spilled to probation.
    assert policy.region(19) == "window"
    assert all(policy.region(key) == "probation" for key in range(19))
    assert policy.weight == 200


def _flood_trial(seed: int, candidate_misses: int) -> bool:
    """Four victims as hot as the sketch can say, then a candidate with ``candidate_misses``
    counts: is the candidate admitted?"""
    policy = TinyLFUPolicy(4, seed=seed, adaptive=False)
    policy.sketch.sample_size = 1 << 30  # no halving during the trial (4 x 15 counts > 10 x 4)
    for key in ("v", "w", "x", "y"):
        for _ in range(15):
            policy.record_miss(key)
        _request(policy, key)
    for _ in range(candidate_misses - 1):
        policy.record_miss("c")
    _request(policy, "c")
    return _request(policy, "z") != ["c"]  # "z" pushes "c" out of the window


def test_tinylfu_hash_flooding_random_admission() -> None:
    """A warm candidate that never beats the victim is still admitted about 1 time in 128."""
    admitted = sum(_flood_trial(seed, candidate_misses=7) for seed in range(1000))
    assert 1 <= admitted <= 30  # expected ~8


def test_tinylfu_cold_candidate_is_never_randomly_admitted() -> None:
    assert not any(_flood_trial(seed, candidate_misses=5) for seed in range(300))


def _recency_trace(n: int, rng: random.Random) -> list[int]:
    """Half brand-new keys, half re-references to a key seen 1-120 requests ago."""
    out: list[int] = []
    fresh = 0
    for _ in range(n):
        if not out or rng.random() < 0.5:
            out.append(fresh)
            fresh += 1
        else:
            out.append(out[-rng.randint(1, min(120, len(out)))])
    return out


def _frequency_trace(n: int, rng: random.Random) -> list[int]:
    """60% of requests to a hot set of 90 keys, the rest to keys never seen again."""
    cold = 10**6
    out = []
    for _ in range(n):
        if rng.random() < 0.6:
            out.append(rng.randrange(90))
        else:
            out.append(cold)
            cold += 1
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tinylfu_climber_grows_window_for_recency(seed: int) -> None:
    policy = TinyLFUPolicy(100, seed=seed)
    assert policy.window_capacity == 1
    replay(policy, _recency_trace(30_000, random.Random(seed)), 100)
    assert policy.window_capacity > 25
    frozen = TinyLFUPolicy(100, seed=seed, adaptive=False)
    replay(frozen, _recency_trace(30_000, random.Random(seed)), 100)
    assert frozen.window_capacity == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tinylfu_climber_shrinks_window_for_frequency(seed: int) -> None:
    policy = TinyLFUPolicy(100, seed=seed, window=0.5)
    assert policy.window_capacity == 50
    replay(policy, _frequency_trace(30_000, random.Random(seed)), 100)
    assert policy.window_capacity < 25


def test_tinylfu_ghosts_remember_evictions_by_side() -> None:
    policy = TinyLFUPolicy(10, seed=1, adaptive=False)
    hot = [f"k{i}" for i in range(10)]
    for key in hot:
        _request(policy, key)
        for _ in range(3):
            policy.on_access(key)
    _request(policy, "cold0")
    assert _request(policy, "cold1") == ["cold0"]  # a candidate lost admission...
    assert "cold0" in policy._window_ghost  # ...so it is a window-side ghost
    for _ in range(8):
        policy.record_miss("warm")
    _request(policy, "warm")
    victims = _request(policy, "cold2")  # "warm" leaves the window and beats the victim
    assert victims
    assert victims[0] != "warm"
    assert victims[0] in policy._main_ghost
    # A miss on a ghost is counted for its side and forgets it.
    _request(policy, "cold0")
    assert policy._window_ghost_hits == 1
    assert "cold0" not in policy._window_ghost
    _request(policy, victims[0])
    assert policy._main_ghost_hits == 1
    assert victims[0] not in policy._main_ghost
    policy.clear()
    assert not policy._window_ghost
    assert not policy._main_ghost


def test_tinylfu_ghosts_are_bounded() -> None:
    policy = TinyLFUPolicy(1000, seed=1, adaptive=False)
    for key in range(20_000):
        _request(policy, key)
    # 6.25% of the keys held (the climber's first step), and never below 8.
    assert len(policy._window_ghost) <= int(0.0625 * len(policy))
    assert len(policy._main_ghost) <= int(0.0625 * len(policy))
    small = TinyLFUPolicy(10, seed=1, adaptive=False)
    for key in range(1000):
        _request(small, key)
    assert len(small._window_ghost) <= 8


def test_tinylfu_climber_follows_the_ghost_hits() -> None:
    policy = TinyLFUPolicy(1000, seed=1, window=0.5)
    for key in range(1000):
        policy.on_insert(key)
    start = policy.window_capacity
    policy._window_ghost_hits = 5
    policy._main_ghost_hits = 1
    policy._climb()
    assert policy.window_capacity > start  # the window side would have hit more: grow it
    grown = policy.window_capacity
    policy._window_ghost_hits = 0
    policy._main_ghost_hits = 3
    policy._climb()
    assert policy.window_capacity < grown  # now main would have: shrink the window
    shrunk = policy.window_capacity
    policy._climb()  # no ghost hits either way: hold
    assert policy.window_capacity == shrunk


def test_tinylfu_climber_step_follows_the_size_of_the_ghost_lead() -> None:
    # The step is scaled by 2 x (window - main) / (window + main), clamped to one full step.
    moves = []
    for window_hits, main_hits in ((2, 1), (3, 1), (30, 1), (1, 2)):
        policy = TinyLFUPolicy(1000, seed=1, window=0.5)
        for key in range(1000):
            policy.on_insert(key)
        start, step = policy.window_capacity, abs(policy._step)
        policy._window_ghost_hits, policy._main_ghost_hits = window_hits, main_hits
        policy._climb()
        moves.append((policy.window_capacity - start, step))
    (narrow, step), (full, _), (clamped, _), (shrink, _) = moves
    assert narrow == int(step * 2 / 3)  # a 2:1 lead: two thirds of a step
    assert full == clamped == int(step)  # 3:1 or more: the full step
    assert shrink == -int(step * 2 / 3)  # the other way round


def _admitted(candidate_count: int, victim_count: int) -> bool:
    policy = TinyLFUPolicy(64, seed=3, adaptive=False)
    for key, count in (("candidate", candidate_count), ("victim", victim_count)):
        for _ in range(count):
            policy.sketch.increment(key)
    assert (policy.frequency("candidate"), policy.frequency("victim")) == (candidate_count, victim_count)
    return policy._admit("candidate", "victim")


def test_tinylfu_cold_candidates_must_lead_by_two() -> None:
    # At an estimate of 2 or less a lead of one is the candidate's own recent request.
    assert not _admitted(1, 0)
    assert not _admitted(2, 1)
    assert _admitted(2, 0)
    # Warmer candidates need the usual lead of one; no lead is never enough (below the
    # hash-flooding threshold, where the random admission starts).
    assert _admitted(3, 2)
    assert _admitted(5, 4)
    assert not _admitted(3, 3)


def test_tinylfu_climber_needs_a_warm_cache() -> None:
    policy = TinyLFUPolicy(1000, seed=1)
    for key in range(400):  # 4000 requests of misses on a cache that stays below half full
        for _ in range(10):
            policy.record_miss(key)
        policy.on_insert(key)
    assert policy.window_capacity == 10


def test_tinylfu_resize_resets_regions() -> None:
    policy = TinyLFUPolicy(100, seed=1, window=0.5, adaptive=False)
    for key in range(100):
        policy.on_insert(key)
    policy.resize(10)
    assert policy.window_capacity == 5
    while policy.weight > policy.capacity:
        policy.evict()
    assert len(policy) == 10


def test_tinylfu_bad_window() -> None:
    for window in (0, 1, 1.5, -0.1, True):
        with pytest.raises(ConfigurationError, match="window"):
            TinyLFUPolicy(10, window=window)


def test_tinylfu_sketch_grows_with_entries() -> None:
    policy = TinyLFUPolicy(100_000, seed=1)
    assert policy.sketch.entries == 1024  # not sized for 100,000 keys up front
    for key in range(3000):
        policy.on_insert(key)
    assert 3000 <= policy.sketch.entries <= 100_000


def test_tinylfu_clear_keeps_frequencies() -> None:
    policy = TinyLFUPolicy(10, seed=1)
    for _ in range(4):
        policy.record_miss("a")
    policy.on_insert("a")
    policy.clear()
    assert policy.frequency("a") == 4
    assert policy.region("a") is None


# -- bookkeeping: a state machine per policy --------------------------------------------------


class PolicyMachine(RuleBasedStateMachine):
    """Random operation sequences against a model of the tracked keys and their weights.

    For lru and fifo the model also keeps the exact eviction order, so every victim is
    checked; for the others a victim must be a tracked key.
    """

    name: ClassVar[str] = "lru"
    kwargs: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        self.policy: Policy = make_policy(self.name, 8, **self.kwargs)
        self.model: OrderedDict[int, int] = OrderedDict()  # key -> weight, order for lru/fifo

    @initialize(capacity=st.integers(1, 12))
    def start(self, capacity: int) -> None:
        self.policy = make_policy(self.name, capacity, **self.kwargs)

    @rule(key=st.integers(0, 15), weight=st.integers(0, 4))
    def write(self, key: int, weight: int) -> None:
        if key in self.model:
            self.policy.on_update(key, weight)
            self.model.move_to_end(key)  # both lru and fifo requeue an overwrite
        else:
            self.policy.record_miss(key)
            self.policy.on_insert(key, weight)
        self.model[key] = weight

    @rule(key=st.integers(0, 15))
    def read(self, key: int) -> None:
        if key in self.model:
            self.policy.on_access(key)
            if self.name == "lru":
                self.model.move_to_end(key)
        else:
            self.policy.record_miss(key)

    @rule(key=st.integers(0, 17))
    def remove(self, key: int) -> None:
        self.policy.on_remove(key)
        self.model.pop(key, None)

    @rule()
    def evict(self) -> None:
        if not self.model:
            with pytest.raises(KeyError):
                self.policy.evict()
            return
        victim = self.policy.evict()
        assert victim in self.model
        if self.name in ("lru", "fifo"):
            assert victim == next(iter(self.model))
        del self.model[victim]  # type: ignore[arg-type]

    @rule()
    def evict_until_within_capacity(self) -> None:
        while self.policy.weight > self.policy.capacity:
            victim = self.policy.evict()
            assert victim in self.model
            del self.model[victim]  # type: ignore[arg-type]
        assert self.policy.weight <= self.policy.capacity

    @rule(capacity=st.integers(1, 12))
    def resize(self, capacity: int) -> None:
        self.policy.resize(capacity)

    @rule()
    def clear(self) -> None:
        self.policy.clear()
        self.model.clear()

    @invariant()
    def bookkeeping(self) -> None:
        assert len(self.policy) == len(self.model)
        assert self.policy.weight == sum(self.model.values())

    @invariant()
    def tinylfu_regions(self) -> None:
        policy = self.policy
        if not isinstance(policy, TinyLFUPolicy):
            return
        window, probation, protected = policy._window, policy._probation, policy._protected
        assert policy._window_weight == sum(window.values())
        assert policy._protected_weight == sum(protected.values())
        assert policy._protected_weight <= max(policy._protected_max, 0) or not protected
        keys = [*window, *probation, *protected]
        assert len(keys) == len(set(keys)) == len(self.model)
        assert set(keys) == set(self.model)
        assert {**window, **probation, **protected} == dict(self.model)


def _machine(policy_name: str, policy_kwargs: dict[str, Any]) -> type[PolicyMachine]:
    return type(
        f"{policy_name.title()}Machine",
        (PolicyMachine,),
        {"name": policy_name, "kwargs": policy_kwargs},
    )


_SETTINGS = settings(
    max_examples=60, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestLRUMachine = _SETTINGS(_machine("lru", {})).TestCase
TestFIFOMachine = _SETTINGS(_machine("fifo", {})).TestCase
TestRandomMachine = _SETTINGS(_machine("random", {"seed": 1})).TestCase
# A short epoch so that aging (bucket merges) happens inside the sequences.
TestLFUMachine = _SETTINGS(_machine("lfu", {"sample_size": 7})).TestCase
TestTinyLFUMachine = _SETTINGS(_machine("tinylfu", {"seed": 1})).TestCase


# -- batched hits (the store's read buffer) ----------------------------------------------


def _policy_state(policy: Policy) -> Any:
    """Everything a hit can change, in comparable form."""
    if isinstance(policy, TinyLFUPolicy):
        return (
            list(policy._window.items()),
            list(policy._probation.items()),
            list(policy._protected.items()),
            list(policy._window_ghost.items()),
            list(policy._main_ghost.items()),
            bytes(policy._sketch._table),
            policy._sketch.size,
            policy._hits,
            policy._misses,
            policy.window_capacity,
            policy.protected_capacity,
            policy._step,
            policy._window_ghost_hits,
            policy._main_ghost_hits,
            policy.weight,
            len(policy),
        )
    return drain(policy)


@pytest.mark.parametrize("name", ["lfu", "tinylfu", "lru", "fifo", "random"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_on_access_many_equals_on_access_per_key(name: str, seed: int) -> None:
    # Long enough for several sketch halvings, climber periods and lfu agings; some reads
    # name keys evicted since (as a store's buffer may), which must be skipped.
    rng = random.Random(seed)
    one, batched = new(name, 24), new(name, 24)
    resident: set[Hashable] = set()
    buffer: list[Hashable] = []
    for _ in range(12_000):
        key = int(rng.paretovariate(1.2)) if rng.random() < 0.7 else rng.randrange(400)
        if key in resident:
            one.on_access(key)
            buffer.append(key)
            if len(buffer) >= rng.choice((1, 7, 64)):
                batched.on_access_many(buffer, resident)
                buffer.clear()
            continue
        # A miss: the store drains its buffer first, then counts the miss and inserts.
        batched.on_access_many(buffer, resident)
        buffer.clear()
        for policy in (one, batched):
            policy.record_miss(key)
            policy.on_insert(key)
        resident.add(key)
        while len(resident) > 24:
            victim = one.evict()
            assert batched.evict() == victim
            resident.remove(victim)
            if rng.random() < 0.2:
                buffer.append(victim)  # a buffered read of a key evicted since
    batched.on_access_many(buffer, resident)
    assert _policy_state(batched) == _policy_state(one)
