"""Run the stratacache server inside this process and talk to it with any Redis client."""

import redis

import stratacache as sc
from stratacache.server import ServerConfig, ServerThread

# port=0: the OS picks a free port; save="": no snapshot file written at exit.
with ServerThread(ServerConfig(port=0, save="")) as server:
    url = f"redis://127.0.0.1:{server.port}/0"
    print("serving on", url)
    with sc.Cache(url, namespace="app") as cache:
        cache.set("greeting", "hello", ttl=60)
        print("stratacache get ->", cache.get("greeting"))
    client = redis.Redis(port=server.port)
    client.set("plain", "set by redis-py")
    print("redis-py get    ->", client.get("plain"))
    print("DBSIZE          ->", client.dbsize())
    client.close()
