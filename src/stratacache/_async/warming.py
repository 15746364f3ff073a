"""``cache.warm(...)``: fill a cache ahead of traffic from a data source, a mapping or a loader.

Written once (async); ``_sync/warming.py`` is generated. Keys are taken in chunks of
``batch_size`` by ``concurrency`` workers (tasks here, threads in the sync flavour), each
chunk loaded with one ``load_many`` (or one loader call per key) and stored with one
``set_many``. docs/patterns/warming.md has the guide.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from typing import TYPE_CHECKING, Any

from .._drivers.workers_async import run_all
from .._exceptions import CacheError, InvalidArgument, SourceError
from .._types import MISSING, UNSET, check_key, normalize_ttl
from ..core.warming import MAX_WARM_ERRORS, WarmReport
from . import sources as _src

if TYPE_CHECKING:
    from .cache import AsyncCache

__all__ = ["warm"]

Progress = Callable[[int, int | None], object]


class _Tally:
    """Counters shared by the workers; every update under one lock."""

    def __init__(self, total: int | None, progress: Progress | None) -> None:
        self.lock = threading.Lock()
        self.total = total
        self.progress = progress
        self.loaded = 0
        self.failed = 0
        self.skipped = 0
        self.errors: dict[str, BaseException] = {}

    def record(self, loaded: int, skipped: int, failures: Mapping[str, BaseException]) -> None:
        with self.lock:
            self.loaded += loaded
            self.skipped += skipped
            self.failed += len(failures)
            for key, error in failures.items():
                if len(self.errors) < MAX_WARM_ERRORS:
                    self.errors[key] = error
            if self.progress is not None:
                # Under the lock, so the callback sees ``done`` only grow.
                self.progress(self.loaded + self.skipped + self.failed, self.total)


def _chunks(keys: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while True:
        chunk = [key for _, key in zip(range(size), keys, strict=False)]
        if not chunk:
            return
        yield chunk


async def warm(
    cache: AsyncCache,
    source: Any,
    *,
    keys: Iterable[str] | None = None,
    concurrency: int = 8,
    ttl: Any = UNSET,
    progress: Progress | None = None,
    batch_size: int = 100,
) -> WarmReport:
    """Load keys into ``cache``; the implementation of ``AsyncCache.warm`` (see there)."""
    if type(concurrency) is not int or concurrency < 1:
        raise InvalidArgument(f"concurrency must be a positive int, got {concurrency!r}")
    if type(batch_size) is not int or batch_size < 1:
        raise InvalidArgument(f"batch_size must be a positive int, got {batch_size!r}")
    if progress is not None and not callable(progress):
        raise InvalidArgument(f"progress must be callable, got {type(progress).__name__}")
    seconds = ttl if ttl is UNSET else normalize_ttl(ttl, name="ttl")
    if isinstance(keys, str):
        raise InvalidArgument("keys must be an iterable of keys, not a single str")
    if keys is not None and not isinstance(keys, Iterable):
        raise InvalidArgument(f"keys must be an iterable of str, not {type(keys).__name__}")

    if isinstance(source, Mapping):
        mapping = source
        wanted: Iterable[Any] = list(mapping) if keys is None else keys

        async def fetch(chunk: list[str]) -> tuple[dict[str, Any], dict[str, BaseException]]:
            return {key: mapping[key] for key in chunk if key in mapping}, {}

    elif callable(getattr(source, "load", None)):
        if keys is None:
            raise InvalidArgument("keys is required when warming from a data source (which keys to load)")
        wanted = keys

        async def fetch(chunk: list[str]) -> tuple[dict[str, Any], dict[str, BaseException]]:
            try:
                return await _src.load_many(source, chunk), {}
            except SourceError as exc:
                return {}, dict.fromkeys(chunk, exc)

    elif callable(source):
        if keys is None:
            raise InvalidArgument("keys is required when warming with a loader function (which keys to load)")
        wanted = keys
        loader = source
        name = getattr(loader, "__qualname__", repr(loader))

        async def fetch(chunk: list[str]) -> tuple[dict[str, Any], dict[str, BaseException]]:
            found: dict[str, Any] = {}
            failures: dict[str, BaseException] = {}
            for key in chunk:
                try:
                    value = await _src.resolve(loader(key), "the warm loader")
                except InvalidArgument:
                    raise
                except Exception as exc:
                    error = SourceError("load", key, f"loader {name}")
                    error.__cause__ = exc
                    failures[key] = error
                    continue
                if value is not MISSING:
                    found[key] = value
            return found, failures

    else:
        raise InvalidArgument(
            f"source must be a data source (with load()), a mapping or a loader function, "
            f"not {type(source).__name__}"
        )

    total = len(wanted) if isinstance(wanted, Sized) else None
    tally = _Tally(total, progress)
    chunks = _chunks(iter(wanted), batch_size)
    chunk_lock = threading.Lock()
    started = time.perf_counter()

    async def worker() -> None:
        while True:
            with chunk_lock:
                chunk = next(chunks, None)
            if chunk is None:
                return
            failures: dict[str, BaseException] = {}
            good: list[str] = []
            for key in chunk:
                try:
                    good.append(check_key(key))
                except InvalidArgument as exc:
                    failures[repr(key)] = exc
            found, load_failures = await fetch(good) if good else ({}, {})
            failures.update(load_failures)
            skipped = len(good) - len(found) - len(load_failures)
            stored = len(found)
            if found:
                try:
                    await cache.set_many(found, ttl=seconds)
                except CacheError:
                    # One bad entry (too large, not serializable) fails the whole batch:
                    # store the batch key by key so each failure is its own key's.
                    stored = 0
                    for key, value in found.items():
                        try:
                            await cache.set(key, value, ttl=seconds)
                        except CacheError as exc:
                            failures[key] = exc
                        else:
                            stored += 1
            tally.record(stored, skipped, failures)

    await run_all([worker for _ in range(concurrency)])
    return WarmReport(
        loaded=tally.loaded,
        failed=tally.failed,
        skipped=tally.skipped,
        seconds=time.perf_counter() - started,
        errors=tally.errors,
    )
