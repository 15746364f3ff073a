"""``AsyncRateLimiter``: fixed window, sliding window and token bucket over any cache.

This file is the source of truth; ``_sync/ratelimit.py`` (``RateLimiter``) is generated from
it. The arithmetic is in :mod:`stratacache.core.ratelimit`; this module makes each step
atomic on the cache's backend, choosing the way once per limiter:

* **Scripts** where the storage runs Lua (Redis standalone, Cluster, Sentinel, and
  ``stratacache serve``; a sharded cache whose every node does; a layered cache whose
  lowest, shared tier does): one ``EVALSHA`` per hit, read-step-write on the server.
* **Counters** (``incr``) for the fixed and sliding windows elsewhere (memory, Memcached,
  file, sharded nodes without scripts): a hit adds its cost, reads the total, and takes the
  cost back when the total is over the limit. Concurrent hits can only make each other
  look over the limit, never under it, so the limiter may refuse a hit near the limit
  under contention but never admits more than ``limit``.
* **Compare-and-set** (``get_item`` + ``set(if_version=)``) for the token bucket there,
  retried on conflict; a backend without compare-and-set raises UnsupportedOperation.

The null backend forgets every write, so it cannot count: ``hit`` raises
UnsupportedOperation rather than allow every hit without saying so.

Time is the limiter's ``clock`` (``time.time`` by default) read by the client and sent to
the server, so every process's clock should be NTP-synchronised; tests pass a FakeClock.
"""

from __future__ import annotations

import asyncio  # unasync: remove
import functools
import inspect
import math
import random
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from .._exceptions import (
    CacheTimeout,
    InvalidArgument,
    RateLimitExceeded,
    UnsupportedOperation,
)
from .._types import check_key
from ..core.ratelimit import (
    LUA_SCRIPTS,
    RateLimitDecision,
    RateSpec,
    check_cost,
    fixed_window,
    make_spec,
    parse_state,
    sliding_window,
    token_bucket,
)
from .backends.base import AsyncBackend
from .cache import AsyncCache
from .lease import stores_bytes_only

__all__ = ["AsyncRateLimiter"]

_IS_ASYNC = True
_P = ParamSpec("_P")
_R = TypeVar("_R")

# Compare-and-set conflicts tolerated before giving up: each one means another process
# took a token meanwhile, so even heavy contention settles in a few rounds.
_CAS_ATTEMPTS = 64
_TAGS = {"fixed_window": "fw", "sliding_window": "sw", "token_bucket": "tb"}


def _script_target(backend: AsyncBackend) -> Any:
    """The backend that runs the limiter's scripts, or None (then counters or CAS)."""
    if getattr(backend, "can_run_scripts", False):
        return backend
    tiers = getattr(backend, "tiers", None)
    if isinstance(tiers, tuple) and tiers:
        # A layered cache: the count must live in the shared lowest tier, never in a
        # process's own top tier.
        return _script_target(tiers[-1])
    return None


