"""Read-through, write-through, write-behind and refresh-ahead: a cache in front of a data source.

Each strategy wraps one cache (any backend) and one data source (``sources.py``). They are
written once here, async; ``_sync/strategies.py`` is generated from this file, and the only
hand-written difference (tasks vs threads) lives in ``_drivers/workers_async.py`` and its
sync twin. docs/patterns/strategies.md says which to pick and what each guarantees.
"""

from __future__ import annotations

import asyncio  # unasync: remove
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import FrameType, TracebackType
from typing import Any, Literal, Self

from .._drivers.workers_async import Handle, Wakeup, alive, at_exit, current_loop, detach, finish, spawn
from .._exceptions import (
    CacheClosed,
    CacheError,
    CacheTimeout,
    ConfigurationError,
    InvalidArgument,
    SourceError,
    WriteQueueFull,
)
from .._types import MISSING, UNSET, check_key, normalize_ttl
from ..core.write_queue import DeadLetter, Operation, PendingWrite, WriteQueue
from . import sources as _src
from .cache import AsyncCache

__all__ = ["AsyncReadThrough", "AsyncRefreshAhead", "AsyncWriteBehind", "AsyncWriteThrough"]

logger = logging.getLogger("stratacache.strategies")

# Read-through loads share the cache's single-flight group under their own key space, so a
# loader for key "k" never hands its result (perhaps MISSING) to a get_or_set of "k".
_FLIGHT = "\x00read-through\x00"


def _positive_int(value: object, name: str) -> int:
    if type(value) is not int or value < 1:
        raise InvalidArgument(f"{name} must be a positive int, got {value!r}")
    return value


