"""The async API: the same methods, awaited; concurrent misses of one key load it once."""

import asyncio

import stratacache as sc

loads: list[int] = []


async def fetch_user(user_id: int) -> dict[str, int]:
    loads.append(user_id)
    await asyncio.sleep(0.01)  # a database round trip
    return {"id": user_id}


async def main() -> None:
    async with sc.AsyncCache("memory://", namespace="app") as cache:
        await cache.set("greeting", "hello", ttl=30)
        print("get greeting ->", await cache.get("greeting"))
        # Ten concurrent misses of one key: fetch_user runs once (single-flight).
        users = await asyncio.gather(*(cache.get_or_set("user:7", lambda: fetch_user(7)) for _ in range(10)))
        print(f"10 callers got {users[0]}; the loader ran {len(loads)} time(s)")

        @sc.cached(cache, ttl=60)
        async def square(n: int) -> int:
            return n * n

        print("square(12)   ->", await square(12), "(cached:", await square(12), ")")


asyncio.run(main())
