"""``AsyncTypedCache[T]``: a view of a cache that stores and returns instances of one model.

This file is the source of truth; ``_sync/typed.py`` (``TypedCache``) is generated from it.
Made by ``cache.typed(Model)``: ``get`` returns ``Model | None`` (mypy knows it), every read
is validated against the model, and writes take only instances of it. A cache that keeps
objects (memory without a serializer) stores the instances themselves; every other one
stores their builtin form (:mod:`stratacache.core.models`), so any serializer can carry it
and a process without the model class can still read the data.

A stored value that does not validate is, by ``on_invalid``: ``"raise"`` (default) a
SerializationError naming the key and the model, ``"miss"`` a miss, ``"delete"`` a miss
that also deletes the entry.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from .._exceptions import InvalidArgument, SerializationError
from .._types import MISSING, UNSET
from ..core.models import ModelAdapter, adapter_for

if TYPE_CHECKING:
    from .cache import AsyncCache

__all__ = ["AsyncTypedCache", "T"]

T = TypeVar("T")
D = TypeVar("D")

ON_INVALID = ("raise", "miss", "delete")
_INVALID = object()


class AsyncTypedCache(Generic[T]):
    """``cache`` seen through ``model``: reads validate, writes take instances of it.

    Usually made by ``cache.typed(model)``; ``AsyncTypedCache(cache, model)`` is the same.
    """

    def __init__(self, cache: AsyncCache, model: type[T], *, on_invalid: str = "raise") -> None:
        if on_invalid not in ON_INVALID:
            raise InvalidArgument(
                f"parameter 'on_invalid' must be one of {', '.join(ON_INVALID)}; got {on_invalid!r}"
            )
        self.cache = cache
        self.adapter: ModelAdapter[T] = adapter_for(model)
        self.on_invalid = on_invalid
        # Only a cache without a codec keeps Python objects as they are.
        self._keeps_objects = cache._codec is None

    @property
    def model(self) -> type[T]:
        """The model class."""
        return self.adapter.model

    def __repr__(self) -> str:
        return f"<{type(self).__name__}[{self.adapter.name}] over {self.cache!r}>"

    # ---------------------------------------------------------------- conversion

    def _out(self, value: T, key: str) -> Any:
        checked = self.adapter.check(value, key)
        if self._keeps_objects:
            return checked
        try:
            return self.adapter.dump(checked)
        except (ValueError, TypeError) as exc:
            raise SerializationError(f"key {key!r}: cannot dump {self.adapter.name}: {exc}") from exc

    def _in(self, stored: Any, key: str) -> Any:
        """The model instance for a stored value; _INVALID when it does not validate and
        ``on_invalid`` is not ``raise``."""
        try:
            return self.adapter.load(stored)
        except (ValueError, TypeError) as exc:
            if self.on_invalid == "raise":
                raise SerializationError(
                    f"key {key!r}: the stored value is not a valid {self.adapter.name}: {exc}"
                ) from exc
            return _INVALID

    async def _invalid(self, key: str) -> None:
        if self.on_invalid == "delete":
            await self.cache.delete(key)

    # ---------------------------------------------------------------- reads

    @overload
    async def get(self, key: str) -> T | None: ...

    @overload
    async def get(self, key: str, default: D) -> T | D: ...

    async def get(self, key: str, default: Any = None) -> Any:
        """The instance at ``key``, or ``default`` on a miss (or an invalid entry, per ``on_invalid``)."""
        stored = await self.cache.get(key, MISSING)
        if stored is MISSING:
            return default
        value = self._in(stored, key)
        if value is _INVALID:
            await self._invalid(key)
            return default
        return value

    async def get_many(self, keys: Iterable[str]) -> dict[str, T]:
        """The present (and valid) keys among ``keys`` with their instances."""
        found = await self.cache.get_many(keys)
        result: dict[str, T] = {}
        for key, stored in found.items():
            value = self._in(stored, key)
            if value is _INVALID:
                await self._invalid(key)
            else:
                result[key] = value
        return result

    async def exists(self, key: str) -> bool:
        """True when ``key`` holds a value (not validated)."""
        return await self.cache.exists(key)

    # ---------------------------------------------------------------- writes

    async def set(self, key: str, value: T, ttl: Any = UNSET) -> bool:
        """Store ``value`` (an instance of the model; InvalidArgument otherwise)."""
        stored: bool = await self.cache.set(key, self._out(value, key), ttl)
        return stored

    async def add(self, key: str, value: T, ttl: Any = UNSET) -> bool:
        """Store only if ``key`` is absent; True when stored."""
        return await self.cache.add(key, self._out(value, key), ttl)

    async def set_many(self, mapping: Mapping[str, T], ttl: Any = UNSET) -> None:
        """Store every instance with one ttl."""
        if not isinstance(mapping, Mapping):
            raise InvalidArgument(f"set_many takes a mapping of key -> value, not {type(mapping).__name__}")
        await self.cache.set_many({key: self._out(value, key) for key, value in mapping.items()}, ttl)

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed."""
        return await self.cache.delete(key)

    async def get_or_set(self, key: str, factory: Callable[[], T | Awaitable[T]], ttl: Any = UNSET) -> T:
        """The instance at ``key``; on a miss (or an invalid entry) ``factory()``'s, stored.

        Single-flight as the cache's own ``get_or_set``. The factory must return an
        instance of the model (InvalidArgument otherwise, and nothing is stored).
        """
        if not callable(factory):
            raise InvalidArgument(f"factory must be callable, got {type(factory).__name__}")
        stored = await self.cache.get(key, MISSING)
        if stored is not MISSING:
            found = self._in(stored, key)
            if found is not _INVALID:
                result: T = found
                return result

        async def produce() -> Any:
            made = factory()
            if inspect.isawaitable(made):
                made = await made
            return self._out(made, key)

        if stored is not MISSING:
            # An invalid entry read as a miss ("miss"/"delete"): replace it with the
            # factory's value (the cache's get_or_set would hand the invalid one back).
            stored = await produce()
            await self.cache.set(key, stored, ttl)
            return self.adapter.load(stored)
        stored = await self.cache.get_or_set(key, produce, ttl)
        value = self._in(stored, key)
        if value is _INVALID:
            # Someone else stored something invalid between our read and our flight.
            raise SerializationError(f"key {key!r}: the stored value is not a valid {self.adapter.name}")
        loaded: T = value
        return loaded
