"""A Django ``CACHES`` backend over any stratacache URL.

.. code-block:: python

    CACHES = {
        "default": {
            "BACKEND": "stratacache.contrib.django.StratacacheCache",
            "LOCATION": "redis://127.0.0.1:6379/0",
            "TIMEOUT": 300,
            "KEY_PREFIX": "site",
            "OPTIONS": {"namespace": "web", "max_connections": 50},
        }
    }

``LOCATION`` is any stratacache URL (``""`` means ``memory://``); ``OPTIONS`` are the
keyword arguments of :class:`stratacache.Cache` (an unknown one is an
``ImproperlyConfigured`` error naming it). The whole Django cache API is implemented with
Django's documented semantics: ``timeout`` omitted = ``TIMEOUT``, ``None`` = forever, ``0``
or negative = expire at once; ``version=``, ``VERSION``, ``KEY_PREFIX``, ``KEY_FUNCTION``;
``CacheKeyWarning`` for keys memcached would refuse; ``incr``/``decr`` raise ``ValueError``
on a missing key. See docs/integrations/django.md for the table of what maps how.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.exceptions import ImproperlyConfigured

from .._exceptions import ConfigurationError, SerializationError, ValueTooLarge
from .._sync.cache import Cache
from .._types import MAX_TTL, MISSING
from ._shared import IN_PROCESS_BACKENDS, close_shared_caches, derive_signing_key, shared_cache

__all__ = ["PickleSerializationError", "StratacacheCache", "close_shared_caches"]

_T = TypeVar("_T")
_BACKEND_PATH = "stratacache.contrib.django.StratacacheCache"
_SIGNING_PURPOSE = "stratacache.contrib.django.StratacacheCache.signing"
# A Django timeout that means "expire at once": the value must not be stored.
_EXPIRED = object()


class PickleSerializationError(SerializationError, pickle.PickleError):
    """A value could not be pickled for the cache.

    Both a :class:`stratacache.SerializationError` and a ``pickle.PickleError``, so code
    written for Django's own backends (which let ``PickleError`` through) keeps working.
    """


@contextmanager
def _pickling() -> Iterator[None]:
    """Re-raise a failure to pickle a value as :class:`PickleSerializationError`."""
    try:
        yield
    except SerializationError as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, pickle.PickleError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise PickleSerializationError(str(exc)) from exc


def _cache_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``Cache`` from a CACHES entry's ``OPTIONS``."""
    raw = params.get("OPTIONS") or {}
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(
            f"{_BACKEND_PATH}: OPTIONS must be a dict of stratacache.Cache keyword arguments, "
            f"not {type(raw).__name__}"
        )
    options = dict(raw)
    # The two OPTIONS Django's own local backends read: MAX_ENTRIES maps onto the memory
    # backend's bound; culling is the eviction policy's job, so CULL_FREQUENCY has no meaning.
    if "MAX_ENTRIES" in options:
        options["max_entries"] = options.pop("MAX_ENTRIES")
    if "CULL_FREQUENCY" in options:
        raise ImproperlyConfigured(
            f"{_BACKEND_PATH}: OPTIONS['CULL_FREQUENCY'] is not supported: entries are evicted "
            "one at a time by the backend's policy (OPTIONS {'policy': 'lru'|'lfu'|'tinylfu'|...})"
        )
    # Django's backends pickle every value; pickle is only safe signed, so sign with a key
    # derived from SECRET_KEY unless OPTIONS choose a serializer (or a key) themselves.
    if "serializer" not in options:
        options["serializer"] = "pickle"
    if options["serializer"] == "pickle" and "signing_key" not in options:
        secret = getattr(settings, "SECRET_KEY", None)
        if not secret:
            raise ImproperlyConfigured(
                f"{_BACKEND_PATH}: values are pickled and signed with a key derived from "
                "SECRET_KEY, which is empty; set SECRET_KEY, or OPTIONS 'signing_key' or 'serializer'"
            )
        options["signing_key"] = derive_signing_key(secret, _SIGNING_PURPOSE)
    return options


