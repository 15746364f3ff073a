"""Data sources and strategies: read-through, write-through, write-behind, refresh-ahead.

Most tests run once per flavour on the memory backend with a FakeClock (``flavour``
fixture); the sync strategies run inside the async test too, as plain blocking calls, so
each test is written once. The per-backend tests at the end run read-through,
write-through (and, in test_warming.py, warm) over every backend of the suite, and
write-behind / refresh-ahead over memory, redis, file, memcached and our server.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest

import stratacache as sc
from stratacache import MISSING, MappingSource
from stratacache.testing import FakeClock


async def ev(value: Any) -> Any:
    """``value``, awaited when the flavour under test returned an awaitable."""
    if inspect.isawaitable(value):
        return await value
    return value


class Recorder(MappingSource):
    """A dict source that records calls and can fail (``fail`` times; -1: always) or pause."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        super().__init__(data)
        self.calls: list[tuple[str, Any]] = []
        self.fail = 0
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.name = "recorder-db"

    def _hit(self, name: str, arg: Any) -> None:
        self.calls.append((name, arg))
        self.entered.set()
        if not self.gate.wait(10):
            raise TimeoutError("test gate never opened")
        if self.fail:
            if self.fail > 0:
                self.fail -= 1
            raise OSError(f"{name} failed: source down")

    def count(self, name: str) -> int:
        return sum(1 for call, _ in self.calls if call == name)

    def load(self, key: str) -> Any:
        self._hit("load", key)
        return super().load(key)

    def load_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(keys)
        self._hit("load_many", keys)
        return super().load_many(keys)

    def store(self, key: str, value: Any) -> None:
        self._hit("store", key)
        super().store(key, value)

    def store_many(self, items: dict[str, Any]) -> None:
        self._hit("store_many", sorted(items))
        super().store_many(items)

    def delete(self, key: str) -> None:
        self._hit("delete", key)
        super().delete(key)


class AsyncRecorder(Recorder):
    """The same with coroutine methods; a closed gate is awaited without blocking the loop."""

    async def _ahit(self, name: str, arg: Any) -> None:
        while not self.gate.is_set():
            self.entered.set()
            await asyncio.sleep(0.002)
        self._hit(name, arg)

    async def load(self, key: str) -> Any:  # type: ignore[override]
        await self._ahit("load", key)
        return MappingSource.load(self, key)

    async def load_many(self, keys: Iterable[str]) -> dict[str, Any]:  # type: ignore[override]
        keys = list(keys)
        await self._ahit("load_many", keys)
        return MappingSource.load_many(self, keys)

    async def store(self, key: str, value: Any) -> None:  # type: ignore[override]
        await self._ahit("store", key)
        MappingSource.store(self, key, value)

    async def store_many(self, items: dict[str, Any]) -> None:  # type: ignore[override]
        await self._ahit("store_many", sorted(items))
        MappingSource.store_many(self, items)

    async def delete(self, key: str) -> None:  # type: ignore[override]
        await self._ahit("delete", key)
        MappingSource.delete(self, key)


