"""What the framework integrations share: one cache per configuration, and the signing key.

Frameworks build their cache objects more often than once per process (Django keeps one
backend object per thread and per async context), while a stratacache ``Cache`` is
thread-safe and owns a connection pool or, for ``memory://``, the data itself. So every
backend object built from the same location and options uses one shared ``Cache``: one
pool per process, and one in-process store that every thread sees (as Django's LocMemCache
shares its store by LOCATION).
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import threading
from collections.abc import Mapping
from typing import Any

from .._sync.cache import Cache

__all__ = ["IN_PROCESS_BACKENDS", "close_shared_caches", "derive_signing_key", "shared_cache"]

#: Backends that do no I/O: their calls finish in microseconds and may run on an event loop.
IN_PROCESS_BACKENDS = frozenset({"memory", "null"})

_lock = threading.Lock()
_caches: dict[tuple[str, str], Cache] = {}


def derive_signing_key(secret: str | bytes, purpose: str) -> bytes:
    """A key for signing pickled cache values, derived from a framework's secret key.

    HMAC-SHA256 of ``purpose`` under the secret: the secret itself never signs cache
    values, and values signed for one purpose do not verify for another.
    """
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    return hmac.new(raw, purpose.encode("utf-8"), hashlib.sha256).digest()


def shared_cache(location: str, options: Mapping[str, Any]) -> Cache:
    """The process's one ``Cache`` for ``location`` and ``options``, built on first use.

    Raises what ``Cache(location, **options)`` raises (a ``ConfigurationError`` naming a
    bad parameter). Options are told apart by their ``repr``: equal settings share a cache.
    """
    key = (location, repr(sorted(options.items(), key=lambda item: item[0])))
    with _lock:
        cache = _caches.get(key)
        if cache is None or cache.closed:
            cache = Cache(location, **options)
            _caches[key] = cache
        return cache


def close_shared_caches() -> None:
    """Close every shared cache (their connection pools); the next use builds new ones.

    Runs at interpreter exit; tests call it to release connections between servers.
    """
    with _lock:
        caches = list(_caches.values())
        _caches.clear()
    for cache in caches:
        cache.close()


atexit.register(close_shared_caches)
