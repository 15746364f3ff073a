"""A cache in front of a system of record: read-through, write-behind, warming.

The "database" is a dict (sc.MappingSource); any object with load/load_many/store/delete is
a data source. Set STRATACACHE_REDIS_URL to run it over Redis; the default is memory.
"""

import os

import stratacache as sc

database = sc.MappingSource({f"user:{i}": {"id": i, "name": f"user {i}"} for i in range(100)})
url = os.environ.get("STRATACACHE_REDIS_URL", "memory://")

with sc.Cache(url, namespace="sources-example") as cache:
    cache.clear()
    # Warm the cache before traffic: the first 20 users, 4 writes at a time.
    report = cache.warm(database, keys=[f"user:{i}" for i in range(20)], concurrency=4, ttl=300)
    print(f"warm        -> loaded {report.loaded}, failed {report.failed}, skipped {report.skipped}")

    # Read-through: a miss loads from the source (once, however many callers), then caches.
    users = sc.ReadThrough(cache, database, ttl=300, negative_ttl=30)
    print("read-through ->", users.get("user:42"), "| cached:", cache.exists("user:42"))
    print("absent key   ->", users.get("user:999", "<none>"), "(remembered as absent for 30 s)")

    # Write-behind: writes are acknowledged once cached and reach the source in batches.
    writer = sc.WriteBehind(cache, database, ttl=300, batch_size=50, flush_interval=0.05)
    for i in range(5):
        writer.set(f"user:{i}", {"id": i, "name": f"renamed {i}"})
    print("cache now    ->", cache.get("user:3"))
    writer.close()  # flushes the queue: every acknowledged write reaches the source
    print("source after ->", database.data["user:3"])
    cache.clear()
