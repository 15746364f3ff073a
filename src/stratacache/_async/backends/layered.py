"""The ``layered://`` backend: tiers of any backends (memory over Redis, memory over file, ...).

``tiers[0]`` is the fastest, closest tier (L1); the last tier is the *source of truth*.

Reads go down the tiers; a hit in a lower tier fills the tiers above it with the entry's
remaining ttl (asked of the lower tier), capped by ``l1_ttl``. Writes, deletes, expire,
clear and delete_pattern go through every tier, the source of truth first, so that a
failure there is known before any copy changes. Atomic operations (``incr``, ``add``,
lists, sets, hashes, and the verbs ``set_if_version``, ``delete_if_version``, ``pull`` and
``replace``) run on the source of truth only and the upper tiers' copies of the key are
dropped: atomicity exists in one place, never in copies. ``get_item`` reads the source of
truth too, since versions are its own (an upper tier's copy has another version).

Consistency across processes (the upper tiers are private to a process, the source of
truth is shared):

* When a tier is Redis, every write/delete/clear is published on ``channel`` with this
  backend's sender id, and a listener (an asyncio task here, a daemon thread in the sync
  flavour) drops the upper tiers' copies named by other processes' messages. Whenever the
  subscription is (re)established, messages may have been missed, so the upper tiers are
  cleared entirely; while it is not established, lower-tier hits do not fill upper tiers.
  The channel lives in ``invalidation.py`` (its pure logic in ``core/invalidation.py``):
  the backend owns one and gives it a callback that drops keys, prefixes or patterns.
* Without a channel, ``l1_ttl`` is the staleness bound: no upper-tier copy outlives it.
* Race guard: an invalidation that arrives between reading a lower tier and filling the
  upper ones must not leave the older value above. Every invalidation (local write, remote
  message, clear) stamps the key's stripe (or, for clear/pattern/reconnect, a global epoch)
  with a fresh number from one counter; a fill or write-through compares the stamp it saw
  before reading/writing the source of truth with the stamp after filling, and undoes the
  fill when it changed. Stamps are unique, so a change is never missed, even between threads.

Fallback: each tier has a :class:`~stratacache.core.breaker.CircuitBreaker`. When a tier is
unavailable (BackendUnavailable / CacheTimeout), reads are served by the tiers that answer,
writes go where they can, failures are counted in ``counters().details``, and an open
circuit skips the tier at once instead of waiting out its timeout on every call. A write
the source of truth could not take raises (``on_write_failure="raise"``, the default; the
key is dropped from the upper tiers first so nothing stale stays) or is kept in the upper
tiers only (``"degrade"``, counted as ``degraded_writes``).
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

from ..._build import build_backend
from ..._exceptions import BackendUnavailable, CacheError, CacheTimeout, ConfigurationError, InvalidTTL
from ..._types import MISSING, UNSET, Item, Missing, Unset, normalize_ttl
from ...core.breaker import CircuitBreaker
from ...core.invalidation import Clear, Invalidation, Keys, Pattern
from .base import AsyncBackend, BackendCounters, Capabilities, Decoded
from .invalidation import AsyncInvalidationChannel, off_details

__all__ = ["DEFAULT_CHANNEL", "L1_TTL_WITHOUT_CHANNEL", "L1_TTL_WITH_CHANNEL", "AsyncLayeredBackend"]

_IS_ASYNC = True

#: The pub/sub channel layered caches publish their invalidations on by default.
DEFAULT_CHANNEL = "stratacache:invalidate"
#: Default cap (seconds) on an upper-tier copy when no tier gives a notification channel:
#: the staleness bound of a process's copies after another process writes.
L1_TTL_WITHOUT_CHANNEL = 5.0
#: Default cap when invalidations are published: only a safety net (a message lost in a way
#: the listener could not detect), so it can be longer.
L1_TTL_WITH_CHANNEL = 60.0

_UNAVAILABLE = (BackendUnavailable, CacheTimeout)
_STRIPES = 1024  # a power of two: a key's stripe is hash(key) & (_STRIPES - 1)
_WRITE_FAILURE_MODES = ("raise", "degrade")
_Call = Callable[..., Awaitable[Any]]


class AsyncLayeredBackend(AsyncBackend):
    """A cache made of tiers of other backends, fastest first, the source of truth last.

    ``tiers``: two or more backends, each a backend object, a URL (``"redis://h:6379/0"``),
    a backend name (``"memory"``) or a mapping (``{"backend": "memory", "max_entries": 1000}``).
    Cache-level options (namespace, serializer, ...) are refused in a tier: they belong on
    the layered cache. Closing the layered backend closes its tiers.

    ``l1_ttl``: seconds an upper-tier copy may live at most (``None``: as long as the entry
    itself). Default: 5 s when no tier is Redis (the staleness bound across processes), 60 s
    when invalidations are published (a safety net).
    ``channel``: the Redis pub/sub channel for invalidations (``None`` turns them off).
    ``on_write_failure``: ``"raise"`` (default) or ``"degrade"`` when a write cannot reach
    the source of truth (see the module docstring).
    ``failure_threshold`` consecutive failures open a tier's circuit for ``reset_timeout``
    seconds; ``clock`` (monotonic seconds) drives the circuit breakers, for tests.
    """

    name: ClassVar[str] = "layered"

    def __init__(
        self,
        tiers: Sequence[Any] = (),
        *,
        l1_ttl: float | Unset | None = UNSET,
        channel: str | None = DEFAULT_CHANNEL,
        on_write_failure: str = "raise",
        failure_threshold: int = 3,
        reset_timeout: float = 2.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if isinstance(tiers, (str, bytes, Mapping)) or not isinstance(tiers, Sequence):
            raise ConfigurationError(
                f"parameter 'tiers': expected a list of two or more backends, got {type(tiers).__name__}"
            )
        if len(tiers) < 2:
            raise ConfigurationError(
                f"parameter 'tiers': a layered backend needs at least two tiers, got {len(tiers)}"
            )
        if on_write_failure not in _WRITE_FAILURE_MODES:
            raise ConfigurationError(
                f"parameter 'on_write_failure': expected raise or degrade, got {on_write_failure!r}"
            )
        if channel is not None and (not isinstance(channel, str) or not channel):
            raise ConfigurationError(
                f"parameter 'channel': expected a non-empty string or None, got {channel!r}"
            )
        built: list[AsyncBackend] = []
        try:
            for index, spec in enumerate(tiers):
                built.append(
                    build_backend(
                        spec, asynchronous=_IS_ASYNC, what=f"layered tier {index}", owner="the layered cache"
                    )
                )
            # Built before anything can fail, so a bad option closes no half-made tier twice.
            self._breakers = [
                CircuitBreaker(failure_threshold, reset_timeout, clock or time.monotonic) for _ in built
            ]
        except ValueError as exc:
            if isinstance(exc, ConfigurationError):
                raise
            raise ConfigurationError(str(exc)) from exc
        self.tiers: tuple[AsyncBackend, ...] = tuple(built)
        self.on_write_failure = on_write_failure
        self._source_index = len(built) - 1
        self._source = built[-1]
        self._upper = tuple(range(len(built) - 1))
        self._top = built[0]
        self._top_breaker = self._breakers[0]
        # Capabilities depend on the tiers, so they are per instance (the base class has a
        # class-level default); object.__setattr__ keeps mypy's ClassVar check satisfied.
        object.__setattr__(
            self,
            "capabilities",
            Capabilities(
                stores_objects=all(t.capabilities.stores_objects for t in built),
                retains_data=all(t.capabilities.retains_data for t in built),
                delete_pattern=all(t.capabilities.delete_pattern for t in built),
                collections=all(t.capabilities.collections for t in built),
                ttl_resolution=max(t.capabilities.ttl_resolution for t in built),
                # The verbs run on the source of truth alone (it issues the versions).
                versions=built[-1].capabilities.versions,
            ),
        )

        # -- invalidation channel: the lowest Redis tier (not on a cluster: see docs/layered.md)
        self.channel: str | None = None
        channel_index: int | None = None
        self._channel_note = "off (channel=None)" if channel is None else "off (no Redis tier)"
        if channel is not None:
            for index in reversed(range(len(built))):
                tier = built[index]
                if tier.name == "redis" and hasattr(tier, "client"):
                    if getattr(tier, "is_cluster", False):
                        self._channel_note = "off (Redis Cluster: pub/sub invalidation is not supported)"
                        continue
                    self.channel = channel
                    channel_index = index
                    break
        # Tiers whose copies other processes' messages invalidate: those above the channel tier.
        self._private = tuple(range(channel_index or 0))
        if isinstance(l1_ttl, Unset):
            cap: float | None = L1_TTL_WITH_CHANNEL if self.channel else L1_TTL_WITHOUT_CHANNEL
        else:
            try:
                cap = normalize_ttl(l1_ttl, name="l1_ttl")
            except InvalidTTL as exc:
                raise ConfigurationError(str(exc)) from exc
        self.l1_ttl = cap

        # -- decoded top tier: once a cache attaches its codec, an in-process top tier keeps
        # objects, decoded once on the way in, and its hits skip the facade's decode.
        self._codec: Any = None

        # -- race guard: unique stamps from one counter (next() on itertools.count is atomic)
        self._stamps = itertools.count(1)
        self._stripes = [0] * _STRIPES
        self._epoch = 0

        # -- the channel (publishing, the listener, its counters) and when to start it
        self._channel: AsyncInvalidationChannel | None = None
        if channel_index is not None:
            self._channel = AsyncInvalidationChannel(
                built[channel_index].client,  # type: ignore[attr-defined]
                channel,  # type: ignore[arg-type]  # not None when channel_index is set
                self._breakers[channel_index],
                on_invalidate=self._invalidate,
                on_lost=self._bump_all,
            )
        # Started on first use: in the async flavour there may be no running loop before.
        self._listen_due = self._channel is not None
        self._closed = False

        # -- counters for stats().backend
        self._fills = 0
        self._fills_skipped = 0
        self._degraded_writes = 0

    # ------------------------------------------------------------------ plumbing

    def describe(self) -> str:
        """The tiers, fastest first."""
        return "layered(" + " > ".join(t.describe() for t in self.tiers) + ")"

    def attach_namespace(self, prefix: str) -> None:
        """Forwarded to every tier (Memcached keeps per-namespace generations, for one)."""
        for tier in self.tiers:
            tier.attach_namespace(prefix)

    def attach_codec(self, codec: Any) -> None:
        """Keep decoded objects in the top tier when it is in-process (stores objects).

        The first codec attached is kept: it decodes values any cache wrote (the header names
        the format). A value it cannot decode (another cache's signing or encryption keys) is
        simply not copied into the top tier. Like ``memory://``, the top tier then hands out
        the stored object itself: mutating a value you got mutates this process's copy.
        """
        if self._codec is None and self._top.capabilities.stores_objects:
            self._codec = codec
        for tier in self.tiers:
            tier.attach_codec(codec)

    @property
    def fused_get_is_decoded(self) -> bool:
        """True when :attr:`fused_get` serves decoded top-tier objects (a codec is attached)."""
        return self._codec is not None and hasattr(self._top, "fused_get")

    @property
    def fused_get(self) -> Any:
        """The top tier's one-frame ``get`` builder, for the facade's fast path on L1 hits.

        Only offered while the top tier keeps decoded objects: a hit is then exactly the
        in-process hit of ``memory://``; a miss (or anything unusual) goes back to the full
        path, i.e. to :meth:`get`, which reads down the tiers. Safe to bypass this backend on
        hits: every copy in the top tier was put there by this backend, and invalidations
        (local writes, pub/sub messages, a lost subscription) remove copies from it.
        """
        # The top tier holds the cache's values themselves when every tier stores objects
        # (no codec at all), or decoded objects once a codec is attached.
        if not (
            self.fused_get_is_decoded
            or (self.capabilities.stores_objects and hasattr(self._top, "fused_get"))
        ):
            return None
        # A top-tier miss is not a miss of the cache: it goes to the full path.
        return functools.partial(self._top.fused_get, miss_is_final=False)  # type: ignore[attr-defined]

    def _for_top(self, key: str, value: Any) -> Any:
        """The top tier's form of ``value`` (bytes from the facade): decoded, or MISSING when
        it cannot be (then the top tier gets no copy)."""
        try:
            return self._codec.decode(value, key)
        except CacheError:
            return MISSING

    async def _set_upper(self, index: int, key: str, value: Any, ttl: float | None) -> None:
        """Copy one value into upper tier ``index`` (decoded for a decoded top tier)."""
        if index == 0 and self._codec is not None:
            value = self._for_top(key, value)
            if value is MISSING:
                await self._try(0, self._top.delete, key)
                return
        await self._try(index, self.tiers[index].set, key, value, ttl)

    async def _set_many_upper(self, index: int, items: Mapping[str, Any], ttl: float | None) -> None:
        if index == 0 and self._codec is not None:
            decoded = {key: self._for_top(key, value) for key, value in items.items()}
            bad = [key for key, value in decoded.items() if value is MISSING]
            if bad:
                await self._try(0, self._top.delete_many, bad)
            items = {key: value for key, value in decoded.items() if value is not MISSING}
            if not items:
                return
        await self._try(index, self.tiers[index].set_many, items, ttl)

    def _cap(self, ttl: float | None) -> float | None:
        """The ttl of an upper-tier copy: the entry's own, capped by ``l1_ttl``."""
        cap = self.l1_ttl
        if cap is None:
            return ttl
        return cap if ttl is None or ttl > cap else ttl

    def _bump(self, key: str) -> None:
        """Mark ``key`` invalidated: any fill or write-through that saw the old stamp is undone."""
        self._stripes[hash(key) & (_STRIPES - 1)] = next(self._stamps)

    def _bump_all(self) -> None:
        """Mark every key invalidated (clear, delete_pattern, a (re)subscription)."""
        self._epoch = next(self._stamps)

    def _stamp(self, key: str) -> tuple[int, int]:
        return self._stripes[hash(key) & (_STRIPES - 1)], self._epoch

    def _fills_allowed(self) -> bool:
        # With a channel, a copy made while not subscribed could miss its invalidation.
        return self._channel is None or self._channel.state == "listening"

    async def _on(self, index: int, fn: _Call, *args: Any) -> Any:
        """Call ``fn`` (a method of tier ``index``) through the tier's circuit breaker.

        Raises BackendUnavailable at once when the circuit is open; an unavailability or
        timeout is counted as a failure, any other answer (even an error like WrongType)
        as a success: the tier answered.
        """
        breaker = self._breakers[index]
        if not breaker.allow():
            raise BackendUnavailable(
                f"layered tier {index} ({self.tiers[index].describe()}): circuit open after "
                f"{breaker.consecutive} consecutive failures; next try in {breaker.retry_in():.1f}s"
            )
        try:
            result = await fn(*args)
        except _UNAVAILABLE:
            breaker.record_failure()
            raise
        except CacheError:
            breaker.record_success()
            raise
        breaker.record_success()
        return result

    async def _try(self, index: int, fn: _Call, *args: Any) -> Any:
        """Like ``_on`` for a best-effort call: MISSING when the tier is unavailable."""
        try:
            return await self._on(index, fn, *args)
        except _UNAVAILABLE:
            return MISSING

    async def _drop(self, keys: list[str], tiers: Sequence[int]) -> None:
        """Remove ``keys`` from ``tiers`` (best effort)."""
        for index in tiers:
            tier = self.tiers[index]
            if len(keys) == 1:
                await self._try(index, tier.delete, keys[0])
            else:
                await self._try(index, tier.delete_many, keys)

    async def _source_write(self, fn: _Call, *args: Any, keys: list[str] | None) -> Any:
        """Run a write on the source of truth; MISSING when it failed and we degrade.

        ``keys`` are the keys written (None: every key, for clear/delete_pattern). On failure
        with ``on_write_failure="raise"`` they are dropped from the upper tiers first, so no
        copy newer or older than the source of truth is left behind, then the error is raised.
        """
        try:
            return await self._on(self._source_index, fn, *args)
        except _UNAVAILABLE:
            if self.on_write_failure == "raise":
                if keys is None:
                    self._bump_all()
                    for index in self._upper:
                        await self._try(index, self.tiers[index].clear, None)
                else:
                    for key in keys:
                        self._bump(key)
                    await self._drop(keys, self._upper)
                raise
            self._degraded_writes += 1
            return MISSING

    async def _settle(self, keys: list[str], stamps: list[tuple[int, int]]) -> None:
        """After a write-through: drop the upper copies of keys invalidated meanwhile."""
        stale = [key for key, stamp in zip(keys, stamps, strict=True) if self._stamp(key) != stamp]
        if stale:
            await self._drop(stale, self._upper)

    # ------------------------------------------------------------------ invalidation

    def _ensure_listener(self) -> None:
        """Start the listener on first use (in the async flavour: inside the running loop)."""
        if self._listen_due and not self._closed:
            self._listen_due = False
            assert self._channel is not None
            self._channel.start()

    async def wait_listening(self, timeout: float = 5.0) -> bool:
        """Start the invalidation listener if needed and wait until it is subscribed.

        True once it is (or when there is no channel), False after ``timeout`` seconds.
        Until then, lower-tier hits do not fill the upper tiers.
        """
        if self._channel is None:
            return True
        self._ensure_listener()
        return await self._channel.wait_listening(timeout)

    async def _publish(self, invalidation: Invalidation) -> None:
        """Tell other processes to drop their copies (best effort: a failure is counted)."""
        if self._channel is not None:
            await self._channel.publish(invalidation)

    async def _publish_keys(self, keys: list[str]) -> None:
        if self._channel is not None:
            await self._channel.publish(Keys(keys))

    async def _invalidate(self, invalidation: Invalidation) -> None:
        """The channel's callback: drop the private tiers' copies another process invalidated.

        Also called with ``EVERYTHING`` on each (re)subscription: copies made before it may
        have missed messages.
        """
        if isinstance(invalidation, Keys):
            keys = invalidation.keys
            for key in keys:
                self._bump(key)
            await self._drop(keys, self._private)
        elif isinstance(invalidation, Clear):
            prefix = invalidation.prefix
            self._bump_all()
            for index in self._private:
                await self._try(index, self.tiers[index].clear, prefix)
        else:
            self._bump_all()
            for index in self._private:
                tier = self.tiers[index]
                if tier.capabilities.delete_pattern:
                    await self._try(index, tier.delete_pattern, invalidation.pattern)
                else:
                    await self._try(index, tier.clear, None)

    # -- the listener's state under the names it had before the channel moved out (tests
    # and debugging sessions read them)

    @property
    def _listener(self) -> Any:
        return None if self._channel is None else self._channel.listener

    @property
    def _state(self) -> str:
        return "off" if self._channel is None else self._channel.state

    @_state.setter
    def _state(self, state: str) -> None:
        if self._channel is not None:
            self._channel.state = state

    @property
    def _received(self) -> int:
        return 0 if self._channel is None else self._channel.received

    @property
    def _subscriptions(self) -> int:
        return 0 if self._channel is None else self._channel.subscriptions

    # ------------------------------------------------------------------ reads

    async def get(self, key: str) -> Any:
        """The first tier's hit, filling the tiers above it; MISSING when every answering tier misses."""
        if self._listen_due:
            self._ensure_listener()
        if self._top_breaker.closed:
            # The hot path: an L1 hit is one call to the top tier.
            try:
                value = await self._top.get(key)
            except _UNAVAILABLE:
                self._top_breaker.record_failure()
                return await self._read_down(key, 1, [])
            if value is not MISSING:
                return value if self._codec is None else Decoded(value)
            return await self._read_down(key, 1, [0])
        return await self._read_down(key, 0, [])

    async def _read_down(self, key: str, start: int, answered: list[int]) -> Any:
        stamp = self._stamp(key)
        error: CacheError | None = None
        for index in range(start, len(self.tiers)):
            try:
                value = await self._on(index, self.tiers[index].get, key)
            except _UNAVAILABLE as exc:
                error = exc
                continue
            if value is not MISSING:
                if answered:
                    await self._fill(key, value, index, answered, stamp)
                return Decoded(value) if index == 0 and self._codec is not None else value
            answered.append(index)
        if not answered and error is not None:
            raise error  # no tier answered: the cache is unavailable, not empty
        return MISSING

    async def _fill(
        self, key: str, value: Any, source: int, targets: list[int], stamp: tuple[int, int]
    ) -> None:
        """Copy a lower tier's hit into ``targets`` with its remaining ttl, unless invalidated."""
        if not self._fills_allowed():
            self._fills_skipped += 1
            return
        try:
            remaining = await self._on(source, self.tiers[source].ttl, key)
        except _UNAVAILABLE:
            self._fills_skipped += 1
            return
        if remaining is MISSING or (remaining is not None and remaining <= 0):
            return  # expired or deleted since we read it: nothing to copy
        ttl = self._cap(remaining)
        if self._stamp(key) != stamp:
            self._fills_skipped += 1
            return
        for index in targets:
            await self._set_upper(index, key, value, ttl)
        if self._stamp(key) != stamp or not self._fills_allowed():
            # Invalidated while we filled: what we copied may be older than the source now.
            await self._drop([key], targets)
            self._fills_skipped += 1
            return
        self._fills += 1

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        """Tier by tier for the keys still missing; lower-tier hits fill the tiers above."""
        if self._listen_due:
            self._ensure_listener()
        found: dict[str, Any] = {}
        missing = list(dict.fromkeys(keys))
        answered: list[int] = []
        error: CacheError | None = None
        stamps: dict[str, tuple[int, int]] = {}
        for index, tier in enumerate(self.tiers):
            if not missing:
                break
            if answered:
                stamps = {key: self._stamp(key) for key in missing}
            try:
                hits = await self._on(index, tier.get_many, missing)
            except _UNAVAILABLE as exc:
                error = exc
                continue
            if hits:
                if index == 0 and self._codec is not None:
                    found.update({key: Decoded(value) for key, value in hits.items()})
                else:
                    found.update(hits)
                if answered:
                    for key, value in hits.items():
                        await self._fill(key, value, index, list(answered), stamps[key])
                missing = [key for key in missing if key not in hits]
            answered.append(index)
        if not answered and error is not None:
            raise error
        return found

    async def exists(self, key: str) -> bool:
        """True when a tier that answers holds the key (the first hit, top down)."""
        error: CacheError | None = None
        answered = False
        for index, tier in enumerate(self.tiers):
            try:
                if await self._on(index, tier.exists, key):
                    return True
            except _UNAVAILABLE as exc:
                error = exc
                continue
            answered = True
        if not answered and error is not None:
            raise error
        return False

    async def ttl(self, key: str) -> float | Missing | None:
        """The source of truth's answer (upper copies are capped); the next tier up's if it is down."""
        error: CacheError | None = None
        for index in reversed(range(len(self.tiers))):
            try:
                result: float | Missing | None = await self._on(index, self.tiers[index].ttl, key)
            except _UNAVAILABLE as exc:
                error = exc
                continue
            return result
        assert error is not None
        raise error

    # ------------------------------------------------------------------ writes through every tier

    async def set(self, key: str, value: Any, ttl: float | None) -> None:
        """The source of truth first, then every upper tier with the ttl capped by ``l1_ttl``."""
        if self._listen_due:
            self._ensure_listener()
        self._bump(key)
        stamp = self._stamp(key)
        if await self._source_write(self._source.set, key, value, ttl, keys=[key]) is not MISSING:
            await self._publish_keys([key])
        capped = self._cap(ttl)
        for index in self._upper:
            await self._set_upper(index, key, value, capped)
        await self._settle([key], [stamp])

    async def set_many(self, items: Mapping[str, Any], ttl: float | None) -> None:
        """``set`` for many keys: one ``set_many`` per tier."""
        if self._listen_due:
            self._ensure_listener()
        keys = list(items)
        if not keys:
            return
        for key in keys:
            self._bump(key)
        stamps = [self._stamp(key) for key in keys]
        if await self._source_write(self._source.set_many, items, ttl, keys=keys) is not MISSING:
            await self._publish_keys(keys)
        capped = self._cap(ttl)
        for index in self._upper:
            await self._set_many_upper(index, items, capped)
        await self._settle(keys, stamps)

    async def delete(self, key: str) -> bool:
        """Delete from every tier; whether the source of truth had it (the upper tiers' when degraded)."""
        if self._listen_due:
            self._ensure_listener()
        self._bump(key)
        existed = await self._source_write(self._source.delete, key, keys=[key])
        if existed is not MISSING:
            await self._publish_keys([key])
        upper = False
        for index in self._upper:
            upper = await self._try(index, self.tiers[index].delete, key) is True or upper
        return upper if existed is MISSING else bool(existed)

    async def delete_many(self, keys: list[str]) -> int:
        """Delete from every tier; how many the source of truth had (the upper tiers' when degraded)."""
        if self._listen_due:
            self._ensure_listener()
        if not keys:
            return 0
        for key in keys:
            self._bump(key)
        count = await self._source_write(self._source.delete_many, keys, keys=keys)
        if count is not MISSING:
            await self._publish_keys(keys)
        upper = 0
        for index in self._upper:
            removed = await self._try(index, self.tiers[index].delete_many, keys)
            upper = max(upper, 0 if removed is MISSING else int(removed))
        return upper if count is MISSING else int(count)

    async def expire(self, key: str, ttl: float | None) -> bool:
        """New ttl everywhere (capped above); the source of truth's answer (upper tiers' when degraded)."""
        if self._listen_due:
            self._ensure_listener()
        self._bump(key)
        result = await self._source_write(self._source.expire, key, ttl, keys=[key])
        if result is not MISSING:
            await self._publish_keys([key])
        capped = self._cap(ttl)
        upper = False
        for index in self._upper:
            upper = await self._try(index, self.tiers[index].expire, key, capped) is True or upper
        return upper if result is MISSING else bool(result)

    def iter_keys(self, pattern: str) -> AsyncIterator[str]:
        """The source of truth's keys: it holds every key, the tiers above copies of some."""
        if not self.capabilities.delete_pattern:
            # Named for the backend the caller holds (and raised at the call, like the default).
            raise self._unsupported("iter_keys", "one of its tiers cannot enumerate keys")
        return self._source.iter_keys(pattern)

    async def delete_pattern(self, pattern: str) -> int:
        """Delete matching keys in every tier; how many the source of truth had."""
        if self._listen_due:
            self._ensure_listener()
        self._bump_all()
        count = await self._source_write(self._source.delete_pattern, pattern, keys=None)
        if count is not MISSING:
            await self._publish(Pattern(pattern))
        upper = 0
        for index in self._upper:
            removed = await self._try(index, self.tiers[index].delete_pattern, pattern)
            upper = max(upper, 0 if removed is MISSING else int(removed))
        return upper if count is MISSING else int(count)

    async def clear(self, prefix: str | None) -> None:
        """Clear every tier (only ``prefix`` keys when given), the source of truth first."""
        if self._listen_due:
            self._ensure_listener()
        self._bump_all()
        if await self._source_write(self._source.clear, prefix, keys=None) is not MISSING:
            await self._publish(Clear(prefix))
        for index in self._upper:
            await self._try(index, self.tiers[index].clear, prefix)

    # ------------------------------------------------------------------ atomic: source of truth only

    async def _atomic(self, fn: _Call, key: str, *args: Any, notify: bool) -> Any:
        """Run ``fn(key, *args)`` on the source of truth, then drop the upper copies of ``key``.

        Never degraded: an atomic operation done on a copy would give a wrong answer.
        ``notify``: also tell other processes (a plain value they may hold has changed).
        Collections are never copied upward, so their operations only drop our own copy
        (a plain value left by a degraded write).
        """
        if self._listen_due:
            self._ensure_listener()
        self._bump(key)
        result = await self._on(self._source_index, fn, key, *args)
        if notify:
            await self._publish_keys([key])
        await self._drop([key], self._upper)
        return result

    async def add(self, key: str, value: Any, ttl: float | None) -> bool:
        """SET-if-absent on the source of truth."""
        if self._listen_due:
            self._ensure_listener()
        self._bump(key)
        stored = bool(await self._on(self._source_index, self._source.add, key, value, ttl))
        if stored:
            await self._publish_keys([key])
            await self._drop([key], self._upper)
        return stored

    async def incr(self, key: str, delta: int) -> int:
        """On the source of truth; other processes drop their copies of the counter."""
        result: int = await self._atomic(self._source.incr, key, delta, notify=True)
        return result

    async def push(self, key: str, values: list[Any], left: bool) -> int:
        """On the source of truth."""
        result: int = await self._atomic(self._source.push, key, values, left, notify=False)
        return result

    async def pop(self, key: str, left: bool) -> Any:
        """On the source of truth."""
        return await self._atomic(self._source.pop, key, left, notify=False)

    async def sadd(self, key: str, members: list[Any]) -> int:
        """On the source of truth."""
        result: int = await self._atomic(self._source.sadd, key, members, notify=False)
        return result

    async def srem(self, key: str, members: list[Any]) -> int:
        """On the source of truth."""
        result: int = await self._atomic(self._source.srem, key, members, notify=False)
        return result

    async def hset(self, key: str, mapping: Mapping[str, Any]) -> int:
        """On the source of truth."""
        result: int = await self._atomic(self._source.hset, key, mapping, notify=False)
        return result

    async def hdel(self, key: str, fields: list[str]) -> int:
        """On the source of truth."""
        result: int = await self._atomic(self._source.hdel, key, fields, notify=False)
        return result

    async def hincrby(self, key: str, field: str, delta: int) -> int:
        """On the source of truth."""
        result: int = await self._atomic(self._source.hincrby, key, field, delta, notify=False)
        return result

    # -- verbs: on the source of truth, which issues the versions

    async def get_item(self, key: str) -> Item | Missing:
        """From the source of truth: an upper tier's copy carries a version of its own."""
        item: Item | Missing = await self._read_source(self._source.get_item, key)
        return item

    async def set_if_version(self, key: str, value: Any, ttl: float | None, version: int | str) -> bool:
        """Compare-and-set on the source of truth; every copy of the key is dropped."""
        result: bool = await self._atomic(self._source.set_if_version, key, value, ttl, version, notify=True)
        return result

    async def delete_if_version(self, key: str, version: int | str) -> bool:
        """Compare-and-delete on the source of truth; every copy of the key is dropped."""
        result: bool = await self._atomic(self._source.delete_if_version, key, version, notify=True)
        return result

    async def pull(self, key: str) -> Any:
        """Get-and-delete on the source of truth; every copy of the key is dropped."""
        return await self._atomic(self._source.pull, key, notify=True)

    async def replace(self, key: str, value: Any, ttl: float | None) -> bool:
        """Store-if-present on the source of truth; every copy of the key is dropped."""
        result: bool = await self._atomic(self._source.replace, key, value, ttl, notify=True)
        return result

    # -- collection reads: collections live only in the source of truth

    async def _read_source(self, fn: _Call, *args: Any) -> Any:
        if self._listen_due:
            self._ensure_listener()
        return await self._on(self._source_index, fn, *args)

    async def llen(self, key: str) -> int:
        """From the source of truth."""
        result: int = await self._read_source(self._source.llen, key)
        return result

    async def lrange(self, key: str, start: int, stop: int) -> list[Any]:
        """From the source of truth."""
        result: list[Any] = await self._read_source(self._source.lrange, key, start, stop)
        return result

    async def smembers(self, key: str) -> builtins.set[Any]:
        """From the source of truth."""
        result: builtins.set[Any] = await self._read_source(self._source.smembers, key)
        return result

    async def sismember(self, key: str, member: Any) -> bool:
        """From the source of truth."""
        result: bool = await self._read_source(self._source.sismember, key, member)
        return result

    async def scard(self, key: str) -> int:
        """From the source of truth."""
        result: int = await self._read_source(self._source.scard, key)
        return result

    async def hget(self, key: str, field: str) -> Any:
        """From the source of truth."""
        return await self._read_source(self._source.hget, key, field)

    async def hgetall(self, key: str) -> dict[str, Any]:
        """From the source of truth."""
        result: dict[str, Any] = await self._read_source(self._source.hgetall, key)
        return result

    async def hexists(self, key: str, field: str) -> bool:
        """From the source of truth."""
        result: bool = await self._read_source(self._source.hexists, key, field)
        return result

    async def hlen(self, key: str) -> int:
        """From the source of truth."""
        result: int = await self._read_source(self._source.hlen, key)
        return result

    # ------------------------------------------------------------------ lifecycle, introspection

    async def ping(self) -> None:
        """Ping every tier (through its breaker); BackendUnavailable naming the tiers that fail."""
        failures: list[str] = []
        first: CacheError | None = None
        for index, tier in enumerate(self.tiers):
            try:
                await self._on(index, tier.ping)
            except _UNAVAILABLE as exc:
                first = first or exc
                failures.append(f"tier {index} ({tier.describe()}): {exc}")
        if failures:
            raise BackendUnavailable("layered: " + "; ".join(failures)) from first

    def tier_status(self) -> list[dict[str, Any]]:
        """Per tier: its description, circuit state and failure counts (also in ``stats().backend``)."""
        return [
            {
                "backend": tier.describe(),
                "circuit": breaker.state,
                "failures": breaker.failures,
                "consecutive_failures": breaker.consecutive,
                "skipped": breaker.rejected,
                "opened": breaker.opened,
            }
            for tier, breaker in zip(self.tiers, self._breakers, strict=True)
        ]

    async def counters(self, prefix: str | None) -> BackendCounters:
        """Items and bytes of the source of truth (of the first tier answering when it is down).

        ``details`` holds ``tiers`` (see :meth:`tier_status`), ``fills``/``fills_skipped``,
        ``degraded_writes`` and ``invalidation`` (channel, listener state, messages received,
        subscriptions, publish failures).
        """
        found: BackendCounters | None = None
        for index in reversed(range(len(self.tiers))):
            try:
                found = await self._on(index, self.tiers[index].counters, prefix)
            except _UNAVAILABLE:
                continue
            break
        found = found or BackendCounters()
        details = {
            "tiers": self.tier_status(),
            "fills": self._fills,
            "fills_skipped": self._fills_skipped,
            "degraded_writes": self._degraded_writes,
            "l1_ttl": self.l1_ttl,
            "on_write_failure": self.on_write_failure,
            "invalidation": (
                self._channel.details() if self._channel is not None else off_details(self._channel_note)
            ),
        }
        return BackendCounters(
            items=found.items,
            bytes=found.bytes,
            evictions=found.evictions,
            expirations=found.expirations,
            details=details,
        )

    async def close(self) -> None:
        """Stop the listener and close every tier. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._listen_due = False
        if self._channel is not None:
            await self._channel.stop()
        for tier in self.tiers:
            # One tier failing to close must not leak the others.
            with contextlib.suppress(CacheError):
                await tier.close()