def _non_negative(value: object, name: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise InvalidArgument(f"{name} must be a non-negative number of seconds, got {value!r}")
    return float(value)


class AsyncReadThrough:
    """A cache that loads misses from a data source: ``await rt.get(key)``.

    A miss calls ``source.load(key)`` once per key however many callers miss at the same
    time in this process (the cache's single-flight group), stores the value with ``ttl``
    and returns it. A key the source does not have returns ``default``; with
    ``negative_ttl`` that answer is cached too (under ``negative_prefix + key``) so the
    source is not asked again for ``negative_ttl`` seconds. ``get_many`` loads all the
    misses of one call with a single ``load_many``.

    A source failure raises :class:`~stratacache.SourceError` naming the key and the
    source, with the source's exception chained; nothing is cached for that key.
    """

    def __init__(
        self,
        cache: AsyncCache,
        source: Any,
        *,
        ttl: Any = UNSET,
        negative_ttl: Any = None,
        negative_prefix: str = "__absent__:",
    ) -> None:
        if not isinstance(cache, AsyncCache):
            raise InvalidArgument(
                f"cache must be a cache of this flavour (AsyncCache), not {type(cache).__name__}"
            )
        _src.check_source(source, ("load",))
        self.cache = cache
        self.source = source
        # UNSET stays UNSET so that writes use the cache's default_ttl.
        self.ttl: float | None | Any = ttl if ttl is UNSET else normalize_ttl(ttl, name="ttl")
        self.negative_ttl: float | None = (
            None if negative_ttl is None else normalize_ttl(negative_ttl, name="negative_ttl")
        )
        if self.negative_ttl is None and negative_ttl is not None:  # pragma: no cover - normalize refuses
            raise InvalidArgument("negative_ttl must be a positive number of seconds")
        if not isinstance(negative_prefix, str) or not negative_prefix:
            raise InvalidArgument(f"negative_prefix must be a non-empty str, got {negative_prefix!r}")
        self.negative_prefix = negative_prefix
        self.loads = 0
        """How many keys were asked of the source (by load or load_many)."""

    def _negative_key(self, key: str) -> str:
        return self.negative_prefix + key

    async def get(self, key: str, default: Any = None) -> Any:
        """The cached value, else the source's (then cached), else ``default``."""
        value = await self.cache.get(key, MISSING)
        if value is MISSING:
            value = await self._load_through(key)
        return default if value is MISSING else value

    async def _load_through(self, key: str) -> Any:
        flight = _FLIGHT + self.cache._key(key)
        return await self.cache._flights.run(flight, lambda: self._fill(key))

    async def _fill(self, key: str) -> Any:
        # Another caller (or process) may have filled the key since our miss.
        if self.negative_ttl is None:
            value = await self.cache.get(key, MISSING)
            if value is not MISSING:
                return value
        else:
            absent = self._negative_key(key)
            found = await self.cache.get_many([key, absent])
            if key in found:
                return found[key]
            if absent in found:
                return MISSING
        self.loads += 1
        value = await _src.load(self.source, key)
        if value is not MISSING:
            await self.cache.set(key, value, ttl=self.ttl)
        elif self.negative_ttl is not None:
            await self.cache.set(self._negative_key(key), 1, ttl=self.negative_ttl)
        return value

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The values of ``keys`` that the cache or the source has; misses loaded in one batch."""
        if isinstance(keys, str):
            raise InvalidArgument("keys must be an iterable of keys, not a single str")
        wanted = list(dict.fromkeys(check_key(key) for key in keys))
        found = await self.cache.get_many(wanted)
        missing = [key for key in wanted if key not in found]
        if missing and self.negative_ttl is not None:
            known_absent = await self.cache.get_many([self._negative_key(key) for key in missing])
            missing = [key for key in missing if self._negative_key(key) not in known_absent]
        if not missing:
            return found
        self.loads += len(missing)
        loaded = await _src.load_many(self.source, missing)
        if loaded:
            await self.cache.set_many(loaded, ttl=self.ttl)
            found.update(loaded)
        if self.negative_ttl is not None:
            absent = {self._negative_key(key): 1 for key in missing if key not in loaded}
            if absent:
                await self.cache.set_many(absent, ttl=self.negative_ttl)
        return found

    async def invalidate(self, key: str) -> None:
        """Forget ``key`` in the cache (and its cached "not found"): the next get loads it."""
        if self.negative_ttl is None:
            await self.cache.delete(key)
        else:
            await self.cache.delete_many([key, self._negative_key(key)])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.cache!r} source={_src.describe_source(self.source)}>"


class AsyncWriteThrough(AsyncReadThrough):
    """Read-through plus writes that go to the source first, then to the cache.

    ``set`` stores into the source and, only once that succeeded, into the cache; a source
    failure raises :class:`~stratacache.SourceError` (naming key and source, the source's
    exception chained) and leaves the cache untouched. ``delete`` removes from the source,
    then from the cache. If the cache write fails after the source accepted the value, the
    cache's error is raised; the source holds the new value, and the stale cache entry is
    deleted when the cache allows it.
    """

    def __init__(
        self,
        cache: AsyncCache,
        source: Any,
        *,
        ttl: Any = UNSET,
        negative_ttl: Any = None,
        negative_prefix: str = "__absent__:",
    ) -> None:
        super().__init__(cache, source, ttl=ttl, negative_ttl=negative_ttl, negative_prefix=negative_prefix)
        _src.check_source(source, ("store", "delete"))

    async def set(self, key: str, value: Any) -> None:
        """Store in the source, then in the cache."""
        key = check_key(key)
        await _src.call(self.source, "store", key, key, value)
        try:
            await self.cache.set(key, value, ttl=self.ttl)
        except CacheError:
            await self._drop_stale(key)
            raise
        if self.negative_ttl is not None:
            await self.cache.delete(self._negative_key(key))

    async def delete(self, key: str) -> None:
        """Delete from the source, then from the cache."""
        key = check_key(key)
        await _src.call(self.source, "delete", key, key)
        await self.invalidate(key)

    async def _drop_stale(self, key: str) -> None:
        try:
            await self.cache.delete(key)
        except CacheError:
            logger.warning("key %r: the source has a new value but the cache could not be updated", key)


class AsyncWriteBehind(AsyncReadThrough):
    """Read-through plus writes acknowledged once cached and queued, written to the source later.

    ``set``/``delete`` update the cache, queue the write and return. A background worker
    (a task here, a thread in the sync flavour) writes the queue to the source:

    * **bounded**: at most ``max_queue`` keys wait; when full, ``on_full="block"`` waits
      for room (up to ``put_timeout`` seconds, None = forever) and ``on_full="raise"``
      raises :class:`~stratacache.WriteQueueFull` at once. A refused write is not
      acknowledged and does not stay in the cache.
    * **batched**: the worker writes when ``batch_size`` keys wait or the oldest has waited
      ``flush_interval`` seconds, with ``source.store_many`` when the source has it.
    * **coalesced**: one entry per key; a write to a key still waiting replaces it, so only
      the latest value is written.
    * **retried**: a failed write is retried ``max_retries`` times with exponential backoff
      (``retry_delay`` doubling up to ``retry_max_delay``, with jitter); then it goes to
      ``dead_letter(DeadLetter)`` (logged at ERROR when no callback is given).
    * **flushed**: ``flush()`` waits for the queue to empty; ``close()`` flushes and stops
      the worker, and after ``close_timeout`` seconds hands whatever is still unwritten to
      the dead-letter callback. With ``handle_signals=True`` (main thread only) a SIGTERM
      closes it the same way and then passes the signal on to the handler that was there
      before (by default: the process ends).

    A sync writer that nobody closed is closed at interpreter exit (atexit); an async one
    must be closed (or used as ``async with``) before its event loop ends.

    Guarantee: every acknowledged write reaches the source or the dead-letter callback
    (at least once), unless the process is killed without a chance to flush (SIGKILL).
    """

    def __init__(
        self,
        cache: AsyncCache,
        source: Any,
        *,
        ttl: Any = UNSET,
        negative_ttl: Any = None,
        negative_prefix: str = "__absent__:",
        max_queue: int = 10_000,
        on_full: Literal["block", "raise"] = "block",
        put_timeout: float | None = None,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_retries: int = 5,
        retry_delay: float = 0.1,
        retry_max_delay: float = 10.0,
        dead_letter: Callable[[DeadLetter], Any] | None = None,
        close_timeout: float = 30.0,
        handle_signals: bool | Iterable[int] = False,
    ) -> None:
        super().__init__(cache, source, ttl=ttl, negative_ttl=negative_ttl, negative_prefix=negative_prefix)
        _src.check_source(source, ("store", "delete"))
        if on_full not in ("block", "raise"):
            raise InvalidArgument(f'on_full must be "block" or "raise", got {on_full!r}')
        if dead_letter is not None and not callable(dead_letter):
            raise InvalidArgument(f"dead_letter must be callable, got {type(dead_letter).__name__}")
        if type(max_retries) is not int or max_retries < 0:
            raise InvalidArgument(f"max_retries must be a non-negative int, got {max_retries!r}")
        self.max_queue = _positive_int(max_queue, "max_queue")
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.on_full = on_full
        self.put_timeout = _non_negative(put_timeout, "put_timeout", allow_none=True)
        self.flush_interval = _non_negative(flush_interval, "flush_interval") or 0.0
        self.max_retries = max_retries
        self.retry_delay = _non_negative(retry_delay, "retry_delay") or 0.0
        self.retry_max_delay = _non_negative(retry_max_delay, "retry_max_delay") or 0.0
        self.close_timeout = _non_negative(close_timeout, "close_timeout") or 0.0
        self.dead_letter = dead_letter
        self._queue = WriteQueue(self.max_queue)
        self._inflight: list[PendingWrite] = []
        self._lock = threading.Lock()
        self._work = Wakeup()  # the worker waits on it: new writes, flush, close
        self._space = Wakeup()  # producers and flush() wait on it: room freed, batch done
        self._worker: Handle | None = None
        self._loop: Any = None
        self._state: Literal["open", "closing", "closed"] = "open"
        self._flushing = 0
        self._abandoned = False
        self._previous_handlers: dict[int, Any] = {}
        self._signal_state: Literal["idle", "flushing", "flushed"] = "idle"
        self.written = 0
        """Writes the source accepted."""
        self.retries = 0
        """Batches tried again after a failure."""
        self.dead_lettered = 0
        """Writes handed to the dead-letter callback."""
        if handle_signals:
            signals = (signal.SIGTERM,) if handle_signals is True else tuple(handle_signals)
            self.install_signal_handlers(signals)

    # -------------------------------------------------------------------- readers

    def _pending(self, key: str) -> Any:
        """The value of an unwritten write of ``key`` (MISSING for a delete); UNSET if none."""
        with self._lock:
            write = self._queue.get(key)
            if write is None:
                write = next((w for w in reversed(self._inflight) if w.key == key), None)
        if write is None:
            return UNSET
        return write.value if write.operation == "store" else MISSING

    async def _fill(self, key: str) -> Any:
        # A cache miss on a key whose write has not reached the source yet (the entry
        # expired or was evicted meanwhile): the queue has the latest value, the source not.
        pending = self._pending(key)
        if pending is not UNSET:
            return pending
        return await super()._fill(key)

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """As ReadThrough.get_many; keys with unwritten writes answer from the queue on a miss."""
        if isinstance(keys, str):
            raise InvalidArgument("keys must be an iterable of keys, not a single str")
        wanted = list(dict.fromkeys(check_key(key) for key in keys))
        found = await self.cache.get_many(wanted)
        rest = []
        for key in wanted:
            if key in found:
                continue
            pending = self._pending(key)
            if pending is UNSET:
                rest.append(key)
            elif pending is not MISSING:
                found[key] = pending
        if rest:
            found.update(await super().get_many(rest))
        return found

    # ------------------------------------------------------------------ producers

    @property
    def pending(self) -> int:
        """Writes acknowledged but not yet settled (queued or being written)."""
        with self._lock:
            return len(self._queue) + len(self._inflight)

    async def set(self, key: str, value: Any) -> None:
        """Cache ``value`` and queue its write to the source; returns once acknowledged."""
        key = check_key(key)
        self._precheck(key)
        await self.cache.set(key, value, ttl=self.ttl)
        await self._put_or_undo(key, "store", value)
        if self.negative_ttl is not None:
            await self.cache.delete(self._negative_key(key))

    async def delete(self, key: str) -> None:
        """Remove ``key`` from the cache and queue its deletion from the source."""
        key = check_key(key)
        self._precheck(key)
        await self.invalidate(key)
        await self._put_or_undo(key, "delete", None)

    async def set_many(self, mapping: Mapping[str, Any]) -> None:
        """``set`` each item (each one is acknowledged on its own)."""
        if not isinstance(mapping, Mapping):
            raise InvalidArgument(f"set_many takes a mapping of key -> value, not {type(mapping).__name__}")
        for key, value in mapping.items():
            await self.set(key, value)

    def _precheck(self, key: str) -> None:
        # Refuse early what _put would refuse, before the cache is touched.
        with self._lock:
            self._check_open(key)
            if self.on_full == "raise" and not self._queue.has_room_for(key):
                raise self._full(key)

    def _check_open(self, key: str) -> None:
        if self._state != "open":
            source = _src.describe_source(self.source)
            raise CacheClosed(f"write-behind to {source} is closed; key {key!r} not written")

    def _full(self, key: str, waited: float | None = None) -> WriteQueueFull:
        after = "" if waited is None else f" after waiting {waited:g}s"
        return WriteQueueFull(
            f"write-behind queue full ({self.max_queue} keys){after}; key {key!r} not written"
        )

    async def _put_or_undo(self, key: str, operation: Operation, value: Any) -> None:
        try:
            await self._put(key, operation, value)
        except CacheError:
            # Not acknowledged: the cache must not keep a value the source will never get.
            await self._forget_cached(key)
            raise

    async def _forget_cached(self, key: str) -> None:
        try:
            await self.cache.delete(key)
        except CacheError:
            logger.warning("key %r: a refused write-behind value could not be removed from the cache", key)

    async def _put(self, key: str, operation: Operation, value: Any) -> None:
        started = time.monotonic()
        while True:
            with self._lock:
                self._check_open(key)
                if self._queue.has_room_for(key):
                    was_empty = not self._queue
                    self._queue.put(key, operation, value, time.monotonic())
                    ready = was_empty or len(self._queue) >= self.batch_size
                    self._start_worker()
                    break
                if self.on_full == "raise":
                    raise self._full(key)
                generation = self._space.generation
            remaining = None
            if self.put_timeout is not None:
                remaining = self.put_timeout - (time.monotonic() - started)
                if remaining <= 0:
                    raise self._full(key, self.put_timeout)
            await self._space.wait(generation, remaining)
        if ready:
            self._work.notify()

    def _start_worker(self) -> None:
        # Called with the lock held, from inside a coroutine in the async flavour.
        if self._worker is None or not alive(self._worker):
            if self._worker is None:
                # A sync writer nobody closed is flushed at interpreter exit (the async
                # flavour registers nothing: no event loop is left to flush on by then).
                at_exit(self.close)
            self._loop = current_loop()
            self._worker = spawn(self._run, "stratacache-write-behind")

    # --------------------------------------------------------------------- worker

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch is None:
                return
            await self._write(batch)
            # Not in a ``finally``: a worker cancelled (or broken) mid-write leaves its batch
            # in ``_inflight``, where close() finds it and hands it to the dead-letter callback.
            with self._lock:
                self._inflight = []
            self._space.notify()

    async def _next_batch(self) -> list[PendingWrite] | None:
        while True:
            with self._lock:
                count = len(self._queue)
                oldest = self._queue.oldest()
                timeout: float | None = None
                if oldest is not None:
                    waited = time.monotonic() - oldest
                    if (
                        count >= self.batch_size
                        or self._state != "open"
                        or self._flushing
                        or waited >= self.flush_interval
                    ):
                        batch = self._queue.take(self.batch_size)
                        self._inflight = batch
                        break
                    timeout = self.flush_interval - waited
                elif self._state != "open":
                    return None
                generation = self._work.generation
            await self._work.wait(generation, timeout)
        self._space.notify()  # room for blocked producers
        return batch

    async def _write(self, batch: list[PendingWrite]) -> None:
        remaining = batch
        attempts = 0
        while remaining and not self._abandoned:
            attempts += 1
            remaining, error = await self._attempt(remaining)
            if not remaining or self._abandoned:
                return
            if attempts > self.max_retries:
                await self._send_to_dead_letter(remaining, attempts, error)
                return
            self.retries += 1
            # Exponential backoff with "equal jitter": half fixed, half random, so that many
            # writers retrying against one recovering source spread out.
            delay = min(self.retry_max_delay, self.retry_delay * 2 ** (attempts - 1))
            await asyncio.sleep(delay / 2 + random.uniform(0, delay / 2))

    async def _attempt(self, items: list[PendingWrite]) -> tuple[list[PendingWrite], BaseException]:
        failed: list[PendingWrite] = []
        error: BaseException = SourceError("write", [w.key for w in items], _src.describe_source(self.source))
        stores = [w for w in items if w.operation == "store"]
        deletes = [w for w in items if w.operation == "delete"]
        if len(stores) > 1 and callable(getattr(self.source, "store_many", None)):
            keys = [w.key for w in stores]
            try:
                await _src.call(self.source, "store_many", keys, {w.key: w.value for w in stores})
                self.written += len(stores)
            except SourceError as exc:
                failed.extend(stores)
                error = exc
        else:
            for write in stores:
                try:
                    await _src.call(self.source, "store", write.key, write.key, write.value)
                    self.written += 1
                except SourceError as exc:
                    failed.append(write)
                    error = exc
        for write in deletes:
            try:
                await _src.call(self.source, "delete", write.key, write.key)
                self.written += 1
            except SourceError as exc:
                failed.append(write)
                error = exc
        return failed, error

    async def _send_to_dead_letter(
        self, writes: list[PendingWrite], attempts: int, error: BaseException
    ) -> None:
        for write in writes:
            value = write.value if write.operation == "store" else None
            letter = DeadLetter(write.key, write.operation, value, attempts, error)
            self.dead_lettered += 1
            if self.dead_letter is None:
                logger.error(
                    "write-behind gave up on %s of key %r after %d attempts: %s",
                    write.operation,
                    write.key,
                    attempts,
                    error,
                )
                continue
            try:
                await _src.resolve(self.dead_letter(letter), "dead_letter")
            except Exception:
                logger.exception("the dead_letter callback failed for key %r", write.key)

    # ------------------------------------------------------------------ lifecycle

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every write queued so far is settled; False if ``timeout`` passed first."""
        started = time.monotonic()
        with self._lock:
            self._flushing += 1
        self._work.notify()
        try:
            while True:
                with self._lock:
                    worker_gone = self._worker is None or not alive(self._worker)
                    if not (self._queue or self._inflight) or (worker_gone and self._state == "closed"):
                        return True
                    generation = self._space.generation
                remaining = None
                if timeout is not None:
                    remaining = timeout - (time.monotonic() - started)
                    if remaining <= 0:
                        return False
                await self._space.wait(generation, remaining)
        finally:
            with self._lock:
                self._flushing -= 1

    async def close(self, timeout: float | None = None) -> None:
        """Flush, stop the worker and refuse further writes (CacheClosed). Idempotent.

        After ``timeout`` seconds (default ``close_timeout``) the writes not yet confirmed
        (queued, or stuck in a source call) go to the dead-letter callback with a
        :class:`~stratacache.CacheTimeout`. The cache itself is not closed.
        """
        limit = self.close_timeout if timeout is None else timeout
        with self._lock:
            first = self._state == "open"
            if first:
                self._state = "closing"
            worker = self._worker
        self._work.notify()
        self._space.notify()  # producers blocked on a full queue now raise CacheClosed
        if not first:
            await self._wait_closed(limit)
            return
        try:
            drained = worker is None or await finish(worker, limit)
            with self._lock:
                leftovers = [] if drained else self._inflight + self._queue.take_all()
                if leftovers:
                    self._abandoned = True
                    self._inflight = []
            if leftovers:
                error = CacheTimeout(
                    f"write-behind close timed out after {limit:g}s; "
                    f"{len(leftovers)} write(s) not confirmed by {_src.describe_source(self.source)}"
                )
                await self._send_to_dead_letter(leftovers, 0, error)
        finally:
            with self._lock:
                self._state = "closed"
            self._space.notify()
            self._restore_signal_handlers()
            at_exit(self.close, register=False)

    async def _wait_closed(self, limit: float) -> None:
        # A second close (the user's, during a SIGTERM flush) returns once the first is done.
        deadline = time.monotonic() + limit + 1.0
        while True:
            with self._lock:
                if self._state == "closed":
                    return
                generation = self._space.generation
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await self._space.wait(generation, remaining)

    @property
    def closed(self) -> bool:
        """True once ``close()`` has begun."""
        return self._state != "open"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -------------------------------------------------------------------- signals

    def install_signal_handlers(self, signals: Iterable[int] = (signal.SIGTERM,)) -> None:
        """Flush on these signals, then pass each on to the handler installed before.

        Must be called from the main thread (Python runs signal handlers there). The
        handler starts the flush and returns; when the flush is done the signal is sent
        again, to the previous handler (the default one ends the process).
        """
        if threading.current_thread() is not threading.main_thread():
            raise ConfigurationError(
                "handle_signals needs the main thread: Python runs signal handlers there"
            )
        for signum in signals:
            previous = signal.signal(signum, self._on_signal)
            self._previous_handlers.setdefault(signum, previous)

    def _restore_signal_handlers(self) -> None:
        # Only the main thread may change handlers; elsewhere ours stays and passes signals on.
        if threading.current_thread() is not threading.main_thread():
            return
        while self._previous_handlers:
            signum, previous = self._previous_handlers.popitem()
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs in the main thread between two bytecodes of whatever it was doing, perhaps
        # inside set() with our lock held: take no lock here, only start the flush elsewhere.
        if self._state == "closed" or self._signal_state == "flushed":
            self._pass_on(signum, frame)
            return
        if self._signal_state == "flushing":
            return
        self._signal_state = "flushing"
        if not detach(self._loop, lambda: self._close_for_signal(signum)):
            # No live event loop to flush on: nothing was queued from it that can still be
            # written from here.
            self._signal_state = "flushed"
            self._pass_on(signum, frame)

    async def _close_for_signal(self, signum: int) -> None:
        try:
            await self.close()
        finally:
            self._signal_state = "flushed"
            # Our handler (or, once restored, the previous one) gets it in the main thread.
            os.kill(os.getpid(), signum)

    def _pass_on(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous_handlers.pop(signum, signal.SIG_DFL)
        if signal.getsignal(signum) == self._on_signal:
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        elif previous in (signal.SIG_DFL, None):
            os.kill(os.getpid(), signum)


class AsyncRefreshAhead(AsyncReadThrough):
    """Read-through that reloads hot keys in the background before they expire.

    A ``get`` that hits a key with less than ``refresh_ratio * ttl`` seconds left starts a
    background reload of it (a task here, a thread in the sync flavour) and returns the
    cached value at once. At most one reload per key runs at a time, and at most
    ``max_refreshes`` in all (more are skipped: those keys load on their miss). A failed
    reload is logged and keeps the old value until it expires; a key the source no longer
    has is removed from the cache. Each hit costs one extra ``ttl()`` call to the cache.
    """

    def __init__(
        self,
        cache: AsyncCache,
        source: Any,
        *,
        ttl: Any,
        refresh_ratio: float = 0.25,
        max_refreshes: int = 16,
        negative_ttl: Any = None,
        negative_prefix: str = "__absent__:",
    ) -> None:
        seconds = None if ttl is UNSET else normalize_ttl(ttl, name="ttl")
        if seconds is None:
            raise InvalidArgument(
                f"ttl must be a number of seconds (refresh-ahead refreshes before it), got {ttl!r}"
            )
        super().__init__(cache, source, ttl=ttl, negative_ttl=negative_ttl, negative_prefix=negative_prefix)
        number = isinstance(refresh_ratio, (int, float)) and not isinstance(refresh_ratio, bool)
        if not number or not 0 < refresh_ratio < 1:
            raise InvalidArgument(f"refresh_ratio must be a number between 0 and 1, got {refresh_ratio!r}")
        self.refresh_ratio = float(refresh_ratio)
        # Seconds left under which a hit starts a reload.
        self._refresh_below = seconds * self.refresh_ratio
        self.max_refreshes = _positive_int(max_refreshes, "max_refreshes")
        self._lock = threading.Lock()
        self._refreshing: dict[str, Handle | None] = {}
        self._idle = Wakeup()
        self._closed = False
        self.refreshes = 0
        """Background reloads that stored a fresh value (or removed a deleted key)."""
        self.refresh_failures = 0
        """Background reloads that failed (the old value was kept)."""

    async def get(self, key: str, default: Any = None) -> Any:
        """The cached value (refreshed in the background when nearly expired), else the source's."""
        value = await self.cache.get(key, MISSING)
        if value is MISSING:
            value = await self._load_through(key)
            return default if value is MISSING else value
        left = await self.cache.ttl(key)
        if isinstance(left, (int, float)) and left <= self._refresh_below:
            self._schedule(key)
        return value

    def _schedule(self, key: str) -> None:
        with self._lock:
            if self._closed or key in self._refreshing or len(self._refreshing) >= self.max_refreshes:
                return
            self._refreshing[key] = None
        handle = spawn(lambda: self._refresh(key), "stratacache-refresh-ahead")
        with self._lock:
            # Kept referenced so an asyncio task is not collected while it runs.
            if key in self._refreshing:
                self._refreshing[key] = handle

    async def _refresh(self, key: str) -> None:
        try:
            value = await _src.load(self.source, key)
            if value is MISSING:
                await self.cache.delete(key)
            else:
                await self.cache.set(key, value, ttl=self.ttl)
            self.refreshes += 1
        except Exception as exc:
            self.refresh_failures += 1
            logger.warning("refresh-ahead of key %r failed; the cached value is kept: %s", key, exc)
        finally:
            with self._lock:
                self._refreshing.pop(key, None)
            self._idle.notify()

    @property
    def refreshing(self) -> int:
        """Background reloads running now."""
        with self._lock:
            return len(self._refreshing)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until no reload runs; False if ``timeout`` passed first."""
        started = time.monotonic()
        while True:
            with self._lock:
                if not self._refreshing:
                    return True
                generation = self._idle.generation
            remaining = None
            if timeout is not None:
                remaining = timeout - (time.monotonic() - started)
                if remaining <= 0:
                    return False
            await self._idle.wait(generation, remaining)

    async def close(self, timeout: float | None = None) -> None:
        """Start no more reloads and wait for the running ones. The cache is not closed."""
        with self._lock:
            self._closed = True
        await self.drain(timeout)