class AsyncRateLimiter:
    """At most ``limit`` hits per ``period`` (seconds or timedelta) per key, on ``cache``.

    ``algorithm``: ``"fixed_window"`` (a counter per aligned window: cheap, allows up to
    twice the limit across a window boundary), ``"sliding_window"`` (the current window's
    count plus the previous one's weighted by their overlap with the last period: smooth,
    two counters) or ``"token_bucket"`` (``limit`` tokens refilled evenly over ``period``:
    bursts up to ``limit``, then a steady rate). State lives under ``<prefix>:<alg>:<key>``
    in the cache's namespace. ``clock`` returns unix seconds (tests pass a FakeClock).
    The validated numbers are in ``spec`` (``spec.limit``, ``spec.period_ms``); ``limit``
    is the decorator.

    Invalid parameters raise InvalidArgument naming the parameter.
    """

    def __init__(
        self,
        cache: AsyncCache,
        limit: int,
        period: float | timedelta,
        *,
        algorithm: str = "fixed_window",
        prefix: str = "ratelimit",
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(cache, AsyncCache):
            raise InvalidArgument(
                f"parameter 'cache' must be a cache of this flavour (AsyncCache), got {type(cache).__name__}"
            )
        self.spec: RateSpec = make_spec(limit, period, algorithm)
        if not isinstance(prefix, str) or not prefix:
            raise InvalidArgument(f"parameter 'prefix' must be a non-empty str, got {prefix!r}")
        if clock is not None and not callable(clock):
            raise InvalidArgument(f"parameter 'clock' must be callable, got {clock!r}")
        self.cache = cache
        self.prefix = prefix
        self._clock: Callable[[], float] = clock or time.time
        # A serializer that stores only bytes (raw) cannot hold the bucket as a list.
        self._bytes_state = stores_bytes_only(cache)

    @property
    def period(self) -> float:
        """The period in seconds."""
        return self.spec.period_ms / 1000

    @property
    def algorithm(self) -> str:
        """``fixed_window``, ``sliding_window`` or ``token_bucket``."""
        return self.spec.algorithm

    def __repr__(self) -> str:
        rate = f"{self.spec.limit}/{self.period:g}s"
        return f"<{type(self).__name__} {rate} {self.algorithm} on {self.cache!r}>"

    # ---------------------------------------------------------------- plumbing

    def _state_key(self, key: str) -> str:
        return f"{self.prefix}:{_TAGS[self.spec.algorithm]}:{check_key(key)}"

    def _now(self) -> int:
        now = self._clock()
        if not isinstance(now, (int, float)) or not math.isfinite(now):
            raise InvalidArgument(f"the limiter's clock returned {now!r}, not a finite number of seconds")
        return math.floor(now * 1000)

    def _backend(self) -> AsyncBackend:
        backend = self.cache.backend
        if not backend.capabilities.retains_data:
            raise UnsupportedOperation(
                backend.describe(),
                "RateLimiter.hit",
                "it forgets every write, so it cannot count hits (every hit would be allowed)",
            )
        return backend

    # ---------------------------------------------------------------- hits

    async def hit(self, key: str, cost: int = 1) -> RateLimitDecision:
        """Count a hit of ``cost`` (1 to ``limit``) against ``key``; the decision.

        A refused hit is not counted. The decision says how many hits remain, when the
        limit resets, and (when refused) how long to wait.
        """
        cost = check_cost(self.spec, cost)
        state_key = self._state_key(key)
        backend = self._backend()
        now = self._now()
        target = _script_target(backend)
        if target is not None:
            return await self._scripted(target, state_key, now, cost)
        if self.spec.algorithm == "fixed_window":
            return await self._fixed_counter(state_key, now, cost)
        if self.spec.algorithm == "sliding_window":
            return await self._sliding_counters(state_key, now, cost)
        return await self._bucket_cas(state_key, now, cost)

    async def reset(self, key: str) -> None:
        """Forget every hit counted against ``key``."""
        state_key = self._state_key(key)
        self._backend()
        window = self._now() // self.spec.period_ms
        # Scripted and CAS state is one key; counters are per window (this and the last).
        await self.cache.delete_many([state_key, f"{state_key}:{window}", f"{state_key}:{window - 1}"])

    async def _scripted(self, target: Any, state_key: str, now: int, cost: int) -> RateLimitDecision:
        spec = self.spec
        script = LUA_SCRIPTS[spec.algorithm]
        raw_key = self.cache._key(state_key)
        reply = await target.run_script(script, [raw_key], [now, spec.limit, spec.period_ms, cost])
        allowed, remaining, reset_ms, retry_ms = (int(part) for part in reply)
        return RateLimitDecision(bool(allowed), remaining, reset_ms / 1000, retry_ms / 1000)

    async def _fixed_counter(self, state_key: str, now: int, cost: int) -> RateLimitDecision:
        spec = self.spec
        window = now // spec.period_ms
        counter = f"{state_key}:{window}"
        total = await self.cache.incr(counter, cost)
        if total == cost:
            # The counter's creator gives it its life; it is named for its window, so a
            # lost expiry leaves an unused key, never a stuck limit.
            await self.cache.expire(counter, ((window + 1) * spec.period_ms - now) / 1000)
        outcome = fixed_window(spec, (window, total - cost), now, cost)
        if not outcome.decision.allowed:
            await self.cache.decr(counter, cost)
        return outcome.decision

    async def _sliding_counters(self, state_key: str, now: int, cost: int) -> RateLimitDecision:
        spec = self.spec
        window = now // spec.period_ms
        counter = f"{state_key}:{window}"
        previous = await self.cache.get(f"{state_key}:{window - 1}", 0)
        if type(previous) is not int:
            previous = 0
        total = await self.cache.incr(counter, cost)
        if total == cost:
            # It counts while it is the current or the previous window: two periods at most.
            await self.cache.expire(counter, ((window + 2) * spec.period_ms - now) / 1000)
        outcome = sliding_window(spec, (window, total - cost, previous), now, cost)
        if not outcome.decision.allowed:
            await self.cache.decr(counter, cost)
        return outcome.decision

    async def _bucket_cas(self, state_key: str, now: int, cost: int) -> RateLimitDecision:
        spec = self.spec
        for attempt in range(_CAS_ATTEMPTS):
            try:
                item = await self.cache.get_item(state_key)
            except UnsupportedOperation as exc:
                operation = "RateLimiter(algorithm='token_bucket').hit"
                reason = f"it needs compare-and-set: {exc.reason}"
                raise UnsupportedOperation(exc.backend, operation, reason) from exc
            state = None if item is None else parse_state(item.value, 2)
            outcome = token_bucket(spec, state, now, cost)
            if outcome.state is None:
                return outcome.decision
            ttl = outcome.ttl_ms / 1000
            value: list[int] | bytes = list(outcome.state)
            if self._bytes_state:
                # The Lua scripts' format ("units at"), which parse_state reads too.
                value = " ".join(str(n) for n in outcome.state).encode("ascii")
            if item is None:
                stored = await self.cache.add(state_key, value, ttl)
            else:
                stored = await self.cache.set(state_key, value, ttl, if_version=item.version)
            if stored:
                return outcome.decision
            # Another hit changed the bucket first: read it again, at a fresh time, after
            # a short jittered pause once conflicts repeat.
            if attempt >= 2:
                await asyncio.sleep(random.random() * 0.001 * min(attempt, 10))
            now = max(now, self._now())
        raise CacheTimeout(
            f"rate limiter on key {state_key!r}: {_CAS_ATTEMPTS} compare-and-set conflicts in a row "
            f"({self.cache.backend.describe()})"
        )

    # ---------------------------------------------------------------- decorator

    def limit(
        self, key: str | Callable[..., str], *, cost: int = 1
    ) -> Callable[[Callable[_P, Awaitable[_R]]], Callable[_P, Awaitable[_R]]]:
        """Decorate a function so each call is a hit; a refused call raises RateLimitExceeded.

        ``key`` is a fixed key or a function of the call's arguments
        (``key=lambda user_id, **_: f"user:{user_id}"``).
        """
        check_cost(self.spec, cost)
        if not isinstance(key, str) and not callable(key):
            raise InvalidArgument(f"parameter 'key' must be a str or a callable, got {key!r}")

        def decorate(fn: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
            if inspect.iscoroutinefunction(fn) is not _IS_ASYNC:
                kind = "async def" if _IS_ASYNC else "def"
                raise InvalidArgument(
                    f"{type(self).__name__}.limit decorates {kind} functions; "
                    f"{getattr(fn, '__qualname__', fn)!r} is not one"
                )

            @functools.wraps(fn)
            async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
                name = key(*args, **kwargs) if callable(key) else key
                decision = await self.hit(name, cost)
                if not decision.allowed:
                    raise RateLimitExceeded(name, decision.retry_after, decision)
                return await fn(*args, **kwargs)

            return wrapper

        return decorate
