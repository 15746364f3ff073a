"""The ``AsyncCache`` facade: key -> namespace -> serialize -> ttl -> backend.

This file is the source of truth; ``_sync/cache.py`` (``Cache``) is generated from it by
``scripts/unasync.py``. Everything that is the same for every backend lives here once:
key checks and namespacing, TTL defaults, serialization, statistics, hooks, single-flight
and the closed state. Backends only store.
"""

from __future__ import annotations

import builtins
import inspect
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

from .._build import make_backend
from .._config import CACHE_PARAMS, ParsedConfig, load_file, parse_env, parse_mapping, parse_url
from .._exceptions import (
    CacheError,
    ConfigurationError,
    InvalidArgument,
    InvalidKey,
    SerializationError,
    UnsupportedOperation,
    WrongType,
)
from .._types import MISSING, UNSET, Item, Missing, Unset, check_key, check_text, normalize_ttl
from ..core.envelope import TAG_RECORD_PREFIX, Envelope, TagVersions, check_tags, envelope_tags
from ..core.glob import escape_glob
from ..core.hooks import Hook, HookEvent, Hooks
from ..core.stampede import StampedePolicy
from ..core.stats import Stats, StatsRecorder
from ..core.warming import WarmReport
from ..serializers import Codec, Serializer
from .backends.base import AsyncBackend, Decoded
from .backends.closed import AsyncClosedBackend
from .lease import LEASE_KEY_PREFIX
from .patterns import AsyncFlightGroup, get_or_set_with_policy
from .tags import current_versions, invalidate, valid_envelopes
from .typed import AsyncTypedCache, T
from .warming import warm as _warm

__all__ = ["AsyncCache", "HealthReport", "namespace_prefix"]

