"""The sync API in a dozen lines: set/get with ttl, misses, atomic add and counters, get_or_set."""

import stratacache as sc

with sc.Cache("memory://?max_entries=10000", namespace="app", default_ttl=300) as cache:
    cache.set("user:1", {"name": "Ada"}, ttl=60)
    print("get user:1 ->", cache.get("user:1"))
    print("get user:2 ->", cache.get("user:2", default="<miss>"))
    print("add lock   ->", cache.add("lock", "me", ttl=10), cache.add("lock", "you", ttl=10))
    print("incr x3    ->", [cache.incr("visits") for _ in range(3)])

    def build_report() -> str:
        print("  (building the report)")
        return "report"

    print("get_or_set ->", [cache.get_or_set("report", build_report, ttl=60) for _ in range(3)])
    stats = cache.stats()
    print(f"stats      -> hits={stats.hits} misses={stats.misses} hit_rate={stats.hit_rate:.2f}")