@dataclass
class Flavour:
    name: str
    cache: Any
    clock: FakeClock
    ReadThrough: Any
    WriteThrough: Any
    WriteBehind: Any
    RefreshAhead: Any

    def source(self, data: dict[str, Any] | None = None) -> Recorder:
        return AsyncRecorder(data) if self.name == "async" else Recorder(data)

    async def until(self, predicate: Any, timeout: float = 10.0) -> None:
        """Wait (yielding to the loop) until ``predicate()``; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "condition never became true"
            await asyncio.sleep(0.002)


@pytest.fixture(params=["sync", "async"])
async def flavour(request: pytest.FixtureRequest) -> Any:
    clock = FakeClock()
    if request.param == "sync":
        cache: Any = sc.Cache("memory://", clock=clock)
        yield Flavour("sync", cache, clock, sc.ReadThrough, sc.WriteThrough, sc.WriteBehind, sc.RefreshAhead)
        cache.close()
    else:
        cache = sc.AsyncCache("memory://", clock=clock)
        yield Flavour(
            "async",
            cache,
            clock,
            sc.AsyncReadThrough,
            sc.AsyncWriteThrough,
            sc.AsyncWriteBehind,
            sc.AsyncRefreshAhead,
        )
        await cache.close()


# The layered case: memory L1 over a real redis-server L2, in a namespace of its own (the
# session's redis-server is shared).
_LAYERED_NS = "strategies-layered"


@pytest.fixture(params=["sync", "async"])
async def layered_flavour(request: pytest.FixtureRequest, redis_server: Any) -> Any:
    options = {"backend": "layered", "tiers": ["memory://", redis_server.url], "namespace": _LAYERED_NS}
    clock = FakeClock()  # unused: the layered cache runs on real time, as redis does
    if request.param == "sync":
        cache: Any = sc.Cache(**options)
        cache.clear()
        yield Flavour("sync", cache, clock, sc.ReadThrough, sc.WriteThrough, sc.WriteBehind, sc.RefreshAhead)
        cache.close()
    else:
        cache = sc.AsyncCache(**options)
        await cache.clear()
        yield Flavour(
            "async",
            cache,
            clock,
            sc.AsyncReadThrough,
            sc.AsyncWriteThrough,
            sc.AsyncWriteBehind,
            sc.AsyncRefreshAhead,
        )
        await cache.close()


async def test_read_and_write_through_a_layered_cache(layered_flavour: Flavour, redis_server: Any) -> None:
    flavour = layered_flavour
    source = flavour.source({"a": 1})
    rt = flavour.ReadThrough(flavour.cache, source, ttl=60)
    assert await ev(rt.get("a")) == 1
    assert await ev(rt.get("a")) == 1
    assert source.count("load") == 1
    wt = flavour.WriteThrough(flavour.cache, source, ttl=60)
    await ev(wt.set("b", 2))
    assert source.data["b"] == 2
    with sc.Cache(redis_server.url, namespace=_LAYERED_NS) as shared:
        # Loads and writes reach the shared tier, where other processes read them.
        assert shared.get_many(["a", "b"]) == {"a": 1, "b": 2}
        await ev(wt.delete("b"))
        assert "b" not in source.data
        assert await ev(flavour.cache.get("b", MISSING)) is MISSING
        assert shared.get("b", MISSING) is MISSING


# ------------------------------------------------------------------------------------ read-through


async def test_read_through_loads_a_miss_once_then_hits(flavour: Flavour) -> None:
    source = flavour.source({"a": 1, "none": None})
    rt = flavour.ReadThrough(flavour.cache, source, ttl=60)
    assert await ev(rt.get("a")) == 1
    assert await ev(rt.get("a")) == 1
    assert await ev(rt.get("none", "default")) is None  # a stored None is a value
    assert await ev(rt.get("none", "default")) is None
    assert source.count("load") == 2
    assert await ev(flavour.cache.get("a")) == 1
    flavour.clock.advance(61)  # the ttl applies: the next get loads again
    assert await ev(rt.get("a")) == 1
    assert source.count("load") == 3


async def test_read_through_negative_caching(flavour: Flavour) -> None:
    source = flavour.source()
    plain = flavour.ReadThrough(flavour.cache, source, ttl=60)
    assert await ev(plain.get("gone", "d")) == "d"
    assert await ev(plain.get("gone")) is None
    assert source.count("load") == 2  # without negative_ttl every miss asks the source

    source.calls.clear()
    rt = flavour.ReadThrough(flavour.cache, source, ttl=60, negative_ttl=5)
    assert await ev(rt.get("gone")) is None
    assert await ev(rt.get("gone", "d")) == "d"
    assert await ev(rt.get_many(["gone"])) == {}
    assert source.calls == [("load", "gone")]
    source.data["gone"] = "back"
    flavour.clock.advance(6)  # the "not found" expires on its own ttl
    assert await ev(rt.get("gone")) == "back"
    # A write-through store clears a cached "not found" at once.
    wt = flavour.WriteThrough(flavour.cache, source, ttl=60, negative_ttl=5)
    assert await ev(wt.get("new")) is None
    await ev(wt.set("new", 7))
    assert await ev(wt.get("new")) == 7


async def test_read_through_get_many_batches_misses(flavour: Flavour) -> None:
    source = flavour.source({"a": 1, "b": 2, "c": 3})
    rt = flavour.ReadThrough(flavour.cache, source, ttl=60)
    await ev(flavour.cache.set("a", 10))
    assert await ev(rt.get_many(["a", "b", "c", "x", "b"])) == {"a": 10, "b": 2, "c": 3}
    assert source.calls == [("load_many", ["b", "c", "x"])]
    assert await ev(rt.get_many(["b", "c"])) == {"b": 2, "c": 3}
    assert len(source.calls) == 1
    with pytest.raises(sc.InvalidArgument, match="keys"):
        await ev(rt.get_many("abc"))
    await ev(rt.invalidate("b"))
    assert await ev(flavour.cache.get("b", MISSING)) is MISSING


async def test_read_through_source_failure_names_key_and_source(flavour: Flavour) -> None:
    source = flavour.source({"a": 1})
    source.fail = 1
    rt = flavour.ReadThrough(flavour.cache, source, ttl=60)
    with pytest.raises(sc.SourceError, match=r"recorder-db failed to load key 'a'") as info:
        await ev(rt.get("a"))
    assert isinstance(info.value.__cause__, OSError)
    assert (info.value.key, info.value.source, info.value.operation) == ("a", "recorder-db", "load")
    assert await ev(flavour.cache.get("a", MISSING)) is MISSING  # nothing cached
    assert await ev(rt.get("a")) == 1  # the source is back
    source.fail = 1
    with pytest.raises(sc.SourceError, match=r"failed to load_many keys \['b'\]"):
        await ev(rt.get_many(["b"]))
    with pytest.raises(sc.InvalidKey):
        await ev(rt.get(3))


class LoadOnly:
    """A source with ``load`` alone; ``load_many`` falls back to one load per key."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.loads: list[str] = []

    def load(self, key: str) -> Any:
        self.loads.append(key)
        return self.data.get(key, MISSING)


