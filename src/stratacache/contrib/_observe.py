"""What the observability integrations share: attaching to a cache's hooks, and labels.

Prometheus, OpenTelemetry and logging observe a cache through its hooks (see
:mod:`stratacache.core.hooks`): one callback on ``on_error``, one on the ``after_<operation>``
hooks they need per call, and, for the hot ``get``/``set``, optionally a latency sampler
instead, which leaves the cache's fused fast paths on and is called one call in
``latency_sample``. A per-call hook costs the cache the full (unfused) path and one event
object per call, which is why counters are read from ``stats()`` rather than counted here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TypeVar

from .._async.cache import AsyncCache
from .._exceptions import InvalidArgument
from .._sync.cache import Cache
from ..core.hooks import OPERATIONS, Hook, HookEvent, Sampler

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


class _Observed:
    """One instrumented cache: its labels and the callbacks registered on it."""

    __slots__ = ("after", "attached", "cache", "error", "labels", "sampler")

    def __init__(
        self,
        cache: AnyCache,
        labels: CacheLabels,
        after: list[tuple[str, Hook]],
        error: Hook,
        sampler: Sampler | None,
    ) -> None:
        self.cache = cache
        self.labels = labels
        self.after = after
        self.error = error
        self.sampler = sampler
        self.attached = False  # whether the ``after`` hooks are registered now


class Instrumentation:
    """Base of the integrations: ``instrument(cache)`` adds hooks, ``uninstrument(cache)`` removes them.

    Subclasses implement :meth:`_after` (every completed operation it hooks) and :meth:`_error`
    (every failed one). A subclass whose :meth:`_sampled_operations` names operations gets
    those from the cache's latency samples through :meth:`_sample` instead of per-call hooks,
    which keeps the fused fast paths of ``get``/``set`` on. All run inside the cache call, so
    they must be quick; an exception in them is logged and swallowed by the hook machinery
    and never reaches the caller.
    """

    def __init__(self) -> None:
        # id(cache) -> what was registered on it: the cache is kept so that a scrape can read
        # its counters, and the callbacks so they can be removed again.
        self._caches: dict[int, _Observed] = {}

    def instrument(self, cache: CacheT, *, name: str | None = None) -> CacheT:
        """Observe ``cache`` (a Cache or an AsyncCache) under ``name`` (default: its namespace or
        ``"default"``); returns the cache. Instrumenting one cache twice is an error."""
        check_cache(cache)
        label = check_name(name, "name") if name is not None else (cache.namespace or "default")
        if id(cache) in self._caches:
            raise InvalidArgument(f"cache {cache!r} is already instrumented by this {type(self).__name__}")
        for observed in self._caches.values():
            if observed.labels.name == label and observed.cache is not cache:
                raise InvalidArgument(
                    f"name {label!r} is already used by another cache; pass name= to tell them apart"
                )
        labels = CacheLabels(label, cache.namespace or "", cache.backend.name)
        self._prepare(labels)

        # partial, not a closure: a C-level call, one Python frame less on every hooked call.
        after: Hook = functools.partial(self._after, labels)
        error: Hook = functools.partial(self._error, labels)

        sampled = self._sampled_operations()
        sampler: Sampler | None = None
        if sampled:

            def sampler(operation: str, seconds: float, weight: int) -> None:
                self._sample(labels, operation, seconds, weight)

        observed = _Observed(
            cache,
            labels,
            [(f"after_{operation}", after) for operation in OPERATIONS if operation not in sampled],
            error,
            sampler,
        )
        cache.hooks.add("on_error", error)
        if sampler is not None:
            cache.hooks.add_sampler(sampler)
        self._caches[id(cache)] = observed
        self._attach(observed, self._wants_after(labels))
        return cache

    def uninstrument(self, cache: AnyCache) -> None:
        """Stop observing ``cache``; a cache that was not instrumented is an InvalidArgument."""
        observed = self._caches.pop(id(check_cache(cache)), None)
        if observed is None:
            raise InvalidArgument(f"cache {cache!r} is not instrumented by this {type(self).__name__}")
        self._attach(observed, False)
        cache.hooks.remove("on_error", observed.error)
        if observed.sampler is not None:
            cache.hooks.remove_sampler(observed.sampler)
        self._forget(observed.labels)

    def instrumented(self) -> list[tuple[AnyCache, CacheLabels]]:
        """The caches observed, with their labels."""
        return [(observed.cache, observed.labels) for observed in list(self._caches.values())]

    def _attach(self, observed: _Observed, on: bool) -> None:
        """Register (``on``) or remove the per-call ``after_*`` hooks of one cache."""
        if on == observed.attached:
            return
        observed.attached = on
        hooks = observed.cache.hooks
        for hook_name, callback in observed.after:
            if on:
                hooks.add(hook_name, callback)
            else:
                hooks.remove(hook_name, callback)

    # Subclass points.
    def _prepare(self, labels: CacheLabels) -> None:
        """Called once when a cache is instrumented."""

    def _forget(self, labels: CacheLabels) -> None:
        """Called once when a cache is uninstrumented."""

    def _sampled_operations(self) -> tuple[str, ...]:
        """Operations observed through latency samples (:meth:`_sample`), not per-call hooks."""
        return ()

    def _wants_after(self, labels: CacheLabels) -> bool:
        """Whether the per-call ``after_*`` hooks are registered when a cache is instrumented."""
        return True

    def _after(self, labels: CacheLabels, event: HookEvent) -> None:
        raise NotImplementedError

    def _error(self, labels: CacheLabels, event: HookEvent) -> None:
        raise NotImplementedError

    def _sample(self, labels: CacheLabels, operation: str, seconds: float, weight: int) -> None:
        raise NotImplementedError
