"""``@cached``: memoize a function through a cache, single-flight per key."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar

from ._async import decorators as _async_decorators
from ._async.cache import AsyncCache
from ._exceptions import ConfigurationError, InvalidArgument
from ._sync import decorators as _sync_decorators
from ._sync.cache import Cache
from ._types import UNSET
from .core.envelope import TagVersions, check_tags
from .core.stampede import StampedePolicy

__all__ = ["cached"]

F = TypeVar("F", bound=Callable[..., Any])


def cached(
    cache: Cache | AsyncCache,
    *,
    ttl: Any = UNSET,
    key: Callable[..., str] | None = None,
    policy: StampedePolicy | Literal[False] | None = None,
    tags: Iterable[str] | Callable[..., Iterable[str] | TagVersions | None] | None = None,
) -> Callable[[F], F]:
    """Cache a function's results in ``cache``.

    Works on plain functions with :class:`Cache` and on ``async def`` functions with
    :class:`AsyncCache`. Keys default to ``module.qualname(arg=value, ...)``; pass
    ``key=lambda *args, **kwargs: "..."`` to choose them. Concurrent calls with the same key
    run the function once (single-flight); exceptions are not cached. The wrapper has
    ``cache_key(*args, **kwargs)`` and ``invalidate(*args, **kwargs)`` (awaitable with
    AsyncCache) helpers.

    ``policy`` is a :class:`StampedePolicy` for these calls (default: the cache's
    ``stampede=`` policy; ``False``: in-process single-flight only), see ``get_or_set``.

    ``tags`` are stored with each result, as by ``get_or_set(..., tags=...)``, so that
    ``cache.invalidate_tags(...)`` drops it: a list of tag names for every call, or a
    callable that receives the call's arguments and returns that call's tags (or None)::

        @cached(cache, ttl=300, tags=lambda user_id: [f"user:{user_id}"])
        def profile(user_id: int) -> dict: ...
    """
    if key is not None and not callable(key):
        raise ConfigurationError(f"key must be a callable returning str, got {type(key).__name__}")
    if policy is not None and policy is not False and not isinstance(policy, StampedePolicy):
        raise ConfigurationError(
            f"policy must be a StampedePolicy, False or None, got {type(policy).__name__}"
        )

    fixed_tags: tuple[str, ...] | Callable[..., Any] | None = None
    if callable(tags):
        fixed_tags = tags
    elif tags is not None:
        try:
            fixed_tags = check_tags(tags)  # checked once, here: a generator is read once too
        except InvalidArgument as exc:
            raise ConfigurationError(f"@cached: {exc}") from None

    def decorate(func: F) -> F:
        options: dict[str, Any] = {"ttl": ttl, "key": key, "policy": policy, "tags": fixed_tags}
        if isinstance(cache, AsyncCache):
            wrapped = _async_decorators.make_cached(cache, func, **options)
        elif isinstance(cache, Cache):
            wrapped = _sync_decorators.make_cached(cache, func, **options)
        else:
            raise ConfigurationError(f"@cached needs a Cache or AsyncCache, got {type(cache).__name__}")
        return wrapped  # type: ignore[return-value]

    return decorate