class ListLoader(MappingSource):
    def load_many(self, keys: Iterable[str]) -> Any:
        return [1, 2]


async def test_read_through_get_many_without_load_many(flavour: Flavour) -> None:
    source = LoadOnly({"a": 1, "b": None})
    rt = flavour.ReadThrough(flavour.cache, source)
    assert await ev(rt.get_many(["a", "b", "c"])) == {"a": 1, "b": None}
    assert source.loads == ["a", "b", "c"]
    broken = flavour.ReadThrough(flavour.cache, ListLoader({"x": 1}))
    with pytest.raises(sc.SourceError, match=r"failed to load_many keys \['x'\]") as info:
        await ev(broken.get_many(["x"]))
    assert "must return a dict, got list" in str(info.value.__cause__)


async def test_write_through_cache_failure_drops_the_stale_entry(flavour: Flavour) -> None:
    cache = (sc.AsyncCache if flavour.name == "async" else sc.Cache)("memory://", serializer="msgpack")
    try:
        source = flavour.source({"k": "old"})
        wt = flavour.WriteThrough(cache, source)
        assert await ev(wt.get("k")) == "old"
        with pytest.raises(sc.SerializationError):
            await ev(wt.set("k", object()))  # the source takes it, msgpack cannot
        assert await ev(cache.get("k", MISSING)) is MISSING  # not left holding "old"
    finally:
        await ev(cache.close())


async def test_async_read_through_is_single_flight() -> None:
    source = AsyncRecorder({"hot": "value"})
    source.gate.clear()
    async with sc.AsyncCache("memory://") as cache:
        rt = sc.AsyncReadThrough(cache, source, ttl=60)
        readers = [asyncio.create_task(rt.get("hot")) for _ in range(20)]
        await asyncio.sleep(0.02)
        source.gate.set()
        assert await asyncio.gather(*readers) == ["value"] * 20
    assert source.count("load") == 1


def test_sync_read_through_is_single_flight() -> None:
    source = Recorder({"hot": "value"})
    source.gate.clear()
    results: list[Any] = []
    with sc.Cache("memory://") as cache:
        rt = sc.ReadThrough(cache, source, ttl=60)
        threads = [threading.Thread(target=lambda: results.append(rt.get("hot"))) for _ in range(8)]
        for thread in threads:
            thread.start()
        assert source.entered.wait(5)
        time.sleep(0.05)  # let every reader reach the flight
        source.gate.set()
        for thread in threads:
            thread.join(10)
    assert results == ["value"] * 8
    assert source.count("load") == 1


# ---------------------------------------------------------------------------------- write-through


