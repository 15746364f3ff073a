"""Tags: drop every cached view of one user with one call, and load-then-set safely.

Set STRATACACHE_REDIS_URL (default redis://127.0.0.1:6379/0); `stratacache serve` works too.
"""

import os

import stratacache as sc

url = os.environ.get("STRATACACHE_REDIS_URL", "redis://127.0.0.1:6379/0")
database = {42: {"name": "Ada", "posts": 3}, 7: {"name": "Grace", "posts": 9}}

with sc.Cache(url, namespace="tags-example") as cache:
    cache.clear()
    # Several entries derived from user 42, each tagged with it; one also tagged "feeds".
    cache.set("user:42:profile", database[42], ttl=300, tags=["user:42"])
    cache.set_many({"user:42:posts": ["p1", "p2", "p3"], "user:42:badge": "gold"}, ttl=300, tags=["user:42"])
    cache.set("feed:42", ["p3", "p2"], ttl=60, tags=["user:42", "feeds"])
    cache.set("user:7:profile", database[7], ttl=300, tags=["user:7"])

    database[42]["name"] = "Ada L."  # the system of record changes...
    cache.invalidate_tags("user:42")  # ...so drop everything derived from it: one write
    keys = ["user:42:profile", "user:42:posts", "user:42:badge", "feed:42", "user:7:profile"]
    print("after invalidate ->", cache.get_many(keys))

    # Load-then-set by hand: read the tag versions BEFORE the load. If the tag is
    # invalidated while the load runs, the value is stored but reads as a miss,
    # so a load that started before an update can never resurrect old data.
    seen = cache.tag_versions("user:42")
    profile = dict(database[42])  # a slow query...
    cache.invalidate_tags("user:42")  # ...meanwhile another process updates user 42
    cache.set("user:42:profile", profile, ttl=300, tags=seen)
    print("raced load       ->", cache.get("user:42:profile", "<miss: loaded before the update>"))

    seen = cache.tag_versions("user:42")
    cache.set("user:42:profile", dict(database[42]), ttl=300, tags=seen)
    print("clean load       ->", cache.get("user:42:profile"))

    # get_or_set reads the versions before calling the loader by itself.
    feed = cache.get_or_set("feed:42", lambda: ["p4", "p3"], ttl=60, tags=["user:42", "feeds"])
    item = cache.get_item("feed:42")
    print("get_or_set       ->", feed, "| tags:", item.tags if item else None)
    cache.clear()
