"""A Memcached pool: the same API; clear() of a namespace is O(1); no key listing.

Set STRATACACHE_MEMCACHED_URL (default memcached://127.0.0.1:11211; several servers:
memcached://h1:11211,h2:11211).
"""

import os

import stratacache as sc

url = os.environ.get("STRATACACHE_MEMCACHED_URL", "memcached://127.0.0.1:11211")

with sc.Cache(url, namespace="example") as cache:
    cache.set("user:1", {"name": "Ada"}, ttl=60)
    print("get user:1 ->", cache.get("user:1"))
    print("incr       ->", cache.incr("hits"), cache.incr("hits"))
    try:
        cache.delete_pattern("user:*")
    except sc.UnsupportedOperation as exc:
        print("delete_pattern ->", exc)
    cache.clear()  # a new generation for the namespace: every key of it is gone at once
    print("after clear ->", cache.get("user:1", "<miss>"))
