"""A distributed lease on one cache key, built from the facade's atomic verbs.

Acquire is ``add(lease_key, token, lease_ttl)``: atomic on every backend (``SET NX PX`` on
Redis and on our server, ``add`` on Memcached, an insert-if-absent row in the file
backend's SQLite index, a locked check in memory). The lease expires by itself, so a
holder that dies (SIGKILL, power loss) blocks the key for at most ``lease_ttl``.

Release is compare-and-delete: read the lease with ``get_item`` and delete it with
``if_version`` only if it still holds our token. A holder whose lease already expired and
was taken by another caller must not delete that caller's lease, and a plain ``delete``
would; a version check makes the read and the delete one atomic step.

The lease's I/O goes to the backend directly, not through the facade's operations: it is
the cache's own bookkeeping, so the user's hooks (metrics, tracing, logs) and ``stats()``
do not see it as the user's ``add``/``get_item``/``delete`` of ``stratacache-lease:*``
keys. Backends raise only stratacache errors, so errors are still translated.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from .._exceptions import CacheError, UnsupportedOperation
from .._types import MISSING

if TYPE_CHECKING:
    from .cache import AsyncCache

__all__ = ["AsyncLease", "lease_key", "stores_bytes_only"]

# Lease keys live in the cache's own namespace (clear() removes them too) under a prefix
# no plain key of an application is likely to start with; cache.keys() leaves them out.
LEASE_KEY_PREFIX = "stratacache-lease:"


def lease_key(key: str) -> str:
    """The key that holds the lease for ``key``."""
    return LEASE_KEY_PREFIX + key


def stores_bytes_only(cache: AsyncCache) -> bool:
    """True when ``cache`` stores values as given bytes (a headerless serializer, as raw).

    Internal state (lease tokens, rate limiter buckets) is then written as bytes: such a
    serializer refuses ``str`` and lists, and reads every value back as bytes.
    """
    codec = cache._codec
    return codec is not None and getattr(codec.serializer, "format_id", None) == 0


class AsyncLease:
    """The lease on one key, held by this caller while ``held`` is True.

    ``acquire()`` tries once and never waits (the caller decides how to back off);
    ``release()`` gives it back only if it is still ours.
    """

    __slots__ = ("cache", "held", "key", "token", "ttl")

    def __init__(self, cache: AsyncCache, key: str, ttl: float) -> None:
        self.cache = cache
        self.key = lease_key(key)
        self.ttl = ttl
        # 128 random bits: no two holders, in any process, draw the same token. A cache
        # whose serializer stores bytes as given (raw: no header) takes only bytes, and JSON
        # takes no bytes, so the token is bytes exactly where text cannot be stored.
        self.token: str | bytes = secrets.token_hex(16)
        if stores_bytes_only(cache):
            self.token = secrets.token_bytes(16)
        self.held = False

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it; True when this caller now holds it."""
        cache = self.cache
        k = cache._key(self.key)
        self.held = await cache._backend.add(k, cache._encode(self.token, k), self.ttl)
        return self.held

    async def release(self) -> bool:
        """Give the lease back if it still holds our token; True when it was deleted.

        Never raises a backend error: a lease that cannot be released expires by itself
        within ``ttl``, and the caller's own outcome (a value, or the loader's exception)
        matters more than the cleanup.
        """
        if not self.held:
            return False
        self.held = False
        try:
            cache = self.cache
            k = cache._key(self.key)
            raw = await cache._backend.get_item(k)
            if raw is MISSING or cache._decode(raw.value, k) != self.token:
                return False  # expired, and perhaps taken by another caller since: not ours
            removed: bool = await cache._backend.delete_if_version(k, raw.version)
            return removed
        except UnsupportedOperation:
            # No versions on this backend: a plain delete could remove another caller's
            # lease, so leave ours to expire (waiters read the value, not the lease).
            return False
        except CacheError:
            return False

    def __repr__(self) -> str:
        state = "held" if self.held else "free"
        return f"<{type(self).__name__} {self.key!r} ttl={self.ttl:g}s {state}>"