async def test_write_through_writes_source_first(flavour: Flavour) -> None:
    source = flavour.source({"k": "old"})
    wt = flavour.WriteThrough(flavour.cache, source, ttl=60)
    assert await ev(wt.get("k")) == "old"
    await ev(wt.set("k", "new"))
    assert source.data["k"] == "new"
    assert await ev(flavour.cache.get("k")) == "new"

    source.fail = 1
    with pytest.raises(sc.SourceError, match=r"failed to store key 'k'") as info:
        await ev(wt.set("k", "newer"))
    assert isinstance(info.value.__cause__, OSError)
    assert source.data["k"] == "new"
    assert await ev(flavour.cache.get("k")) == "new"  # the cache is untouched

    source.fail = 1
    with pytest.raises(sc.SourceError, match=r"failed to delete key 'k'"):
        await ev(wt.delete("k"))
    assert await ev(flavour.cache.get("k")) == "new"
    await ev(wt.delete("k"))
    assert "k" not in source.data
    assert await ev(flavour.cache.get("k", MISSING)) is MISSING


# ------------------------------------------------------------------------------------- arguments

BAD_ARGUMENTS: list[tuple[str, str, dict[str, Any]]] = [
    ("ReadThrough", "ttl", {"ttl": -1}),
    ("ReadThrough", "negative_ttl", {"negative_ttl": 0}),
    ("ReadThrough", "negative_prefix", {"negative_prefix": ""}),
    ("WriteBehind", "max_queue", {"max_queue": 0}),
    ("WriteBehind", "batch_size", {"batch_size": 1.5}),
    ("WriteBehind", "on_full", {"on_full": "drop"}),
    ("WriteBehind", "put_timeout", {"put_timeout": -1}),
    ("WriteBehind", "flush_interval", {"flush_interval": "1"}),
    ("WriteBehind", "max_retries", {"max_retries": -1}),
    ("WriteBehind", "retry_delay", {"retry_delay": float("nan")}),
    ("WriteBehind", "retry_max_delay", {"retry_max_delay": -2}),
    ("WriteBehind", "close_timeout", {"close_timeout": None}),
    ("WriteBehind", "dead_letter", {"dead_letter": "log"}),
    ("RefreshAhead", "ttl", {"ttl": None}),
    ("RefreshAhead", "refresh_ratio", {"ttl": 10, "refresh_ratio": 1}),
    ("RefreshAhead", "max_refreshes", {"ttl": 10, "max_refreshes": 0}),
]


@pytest.mark.parametrize(("strategy", "parameter", "kwargs"), BAD_ARGUMENTS)
async def test_bad_arguments_name_the_parameter(
    flavour: Flavour, strategy: str, parameter: str, kwargs: dict[str, Any]
) -> None:
    cls = getattr(flavour, strategy)
    with pytest.raises(sc.InvalidArgument, match=parameter):
        cls(flavour.cache, flavour.source(), **kwargs)


async def test_bad_cache_or_source_is_refused(flavour: Flavour) -> None:
    with pytest.raises(sc.InvalidArgument, match="cache must be"):
        flavour.ReadThrough({"not": "a cache"}, flavour.source())
    with pytest.raises(sc.InvalidArgument, match=r"source must be a data source .* has no load\(\)"):
        flavour.ReadThrough(flavour.cache, {"a": 1})
    with pytest.raises(sc.InvalidArgument, match=r"source .* has no store\(\), delete\(\)"):
        flavour.WriteThrough(flavour.cache, type("LoadOnly", (), {"load": lambda self, k: MISSING})())
    other = sc.AsyncCache("memory://") if flavour.name == "sync" else sc.Cache("memory://")
    own = "Cache" if flavour.name == "sync" else "AsyncCache"
    with pytest.raises(sc.InvalidArgument, match=rf"cache must be a cache of this flavour \({own}\), not"):
        flavour.WriteBehind(other, flavour.source())


def test_sources_satisfy_the_protocols() -> None:
    assert isinstance(MappingSource(), sc.DataSource)
    assert isinstance(AsyncRecorder(), sc.AsyncDataSource)
    assert not isinstance({"a": 1}, sc.DataSource)


def test_sync_strategy_refuses_an_async_source() -> None:
    with sc.Cache("memory://") as cache:
        rt = sc.ReadThrough(cache, AsyncRecorder({"a": 1}))
        with pytest.raises(sc.InvalidArgument, match="awaitable"):
            rt.get("a")


