"""``cache.warm(...)``: from a data source, a mapping or a loader; progress, report, failures."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import stratacache as sc
from stratacache import MISSING, MappingSource


class FlakySource(MappingSource):
    """Fails every ``load_many`` that asks for a key in ``broken``; counts concurrent calls."""

    def __init__(self, data: dict[str, Any], broken: set[str] | None = None) -> None:
        super().__init__(data)
        self.broken = broken or set()
        self.name = "flaky-db"
        self.active = 0
        self.peak = 0
        self.counter_lock = threading.Lock()

    def load_many(self, keys: Any) -> dict[str, Any]:
        keys = list(keys)
        if self.broken & set(keys):
            raise ConnectionError("replica lagging")
        return super().load_many(keys)


class SlowAsyncSource(FlakySource):
    async def load_many(self, keys: Any) -> dict[str, Any]:  # type: ignore[override]
        with self.counter_lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        await asyncio.sleep(0.01)
        with self.counter_lock:
            self.active -= 1
        return FlakySource.load_many(self, keys)


def test_warm_from_a_data_source_with_progress_and_failures() -> None:
    data = {f"k{i}": i for i in range(50)}
    source = FlakySource(data, broken={"k7"})
    seen: list[tuple[int, int | None]] = []
    with sc.Cache("memory://") as cache:
        keys = [*data, "absent1", "absent2"]
        report = cache.warm(
            source, keys=keys, concurrency=3, batch_size=10, progress=lambda d, t: seen.append((d, t))
        )
        assert (report.loaded, report.failed, report.skipped) == (40, 10, 2)
        assert report.total == 52
        assert report.seconds >= 0
        # One batch (k0..k9) failed; its keys are in the report with the source's error chained.
        assert sorted(report.errors, key=lambda k: int(k[1:])) == [f"k{i}" for i in range(10)]
        error = report.errors["k7"]
        assert isinstance(error, sc.SourceError)
        assert "flaky-db" in str(error)
        assert isinstance(error.__cause__, ConnectionError)
        assert cache.get("k3", MISSING) is MISSING  # the failed batch stored nothing
        assert cache.get("k42") == 42
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # done only grows
        assert seen[-1] == (52, 52)


def test_warm_from_a_mapping_a_loader_and_a_generator() -> None:
    with sc.Cache("memory://") as cache:
        report = cache.warm({"a": 1, "b": None}, ttl=30)
        assert (report.loaded, report.failed, report.skipped) == (2, 0, 0)
        assert cache.get("b", "default") is None
        assert 0 < cache.ttl("a") <= 30
        report = cache.warm({"a": 1, "b": 2}, keys=["b", "zz"])
        assert (report.loaded, report.skipped) == (1, 1)

        def loader(key: str) -> Any:
            if key == "bad":
                raise KeyError(key)
            return MISSING if key == "none" else key.upper()

        def keys() -> Iterator[str]:
            yield from ("x", "y", "none", "bad")

        seen: list[tuple[int, int | None]] = []
        report = cache.warm(
            loader, keys=keys(), concurrency=2, batch_size=1, progress=lambda d, t: seen.append((d, t))
        )
        assert (report.loaded, report.failed, report.skipped) == (2, 1, 1)
        assert isinstance(report.errors["bad"], sc.SourceError)
        assert "loader" in str(report.errors["bad"])
        assert isinstance(report.errors["bad"].__cause__, KeyError)
        assert seen[-1] == (4, None)  # a generator has no length
        assert cache.get("y") == "Y"


def test_warm_counts_invalid_keys_as_failures() -> None:
    with sc.Cache("memory://") as cache:
        report = cache.warm(MappingSource({"a": 1}), keys=["a", 5])  # type: ignore[list-item]
        assert (report.loaded, report.failed) == (1, 1)
        assert isinstance(report.errors["5"], sc.InvalidKey)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"source": MappingSource(), "keys": None}, "keys is required"),
        ({"source": lambda k: k}, "keys is required"),
        ({"source": 42, "keys": ["a"]}, "source must be"),
        ({"source": {}, "concurrency": 0}, "concurrency"),
        ({"source": {}, "batch_size": -1}, "batch_size"),
        ({"source": {}, "progress": "bar"}, "progress"),
        ({"source": {}, "keys": "abc"}, "keys must be an iterable"),
        ({"source": {}, "keys": 3}, "keys must be an iterable"),
        ({"source": {}, "ttl": 0}, "ttl"),
    ],
)
def test_warm_bad_arguments_name_the_parameter(kwargs: dict[str, Any], parameter: str) -> None:
    source = kwargs.pop("source")
    with sc.Cache("memory://") as cache, pytest.raises(sc.InvalidArgument, match=parameter):
        cache.warm(source, **kwargs)


async def test_async_warm_runs_batches_concurrently() -> None:
    data = {f"k{i}": i for i in range(40)}
    source = SlowAsyncSource(data, broken={"k39"})
    async with sc.AsyncCache("memory://") as cache:
        report = await cache.warm(source, keys=list(data), concurrency=4, batch_size=5)
        assert (report.loaded, report.failed, report.skipped) == (35, 5, 0)
        assert source.peak == 4
        assert await cache.get("k0") == 0

        async def loader(key: str) -> Any:
            await asyncio.sleep(0)
            return key * 2

        report = await cache.warm(loader, keys=["a", "b"])
        assert report.loaded == 2
        assert await cache.get("b") == "bb"
        with pytest.raises(sc.InvalidArgument, match="concurrency"):
            await cache.warm({}, concurrency=1.5)  # type: ignore[arg-type]


async def test_async_warm_failures_and_bad_arguments() -> None:
    async def loader(key: str) -> Any:
        if key == "bad":
            raise KeyError(key)
        return MISSING if key == "none" else key

    async with sc.AsyncCache("memory://") as cache:
        report = await cache.warm(loader, keys=iter(["a", "none", "bad", 7]), concurrency=2, batch_size=2)
        assert (report.loaded, report.failed, report.skipped) == (1, 2, 1)
        assert isinstance(report.errors["bad"].__cause__, KeyError)
        assert isinstance(report.errors["7"], sc.InvalidKey)
        report = await cache.warm({"m": 1})
        assert report.loaded == 1
        for kwargs, parameter in [
            ({"source": MappingSource(), "keys": None}, "keys is required"),
            ({"source": loader}, "keys is required"),
            ({"source": 42, "keys": ["a"]}, "source must be"),
            ({"source": {}, "batch_size": 0}, "batch_size"),
            ({"source": {}, "progress": 1}, "progress"),
            ({"source": {}, "keys": "ab"}, "single str"),
            ({"source": {}, "keys": 3}, "iterable"),
        ]:
            source = kwargs.pop("source")
            with pytest.raises(sc.InvalidArgument, match=parameter):
                await cache.warm(source, **kwargs)


def test_sync_warm_refuses_an_async_loader() -> None:
    async def loader(key: str) -> Any:
        return key

    with sc.Cache("memory://") as cache, pytest.raises(sc.InvalidArgument, match="awaitable"):
        cache.warm(loader, keys=["a"])


# ------------------------------------------------------------------------- every backend, both flavours


def test_warm_on_every_backend(cache: sc.Cache, backend_name: str) -> None:
    source = FlakySource({f"w{i}": {"i": i} for i in range(12)}, broken={"w11"})
    report = cache.warm(source, keys=[*source.data, "nope"], concurrency=2, batch_size=4, ttl=60)
    assert (report.loaded, report.failed, report.skipped) == (8, 4, 1)
    expected = {} if backend_name == "null" else {f"w{i}": {"i": i} for i in range(8)}
    assert cache.get_many([f"w{i}" for i in range(12)]) == expected


async def test_async_warm_on_every_backend(acache: sc.AsyncCache, backend_name: str) -> None:
    source = SlowAsyncSource({f"w{i}": {"i": i} for i in range(12)}, broken={"w11"})
    report = await acache.warm(source, keys=[*source.data, "nope"], concurrency=2, batch_size=4, ttl=60)
    assert (report.loaded, report.failed, report.skipped) == (8, 4, 1)
    expected = {} if backend_name == "null" else {f"w{i}": {"i": i} for i in range(8)}
    assert await acache.get_many([f"w{i}" for i in range(12)]) == expected


_LAYERED_NS = "warming-layered"


def test_warm_a_layered_cache(redis_server: Any) -> None:
    # Memory L1 over a real redis-server L2: the warm fills the shared tier, where a plain
    # Redis cache (another process) reads it.
    source = FlakySource({f"w{i}": {"i": i} for i in range(12)}, broken={"w11"})
    options = {"backend": "layered", "tiers": ["memory://", redis_server.url], "namespace": _LAYERED_NS}
    with sc.Cache(**options) as cache, sc.Cache(redis_server.url, namespace=_LAYERED_NS) as shared:
        cache.clear()
        report = cache.warm(source, keys=[*source.data, "nope"], concurrency=2, batch_size=4, ttl=60)
        assert (report.loaded, report.failed, report.skipped) == (8, 4, 1)
        expected = {f"w{i}": {"i": i} for i in range(8)}
        assert cache.get_many([f"w{i}" for i in range(12)]) == expected
        assert shared.get_many([f"w{i}" for i in range(12)]) == expected


async def test_async_warm_a_layered_cache(redis_server: Any) -> None:
    source = SlowAsyncSource({f"w{i}": {"i": i} for i in range(12)}, broken={"w11"})
    options = {"backend": "layered", "tiers": ["memory://", redis_server.url], "namespace": _LAYERED_NS}
    async with sc.AsyncCache(**options) as cache:
        await cache.clear()
        report = await cache.warm(source, keys=[*source.data, "nope"], concurrency=2, batch_size=4, ttl=60)
        assert (report.loaded, report.failed, report.skipped) == (8, 4, 1)
        expected = {f"w{i}": {"i": i} for i in range(8)}
        assert await cache.get_many([f"w{i}" for i in range(12)]) == expected
        async with sc.AsyncCache(redis_server.url, namespace=_LAYERED_NS) as shared:
            assert await shared.get_many([f"w{i}" for i in range(12)]) == expected


def test_one_unstorable_value_fails_alone() -> None:
    # set_many fails a whole batch for one bad value; the warm then stores key by key, so
    # only that key is failed, with its own error, and nothing is counted as skipped.
    mapping: dict[str, Any] = {f"k{i}": i for i in range(12)}
    mapping["k5"] = object()  # msgpack cannot encode it
    with sc.Cache("memory://", serializer="msgpack") as cache:
        report = cache.warm(mapping, batch_size=100)
        assert (report.loaded, report.failed, report.skipped) == (11, 1, 0)
        assert list(report.errors) == ["k5"]
        assert isinstance(report.errors["k5"], sc.SerializationError)
        assert "k5" in str(report.errors["k5"])
        assert cache.get("k4") == 4
        assert cache.get("k5", MISSING) is MISSING
