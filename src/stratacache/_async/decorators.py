"""The flavour-specific half of ``@cached``: wrapping a coroutine function around AsyncCache."""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable, Iterable
from typing import Any, Literal

from .._exceptions import ConfigurationError, InvalidKey
from ..core.stampede import StampedePolicy
from .cache import AsyncCache

__all__ = ["make_cached"]

_IS_ASYNC = True
# Argument reprs longer than this are hashed so that keys stay short on every backend.
_MAX_ARGS_REPR = 200


def default_key_builder(func: Callable[..., Any]) -> Callable[..., str]:
    """Build keys as ``module.qualname(args)``: bound to the signature so that ``f(1)`` and
    ``f(x=1)`` share a key; long argument lists are replaced by their SHA-256.

    Arguments must have a stable ``repr`` (str, numbers, tuples, ...) for keys to be stable
    across processes; pass ``key=`` for anything else.
    """
    signature = inspect.signature(func)
    name = f"{func.__module__}.{func.__qualname__}"

    def build(*args: Any, **kwargs: Any) -> str:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        text = ", ".join(f"{k}={v!r}" for k, v in bound.arguments.items())
        if len(text) > _MAX_ARGS_REPR:
            text = "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{name}({text})"

    return build


def make_cached(
    cache: AsyncCache,
    func: Callable[..., Any],
    *,
    ttl: Any,
    key: Callable[..., str] | None,
    policy: StampedePolicy | Literal[False] | None = None,
    tags: Iterable[str] | Callable[..., Any] | None = None,
) -> Callable[..., Any]:
    """Wrap ``func`` so that calls go through ``cache.get_or_set`` (single-flight per key,
    and ``policy``'s stampede control when given, else the cache's). ``tags``: checked tag
    names for every call, or a callable given the call's arguments that returns them."""
    if inspect.iscoroutinefunction(func) != _IS_ASYNC:
        kind = "an async def function" if _IS_ASYNC else "a plain (sync) function"
        other = "Cache" if _IS_ASYNC else "AsyncCache"  # unasync: keep
        raise ConfigurationError(
            f"@cached with {type(cache).__name__} needs {kind}; "
            f"{func.__qualname__} is not one (use {other} for it)"
        )
    builder = key or default_key_builder(func)

    def cache_key(*args: Any, **kwargs: Any) -> str:
        result = builder(*args, **kwargs)
        if not isinstance(result, str):
            raise InvalidKey(
                f"key function for {func.__qualname__} returned {type(result).__name__}, not str"
            )
        return result

    tags_for = tags if callable(tags) else None
    fixed: Any = None if callable(tags) else tags

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Per-call tags are computed before the key's lookup, so bad ones fail on hits too.
        call_tags = fixed if tags_for is None else tags_for(*args, **kwargs)
        return await cache.get_or_set(
            cache_key(*args, **kwargs), lambda: func(*args, **kwargs), ttl=ttl, policy=policy, tags=call_tags
        )

    async def invalidate(*args: Any, **kwargs: Any) -> bool:
        return await cache.delete(cache_key(*args, **kwargs))

    wrapper.cache_key = cache_key  # type: ignore[attr-defined]
    wrapper.invalidate = invalidate  # type: ignore[attr-defined]
    wrapper.cache = cache  # type: ignore[attr-defined]
    return wrapper
