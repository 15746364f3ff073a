"""@cached on sync and async functions: keys, invalidation, single-flight, errors not cached."""

import asyncio

import stratacache as sc

cache = sc.Cache("memory://")
calls: list[int] = []


@sc.cached(cache, ttl=60)
def price(product_id: int, currency: str = "EUR") -> float:
    calls.append(product_id)
    return 9.99


price(1)
price(1)
price(1, currency="USD")
print("calls:", calls, "key:", price.cache_key(1))
price.invalidate(1)
price(1)
print("after invalidate:", calls)


@sc.cached(cache, key=lambda user_id: f"user:{user_id}")
def load_user(user_id: int) -> dict[str, int]:
    if user_id < 0:
        raise ValueError("no such user")
    return {"id": user_id}


print("custom key:", load_user(5), cache.get("user:5"))
try:
    load_user(-1)
except ValueError as exc:
    print("errors are raised, not cached:", exc, cache.get("user:-1", "<miss>"))


async def main() -> None:
    async with sc.AsyncCache("memory://") as acache:

        @sc.cached(acache, ttl=30)
        async def slow_square(n: int) -> int:
            await asyncio.sleep(0.01)
            return n * n

        print("async:", await asyncio.gather(*(slow_square(4) for _ in range(5))))


asyncio.run(main())
cache.close()
