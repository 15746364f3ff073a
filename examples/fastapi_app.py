"""FastAPI: whole responses cached in Redis by CacheMiddleware, the cache opened by a lifespan.

Needs `pip install 'stratacache[web,redis]'`; its TestClient needs httpx2 (in the test extra).
Set STRATACACHE_REDIS_URL (default redis://127.0.0.1:6379/0).
"""

import os

from fastapi import FastAPI
from fastapi.testclient import TestClient

import stratacache as sc
from stratacache.contrib.fastapi import CacheDep, CacheMiddleware, cache_lifespan, cache_response

url = os.environ.get("STRATACACHE_REDIS_URL", "redis://127.0.0.1:6379/0")
calls = {"item": 0, "stats": 0}

# The lifespan opens the AsyncCache at startup (pinging Redis) and closes it at shutdown.
app = FastAPI(lifespan=cache_lifespan(url, namespace="fastapi-example"))
app.add_middleware(CacheMiddleware, only_marked=True)  # cache only the routes marked below


@app.get("/items/{item_id}")
@cache_response(ttl=120)
async def read_item(item_id: int) -> dict[str, int]:
    calls["item"] += 1
    return {"item": item_id, "price": 100 * item_id}


@app.get("/stats")  # not marked: never cached, but it may use the same cache for data
async def stats(cache: CacheDep) -> dict[str, int]:
    calls["stats"] += 1
    return {"visits": await cache.incr("visits")}


with sc.Cache(url, namespace="fastapi-example") as admin:  # a sync handle, to reset the demo
    admin.clear()
    with TestClient(app) as client:  # runs the lifespan
        first = client.get("/items/7")
        second = client.get("/items/7")
        x_cache = [first.headers["x-cache"], second.headers["x-cache"]]
        print("GET /items/7 ->", second.json(), "| X-Cache:", x_cache)
        print("endpoint ran ->", calls["item"], "time(s) for 2 requests")
        revalidated = client.get("/items/7", headers={"If-None-Match": second.headers["etag"]})
        print("If-None-Match ->", revalidated.status_code, "(ETag matched; no body sent)")
        fresh = client.get("/items/7", headers={"Cache-Control": "no-cache"})
        print("no-cache     ->", fresh.headers["x-cache"], "| endpoint ran", calls["item"], "time(s)")
        print("GET /stats   ->", [client.get("/stats").json()["visits"] for _ in range(3)], "(not cached)")
    admin.clear()
