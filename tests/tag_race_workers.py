"""Processes of the multi-process tag race test (tests/test_tags.py), importable by ``spawn``.

The "database" is a shared integer ``db`` (its generation). The invalidator, in a loop:
bumps ``db`` to ``g``, calls ``invalidate_tags("t")``, then publishes ``floor = g``. Writers
loop on ``get_or_set("page", load, tags=["t"])`` whose ``load`` reads ``db`` and sleeps
(a slow query), then read ``floor`` and ``get("page")``; one writer does the same by hand
(``tag_versions("t")``, ``load()``, ``set(..., tags=versions)``) and overwrites the entry
every round. Since the tag's version is read before ``load`` runs, a value loaded from
generation ``< g`` carries a version older than invalidation ``g``: once ``floor`` is
``g``, reading such a value is a stale read, which must never happen. A *late write* (a
value loaded before an invalidation and written after it) is counted to show the race
was exercised.
"""

from __future__ import annotations

import random
import time
from typing import Any

from stratacache import Cache

_READS, _STALE, _LATE, _LOADS = range(4)


def _add(counters: Any, index: int, amount: int = 1) -> None:
    with counters.get_lock():
        counters[index] += amount


def writer(
    options: dict[str, Any], db: Any, floor: Any, stop: Any, counters: Any, seed: int, explicit: bool
) -> None:
    """Load-and-write through get_or_set (``explicit``: tag_versions, load, set), and check
    every read against the floor, until stopped."""
    rng = random.Random(seed)
    reads = stale = late = loads = 0
    with Cache(**options) as cache:
        loaded: list[int] = []

        def load() -> int:
            generation = int(db.value)
            time.sleep(rng.uniform(0.001, 0.02))
            loaded.append(generation)
            return generation

        while not stop.is_set():
            loaded.clear()
            if explicit:
                # The same ordering by hand: versions first, then the slow load, then set.
                seen = cache.tag_versions("t")
                cache.set("page", load(), ttl=60, tags=seen)
            else:
                cache.get_or_set("page", load, ttl=60, tags=["t"])
            if loaded:
                loads += 1
                if floor.value > loaded[0]:
                    late += 1
            seen_floor = floor.value
            value = cache.get("page")
            reads += 1
            if value is not None and value < seen_floor:
                stale += 1
    for index, amount in ((_READS, reads), (_STALE, stale), (_LATE, late), (_LOADS, loads)):
        _add(counters, index, amount)


def invalidator(options: dict[str, Any], db: Any, floor: Any, stop: Any, rounds: int) -> None:
    """Bump the database and invalidate the tag ``rounds`` times, then stop the writers."""
    rng = random.Random(99)
    try:
        with Cache(**options) as cache:
            # Let the writers start before the first invalidation.
            deadline = time.monotonic() + 30
            while cache.get("page") is None and time.monotonic() < deadline:
                time.sleep(0.005)
            for _ in range(rounds):
                with db.get_lock():
                    db.value += 1
                    generation = int(db.value)
                cache.invalidate_tags("t")
                floor.value = generation
                time.sleep(rng.uniform(0.002, 0.015))
    finally:
        stop.set()
