"""An engine: named in-memory stores created from configuration, with shared pools.

Store types (the ``type`` of a store's configuration):

* ``general``: any policy, ``max_entries`` and/or ``max_bytes``, optional TTLs.
* ``session``: sliding expiry (``expire_after_access``, default 1800 s) with LRU eviction,
  for sessions that live as long as they are used.
* ``ttl-only``: no size limit and no eviction by policy; entries leave by TTL, and the
  pool (when the store is in one) is the only backstop.

An engine aggregates its stores' counters and health, and can resize a store at run time
without losing the entries that still fit.

    engine = Engine({
        "pools": {"main": {"max_bytes": 256 * 2**20}},
        "stores": {
            "pages": {"type": "general", "policy": "tinylfu", "max_entries": 100_000, "pool": "main"},
            "sessions": {"type": "session", "max_entries": 50_000, "expire_after_access": 900},
            "tokens": {"type": "ttl-only", "pool": "main"},
        },
    })
    cache = Cache(MemoryBackend(store=engine.store("pages")))
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._exceptions import ConfigurationError
from .memory_store import MemoryStore, StoreCounters
from .pool import MemoryPool

__all__ = ["STORE_TYPES", "Engine", "EngineHealth"]

STORE_TYPES = ("general", "session", "ttl-only")
_STORE_OPTIONS = frozenset(
    {"type", "policy", "max_entries", "max_bytes", "weigher", "expire_after_access", "pool"}
)


@dataclass(frozen=True, slots=True)
class EngineHealth:
    """Whether every store and pool is within its limits, with the reasons when not."""

    healthy: bool
    problems: tuple[str, ...]


class Engine:
    """Named stores and pools, built from a configuration mapping (see the module docstring)."""

    def __init__(
        self, config: Mapping[str, Any] | None = None, *, clock: Callable[[], float] | None = None
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._stores: dict[str, MemoryStore] = {}
        self._pools: dict[str, MemoryPool] = {}
        config = config or {}
        unknown = set(config) - {"pools", "stores"}
        if unknown:
            raise ConfigurationError(
                f"unknown engine configuration keys: {sorted(unknown)}; valid: pools, stores"
            )
        for name, options in dict(config.get("pools", {})).items():
            self.create_pool(name, **dict(options))
        for name, options in dict(config.get("stores", {})).items():
            self.create_store(name, **dict(options))

    def create_pool(
        self, name: str, *, max_bytes: int, levels: tuple[float, float, float] | None = None
    ) -> MemoryPool:
        """Create a named pool with a byte budget."""
        with self._lock:
            if name in self._pools:
                raise ConfigurationError(f"pool {name!r} already exists")
            pool = (
                MemoryPool(max_bytes, name=name)
                if levels is None
                else MemoryPool(max_bytes, name=name, levels=levels)
            )
            self._pools[name] = pool
            return pool

    def create_store(self, name: str, **options: Any) -> MemoryStore:
        """Create a named store; ``type`` is general (default), session or ttl-only."""
        unknown = set(options) - _STORE_OPTIONS
        if unknown:
            raise ConfigurationError(
                f"unknown option(s) {sorted(unknown)} for store {name!r}; "
                f"valid: {', '.join(sorted(_STORE_OPTIONS))}"
            )
        kind = options.pop("type", "general")
        if kind not in STORE_TYPES:
            raise ConfigurationError(
                f"unknown store type {kind!r} for store {name!r}; valid: {', '.join(STORE_TYPES)}"
            )
        pool_name = options.pop("pool", None)
        pool = None
        if pool_name is not None:
            pool = pool_name if isinstance(pool_name, MemoryPool) else self._pools.get(pool_name)
            if pool is None:
                raise ConfigurationError(f"store {name!r} names pool {pool_name!r}, which does not exist")
        if kind == "session":
            if options.setdefault("policy", "lru") != "lru":
                raise ConfigurationError(
                    f"a session store uses lru eviction; store {name!r} asked for {options['policy']!r}"
                )
            options.setdefault("expire_after_access", 1800.0)
        elif kind == "ttl-only":
            if options.get("max_entries") is not None or options.get("max_bytes") is not None:
                raise ConfigurationError(
                    f"a ttl-only store has no size limit; remove max_entries/max_bytes from {name!r}"
                )
            # Pool relief still needs an order to evict in: oldest-inserted first.
            options.setdefault("policy", "fifo")
        with self._lock:
            if name in self._stores:
                raise ConfigurationError(f"store {name!r} already exists")
            store = MemoryStore(name=name, clock=self._clock, pool=pool, **options)
            self._stores[name] = store
            return store

    def store(self, name: str) -> MemoryStore:
        """The store called ``name``; ConfigurationError listing the names when there is none."""
        try:
            return self._stores[name]
        except KeyError:
            raise ConfigurationError(
                f"no store {name!r}; stores: {', '.join(sorted(self._stores)) or '(none)'}"
            ) from None

    def pool(self, name: str) -> MemoryPool:
        """The pool called ``name``."""
        try:
            return self._pools[name]
        except KeyError:
            raise ConfigurationError(
                f"no pool {name!r}; pools: {', '.join(sorted(self._pools)) or '(none)'}"
            ) from None

    @property
    def store_names(self) -> list[str]:
        """Every store's name."""
        return sorted(self._stores)

    def resize(self, name: str, **limits: Any) -> None:
        """Change a store's ``max_entries``/``max_bytes``; entries that still fit stay."""
        unknown = set(limits) - {"max_entries", "max_bytes"}
        if unknown:
            raise ConfigurationError(f"resize takes max_entries and max_bytes, not {sorted(unknown)}")
        self.store(name).resize(**limits)

    def stats(self) -> dict[str, StoreCounters]:
        """Each store's counters, plus ``"*"``: their sum."""
        result = {name: store.counters() for name, store in self._stores.items()}
        result["*"] = StoreCounters(
            items=sum(c.items for c in result.values()),
            bytes=sum(c.bytes for c in result.values()),
            evictions=sum(c.evictions for c in result.values()),
            expirations=sum(c.expirations for c in result.values()),
            rejected=sum(c.rejected for c in result.values()),
        )
        return result

    def health(self) -> EngineHealth:
        """Unhealthy when a store is over a limit or a pool is at its highest pressure level."""
        problems: list[str] = []
        for name, store in self._stores.items():
            if store.max_entries is not None and len(store) > store.max_entries:
                problems.append(
                    f"store {name!r} holds {len(store)} entries over max_entries={store.max_entries}"
                )
            if store.max_bytes is not None and store.pool_bytes > store.max_bytes:
                problems.append(
                    f"store {name!r} holds {store.pool_bytes} bytes over max_bytes={store.max_bytes}"
                )
        for name, pool in self._pools.items():
            if pool.utilization >= pool.levels[-1]:
                problems.append(f"pool {name!r} at {pool.utilization:.0%} of {pool.capacity} bytes")
        return EngineHealth(not problems, tuple(problems))

    def close(self) -> None:
        """Close every store."""
        for store in self._stores.values():
            store.close()
        self._stores.clear()
