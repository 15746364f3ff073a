"""Micro-benchmark: stratacache's Memcached backend against raw clients, side by side, one run.

Run from the repository root (memcached must be on PATH)::

    PYTHONPATH=src python benchmarks/bench_memcached.py            # about a minute
    PYTHONPATH=src python benchmarks/bench_memcached.py --quick    # about 15 seconds

The script starts its own throw-away ``memcached`` on a free loopback port and stops it at
the end. With two or more CPUs the server is pinned to CPU 0 (``taskset -c 0``) and this
client process to CPU 1 (``os.sched_setaffinity``), so a round trip does not wait for the
scheduler to switch between client and server (``--no-pin`` turns this off).

Contenders, all reading the very bytes stratacache wrote (msgpack with its 4-byte header):

* sync ``get``: ``Cache.get`` vs raw ``pymemcache.Client.get`` with the backend's socket
  settings (1 s timeouts, TCP_NODELAY), which returns the stored bytes; the same plus
  ``msgpack.unpackb`` of the payload (what an app storing msgpack would do: the same result
  as ``Cache.get``); ``pymemcache.PooledClient.get`` (what a pooled app uses); for
  information, a ``Client`` with no timeout (blocking socket: no poll() before each
  recv(), which no production client should run without), and ``MemcachedNode.get``, the
  sync driver under the backend (its pool and reply reader, no key mapping, no decode);
* sync ``get_many`` of 100 keys, per key: ``Cache.get_many`` vs raw ``Client.get_many``,
  the same plus a decoded dict keyed like the input, and the driver's ``get_many``;
* async ``get``: ``AsyncCache.get`` vs our raw asyncio node client (the driver under the
  backend), aiomcache 0.8 and emcache 1.3 (each with a pool, awaited one call at a time).

Figures are ns per operation (per key for batches), median of interleaved rounds (the order
rotates every round so drift hits every contender alike), garbage collector off while
timing. The output is RATIOS measured in the same run; nothing here passes or fails.
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
import msgpack
from _harness import ainterleaved_medians, interleaved_medians  # also puts src/ on the path
from _servers import CLIENT_CPU, SERVER_CPU, pin_client, sigterm_as_exit, start_memcached
from pymemcache.client.base import Client, PooledClient

import stratacache as sc
from stratacache._drivers.memcached_async import AsyncMemcachedNode
from stratacache._drivers.memcached_sync import MemcachedNode
from stratacache.core.memcached_keys import wire_key

HEADER = 4  # stratacache's header in front of the msgpack payload
perf_counter_ns = time.perf_counter_ns


def timed_loop(call: Callable[[Any], Any], keys: list[Any], per: int = 1) -> Callable[[], float]:
    """One round of ``call`` over ``keys``: whole ns per call (per key with ``per``)."""

    def run() -> float:
        start = perf_counter_ns()
        for key in keys:
            call(key)
        return (perf_counter_ns() - start) // (len(keys) * per)

    return run


def report(title: str, results: dict[str, float], base: str) -> None:
    print(f"\n{title}")
    for name, ns in results.items():
        ratio = "" if name == base else f"   stratacache / this = {results[base] / ns:5.2f}x"
        print(f"  {name:<34} {ns / 1000:8.2f} us/op{ratio}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about 15 s)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin client and server to CPUs")
    args = parser.parse_args(argv)
    n_rounds, n_ops = (7, 1000) if args.quick else (21, 2000)
    with sigterm_as_exit(), start_memcached(pin=not args.no_pin) as server:
        # The client goes to its own CPU only when the server has one of its own.
        pinned = server.pinned and pin_client(True).startswith("pinned")
        port = server.port
        run(port, n_rounds, n_ops)
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, memcached on 127.0.0.1:{port}, "
        + (f"server on CPU {SERVER_CPU} (taskset), client on CPU {CLIENT_CPU}" if pinned else "not pinned")
    )
    return 0


def run(port: int, n_rounds: int, n_ops: int) -> None:
    url = f"memcached://127.0.0.1:{port}"
    cache = sc.Cache(url)
    keys = [f"bench:{i}" for i in range(100)]
    cache.set_many({key: {"id": i, "name": f"user {i}"} for i, key in enumerate(keys)})
    wire = [wire_key(key) for key in keys]
    get_keys = [keys[i % 100] for i in range(n_ops)]
    get_wire = [wire[i % 100] for i in range(n_ops)]

    # The same socket settings as the backend's (its defaults: 1 s connect and read timeouts,
    # TCP_NODELAY); a socket with a timeout costs CPython a poll() before each recv().
    same = {"no_delay": True, "connect_timeout": 1.0, "timeout": 1.0, "default_noreply": False}
    raw = Client(("127.0.0.1", port), **same)
    bare = Client(("127.0.0.1", port), no_delay=True, default_noreply=False)
    pooled = PooledClient(("127.0.0.1", port), max_pool_size=8, **same)
    # The driver under the backend, with the backend's defaults (pool of 8, 1 s timeouts).
    node = MemcachedNode("127.0.0.1", port)
    raw_get, unpackb = raw.get, msgpack.unpackb

    def raw_get_unpack(key: bytes) -> Any:
        return unpackb(raw_get(key)[HEADER:])

    raw_get_many = raw.get_many

    def raw_get_many_dict(user_keys: list[str]) -> dict[str, Any]:
        # What Cache.get_many returns: the present keys, as given, with decoded values.
        hits = raw_get_many([k.encode() for k in user_keys])
        return {k: unpackb(hits[k.encode()][HEADER:]) for k in user_keys if k.encode() in hits}

    # Every contender reads the same stored bytes; the decoding ones the same objects.
    value = {"id": 0, "name": "user 0"}
    assert raw.get(wire[0]) == node.get(wire[0])[0] == cache.backend.get(keys[0]), "not the same bytes"
    assert cache.get(keys[0]) == raw_get_unpack(wire[0]) == value
    assert cache.get_many(keys) == raw_get_many_dict(keys)
    print(f"memcached {raw.version().decode()}, pymemcache, {n_rounds} rounds of {n_ops} gets")

    gets = interleaved_medians(
        {
            "Cache.get (stratacache)": timed_loop(cache.get, get_keys),
            "pymemcache Client.get (raw)": timed_loop(raw_get, get_wire),
            "pymemcache Client.get + unpackb": timed_loop(raw_get_unpack, get_wire),
            "pymemcache PooledClient.get (raw)": timed_loop(pooled.get, get_wire),
            "pymemcache Client.get, no timeout": timed_loop(bare.get, get_wire),
            "MemcachedNode.get (our driver)": timed_loop(node.get, get_wire),
        },
        n_rounds,
    )
    report("sync get, one key", gets, "Cache.get (stratacache)")

    batches = [keys] * max(1, n_ops // 100)
    wire_batches = [wire] * len(batches)
    many = interleaved_medians(
        {
            "Cache.get_many(100) (stratacache)": timed_loop(cache.get_many, batches, per=100),
            "pymemcache Client.get_many(100)": timed_loop(raw_get_many, wire_batches, per=100),
            "Client.get_many + dict + unpackb": timed_loop(raw_get_many_dict, batches, per=100),
            "MemcachedNode.get_many (our driver)": timed_loop(node.get_many, wire_batches, per=100),
        },
        n_rounds,
    )
    report("sync get_many of 100 keys, per key", many, "Cache.get_many(100) (stratacache)")
    node.close()

    loop = asyncio.new_event_loop()
    try:
        async_results = loop.run_until_complete(_async_setup(loop, url, port, get_keys, get_wire, n_rounds))
    finally:
        loop.close()
    report("async get, one key (awaited one at a time)", async_results, "AsyncCache.get (stratacache)")
    cache.close()
    bare.close()
    raw.close()
    pooled.close()


async def _async_setup(
    loop: asyncio.AbstractEventLoop, url: str, port: int, keys: list[str], wire: list[bytes], n_rounds: int
) -> dict[str, float]:
    import aiomcache
    import emcache

    acache = sc.AsyncCache(url)
    node = AsyncMemcachedNode("127.0.0.1", port, pool_size=8)
    aio = aiomcache.Client("127.0.0.1", port, pool_size=8)
    em = await emcache.create_client(
        [emcache.MemcachedHostAddress("127.0.0.1", port)], max_connections=8, timeout=1.0
    )
    assert await acache.get(keys[0]) is not None
    assert await node.get(wire[0]) is not None
    assert await aio.get(wire[0]) is not None
    assert await em.get(wire[0]) is not None

    def timed(call: Callable[[Any], Awaitable[Any]], args: list[Any]) -> Callable[[], Awaitable[float]]:
        async def run() -> float:
            start = perf_counter_ns()
            for key in args:
                await call(key)
            return (perf_counter_ns() - start) / len(args)

        return run

    contenders = {
        "AsyncCache.get (stratacache)": timed(acache.get, keys),
        "raw asyncio node (our driver)": timed(node.get, wire),
        "aiomcache Client.get": timed(aio.get, wire),
        "emcache Client.get": timed(em.get, wire),
    }
    results = await ainterleaved_medians(contenders, n_rounds)
    await acache.close()
    await node.close()
    await aio.close()
    await em.close()
    return results


if __name__ == "__main__":
    sys.exit(main())
