"""A cache in front of a system of record: warming and the four strategies.

The "database" is a dict (sc.MappingSource); any object with load/load_many/store/delete is
a data source. Set STRATACACHE_REDIS_URL to run it over Redis; the default is memory.
"""

import os
import time

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

    # Write-through: the source first, the cache only once the source accepted the write.
    class StrictSource(sc.MappingSource):
        def store(self, key: str, value: dict[str, object]) -> None:
            if not value.get("name"):
                raise ValueError("name is required")
            super().store(key, value)

    strict = StrictSource({"user:7": {"id": 7, "name": "user 7"}})
    through = sc.WriteThrough(cache, strict, ttl=300)
    through.set("user:7", {"id": 7, "name": "Grace"})
    print("write-through ->", strict.data["user:7"], "| cached:", cache.get("user:7"))
    try:
        through.set("user:7", {"id": 7, "name": ""})
    except sc.SourceError as exc:  # names the operation, key and source; the cache is untouched
        print("refused write ->", exc.operation, exc.key, "| cached:", cache.get("user:7"))

    # Refresh-ahead: a hit in the last half of the ttl is served at once and reloaded behind.
    prices = sc.MappingSource({"EURUSD": 1.08})
    quotes = sc.RefreshAhead(cache, prices, ttl=1, refresh_ratio=0.5)
    quotes.get("EURUSD")
    time.sleep(0.6)  # into the last half of the ttl
    prices.data["EURUSD"] = 1.09
    print("refresh-ahead ->", quotes.get("EURUSD"), "(served at once; reload started)")
    quotes.close()  # waits for the running reload
    print("after reload  ->", quotes.get("EURUSD"), "| background reloads:", quotes.refreshes)
    cache.clear()