# ---------------------------------------------------------------------------------- write-behind


async def test_write_behind_acknowledges_then_writes_in_batches(flavour: Flavour) -> None:
    source = flavour.source()
    wb = flavour.WriteBehind(flavour.cache, source, ttl=60, batch_size=4, flush_interval=30)
    for i in range(10):
        await ev(wb.set(f"k{i}", i))
        assert await ev(flavour.cache.get(f"k{i}")) == i  # readable at once, from the cache
    await flavour.until(lambda: len(source.data) >= 8)  # two full batches go without waiting
    assert await ev(wb.flush(10))
    assert source.data == {f"k{i}": i for i in range(10)}
    batches = [keys for name, keys in source.calls if name == "store_many"]
    assert all(len(keys) <= 4 for keys in batches)
    assert sorted(k for keys in batches for k in keys) == sorted(source.data)
    await ev(wb.delete("k3"))
    assert await ev(flavour.cache.get("k3", MISSING)) is MISSING
    await ev(wb.close())
    assert "k3" not in source.data
    assert wb.written == 11
    with pytest.raises(sc.CacheClosed, match="key 'x' not written"):
        await ev(wb.set("x", 1))
    await ev(wb.close())  # idempotent


async def test_write_behind_set_many(flavour: Flavour) -> None:
    source = flavour.source()
    wb = flavour.WriteBehind(flavour.cache, source, flush_interval=0)
    await ev(wb.set_many({"a": 1, "b": 2}))
    with pytest.raises(sc.InvalidArgument, match="mapping"):
        await ev(wb.set_many([("a", 1)]))
    with pytest.raises(sc.InvalidArgument, match="single str"):
        await ev(wb.get_many("ab"))
    await ev(wb.close())
    assert source.data == {"a": 1, "b": 2}


async def test_write_behind_flushes_by_time(flavour: Flavour) -> None:
    source = flavour.source()
    wb = flavour.WriteBehind(flavour.cache, source, batch_size=100, flush_interval=0.02)
    await ev(wb.set("a", 1))
    await flavour.until(lambda: source.data.get("a") == 1)  # no flush(): the interval did it
    await ev(wb.close())


async def test_write_behind_coalesces_per_key(flavour: Flavour) -> None:
    source = flavour.source()
    source.gate.clear()
    wb = flavour.WriteBehind(flavour.cache, source, batch_size=1, flush_interval=0)
    await ev(wb.set("first", 0))
    await flavour.until(source.entered.is_set)  # the worker is stuck writing "first"
    for i in range(50):
        await ev(wb.set("hot", i))
    await ev(wb.set("other", "x"))
    await ev(wb.set("hot", "latest"))
    assert wb.pending == 3  # first (in flight), hot, other
    source.gate.set()
    await ev(wb.close())
    assert source.data == {"first": 0, "hot": "latest", "other": "x"}
    assert [arg for name, arg in source.calls if name == "store"] == ["first", "hot", "other"]


async def test_write_behind_reads_unwritten_writes_from_its_queue(flavour: Flavour) -> None:
    source = flavour.source({"k": "old", "gone": "old", "other": "o"})
    source.gate.clear()  # nothing reaches the source during the test
    wb = flavour.WriteBehind(flavour.cache, source, ttl=10, batch_size=1, flush_interval=0)
    await ev(wb.set("first", 1))
    await flavour.until(source.entered.is_set)  # "first" is in flight, the rest waits
    await ev(wb.set("k", "new"))
    await ev(wb.delete("gone"))
    flavour.clock.advance(11)  # the cached entries expire before their writes land
    assert await ev(flavour.cache.get("k", MISSING)) is MISSING
    assert await ev(wb.get("first")) == 1
    assert await ev(wb.get("k")) == "new"  # not the source's stale "old"
    assert await ev(wb.get("gone", "d")) == "d"
    assert await ev(wb.get_many(["k", "gone", "first"])) == {"k": "new", "first": 1}
    assert source.count("load") + source.count("load_many") == 0  # the source was not asked
    source.gate.set()
    assert await ev(wb.get_many(["other"])) == {"other": "o"}
    await ev(wb.close())
    assert source.data == {"k": "new", "other": "o", "first": 1}


