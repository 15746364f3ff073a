"""A Redis-backed cache: shared by processes, namespaced, with lists and counters.

Set STRATACACHE_REDIS_URL (default redis://127.0.0.1:6379/0); `stratacache serve` works too.
"""

import os

import stratacache as sc

url = os.environ.get("STRATACACHE_REDIS_URL", "redis://127.0.0.1:6379/0")

with sc.Cache(url, namespace="example") as cache:
    cache.clear()  # this namespace only: other keys of the database are left alone
    cache.set_many({f"user:{i}": {"id": i} for i in range(5)}, ttl=60)
    print("get_many   ->", cache.get_many(["user:1", "user:9"]))
    print("ttl user:1 ->", round(cache.ttl("user:1")), "s")
    print("incr       ->", cache.incr("page-views", 10))
    cache.rpush("jobs", "a", "b", "c")
    print("lpop jobs  ->", cache.lpop("jobs"), "left:", cache.lrange("jobs"))
    print("deleted    ->", cache.delete_pattern("user:*"), "keys (SCAN + UNLINK)")
    print("health     ->", cache.health())
    cache.clear()
