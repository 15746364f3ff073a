"""``stratacache keys``: list a cache's keys by glob, on the backends that can enumerate them.

The backend contract has no listing operation (``delete_pattern`` enumerates and deletes in
one step, inside the backend), so this walks the same structures ``delete_pattern`` walks,
backend by backend: the memory store's live keys, the file backend's index, Redis ``SCAN
MATCH`` (never ``KEYS``: it would block the server), a layered cache's source of truth and
every node of a sharded one. Any other backend (Memcached cannot list its keys) raises
:class:`~stratacache.UnsupportedOperation` naming it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._exceptions import UnsupportedOperation
from ._sync.backends.base import Backend
from ._types import check_text
from .core.glob import escape_glob

__all__ = ["iter_keys"]


def _backend_keys(backend: Backend, pattern: str) -> Iterator[str]:
    """Full (namespaced) keys of ``backend`` matching the glob ``pattern``."""
    # Imported here: the layered/sharded/redis/file modules import drivers or are heavy.
    from ._sync.backends.file import FileBackend
    from ._sync.backends.layered import LayeredBackend
    from ._sync.backends.memory import MemoryBackend
    from ._sync.backends.null import NullBackend
    from ._sync.backends.redis import RedisBackend
    from ._sync.backends.sharded import ShardedBackend

    if isinstance(backend, MemoryBackend):
        yield from backend.store.keys(pattern)
    elif isinstance(backend, NullBackend):
        return
    elif isinstance(backend, FileBackend):
        yield from _file_keys(backend, pattern)
    elif isinstance(backend, RedisBackend):
        client: Any = backend._client
        for key in client.scan_iter(match=pattern, count=backend.scan_count):
            yield key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
    elif isinstance(backend, LayeredBackend):
        # The source of truth holds every key; upper tiers hold copies of some.
        yield from _backend_keys(backend.tiers[-1], pattern)
    elif isinstance(backend, ShardedBackend):
        for node in backend._nodes.values():
            yield from _backend_keys(node, pattern)
    else:
        name = type(backend).__name__.removesuffix("Backend").lower() or type(backend).__name__
        raise UnsupportedOperation(
            name, "keys", f"the {backend.describe()} backend cannot enumerate its keys"
        )


def _file_keys(backend: Any, pattern: str) -> Iterator[str]:
    store = backend.store
    now = store.clock()
    rows = store._conn().execute(
        "SELECT key FROM entries WHERE sc_glob(?, key) AND (expires IS NULL OR expires > ?) ORDER BY key",
        (pattern, now),
    )
    for (key,) in rows.fetchall():
        yield str(key)


def iter_keys(cache: Any, pattern: str = "*") -> Iterator[str]:
    """The keys of ``cache`` (a :class:`~stratacache.Cache`) matching ``pattern``, sorted,
    shown as the caller writes them (without the cache's namespace)."""
    prefix: str = cache._prefix
    full = escape_glob(prefix) + check_text(pattern, "patterns")
    keys = {key[len(prefix) :] for key in _backend_keys(cache.backend, full) if key.startswith(prefix)}
    yield from sorted(keys)
