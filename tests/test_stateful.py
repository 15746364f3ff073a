"""Model-based tests: the memory Cache against a plain dict with expiry times.

One state machine, run twice: over a memory cache that keeps objects as they are, and over
one with ``serializer="msgpack"`` so every value goes through the encode/decode path. The
same rules drive plain values and native lists over one shared, small key space, so that
kind clashes (``get`` on a list, ``lpush`` on a plain value, ``incr`` on a list) come up.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from stratacache import MISSING, Cache, InvalidArgument, WrongType
from stratacache.testing import FakeClock

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
DECIMAL = re.compile(rb"-?[0-9]+")

KEY_NAMES = ["a", "b", "c", "d"]
KEYS = st.sampled_from(KEY_NAMES)
KEY_LISTS = st.lists(KEYS, max_size=4)
TTLS = st.one_of(st.none(), st.sampled_from([0.5, 1.0, 2.0, 5.0]))
STEPS = st.sampled_from([0.25, 0.5, 1.0, 2.0, 6.0])
DELTAS = st.one_of(st.integers(-3, 3), st.sampled_from([INT64_MAX, INT64_MIN, 2**40]))

INTS = st.one_of(
    st.integers(-5, 5),
    st.integers(INT64_MIN, INT64_MAX),
    st.sampled_from([INT64_MAX, INT64_MAX - 1, INT64_MIN, INT64_MIN + 1, 2**63, 2**64 + 5, -(2**70)]),
)
# Decimal-looking bytes: counters for an object store, opaque bytes once msgpack frames them.
COUNTER_BYTES = st.sampled_from(
    [b"5", b"-12", b"0", b"9223372036854775807", b"1_0", b"5 ", b" 5", b"7\n", b"-", b"", b"+3", b"0x1"]
)
BYTES = st.one_of(st.binary(max_size=6), COUNTER_BYTES)
# What incr has to tell apart: ints at the 64-bit edges, decimal and almost-decimal bytes, lookalikes.
COUNTERISH = st.one_of(INTS, COUNTER_BYTES, st.sampled_from([True, False, 5.0, "5", None]))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    INTS,
    st.floats(allow_nan=False),
    st.text(max_size=6),
    BYTES,
)
# Everything here round-trips through msgpack exactly (type included).
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(max_size=3), children, max_size=3),
    ),
    max_leaves=6,
)
LIST_VALUES = st.lists(VALUES, min_size=1, max_size=3)


def same(actual: Any, expected: Any) -> bool:
    """Equality that also requires equal types all the way down (``True`` is not ``1``)."""
    if type(actual) is not type(expected):
        return False
    if type(actual) is list:
        return len(actual) == len(expected) and all(map(same, actual, expected))
    if type(actual) is dict:
        return actual.keys() == expected.keys() and all(same(actual[k], expected[k]) for k in actual)
    if type(actual) is float:
        return actual == expected and math.copysign(1.0, actual) == math.copysign(1.0, expected)
    return bool(actual == expected)


def assert_same(actual: Any, expected: Any) -> None:
    assert same(actual, expected), f"read back {actual!r}, the model has {expected!r}"


@dataclass
class Entry:
    kind: str  # "plain" or "list"
    value: Any  # the value, or a Python list for "list"
    expires: float | None


class CacheMachine(RuleBasedStateMachine):
    """``Cache("memory", clock=FakeClock(), max_entries=None)`` against a dict of Entry."""

    serializer: ClassVar[str | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        options: dict[str, Any] = {"clock": self.clock, "max_entries": None}
        if self.serializer is not None:
            options["serializer"] = self.serializer
        self.cache = Cache("memory", **options)
        self.model: dict[str, Entry] = {}

    def teardown(self) -> None:
        self.cache.close()

    # ------------------------------------------------------------------ model helpers

    def live(self) -> dict[str, Entry]:
        """The model with expired entries dropped (an entry dies when expires <= now)."""
        now = self.clock()
        for key in [k for k, e in self.model.items() if e.expires is not None and e.expires <= now]:
            del self.model[key]
        return self.model

    def expires(self, ttl: float | None) -> float | None:
        return None if ttl is None else self.clock() + ttl

    def incr_outcome(self, entry: Entry | None, delta: int) -> tuple[type[Exception] | None, int, Any]:
        """(error expected, result, new stored value) for incr by ``delta``."""
        if entry is None:
            return None, delta, delta
        value = entry.value
        if entry.kind != "plain":
            return WrongType, 0, None
        if type(value) is int:
            if self.serializer is not None and not INT64_MIN <= value <= INT64_MAX:
                # Outside 64 bits the codec frames the int like any other value.
                return WrongType, 0, None
            result = value + delta
            if not INT64_MIN <= result <= INT64_MAX:
                return InvalidArgument, 0, None
            return None, result, result
        if type(value) is bytes and self.serializer is None and DECIMAL.fullmatch(value):
            # An object store counts on decimal ASCII bytes and keeps them bytes.
            result = int(value) + delta
            if not INT64_MIN <= result <= INT64_MAX:
                return InvalidArgument, 0, None
            return None, result, str(result).encode()
        return WrongType, 0, None

    # ------------------------------------------------------------------- plain values

    @rule(key=KEYS, value=VALUES, ttl=TTLS)
    def do_set(self, key: str, value: Any, ttl: float | None) -> None:
        self.cache.set(key, value, ttl=ttl)
        self.live()[key] = Entry("plain", value, self.expires(ttl))

    @rule(key=KEYS, value=COUNTERISH, ttl=TTLS)
    def do_set_counterish(self, key: str, value: Any, ttl: float | None) -> None:
        self.do_set(key, value, ttl)

    @rule(mapping=st.dictionaries(KEYS, VALUES, max_size=3), ttl=TTLS)
    def do_set_many(self, mapping: dict[str, Any], ttl: float | None) -> None:
        self.cache.set_many(mapping, ttl=ttl)
        live = self.live()
        for key, value in mapping.items():
            live[key] = Entry("plain", value, self.expires(ttl))

    @rule(key=KEYS)
    def do_get(self, key: str) -> None:
        entry = self.live().get(key)
        if entry is None:
            assert self.cache.get(key, MISSING) is MISSING
            assert self.cache.get(key) is None
        elif entry.kind == "list":
            with pytest.raises(WrongType):
                self.cache.get(key)
        else:
            assert_same(self.cache.get(key, MISSING), entry.value)

    @rule(key=KEYS, value=VALUES, ttl=TTLS)
    def do_add(self, key: str, value: Any, ttl: float | None) -> None:
        live = self.live()
        expected = key not in live
        assert self.cache.add(key, value, ttl=ttl) is expected
        if expected:
            live[key] = Entry("plain", value, self.expires(ttl))

    @rule(key=KEYS)
    def do_delete(self, key: str) -> None:
        live = self.live()
        assert self.cache.delete(key) is (key in live)
        live.pop(key, None)

    @rule(keys=KEY_LISTS)
    def do_delete_many(self, keys: list[str]) -> None:
        live = self.live()
        present = {k for k in keys if k in live}
        assert self.cache.delete_many(keys) == len(present)
        for key in present:
            del live[key]

    @rule(keys=KEY_LISTS)
    def do_get_many(self, keys: list[str]) -> None:
        live = self.live()
        expected = {k: live[k].value for k in keys if k in live and live[k].kind == "plain"}
        found = self.cache.get_many(keys)
        assert found.keys() == expected.keys()
        for key, value in expected.items():
            assert_same(found[key], value)

    @rule(key=KEYS)
    def do_exists(self, key: str) -> None:
        assert self.cache.exists(key) is (key in self.live())

    @rule(key=KEYS, delta=DELTAS)
    def do_incr(self, key: str, delta: int) -> None:
        live = self.live()
        entry = live.get(key)
        error, result, new = self.incr_outcome(entry, delta)
        event(f"incr: {'ok' if error is None else error.__name__}")
        if error is not None:
            with pytest.raises(error):
                self.cache.incr(key, delta)
            return  # and the value is unchanged: the invariant reads it back
        assert self.cache.incr(key, delta) == result
        if entry is None:
            live[key] = Entry("plain", new, None)
        else:
            entry.value = new  # the expiry is kept

    @rule(key=KEYS, amount=st.integers(-3, 3))
    def do_decr(self, key: str, amount: int) -> None:
        live = self.live()
        entry = live.get(key)
        error, result, new = self.incr_outcome(entry, -amount)
        if error is not None:
            with pytest.raises(error):
                self.cache.decr(key, amount)
            return
        assert self.cache.decr(key, amount) == result
        if entry is None:
            live[key] = Entry("plain", new, None)
        else:
            entry.value = new

    # --------------------------------------------------------------------- ttl, clock

    @rule(key=KEYS, ttl=TTLS)
    def do_expire(self, key: str, ttl: float | None) -> None:
        live = self.live()
        assert self.cache.expire(key, ttl) is (key in live)
        if key in live:
            live[key].expires = self.expires(ttl)

    @rule(key=KEYS)
    def do_ttl(self, key: str) -> None:
        entry = self.live().get(key)
        remaining = self.cache.ttl(key)
        if entry is None:
            assert remaining is MISSING
        elif entry.expires is None:
            assert remaining is None
        else:
            assert isinstance(remaining, float)
            assert remaining == pytest.approx(entry.expires - self.clock(), abs=1e-9)
            assert remaining > 0

    @rule(seconds=STEPS)
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def do_clear(self) -> None:
        self.cache.clear()
        self.model.clear()

    # -------------------------------------------------------------------------- lists

    @rule(key=KEYS, values=LIST_VALUES, left=st.booleans())
    def do_push(self, key: str, values: list[Any], left: bool) -> None:
        live = self.live()
        entry = live.get(key)
        push = self.cache.lpush if left else self.cache.rpush
        if entry is not None and entry.kind != "list":
            with pytest.raises(WrongType, match=repr(key)):
                push(key, *values)
            return
        if entry is None:
            entry = live[key] = Entry("list", [], None)
        for value in values:
            if left:
                entry.value.insert(0, value)
            else:
                entry.value.append(value)
        assert push(key, *values) == len(entry.value)

    @rule(key=KEYS, left=st.booleans())
    def do_pop(self, key: str, left: bool) -> None:
        live = self.live()
        entry = live.get(key)
        pop = self.cache.lpop if left else self.cache.rpop
        if entry is None:
            assert pop(key, MISSING) is MISSING
            assert pop(key) is None
            return
        if entry.kind != "list":
            with pytest.raises(WrongType, match=repr(key)):
                pop(key)
            return
        expected = entry.value.pop(0 if left else -1)
        assert_same(pop(key, MISSING), expected)
        if not entry.value:
            del live[key]  # an emptied list no longer exists

    @rule(key=KEYS, start=st.integers(-6, 6), stop=st.integers(-6, 6))
    def do_lrange(self, key: str, start: int, stop: int) -> None:
        entry = self.live().get(key)
        if entry is not None and entry.kind != "list":
            with pytest.raises(WrongType, match=repr(key)):
                self.cache.lrange(key, start, stop)
            return
        items = [] if entry is None else entry.value
        assert_same(self.cache.lrange(key, start, stop), items[start : (stop + 1) or None])

    @rule(key=KEYS)
    def do_llen(self, key: str) -> None:
        entry = self.live().get(key)
        if entry is not None and entry.kind != "list":
            with pytest.raises(WrongType):
                self.cache.llen(key)
            return
        assert self.cache.llen(key) == (0 if entry is None else len(entry.value))

    # ---------------------------------------------------------------------- invariant

    @invariant()
    def every_model_key_reads_back(self) -> None:
        live = self.live()
        for key in KEY_NAMES:
            entry = live.get(key)
            if entry is None:
                assert not self.cache.exists(key)
                assert self.cache.get(key, MISSING) is MISSING
            elif entry.kind == "plain":
                assert_same(self.cache.get(key, MISSING), entry.value)
            else:
                assert_same(self.cache.lrange(key), entry.value)
        assert self.cache.stats().items == len(live)


class MsgpackCacheMachine(CacheMachine):
    """The same rules over a memory cache that stores msgpack-encoded bytes."""

    serializer: ClassVar[str | None] = "msgpack"


MACHINE_SETTINGS = settings(max_examples=75, stateful_step_count=40, deadline=None)

TestObjectCache = CacheMachine.TestCase
TestObjectCache.settings = MACHINE_SETTINGS
TestMsgpackCache = MsgpackCacheMachine.TestCase
TestMsgpackCache.settings = MACHINE_SETTINGS
