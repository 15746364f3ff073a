"""What the observability integrations share: attaching to a cache's hooks, and labels.

Prometheus, OpenTelemetry and logging all observe a cache the same way: one callback on
every ``after_<operation>`` hook and one on ``on_error`` (see :mod:`stratacache.core.hooks`).
A cache with no hook registered never reads the clock for them, so an uninstrumented cache
pays nothing; an instrumented one pays one event object and the callbacks per operation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .._async.cache import AsyncCache
from .._exceptions import InvalidArgument
from .._sync.cache import Cache
from ..core.hooks import OPERATIONS, HookEvent

__all__ = ["AnyCache", "CacheLabels", "CacheT", "Instrumentation", "check_cache", "check_name"]

AnyCache = Cache | AsyncCache
#: A Cache or an AsyncCache, kept as given (``instrument`` returns its argument).
CacheT = TypeVar("CacheT", Cache, AsyncCache)


@dataclass(frozen=True, slots=True)
class CacheLabels:
    """How one instrumented cache is named in metrics, spans and log records."""

    name: str
    namespace: str
    backend: str


def check_name(value: object, parameter: str) -> str:
    """``value`` if it is a non-empty str; InvalidArgument naming ``parameter`` otherwise."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{parameter} must be a non-empty str, got {value!r}")
    return value


def check_cache(cache: object) -> AnyCache:
    """``cache`` if it is a Cache or an AsyncCache; InvalidArgument naming ``cache`` otherwise."""
    if not isinstance(cache, Cache | AsyncCache):
        raise InvalidArgument(f"cache must be a stratacache Cache or AsyncCache, got {type(cache).__name__}")
    return cache


class Instrumentation:
    """Base of the integrations: ``instrument(cache)`` adds hooks, ``uninstrument(cache)`` removes them.

    Subclasses implement :meth:`_after` (every completed operation) and :meth:`_error` (every
    failed one). Both run inside the cache call, so they must be quick; an exception in them
    is logged and swallowed by the hook machinery and never reaches the caller.
    """

    def __init__(self) -> None:
        # id(cache) -> (cache, labels, [(hook name, callback)]): the cache is kept so that
        # a scrape can read its counters, and the callbacks so they can be removed again.
        self._caches: dict[
            int, tuple[AnyCache, CacheLabels, list[tuple[str, Callable[[HookEvent], object]]]]
        ] = {}

    def instrument(self, cache: CacheT, *, name: str | None = None) -> CacheT:
        """Observe ``cache`` (a Cache or an AsyncCache) under ``name`` (default: its namespace or
        ``"default"``); returns the cache. Instrumenting one cache twice is an error."""
        check_cache(cache)
        label = check_name(name, "name") if name is not None else (cache.namespace or "default")
        if id(cache) in self._caches:
            raise InvalidArgument(f"cache {cache!r} is already instrumented by this {type(self).__name__}")
        for other, labels, _ in self._caches.values():
            if labels.name == label and other is not cache:
                raise InvalidArgument(
                    f"name {label!r} is already used by another cache; pass name= to tell them apart"
                )
        labels = CacheLabels(label, cache.namespace or "", cache.backend.name)
        self._prepare(labels)

        def after(event: HookEvent) -> None:
            self._after(labels, event)

        def error(event: HookEvent) -> None:
            self._error(labels, event)

        callbacks: list[tuple[str, Callable[[HookEvent], object]]] = [
            (f"after_{operation}", after) for operation in OPERATIONS
        ]
        callbacks.append(("on_error", error))
        for hook_name, callback in callbacks:
            cache.hooks.add(hook_name, callback)
        self._caches[id(cache)] = (cache, labels, callbacks)
        return cache

    def uninstrument(self, cache: AnyCache) -> None:
        """Stop observing ``cache``; a cache that was not instrumented is an InvalidArgument."""
        entry = self._caches.pop(id(check_cache(cache)), None)
        if entry is None:
            raise InvalidArgument(f"cache {cache!r} is not instrumented by this {type(self).__name__}")
        for hook_name, callback in entry[2]:
            cache.hooks.remove(hook_name, callback)
        self._forget(entry[1])

    def instrumented(self) -> list[tuple[AnyCache, CacheLabels]]:
        """The caches observed, with their labels."""
        return [(cache, labels) for cache, labels, _ in self._caches.values()]

    # Subclass points.
    def _prepare(self, labels: CacheLabels) -> None:
        """Called once when a cache is instrumented."""

    def _forget(self, labels: CacheLabels) -> None:
        """Called once when a cache is uninstrumented."""

    def _after(self, labels: CacheLabels, event: HookEvent) -> None:
        raise NotImplementedError

    def _error(self, labels: CacheLabels, event: HookEvent) -> None:
        raise NotImplementedError
