"""A layered cache: process memory (L1) over Redis (L2, the source of truth).

Reads of hot keys are served from memory; writes go to Redis first and drop the L1 copies.
Set STRATACACHE_REDIS_URL (default redis://127.0.0.1:6379/0).
"""

import os

import stratacache as sc

url = os.environ.get("STRATACACHE_REDIS_URL", "redis://127.0.0.1:6379/0")

with sc.Cache(
    "layered", tiers=["memory://?max_entries=1000", url], l1_ttl=30, namespace="layered-example"
) as cache:
    cache.set("config", {"feature": True}, ttl=300)
    for _ in range(3):
        cache.get("config")  # the first read fills L1; the next ones stay in process
    with sc.Cache(url, namespace="layered-example") as l2:
        print("in Redis    ->", l2.get("config"))
    print("layered get ->", cache.get("config"))
    print("backend     ->", cache.backend.describe())
    cache.clear()
