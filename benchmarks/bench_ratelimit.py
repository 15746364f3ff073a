"""Micro-benchmark: RateLimiter.hit() per second, one client, on memory, Redis, Memcached and
``stratacache serve``.

Run from the repository root (redis-server, memcached and the ``stratacache`` command of
this checkout must be on PATH)::

    PYTHONPATH=src python benchmarks/bench_ratelimit.py          # about 15 seconds
    PYTHONPATH=src python benchmarks/bench_ratelimit.py --quick  # about 5 seconds

Throw-away servers on free loopback ports are started and stopped by the script. Each
contender makes ``--hits`` hits over 1000 keys with a limit high enough that every hit is
counted (the write path, the costlier one), in three rounds; the best round is reported as
hits per second. Redis runs one EVALSHA per hit; memory and Memcached use ``incr`` for the
windows and compare-and-set for the token bucket. Results are in docs/patterns/rate-limiting.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _servers, next to this file

from _servers import start_memcached, start_redis, start_server

import stratacache as sc

ALGORITHMS = ("fixed_window", "sliding_window", "token_bucket")


def rate(cache: sc.Cache, algorithm: str, hits: int) -> float:
    """Best of three rounds, in hits per second."""
    limiter = sc.RateLimiter(cache, 10**8, 3600, algorithm=algorithm)
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        for i in range(hits):
            limiter.hit(f"user:{i % 1000}")
        best = max(best, hits / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer hits")
    parser.add_argument("--hits", type=int, default=None)
    args = parser.parse_args()
    hits = args.hits or (2000 if args.quick else 10000)
    ours = start_server("stratacache", lambda exe, port, _: [exe, "serve", "--port", str(port)], pin=False)
    with start_redis(pin=False) as redis, start_memcached(pin=False) as memcached, ours:
        urls = {
            "memory": "memory://",
            "redis": f"redis://127.0.0.1:{redis.port}/0",
            "memcached": f"memcached://127.0.0.1:{memcached.port}",
            "serve": f"redis://127.0.0.1:{ours.port}/0",
        }
        print(f"{'backend':<10} " + " ".join(f"{a:>15}" for a in ALGORITHMS) + "   (hits/s)")
        for name, url in urls.items():
            with sc.Cache(url) as cache:
                figures = [rate(cache, algorithm, hits) for algorithm in ALGORITHMS]
            print(f"{name:<10} " + " ".join(f"{f:>15,.0f}" for f in figures))


if __name__ == "__main__":
    main()
