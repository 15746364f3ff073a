"""FastAPI helpers: the cache as a dependency, plus the Starlette middleware and decorator.

>>> app = FastAPI(lifespan=cache_lifespan("redis://127.0.0.1:6379/0"))
>>> app.add_middleware(CacheMiddleware, ttl=30)
>>> @app.get("/items/{item_id}")
... @cache_response(ttl=300)
... async def read_item(item_id: int, cache: CacheDep) -> dict[str, int]:
...     return {"item": item_id, "views": await cache.incr(f"views:{item_id}")}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from .._async.cache import AsyncCache
from .._exceptions import ConfigurationError
from ._observe import check_name
from .starlette import DEFAULT_STATE_KEY, CacheMiddleware, RoutePolicy, cache_lifespan, cache_response

__all__ = [
    "CacheDep",
    "CacheMiddleware",
    "RoutePolicy",
    "cache_dependency",
    "cache_lifespan",
    "cache_response",
    "get_cache",
]


def cache_dependency(state_key: str = DEFAULT_STATE_KEY) -> Callable[[Request], AsyncCache]:
    """A dependency returning the AsyncCache that :func:`cache_lifespan` opened under ``state_key``.

    Raises ConfigurationError (naming the state key) when the app has no such cache.
    """
    check_name(state_key, "state_key")

    def dependency(request: Request) -> AsyncCache:
        found = getattr(request.state, state_key, None)
        if not isinstance(found, AsyncCache):
            found = getattr(request.app.state, state_key, None)
        if not isinstance(found, AsyncCache):
            raise ConfigurationError(
                f"no AsyncCache in the app state under {state_key!r}: "
                f"create the app with lifespan=cache_lifespan(...)"
            )
        return found

    dependency.__doc__ = f"The app's AsyncCache (state key {state_key!r})."
    return dependency


#: The dependency for the default state key: ``cache: AsyncCache = Depends(get_cache)``.
get_cache = cache_dependency()
#: ``cache: CacheDep`` in an endpoint's signature receives the app's AsyncCache.
CacheDep = Annotated[AsyncCache, Depends(get_cache)]