async def test_write_behind_backpressure_raise(flavour: Flavour) -> None:
    source = flavour.source()
    source.gate.clear()
    wb = flavour.WriteBehind(
        flavour.cache, source, max_queue=2, on_full="raise", batch_size=1, flush_interval=0
    )
    await ev(wb.set("a", 1))
    await flavour.until(source.entered.is_set)  # "a" in flight
    await ev(wb.set("b", 2))
    await ev(wb.set("c", 3))
    await ev(wb.set("b", 22))  # coalescing needs no room
    with pytest.raises(sc.WriteQueueFull, match=r"queue full \(2 keys\); key 'd' not written"):
        await ev(wb.set("d", 4))
    assert await ev(flavour.cache.get("d", MISSING)) is MISSING  # not acknowledged, not cached
    source.gate.set()
    await ev(wb.close())
    assert source.data == {"a": 1, "b": 22, "c": 3}


async def test_write_behind_backpressure_blocks_until_room(flavour: Flavour) -> None:
    source = flavour.source()
    source.gate.clear()
    wb = flavour.WriteBehind(
        flavour.cache, source, max_queue=1, put_timeout=0.05, batch_size=1, flush_interval=0
    )
    await ev(wb.set("a", 1))
    await flavour.until(source.entered.is_set)
    await ev(wb.set("b", 2))
    with pytest.raises(sc.WriteQueueFull, match=r"after waiting 0\.05s; key .c."):
        await ev(wb.set("c", 3))
    assert await ev(flavour.cache.get("c", MISSING)) is MISSING
    # Without a timeout the writer waits for room, then gets in.
    wb.put_timeout = None
    threading.Timer(0.05, source.gate.set).start()
    await ev(wb.set("c", 3))
    await ev(wb.close())
    assert source.data == {"a": 1, "b": 2, "c": 3}


async def test_write_behind_retries_then_dead_letters(flavour: Flavour) -> None:
    letters: list[sc.DeadLetter] = []
    source = flavour.source()
    source.fail = 2  # two failures, then the source recovers
    wb = flavour.WriteBehind(
        flavour.cache, source, batch_size=10, flush_interval=0, retry_delay=0.001, dead_letter=letters.append
    )
    await ev(wb.set("a", 1))
    assert await ev(wb.flush(10))
    assert source.data == {"a": 1}
    assert wb.retries == 2
    assert letters == []

    source.fail = -1  # down for good
    wb.max_retries = 2
    await ev(wb.set("b", 2))
    await ev(wb.delete("a"))
    assert await ev(wb.flush(10))
    assert sorted((d.key, d.operation, d.value, d.attempts) for d in letters) == [
        ("a", "delete", None, 3),
        ("b", "store", 2, 3),
    ]
    assert all(isinstance(d.error, sc.SourceError) for d in letters)
    assert isinstance(letters[0].error.__cause__, OSError)
    assert wb.dead_lettered == 2
    await ev(wb.close())


async def test_write_behind_close_times_out_on_a_stalled_source(flavour: Flavour) -> None:
    letters: list[sc.DeadLetter] = []
    source = flavour.source()
    source.gate.clear()  # the source hangs
    wb = flavour.WriteBehind(
        flavour.cache, source, batch_size=1, flush_interval=0, close_timeout=0.1, dead_letter=letters.append
    )
    for key in ("a", "b", "c"):
        await ev(wb.set(key, key.upper()))
    await flavour.until(source.entered.is_set)
    await ev(wb.close())
    assert sorted((d.key, d.value, d.attempts) for d in letters) == [
        ("a", "A", 0),
        ("b", "B", 0),
        ("c", "C", 0),
    ]
    assert all(isinstance(d.error, sc.CacheTimeout) for d in letters)
    assert "close timed out after 0.1s" in str(letters[0].error)
    source.gate.set()


