"""Tags: set/set_many/add/get_or_set(tags=...), invalidate_tags, the value envelope.

Per backend (the ``cache``/``acache`` fixtures, both flavours): one round trip of every
tagged operation, including a lost tag record (what eviction does). Then the envelope's wire
form through every codec, argument checks, a layered cache across two processes' worth of
tiers, and the multi-process tag race on redis, memcached, file and our server.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tag_race_workers
from servers import MemcachedServer, RedisServer
from stratacache import MISSING, AsyncCache, Cache, InvalidArgument, SerializationError, UnsupportedOperation
from stratacache.core.envelope import TAG_RECORD_PREFIX, Envelope
from stratacache.serializers import Codec

# ------------------------------------------------------------------ every backend


def _forgets(backend_name: str) -> bool:
    return backend_name == "null"


async def test_tags_on_every_backend_async(acache: AsyncCache, backend_name: str) -> None:
    await acache.set("a", {"n": 1}, ttl=60, tags=["t1", "t2"])
    await acache.set("b", [2], tags=("t2",))
    await acache.set("plain", 3)
    await acache.set_many({"c": "c", "d": None}, ttl=60, tags=["t3"])
    if _forgets(backend_name):
        # The null backend stores nothing: every tagged read is a miss, invalidation is harmless.
        assert await acache.get_many(["a", "b", "c", "d"]) == {}
        await acache.invalidate_tags("t1")
        assert await acache.get_or_set("e", lambda: 5, tags=["t1"]) == 5
        assert await acache.get("e") is None
        return
    assert await acache.get("a") == {"n": 1}
    assert await acache.get_many(["a", "b", "plain", "c", "d"]) == {
        "a": {"n": 1},
        "b": [2],
        "plain": 3,
        "c": "c",
        "d": None,
    }
    await acache.invalidate_tags("t1")
    assert await acache.get("a", "miss") == "miss"
    assert await acache.get_many(["a", "b", "plain"]) == {"b": [2], "plain": 3}
    await acache.invalidate_tags("t2", "t3")
    assert await acache.get_many(["a", "b", "plain", "c", "d"]) == {"plain": 3}
    # add: an invalidated entry leaves its key free; a valid one keeps it.
    assert await acache.add("b", "new", tags=["t2"]) is True
    assert await acache.add("b", "newer", tags=["t2"]) is False
    assert await acache.get("b") == "new"
    calls: list[int] = []

    async def load() -> str:
        calls.append(1)
        return f"loaded{len(calls)}"

    assert await acache.get_or_set("g", load, ttl=60, tags=(t for t in ["t4"])) == "loaded1"
    assert await acache.get_or_set("g", load, ttl=60, tags=["t4"]) == "loaded1"
    await acache.invalidate_tags("t4")
    assert await acache.get_or_set("g", load, ttl=60, tags=["t4"]) == "loaded2"
    # A lost tag record (eviction, expiry, clear) makes its entries misses, never hits again.
    await acache.set("h", "h", tags=["t5"])
    assert await acache.delete(TAG_RECORD_PREFIX + "t5") is True
    assert await acache.get("h") is None
    await acache.set("h", "h2", tags=["t5"])
    assert await acache.get("h") == "h2"
    envelope = await acache._read_envelope("h")
    assert isinstance(envelope, Envelope)
    assert envelope.value == "h2"
    assert list(envelope.tags or {}) == ["t5"]
    plain = await acache._read_envelope("plain")
    assert plain == Envelope(3)
    await acache._write_envelope("f", Envelope("v", fresh_until=1.5, delta=0.25, created=1.0), 60)
    assert await acache.get("f") is None  # past its ttl: only get_or_set's stale copy
    assert await acache.get_many(["f"]) == {}
    assert await acache._read_envelope("f") == Envelope("v", None, 1.5, 0.25, 1.0)
    # Versions read before a load: an invalidation in between makes the write a miss.
    seen = await acache.tag_versions("t6", "t7")
    assert seen.tags == ("t6", "t7")
    await acache.invalidate_tags("t7")
    await acache.set("s", "stale", tags=seen)
    assert await acache.get("s") is None
    await acache.set("s", "fresh", tags=await acache.tag_versions("t6", "t7"))
    assert await acache.get("s") == "fresh"


def test_tags_on_every_backend_sync(cache: Cache, backend_name: str) -> None:
    cache.set("a", {"n": 1}, ttl=60, tags=["t1", "t2"])
    cache.set("b", [2], tags=["t2"])
    cache.set("plain", 3)
    cache.set_many({"c": "c"}, tags=["t3"])
    if _forgets(backend_name):
        assert cache.get_many(["a", "b", "c"]) == {}
        cache.invalidate_tags("t1")
        assert cache.get_or_set("e", lambda: 5, tags=["t1"]) == 5
        return
    assert cache.get("a") == {"n": 1}
    assert cache.get_many(["a", "b", "plain", "c"]) == {"a": {"n": 1}, "b": [2], "plain": 3, "c": "c"}
    cache.invalidate_tags("t1", "t3")
    assert cache.get_many(["a", "b", "plain", "c"]) == {"b": [2], "plain": 3}
    assert cache.add("a", "again", tags=["t1"]) is True
    assert cache.get("a") == "again"
    assert cache.get_or_set("g", lambda: "x", tags=["t2"]) == "x"
    cache.invalidate_tags("t2")
    assert cache.get_or_set("g", lambda: "y", tags=["t2"]) == "y"
    assert cache.get("b") is None
    # Freshness metadata (stampede control): past fresh_until, plain reads miss, while
    # get_or_set's envelope read still finds the stale copy.
    soon = cache._clock() + 3600  # the cache's notion of now (a FakeClock on some backends)
    cache._write_envelope("f", Envelope("v", fresh_until=soon, delta=0.25, created=1.0), 7200)
    assert cache.get("f") == "v"
    assert cache.get_many(["f"]) == {"f": "v"}
    assert cache.exists("f")
    assert 3500 < cache.ttl("f") <= 3600  # type: ignore[operator]
    cache._write_envelope("f", Envelope("v", fresh_until=1.5, delta=0.25, created=1.0), 60)
    assert cache.get("f") is None
    assert cache.get_many(["f", "plain"]) == {"plain": 3}
    assert not cache.exists("f")
    assert cache.ttl("f") is MISSING
    assert cache._read_envelope("f") == Envelope("v", None, 1.5, 0.25, 1.0)


# ------------------------------------------------------------- arguments, wire form


@pytest.mark.parametrize(
    ("tags", "match"),
    [
        ("user", "tags must be an iterable of str"),
        (b"user", "tags must be an iterable of str"),
        (5, "tags must be an iterable of str"),
        ([1], "every tag must be a str"),
        ([""], "1..200 characters"),
        (["x" * 201], "1..200 characters"),
        (["\ud800"], "tags: .*lone surrogate"),
    ],
)
def test_bad_tags_are_refused_naming_the_parameter(tags: Any, match: str) -> None:
    with Cache("memory://") as cache:
        with pytest.raises(InvalidArgument, match=match):
            cache.set("k", 1, tags=tags)
        with pytest.raises(InvalidArgument, match=match):
            cache.set_many({"k": 1}, tags=tags)
        with pytest.raises(InvalidArgument, match=match):
            cache.add("k", 1, tags=tags)
        with pytest.raises(InvalidArgument, match=match):
            cache.get_or_set("k", lambda: 1, tags=tags)
        if isinstance(tags, list):  # invalidate_tags takes the tags as arguments
            with pytest.raises(InvalidArgument, match=match):
                cache.invalidate_tags(*tags)
        assert cache.get("k") is None


def test_invalidate_tags_takes_names_not_a_list() -> None:
    match = "every tag must be a str, not list"
    with Cache("memory://") as cache, pytest.raises(InvalidArgument, match=match):
        cache.invalidate_tags(["a", "b"])  # type: ignore[arg-type]


async def test_bad_tags_are_refused_async() -> None:
    async with AsyncCache("memory://") as cache:
        with pytest.raises(InvalidArgument, match="tags must be an iterable"):
            await cache.set("k", 1, tags="t")
        with pytest.raises(InvalidArgument, match="every tag must be a str"):
            await cache.invalidate_tags(None)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match=r"tags: a tag must be 1\.\.200"):
            await cache.tag_versions("")
        with pytest.raises(InvalidArgument, match="every tag must be a str, not list"):
            await cache.tag_versions(["a"])  # type: ignore[arg-type]


def test_tag_versions_value() -> None:
    with Cache("memory://") as cache:
        seen = cache.tag_versions("a", "b", "a")
        assert seen.tags == ("a", "b")
        assert seen == cache.tag_versions("a", "b")
        assert repr(seen) == "TagVersions('a', 'b')"
        assert set(seen.as_dict()) == {"a", "b"}
        cache.set_many({"x": 1, "y": 2}, tags=seen)
        assert cache.add("z", 3, tags=seen) is True
        assert cache.get_or_set("w", lambda: 4, tags=seen) == 4
        cache.invalidate_tags("b")
        assert cache.get_many(["x", "y", "z", "w"]) == {}
        assert seen != cache.tag_versions("a", "b")


def test_raw_serializer_cannot_carry_tags() -> None:
    with Cache("memory://", serializer="raw") as cache:
        with pytest.raises(UnsupportedOperation, match="'raw' serializer stores bytes exactly as given"):
            cache.set("k", b"v", tags=["t"])
        with pytest.raises(UnsupportedOperation, match=r"does not support tags and stampede metadata\(\)"):
            cache.get_or_set("k", lambda: b"v", tags=["t"])
        with pytest.raises(UnsupportedOperation, match="'raw' serializer"):
            cache._write_envelope("k", Envelope(b"v", fresh_until=1.0), 60)
        with pytest.raises(UnsupportedOperation, match="'raw' serializer"):
            cache.tag_versions("t")
        assert not cache.exists(TAG_RECORD_PREFIX + "t")  # refused before touching a record
        cache.set("k", b"v")  # untagged raw values are unaffected
        assert cache.get("k") == b"v"


@pytest.mark.parametrize(
    "options",
    [
        {"serializer": "msgpack"},
        {"serializer": "json"},
        {"serializer": "pickle", "signing_key": "k" * 32},
        {"compression": "zlib", "compression_threshold": 0},
        {"encryption_keys": [b"0123456789abcdef"]},
    ],
    ids=["msgpack", "json", "pickle", "zlib", "aes"],
)
def test_envelope_through_every_codec(options: dict[str, Any]) -> None:
    with Cache("memory://", **options) as cache:
        # A user value shaped like the wire list stays a plain value.
        lookalike = [1, {"t": 1}, None, None, None]
        cache.set("look", lookalike)
        assert cache.get("look") == lookalike
        cache.set("k", {"deep": [1, 2]}, tags=["t"])
        assert cache.get("k") == {"deep": [1, 2]}
        cache.invalidate_tags("t")
        assert cache.get("k") is None


def test_envelope_wire_form_is_flagged_and_checked() -> None:
    codec = Codec("msgpack")
    data = codec.encode_envelope(Envelope("v", {"t": 7}, 2.0, None, 1.0), "k")
    assert data[3] & 0x08  # the envelope flag: plain values never carry it
    assert codec.decode(data, "k") == Envelope("v", {"t": 7}, 2.0, None, 1.0)
    assert codec.decode(codec.encode([1, None, None, None, None]), "k") == [1, None, None, None, None]
    # Flagged bytes whose payload is not a well-formed envelope are refused, naming the key.
    forged = data[:4] + codec.encode(["v", {"t": 1.5}, None, None, None])[4:]
    with pytest.raises(SerializationError, match=r"malformed envelope.*key 'k'"):
        codec.decode(forged, "k")
    with pytest.raises(SerializationError, match="malformed envelope"):
        codec.decode(data[:4] + codec.encode([1, 2])[4:], "k")
    with pytest.raises(SerializationError, match="set member"):
        codec.decode_member(data, "k")


def test_invalidated_entries_are_dropped_when_read() -> None:
    with Cache("memory://") as cache:
        cache.set("k", 1, ttl=60, tags=["t"])
        cache.invalidate_tags("t")
        assert cache.backend.exists("k")  # lazily: still stored until read, expired or evicted
        assert cache.get_many(["k"]) == {}
        assert not cache.backend.exists("k")
        cache.set("j", 1, ttl=60, tags=["t"])
        cache.invalidate_tags("t")
        assert cache.ttl("j") is MISSING  # as get sees it
        assert not cache.exists("j")
        stats = cache.stats()
        assert stats.misses == 1


# ------------------------------------------------------------------ model check

_KEYS = st.sampled_from(["a", "b", "c"])
_TAG_SETS = st.lists(st.sampled_from(["x", "y", "z"]), max_size=3)
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), _KEYS, st.integers(0, 9), _TAG_SETS),
        st.tuples(st.just("set_many"), st.lists(_KEYS, min_size=1, max_size=3), st.integers(0, 9), _TAG_SETS),
        st.tuples(st.just("add"), _KEYS, st.integers(0, 9), _TAG_SETS),
        st.tuples(st.just("invalidate"), st.lists(st.sampled_from(["x", "y", "z"]), min_size=1, max_size=2)),
        st.tuples(st.just("drop_record"), st.sampled_from(["x", "y", "z"])),
        st.tuples(st.just("get_many")),
    ),
    max_size=25,
)


@pytest.mark.parametrize("serializer", [None, "msgpack"])
@settings(max_examples=60, deadline=None)
@given(ops=_OPS)
def test_tags_follow_a_model(serializer: str | None, ops: list[Any]) -> None:
    """Random writes, invalidations and lost records against a dict model: an entry is
    visible exactly while none of its tags was invalidated (or lost its record) after it
    was written."""
    model: dict[str, tuple[int, frozenset[str]]] = {}
    with Cache("memory://", serializer=serializer) as cache:
        for op in ops:
            if op[0] == "set":
                _, key, value, tags = op
                cache.set(key, value, tags=tags)
                model[key] = (value, frozenset(tags))
            elif op[0] == "set_many":
                _, keys, value, tags = op
                cache.set_many(dict.fromkeys(keys, value), tags=tags)
                model.update(dict.fromkeys(keys, (value, frozenset(tags))))
            elif op[0] == "add":
                _, key, value, tags = op
                assert cache.add(key, value, tags=tags) is (key not in model)
                model.setdefault(key, (value, frozenset(tags)))
            elif op[0] == "invalidate":
                cache.invalidate_tags(*op[1])
                model = {k: v for k, v in model.items() if not v[1] & set(op[1])}
            elif op[0] == "drop_record":
                cache.delete(TAG_RECORD_PREFIX + op[1])
                model = {k: v for k, v in model.items() if op[1] not in v[1]}
            else:
                expected = {k: v[0] for k, v in model.items()}
                assert cache.get_many(["a", "b", "c"]) == expected
        for key in ("a", "b", "c"):
            assert cache.get(key, "miss") == (model[key][0] if key in model else "miss")


# ------------------------------------------------------------------------ layered


async def test_layered_invalidation_reaches_another_processes_top_tier(redis_server: RedisServer) -> None:
    # Two caches with private memory tiers over one Redis: what two processes would have.
    tiers = ["memory://", redis_server.url]
    async with (
        AsyncCache(backend="layered", tiers=tiers, namespace="tags-layered") as one,
        AsyncCache(backend="layered", tiers=tiers, namespace="tags-layered") as two,
    ):
        await one.clear()
        await one.set("k", "v", ttl=60, tags=["t"])
        assert await two.get("k") == "v"  # two's top tier now holds the entry and the record
        await one.invalidate_tags("t")
        # The invalidation reaches two's top tier by pub/sub, as every layered write does.
        deadline = time.monotonic() + 5
        while await two.get("k") is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert await two.get("k") is None
        assert await one.get("k") is None


# ----------------------------------------------------------------- the tag race


@pytest.fixture(params=["redis", "memcached", "file", "stratacache-server"])
def race_backend(request: pytest.FixtureRequest, tmp_path: Any) -> dict[str, Any]:
    """Keyword arguments for a Cache on a backend several processes share."""
    name = request.param
    if name == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return {"backend": server.url, "namespace": "tag-race"}
    if name == "memcached":
        memcached: MemcachedServer = request.getfixturevalue("memcached_server")
        return {"backend": memcached.url, "namespace": "tag-race"}
    if name == "file":
        return {"backend": "file", "directory": str(tmp_path)}
    running = request.getfixturevalue("stratacache_server")
    return {"backend": f"redis://127.0.0.1:{running.port}/0"}


def test_no_stale_value_after_invalidation_across_processes(race_backend: dict[str, Any]) -> None:
    """Writers read the tag's version, load the "database" slowly and write; an invalidator
    bumps the database and invalidates the tag. After each invalidation returns, no reader
    in any process may see a value loaded from before it (tag_race_workers has the details)."""
    with Cache(**race_backend) as cache:
        cache.clear()
    ctx = multiprocessing.get_context("spawn")
    db = ctx.Value("q", 0)
    floor = ctx.Value("q", 0)
    counters = ctx.Array("q", 4)  # reads, stale reads, late writes, loads
    stop = ctx.Event()
    procs = [
        ctx.Process(
            target=tag_race_workers.writer,
            args=(race_backend, db, floor, stop, counters, seed, seed == 2),
        )
        for seed in range(3)
    ]
    procs.append(ctx.Process(target=tag_race_workers.invalidator, args=(race_backend, db, floor, stop, 25)))
    for proc in procs:
        proc.start()
    try:
        for proc in procs:
            proc.join(60)
    finally:
        stop.set()
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    reads, stale, late, loads = counters[:]
    assert stale == 0, f"{stale} of {reads} reads saw a value loaded before a finished invalidation"
    # The race really happened: values loaded before an invalidation were written after it.
    assert late > 0, f"no write raced an invalidation ({loads} loads, {reads} reads)"
    assert reads > 0


@pytest.mark.parametrize("serializer", [None, "msgpack"])
def test_verbs_see_tags_and_compare_and_set_keeps_them(serializer: str | None) -> None:
    # get_item reports an entry's tags and treats an invalidated one as absent; a
    # compare-and-set may carry tags; pull of an invalidated entry is a miss.
    with Cache("memory://", serializer=serializer) as cache:
        cache.set("k", 1, tags=["a", "b"])
        item = cache.get_item("k")
        assert item is not None
        assert item.value == 1
        assert sorted(item.tags) == ["a", "b"]
        assert cache.set("k", 2, if_version=item.version, tags=["c"]) is True
        again = cache.get_item("k")
        assert again is not None
        assert again.value == 2
        assert again.tags == ("c",)
        assert cache.set("k", 3, if_version=item.version, tags=["c"]) is False
        cache.invalidate_tags("c")
        assert cache.get_item("k") is None
        cache.set("p", "v", tags=["d"])
        cache.invalidate_tags("d")
        assert cache.pull("p", "gone") == "gone"
        cache.set("q", "v", tags=["e"])
        assert cache.pull("q") == "v"


# ------------------------------------------------------------ @cached(tags=...)


def test_cached_decorator_with_tags() -> None:
    import stratacache as sc

    calls: list[tuple[str, int]] = []
    with Cache("memory://") as cache:

        @sc.cached(cache, ttl=60, tags=["users"])
        def name(user_id: int) -> str:
            calls.append(("name", user_id))
            return f"user{user_id}"

        @sc.cached(cache, ttl=60, tags=lambda user_id, full=False: [f"user:{user_id}", "users"])
        def profile(user_id: int, full: bool = False) -> dict[str, Any]:
            calls.append(("profile", user_id))
            return {"id": user_id, "full": full}

        assert name(1) == "user1"
        assert name(1) == "user1"
        assert profile(1) == {"id": 1, "full": False}
        assert profile(2, full=True) == {"id": 2, "full": True}
        assert profile(1) == {"id": 1, "full": False}
        assert len(calls) == 3
        cache.invalidate_tags("user:1")  # the callable's per-call tag: only user 1's profile
        assert profile(1) == {"id": 1, "full": False}
        assert profile(2, full=True) == {"id": 2, "full": True}
        assert name(1) == "user1"
        assert calls[3:] == [("profile", 1)]
        cache.invalidate_tags("users")  # the shared tag: every entry of both functions
        assert name(1) == "user1"
        assert profile(2, full=True) == {"id": 2, "full": True}
        assert calls[4:] == [("name", 1), ("profile", 2)]
        assert name.invalidate(1) is True  # type: ignore[attr-defined]
        assert name(1) == "user1"
        assert len(calls) == 7
        item = cache.get_item(name.cache_key(1))  # type: ignore[attr-defined]
        assert item is not None
        assert item.tags == ("users",)


async def test_cached_decorator_with_tags_async() -> None:
    import stratacache as sc

    calls: list[int] = []
    async with AsyncCache("memory://", serializer="msgpack") as cache:

        @sc.cached(cache, ttl=60, tags=lambda n: [f"n:{n}"])
        async def square(n: int) -> int:
            calls.append(n)
            return n * n

        @sc.cached(cache, ttl=60, tags=("all",))
        async def cube(n: int) -> int:
            calls.append(-n)
            return n**3

        assert [await square(2), await square(3), await cube(2)] == [4, 9, 8]
        assert [await square(2), await square(3), await cube(2)] == [4, 9, 8]
        assert calls == [2, 3, -2]
        await cache.invalidate_tags("n:3", "all")
        assert [await square(2), await square(3), await cube(2)] == [4, 9, 8]
        assert calls == [2, 3, -2, 3, -2]
        assert await square.invalidate(2) is True  # type: ignore[attr-defined]
        assert await square(2) == 4
        assert calls[-1] == 2


def test_cached_decorator_bad_tags() -> None:
    import stratacache as sc

    with Cache("memory://") as cache:
        with pytest.raises(sc.ConfigurationError, match="@cached: tags must be an iterable of str"):
            sc.cached(cache, tags="users")  # type: ignore[arg-type]
        with pytest.raises(sc.ConfigurationError, match="every tag must be a str"):
            sc.cached(cache, tags=[1])  # type: ignore[list-item]

        @sc.cached(cache, tags=lambda n: n)
        def bad(n: Any) -> int:
            return 1

        with pytest.raises(InvalidArgument, match="tags"):
            bad(5)  # the callable's result is checked on every call, hits included
        with pytest.raises(InvalidArgument, match="tags"):
            bad("user")