_IS_ASYNC = True
_ASYNC_HINT = "use AsyncCache for async factories"  # unasync: keep
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The outcome of ``health()``: reachability and round-trip latency, never an exception."""

    backend: str
    healthy: bool
    latency: float | None
    error: str | None = None


_DEFERRED = object()


def _defer(key: object, default: object) -> object:
    return _DEFERRED


def _freshness_clock(policy: StampedePolicy | None, clock: Any) -> Callable[[], float]:
    """The "now" plain reads judge a stored value's ``fresh_until`` by (---- stampede).

    ``fresh_until`` is written on the clock of the policy that stored the value, so the
    cache's own policy's clock comes first; without one, the ``clock=`` the cache was given
    (a test's FakeClock, shared with the memory backend), else unix time. A per-call
    policy should use the same clock (the default, ``time.time``, does).
    """
    if policy is not None:
        return policy.clock
    return clock if callable(clock) else time.time


def namespace_prefix(namespace: str) -> str:
    """The raw-key prefix of ``namespace``: ``%`` and ``:`` percent-encoded, then ``:``.

    Every raw key of a namespaced cache is ``<encoded namespace>:<key>``. The encoded name
    holds no ``:``, so the first ``:`` of a raw key ends its namespace and one namespace's
    prefix is never the start of another's keys (``app:`` cannot match ``app%3Ab:x``, the
    key ``x`` of namespace ``app:b``): clear(), delete_pattern() and stats() of ``app``
    never reach ``app:b``. A namespace without ``:`` or ``%`` is its own encoding.
    """
    return namespace.replace("%", "%25").replace(":", "%3A") + ":"


def _check_amount(amount: object, name: str = "amount") -> int:
    if type(amount) is not int or not _INT64_MIN <= amount <= _INT64_MAX:
        raise InvalidArgument(f"{name} must be a 64-bit int, got {amount!r}")
    return amount


def _check_version(version: object, operation: str, key: object) -> int | str:
    # bool is an int: True would silently compare as version 1.
    if isinstance(version, bool) or not isinstance(version, (int, str)):
        raise InvalidArgument(
            f"{operation} on key {key!r}: if_version must be a version from get_item() "
            f"(an int or str), not {type(version).__name__} {version!r}"
        )
    return version


async def _refuse(*args: Any) -> bool:
    """The backend call of a verb whose answer is already known to be False."""
    return False


def _check_field(field: object) -> str:
    if type(field) is not str:
        raise InvalidKey(f"hash fields must be str, not {type(field).__name__}: {field!r}")
    return check_text(field, "hash fields")


def _check_hashable(member: object, key: str) -> object:
    try:
        hash(member)
    except TypeError:
        raise InvalidArgument(
            f"set members must be hashable; got {type(member).__name__} for key {key!r}"
        ) from None
    return member


class AsyncCache:
    """One cache: the same operations over every backend, awaited.

    ``backend`` is a URL (``"redis://127.0.0.1:6379/0"``), a backend name (``"memory"``),
    a backend object (``AsyncMemoryBackend(...)``) or ``None`` for an in-memory cache.
    Keyword arguments are the source of truth; a URL's query parameters are defaults that
    explicit keywords override. Keywords the cache does not know are passed to the backend
    (``max_entries=...``, ``clock=...``); an unknown one is a :class:`ConfigurationError`.

    * ``namespace``: a string (``"none"`` included; ``""`` is refused) that prefixes every
      raw key as ``"<namespace>:"``, with ``%`` and ``:`` in the name percent-encoded
      (:func:`namespace_prefix`), so namespaces are isolated from each other; ``clear()``
      and ``delete_pattern()`` touch only this namespace. ``None`` (the default) is no
      namespace: the cache sees every key, and its ``clear()`` empties the backend.
    * ``default_ttl``: seconds (or timedelta) for writes that omit ``ttl``; ``None`` = never.
    * ``serializer``: ``"msgpack"`` (default for backends whose values leave the process),
      ``"json"``, ``"raw"``, ``"pickle"`` (only with ``signing_key``) or a Serializer object.
      The memory backend stores objects as they are unless a serializer is given.
    * ``compression`` (``zlib``/``lz4``/``zstd``) above ``compression_threshold`` bytes,
      ``encryption_keys`` (AES-GCM, the first key encrypts, all decrypt). Encrypted and
      signed values are bound to their key; ``accept_unbound_values=True`` also reads ones
      written before that, during a migration (docs/serialization.md).
    * ``hooks``: ``{"after_get": fn, ...}``; see :data:`stratacache.HOOK_NAMES`.
    * ``latency_sample``: time one operation in this many (default 64) for ``stats()``.
    * ``stampede``: a :class:`~stratacache.StampedePolicy` that ``get_or_set`` (and
      ``@cached``) use unless a call passes its own; None (the default) is in-process
      single-flight only. URLs take ``stampede=on`` or ``stampede=lease_ttl:5,...``.
    """

    def __init__(
        self,
        backend: str | AsyncBackend | None = None,
        *,
        namespace: str | Unset | None = UNSET,
        default_ttl: float | Any = UNSET,
        serializer: str | Serializer | Unset | None = UNSET,
        signing_key: str | bytes | Unset | None = UNSET,
        compression: str | Unset | None = UNSET,
        compression_threshold: int | Unset = UNSET,
        encryption_keys: list[str | bytes] | Unset | None = UNSET,
        accept_unbound_values: bool | Unset = UNSET,
        latency_sample: int | Unset = UNSET,
        stampede: StampedePolicy | Unset | None = UNSET,
        hooks: Mapping[str, Hook | Iterable[Hook]] | None = None,
        **backend_options: Any,
    ) -> None:
        explicit = {
            "namespace": namespace,
            "default_ttl": default_ttl,
            "serializer": serializer,
            "signing_key": signing_key,
            "compression": compression,
            "compression_threshold": compression_threshold,
            "encryption_keys": encryption_keys,
            "accept_unbound_values": accept_unbound_values,
            "latency_sample": latency_sample,
            "stampede": stampede,
        }
        options: dict[str, Any] = {}
        if isinstance(backend, AsyncBackend):
            if backend_options:
                raise ConfigurationError(
                    f"backend options {sorted(backend_options)} were given with a backend object; "
                    "pass them to the backend's constructor instead"
                )
            self._backend: AsyncBackend = backend
        else:
            config = self._resolve_config(backend)
            options.update(config.cache_options)
            self._backend = self._make_backend(config, backend_options)
        for name, value in explicit.items():
            if value is not UNSET:
                # The same parser as for URLs, so a keyword gets the same checks and message.
                options[name] = value if value is None else CACHE_PARAMS[name](name, value)
        self._hooks = Hooks()
        options["clock"] = backend_options.get("clock")  # ---- stampede: see _freshness_clock
        self._setup(options)
        for name, given in (hooks or {}).items():
            for hook in [given] if callable(given) else list(given):
                self._hooks.add(name, hook)

    # ---------------------------------------------------------------- construction

    @staticmethod
    def _resolve_config(backend: str | None) -> ParsedConfig:
        if backend is None:
            return ParsedConfig(backend="memory")
        if not isinstance(backend, str):
            raise ConfigurationError(
                f"backend must be a URL, a backend name or a backend object, not {type(backend).__name__}"
            )
        if "://" in backend:
            return parse_url(backend)
        return parse_mapping({"backend": backend})

    @staticmethod
    def _make_backend(config: ParsedConfig, overrides: Mapping[str, Any]) -> AsyncBackend:
        # One builder for the facade and the layered backend's tiers (stratacache._build).
        backend: AsyncBackend = make_backend(config, overrides, asynchronous=_IS_ASYNC)
        return backend

    def _setup(self, options: Mapping[str, Any]) -> None:
        namespace = options.get("namespace")
        # Only None is "no namespace" (the parser refuses ""): a namespace that clears the
        # whole backend must never come from a string.
        self.namespace: str | None = namespace
        self._prefix = "" if namespace is None else namespace_prefix(namespace)
        if self._prefix:
            self._backend.attach_namespace(self._prefix)
        self.default_ttl: float | None = options.get("default_ttl")
        serializer = options.get("serializer")
        wants_codec = serializer is not None or any(
            options.get(name) is not None for name in ("compression", "encryption_keys")
        )
        self._codec: Codec | None = None
        if wants_codec or not self._backend.capabilities.stores_objects:
            self._codec = Codec(
                serializer or "msgpack",
                signing_key=options.get("signing_key"),
                compression=options.get("compression"),
                compression_threshold=options.get("compression_threshold", 1024),
                encryption_keys=options.get("encryption_keys"),
                accept_unbound_values=options.get("accept_unbound_values", False),
            )
        # Codec.decode's fast path, inlined by get() and get_many() (empty without a codec).
        self._plain_loaders: Mapping[bytes, Callable[[bytes], Any]] = {}
        if self._codec is not None:
            self._backend.attach_codec(self._codec)
            self._plain_loaders = self._codec.plain_loaders
        self._backend.attach_cache(self._codec)
        self._sample_every: int = options.get("latency_sample", 64)
        self._tick = 0  # get calls since the last timed one (the sample's weight)
        self._set_tick = 0  # the same for set
        self._stats = StatsRecorder()
        self._flights = AsyncFlightGroup()
        self._stampede: StampedePolicy | None = options.get("stampede")  # ---- stampede
        self._clock = _freshness_clock(self._stampede, options.get("clock"))  # ---- stampede
        self._closed = False
        # With a codec, only a backend whose fused get returns decoded objects may use it
        # (a layered cache's in-process top tier).
        if self._codec is None or getattr(self._backend, "fused_get_is_decoded", False):
            self._install_fused_get()

    def _install_fused_get(self) -> None:
        """Use the backend's fused get, if it has one, for plain hits and misses.

        An in-process backend may offer a ``get`` that does in one Python frame what the
        facade, the backend and the store do in three. It hands anything unusual (hooks, a
        expired, sliding or collection entry, a non-str key) back to the full method, and
        times one call in ``latency_sample`` itself.
        """
        fused = getattr(self._backend, "fused_get", None)
        if fused is None:
            return
        full_get = type(self).get.__get__(self)
        state = {
            "prefix": self._prefix,
            "stats": self._stats,
            "hooks": self._hooks,
            "sample_every": self._sample_every,
        }
        if _IS_ASYNC:
            # The fused function is synchronous: it answers the common case directly, or
            # returns a marker telling this one coroutine to await the full method.
            fast = fused(**state, full_get=_defer)

            async def get(key: Any, default: Any = None) -> Any:
                value = fast(key, default)
                if value is _DEFERRED:
                    return await full_get(key, default)
                return value

            self.get = get  # type: ignore[method-assign]
            return

        self.get = fused(**state, full_get=full_get)  # type: ignore[method-assign]
        fused_set = None if self._codec is not None else getattr(self._backend, "fused_set", None)
        if fused_set is not None:
            # The same for set (sync only). It checks ``_closed`` itself, since close() drops
            # only the fused get.
            full_set = type(self).set.__get__(self)
            self.set = fused_set(owner=self, **state, full_set=full_set)  # type: ignore[method-assign]

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Self:
        """Build a cache from a URL; keywords override the URL's parameters."""
        return cls(url, **kwargs)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **kwargs: Any) -> Self:
        """Build a cache from a dict: ``{"url": ...}`` or ``{"backend": ..., <parameters>}``."""
        parsed = parse_mapping(config)
        options = {**parsed.cache_options, **parsed.backend_options, **kwargs}
        return cls(parsed.backend, **options)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> Self:
        """Build a cache from a YAML, JSON or TOML file holding the same mapping as from_config."""
        return cls.from_config(load_file(path), **kwargs)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> Self:
        """Build a cache from ``STRATACACHE_URL`` / ``STRATACACHE_BACKEND`` and ``STRATACACHE_<PARAM>``."""
        parsed = parse_env(environ)
        options = {**parsed.cache_options, **parsed.backend_options, **kwargs}
        return cls(parsed.backend, **options)

    # ------------------------------------------------------------------- helpers

    @property
    def backend(self) -> AsyncBackend:
        """The backend this cache stores into."""
        return self._backend

    @property
    def hooks(self) -> Hooks:
        """The hook registry: ``cache.hooks.add("after_set", fn)``."""
        return self._hooks

    @property
    def closed(self) -> bool:
        """True after ``close()``."""
        return self._closed

    def _key(self, key: object) -> str:
        # Non-ASCII keys take the full check: a lone surrogate cannot reach any backend.
        if type(key) is not str or not key.isascii():
            key = check_key(key)
        return self._prefix + key

    def _ttl(self, ttl: Any) -> float | None:
        return normalize_ttl(ttl, self.default_ttl)

    def _encode(self, value: Any, key: str) -> Any:
        codec = self._codec
        return value if codec is None else codec.encode(value, key)

    def _decode(self, value: Any, key: str) -> Any:
        codec = self._codec
        # Counters made by incr are ints even in a serializing memory store.
        if codec is None or type(value) is int or value is MISSING:
            return value
        if type(value) is Decoded:  # a layered cache's top tier keeps objects
            return value.value
        return codec.decode(value, key)

    def _failed(self, operation: str, key: object, exc: CacheError, started: float = 0.0) -> None:
        self._stats.errors += 1
        if self._hooks.active:
            duration = time.perf_counter() - started if started else None
            self._hooks.fire("on_error", HookEvent(operation, key, error=exc, duration=duration))

    async def _call(self, operation: str, key: object, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one backend call with hooks and error accounting."""
        hooks = self._hooks
        started = 0.0
        if hooks.active:
            if hooks.wants_before:
                hooks.fire(f"before_{operation}", HookEvent(operation, key))
            # Timed only for observers (HookEvent.duration): no clock read without hooks.
            started = time.perf_counter()
        try:
            result = await fn(*args)
        except CacheError as exc:
            self._failed(operation, key, exc, started)
            raise
        if hooks.active and f"after_{operation}" in hooks.names:  # no event nobody reads (on_error alone)
            duration = time.perf_counter() - started if started else None
            hooks.fire(f"after_{operation}", HookEvent(operation, key, result=result, duration=duration))
        return result

    # -------------------------------------------------------------- plain values

    async def get(self, key: str, default: Any = None) -> Any:
        """The value at ``key``, or ``default`` on a miss (a stored ``None`` stays ``None``)."""
        k = self._prefix + key if type(key) is str and key.isascii() else self._key(key)
        hooks = self._hooks
        if hooks.wants_before:
            hooks.fire("before_get", HookEvent("get", key))
        self._tick += 1
        tick = self._tick
        started = 0.0
        # Get hooks see every call's duration (HookEvent.duration), so every call is timed then;
        # on_error hooks get a failure's duration (in-process hits take the fused path instead).
        sampled = tick >= self._sample_every or hooks.on_get
        if sampled:
            self._tick = 0
            started = time.perf_counter()
        elif hooks.on_error:
            started = time.perf_counter()
        try:
            value = await self._backend.get(k)
            if value is not MISSING and self._codec is not None:
                # Codec.decode's fast path inlined: two frames less on every remote hit.
                loads = self._plain_loaders.get(value[:4]) if type(value) is bytes else None
                if loads is None:
                    value = self._decode(value, k)
                else:
                    try:
                        value = loads(value[4:])
                    except Exception:  # decoded again, which raises the precise error
                        value = self._decode(value, k)
            if type(value) is Envelope:
                value = await self._open_envelope(k, value)
        except CacheError as exc:
            self._failed("get", key, exc, started)
            raise
        if sampled:
            started = time.perf_counter() - started  # from here on: the call's duration
            self._stats.get_latency.add(started)
            if hooks.samplers:
                hooks.sample("get", started, tick)  # standing for the calls since the last sample
        if value is MISSING:
            self._stats.misses += 1
            value = default
            hit = False
        else:
            self._stats.hits += 1
            hit = True
        if hooks.on_get:
            hooks.fire("after_get", HookEvent("get", key, result=value, duration=started or None, hit=hit))
        return value

    async def set(
        self,
        key: str,
        value: Any,
        ttl: Any = UNSET,
        *,
        tags: Iterable[str] | TagVersions | None = None,
        if_version: Any = UNSET,
    ) -> bool:
        """Store ``value`` at ``key``. ``ttl``: seconds or timedelta; None = never; omitted = default.

        ``tags``: names this entry can be invalidated by (:meth:`invalidate_tags`); their
        versions are read now. For a value computed earlier, pass the :class:`TagVersions`
        that :meth:`tag_versions` returned before computing it.

        Returns True. With ``if_version`` (a version from :meth:`get_item`) it is a
        compare-and-set: stored only if the entry is still that version, atomically, and
        False otherwise (an absent key never matches).
        """
        if if_version is not UNSET:
            return await self._set_if_version(key, value, ttl, if_version, tags)
        if tags is not None:
            await self._set_tagged(key, value, ttl, tags)
            return True
        k = self._prefix + key if type(key) is str and key.isascii() else self._key(key)
        seconds = self.default_ttl if ttl is UNSET else normalize_ttl(ttl)
        hooks = self._hooks
        if hooks.wants_before:
            hooks.fire("before_set", HookEvent("set", key, value))
        self._set_tick += 1
        tick = self._set_tick
        started = 0.0
        # Set hooks see every call's duration (HookEvent.duration), so every call is timed then;
        # on_error hooks get a failure's duration.
        sampled = tick >= self._sample_every or hooks.on_set
        if sampled:
            self._set_tick = 0
            started = time.perf_counter()
        elif hooks.on_error:
            started = time.perf_counter()
        try:
            if self._codec is not None:
                value = self._codec.encode(value, k)
            await self._backend.set(k, value, seconds)
        except CacheError as exc:
            self._failed("set", key, exc, started)
            raise
        if sampled:
            started = time.perf_counter() - started  # from here on: the call's duration
            self._stats.set_latency.add(started)
            if hooks.samplers:
                hooks.sample("set", started, tick)
        self._stats.sets += 1
        if hooks.on_set:
            hooks.fire("after_set", HookEvent("set", key, value, duration=started or None))
        return True

    async def add(
        self, key: str, value: Any, ttl: Any = UNSET, *, tags: Iterable[str] | TagVersions | None = None
    ) -> bool:
        """Store only if ``key`` is absent (atomic); True when stored. ``tags`` as for :meth:`set`."""
        k = self._key(key)
        seconds = self._ttl(ttl)
        versions = await self._tag_versions(tags)
        stored = self._wrapped("add", key, k, Envelope(value, versions))
        added: bool = await self._call("add", key, self._backend.add, k, stored, seconds)
        if not added and tags is not None and await self._read_value(k) is MISSING:
            # The key held an entry whose tags were invalidated (now deleted by the read), or
            # it expired: the key is free, so try once more.
            added = await self._call("add", key, self._backend.add, k, stored, seconds)
        if added:
            self._stats.sets += 1
        return added

    async def delete(self, key: str, *, if_version: Any = UNSET) -> bool:
        """Remove ``key``; True when it existed. With ``if_version`` (from :meth:`get_item`),
        only if the entry is still that version, atomically (compare-and-delete)."""
        if if_version is not UNSET:
            return await self._delete_if_version(key, if_version)
        existed: bool = await self._call("delete", key, self._backend.delete, self._key(key))
        if existed:
            self._stats.deletes += 1
        return existed

    async def exists(self, key: str) -> bool:
        """True when ``key`` holds a value (plain or collection).

        False for an entry a plain :meth:`get` would miss: one whose tags were invalidated,
        or one past its ttl that a stampede policy keeps only as a stale copy for
        ``get_or_set`` (docs/patterns/stampede.md). Such a check reads the value too."""
        result: bool = await self._call("exists", key, self._exists_logical, self._key(key))
        return result

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The present keys among ``keys`` with their values (misses are left out)."""
        user_keys = list(keys)
        prefix = self._prefix
        full = {
            prefix + key if type(key) is str and key.isascii() else self._key(key): key for key in user_keys
        }
        found: dict[str, Any] = await self._call("get_many", user_keys, self._backend.get_many, list(full))
        result: dict[str, Any] = {}
        codec = self._codec
        # Entries stored as envelopes (tags, freshness metadata), by stored key: validated
        # in one batch below. Only the non-plain decode paths can produce one.
        wrapped: dict[str, Envelope] = {}
        try:
            if codec is None:
                for k, value in found.items():
                    if type(value) is Envelope:
                        wrapped[k] = value
                    else:
                        result[full[k]] = value
            else:
                # Codec.decode's fast path inlined (header -> loader, no frame): this loop
                # runs once per key of every batch read. Anything else takes codec.decode.
                decode = codec.decode
                plain = self._plain_loaders
                for k, raw in found.items():
                    kind = type(raw)
                    if kind is bytes:
                        loads = plain.get(raw[:4])
                        if loads is not None:
                            try:
                                result[full[k]] = loads(raw[4:])
                                continue
                            except Exception:  # decoded again below, which raises the precise error
                                pass
                        value = decode(raw, k)
                    elif kind is Decoded:
                        value = raw.value
                    else:
                        value = self._decode(raw, k)
                    if type(value) is Envelope:
                        wrapped[k] = value
                    else:
                        result[full[k]] = value
            if wrapped:
                await self._open_envelopes(wrapped, full, result)
        except CacheError as exc:
            self._failed("get_many", user_keys, exc)
            raise
        self._stats.hits += len(result)
        self._stats.misses += len(full) - len(result)
        return result

    async def set_many(
        self,
        mapping: Mapping[str, Any],
        ttl: Any = UNSET,
        *,
        tags: Iterable[str] | TagVersions | None = None,
    ) -> None:
        """Store every item with one ttl (and the same ``tags``, as for :meth:`set`)."""
        if not isinstance(mapping, Mapping):
            raise InvalidArgument(f"set_many takes a mapping of key -> value, not {type(mapping).__name__}")
        if tags is not None:
            await self._set_many_tagged(mapping, ttl, tags)
            return
        seconds = self._ttl(ttl)
        try:
            items = {}
            for key, value in mapping.items():
                k = self._key(key)
                items[k] = self._encode(value, k)
        except CacheError as exc:
            self._failed("set_many", list(mapping), exc)
            raise
        if items:
            await self._call("set_many", list(mapping), self._backend.set_many, items, seconds)
        self._stats.sets += len(items)

    async def delete_many(self, keys: Iterable[str]) -> int:
        """Remove keys; how many existed."""
        full = [self._key(key) for key in keys]
        if not full:
            return 0
        count: int = await self._call("delete_many", full, self._backend.delete_many, full)
        self._stats.deletes += count
        return count

    async def incr(self, key: str, amount: int = 1) -> int:
        """Atomically add ``amount``; a missing key starts at 0. WrongType on a non-integer."""
        k = self._key(key)
        result: int = await self._call("incr", key, self._backend.incr, k, _check_amount(amount))
        return result

    async def decr(self, key: str, amount: int = 1) -> int:
        """Atomically subtract ``amount``; a missing key starts at 0."""
        k = self._key(key)
        delta = -_check_amount(amount)
        result: int = await self._call("decr", key, self._backend.incr, k, _check_amount(delta))
        return result

    async def expire(self, key: str, ttl: Any) -> bool:
        """Give ``key`` a new ttl (None: never expire); False when the key is absent."""
        seconds = normalize_ttl(ttl)
        result: bool = await self._call("expire", key, self._backend.expire, self._key(key), seconds)
        return result

    async def touch(self, key: str, ttl: Any = UNSET) -> bool:
        """Reset ``key``'s ttl (omitted: the cache's default_ttl); False when absent."""
        seconds = self._ttl(ttl)
        result: bool = await self._call("touch", key, self._backend.expire, self._key(key), seconds)
        return result

    async def ttl(self, key: str) -> float | Missing | None:
        """Seconds left; None when the key never expires; MISSING when there is no such key.

        For a value stored by ``get_or_set`` under a stampede policy that keeps stale copies,
        the seconds left of the ttl it was given (not of the stale copy's storage), and
        MISSING once that ttl is over or a tag of it was invalidated, as :meth:`get` sees it."""
        result: float | Missing | None = await self._call("ttl", key, self._ttl_logical, self._key(key))
        return result

    async def delete_pattern(self, pattern: str) -> int:
        """Delete this namespace's keys matching a Redis-style glob (``user:*``); how many."""
        full = self._key_pattern(pattern)
        count: int = await self._call("delete_pattern", pattern, self._backend.delete_pattern, full)
        self._stats.deletes += count
        return count

    async def clear(self) -> None:
        """Delete every key of this cache's namespace (everything, when it has none)."""
        await self._call("clear", None, self._backend.clear, self._prefix or None)

    # ---- keys: listing a namespace's keys by glob (docs/patterns/verbs.md, "Listing keys")

    async def keys(self, pattern: str = "*") -> builtins.list[str]:
        """This namespace's keys matching a Redis-style glob (``user:*``), sorted, without duplicates.

        The keys are the caller's (without the namespace prefix); a namespace's own glob
        characters are escaped, as for :meth:`delete_pattern`. Internal keys are left out:
        tag version records and stampede leases. The whole list is built in memory: for a
        large key space walk :meth:`iter_keys` instead. Backends that cannot enumerate their
        keys (Memcached) raise :class:`~stratacache.UnsupportedOperation` naming themselves.
        """
        found: builtins.list[str] = await self._call("keys", pattern, self._sorted_keys, pattern)
        return found

    def iter_keys(self, pattern: str = "*") -> AsyncIterator[str]:
        """:meth:`keys` one at a time, in the backend's order, holding one batch in memory.

        Redis walks the key space with ``SCAN MATCH`` (never ``KEYS``), so a key written or
        deleted during the walk may or may not appear, and one may appear twice (as with
        redis-py's ``scan_iter``). The pattern is checked and the backend asked here, so
        :class:`~stratacache.UnsupportedOperation` is raised by this call, before any step.
        """
        full = self._key_pattern(pattern)
        try:
            found = self._backend.iter_keys(full)
        except CacheError as exc:
            self._failed("iter_keys", pattern, exc)
            raise
        return self._caller_keys(found, pattern)

    def _key_pattern(self, pattern: str) -> str:
        """The backend glob for the caller's ``pattern``: the escaped namespace prefix + it."""
        if not isinstance(pattern, str):
            raise InvalidArgument(f"pattern must be a str, not {type(pattern).__name__}")
        return escape_glob(self._prefix) + check_text(pattern, "patterns")

    async def _caller_keys(self, found: AsyncIterator[str], pattern: str | None) -> AsyncIterator[str]:
        """The caller's keys among the backend keys ``found``; failures are counted (as an
        ``iter_keys`` error) unless ``pattern`` is None (keys() counts its own)."""
        prefix = self._prefix
        cut = len(prefix)
        internal = (TAG_RECORD_PREFIX, LEASE_KEY_PREFIX)
        try:
            async for key in found:
                # The escaped glob already selects the namespace; checked again (cheaply) so
                # that no backend's looser match can ever hand out another namespace's key.
                if key.startswith(prefix) and not key.startswith(internal, cut):
                    yield key[cut:]
        except CacheError as exc:
            if pattern is not None:
                self._failed("iter_keys", pattern, exc)
            raise

    async def _sorted_keys(self, pattern: str) -> builtins.list[str]:
        try:
            found = self._backend.iter_keys(self._key_pattern(pattern))
        except UnsupportedOperation as exc:
            # Named for the method the caller used, keys(), not the backend's iter_keys().
            raise UnsupportedOperation(exc.backend, "keys", exc.reason) from exc
        return sorted({key async for key in self._caller_keys(found, None)})

    # ---- stampede: get_or_set, single-flight and StampedePolicy (docs/patterns/stampede.md)

    @property
    def stampede(self) -> StampedePolicy | None:
        """The cache's :class:`~stratacache.StampedePolicy` (the ``stampede=`` option), or None."""
        return self._stampede

    async def get_or_set(
        self,
        key: str,
        factory: Callable[[], Any],
        ttl: Any = UNSET,
        *,
        policy: StampedePolicy | Literal[False] | None = None,
        tags: Iterable[str] | TagVersions | None = None,
    ) -> Any:
        """The value at ``key``; on a miss, ``factory()``'s result, stored with ``ttl``.

        Single-flight: concurrent misses for one key in this process call ``factory`` once
        and all receive its result; if it raises, they all receive the exception and
        nothing is stored. ``factory`` may be a coroutine function with AsyncCache.

        ``policy`` (default: the cache's ``stampede=`` policy; ``False``: none for this
        call) adds stampede control across processes: a distributed lease so that one
        caller among all processes loads, stale-while-revalidate, stale-if-error, XFetch
        early refresh and ttl jitter (:class:`~stratacache.StampedePolicy`).

        ``tags``: stored with the value as by :meth:`set`; their versions are read before
        ``factory`` runs, so a value computed across an invalidation reads as a miss.
        """
        if not callable(factory):
            raise InvalidArgument(f"factory must be callable, got {type(factory).__name__}")
        seconds = self._ttl(ttl)
        chosen = self._stampede if policy is None else policy
        if chosen is not False and chosen is not None:
            if not isinstance(chosen, StampedePolicy):
                raise InvalidArgument(
                    f"get_or_set policy must be a StampedePolicy, False or None, not {type(chosen).__name__}"
                )
            return await get_or_set_with_policy(self, key, factory, seconds, chosen, tags=tags)
        if tags is not None:
            return await self._get_or_set_tagged(key, factory, seconds, tags)
        value = await self.get(key, MISSING)
        if value is not MISSING:
            return value

        async def fill() -> Any:
            # Another flight may have stored the value between our miss and our leadership.
            again = await self._read_value(self._key(key))
            if again is not MISSING:
                return again
            result = factory()
            if inspect.isawaitable(result):
                if not _IS_ASYNC:
                    raise InvalidArgument(f"factory for key {key!r} returned an awaitable; {_ASYNC_HINT}")
                result = await result
            await self.set(key, result, ttl=seconds)
            return result

        return await self._flights.run(self._key(key), fill)

    # ---- verbs: get_item, compare-and-set/delete, pull, replace (docs/patterns/verbs.md)

    async def get_item(self, key: str) -> Item | None:
        """The entry at ``key`` with its metadata (:class:`~stratacache.Item`), or None on a miss.

        Its ``version`` is what ``set(..., if_version=)`` and ``delete(..., if_version=)``
        compare against. UnsupportedOperation on a backend without versions.
        """
        user_key = check_key(key)
        k = self._prefix + user_key
        raw: Item | Missing = await self._call("get_item", key, self._backend.get_item, k)
        if raw is MISSING:
            self._stats.misses += 1
            return None
        try:
            value = self._decode(raw.value, k)
            tags = raw.tags
            expires_at = raw.expires_at
            if type(value) is Envelope:
                tags = envelope_tags(value)
                if value.fresh_until is not None:  # ---- stampede: the ttl it was given
                    logical = time.time() + (value.fresh_until - self._clock())
                    expires_at = logical if expires_at is None else min(expires_at, logical)
                value = await self._open_envelope(k, value, raw.version)
        except CacheError as exc:
            self._failed("get_item", key, exc)
            raise
        if value is MISSING:  # one of its tags was invalidated: the entry is gone
            self._stats.misses += 1
            return None
        self._stats.hits += 1
        return Item(user_key, value, raw.version, raw.created, expires_at, tags, raw.size)

    async def _set_if_version(
        self, key: str, value: Any, ttl: Any, version: Any, tags: Iterable[str] | TagVersions | None = None
    ) -> bool:
        k = self._key(key)
        seconds = self._ttl(ttl)
        expected = _check_version(version, "set", key)
        if tags is not None:
            self._check_envelopes()
            tags = tags if type(tags) is TagVersions else check_tags(tags)
        try:
            # The entry compared against: the backend compares only its own version, and an
            # entry invalidated by its tags is still stored (invalidation is lazy), so its
            # validity and tag versions are read here (docs/patterns/verbs.md).
            raw, old = await self._live_entry(k, expected)
        except CacheError as exc:
            self._failed("set", key, exc)
            raise
        versions: dict[str, int | str] | None = None
        if raw is not MISSING and tags is not None:
            # current_versions reports its own failures (as "set").
            versions = await self._carried_versions(old, tags)
        encoded = None if raw is MISSING else self._wrapped("set", key, k, Envelope(value, versions))
        cas = self._backend.set_if_version if raw is not MISSING else _refuse
        stored: bool = await self._call("set", key, cas, k, encoded, seconds, expected)
        if stored:
            self._stats.sets += 1
        return stored

    async def _live_entry(self, k: str, expected: int | str | None = None) -> tuple[Any, Any]:
        """``(raw Item, decoded value)`` of the entry at raw key ``k``, or ``(MISSING, MISSING)``
        when there is none, when its version is not ``expected`` (if given), or when one of its
        tags was invalidated (that entry is then dropped by compare-and-delete). A list, set or
        hash comes back as ``(None, None)``: the backend's own verb decides about it."""
        try:
            raw = await self._backend.get_item(k)
        except WrongType:
            return None, None
        if raw is MISSING or (expected is not None and raw.version != expected):
            return MISSING, MISSING
        value = self._decode(raw.value, k)
        if type(value) is Envelope and value.tags and not await valid_envelopes(self, {k: value}):
            await self._drop_invalid(k, value, raw.version)
            return MISSING, MISSING
        return raw, value

    async def _carried_versions(
        self, old: Any, tags: tuple[str, ...] | TagVersions
    ) -> dict[str, int | str] | None:
        """The tag versions of a compare-and-set's new value: a tag the compared entry ``old``
        already had keeps that entry's version (so the new value is invalid exactly when the
        old one is, even across an invalidation since it was checked); a new tag's version
        is read now. A TagVersions is taken as given."""
        if isinstance(tags, TagVersions):
            return tags.as_dict() or None
        had: dict[str, int | str] = (old.tags or {}) if type(old) is Envelope else {}
        new = [tag for tag in tags if tag not in had]
        read = await current_versions(self, new) if new else {}
        return {tag: had[tag] if tag in had else read[tag] for tag in tags} or None

    async def _delete_if_version(self, key: str, version: Any) -> bool:
        k = self._key(key)
        expected = _check_version(version, "delete", key)
        removed: bool = await self._call("delete", key, self._backend.delete_if_version, k, expected)
        if removed:
            self._stats.deletes += 1
        return removed

    async def pull(self, key: str, default: Any = None) -> Any:
        """Remove ``key`` and return its value, atomically: of concurrent pullers only one
        gets it. ``default`` when the key is absent (GETDEL on Redis)."""
        k = self._key(key)
        raw = await self._call("pull", key, self._backend.pull, k)
        if raw is MISSING:
            self._stats.misses += 1
            return default
        self._stats.deletes += 1
        try:
            value = self._decode(raw, k)
            # Already removed by the pull: nothing to drop (a delete could hit a newer value).
            # A copy past its ttl (kept for get_or_set) or invalidated by its tags is a miss.
            if type(value) is Envelope:
                if self._is_stale(value) or (value.tags and not await valid_envelopes(self, {k: value})):
                    value = MISSING
                else:
                    value = value.value
        except CacheError as exc:
            self._failed("pull", key, exc)
            raise
        if value is MISSING:  # pulled an entry whose tags were invalidated: a miss
            self._stats.misses += 1
            return default
        self._stats.hits += 1
        return value

    async def replace(self, key: str, value: Any, ttl: Any = UNSET) -> bool:
        """Store ``value`` only if ``key`` holds a value, atomically; True when stored.

        An entry invalidated by its tags holds no value: replace then stores nothing."""
        k = self._key(key)
        seconds = self._ttl(ttl)
        try:
            encoded = self._encode(value, k)
            # The backend's replace sees an invalidated entry as present (invalidation is lazy).
            raw, _ = await self._live_entry(k)
        except CacheError as exc:
            self._failed("replace", key, exc)
            raise
        swap = self._backend.replace if raw is not MISSING else _refuse
        stored: bool = await self._call("replace", key, swap, k, encoded, seconds)
        if stored:
            self._stats.sets += 1
        return stored

    # ---- tags: the value envelope, tagged writes, invalidate_tags (docs/patterns/tags.md)

    async def invalidate_tags(self, *tags: str) -> None:
        """Invalidate every entry written with any of ``tags``, in every process sharing the backend.

        One atomic write per tag (its version record gets a fresh version), whatever the
        number of entries: those entries read as misses from then on and their space is
        reclaimed by their ttl or by eviction. A value computed before this call and
        written after it (``get_or_set``, or ``set`` with versions read earlier) reads as
        a miss too. Raises InvalidArgument for a tag that is not a non-empty str.
        """
        await invalidate(self, tags)

    async def tag_versions(self, *tags: str) -> TagVersions:
        """The current versions of ``tags``, to read *before* computing a value.

        Pass the result as ``tags=`` to :meth:`set`, :meth:`set_many` or :meth:`add`: the
        value is stored with these versions, so it reads as a miss if any of the tags was
        invalidated in between (``get_or_set(..., tags=...)`` does this by itself).
        Raises InvalidArgument for a tag that is not a non-empty str.
        """
        self._check_envelopes()
        return TagVersions(await current_versions(self, tags))

    async def _tag_versions(self, tags: Iterable[str] | TagVersions | None) -> dict[str, int | str] | None:
        """``{tag: version}`` to put in an Envelope, read now (call it before computing the
        value), or as given by a TagVersions; None for ``tags=None``. InvalidArgument naming
        ``tags`` for bad tags."""
        if tags is None:
            return None
        self._check_envelopes()
        if type(tags) is TagVersions:
            return tags.as_dict() or None
        return await current_versions(self, tags) or None

    def _check_envelopes(self) -> None:
        codec = self._codec
        if codec is not None and codec.serializer.format_id == 0:
            # Before any record is touched: the value could not be stored anyway.
            raise self._no_envelopes(codec)

    def _no_envelopes(self, codec: Codec) -> UnsupportedOperation:
        return UnsupportedOperation(
            self._backend.describe(),
            "tags and stampede metadata",
            f"the {codec.serializer.name!r} serializer stores bytes exactly as given, with no header "
            "to mark a value that carries them; use msgpack, json or pickle",
        )

    def _is_stale(self, envelope: Envelope) -> bool:
        """True when ``envelope`` is past its ttl: kept only as the stale copy that
        get_or_set serves under stale-while-revalidate / stale-if-error, a miss to every
        plain read. Judged by the cache's clock (:func:`_freshness_clock`)."""
        fresh_until = envelope.fresh_until
        return fresh_until is not None and self._clock() >= fresh_until

    async def _open_envelope(
        self, k: str, envelope: Envelope, version: Any = None, *, stale_ok: bool = False
    ) -> Any:
        """The value inside ``envelope`` stored at raw key ``k``, or MISSING when one of its
        tags was invalidated since it was written (the entry is then dropped, see
        :meth:`_drop_invalid`; ``version``: the entry's, when the read returned it) or,
        unless ``stale_ok``, when it is past its ttl (the stale copy is kept for get_or_set)."""
        if not stale_ok and self._is_stale(envelope):
            return MISSING
        if envelope.tags and not await valid_envelopes(self, {k: envelope}):
            await self._drop_invalid(k, envelope, version)
            return MISSING
        return envelope.value

    async def _drop_invalid(self, k: str, envelope: Envelope, version: Any = None) -> None:
        """Delete the entry at raw key ``k`` that was read as the invalidated ``envelope``, only
        if it is still one carrying the same tag versions (so still invalid): a compare-and-delete
        against ``version`` (read again here when not given). A writer's fresh value stored since
        the read is never deleted. Without versions (a third-party backend) nothing is deleted:
        the entry's ttl or eviction reclaims it."""
        backend = self._backend
        if not backend.capabilities.versions:
            return
        try:
            if version is None:
                raw = await backend.get_item(k)
                if raw is MISSING:
                    return
                again = self._decode(raw.value, k)
                if type(again) is not Envelope or again.tags != envelope.tags:
                    return  # rewritten since the read: not ours to drop
                version = raw.version
            await backend.delete_if_version(k, version)
        except (WrongType, SerializationError):
            return  # replaced by a collection or a value this cache cannot read: not ours

    async def _open_envelopes(
        self, wrapped: dict[str, Envelope], full: dict[str, str], into: dict[str, Any]
    ) -> None:
        """get_many's :meth:`_open_envelope`: put each valid one's value in ``into`` under its
        caller's key (``full`` maps raw keys to them); drop the invalidated ones."""
        if any(envelope.fresh_until is not None for envelope in wrapped.values()):
            # Past their ttl: misses, but left in place (get_or_set's stale copies).
            now = self._clock()
            wrapped = {
                k: envelope
                for k, envelope in wrapped.items()
                if envelope.fresh_until is None or now < envelope.fresh_until
            }
        valid = await valid_envelopes(self, wrapped)
        for k, envelope in wrapped.items():
            if k in valid:
                into[full[k]] = envelope.value
            else:
                # One compare-and-delete each, paid once per invalidated entry.
                await self._drop_invalid(k, envelope)

    async def _read_value(self, k: str) -> Any:
        """The decoded, tag-checked value at raw key ``k``, or MISSING (no stats, no hooks)."""
        raw = await self._backend.get(k)
        if raw is MISSING:
            return MISSING
        value = self._decode(raw, k)
        if type(value) is Envelope:
            return await self._open_envelope(k, value)
        return value

    async def _read_envelope(self, key: str) -> Envelope | Missing:
        """The entry at ``key`` as an Envelope (a plain value comes back as ``Envelope(value)``),
        or MISSING on a miss or when a tag of it was invalidated. Counts a hit or a miss."""
        k = self._key(key)
        try:
            raw = await self._backend.get(k)
            value = MISSING if raw is MISSING else self._decode(raw, k)
            envelope: Envelope | Missing = MISSING
            if type(value) is Envelope:
                # Stale copies too: judging them is get_or_set's business (its policy's clock).
                if await self._open_envelope(k, value, stale_ok=True) is not MISSING:
                    envelope = value
            elif value is not MISSING:
                envelope = Envelope(value)
        except CacheError as exc:
            self._failed("get", key, exc)
            raise
        if envelope is MISSING:
            self._stats.misses += 1
        else:
            self._stats.hits += 1
        return envelope

    async def _stored_envelope(self, k: str) -> Envelope | None:
        """The Envelope stored at raw key ``k``, or None for anything else: a miss, a plain
        value, a collection, or bytes this cache cannot decode (ttl/exists then answer for
        the raw entry, as they did before envelopes)."""
        try:
            raw = await self._backend.get(k)
            value = MISSING if raw is MISSING else self._decode(raw, k)
        except (WrongType, SerializationError):
            return None
        return value if type(value) is Envelope else None

    async def _exists_logical(self, k: str) -> bool:
        """exists() as a plain get sees it: an envelope must be fresh and its tags valid.

        One read of the value, not an existence check and then a read: the same single
        round trip as before envelopes existed, for the price of moving the value."""
        try:
            raw = await self._backend.get(k)
        except WrongType:
            return True  # a list, set or hash: never an envelope
        if raw is MISSING:
            return False
        try:
            value = self._decode(raw, k)
        except SerializationError:
            return True  # bytes this cache cannot decode still exist
        return type(value) is not Envelope or await self._open_envelope(k, value) is not MISSING

    async def _ttl_logical(self, k: str) -> float | Missing | None:
        """ttl() as a plain get sees it: an envelope's seconds left to ``fresh_until``."""
        left: float | Missing | None = await self._backend.ttl(k)
        if left is MISSING:
            return left
        envelope = await self._stored_envelope(k)
        if envelope is None:
            return left
        if await self._open_envelope(k, envelope) is MISSING:
            gone: Missing = MISSING
            return gone
        if envelope.fresh_until is None:
            return left
        logical: float = envelope.fresh_until - self._clock()
        return logical if left is None else min(left, logical)

    def _wrap(self, envelope: Envelope, k: str) -> Any:
        """What to hand the backend for ``envelope`` at raw key ``k``: the plain value when it
        carries no metadata; else the object itself (in-process store) or its encoding."""
        if envelope.bare:
            return self._encode(envelope.value, k)
        codec = self._codec
        if codec is None:
            return envelope
        try:
            return codec.encode_envelope(envelope, k)
        except SerializationError as exc:
            if codec.serializer.format_id != 0:
                raise
            raise self._no_envelopes(codec) from exc

    def _wrapped(self, operation: str, key: Any, k: str, envelope: Envelope) -> Any:
        """:meth:`_wrap`, with a failure (a value the codec refuses) counted and reported as
        ``operation``'s before it is raised."""
        try:
            return self._wrap(envelope, k)
        except CacheError as exc:
            self._failed(operation, key, exc)
            raise

    async def _write_envelope(self, key: str, envelope: Envelope, ttl: Any = UNSET) -> None:
        """Store ``envelope`` at ``key`` (``ttl`` as for :meth:`set`); counted as a set."""
        k = self._key(key)
        seconds = self._ttl(ttl)
        stored = self._wrapped("set", key, k, envelope)
        await self._call("set", key, self._backend.set, k, stored, seconds)
        self._stats.sets += 1

    async def _set_tagged(self, key: str, value: Any, ttl: Any, tags: Iterable[str] | TagVersions) -> None:
        self._key(key)  # a bad key fails before the tag records are touched
        seconds = self._ttl(ttl)
        versions = await self._tag_versions(tags)
        await self._write_envelope(key, Envelope(value, versions), seconds)

    async def _set_many_tagged(
        self, mapping: Mapping[str, Any], ttl: Any, tags: Iterable[str] | TagVersions
    ) -> None:
        seconds = self._ttl(ttl)
        full = [self._key(key) for key in mapping]
        versions = await self._tag_versions(tags)
        try:
            items = {
                k: self._wrap(Envelope(value, versions), k)
                for k, value in zip(full, mapping.values(), strict=True)
            }
        except CacheError as exc:
            self._failed("set_many", list(mapping), exc)
            raise
        if items:
            await self._call("set_many", list(mapping), self._backend.set_many, items, seconds)
        self._stats.sets += len(items)

    async def _get_or_set_tagged(
        self, key: str, factory: Callable[[], Any], seconds: float | None, tags: Iterable[str] | TagVersions
    ) -> Any:
        k = self._key(key)
        # Bad tags fail on hits too; a generator is read once.
        names = tags if type(tags) is TagVersions else check_tags(tags)
        value = await self.get(key, MISSING)
        if value is not MISSING:
            return value

        async def fill() -> Any:
            again = await self._read_value(k)
            if again is not MISSING:
                return again
            # The versions are read right before the factory runs: an invalidation from
            # here on makes the value it computes read as a miss (no resurrection).
            seen = await self._tag_versions(names)
            result = factory()
            if inspect.isawaitable(result):
                if not _IS_ASYNC:
                    raise InvalidArgument(f"factory for key {key!r} returned an awaitable; {_ASYNC_HINT}")
                result = await result
            await self._write_envelope(key, Envelope(result, seen), seconds)
            return result

        return await self._flights.run(k, fill)

    # ---------------------------------------------------------------------- lists

    async def _push(self, operation: str, key: str, values: tuple[Any, ...], left: bool) -> int:
        if not values:
            raise InvalidArgument(f"{operation} needs at least one value (key {key!r})")
        k = self._key(key)
        try:
            encoded = [self._encode(v, k) for v in values]
        except CacheError as exc:
            self._failed(operation, key, exc)
            raise
        result: int = await self._call(operation, key, self._backend.push, k, encoded, left)
        return result

    async def lpush(self, key: str, *values: Any) -> int:
        """Insert values at the head (the last one given ends first); the new length."""
        return await self._push("lpush", key, values, True)

    async def rpush(self, key: str, *values: Any) -> int:
        """Append values at the tail; the new length."""
        return await self._push("rpush", key, values, False)

    async def _pop(self, operation: str, key: str, default: Any, left: bool) -> Any:
        k = self._key(key)
        value = await self._call(operation, key, self._backend.pop, k, left)
        return default if value is MISSING else self._decode(value, k)

    async def lpop(self, key: str, default: Any = None) -> Any:
        """Remove and return the head, or ``default`` when the list is empty or absent."""
        return await self._pop("lpop", key, default, True)

    async def rpop(self, key: str, default: Any = None) -> Any:
        """Remove and return the tail, or ``default`` when the list is empty or absent."""
        return await self._pop("rpop", key, default, False)

    async def llen(self, key: str) -> int:
        """The list's length (0 when absent)."""
        result: int = await self._call("llen", key, self._backend.llen, self._key(key))
        return result

    async def lrange(self, key: str, start: int = 0, stop: int = -1) -> list[Any]:
        """Elements ``start``..``stop`` inclusive; negative indexes count from the end."""
        _check_amount(start, "start")
        _check_amount(stop, "stop")
        k = self._key(key)
        values: list[Any] = await self._call("lrange", key, self._backend.lrange, k, start, stop)
        return [self._decode(v, k) for v in values]

    # ---- limits: typed views (docs/patterns/typed.md)

    def typed(self, model: type[T], *, on_invalid: str = "raise") -> AsyncTypedCache[T]:
        """A view of this cache that stores and returns instances of ``model``.

        ``model`` is a dataclass, a pydantic (v2) BaseModel, a msgspec Struct or an attrs
        class. Reads validate: a stored value that does not fit raises SerializationError
        naming the key and the model (``on_invalid="miss"``: a miss; ``"delete"``: a miss
        that deletes it). ``get``'s result is typed ``model | None`` for mypy.
        """
        return AsyncTypedCache(self, model, on_invalid=on_invalid)

    # ----------------------------------------------------------------------- sets

    def _members(self, operation: str, key: str, k: str, members: tuple[Any, ...]) -> list[Any]:
        if not members:
            raise InvalidArgument(f"{operation} needs at least one member (key {key!r})")
        codec = self._codec
        if codec is None:
            return [_check_hashable(m, key) for m in members]
        return [codec.encode_member(m, k) for m in members]

    def _member_out(self, member: Any, k: str) -> Any:
        codec = self._codec
        if codec is None or type(member) is int:
            return member
        return codec.decode_member(member, k)

    async def sadd(self, key: str, *members: Any) -> int:
        """Add members; how many were new."""
        k = self._key(key)
        encoded = self._members("sadd", key, k, members)
        result: int = await self._call("sadd", key, self._backend.sadd, k, encoded)
        return result

    async def srem(self, key: str, *members: Any) -> int:
        """Remove members; how many were there."""
        k = self._key(key)
        encoded = self._members("srem", key, k, members)
        result: int = await self._call("srem", key, self._backend.srem, k, encoded)
        return result

    async def smembers(self, key: str) -> builtins.set[Any]:
        """Every member (an empty set when absent)."""
        k = self._key(key)
        members: builtins.set[Any] = await self._call("smembers", key, self._backend.smembers, k)
        return {self._member_out(m, k) for m in members}

    async def sismember(self, key: str, member: Any) -> bool:
        """True when ``member`` is in the set."""
        k = self._key(key)
        (encoded,) = self._members("sismember", key, k, (member,))
        result: bool = await self._call("sismember", key, self._backend.sismember, k, encoded)
        return result

    async def scard(self, key: str) -> int:
        """The set's size (0 when absent)."""
        result: int = await self._call("scard", key, self._backend.scard, self._key(key))
        return result

    # --------------------------------------------------------------------- hashes

    async def hset(
        self,
        key: str,
        field: str | None = None,
        value: Any = UNSET,
        *,
        mapping: Mapping[str, Any] | None = None,
    ) -> int:
        """Set one field (``hset(k, "f", v)``) and/or many (``mapping=``); how many were new."""
        items: dict[str, Any] = {}
        if field is not None:
            if value is UNSET:
                raise InvalidArgument(f"hset on key {key!r}: field {field!r} was given without a value")
            items[_check_field(field)] = value
        elif value is not UNSET:
            raise InvalidArgument(f"hset on key {key!r}: a value was given without a field")
        if mapping is not None:
            if not isinstance(mapping, Mapping):
                raise InvalidArgument(f"hset mapping must be a Mapping, not {type(mapping).__name__}")
            for name, item in mapping.items():
                items[_check_field(name)] = item
        if not items:
            raise InvalidArgument(f"hset on key {key!r} needs a field and value or a mapping")
        k = self._key(key)
        try:
            encoded = {name: self._encode(item, k) for name, item in items.items()}
        except CacheError as exc:
            self._failed("hset", key, exc)
            raise
        result: int = await self._call("hset", key, self._backend.hset, k, encoded)
        return result

    async def hget(self, key: str, field: str, default: Any = None) -> Any:
        """One field's value, or ``default`` when the field or hash is absent."""
        k = self._key(key)
        value = await self._call("hget", key, self._backend.hget, k, _check_field(field))
        return default if value is MISSING else self._decode(value, k)

    async def hgetall(self, key: str) -> dict[str, Any]:
        """Every field and value (empty when absent)."""
        k = self._key(key)
        values: dict[str, Any] = await self._call("hgetall", key, self._backend.hgetall, k)
        return {name: self._decode(v, k) for name, v in values.items()}

    async def hdel(self, key: str, *fields: str) -> int:
        """Remove fields; how many existed."""
        if not fields:
            raise InvalidArgument(f"hdel needs at least one field (key {key!r})")
        names = [_check_field(f) for f in fields]
        result: int = await self._call("hdel", key, self._backend.hdel, self._key(key), names)
        return result

    async def hexists(self, key: str, field: str) -> bool:
        """True when the hash has ``field``."""
        k = self._key(key)
        result: bool = await self._call("hexists", key, self._backend.hexists, k, _check_field(field))
        return result

    async def hlen(self, key: str) -> int:
        """The number of fields (0 when absent)."""
        result: int = await self._call("hlen", key, self._backend.hlen, self._key(key))
        return result

    async def hincrby(self, key: str, field: str, amount: int = 1) -> int:
        """Atomically add ``amount`` to an integer field (a missing field starts at 0)."""
        k = self._key(key)
        name = _check_field(field)
        result: int = await self._call("hincrby", key, self._backend.hincrby, k, name, _check_amount(amount))
        return result

    # ---- sources: cache warming (stratacache._async.warming)

    async def warm(
        self,
        source: Any,
        *,
        keys: Iterable[str] | None = None,
        concurrency: int = 8,
        ttl: Any = UNSET,
        progress: Callable[[int, int | None], object] | None = None,
        batch_size: int = 100,
    ) -> WarmReport:
        """Load many keys into the cache ahead of traffic; a :class:`WarmReport` of what happened.

        ``source`` is a data source (``load``/``load_many``; ``keys`` required), a mapping
        (``keys`` optional: a subset) or a loader function ``key -> value | MISSING``
        (``keys`` required; a coroutine function with AsyncCache). ``concurrency`` workers
        take ``batch_size`` keys at a time; ``progress(done, total)`` is called after each
        batch (``total`` is None when ``keys`` has no length). Failures are counted and kept
        in the report, never raised; bad arguments raise InvalidArgument naming them.
        """
        report = _warm(
            self,
            source,
            keys=keys,
            concurrency=concurrency,
            ttl=ttl,
            progress=progress,
            batch_size=batch_size,
        )
        return await report

    # ------------------------------------------------------- observability, lifecycle

    async def stats(self) -> Stats:
        """Counters and sampled latencies of this cache, with the backend's own figures."""
        counters = await self._backend.counters(self._prefix or None)
        return self._stats.snapshot(
            evictions=counters.evictions,
            expirations=counters.expirations,
            items=counters.items,
            size=counters.bytes,
            backend=counters.details,
        )

    def reset_stats(self) -> None:
        """Zero this cache's counters and latency windows."""
        self._stats.reset()

    async def ping(self) -> bool:
        """True when the backend answers; raises BackendUnavailable (or CacheClosed) otherwise."""
        await self._call("ping", None, self._backend.ping)
        return True

    async def health(self) -> HealthReport:
        """Reachability and latency; never raises."""
        started = time.perf_counter()
        try:
            await self._backend.ping()
        except CacheError as exc:
            return HealthReport(self._backend.describe(), False, None, f"{type(exc).__name__}: {exc}")
        return HealthReport(self._backend.describe(), True, time.perf_counter() - started)

    async def close(self) -> None:
        """Release the backend; later operations raise CacheClosed. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.__dict__.pop("get", None)  # drop a fused fast path: the closed backend must answer
        backend = self._backend
        # Swapping in a backend whose every method raises CacheClosed keeps the check off the hot path.
        self._backend = AsyncClosedBackend(backend.describe())  # type: ignore[abstract]
        await backend.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        namespace = "" if self.namespace is None else f" namespace={self.namespace!r}"
        return f"<{type(self).__name__} {self._backend.describe()}{namespace}>"