async def test_write_behind_dead_letter_failures_are_logged(
    flavour: Flavour, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(letter: sc.DeadLetter) -> None:
        raise RuntimeError("dead-letter store down")

    source = flavour.source()
    source.fail = -1
    wb = flavour.WriteBehind(flavour.cache, source, flush_interval=0, max_retries=0, dead_letter=broken)
    await ev(wb.set("a", 1))
    await ev(wb.close())
    assert "dead_letter callback failed for key 'a'" in caplog.text
    quiet = flavour.WriteBehind(flavour.cache, source, flush_interval=0, max_retries=0)
    await ev(quiet.set("b", 1))
    await ev(quiet.close())
    assert "gave up on store of key 'b' after 1 attempts" in caplog.text


def test_signal_handlers_need_the_main_thread() -> None:
    errors: list[BaseException] = []

    def build() -> None:
        try:
            sc.WriteBehind(sc.Cache("memory://"), Recorder(), handle_signals=True)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=build)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert isinstance(errors[0], sc.ConfigurationError)
    assert "main thread" in str(errors[0])


# --------------------------------------------------------------------------------- refresh-ahead


async def test_refresh_ahead_reloads_hot_keys_before_expiry(flavour: Flavour) -> None:
    source = flavour.source({"k": "v1"})
    ra = flavour.RefreshAhead(flavour.cache, source, ttl=100, refresh_ratio=0.25)
    assert await ev(ra.get("k")) == "v1"
    source.data["k"] = "v2"
    flavour.clock.advance(50)  # 50 s left: not yet in the last quarter
    assert await ev(ra.get("k")) == "v1"
    assert ra.refreshing == 0
    flavour.clock.advance(30)  # 20 s left: a hit refreshes in the background
    assert await ev(ra.get("k")) == "v1"  # served from the cache at once
    assert await ev(ra.drain(10))
    assert ra.refreshes == 1
    assert await ev(flavour.cache.get("k")) == "v2"
    left = await ev(flavour.cache.ttl("k"))
    assert left > 90  # reloaded with a full ttl

    # A failed reload keeps the old value; a key gone from the source is dropped.
    flavour.clock.advance(80)
    source.fail = 1
    assert await ev(ra.get("k")) == "v2"
    assert await ev(ra.drain(10))
    assert ra.refresh_failures == 1
    assert await ev(flavour.cache.get("k")) == "v2"
    del source.data["k"]
    assert await ev(ra.get("k")) == "v2"
    assert await ev(ra.drain(10))
    assert await ev(flavour.cache.get("k", MISSING)) is MISSING
    assert await ev(ra.get("k", "gone")) == "gone"
    await ev(ra.close())


async def test_refresh_ahead_runs_one_refresh_per_key(flavour: Flavour) -> None:
    source = flavour.source({"k": 1, "j": 2})
    ra = flavour.RefreshAhead(flavour.cache, source, ttl=100, max_refreshes=1)
    assert await ev(ra.get("k")) == 1
    assert await ev(ra.get("j")) == 2
    flavour.clock.advance(90)
    source.gate.clear()
    source.entered.clear()
    source.calls.clear()
    for _ in range(5):
        assert await ev(ra.get("k")) == 1
    await flavour.until(source.entered.is_set)
    assert await ev(ra.get("j")) == 2  # over max_refreshes: skipped, not queued
    assert ra.refreshing == 1
    source.gate.set()
    assert await ev(ra.drain(10))
    assert source.calls == [("load", "k")]
    await ev(ra.close())
    assert await ev(ra.get("j")) == 2  # closed: hits are served, nothing more refreshed
    assert ra.refreshing == 0


# ------------------------------------------------------------------------- every backend, both flavours


def _absent_everywhere(backend_name: str) -> bool:
    return backend_name == "null"  # forgets every write: every get is a miss


def test_read_and_write_through_on_every_backend(cache: sc.Cache, backend_name: str) -> None:
    source = Recorder({"a": {"n": 1}, "b": [1, 2]})
    wt = sc.WriteThrough(cache, source, ttl=60, negative_ttl=30)
    assert wt.get("a") == {"n": 1}
    assert wt.get("a") == {"n": 1}
    assert wt.get_many(["a", "b", "zz"]) == {"a": {"n": 1}, "b": [1, 2]}
    assert wt.get("zz", "d") == "d"
    expected_loads = 6 if _absent_everywhere(backend_name) else 3  # a, (b, zz), then nothing
    assert source.count("load") + sum(len(k) for n, k in source.calls if n == "load_many") == expected_loads
    wt.set("c", "C")
    assert source.data["c"] == "C"
    source.fail = 1
    with pytest.raises(sc.SourceError, match="key 'c'"):
        wt.set("c", "lost")
    assert wt.get("c") == "C"
    wt.delete("c")
    assert wt.get("c") is None


