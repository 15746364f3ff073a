"""Rate limiting shared by every process using the same Redis: a token bucket, a decorator.

A bucket of 5 tokens refilled evenly over 2 s: bursts of up to 5, then one every 0.4 s.
On Redis each hit is one Lua script (atomic); on memory, Memcached or files it is a
compare-and-set. Set STRATACACHE_REDIS_URL (default redis://127.0.0.1:6379/0).
"""

import os
import time

import stratacache as sc

url = os.environ.get("STRATACACHE_REDIS_URL", "redis://127.0.0.1:6379/0")

with sc.Cache(url, namespace="ratelimit-example") as cache:
    cache.clear()
    limiter = sc.RateLimiter(cache, limit=5, period=2, algorithm="token_bucket")

    # A burst of 7 requests from one client: the bucket lets 5 through.
    decisions = [limiter.hit("client:ada") for _ in range(7)]
    print("burst of 7  ->", ["ok" if d.allowed else "429" for d in decisions])
    refused = decisions[-1]
    print(f"refused     -> retry after {refused.retry_after:.1f} s, {refused.remaining} remaining")
    print("other key   ->", limiter.hit("client:bob").allowed, "(each key has its own bucket)")

    time.sleep(refused.retry_after)  # one token is back after 2/5 s
    print("after wait  ->", limiter.hit("client:ada").allowed)

    # The decorator: every call is a hit; a refused call raises RateLimitExceeded.
    # Exports are heavier: 4 hits a minute per user, each export costing 2.
    exports = sc.RateLimiter(cache, limit=4, period=60, algorithm="sliding_window")

    @exports.limit(lambda user_id, **_: f"export:{user_id}", cost=2)
    def export(user_id: int, *, fmt: str = "csv") -> str:
        return f"report-{user_id}.{fmt}"

    results = []
    for _ in range(3):
        try:
            results.append(export(42))
        except sc.RateLimitExceeded as exc:  # in a web app: HTTP 429 with Retry-After
            results.append(f"429 (retry after {exc.retry_after:.0f} s)")
    print("export x3   ->", results)
    exports.reset("export:42")
    print("after reset ->", export(42, fmt="json"))
    cache.clear()