class StratacacheCache(BaseCache):  # type: ignore[misc]  # Django ships no type information
    """Django's cache API over a stratacache :class:`~stratacache.Cache`.

    All backend objects built from the same ``LOCATION`` and ``OPTIONS`` share one
    thread-safe ``Cache`` (one connection pool per process; for ``memory://`` one store
    that every thread sees). The async methods call the in-process backends (memory, null)
    directly, and run the others' blocking calls in asgiref's thread pool
    (``sync_to_async(thread_sensitive=False)``): the shared ``Cache`` is thread-safe, so
    async views do not queue behind one thread.
    """

    def __init__(self, location: str, params: Mapping[str, Any]) -> None:
        options = _cache_options(params)  # first: BaseCache reads OPTIONS as a dict
        super().__init__(params)
        if location is None or location == "":
            location = "memory://"
        if not isinstance(location, str):
            raise ImproperlyConfigured(
                f"{_BACKEND_PATH}: LOCATION must be one stratacache URL (a str), "
                f"not {type(location).__name__} {location!r}"
            )
        self._location = location
        self._options = options
        try:
            self._shared: Cache = shared_cache(location, options)
        except ConfigurationError as exc:
            raise ImproperlyConfigured(f"{_BACKEND_PATH} (LOCATION {location!r}): {exc}") from exc
        self._inline = self._shared.backend.name in IN_PROCESS_BACKENDS

    @property
    def _cache(self) -> Cache:
        cache = self._shared
        if cache.closed:
            # close_shared_caches() closed it: the next use reopens (memory:// starts empty).
            cache = self._shared = shared_cache(self._location, self._options)
        return cache

    @property
    def stratacache(self) -> Cache:
        """The underlying :class:`stratacache.Cache` (stats(), ttl(), delete_pattern(), ...)."""
        return self._cache

    # ------------------------------------------------------------------ helpers

    def _seconds(self, timeout: Any) -> Any:
        """Django's timeout as a stratacache ttl: seconds, None (forever) or _EXPIRED."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        if timeout <= 0:
            return _EXPIRED
        # Every backend can keep an expiry of at most MAX_TTL (a year; Memcached none past
        # 2038), and a cache may always drop an entry early, so longer timeouts are capped.
        return min(float(timeout), float(MAX_TTL))

    # ------------------------------------------------------------------- sync API

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        """Store only if ``key`` is absent (atomic); True when stored."""
        k = self.make_and_validate_key(key, version=version)
        ttl = self._seconds(timeout)
        if ttl is _EXPIRED:
            # Django: an add that expires at once "succeeds" when the key was absent.
            return not self._cache.exists(k)
        with _pickling():
            return self._cache.add(k, value, ttl)

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        """The value at ``key``, or ``default`` when it is missing or expired."""
        return self._cache.get(self.make_and_validate_key(key, version=version), default)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        """Store ``value``; a timeout of 0 or less removes the key instead.

        A value over the backend's size limit (Memcached's item size) is not stored and the
        key is deleted, without an error, as Django's memcached backends do: the old value
        must not be served as if the new one had been stored.
        """
        k = self.make_and_validate_key(key, version=version)
        ttl = self._seconds(timeout)
        if ttl is _EXPIRED:
            self._cache.delete(k)
            return
        try:
            with _pickling():
                self._cache.set(k, value, ttl)
        except ValueTooLarge:
            self._cache.delete(k)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        """Give ``key`` a new timeout; False when the key does not exist."""
        k = self.make_and_validate_key(key, version=version)
        ttl = self._seconds(timeout)
        if ttl is _EXPIRED:
            return self._cache.delete(k)
        return self._cache.expire(k, ttl)

    def delete(self, key: Any, version: int | None = None) -> bool:
        """Remove ``key``; True when it existed."""
        return self._cache.delete(self.make_and_validate_key(key, version=version))

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        """The present keys among ``keys`` with their values, in one round trip."""
        made = {self.make_and_validate_key(key, version=version): key for key in keys}
        if not made:
            return {}
        found = self._cache.get_many(made)
        return {made[k]: value for k, value in found.items()}

    def has_key(self, key: Any, version: int | None = None) -> bool:
        """True when ``key`` holds an unexpired value."""
        return self._cache.exists(self.make_and_validate_key(key, version=version))

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        """Add ``delta`` atomically; ``ValueError`` when the key does not exist (as Django documents).

        The existence check and the increment are two steps (as in Django's Redis
        backend): a key that expires between them starts again from ``delta``.
        """
        k = self.make_and_validate_key(key, version=version)
        if not self._cache.exists(k):
            raise ValueError(f"Key '{key}' not found")
        return self._cache.incr(k, delta)

    def decr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        """Subtract ``delta`` atomically; ``ValueError`` when the key does not exist."""
        return self.incr(key, -delta, version=version)

    def set_many(
        self, data: Mapping[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        """Store every item with one timeout; the keys that could not be stored.

        A value over the backend's size limit (Memcached's item size) is a failed key, as
        with Django's memcached backends, and is deleted (memcached itself drops the old
        item when a set is too large); the rest are stored in one batch.
        """
        made = {self.make_and_validate_key(key, version=version): key for key in data}
        if not made:
            return []
        ttl = self._seconds(timeout)
        if ttl is _EXPIRED:
            self._cache.delete_many(made)
            return []
        items = {k: data[key] for k, key in made.items()}
        try:
            with _pickling():
                self._cache.set_many(items, ttl)
        except ValueTooLarge:
            failed = []
            for k, value in items.items():
                try:
                    self._cache.set(k, value, ttl)
                except ValueTooLarge:
                    failed.append(k)
            if failed:
                self._cache.delete_many(failed)
            return [made[k] for k in failed]
        return []

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        """Remove every key in one batch."""
        made = [self.make_and_validate_key(key, version=version) for key in keys]
        if made:
            self._cache.delete_many(made)

    def clear(self) -> None:
        """Remove every value of this cache (only its ``namespace`` when OPTIONS give one)."""
        self._cache.clear()

    def incr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        """Move ``key`` to version ``version + delta``, keeping its remaining timeout.

        ``ValueError`` when the key does not exist. Django's own backends re-store the value
        with the default timeout; this keeps the time the entry had left.
        """
        if version is None:
            version = self.version
        old = self.make_and_validate_key(key, version=version)
        value = self._cache.get(old, MISSING)
        remaining = self._cache.ttl(old)
        if value is MISSING or remaining is MISSING:
            raise ValueError(f"Key '{key}' not found")
        new = self.make_and_validate_key(key, version=version + delta)
        self._cache.set(new, value, remaining)
        self._cache.delete(old)
        return version + delta

    def decr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        """Move ``key`` to version ``version - delta``; ``ValueError`` when it does not exist."""
        return self.incr_version(key, -delta, version)

    def close(self, **kwargs: Any) -> None:
        """Called by Django after every request: the shared connection pool stays open.

        As with Django's RedisCache, connections are pooled for the process rather than
        opened per request. ``stratacache.contrib.django.close_shared_caches()`` (run at
        exit) closes the pools; the next use reopens them.
        """

    # ------------------------------------------------------------------ async API

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._inline:
            # No I/O: a thread hop would cost more than the call.
            return fn(*args)
        result: _T = await sync_to_async(fn, thread_sensitive=False)(*args)
        return result

    async def aadd(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        """See :meth:`add`."""
        return await self._run(self.add, key, value, timeout, version)

    async def aget(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        """See :meth:`get`."""
        return await self._run(self.get, key, default, version)

    async def aset(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        """See :meth:`set`."""
        await self._run(self.set, key, value, timeout, version)

    async def atouch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        """See :meth:`touch`."""
        return await self._run(self.touch, key, timeout, version)

    async def adelete(self, key: Any, version: int | None = None) -> bool:
        """See :meth:`delete`."""
        return await self._run(self.delete, key, version)

    async def aget_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        """See :meth:`get_many`."""
        return await self._run(self.get_many, list(keys), version)

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        """See :meth:`has_key`."""
        return await self._run(self.has_key, key, version)

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        """See :meth:`incr`."""
        return await self._run(self.incr, key, delta, version)

    async def adecr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        """See :meth:`decr`."""
        return await self._run(self.decr, key, delta, version)

    async def aset_many(
        self, data: Mapping[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        """See :meth:`set_many`."""
        return await self._run(self.set_many, data, timeout, version)

    async def adelete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        """See :meth:`delete_many`."""
        await self._run(self.delete_many, list(keys), version)

    async def aclear(self) -> None:
        """See :meth:`clear`."""
        await self._run(self.clear)

    async def aincr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        """See :meth:`incr_version`."""
        return await self._run(self.incr_version, key, delta, version)

    async def adecr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        """See :meth:`decr_version`."""
        return await self._run(self.decr_version, key, delta, version)

    async def aclose(self, **kwargs: Any) -> None:
        """See :meth:`close`."""
