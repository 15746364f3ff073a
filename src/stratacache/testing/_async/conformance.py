"""The public conformance suite: every backend must pass it through ``AsyncCache`` and ``Cache``.

Use it for your own backend by subclassing and providing two pytest fixtures::

    class TestMyBackend(AsyncCacheConformance):
        @pytest.fixture
        async def acache(self, cache_clock):
            async with AsyncCache(MyAsyncBackend(clock=cache_clock)) as c:
                yield c

        @pytest.fixture
        def cache_clock(self):
            return FakeClock()      # or RealClock() for a server whose clock you cannot drive

The sync twin ``CacheConformance`` (generated from this file) asks for ``cache`` instead
of ``acache``. The async suite needs pytest-asyncio. A backend whose capabilities say
``retains_data=False`` (the null backend) is held to "accepts writes, always misses".
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from ..._async.cache import AsyncCache
from ..._async.lease import lease_key
from ..._exceptions import (
    CacheClosed,
    ConfigurationError,
    InvalidArgument,
    InvalidKey,
    InvalidTTL,
    UnsupportedOperation,
    WrongType,
)
from ..._types import MAX_TTL, MISSING
from ...core.hooks import HookEvent

__all__ = ["AsyncCacheConformance", "RealClock"]

pytestmark = [pytest.mark.asyncio]  # unasync: remove

ROUND_TRIP_VALUES: list[Any] = [
    "text",
    "ünïcødé ✓ 日本",
    "",
    0,
    -17,
    2**63 - 1,
    2**70,
    3.25,
    True,
    False,
    b"\x00\xffbytes",
    [1, "two", 3.0, None],
    {"a": 1, "b": [1, 2], "c": {"d": None}},
    (1, "tuple"),
    {1, 2, 3},
]


class RealClock:
    """A clock for backends whose time cannot be faked: ``advance`` really sleeps."""

    def __call__(self) -> float:
        return time.monotonic()


async def advance(clock: Any, seconds: float) -> None:
    """Move ``clock`` forward: instantly for a FakeClock, by sleeping for a RealClock."""
    if hasattr(clock, "advance"):
        clock.advance(seconds)
    else:
        await asyncio.sleep(seconds)


_IS_ASYNC = True


async def concurrently(calls: list[Callable[[], Any]]) -> None:
    """Run every call at once: as tasks in the async flavour, as threads in the sync one."""
    if _IS_ASYNC:
        await asyncio.gather(*(call() for call in calls))
        return
    errors: list[BaseException] = []

    def run(call: Callable[[], Any]) -> None:
        try:
            call()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def retains(acache: AsyncCache) -> bool:
    """False for backends that forget every write (null)."""
    return acache.backend.capabilities.retains_data


def needs_versions(acache: AsyncCache) -> None:
    """Skip a verbs test (get_item, if_version, pull, replace) on a backend without ``versions``."""
    if not acache.backend.capabilities.versions:
        pytest.skip(f"{acache.backend.name} has no entry versions")


def needs_collections(acache: AsyncCache) -> None:
    """Skip a lists/sets/hashes test on a backend without the ``collections`` capability."""
    if not acache.backend.capabilities.collections:
        pytest.skip(f"{acache.backend.name} has no lists, sets or hashes")


class AsyncCacheConformance:
    """The behaviour every backend shows through the facade. Subclass to run it."""

    # A ttl long enough that no test expires by accident, short enough for RealClock.
    SHORT_TTL = 0.4

    def short_ttl(self, acache: AsyncCache) -> float:
        """SHORT_TTL, stretched for a backend whose expiry has coarse resolution (Memcached: 1 s).

        Twice the resolution, so an entry set with it is certainly alive right after the write.
        """
        return max(self.SHORT_TTL, 2 * acache.backend.capabilities.ttl_resolution)

    # ------------------------------------------------------------ get / set

    @pytest.mark.parametrize("value", ROUND_TRIP_VALUES, ids=repr)
    async def test_set_get_round_trip(self, acache: AsyncCache, value: Any) -> None:
        await acache.set("k", value)
        got = await acache.get("k", MISSING)
        if retains(acache):
            assert got == value
            assert type(got) is type(value)
        else:
            assert got is MISSING

    async def test_miss_returns_default(self, acache: AsyncCache) -> None:
        assert await acache.get("absent") is None
        assert await acache.get("absent", "dflt") == "dflt"
        assert await acache.get("absent", MISSING) is MISSING

    async def test_stored_none_is_not_a_miss(self, acache: AsyncCache) -> None:
        await acache.set("none", None)
        expected = None if retains(acache) else "miss"
        assert await acache.get("none", "miss") == expected
        assert await acache.exists("none") is retains(acache)

    async def test_overwrite(self, acache: AsyncCache) -> None:
        await acache.set("k", "one")
        await acache.set("k", "two")
        assert await acache.get("k") == ("two" if retains(acache) else None)

    async def test_delete_and_exists(self, acache: AsyncCache) -> None:
        await acache.set("k", 1)
        assert await acache.exists("k") is retains(acache)
        assert await acache.delete("k") is retains(acache)
        assert await acache.delete("k") is False
        assert await acache.exists("k") is False

    async def test_unicode_and_long_keys(self, acache: AsyncCache) -> None:
        keys = ["ключ", "键/with spaces", "emoji😀", "x" * 10_000, "a:b:c", "*?[glob]"]
        for i, key in enumerate(keys):
            await acache.set(key, i)
        for i, key in enumerate(keys):
            assert await acache.get(key) == (i if retains(acache) else None)

    async def test_large_value(self, acache: AsyncCache) -> None:
        value = b"\x01" * (1024 * 1024)
        await acache.set("big", value)
        assert await acache.get("big") == (value if retains(acache) else None)

    @pytest.mark.parametrize("key", [1, None, b"bytes", 3.5, ("t",)], ids=repr)
    async def test_bad_key_is_refused(self, acache: AsyncCache, key: Any) -> None:
        with pytest.raises(InvalidKey, match="str"):
            await acache.get(key)
        with pytest.raises(InvalidKey):
            await acache.set(key, 1)
        with pytest.raises(InvalidKey):
            await acache.delete(key)

    # --------------------------------------------------------------------- ttl

    async def test_ttl_expires(self, acache: AsyncCache, cache_clock: Any) -> None:
        await acache.set("short", "v", ttl=self.short_ttl(acache))
        await acache.set("forever", "v", ttl=None)
        assert await acache.get("short") == ("v" if retains(acache) else None)
        await advance(cache_clock, self.short_ttl(acache) * 2)
        assert await acache.get("short", MISSING) is MISSING
        assert await acache.exists("short") is False
        assert await acache.get("forever") == ("v" if retains(acache) else None)

    async def test_ttl_accepts_timedelta(self, acache: AsyncCache) -> None:
        await acache.set("k", "v", ttl=timedelta(minutes=5))
        remaining = await acache.ttl("k")
        if retains(acache):
            assert isinstance(remaining, float)
            assert 290 < remaining <= 300
        else:
            assert remaining is MISSING

    @pytest.mark.parametrize("ttl", [0, -1, -0.5, math.nan, math.inf, "10", True, timedelta(0)], ids=repr)
    async def test_bad_ttl_is_refused(self, acache: AsyncCache, ttl: Any) -> None:
        with pytest.raises(InvalidTTL, match="ttl"):
            await acache.set("k", "v", ttl=ttl)
        with pytest.raises(InvalidTTL):
            await acache.add("k", "v", ttl=ttl)
        with pytest.raises(InvalidTTL):
            await acache.expire("k", ttl)
        assert await acache.get("k", MISSING) is MISSING

    async def test_ttl_reports(self, acache: AsyncCache) -> None:
        assert await acache.ttl("absent") is MISSING
        await acache.set("forever", 1, ttl=None)
        await acache.set("timed", 1, ttl=100)
        if retains(acache):
            assert await acache.ttl("forever") is None
            remaining = await acache.ttl("timed")
            assert isinstance(remaining, float)
            assert 95 < remaining <= 100
        else:
            assert await acache.ttl("forever") is MISSING

    async def test_expire_and_touch(self, acache: AsyncCache, cache_clock: Any) -> None:
        assert await acache.expire("absent", 10) is False
        assert await acache.touch("absent") is False
        await acache.set("k", "v", ttl=None)
        assert await acache.expire("k", 100) is retains(acache)
        if retains(acache):
            remaining = await acache.ttl("k")
            assert isinstance(remaining, float)
            assert 95 < remaining <= 100
            assert await acache.expire("k", None) is True
            assert await acache.ttl("k") is None
            assert await acache.touch("k", ttl=self.short_ttl(acache)) is True
            await advance(cache_clock, self.short_ttl(acache) * 2)
            assert await acache.exists("k") is False

    async def test_default_ttl(self, acache: AsyncCache, cache_clock: Any) -> None:
        other = AsyncCache(
            acache.backend, namespace="dflt", default_ttl=self.short_ttl(acache), serializer=_codec(acache)
        )
        await other.set("k", "v")
        await other.set("kept", "v", ttl=None)
        assert await other.touch("kept") is retains(acache)  # touch with no ttl applies the default
        await other.set("forever", "v", ttl=None)
        if retains(acache):
            remaining = await other.ttl("k")
            assert isinstance(remaining, float)
            assert 0 < remaining <= self.short_ttl(acache) + 0.01
            assert await other.ttl("forever") is None
        await advance(cache_clock, self.short_ttl(acache) * 2)
        assert await other.get("k", MISSING) is MISSING
        assert await other.get("kept", MISSING) is MISSING
        assert await other.get("forever") == ("v" if retains(acache) else None)

    # --------------------------------------------------------------------- add

    async def test_add_only_when_absent(self, acache: AsyncCache) -> None:
        assert await acache.add("k", "first") is True
        assert await acache.add("k", "second") is (not retains(acache))
        assert await acache.get("k") == ("first" if retains(acache) else None)

    async def test_add_after_expiry(self, acache: AsyncCache, cache_clock: Any) -> None:
        await acache.set("k", "old", ttl=self.short_ttl(acache))
        await advance(cache_clock, self.short_ttl(acache) * 2)
        assert await acache.add("k", "new") is True
        assert await acache.get("k") == ("new" if retains(acache) else None)

    # ------------------------------------------------------------------- batch

    async def test_many(self, acache: AsyncCache) -> None:
        await acache.set_many({"a": 1, "b": "two", "c": None})
        got = await acache.get_many(["a", "b", "c", "absent"])
        assert got == ({"a": 1, "b": "two", "c": None} if retains(acache) else {})
        assert await acache.delete_many(["a", "b", "absent"]) == (2 if retains(acache) else 0)
        assert await acache.get_many(["a", "b", "c"]) == ({"c": None} if retains(acache) else {})
        assert await acache.get_many([]) == {}
        assert await acache.delete_many([]) == 0
        await acache.set_many({})

    async def test_set_many_ttl(self, acache: AsyncCache, cache_clock: Any) -> None:
        await acache.set_many({"a": 1, "b": 2}, ttl=self.short_ttl(acache))
        await advance(cache_clock, self.short_ttl(acache) * 2)
        assert await acache.get_many(["a", "b"]) == {}

    async def test_set_many_refuses_bad_input(self, acache: AsyncCache) -> None:
        with pytest.raises(InvalidArgument, match="mapping"):
            await acache.set_many([("a", 1)])  # type: ignore[arg-type]
        with pytest.raises(InvalidKey):
            await acache.set_many({1: "x"})  # type: ignore[dict-item]
        with pytest.raises(InvalidTTL):
            await acache.set_many({"a": 1}, ttl=-1)
        assert await acache.get("a", MISSING) is MISSING

    # ---------------------------------------------------------------- counters

    async def test_incr_decr(self, acache: AsyncCache) -> None:
        if not retains(acache):
            assert await acache.incr("n") == 1
            assert await acache.decr("n", 3) == -3
            return
        assert await acache.incr("n") == 1
        assert await acache.incr("n", 10) == 11
        assert await acache.decr("n", 4) == 7
        assert await acache.get("n") == 7
        await acache.set("m", 5)
        assert await acache.incr("m", 2) == 7
        assert await acache.get("m") == 7

    async def test_incr_keeps_ttl(self, acache: AsyncCache) -> None:
        await acache.set("n", 1, ttl=100)
        await acache.incr("n")
        if retains(acache):
            remaining = await acache.ttl("n")
            assert isinstance(remaining, float)
            assert 95 < remaining <= 100

    @pytest.mark.parametrize("value", ["text", 1.5, [1], b"\x00", None], ids=repr)
    async def test_incr_non_integer_is_refused_and_unchanged(self, acache: AsyncCache, value: Any) -> None:
        await acache.set("k", value)
        if retains(acache):
            with pytest.raises(WrongType, match="k"):
                await acache.incr("k")
            assert await acache.get("k") == value

    @pytest.mark.parametrize("amount", [1.5, "1", True, None, 2**64], ids=repr)
    async def test_incr_bad_amount(self, acache: AsyncCache, amount: Any) -> None:
        with pytest.raises(InvalidArgument, match="amount"):
            await acache.incr("n", amount)
        with pytest.raises(InvalidArgument, match="amount"):
            await acache.decr("n", amount)
        assert await acache.exists("n") is False

    # -------------------------------------------------------------- namespaces

    async def test_namespaces_are_isolated(self, acache: AsyncCache) -> None:
        one = AsyncCache(acache.backend, namespace="one", serializer=_codec(acache))
        two = AsyncCache(acache.backend, namespace="two", serializer=_codec(acache))
        await one.set("k", "from one")
        await two.set("k", "from two")
        await acache.set("k", "from base")
        if retains(acache):
            assert await one.get("k") == "from one"
            assert await two.get("k") == "from two"
        await one.clear()
        assert await one.get("k") is None
        assert await two.get("k") == ("from two" if retains(acache) else None)
        assert await acache.get("k") == ("from base" if retains(acache) else None)

    async def test_namespace_that_prefixes_another_is_isolated(self, acache: AsyncCache) -> None:
        # "app" + ":" is the start of "app:b": the raw keys of the two must still never meet
        # ("app"'s key "b:x" and "app:b"'s key "x" were once the same raw key), and
        # "app%3Ab" (the encoded form of "app:b", taken literally) is a third namespace.
        r = retains(acache)
        names = ("app", "app:b", "app%3Ab")
        outer, inner, literal = (
            AsyncCache(acache.backend, namespace=name, serializer=_codec(acache)) for name in names
        )
        await outer.set_many({"b:x": "outer", "b:y": "outer", "k": "outer"})
        await inner.set_many({"x": "inner", "k": "inner"})
        await literal.set("x", "literal")
        assert await inner.exists("y") is False  # outer's "b:y"
        assert await outer.get("b:x") == ("outer" if r else None)
        assert await inner.get("x") == ("inner" if r else None)
        assert await literal.get("x") == ("literal" if r else None)
        enumerable = acache.backend.capabilities.delete_pattern
        if enumerable and r:
            assert [(await c.stats()).items for c in (outer, inner, literal)] == [3, 2, 1]
        if enumerable:
            assert await outer.delete_pattern("*") == (3 if r else 0)
            assert await inner.get_many(["x", "k"]) == ({"x": "inner", "k": "inner"} if r else {})
            assert await literal.exists("x") is r
            await outer.set_many({"b:x": "outer", "k": "outer"})
            assert await inner.delete_pattern("*") == (2 if r else 0)
            assert await outer.get_many(["b:x", "k"]) == ({"b:x": "outer", "k": "outer"} if r else {})
            await inner.set_many({"x": "inner", "k": "inner"})
        await outer.clear()
        assert await outer.get("k") is None
        assert await inner.get_many(["x", "k"]) == ({"x": "inner", "k": "inner"} if r else {})
        assert await literal.get("x") == ("literal" if r else None)
        await outer.set("b:x", "outer")
        await inner.clear()
        assert await outer.get("b:x") == ("outer" if r else None)
        assert await literal.get("x") == ("literal" if r else None)
        await literal.clear()
        assert await outer.get("b:x") == ("outer" if r else None)

    async def test_delete_pattern_in_namespace(self, acache: AsyncCache) -> None:
        if not acache.backend.capabilities.delete_pattern:
            pytest.skip(f"{acache.backend.name} cannot enumerate keys")
        ns = AsyncCache(acache.backend, namespace="ns*[x]", serializer=_codec(acache))
        other = AsyncCache(acache.backend, namespace="other", serializer=_codec(acache))
        for key in ("user:1", "user:2", "user:10", "item:1", "userx"):
            await ns.set(key, 1)
            await other.set(key, 1)
        deleted = await ns.delete_pattern("user:?")
        assert deleted == (2 if retains(acache) else 0)
        assert await ns.exists("user:10") is retains(acache)
        assert await ns.exists("user:1") is False
        assert await other.exists("user:1") is retains(acache)
        assert await ns.delete_pattern("*") == (3 if retains(acache) else 0)
        assert await other.get_many(["user:1", "user:2", "user:10", "item:1", "userx"]) == (
            dict.fromkeys(["user:1", "user:2", "user:10", "item:1", "userx"], 1) if retains(acache) else {}
        )

    async def test_keys_list_the_namespace(self, acache: AsyncCache) -> None:
        if not acache.backend.capabilities.delete_pattern:
            pytest.skip(f"{acache.backend.name} cannot enumerate keys")
        r = retains(acache)
        # Glob characters in a namespace are literal; "ks" sees none of the other's keys.
        ns = AsyncCache(acache.backend, namespace="ks*[x]", serializer=_codec(acache))
        other = AsyncCache(acache.backend, namespace="ks", serializer=_codec(acache))
        mine = ["item:1", "star*", "starx", "user:1", "user:10", "user:2"]
        for c in (ns, other):
            await c.clear()
        await ns.set_many(dict.fromkeys(mine, 1))
        await other.set("other-key", 1)
        # Internal keys stay out of the listing: a tag's version record and a stampede lease.
        await ns.set("tagged", 1, tags=["t"])
        await ns.add(lease_key("user:1"), "token", ttl=60)
        assert await ns.keys() == (sorted([*mine, "tagged"]) if r else [])
        assert await ns.keys("user:?") == (["user:1", "user:2"] if r else [])
        assert await ns.keys("star\\*") == (["star*"] if r else [])  # an escaped glob character
        assert sorted({key async for key in ns.iter_keys("user:*")}) == (
            ["user:1", "user:10", "user:2"] if r else []
        )
        assert await other.keys() == (["other-key"] if r else [])
        assert await ns.delete_pattern("user:*") == (3 if r else 0)
        assert await ns.keys("user*") == []
        for c in (ns, other):
            await c.clear()
        assert await ns.keys() == []

    async def test_keys_refuse_a_bad_pattern(self, acache: AsyncCache) -> None:
        for bad in (None, b"user:*", 1):
            with pytest.raises(InvalidArgument, match="pattern"):
                await acache.keys(bad)  # type: ignore[arg-type]
            with pytest.raises(InvalidArgument, match="pattern"):
                acache.iter_keys(bad)  # type: ignore[arg-type]

    # ------------------------------------------------------------------- lists

    async def test_lists(self, acache: AsyncCache) -> None:
        needs_collections(acache)
        r = retains(acache)
        assert await acache.rpush("l", "a", "b") == 2
        assert await acache.lpush("l", "z", "y") == (4 if r else 2)
        if not r:
            assert await acache.lrange("l") == []
            assert await acache.lpop("l") is None
            return
        assert await acache.lrange("l") == ["y", "z", "a", "b"]
        assert await acache.lrange("l", 1, 2) == ["z", "a"]
        assert await acache.lrange("l", -2, -1) == ["a", "b"]
        assert await acache.lrange("l", 5, 10) == []
        assert await acache.llen("l") == 4
        assert await acache.lpop("l") == "y"
        assert await acache.rpop("l") == "b"
        assert await acache.lpop("l") == "z"
        assert await acache.rpop("l") == "a"
        assert await acache.lpop("l", default="empty") == "empty"
        assert await acache.exists("l") is False
        assert await acache.llen("absent") == 0
        await acache.rpush("l2", {"x": 1}, None, 5)
        assert await acache.lrange("l2") == [{"x": 1}, None, 5]

    async def test_list_errors(self, acache: AsyncCache) -> None:
        needs_collections(acache)
        with pytest.raises(InvalidArgument, match="at least one"):
            await acache.lpush("l")
        await acache.set("plain", "v")
        if retains(acache):
            with pytest.raises(WrongType, match="plain"):
                await acache.lpush("plain", 1)
            assert await acache.get("plain") == "v"
            await acache.rpush("l", 1)
            with pytest.raises(WrongType, match="l"):
                await acache.get("l")

    # -------------------------------------------------------------------- sets

    async def test_sets(self, acache: AsyncCache) -> None:
        needs_collections(acache)
        r = retains(acache)
        assert await acache.sadd("s", "a", "b", "a") == 2
        assert await acache.sadd("s", "b", "c", 7) == (2 if r else 3)
        if not r:
            assert await acache.smembers("s") == set()
            return
        assert await acache.smembers("s") == {"a", "b", "c", 7}
        assert await acache.sismember("s", "a") is True
        assert await acache.sismember("s", 7) is True
        assert await acache.sismember("s", "zz") is False
        assert await acache.scard("s") == 4
        assert await acache.srem("s", "a", "zz") == 1
        assert await acache.srem("s", "b", "c", 7) == 3
        assert await acache.exists("s") is False
        assert await acache.scard("s") == 0
        assert await acache.smembers("absent") == set()

    async def test_set_errors(self, acache: AsyncCache) -> None:
        needs_collections(acache)
        with pytest.raises(InvalidArgument, match="at least one"):
            await acache.sadd("s")
        await acache.set("plain", "v")
        if retains(acache):
            with pytest.raises(WrongType):
                await acache.sadd("plain", 1)
            await acache.sadd("s", 1)
            with pytest.raises(WrongType):
                await acache.lpush("s", 1)

    # ------------------------------------------------------------------ hashes

    async def test_hashes(self, acache: AsyncCache) -> None:
        needs_collections(acache)
        r = retains(acache)
        assert await acache.hset("h", "f1", "v1") == 1
        assert await acache.hset("h", mapping={"f1": "new", "f2": [1, 2], "n": 5}) == (2 if r else 3)
        if not r:
            assert await acache.hgetall("h") == {}
            assert await acache.hincrby("h", "n", 2) == 2
            return
        assert await acache.hget("h", "f1") == "new"
        assert await acache.hget("h", "absent", "d") == "d"
        assert await acache.hgetall("h") == {"f1": "new", "f2": [1, 2], "n": 5}
        assert await acache.hexists("h", "f2") is True
        assert await acache.hexists("h", "zz") is False
        assert await acache.hlen("h") == 3
        assert await acache.hincrby("h", "n", 10) == 15
        assert await acache.hincrby("h", "new", -2) == -2
        assert await acache.hget("h", "n") == 15
        assert await acache.hdel("h", "f1", "zz") == 1
        assert await acache.hdel("h", "f2", "n", "new") == 3
        assert await acache.exists("h") is False
        assert await acache.hlen("absent") == 0

    async def test_hash_errors(self, acache: AsyncCache) -> None:
        needs_collections(acache)
        with pytest.raises(InvalidArgument):
            await acache.hset("h")
        with pytest.raises(InvalidArgument, match="without a value"):
            await acache.hset("h", "f")
        with pytest.raises(InvalidKey, match="field"):
            await acache.hset("h", mapping={1: "x"})  # type: ignore[dict-item]
        with pytest.raises(InvalidArgument, match="amount"):
            await acache.hincrby("h", "f", 1.5)  # type: ignore[arg-type]
        await acache.hset("h", "text", "abc")
        if retains(acache):
            with pytest.raises(WrongType):
                await acache.hincrby("h", "text")
            assert await acache.hget("h", "text") == "abc"
            with pytest.raises(WrongType):
                await acache.incr("h")

    async def test_missing_capabilities_are_refused_by_name(self, acache: AsyncCache) -> None:
        caps = acache.backend.capabilities
        if caps.collections and caps.delete_pattern and caps.versions:
            pytest.skip(f"{acache.backend.name} has every optional capability")
        if not caps.versions:
            verbs: tuple[Callable[[], Any], ...] = (
                lambda: acache.get_item("k"),
                lambda: acache.set("k", 1, if_version=1),
                lambda: acache.delete("k", if_version=1),
                lambda: acache.pull("k"),
                lambda: acache.replace("k", 1),
            )
            for call in verbs:
                with pytest.raises(UnsupportedOperation, match=acache.backend.name):
                    await call()
        if not caps.collections:
            calls: tuple[Callable[[], Any], ...] = (
                lambda: acache.lpush("l", 1),
                lambda: acache.sadd("s", 1),
                lambda: acache.hset("h", "f", 1),
            )
            for call in calls:
                with pytest.raises(UnsupportedOperation, match=acache.backend.name):
                    await call()
        if not caps.delete_pattern:
            with pytest.raises(UnsupportedOperation, match="delete_pattern"):
                await acache.delete_pattern("*")
            refused = rf"backend '{acache.backend.name}.*' does not support"
            with pytest.raises(UnsupportedOperation, match=rf"{refused} keys\(\)"):
                await acache.keys()
            # Refused by the call itself, before any iteration.
            with pytest.raises(UnsupportedOperation, match=rf"{refused} iter_keys\(\)"):
                acache.iter_keys("user:*")

    # --------------------------------------------- verbs: get_item, CAS, pull, replace

    async def test_get_item_reports_value_and_metadata(self, acache: AsyncCache) -> None:
        needs_versions(acache)
        assert await acache.get_item("absent") is None
        before = time.time()
        await acache.set("k", {"a": 1}, ttl=60)
        item = await acache.get_item("k")
        if not retains(acache):
            assert item is None
            return
        assert item is not None
        assert (item.key, item.value, item.tags) == ("k", {"a": 1}, ())
        assert type(item.version) in (int, str)
        assert item.expires_at is not None
        assert before + 55 < item.expires_at < time.time() + 65
        assert item.created is None or before - 5 < item.created < time.time() + 5
        assert item.size is None or item.size > 0
        await acache.set("forever", 1, ttl=None)
        forever = await acache.get_item("forever")
        assert forever is not None
        assert forever.expires_at is None

    async def test_version_changes_with_the_value(self, acache: AsyncCache) -> None:
        needs_versions(acache)
        if not retains(acache):
            pytest.skip("the null backend keeps no entries")
        await acache.set("k", "one")
        first = await acache.get_item("k")
        again = await acache.get_item("k")
        assert first is not None
        assert again is not None
        assert again.version == first.version  # reads change nothing
        await acache.set("k", "two")
        second = await acache.get_item("k")
        assert second is not None
        assert second.version != first.version

    async def test_compare_and_set(self, acache: AsyncCache) -> None:
        needs_versions(acache)
        await acache.set("k", 1)
        item = await acache.get_item("k")
        if not retains(acache):
            assert await acache.set("k", 2, if_version=1) is False
            return
        assert item is not None
        assert await acache.set("k", 2, ttl=60, if_version=item.version) is True
        assert await acache.get("k") == 2
        remaining = await acache.ttl("k")
        assert isinstance(remaining, float)
        assert 50 < remaining <= 60
        # The old version no longer matches: the entry changed.
        assert await acache.set("k", 3, if_version=item.version) is False
        assert await acache.get("k") == 2

    async def test_compare_and_set_loses_to_a_concurrent_change(self, acache: AsyncCache) -> None:
        needs_versions(acache)
        if not retains(acache):
            pytest.skip("the null backend keeps no entries")
        await acache.set("k", "mine")
        item = await acache.get_item("k")
        assert item is not None
        await acache.set("k", "theirs")  # another writer, between our read and our write
        assert await acache.set("k", "stale", if_version=item.version) is False
        assert await acache.delete("k", if_version=item.version) is False
        assert await acache.get("k") == "theirs"
        # An absent key never matches, not even a version it once had.
        await acache.delete("k")
        assert await acache.set("k", "again", if_version=item.version) is False
        assert await acache.exists("k") is False
        # Nor does a made-up version of either kind.
        await acache.set("k", 1)
        for made_up in (123456789, "not-a-version"):
            assert await acache.set("k", 2, if_version=made_up) is False
            assert await acache.delete("k", if_version=made_up) is False
        assert await acache.get("k") == 1

    async def test_compare_and_delete(self, acache: AsyncCache) -> None:
        needs_versions(acache)
        await acache.set("k", "token")
        item = await acache.get_item("k")
        if not retains(acache):
            assert await acache.delete("k", if_version=1) is False
            return
        assert item is not None
        assert await acache.delete("k", if_version=item.version) is True
        assert await acache.exists("k") is False
        assert await acache.delete("k", if_version=item.version) is False

    async def test_bad_if_version_is_refused(self, acache: AsyncCache) -> None:
        await acache.set("k", 1)
        for bad in (None, 1.5, True, b"v", ["v"]):
            with pytest.raises(InvalidArgument, match="if_version"):
                await acache.set("k", 2, if_version=bad)
            with pytest.raises(InvalidArgument, match="if_version"):
                await acache.delete("k", if_version=bad)
        assert await acache.get("k") == (1 if retains(acache) else None)

    async def test_pull(self, acache: AsyncCache) -> None:
        needs_versions(acache)
        await acache.set("k", [1, "two"])
        assert await acache.pull("k") == ([1, "two"] if retains(acache) else None)
        assert await acache.exists("k") is False
        assert await acache.pull("k") is None
        assert await acache.pull("k", "fallback") == "fallback"
        await acache.set("none", None)
        assert await acache.pull("none", "fallback") == (None if retains(acache) else "fallback")
        if acache.backend.capabilities.collections and retains(acache):
            await acache.rpush("list", 1)
            with pytest.raises(WrongType):
                await acache.pull("list")
            assert await acache.llen("list") == 1

    async def test_replace(self, acache: AsyncCache) -> None:
        needs_versions(acache)
        assert await acache.replace("k", 1) is False
        assert await acache.exists("k") is False
        await acache.set("k", 1)
        if not retains(acache):
            assert await acache.replace("k", 2) is False
            return
        assert await acache.replace("k", 2, ttl=60) is True
        assert await acache.get("k") == 2
        remaining = await acache.ttl("k")
        assert isinstance(remaining, float)
        assert 50 < remaining <= 60
        with pytest.raises(InvalidTTL):
            await acache.replace("k", 3, ttl=0)
        assert await acache.get("k") == 2

    async def test_concurrent_pulls_hand_the_value_to_one(self, acache: AsyncCache) -> None:
        needs_versions(acache)
        await acache.set("k", "prize")
        got: list[Any] = []

        async def puller() -> None:
            got.append(await acache.pull("k", MISSING))

        await concurrently([puller for _ in range(8)])
        winners = [value for value in got if value is not MISSING]
        assert winners == (["prize"] if retains(acache) else [])

    async def test_concurrent_compare_and_set_increments_add_up(self, acache: AsyncCache) -> None:
        needs_versions(acache)
        if not retains(acache):
            pytest.skip("the null backend keeps no entries")
        await acache.set("n", 0)

        async def worker() -> None:
            for _ in range(10):
                while True:  # the optimistic loop: read, compute, write if unchanged
                    item = await acache.get_item("n")
                    assert item is not None
                    if await acache.set("n", item.value + 1, if_version=item.version):
                        break

        await concurrently([worker for _ in range(5)])
        assert await acache.get("n") == 50

    # -------------------------------------------------------------- get_or_set

    async def test_get_or_set(self, acache: AsyncCache) -> None:
        calls: list[int] = []

        def factory() -> str:
            calls.append(1)
            return "made"

        assert await acache.get_or_set("k", factory, ttl=60) == "made"
        assert await acache.get_or_set("k", factory, ttl=60) == "made"
        assert len(calls) == (1 if retains(acache) else 2)

    async def test_get_or_set_exception_not_cached(self, acache: AsyncCache) -> None:
        def boom() -> str:
            raise RuntimeError("factory failed")

        with pytest.raises(RuntimeError, match="factory failed"):
            await acache.get_or_set("k", boom)
        assert await acache.exists("k") is False
        with pytest.raises(InvalidArgument, match="callable"):
            await acache.get_or_set("k", "not callable")  # type: ignore[arg-type]

    # ------------------------------------------------------------- concurrency

    async def test_concurrent_counters_add_up(self, acache: AsyncCache) -> None:
        collections = acache.backend.capabilities.collections

        async def worker() -> None:
            for _ in range(50):
                await acache.incr("counter")
                if collections:
                    await acache.hincrby("hash", "field")
                    await acache.rpush("list", 1)

        await concurrently([worker for _ in range(10)])
        if retains(acache):
            assert await acache.get("counter") == 500
            if collections:
                assert await acache.hget("hash", "field") == 500
                assert await acache.llen("list") == 500

    async def test_concurrent_get_or_set_is_single_flight(self, acache: AsyncCache) -> None:
        calls: list[int] = []

        async def factory() -> str:
            calls.append(1)
            await asyncio.sleep(0.1)
            return "made once"

        results: list[Any] = []

        async def worker() -> None:
            results.append(await acache.get_or_set("flight", factory, ttl=60))

        await concurrently([worker for _ in range(10)])
        assert results == ["made once"] * 10
        if retains(acache):
            assert len(calls) == 1
            assert await acache.get("flight") == "made once"

    async def test_concurrent_writers_never_mix_values(self, acache: AsyncCache) -> None:
        async def writer(n: int) -> None:
            for i in range(30):
                await acache.set(f"k{i % 5}", {"writer": n, "i": i})
                got = await acache.get(f"k{i % 5}")
                assert got is None or set(got) == {"writer", "i"}

        await concurrently([functools.partial(writer, n) for n in range(8)])

    # ------------------------------------------------------ stats, hooks, life

    async def test_stats(self, acache: AsyncCache) -> None:
        acache.reset_stats()
        await acache.set("k", 1)
        await acache.get("k")
        await acache.get("absent")
        stats = await acache.stats()
        assert stats.sets == 1
        assert (stats.hits, stats.misses) == ((1, 1) if retains(acache) else (0, 2))
        assert stats.hit_rate == (0.5 if retains(acache) else 0.0)

    async def test_hooks_observe_and_never_break(self, acache: AsyncCache) -> None:
        seen: list[HookEvent] = []

        def broken(event: HookEvent) -> None:
            raise ValueError("hook bug")

        acache.hooks.add("before_set", broken)
        acache.hooks.add("after_set", seen.append)
        acache.hooks.add("after_get", seen.append)
        try:
            await acache.set("k", 1)
            await acache.get("k")
        finally:
            acache.hooks.remove("before_set", broken)
            acache.hooks.remove("after_set", seen.append)
            acache.hooks.remove("after_get", seen.append)
        assert [(e.operation, e.key) for e in seen] == [("set", "k"), ("get", "k")]
        assert seen[1].result == (1 if retains(acache) else None)

    async def test_ping_and_health(self, acache: AsyncCache) -> None:
        assert await acache.ping() is True
        report = await acache.health()
        assert report.healthy is True
        assert report.latency is not None
        assert report.latency >= 0

    async def test_closed_cache_refuses(self, acache: AsyncCache) -> None:
        # Runs last in the class; the fixture's own close() afterwards must be a no-op.
        await acache.close()
        await acache.close()
        assert acache.closed
        with pytest.raises(CacheClosed, match="close"):
            await acache.get("k")
        with pytest.raises(CacheClosed):
            await acache.set("k", 1)
        with pytest.raises(CacheClosed):
            await acache.lpush("k", 1)
        with pytest.raises(CacheClosed):
            await acache.keys()
        with pytest.raises(CacheClosed):
            acache.iter_keys()
        report = await acache.health()
        assert report.healthy is False

    # ------------------------------------------------------------ ttl range (issue 13)
    # One bound on every backend: MAX_TTL is stored as given, anything longer is refused
    # with InvalidTTL by every ttl-taking method, and changes nothing.

    async def test_max_ttl_is_stored(self, acache: AsyncCache) -> None:
        await acache.set("set", 1, ttl=MAX_TTL)
        await acache.set_many({"many": 1}, ttl=timedelta(seconds=MAX_TTL))
        assert await acache.add("add", 1, ttl=MAX_TTL) is True
        await acache.set("expire", 1, ttl=None)
        await acache.set("touch", 1, ttl=None)
        assert await acache.expire("expire", MAX_TTL) is retains(acache)
        assert await acache.touch("touch", ttl=MAX_TTL) is retains(acache)
        assert await acache.get_or_set("factory", lambda: 1, ttl=MAX_TTL) == 1
        for key in ("set", "many", "add", "expire", "touch", "factory"):
            assert await acache.get(key) == (1 if retains(acache) else None), key
            remaining = await acache.ttl(key)
            if retains(acache):
                assert isinstance(remaining, float), (key, remaining)
                # Memcached rounds to whole seconds of its own clock, which may run up to a
                # second apart from ours: two ticks of slack.
                slack = 2 * acache.backend.capabilities.ttl_resolution
                assert MAX_TTL - 5 <= remaining <= MAX_TTL + slack, (key, remaining)

    @pytest.mark.parametrize("ttl", [MAX_TTL + 1, timedelta(days=366), 2**31, 2**64, 1e300], ids=repr)
    async def test_ttl_over_max_ttl_is_refused_and_changes_nothing(
        self, acache: AsyncCache, ttl: Any
    ) -> None:
        await acache.set("kept", "old", ttl=None)
        calls: list[Callable[[], Any]] = [
            lambda: acache.set("kept", "new", ttl=ttl),
            lambda: acache.set("fresh", "new", ttl=ttl),
            lambda: acache.add("fresh", "new", ttl=ttl),
            lambda: acache.set_many({"kept": "new", "fresh": "new"}, ttl=ttl),
            lambda: acache.expire("kept", ttl),
            lambda: acache.touch("kept", ttl=ttl),
            lambda: acache.get_or_set("fresh", lambda: "new", ttl=ttl),
        ]
        for call in calls:
            with pytest.raises(InvalidTTL, match="MAX_TTL"):
                await call()
        if retains(acache):
            assert await acache.get("kept") == "old"
            assert await acache.ttl("kept") is None
        assert await acache.get("fresh") is None
        with pytest.raises(ConfigurationError, match="MAX_TTL"):
            AsyncCache(acache.backend, namespace="long", default_ttl=ttl)

    # ------------------------------------------------------------ unencodable keys (issue 13)
    # A str holding a lone surrogate cannot be stored by any backend that leaves the process
    # (the Redis driver raised UnicodeEncodeError); every backend refuses it the same way.

    @pytest.mark.parametrize("bad", ["\ud800", "user:\udcff", "ok-\U0001f600-\udfff"], ids=ascii)
    async def test_lone_surrogate_key_is_invalid_key_everywhere(self, acache: AsyncCache, bad: str) -> None:
        await acache.set("good", 1)
        calls: list[Callable[[], Any]] = [
            lambda: acache.get(bad),
            lambda: acache.set(bad, 1),
            lambda: acache.set(bad, 1, ttl=None),
            lambda: acache.set(bad, 1, ttl=60),
            lambda: acache.add(bad, 1),
            lambda: acache.delete(bad),
            lambda: acache.exists(bad),
            lambda: acache.get_many(["good", bad]),
            lambda: acache.set_many({"good": 2, bad: 2}),
            lambda: acache.delete_many(["good", bad]),
            lambda: acache.incr(bad),
            lambda: acache.decr(bad),
            lambda: acache.expire(bad, 60),
            lambda: acache.touch(bad, ttl=60),
            lambda: acache.ttl(bad),
            lambda: acache.get_or_set(bad, lambda: 1),
            lambda: acache.get_item(bad),
            lambda: acache.set(bad, 1, if_version=1),
            lambda: acache.delete(bad, if_version=1),
            lambda: acache.pull(bad),
            lambda: acache.replace(bad, 1),
            lambda: acache.lpush(bad, 1),
            lambda: acache.rpush(bad, 1),
            lambda: acache.lpop(bad),
            lambda: acache.rpop(bad),
            lambda: acache.llen(bad),
            lambda: acache.lrange(bad),
            lambda: acache.sadd(bad, 1),
            lambda: acache.srem(bad, 1),
            lambda: acache.smembers(bad),
            lambda: acache.sismember(bad, 1),
            lambda: acache.scard(bad),
            lambda: acache.hset(bad, "f", 1),
            lambda: acache.hset("hash", bad, 1),
            lambda: acache.hset("hash", mapping={bad: 1}),
            lambda: acache.hget(bad, "f"),
            lambda: acache.hget("hash", bad),
            lambda: acache.hgetall(bad),
            lambda: acache.hdel(bad, "f"),
            lambda: acache.hdel("hash", bad),
            lambda: acache.hexists("hash", bad),
            lambda: acache.hlen(bad),
            lambda: acache.hincrby("hash", bad),
        ]
        if acache.backend.capabilities.delete_pattern:
            calls.append(lambda: acache.delete_pattern(bad + "*"))
        calls.append(lambda: acache.keys(bad + "*"))
        calls.append(lambda: acache.iter_keys(bad + "*"))  # refused by the call itself
        for number, call in enumerate(calls):
            with pytest.raises(InvalidKey, match="surrogate") as info:
                await call()
            assert repr(bad)[1:-1] in str(info.value), number  # named, escaped as repr() does
        # Nothing was written, and the batch calls refused before touching the good key.
        assert await acache.get("good") == (1 if retains(acache) else None)
        assert await acache.exists("hash") is False


def _codec(acache: AsyncCache) -> Any:
    """The serializer name of ``acache`` (None when it stores objects), for sibling caches."""
    codec = acache._codec
    return None if codec is None else codec.serializer.name
