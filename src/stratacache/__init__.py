"""stratacache: one caching API, sync and async, over every backend.

>>> import stratacache as sc
>>> cache = sc.Cache("memory://?max_entries=1000", namespace="app", default_ttl=300)
>>> cache.set("greeting", "hello")
>>> cache.get("greeting")
'hello'

This module only re-exports; importing it imports no driver and creates nothing.
"""

from __future__ import annotations

from typing import Any as _Any

from ._async.backends.base import AsyncBackend, BackendCounters, Capabilities
from ._async.backends.memory import AsyncMemoryBackend
from ._async.backends.null import AsyncNullBackend
from ._async.cache import AsyncCache, HealthReport
from ._async.ratelimit import AsyncRateLimiter
from ._async.sources import AsyncDataSource
from ._async.strategies import AsyncReadThrough, AsyncRefreshAhead, AsyncWriteBehind, AsyncWriteThrough
from ._async.typed import AsyncTypedCache
from ._exceptions import (
    AccessDenied,
    BackendUnavailable,
    CacheClosed,
    CacheError,
    CacheTimeout,
    ConfigurationError,
    InvalidArgument,
    InvalidKey,
    InvalidTTL,
    ProtocolError,
    RateLimitExceeded,
    SerializationError,
    SnapshotError,
    SourceError,
    UnsupportedOperation,
    ValueTooLarge,
    WriteQueueFull,
    WrongType,
)
from ._registry import register_backend
from ._sync.backends.base import Backend
from ._sync.backends.memory import MemoryBackend
from ._sync.backends.null import NullBackend
from ._sync.cache import Cache
from ._sync.ratelimit import RateLimiter
from ._sync.sources import DataSource
from ._sync.strategies import ReadThrough, RefreshAhead, WriteBehind, WriteThrough
from ._sync.typed import TypedCache
from ._types import MISSING, UNSET, Item, Missing, Unset
from .core.envelope import TagVersions
from .core.hooks import HOOK_NAMES, HookEvent
from .core.ratelimit import RateLimitDecision
from .core.sources import MappingSource
from .core.stampede import StampedePolicy
from .core.stats import LatencySummary, Stats
from .core.warming import WarmReport
from .core.write_queue import DeadLetter
from .decorators import cached
from .serializers import Codec, Serializer

__version__ = "0.1.0"

# Backends whose modules import a driver (or are simply not needed by most users) are
# exported lazily: the name resolves on first use, so ``import stratacache`` stays light.
_LAZY: dict[str, str] = {
    "RedisBackend": "stratacache._sync.backends.redis",
    "AsyncRedisBackend": "stratacache._async.backends.redis",
    "MemcachedBackend": "stratacache._sync.backends.memcached",
    "AsyncMemcachedBackend": "stratacache._async.backends.memcached",
    "FileBackend": "stratacache._sync.backends.file",
    "AsyncFileBackend": "stratacache._async.backends.file",
    "LayeredBackend": "stratacache._sync.backends.layered",
    "AsyncLayeredBackend": "stratacache._async.backends.layered",
    "ShardedBackend": "stratacache._sync.backends.sharded",
    "AsyncShardedBackend": "stratacache._async.backends.sharded",
    # Integrations: each imports its optional dependency when first used.
    "PrometheusCollector": "stratacache.contrib.prometheus",
    "OpenTelemetryInstrumentation": "stratacache.contrib.opentelemetry",
    "LoggingInstrumentation": "stratacache.contrib.logging",
    "CacheMiddleware": "stratacache.contrib.starlette",
    "cache_response": "stratacache.contrib.starlette",
    "cache_lifespan": "stratacache.contrib.starlette",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stratacache' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "HOOK_NAMES",
    "MISSING",
    "UNSET",
    "AsyncBackend",
    "AsyncCache",
    "AsyncMemoryBackend",
    "AsyncNullBackend",
    "Backend",
    "BackendCounters",
    "AccessDenied",
    "BackendUnavailable",
    "Cache",
    "CacheClosed",
    "CacheError",
    "CacheTimeout",
    "Capabilities",
    "Codec",
    "ConfigurationError",
    "HealthReport",
    "HookEvent",
    "InvalidArgument",
    "InvalidKey",
    "InvalidTTL",
    "Item",
    "LatencySummary",
    "MemoryBackend",
    "Missing",
    "NullBackend",
    "ProtocolError",
    "RateLimitDecision",
    "RateLimitExceeded",
    "RateLimiter",
    "AsyncRateLimiter",
    "TypedCache",
    "AsyncTypedCache",
    "SerializationError",
    "Serializer",
    "SnapshotError",
    "StampedePolicy",
    "Stats",
    "TagVersions",
    "UnsupportedOperation",
    "Unset",
    "ValueTooLarge",
    "WrongType",
    "__version__",
    "cached",
    "register_backend",
    # ---- sources
    "AsyncDataSource",
    "AsyncReadThrough",
    "AsyncRefreshAhead",
    "AsyncWriteBehind",
    "AsyncWriteThrough",
    "DataSource",
    "DeadLetter",
    "MappingSource",
    "ReadThrough",
    "RefreshAhead",
    "SourceError",
    "WarmReport",
    "WriteBehind",
    "WriteQueueFull",
    "WriteThrough",
    "RedisBackend",
    "AsyncRedisBackend",
    "MemcachedBackend",
    "AsyncMemcachedBackend",
    "FileBackend",
    "AsyncFileBackend",
    "LayeredBackend",
    "AsyncLayeredBackend",
    "ShardedBackend",
    "AsyncShardedBackend",
    "PrometheusCollector",
    "OpenTelemetryInstrumentation",
    "LoggingInstrumentation",
    "CacheMiddleware",
    "cache_response",
    "cache_lifespan",
]
