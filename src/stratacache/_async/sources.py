"""The data-source protocol, and the calls into a source that translate its errors.

A data source is the system of record behind a cache (a database, a service): the
strategies in ``strategies.py`` load from it on a miss and write to it. Any object with
these methods is one; nothing needs to inherit from the protocol. In the async flavour a
source's methods may be coroutine functions or plain functions (a dict, a sync client),
so one source can serve both flavours.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from .._exceptions import InvalidArgument, SourceError
from .._types import MISSING, Missing

__all__ = ["AsyncDataSource", "call", "check_source", "describe_source", "load", "load_many", "resolve"]

_IS_ASYNC = True
_ASYNC_HINT = "use the Async strategies (AsyncCache) for a source with async methods"  # unasync: keep


@runtime_checkable
class AsyncDataSource(Protocol):
    """The system of record behind a cache.

    * ``load(key)``: the value, or :data:`~stratacache.MISSING` when the source has none
      (a stored ``None`` is a value).
    * ``load_many(keys)``: a dict of the keys the source has (absent keys left out).
    * ``store(key, value)`` and ``delete(key)``: write; deleting an absent key is no error.

    An optional ``store_many(items: dict)`` lets write-behind write a batch in one call.
    Any exception a method raises reaches the caller as a :class:`~stratacache.SourceError`
    naming the key and the source, with the original chained.
    """

    async def load(self, key: str) -> Any | Missing:
        """The value at ``key``, or MISSING."""

    async def load_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The values of the keys the source has."""

    async def store(self, key: str, value: Any) -> None:
        """Write ``key``."""

    async def delete(self, key: str) -> None:
        """Remove ``key`` (absent: nothing to do)."""


def describe_source(source: object) -> str:
    """How error messages name a source: its ``name`` attribute, else its repr."""
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else repr(source)


def check_source(source: object, methods: tuple[str, ...], parameter: str = "source") -> None:
    """Raise InvalidArgument naming ``parameter`` unless ``source`` has callable ``methods``."""
    lacking = [name for name in methods if not callable(getattr(source, name, None))]
    if lacking:
        raise InvalidArgument(
            f"{parameter} must be a data source with {', '.join(m + '()' for m in methods)}; "
            f"{type(source).__name__} has no {', '.join(m + '()' for m in lacking)}"
        )


async def resolve(result: Any, what: str) -> Any:
    """``result``, awaited when it is an awaitable (async flavour only)."""
    if inspect.isawaitable(result):
        if not _IS_ASYNC:
            if inspect.iscoroutine(result):
                result.close()  # never awaited: close it, or Python warns at collection
            raise InvalidArgument(f"{what} returned an awaitable; {_ASYNC_HINT}")
        result = await result
    return result


async def call(source: Any, operation: str, key: object, *args: Any) -> Any:
    """``source.<operation>(*args)``, with any failure raised as SourceError naming ``key``."""
    try:
        return await resolve(getattr(source, operation)(*args), f"{operation}() of the data source")
    except InvalidArgument:
        raise
    except Exception as exc:
        raise SourceError(operation, key, describe_source(source)) from exc


async def load(source: Any, key: str) -> Any:
    """One key from the source (MISSING when absent)."""
    return await call(source, "load", key, key)


async def load_many(source: Any, keys: list[str]) -> dict[str, Any]:
    """Many keys: ``load_many`` when the source has it, else one ``load`` per key."""
    if callable(getattr(source, "load_many", None)):
        found = await call(source, "load_many", keys, keys)
        if not isinstance(found, dict):
            raise SourceError("load_many", keys, describe_source(source)) from TypeError(
                f"load_many() must return a dict, got {type(found).__name__}"
            )
        wanted = set(keys)
        return {key: value for key, value in found.items() if key in wanted and value is not MISSING}
    result = {}
    for key in keys:
        value = await load(source, key)
        if value is not MISSING:
            result[key] = value
    return result
