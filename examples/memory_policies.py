"""Eviction policies of the memory engine on one skewed workload: which keeps more hits.

A few hot keys are read all the time while a scan of one-off keys passes through: LRU lets
the scan flush the hot keys out, W-TinyLFU (the default) admits a newcomer only when it is
used more often than what it would evict.
"""

import random

import stratacache as sc

rng = random.Random(7)
hot = [f"hot:{i}" for i in range(50)]
trace = []
for step in range(20_000):
    if step % 3 == 0:
        trace.append(f"scan:{step}")  # one-off keys, never read again
    else:
        trace.append(rng.choice(hot) if rng.random() < 0.9 else f"warm:{rng.randrange(500)}")

for policy in ("lru", "lfu", "fifo", "random", "tinylfu"):
    with sc.Cache(f"memory://?max_entries=100&policy={policy}") as cache:
        for key in trace:
            if cache.get(key, sc.MISSING) is sc.MISSING:
                cache.set(key, True)
        stats = cache.stats()
        print(f"{policy:<8} hit rate {stats.hit_rate:6.1%}  evictions {stats.evictions}")
