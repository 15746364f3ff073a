"""stratacache: one caching API, sync and async, over every backend.

>>> import stratacache as sc
>>> cache = sc.Cache("memory://?max_entries=1000", namespace="app", default_ttl=300)
>>> cache.set("greeting", "hello")
>>> cache.get("greeting")
'hello'

This module only re-exports; importing it imports no driver and creates nothing.
"""

from __future__ import annotations

from ._async.backends.base import AsyncBackend, BackendCounters, Capabilities
from ._async.backends.memory import AsyncMemoryBackend
from ._async.backends.null import AsyncNullBackend
from ._async.cache import AsyncCache, HealthReport
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
    SerializationError,
    UnsupportedOperation,
    ValueTooLarge,
    WrongType,
)
from ._registry import register_backend
from ._sync.backends.base import Backend
from ._sync.backends.memory import MemoryBackend
from ._sync.backends.null import NullBackend
from ._sync.cache import Cache
from ._types import MISSING, UNSET, Missing, Unset
from .core.hooks import HOOK_NAMES, HookEvent
from .core.stats import LatencySummary, Stats
from .decorators import cached
from .serializers import Codec, Serializer

__version__ = "0.1.0"

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
    "LatencySummary",
    "MemoryBackend",
    "Missing",
    "NullBackend",
    "ProtocolError",
    "SerializationError",
    "Serializer",
    "Stats",
    "UnsupportedOperation",
    "Unset",
    "ValueTooLarge",
    "WrongType",
    "__version__",
    "cached",
    "register_backend",
]
