"""The backend contract's required core is enough: a minimal third-party backend passes.

``MinimalBackend`` implements only the ten abstract methods of :class:`AsyncBackend` over a
dict (plus a clock for expiry), and claims no optional capability. Through the facade it
passes the whole conformance suite, with the batch methods served by the base class's
defaults and the collection and pattern methods refused by name.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from stratacache import AsyncCache, Cache, UnsupportedOperation, WrongType
from stratacache._async.backends.base import AsyncBackend
from stratacache._sync.backends.base import Backend
from stratacache._types import MISSING, Missing
from stratacache.testing import AsyncCacheConformance, CacheConformance, FakeClock


class _DictStore:
    """The state both flavours share: key -> (value, deadline or None), on an injected clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.data: dict[str, tuple[Any, float | None]] = {}
        # add and incr read then write: the sync twin runs them from several threads.
        self.lock = threading.Lock()

    def live(self, key: str) -> tuple[Any, float | None] | None:
        item = self.data.get(key)
        if item is not None and item[1] is not None and item[1] <= self.clock():
            del self.data[key]
            return None
        return item

    def deadline(self, ttl: float | None) -> float | None:
        return None if ttl is None else self.clock() + ttl


class MinimalAsyncBackend(AsyncBackend):
    """Only the required core of the contract (what a third-party backend must write)."""

    name = "minimal"

    def __init__(self, clock: FakeClock) -> None:
        self.store = _DictStore(clock)

    async def get(self, key: str) -> Any:
        item = self.store.live(key)
        return MISSING if item is None else item[0]

    async def set(self, key: str, value: Any, ttl: float | None) -> None:
        self.store.data[key] = (value, self.store.deadline(ttl))

    async def add(self, key: str, value: Any, ttl: float | None) -> bool:
        with self.store.lock:
            if self.store.live(key) is not None:
                return False
            self.store.data[key] = (value, self.store.deadline(ttl))
            return True

    async def delete(self, key: str) -> bool:
        return self.store.live(key) is not None and self.store.data.pop(key, None) is not None

    async def exists(self, key: str) -> bool:
        return self.store.live(key) is not None

    async def incr(self, key: str, delta: int) -> int:
        with self.store.lock:
            value, deadline = self.store.live(key) or (0, None)
            # The facade's codec writes an int as its decimal digits, so counters are portable.
            if type(value) is bytes and value.lstrip(b"-").isdigit():
                value = int(value)
            if type(value) is not int:
                raise WrongType(f"incr on key {key!r}: not an integer")
            self.store.data[key] = (str(value + delta).encode(), deadline)
            return value + delta

    async def expire(self, key: str, ttl: float | None) -> bool:
        item = self.store.live(key)
        if item is None:
            return False
        self.store.data[key] = (item[0], self.store.deadline(ttl))
        return True

    async def ttl(self, key: str) -> float | Missing | None:
        item = self.store.live(key)
        if item is None:
            return MISSING
        return None if item[1] is None else item[1] - self.store.clock()

    async def clear(self, prefix: str | None) -> None:
        for key in [k for k in self.store.data if prefix is None or k.startswith(prefix)]:
            del self.store.data[key]

    async def ping(self) -> None:
        return None


class MinimalBackend(Backend):
    """The sync twin, written by hand as a third party would (the same ten methods)."""

    name = "minimal"

    def __init__(self, clock: FakeClock) -> None:
        self.twin = MinimalAsyncBackend(clock)

    def _run(self, coro: Any) -> Any:
        try:
            coro.send(None)
        except StopIteration as done:
            return done.value
        raise AssertionError("the minimal backend never awaits")  # pragma: no cover

    def get(self, key: str) -> Any:
        return self._run(self.twin.get(key))

    def set(self, key: str, value: Any, ttl: float | None) -> None:
        self._run(self.twin.set(key, value, ttl))

    def add(self, key: str, value: Any, ttl: float | None) -> bool:
        return bool(self._run(self.twin.add(key, value, ttl)))

    def delete(self, key: str) -> bool:
        return bool(self._run(self.twin.delete(key)))

    def exists(self, key: str) -> bool:
        return bool(self._run(self.twin.exists(key)))

    def incr(self, key: str, delta: int) -> int:
        return int(self._run(self.twin.incr(key, delta)))

    def expire(self, key: str, ttl: float | None) -> bool:
        return bool(self._run(self.twin.expire(key, ttl)))

    def ttl(self, key: str) -> float | Missing | None:
        result: float | Missing | None = self._run(self.twin.ttl(key))
        return result

    def clear(self, prefix: str | None) -> None:
        self._run(self.twin.clear(prefix))

    def ping(self) -> None:
        return None


@pytest.fixture
def cache_clock() -> FakeClock:
    """Expiry on a fake clock, which the conformance tests advance."""
    return FakeClock()


class TestMinimalAsyncBackend(AsyncCacheConformance):
    """The async required core through AsyncCache."""

    @pytest.fixture
    async def acache(self, cache_clock: FakeClock) -> AsyncIterator[AsyncCache]:
        async with AsyncCache(MinimalAsyncBackend(cache_clock)) as c:
            yield c


class TestMinimalSyncBackend(CacheConformance):
    """The sync required core through Cache."""

    @pytest.fixture
    def cache(self, cache_clock: FakeClock) -> Iterator[Cache]:
        with Cache(MinimalBackend(cache_clock)) as c:
            yield c


def test_a_backend_missing_a_required_method_cannot_be_made() -> None:
    class Incomplete(AsyncBackend):
        async def get(self, key: str) -> Any:
            return MISSING

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # type: ignore[abstract]


async def test_defaults_serve_batches_and_refuse_the_optional_by_name() -> None:
    backend = MinimalAsyncBackend(FakeClock())
    assert not backend.capabilities.collections
    assert not backend.capabilities.delete_pattern
    await backend.set_many({"a": 1, "b": 2}, None)
    assert await backend.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
    assert await backend.delete_many(["a", "c"]) == 1
    with pytest.raises(UnsupportedOperation, match=r"'minimal' does not support push\(\)"):
        await backend.push("l", [1], True)
    with pytest.raises(UnsupportedOperation, match="cannot enumerate keys"):
        await backend.delete_pattern("*")
