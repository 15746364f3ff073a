"""Static types of typed caches: mypy checks this module (``[tool.mypy] files``), pytest runs it.

``assert_type`` fails mypy when ``get`` and friends are not typed with the model; the
``type: ignore[...]`` lines must keep erroring (mypy --strict reports an unused ignore), so
a wrong use is proven to be refused statically.
"""

from __future__ import annotations

import dataclasses
from typing import assert_type

import msgspec
import pydantic
import pytest

import stratacache as sc
from stratacache import MISSING, Missing


@dataclasses.dataclass
class Point:
    x: int
    y: int


class User(pydantic.BaseModel):
    id: int
    name: str


class Event(msgspec.Struct):
    kind: str


def test_sync_typed_get_is_typed() -> None:
    with sc.Cache("memory://") as cache:
        points = cache.typed(Point)
        assert_type(points, sc.TypedCache[Point])
        assert_type(points.set("p", Point(1, 2)), bool)
        assert_type(points.get("p"), Point | None)
        assert_type(points.get("p", MISSING), Point | Missing)
        assert_type(points.get_many(["p"]), dict[str, Point])
        assert_type(points.get_or_set("q", lambda: Point(3, 4)), Point)
        got = points.get("p")
        assert got is not None
        assert_type(got.x, int)
        assert got == Point(1, 2)
        users = cache.typed(User)
        # Refused by mypy (the ignores must stay needed) and at run time.
        with pytest.raises(sc.InvalidArgument, match="'bad' must be a Point"):
            points.set("bad", User(id=1, name="a"))  # type: ignore[arg-type]
        with pytest.raises(sc.InvalidArgument, match="must be a User"):
            users.set("u", Point(1, 2))  # type: ignore[arg-type]
        assert_type(cache.typed(Event).get("e", Event("none")), Event)


async def test_async_typed_get_is_typed() -> None:
    async with sc.AsyncCache("memory://") as cache:
        users = cache.typed(User)
        assert_type(users, sc.AsyncTypedCache[User])
        await users.set("u", User(id=1, name="ada"))
        got = await users.get("u")
        assert_type(got, User | None)
        assert got is not None
        assert got.name == "ada"
        assert_type(await users.get_many(["u"]), dict[str, User])
