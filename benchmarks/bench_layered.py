"""Micro-benchmark: an L1 hit in a memory-over-Redis layered cache against a plain ``memory://`` hit.

Run from the repository root (redis-server must be on PATH)::

    PYTHONPATH=src python benchmarks/bench_layered.py            # about 30 seconds
    PYTHONPATH=src python benchmarks/bench_layered.py --quick    # about 8 seconds
    PYTHONPATH=src python benchmarks/bench_layered.py --policy lru   # every memory tier on lru

The script starts its own throw-away ``redis-server`` on a free loopback port (no
persistence) and stops it at the end. Every contender is warmed so that every key read is
held by the memory tier (an L1 hit: Redis is not touched while timing), then all are timed
side by side, interleaved round by round (the order rotates every round), with the
garbage collector off; the median round is reported in ns per ``get``.

Contenders, to tell where the cost of a layered L1 hit comes from:

* ``memory``: ``Cache("memory://")``, the target's baseline (the facade's fused get path).
* ``memory+msgpack``: ``memory://`` with ``serializer="msgpack"``: the facade's full get
  path plus a msgpack decode, which is what any cache that is not ``stores_objects`` pays.
* ``layered mem>mem``: two memory tiers (stores objects, so no decode): the facade's full
  path plus the layered dispatch, without the codec.
* ``layered mem>redis``: the figure the issue asks for (memory L1 over Redis L2): full
  path + layered dispatch + msgpack decode, since Redis makes the cache serialize.

The target is ``layered mem>redis / memory <= 1.3``. Nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness and _servers, next to this file
from _harness import ainterleaved_medians, interleaved_medians  # also puts src/ on the path
from _servers import sigterm_as_exit, start_redis

import stratacache as sc

KEYS = [f"key:{i}" for i in range(1000)]
VALUE = {"id": 12345, "name": "a cached row", "tags": ["a", "b"], "score": 3.5}
POLICY = "tinylfu"  # the memory backend's default; --policy changes it for every memory tier


def contenders(url: str, asynchronous: bool) -> dict[str, Any]:
    cls: Any = sc.AsyncCache if asynchronous else sc.Cache
    big = {"max_entries": 100_000, "policy": POLICY}
    return {
        "memory": cls("memory://", **big),
        "memory+msgpack": cls("memory://", serializer="msgpack", **big),
        "layered mem>mem": cls(
            backend="layered", tiers=[{"backend": "memory", **big}, {"backend": "memory"}]
        ),
        "layered mem>redis": cls(backend="layered", tiers=[{"backend": "memory", **big}, url]),
    }


def bench_sync(url: str, rounds: int, repeat: int) -> dict[str, float]:
    caches = contenders(url, asynchronous=False)
    try:
        for cache in caches.values():
            if hasattr(cache.backend, "wait_listening"):
                assert cache.backend.wait_listening(10)
            for key in KEYS:
                cache.set(key, VALUE)
            for key in KEYS:  # every key must now be an L1 hit
                assert cache.get(key) == VALUE
        layered = caches["layered mem>redis"].backend
        assert all(layered.tiers[0].store.get(key) is not sc.MISSING for key in KEYS)

        def timed(name: str) -> Callable[[], float]:
            def run_round() -> float:
                get = caches[name].get
                keys = KEYS
                started = time.perf_counter_ns()
                for _ in range(repeat):
                    for key in keys:
                        get(key)
                return (time.perf_counter_ns() - started) / (repeat * len(keys))

            return run_round

        return interleaved_medians({name: timed(name) for name in caches}, rounds)
    finally:
        for cache in caches.values():
            cache.close()


async def bench_async(url: str, rounds: int, repeat: int) -> dict[str, float]:
    caches = contenders(url, asynchronous=True)
    try:
        for cache in caches.values():
            if hasattr(cache.backend, "wait_listening"):
                assert await cache.backend.wait_listening(10)
            for key in KEYS:
                await cache.set(key, VALUE)
            for key in KEYS:
                assert await cache.get(key) == VALUE

        def timed(name: str) -> Callable[[], Awaitable[float]]:
            async def run_round() -> float:
                get = caches[name].get
                started = time.perf_counter_ns()
                for _ in range(repeat):
                    for key in KEYS:
                        await get(key)
                return (time.perf_counter_ns() - started) / (repeat * len(KEYS))

            return run_round

        return await ainterleaved_medians({name: timed(name) for name in caches}, rounds)
    finally:
        for cache in caches.values():
            await cache.close()


def report(title: str, figures: dict[str, float]) -> None:
    base = figures["memory"]
    print(f"\n{title}: ns per L1-hit get (median round)")
    for name, ns in figures.items():
        print(f"  {name:<20} {ns:8.1f} ns   {ns / base:5.2f}x memory")
    ratio = figures["layered mem>redis"] / base
    verdict = "meets" if ratio <= 1.3 else "misses"
    print(f"  => layered mem>redis / memory = {ratio:.2f}x ({verdict} the <= 1.3x target)")
    codec = figures["memory+msgpack"] - base
    layering = figures["layered mem>mem"] - base
    print(
        f"     of the {figures['layered mem>redis'] - base:.0f} ns over memory: full facade path + msgpack "
        f"decode ~{codec:.0f} ns (memory+msgpack), full facade path + layered dispatch ~{layering:.0f} ns "
        "(layered mem>mem)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about 8 s)")
    parser.add_argument(
        "--policy", default=POLICY, help="eviction policy of every memory tier (default tinylfu)"
    )
    args = parser.parse_args()
    globals()["POLICY"] = args.policy
    rounds, repeat = (9, 20) if args.quick else (21, 50)
    print(
        f"python {platform.python_version()} on {platform.machine()} {platform.system()}, "
        f"{os.cpu_count()} CPUs, stratacache {sc.__version__ if hasattr(sc, '__version__') else ''}".rstrip()
    )
    print(f"{len(KEYS)} keys, value {VALUE!r}, policy {args.policy}, {rounds} rounds x {repeat} passes")
    with sigterm_as_exit(), start_redis(pin=False) as server:
        url = f"redis://127.0.0.1:{server.port}/0"
        report("sync Cache", bench_sync(url, rounds, repeat))
        report("async AsyncCache", asyncio.run(bench_async(url, rounds, repeat)))


if __name__ == "__main__":
    main()
