"""Stampede control across processes: a distributed lease and stale-while-revalidate.

Four worker processes ask for the same expensive report at the same moment, three times:
when the key is cold, again after its ttl ran out (inside the stale-while-revalidate
window), and once more with the lease turned off for comparison. The loader counts its
runs in Redis. Set STRATACACHE_REDIS_URL (default redis://127.0.0.1:6379/0).
"""

import multiprocessing
import os
import time
from typing import Any, Literal

import stratacache as sc

URL = os.environ.get("STRATACACHE_REDIS_URL", "redis://127.0.0.1:6379/0")
NAMESPACE = "stampede-example"
WORKERS = 4
POLICY = sc.StampedePolicy(
    lease_ttl=5,  # above the slowest load: a second loader only starts if the first died
    wait_timeout=10,
    stale_while_revalidate=30,  # after the ttl, serve the old report while one caller reloads
    backoff_max=0.05,
)


def build_report(cache: sc.Cache) -> dict[str, Any]:
    run = cache.incr("loader-runs")  # count the runs where every process can see them
    time.sleep(0.3)  # an expensive query
    return {"report": "sales", "build": run}


def worker(key: str, policy: sc.StampedePolicy | Literal[False], start: Any, results: Any) -> None:
    with sc.Cache(URL, namespace=NAMESPACE) as cache:
        start.wait()  # all four ask at the same moment
        results.put(cache.get_or_set(key, lambda: build_report(cache), ttl=0.5, policy=policy)["build"])


def round_of(key: str, policy: sc.StampedePolicy | Literal[False]) -> list[int]:
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(key, policy, start, results)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    builds = sorted(results.get(timeout=30) for _ in procs)
    for p in procs:
        p.join()
    return builds


def main() -> None:
    with sc.Cache(URL, namespace=NAMESPACE) as cache:
        cache.clear()
        builds = round_of("report", POLICY)
        print(f"cold key, lease:    loader ran {cache.get('loader-runs')} time(s); builds seen {builds}")

        time.sleep(0.6)  # the report's ttl (0.5 s) runs out; it stays servable for 30 s more
        builds = round_of("report", POLICY)
        print(f"stale key, SWR:     loader ran {cache.get('loader-runs') - 1} time(s); builds seen {builds}")

        cache.set("loader-runs", 0)
        builds = round_of("report-2", False)  # single-flight inside each process only
        print(f"cold key, no lease: loader ran {cache.get('loader-runs')} time(s)")
        cache.clear()


if __name__ == "__main__":
    main()
