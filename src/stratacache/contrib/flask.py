"""A Flask-Caching backend over any stratacache URL.

.. code-block:: python

    app.config.update(
        CACHE_TYPE="stratacache.contrib.flask.StratacacheCache",
        CACHE_STRATACACHE_URL="redis://127.0.0.1:6379/0",
        CACHE_DEFAULT_TIMEOUT=300,
        CACHE_KEY_PREFIX="myapp",
        CACHE_OPTIONS={"max_connections": 20},
    )
    cache = flask_caching.Cache(app)

Flask-Caching's ``BaseCache`` API with its semantics: ``timeout`` omitted (or ``None``) =
``CACHE_DEFAULT_TIMEOUT``, ``0`` = never expire, negative = expire at once; ``get`` returns
``None`` on a miss; ``inc``/``dec`` start a missing key at 0. ``CACHE_KEY_PREFIX`` becomes
the cache's namespace, so ``clear()`` removes this app's keys only. ``CACHE_OPTIONS`` are
keyword arguments of :class:`stratacache.Cache`. See docs/integrations/flask.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask_caching.backends.base import BaseCache

from .._exceptions import ConfigurationError, InvalidTTL
from .._sync.cache import Cache
from .._types import MAX_TTL
from ._shared import derive_signing_key

__all__ = ["StratacacheCache"]

_TYPE_PATH = "stratacache.contrib.flask.StratacacheCache"
_SIGNING_PURPOSE = "stratacache.contrib.flask.StratacacheCache.signing"
_EXPIRED = object()


def _seconds(timeout: object, name: str) -> float:
    """A Flask-Caching timeout (int, float or timedelta) in seconds."""
    if isinstance(timeout, dt.timedelta):
        return timeout.total_seconds()
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        return float(timeout)
    raise InvalidTTL(
        f"{name} must be a number of seconds or a timedelta, not {type(timeout).__name__} {timeout!r}"
    )


class StratacacheCache(BaseCache):
    """Flask-Caching's cache API over a stratacache :class:`~stratacache.Cache`.

    Build it through Flask-Caching (``CACHE_TYPE`` set to this class's import path), or
    directly: ``StratacacheCache("redis://...", default_timeout=60, namespace="app")``.
    Keywords other than ``default_timeout`` and ``ignore_delete_many_errors`` go to
    ``Cache``; a bad one raises :class:`stratacache.ConfigurationError` naming it.
    """

    def __init__(
        self,
        url: str = "memory://",
        default_timeout: int | float | dt.timedelta = 300,
        ignore_delete_many_errors: bool = False,
        **options: Any,
    ) -> None:
        # Not BaseCache.__init__: cachelib warns on float timeouts, which stratacache stores as they are.
        self.ignore_delete_many_errors = ignore_delete_many_errors
        self.default_timeout = _seconds(default_timeout, "default_timeout")  # type: ignore[assignment]
        if self.default_timeout < 0:
            raise ConfigurationError(
                f"default_timeout must be 0 (never expire) or more, got {default_timeout!r}"
            )
        if not isinstance(url, str):
            raise ConfigurationError(f"CACHE_STRATACACHE_URL must be a stratacache URL (a str), not {url!r}")
        self._cache = Cache(url, **options)

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> StratacacheCache:
        """Build the backend from a Flask app's ``CACHE_*`` configuration (Flask-Caching calls it).

        ``kwargs`` holds ``default_timeout``, ``ignore_delete_many_errors`` and the entries
        of ``CACHE_OPTIONS``. Without a ``serializer`` in them and with a ``SECRET_KEY``,
        values are pickled (as Flask-Caching's own backends do) and signed with a key
        derived from the app's secret key.
        """
        if args:
            raise ConfigurationError(
                f"CACHE_ARGS is not used by {_TYPE_PATH}; give the URL as CACHE_STRATACACHE_URL "
                "and keyword arguments as CACHE_OPTIONS"
            )
        options = dict(kwargs)
        url = config.get("CACHE_STRATACACHE_URL") or "memory://"
        prefix = config.get("CACHE_KEY_PREFIX")
        if prefix and "namespace" not in options:
            options["namespace"] = prefix
        secret = app.config.get("SECRET_KEY")
        if "serializer" not in options and secret:
            options["serializer"] = "pickle"
        if options.get("serializer") == "pickle" and "signing_key" not in options:
            if not secret:
                raise ConfigurationError(
                    f"{_TYPE_PATH}: CACHE_OPTIONS serializer 'pickle' needs a signing_key, or the "
                    "app's SECRET_KEY to derive one from"
                )
            options["signing_key"] = derive_signing_key(secret, _SIGNING_PURPOSE)
        try:
            return cls(url, **options)
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"{_TYPE_PATH} (CACHE_STRATACACHE_URL {url!r}, CACHE_OPTIONS): {exc}"
            ) from exc

    @property
    def stratacache(self) -> Cache:
        """The underlying :class:`stratacache.Cache` (stats(), ttl(), delete_pattern(), ...)."""
        return self._cache

    def _ttl(self, timeout: Any) -> Any:
        """Flask-Caching's timeout as a stratacache ttl: seconds, None (never) or _EXPIRED."""
        seconds = self.default_timeout if timeout is None else _seconds(timeout, "timeout")
        if seconds == 0:
            return None
        if seconds < 0:
            return _EXPIRED
        # A cache may always drop an entry early; no backend keeps an expiry past MAX_TTL.
        return min(float(seconds), float(MAX_TTL))

    def get(self, key: str) -> Any:
        """The value at ``key``, or ``None`` when it is missing or expired."""
        return self._cache.get(key)

    def set(self, key: str, value: Any, timeout: int | float | dt.timedelta | None = None) -> bool:
        """Store ``value`` (a negative timeout removes the key instead); True."""
        ttl = self._ttl(timeout)
        if ttl is _EXPIRED:
            self._cache.delete(key)
        else:
            self._cache.set(key, value, ttl)
        return True

    def add(self, key: str, value: Any, timeout: int | float | dt.timedelta | None = None) -> bool:
        """Store only if ``key`` is absent (atomic); True when stored."""
        ttl = self._ttl(timeout)
        if ttl is _EXPIRED:
            return not self._cache.exists(key)
        return self._cache.add(key, value, ttl)

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed."""
        return self._cache.delete(key)

    def delete_many(self, *keys: str) -> list[Any]:
        """Remove every key in one batch; the keys now absent (all of them)."""
        if keys:
            self._cache.delete_many(keys)
        # A key absent after the attempt counts as deleted (Flask-Caching's rule), and one
        # batch delete leaves every key absent, so none can fail to delete.
        return list(dict.fromkeys(keys))

    def has(self, key: str) -> bool:
        """True when ``key`` holds an unexpired value, without reading it."""
        return self._cache.exists(key)

    def clear(self) -> bool:
        """Remove every key of this cache's namespace (``CACHE_KEY_PREFIX``); True."""
        self._cache.clear()
        return True

    def get_many(self, *keys: str) -> list[Any]:
        """The values of ``keys`` in order, ``None`` for each miss, in one round trip."""
        if not keys:
            return []
        found = self._cache.get_many(keys)
        return [found.get(key) for key in keys]

    def set_many(
        self, mapping: Mapping[str, Any], timeout: int | float | dt.timedelta | None = None
    ) -> list[Any]:
        """Store every item with one timeout in one batch; the keys stored (all of them)."""
        ttl = self._ttl(timeout)
        if ttl is _EXPIRED:
            self._cache.delete_many(list(mapping))
        elif mapping:
            self._cache.set_many(mapping, ttl)
        return list(mapping)

    def inc(self, key: str, delta: int = 1) -> int:
        """Add ``delta`` atomically; a missing key starts at 0."""
        return self._cache.incr(key, delta)

    def dec(self, key: str, delta: int = 1) -> int:
        """Subtract ``delta`` atomically; a missing key starts at 0."""
        return self._cache.decr(key, delta)

    def close(self) -> None:
        """Release the cache's connections (Flask-Caching itself never calls this)."""
        self._cache.close()
