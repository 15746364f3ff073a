"""Bytes per entry of the memory backend, next to an OrderedDict LRU and cachetools, in one run.

    PYTHONPATH=src python benchmarks/bench_footprint.py [--entries 1000000]

Each contender is filled with the same small entries (key ``"k<n>"``, value ``n``) while
``tracemalloc`` records the bytes allocated; bytes per entry = traced growth / entries. The
keys and values themselves are built before tracing starts and shared by every contender,
so what is counted is each structure's own overhead per entry.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import stratacache as sc


class OrderedDictLRU:
    """The textbook LRU: an OrderedDict moved to the end on every hit."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[str, Any] = OrderedDict()

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.data.move_to_end(key)
        if len(self.data) > self.size:
            self.data.popitem(last=False)


def measure(make: Callable[[int], Any], fill: Callable[[Any, str, int], None], keys: list[str]) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    cache = make(len(keys))
    for i, key in enumerate(keys):
        fill(cache, key, i)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del cache
    return (after - before) / len(keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    keys = [f"k{i}" for i in range(args.entries)]
    _ = list(range(args.entries))  # small ints are preallocated below 257; larger are built once here

    contenders: list[tuple[str, Callable[[int], Any], Callable[[Any, str, int], None]]] = [
        ("OrderedDict LRU", OrderedDictLRU, lambda c, k, i: c.set(k, i)),
    ]
    try:
        import cachetools

        contenders.append(("cachetools.LRUCache", cachetools.LRUCache, lambda c, k, i: c.__setitem__(k, i)))
    except ImportError:  # pragma: no cover - optional peer
        pass
    for policy in ("lru", "fifo", "lfu", "tinylfu"):
        contenders.append(
            (
                f"stratacache {policy}",
                lambda n, p=policy: sc.Cache("memory", policy=p, max_entries=n),
                lambda c, k, i: c.set(k, i),
            )
        )
    contenders.append(
        (
            "stratacache lru+ttl",
            lambda n: sc.Cache("memory", policy="lru", max_entries=n),
            lambda c, k, i: c.set(k, i, ttl=3600),
        )
    )
    print(f"bytes per entry, {args.entries:,} entries (tracemalloc), Python {sys.version.split()[0]}")
    results = {name: measure(make, fill, keys) for name, make, fill in contenders}
    base = results["OrderedDict LRU"]
    for name, per_entry in results.items():
        print(f"  {name:24s} {per_entry:8.1f} B/entry   {per_entry / base:5.2f}x OrderedDict LRU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
