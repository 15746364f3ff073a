"""Does lock striping help the memory store? Throughput of N threads on one store vs N stripes.

    PYTHONPATH=src python benchmarks/bench_striping.py [--threads 4] [--seconds 2]

Each thread runs a mixed workload (80% get, 20% set over 10,000 keys). "1 lock" is one
MemoryStore; "striped" hashes each key to one of ``--stripes`` stores, each with its own lock
(what a ``shards=`` option would do). Both run in the same process, one after the other,
twice, interleaved.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from stratacache.core.memory_store import MemoryStore


def run(stores: list[MemoryStore], threads: int, seconds: float) -> float:
    keys = [f"k{i}" for i in range(10_000)]
    n = len(stores)
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def worker(t: int) -> None:
        rng = random.Random(t)
        ops = 0
        while time.monotonic() < stop:
            for _ in range(500):
                key = keys[rng.randrange(10_000)]
                store = stores[hash(key) % n]
                if rng.random() < 0.8:
                    store.get(key)
                else:
                    store.set(key, key, None)
                ops += 1
        counts[t] = ops

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return sum(counts) / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--stripes", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--policy", default="tinylfu")
    args = parser.parse_args(argv)
    results: dict[str, list[float]] = {"1 lock": [], "striped": []}
    for _ in range(2):
        one = [MemoryStore(max_entries=5_000, policy=args.policy)]
        striped = [
            MemoryStore(max_entries=5_000 // args.stripes, policy=args.policy) for _ in range(args.stripes)
        ]
        results["1 lock"].append(run(one, args.threads, args.seconds))
        results["striped"].append(run(striped, args.threads, args.seconds))
    print(f"policy={args.policy} threads={args.threads} stripes={args.stripes} (ops/s, best of 2)")
    best = {name: max(v) for name, v in results.items()}
    for name, value in best.items():
        print(f"  {name:8s} {value:12,.0f} ops/s")
    print(f"  striped / 1 lock = {best['striped'] / best['1 lock']:.2f}x throughput")
    return 0


if __name__ == "__main__":
    sys.exit(main())
