"""Compare-and-set: an inventory that never oversells; pull() as a one-shot token.

Four processes sell from one stock counter held in Redis with the optimistic loop:
read the entry with get_item, write the new stock with set(if_version=...), and retry
when somebody else wrote in between. Set STRATACACHE_REDIS_URL (default
redis://127.0.0.1:6379/0); `stratacache serve` works too.
"""

import multiprocessing
import os
from typing import Any

import stratacache as sc

URL = os.environ.get("STRATACACHE_REDIS_URL", "redis://127.0.0.1:6379/0")
NAMESPACE = "verbs-example"


def worker(orders: int, start: Any, results: Any) -> None:
    """One process: its own connection, then sell when every worker is ready."""
    with sc.Cache(URL, namespace=NAMESPACE) as cache:
        start.wait()  # all four start selling at the same moment
        results.put(sell(cache, orders))


def sell(cache: sc.Cache, orders: int) -> tuple[int, int]:
    """Sell up to `orders` units one at a time; return (sold, retries)."""
    sold = retries = 0
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
    with sc.Cache(URL, namespace=NAMESPACE) as cache:
        cache.clear()
        cache.set("stock", {"units": 30, "sold": 0}, ttl=300)

        # 4 processes want 10 units each (40 orders) for 30 units in stock.
        ctx = multiprocessing.get_context("fork")
        start, queue = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=worker, args=(10, start, queue)) for _ in range(4)]
        for p in procs:
            p.start()
        results = [queue.get(timeout=30) for _ in procs]
        for p in procs:
            p.join()
        sold = sum(s for s, _ in results)
        print(f"orders      -> 40 wanted, {sold} sold, {sum(r for _, r in results)} CAS retries")
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
