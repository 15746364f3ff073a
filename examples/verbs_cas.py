"""Compare-and-set: an inventory that never oversells; pull() as a one-shot token.

Four processes sell from one stock counter held in Redis with the optimistic loop:
read the entry with get_item, write the new stock with set(if_version=...), and retry
when somebody else wrote in between. Set STRATACACHE_REDIS_URL (default
redis://127.0.0.1:6379/0); `stratacache serve` works too.
"""

import multiprocessing
import os

import stratacache as sc

URL = os.environ.get("STRATACACHE_REDIS_URL", "redis://127.0.0.1:6379/0")
NAMESPACE = "verbs-example"


def sell(orders: int) -> tuple[int, int]:
    """Try to sell `orders` units one at a time; return (sold, retries)."""
    sold = retries = 0
    with sc.Cache(URL, namespace=NAMESPACE) as cache:
        for _ in range(orders):
            while True:
                item = cache.get_item("stock")
                if item is None or item.value["units"] == 0:
                    return sold, retries  # sold out (or never stocked)
                new = {"units": item.value["units"] - 1, "sold": item.value["sold"] + 1}
                if cache.set("stock", new, ttl=300, if_version=item.version):
                    sold += 1
                    break
                retries += 1  # another process wrote since our get_item: read again
    return sold, retries


def main() -> None:
    # The workers start before this process opens a connection (fork is the quick start).
    with multiprocessing.get_context("fork").Pool(4) as pool, sc.Cache(URL, namespace=NAMESPACE) as cache:
        cache.clear()
        cache.set("stock", {"units": 50, "sold": 0}, ttl=300)

        # 4 processes want 20 units each (80 orders) for 50 units in stock.
        results = pool.map(sell, [20, 20, 20, 20])
        sold = sum(s for s, _ in results)
        print(f"orders      -> 80 wanted, {sold} sold, {sum(r for _, r in results)} CAS retries")
        print("stock now   ->", cache.get("stock"))

        # pull(): atomic get-and-delete, so a one-time token is redeemed exactly once.
        cache.set("reset-token:ada", "user-1", ttl=900)
        print("first pull  ->", cache.pull("reset-token:ada"))
        print("second pull ->", cache.pull("reset-token:ada", "<already used>"))

        # replace(): only if present; a stale version no longer matches.
        old = cache.get_item("stock")
        assert old is not None
        print("replace     ->", cache.replace("stock", {"units": 10, "sold": 0}), "(restocked)")
        print("stale CAS   ->", cache.set("stock", {"units": 0, "sold": 0}, if_version=old.version))
        cache.clear()


if __name__ == "__main__":
    main()
