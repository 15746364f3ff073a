"""Typed caches (``cache.typed(Model)``) over every backend, both flavours.

Static typing is checked by tests/typecheck (mypy runs over it); here: the round trip of
dataclasses, pydantic models, msgspec Structs and attrs classes, the stored builtin form,
validation on read and every failure case.
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
from typing import Any

import attrs
import msgspec
import pydantic
import pytest

import stratacache as sc
from stratacache import AsyncCache, Cache


@dataclasses.dataclass
class Address:
    city: str


@dataclasses.dataclass
class Person:
    name: str
    born: datetime.date
    address: Address
    tags: list[str] = dataclasses.field(default_factory=list)


class Account(pydantic.BaseModel):
    id: int
    email: str
    created: datetime.datetime


class Event(msgspec.Struct):
    kind: str
    count: int


@attrs.define
class Order:
    number: int
    total: float


SAMPLES: list[tuple[type, Any, dict[str, Any]]] = [
    (
        Person,
        Person("ada", datetime.date(1815, 12, 10), Address("London"), ["math"]),
        {"name": "ada", "born": "1815-12-10", "address": {"city": "London"}, "tags": ["math"]},
    ),
    (
        Account,
        Account(id=7, email="a@example.com", created=datetime.datetime(2024, 1, 2, 3, 4, 5)),
        {"id": 7, "email": "a@example.com", "created": "2024-01-02T03:04:05"},
    ),
    (Event, Event("click", 3), {"kind": "click", "count": 3}),
    (Order, Order(12, 9.5), {"number": 12, "total": 9.5}),
]


def _keeps_objects(cache: Any) -> bool:
    return cache._codec is None


async def test_round_trip_every_model_async(acache: AsyncCache) -> None:
    retains = acache.backend.capabilities.retains_data
    for model, instance, builtin in SAMPLES:
        view = acache.typed(model)
        key = f"t:{model.__name__}"
        assert await view.set(key, instance, ttl=60) is True
        got = await view.get(key)
        if not retains:
            assert got is None
            continue
        assert got == instance
        assert type(got) is model
        raw = await acache.get(key)
        # Memory keeps the instance; every serializing backend stores the builtin form.
        assert raw is instance if _keeps_objects(acache) else raw == builtin
        assert await view.get_many([key, "absent"]) == {key: instance}
        assert await view.add(key, instance) is False
    if retains:
        # A builtin form written by untyped code validates on read, as on any backend.
        await acache.set("plain", {"kind": "raw", "count": 1})
        assert await acache.typed(Event).get("plain") == Event("raw", 1)


def test_round_trip_every_model_sync(cache: Cache) -> None:
    retains = cache.backend.capabilities.retains_data
    for model, instance, builtin in SAMPLES:
        view = cache.typed(model)
        key = f"t:{model.__name__}"
        view.set_many({key: instance}, ttl=60)
        got = view.get(key, "miss")
        if not retains:
            assert got == "miss"
            continue
        assert got == instance
        assert type(got) is model
        raw = cache.get(key)
        assert raw is instance if _keeps_objects(cache) else raw == builtin


@pytest.mark.parametrize("url", ["memory://", "memory://?serializer=json"])
def test_invalid_entry_raises_names_key_and_model(url: str) -> None:
    with Cache(url) as cache:
        cache.set("e", {"kind": "x", "count": "many"})
        cache.set("other", ["not", "an", "event"])
        with pytest.raises(sc.SerializationError, match=r"key 'e'.*not a valid Event.*count"):
            cache.typed(Event).get("e")
        with pytest.raises(sc.SerializationError, match=r"key 'other'.*Event"):
            cache.typed(Event).get_many(["other"])
        # Another model's entry is invalid too (memory without a serializer keeps objects).
        cache.typed(Order).set("o", Order(1, 2.0))
        with pytest.raises(sc.SerializationError, match=r"key 'o'.*Event"):
            cache.typed(Event).get("o")


def test_on_invalid_miss_and_delete() -> None:
    with Cache("memory://") as cache:
        cache.set("e", {"kind": 1})
        miss = cache.typed(Event, on_invalid="miss")
        assert miss.get("e", "default") == "default"
        assert miss.get_many(["e"]) == {}
        assert cache.exists("e")
        delete = cache.typed(Event, on_invalid="delete")
        assert delete.get("e") is None
        assert not cache.exists("e")
        # get_or_set replaces an invalid entry's miss with the factory's value.
        cache.set("e", {"kind": 1})
        assert miss.get_or_set("e", lambda: Event("new", 1)) == Event("new", 1)


async def test_get_or_set_async_factory_and_single_flight() -> None:
    calls = 0

    async def load() -> Event:
        nonlocal calls
        calls += 1
        return Event("loaded", calls)

    async with AsyncCache("memory://?serializer=msgpack") as cache:
        view = cache.typed(Event)
        assert await view.get_or_set("k", load, ttl=30) == Event("loaded", 1)
        assert await view.get_or_set("k", load) == Event("loaded", 1)
        assert calls == 1
        assert await cache.get("k") == {"kind": "loaded", "count": 1}


def test_failure_cases() -> None:
    with Cache("memory://") as cache:
        with pytest.raises(sc.InvalidArgument, match=r"parameter 'model'.*dict"):
            cache.typed(dict)
        with pytest.raises(sc.InvalidArgument, match="parameter 'model'"):
            cache.typed(Event("a", 1))  # type: ignore[arg-type]
        with pytest.raises(sc.InvalidArgument, match="parameter 'on_invalid'"):
            cache.typed(Event, on_invalid="ignore")
        view = cache.typed(Event)
        with pytest.raises(sc.InvalidArgument, match="key 'k' must be a Event, got dict"):
            view.set("k", {"kind": "a", "count": 1})  # type: ignore[arg-type]
        with pytest.raises(sc.InvalidArgument, match="mapping"):
            view.set_many([("k", Event("a", 1))])  # type: ignore[arg-type]
        with pytest.raises(sc.InvalidArgument, match="factory must be callable"):
            view.get_or_set("k", None)  # type: ignore[arg-type]
        with pytest.raises(sc.InvalidArgument, match="key 'k' must be a Event, got Order"):
            view.get_or_set("k", lambda: Order(1, 1.0))  # type: ignore[arg-type, return-value]
        assert not cache.exists("k")
        assert "TypedCache[Event]" in repr(view)
    # A value the serializer cannot carry names the key.
    with Cache("memory://?serializer=json") as cache, pytest.raises(sc.SerializationError):
        cache.typed(Address).set("a", Address(object()))  # type: ignore[arg-type]


def test_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail, as when the extra is not installed.
    monkeypatch.setitem(sys.modules, "msgspec", None)
    with Cache("memory://") as cache, pytest.raises(sc.ConfigurationError, match=r"stratacache\[typed\]"):
        cache.typed(Address)


async def test_layered_stores_the_builtin_form(redis_server: Any) -> None:
    """Memory over Redis: the cache serializes, so both tiers hold the builtin form and a
    second cache (another process's view) validates it on read."""
    tiers = ["memory://", redis_server.url]
    async with AsyncCache(backend="layered", tiers=tiers) as one, AsyncCache(redis_server.url) as plain:
        await one.clear()
        account = SAMPLES[1][1]
        await one.typed(Account).set("acct", account)
        assert await plain.get("acct") == SAMPLES[1][2]
        assert await plain.typed(Account).get("acct") == account
        assert await one.typed(Account).get("acct") == account
