"""Backends registered lazily by dotted path: nothing is imported until a cache needs it.

A backend's module imports its driver at import time; when that import fails the user is
told which extra to install instead of seeing a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from ._exceptions import ConfigurationError
from ._redact import redact

__all__ = ["BackendSpec", "backend_names", "load_backend", "register_backend", "scheme_backend"]


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """Where a backend's two flavours live, and the extra that brings its driver."""

    async_path: str
    sync_path: str
    extra: str | None = None
    drivers: tuple[str, ...] = ()


_BACKENDS: dict[str, BackendSpec] = {
    "memory": BackendSpec(
        "stratacache._async.backends.memory:AsyncMemoryBackend",
        "stratacache._sync.backends.memory:MemoryBackend",
    ),
    "null": BackendSpec(
        "stratacache._async.backends.null:AsyncNullBackend",
        "stratacache._sync.backends.null:NullBackend",
    ),
    "redis": BackendSpec(
        "stratacache._async.backends.redis:AsyncRedisBackend",
        "stratacache._sync.backends.redis:RedisBackend",
        extra="redis",
        drivers=("redis",),
    ),
    "memcached": BackendSpec(
        "stratacache._async.backends.memcached:AsyncMemcachedBackend",
        "stratacache._sync.backends.memcached:MemcachedBackend",
        extra="memcached",
        drivers=("pymemcache",),
    ),
    "file": BackendSpec(
        "stratacache._async.backends.file:AsyncFileBackend",
        "stratacache._sync.backends.file:FileBackend",
    ),
    "sharded": BackendSpec(
        "stratacache._async.backends.sharded:AsyncShardedBackend",
        "stratacache._sync.backends.sharded:ShardedBackend",
    ),
    "layered": BackendSpec(
        "stratacache._async.backends.layered:AsyncLayeredBackend",
        "stratacache._sync.backends.layered:LayeredBackend",
    ),
}

# URL scheme -> backend name.
_SCHEMES: dict[str, str] = {
    "memory": "memory",
    "null": "null",
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
    "redis+cluster": "redis",
    "rediss+cluster": "redis",
    "redis+sentinel": "redis",
    "rediss+sentinel": "redis",
    "memcached": "memcached",
    "file": "file",
    "layered": "layered",
    "sharded": "sharded",
}


def register_backend(
    name: str,
    async_path: str,
    sync_path: str,
    *,
    extra: str | None = None,
    drivers: tuple[str, ...] = (),
    schemes: tuple[str, ...] = (),
) -> None:
    """Register a backend by ``"module:Class"`` paths, optionally claiming URL schemes.

    ``drivers`` are the top-level modules the backend imports; when one is missing the
    error tells the user to ``pip install 'stratacache[<extra>]'``.
    """
    _BACKENDS[name] = BackendSpec(async_path, sync_path, extra, drivers)
    for scheme in schemes or (name,):
        _SCHEMES[scheme] = name


def backend_names() -> list[str]:
    """Every registered backend name."""
    return sorted(_BACKENDS)


def scheme_backend(scheme: str) -> str:
    """The backend name for a URL scheme; ConfigurationError naming the scheme if unknown."""
    name = _SCHEMES.get(scheme)
    if name is None:  # .get, not KeyError: no exception in the context repeats the scheme
        known = ", ".join(f"{s}://" for s in sorted(_SCHEMES))
        raise ConfigurationError(f"unknown URL scheme {redact(scheme)!r}; known schemes: {known}")
    return name


def load_backend(name: str, *, asynchronous: bool) -> type[Any]:
    """Import and return the backend class registered as ``name`` (async or sync flavour)."""
    spec = _BACKENDS.get(name)
    if spec is None:
        raise ConfigurationError(
            f"unknown backend {redact(name)!r}; registered backends: {', '.join(backend_names())}"
        )
    module_name, _, attr = (spec.async_path if asynchronous else spec.sync_path).partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if spec.extra and (missing in spec.drivers or not spec.drivers):
            raise ConfigurationError(
                f"backend {name!r} needs the {missing!r} package: pip install 'stratacache[{spec.extra}]'"
            ) from exc
        raise
    cls: type[Any] = getattr(module, attr)
    return cls
