#!/usr/bin/env python3
"""Steady-state leak check of the memory engine: millions of mixed operations, memory flat.

Each policy gets a bounded memory cache (entries and bytes limits, a default ttl on part of
the writes, a fake clock that moves so entries expire) and a mix of every kind of operation:
hits, misses, overwrites, evicting writes, deletes, counters, ttls, collections, batch calls,
pattern deletes. At the end of each round the cache is cleared and, after a
``gc.collect()``, what Python still holds is measured: tracemalloc's traced bytes and the
interpreter's allocated blocks (both see objects the C speedups allocate). A leak, in Python
or in the C helpers' reference counting, grows them round after round; a healthy engine
stays flat within a small allowance for allocator noise.

Run: ``python scripts/leak_check.py [--ops N] [--rounds R]``; exits 1 on growth.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tracemalloc

import stratacache as sc
from stratacache.core import _native
from stratacache.testing import FakeClock

POLICIES = ("lru", "lfu", "fifo", "random", "tinylfu")
KEYS = [f"k{i}" for i in range(4000)]
# Allocated blocks (sys.getallocatedblocks) after a clear: a healthy run moves by a few
# dozen at most (allocator caches); an object kept per ~1,000 operations adds hundreds.
BLOCKS_ALLOWED = 100


def churn(cache: sc.Cache, clock: FakeClock, rng: random.Random, ops: int) -> None:
    """``ops`` operations of every kind over the fixed key space."""
    for _ in range(ops):
        key = rng.choice(KEYS)
        roll = rng.random()
        if roll < 0.40:
            cache.get(key)
        elif roll < 0.60:
            cache.set(key, [key] * rng.randrange(1, 8))
        elif roll < 0.68:
            cache.set(key, key, ttl=rng.choice((1, 5, None)))
        elif roll < 0.72:
            cache.delete(key)
        elif roll < 0.76:
            try:
                cache.incr("n" + key)
            except sc.CacheError:
                cache.delete("n" + key)
        elif roll < 0.79:
            cache.expire(key, rng.choice((1, 3, None)))
            cache.ttl(key)
        elif roll < 0.82:
            lkey = "l" + key[-2:]
            cache.rpush(lkey, key)
            if cache.llen(lkey) > 20:
                cache.lpop(lkey)
        elif roll < 0.85:
            skey = "s" + key[-2:]
            cache.sadd(skey, key)
            cache.srem(skey, rng.choice(KEYS))
        elif roll < 0.88:
            hkey = "h" + key[-2:]
            cache.hset(hkey, key, roll)
            cache.hdel(hkey, rng.choice(KEYS))
        elif roll < 0.92:
            batch = rng.sample(KEYS, 8)
            cache.set_many({k: k for k in batch}, ttl=rng.choice((2, None)))
            cache.get_many(batch)
            cache.delete_many(batch[:4])
        elif roll < 0.95:
            cache.add(key, key, ttl=2)
            cache.get_or_set("g" + key[-2:], key.upper, ttl=1)
        elif roll < 0.9999:
            clock.advance(0.05)
        else:
            cache.delete_pattern(f"k{rng.randrange(10)}*")


def check(policy: str, ops: int, rounds: int, allowance: int) -> bool:
    """True when the policy's traced memory stays flat after the first two rounds."""
    clock = FakeClock()
    rng = random.Random(policy)
    cache = sc.Cache(
        "memory://",
        max_entries=2000,
        max_bytes=2_000_000,
        policy=policy,
        clock=clock,
        latency_sample=16,
    )
    sizes = []
    blocks = []
    for _ in range(rounds):
        churn(cache, clock, rng, ops)
        # Measured empty: what the live data holds varies with the mix, an empty cache
        # holds only fixed-size structures (maps keep their capacity, the sketch its table).
        cache.clear()
        gc.collect()
        sizes.append(tracemalloc.get_traced_memory()[0])
        blocks.append(sys.getallocatedblocks())
    cache.close()
    growth = max(sizes[2:]) - sizes[1]
    block_growth = max(blocks[2:]) - blocks[1]
    ok = growth <= allowance and block_growth <= BLOCKS_ALLOWED
    print(
        f"{policy:8} rounds of {ops:,} ops: traced KiB "
        + " ".join(f"{size // 1024}" for size in sizes)
        + f"  growth after round 2: {growth / 1024:+.0f} KiB, {block_growth:+} blocks"
        + f"  {'ok' if ok else 'GROWS'}"
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ops", type=int, default=80_000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=5)
    # A healthy run grows 0-1 KiB; one object kept per ~1,000 operations grows it ~6 KiB.
    parser.add_argument("--allowance-kib", type=int, default=8, help="growth tolerated")
    args = parser.parse_args(argv)
    print(f"speedups: {'built' if _native.speedups is not None else 'not built'}")
    tracemalloc.start()
    results = [check(p, args.ops, args.rounds, args.allowance_kib * 1024) for p in POLICIES]
    total = len(POLICIES) * args.ops * args.rounds
    print(f"{total:,} operations in all")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