async def test_async_read_and_write_through_on_every_backend(
    acache: sc.AsyncCache, backend_name: str
) -> None:
    source = AsyncRecorder({"a": {"n": 1}, "b": [1, 2]})
    wt = sc.AsyncWriteThrough(acache, source, ttl=60, negative_ttl=30)
    assert await wt.get("a") == {"n": 1}
    assert await wt.get("a") == {"n": 1}
    assert await wt.get_many(["a", "b", "zz"]) == {"a": {"n": 1}, "b": [1, 2]}
    assert await wt.get("zz", "d") == "d"
    expected_loads = 6 if _absent_everywhere(backend_name) else 3
    assert source.count("load") + sum(len(k) for n, k in source.calls if n == "load_many") == expected_loads
    await wt.set("c", "C")
    source.fail = 1
    with pytest.raises(sc.SourceError, match="key 'c'"):
        await wt.set("c", "lost")
    assert await wt.get("c") == "C"
    await wt.delete("c")
    assert await wt.get("c") is None


SOME_BACKENDS = ["memory", "redis", "file", "memcached", "stratacache-server"]


@pytest.mark.parametrize("backend_name", SOME_BACKENDS)
def test_write_behind_and_refresh_ahead_on_backends(cache: sc.Cache) -> None:
    source = Recorder({"r": "r1"})
    with sc.WriteBehind(cache, source, ttl=60, batch_size=3, flush_interval=0.01) as wb:
        for i in range(7):
            wb.set(f"w{i % 4}", i)
        assert wb.get("w3") == 3
        assert wb.flush(10)
    assert {k: v for k, v in source.data.items() if k.startswith("w")} == {"w0": 4, "w1": 5, "w2": 6, "w3": 3}
    ra = sc.RefreshAhead(cache, source, ttl=60, refresh_ratio=0.25)
    assert ra.get("r") == "r1"
    source.data["r"] = "r2"
    assert ra.get("r") == "r1"
    assert ra.refreshing == 0
    assert cache.expire("r", 10)  # now in the last quarter of its ttl: the next hit reloads
    assert ra.get("r") == "r1"
    assert ra.drain(10)
    assert cache.get("r") == "r2"
    ra.close()


@pytest.mark.parametrize("backend_name", SOME_BACKENDS)
async def test_async_write_behind_and_refresh_ahead_on_backends(acache: sc.AsyncCache) -> None:
    source = AsyncRecorder({"r": "r1"})
    async with sc.AsyncWriteBehind(acache, source, ttl=60, batch_size=3, flush_interval=0.01) as wb:
        for i in range(7):
            await wb.set(f"w{i % 4}", i)
        assert await wb.get("w3") == 3
        assert await wb.flush(10)
    assert {k: v for k, v in source.data.items() if k.startswith("w")} == {"w0": 4, "w1": 5, "w2": 6, "w3": 3}
    ra = sc.AsyncRefreshAhead(acache, source, ttl=60, refresh_ratio=0.25)
    assert await ra.get("r") == "r1"
    source.data["r"] = "r2"
    assert await ra.get("r") == "r1"
    assert ra.refreshing == 0
    assert await acache.expire("r", 10)
    assert await ra.get("r") == "r1"
    assert await ra.drain(10)
    assert await acache.get("r") == "r2"
    await ra.close()


async def test_signal_flushes_then_chains_the_previous_handler(flavour: Flavour) -> None:
    received: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))
    try:
        source = flavour.source()
        wb = flavour.WriteBehind(flavour.cache, source, flush_interval=30, handle_signals=[signal.SIGUSR1])
        for i in range(5):
            await ev(wb.set(f"k{i}", i))
        assert source.data == {}  # waiting for the 30 s interval
        os.kill(os.getpid(), signal.SIGUSR1)
        await flavour.until(lambda: received == [signal.SIGUSR1])
        assert source.data == {f"k{i}": i for i in range(5)}  # flushed before passing it on
        assert wb.closed
        with pytest.raises(sc.CacheClosed):
            await ev(wb.set("late", 1))
        # Our handler is gone: the next signal goes straight to the previous one.
        os.kill(os.getpid(), signal.SIGUSR1)
        await flavour.until(lambda: len(received) == 2)
    finally:
        signal.signal(signal.SIGUSR1, previous)
