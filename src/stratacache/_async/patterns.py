"""Caching patterns built on the facade: single-flight and stampede control for get-or-set.

Two layers keep a missing key from being loaded by every caller at once. The first is
in-process: :class:`AsyncFlightGroup` lets one task (or thread) per key load while the
others wait for its result. The second, with a :class:`~stratacache.StampedePolicy`, is
across processes: the leader of each process competes for a distributed lease
(:class:`~stratacache._async.lease.AsyncLease`); one wins and loads, the others poll the
key with jittered backoff until the winner's value appears. The pure decisions (freshness,
XFetch, jitter, backoff) are in :mod:`stratacache.core.stampede`.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .._concurrency import AsyncEvent
from .._exceptions import CacheError, CacheTimeout, InvalidArgument
from .._types import MISSING, Missing
from ..core.envelope import Envelope, TagVersions, check_tags
from ..core.stampede import Freshness, StampedePolicy, backoff_delay, classify, jittered_ttl, storage_ttl
from .lease import AsyncLease

if TYPE_CHECKING:
    from .cache import AsyncCache

__all__ = ["AsyncFlightGroup", "get_or_set_with_policy"]

_IS_ASYNC = True
_ASYNC_HINT = "use AsyncCache for async factories"  # unasync: keep


# The flights this thread (sync) or task (async) leads, as (group id, key): a call that waits
# for one of them would wait for itself. A context variable, so that each task and each
# thread has its own, and a task the leader starts inherits the leader's (waiting on it
# would deadlock just the same).
# run()'s "busy" marker: wait for the running call instead of returning.
_WAIT = object()

_leading: ContextVar[frozenset[tuple[int, str]]] = ContextVar("stratacache_leading", default=frozenset())


class _Call:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = AsyncEvent()
        self.result: Any = None
        self.error: BaseException | None = None


class AsyncFlightGroup:
    """Runs at most one call per key at a time; concurrent callers share its outcome.

    The first caller for a key (the leader) runs the function; callers arriving while it
    runs wait and receive the same result, or the same exception. If the leader is
    cancelled (or interrupted) the waiters do not inherit that: they retry, and one of them
    becomes the new leader.

    A leader's function that runs the same key again (a ``get_or_set`` factory calling
    ``get_or_set`` for its own key) would wait for itself forever: it raises
    :class:`~stratacache.InvalidArgument` instead.
    """

    def __init__(self) -> None:
        self._calls: dict[str, _Call] = {}
        # A thread lock, not an asyncio one: the critical sections never await, and the
        # same group may be reached from several threads in the sync flavour.
        self._lock = threading.Lock()

    async def run(self, key: str, fn: Callable[[], Any], timeout: float | None = None) -> Any:
        """Run ``fn`` once for all concurrent callers with the same ``key``.

        A caller that waits for another's call gives up after ``timeout`` seconds (None:
        no limit) with :class:`~stratacache.CacheTimeout`; the call itself runs on.
        """
        return await self._run(key, fn, _WAIT, timeout)

    async def run_or(self, key: str, fn: Callable[[], Any], busy: Any) -> Any:
        """Run ``fn`` if no call for ``key`` is running here; otherwise return ``busy`` at once.

        For refreshes that must not make anyone wait (stale-while-revalidate, XFetch):
        the caller that finds a refresh already under way serves what it has.
        """
        return await self._run(key, fn, busy)

    async def _run(self, key: str, fn: Callable[[], Any], busy: Any, timeout: float | None = None) -> Any:
        while True:
            with self._lock:
                call = self._calls.get(key)
                leader = call is None
                if call is None:
                    call = self._calls[key] = _Call()
            if leader:
                break
            if busy is not _WAIT:
                return busy
            if (id(self), key) in _leading.get():
                raise InvalidArgument(
                    f"get_or_set for key {key!r} was called again by its own factory (or a task it "
                    "started): it would wait for itself; compute the value without re-entering"
                )
            if not await call.done.wait(timeout):
                raise CacheTimeout(
                    f"get_or_set for key {key!r}: waited {timeout:g} s (wait_timeout) for the call "
                    "loading it in this process; raise wait_timeout above the slowest load"
                )
            if call.error is None:
                return call.result
            if isinstance(call.error, Exception):
                raise call.error
            # The leader was cancelled or interrupted: try again, perhaps as leader.
        token = _leading.set(_leading.get() | {(id(self), key)})
        try:
            call.result = await fn()
            return call.result
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            _leading.reset(token)
            with self._lock:
                del self._calls[key]
            call.done.set()

    def __len__(self) -> int:
        return len(self._calls)


# --------------------------------------------------------------- stampede control


async def get_or_set_with_policy(
    cache: AsyncCache,
    key: str,
    factory: Callable[[], Any],
    ttl: float | None,
    policy: StampedePolicy,
    *,
    tags: Iterable[str] | TagVersions | None = None,
) -> Any:
    """``cache.get_or_set`` under ``policy`` (see :class:`~stratacache.StampedePolicy`).

    A fresh value is served. A value drawn for an early refresh (XFetch) or stale inside
    stale-while-revalidate is refreshed by one caller, which returns the new value, while
    every caller that finds the refresh taken serves the stored one without waiting. A
    miss (or a value only good for stale-if-error) is loaded under the in-process flight
    and then the distributed lease. ``tags`` are stored with the value, their versions
    read before the factory runs (no resurrection across an invalidation).
    """
    if tags is not None and type(tags) is not TagVersions:
        tags = check_tags(tags)  # bad tags fail on hits too; a generator is read once
    envelope = await cache._read_envelope(key)
    fill = _Fill(cache, key, factory, ttl, policy, tags=tags)
    stale: Envelope | Missing = MISSING
    if envelope is not MISSING:
        u = 1.0 - policy.random().random()  # in (0, 1]: ln(u) is finite
        state = classify(policy.clock(), envelope.fresh_until, envelope.delta, policy, u)
        if state is Freshness.FRESH:
            return envelope.value
        if state is Freshness.EARLY or state is Freshness.REVALIDATE:

            async def refresh() -> Any:
                return await fill.refresh(envelope)

            return await cache._flights.run_or(cache._key(key), refresh, envelope.value)
        if state is Freshness.STALE_IF_ERROR:
            stale = envelope

    async def load() -> Any:
        return await fill.load(stale)

    try:
        # Waiting for this process's own loader is bounded like waiting for another's lease.
        return await cache._flights.run(cache._key(key), load, policy.wait_timeout)
    except CacheTimeout:
        if stale is not MISSING and _within_stale_if_error(stale, policy):
            return stale.value
        raise


def _within_stale_if_error(stale: Envelope, policy: StampedePolicy) -> bool:
    if stale.fresh_until is None:
        return False
    return policy.clock() - stale.fresh_until < policy.stale_if_error


class _Fill:
    """One caller's load or refresh of one key under a policy."""

    __slots__ = ("cache", "factory", "key", "policy", "tags", "ttl")

    def __init__(
        self,
        cache: AsyncCache,
        key: str,
        factory: Callable[[], Any],
        ttl: float | None,
        policy: StampedePolicy,
        *,
        tags: Iterable[str] | TagVersions | None,
    ) -> None:
        self.cache = cache
        self.tags = tags
        self.key = key
        self.factory = factory
        self.ttl = ttl
        self.policy = policy

    async def _fresh(self) -> Envelope | Missing:
        """The stored value if it is fresh now (no XFetch draw: u = 1 never refreshes early)."""
        envelope = await self.cache._read_envelope(self.key)
        if envelope is MISSING:
            return MISSING
        state = classify(self.policy.clock(), envelope.fresh_until, envelope.delta, self.policy, 1.0)
        return envelope if state is Freshness.FRESH else MISSING

    async def refresh(self, envelope: Envelope) -> Any:
        """Reload a value that is still servable; on any obstacle serve the stored one."""
        policy = self.policy
        if not policy.lease:
            return await self.call_and_store(envelope, serve_on_error=True)
        lease = AsyncLease(self.cache, self.key, policy.lease_ttl)
        try:
            acquired = await lease.acquire()
        except CacheError:
            # A refresh is optional work: a backend error taking the lease (counted and
            # reported by the cache's hooks) must not fail a read that has a value to serve.
            return envelope.value
        if not acquired:
            return envelope.value  # another process is refreshing it
        try:
            again = await self._fresh()
            if again is not MISSING and again.created != envelope.created:
                return again.value  # refreshed by another process between our read and our lease
            return await self.call_and_store(envelope, serve_on_error=True)
        finally:
            await lease.release()

    async def load(self, stale: Envelope | Missing) -> Any:
        """Load a missing key: one caller across processes calls the factory, the rest wait."""
        policy = self.policy
        # Another flight, or another process, may have stored the value since our read.
        current = await self._fresh()
        if current is not MISSING:
            return current.value
        if not policy.lease:
            return await self.call_and_store(stale, serve_on_error=False)
        lease = AsyncLease(self.cache, self.key, policy.lease_ttl)
        rng = policy.random()
        # The wait is measured in real time whatever the policy's clock: it is how long a
        # caller blocks, not a freshness question.
        deadline = time.monotonic() + policy.wait_timeout
        attempt = 0
        waited = False
        while True:
            if await lease.acquire():
                try:
                    current = await self._fresh()
                    if current is not MISSING:
                        return current.value  # the previous holder stored it just before releasing
                    if waited and stale is not MISSING and _within_stale_if_error(stale, policy):
                        # The holder we waited for stored nothing: its load failed (or it
                        # died), and it served the stale value. So do we, rather than each
                        # waiter calling a failing source in turn.
                        return stale.value
                    return await self.call_and_store(stale, serve_on_error=False)
                finally:
                    await lease.release()
            waited = True
            current = await self._fresh()
            if current is not MISSING:
                return current.value
            if time.monotonic() >= deadline:
                if stale is not MISSING and _within_stale_if_error(stale, policy):
                    return stale.value
                raise CacheTimeout(
                    f"get_or_set for key {self.key!r}: waited {policy.wait_timeout:g} s (wait_timeout) "
                    f"for the holder of lease {lease.key!r} to store a value; raise wait_timeout above "
                    "the slowest load (and above lease_ttl to outlast a holder that died)"
                )
            pause = backoff_delay(attempt, policy.backoff_initial, policy.backoff_max, rng.random())
            await asyncio.sleep(pause)
            attempt += 1

    async def call_and_store(self, previous: Envelope | Missing, *, serve_on_error: bool) -> Any:
        """Call the factory and store its result with freshness metadata.

        When it raises: a refresh of a still-servable value (``serve_on_error``) serves the
        previous value; a load inside stale-if-error serves the stale one; anything else
        re-raises (nothing is stored, so errors are never cached).
        """
        policy = self.policy
        clock = policy.clock
        # Tag versions are read before the factory runs: an invalidation from here on makes
        # the value computed below read as a miss.
        seen = await self.cache._tag_versions(self.tags)
        started = clock()
        awaitable = False
        try:
            result = self.factory()
            awaitable = inspect.isawaitable(result)
            if awaitable and _IS_ASYNC:
                result = await result
        except Exception:
            if previous is not MISSING and (serve_on_error or _within_stale_if_error(previous, policy)):
                return previous.value
            raise
        if awaitable and not _IS_ASYNC:
            # A usage error, never served around as if the loader had failed.
            close = getattr(result, "close", None)
            if close is not None:
                close()  # no "never awaited" warning on top of the error
            raise InvalidArgument(f"factory for key {self.key!r} returned an awaitable; {_ASYNC_HINT}")
        finished = clock()
        seconds = jittered_ttl(self.ttl, policy.ttl_jitter, policy.random().random())
        if seconds is None or not policy.needs_envelope:
            # No freshness metadata: a bare envelope is stored as the plain value.
            envelope = Envelope(result, seen)
            await self.cache._write_envelope(self.key, envelope, seconds)
        else:
            envelope = Envelope(
                result,
                seen,
                fresh_until=finished + seconds,
                delta=max(finished - started, 0.0),
                created=finished,
            )
            await self.cache._write_envelope(self.key, envelope, storage_ttl(seconds, policy))
        return result
