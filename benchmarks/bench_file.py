"""Micro-benchmark: stratacache's file backend against ``diskcache.Cache``, side by side.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_file.py             # full run, about a minute
    PYTHONPATH=src python benchmarks/bench_file.py --quick     # a few seconds
    PYTHONPATH=src python benchmarks/bench_file.py --dir /path/on/another/disk

Both caches live in fresh sub-directories of one temporary directory (``--dir``, default the
system temp dir), so they write to the same filesystem. Durability is the same on both sides:
SQLite in WAL mode with ``synchronous=NORMAL`` (diskcache's default ``sqlite_synchronous=1``
and stratacache's default ``sync="normal"``): a commit is a write() to the WAL, fsynced only
at checkpoints. The values are small (well under both inline thresholds), so they live in
SQLite on both sides.

Contenders:

* ``diskcache``: ``diskcache.Cache(dir)`` with its defaults (eviction policy
  least-recently-stored, size_limit 1 GiB, so every set also runs its cull check).
* ``stratacache``: ``Cache("file://dir")``, the defaults (unbounded: no eviction work).
* ``stratacache-bounded``: ``max_bytes`` 1 GiB with ``policy=fifo``, the like of
  diskcache's defaults (the total checked after every write; fifo needs no extra index).
* ``stratacache-lru``: the same bound with ``policy=lru`` (an access-time index moved on
  every write; hits are written in batches, so reads stay reads), compared with its
  diskcache counterpart:
* ``diskcache-lru``: ``diskcache.Cache(dir, eviction_policy='least-recently-used')``, which
  writes the access time on every get.

Each stratacache row is compared with the diskcache row of the same eviction: ``stratacache``
(no eviction) and ``stratacache-bounded`` (fifo) with diskcache's defaults
(least-recently-stored), ``stratacache-lru`` with ``diskcache-lru``.

Every number is µs per operation through each library's public sync API (stratacache's
``Cache`` facade: key check, msgpack encoding, stats; diskcache: pickling), timed with
``perf_counter`` over a loop on a pre-built key list. Contenders are interleaved round by
round (the order rotates) and the median round is reported, with the garbage collector off
while a round runs. The output's ratios (stratacache / diskcache) are what to read: absolute
numbers from a shared, noisy machine mean little.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness, next to this file
from _harness import rotations  # also puts src/ on the path when stratacache is not importable

import stratacache as sc

try:
    import diskcache
except ImportError as exc:  # pragma: no cover - a setup problem, reported plainly
    raise SystemExit(f"bench_file needs diskcache: pip install diskcache ({exc})") from exc


def make_value(i: int) -> dict[str, Any]:
    """A small record, the typical cached object (about 80 bytes serialized)."""
    return {"id": i, "name": f"user-{i}", "active": True, "score": i * 0.5, "tags": ["a", "b"]}


def timed(fn: Callable[[str, Any], Any], keys: list[str], values: list[Any]) -> float:
    """µs per call of ``fn(key, value)`` over every key."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for key, value in zip(keys, values, strict=True):
            fn(key, value)
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return elapsed / len(keys) * 1e6


def make_ops(cache: Any) -> dict[str, Callable[[str, Any], Any]]:
    """The two timed operations on one cache, as ``fn(key, value)``."""

    def set_(key: str, value: Any) -> None:
        cache.set(key, value)

    def get(key: str, _value: Any) -> None:
        cache.get(key)

    return {"set": set_, "get": get}


def main() -> None:
    """Run the interleaved rounds and print the medians and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer keys and rounds")
    parser.add_argument("--dir", default=None, help="where to create the caches (default: temp dir)")
    parser.add_argument("--keys", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    n_keys = args.keys or (1_000 if args.quick else 5_000)
    rounds = args.rounds or (3 if args.quick else 9)

    root = Path(tempfile.mkdtemp(prefix="bench-file-", dir=args.dir))
    try:
        dc = diskcache.Cache(str(root / "diskcache"))
        dc_lru = diskcache.Cache(str(root / "diskcache-lru"), eviction_policy="least-recently-used")
        ours = sc.Cache(f"file://{root / 'stratacache'}")
        bounded = sc.Cache(f"file://{root / 'bounded'}?max_bytes={2**30}&policy=fifo")
        lru = sc.Cache(f"file://{root / 'lru'}?max_bytes={2**30}&policy=lru")
        contenders: dict[str, Any] = {
            "diskcache": dc,
            "stratacache": ours,
            "stratacache-bounded": bounded,
            "stratacache-lru": lru,
            "diskcache-lru": dc_lru,
        }
        keys = [f"user:{i}" for i in range(n_keys)]
        values = [make_value(i) for i in range(n_keys)]
        ops = {name: make_ops(c) for name, c in contenders.items()}
        # Warm up: create the files and fill the page cache, then check both read back.
        for name in contenders:
            timed(ops[name]["set"], keys, values)
            timed(ops[name]["get"], keys, values)
        assert ours.get(keys[7]) == values[7]
        assert dc.get(keys[7]) == values[7]
        assert bounded.get(keys[7]) == values[7]
        assert lru.get(keys[7]) == values[7]
        assert dc_lru.get(keys[7]) == values[7]

        results: dict[tuple[str, str], list[float]] = {}
        for order in rotations(list(contenders), rounds):
            for op in ("set", "get"):
                for name in order:
                    results.setdefault((name, op), []).append(timed(ops[name][op], keys, values))
        for c in contenders.values():
            c.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"# bench_file: {n_keys} keys x {rounds} interleaved rounds, median µs/op")
    print(
        f"# {platform.python_implementation()} {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, sqlite {sqlite3.sqlite_version}, diskcache {diskcache.__version__}"
    )
    print(f"# directory: {root.parent} (same filesystem for both); durability: WAL + synchronous=NORMAL")
    print(f"{'contender':<22}{'set':>10}{'get':>10}")
    medians = {key: statistics.median(v) for key, v in results.items()}
    for name in contenders:
        print(f"{name:<22}{medians[(name, 'set')]:>10.2f}{medians[(name, 'get')]:>10.2f}")
    print()
    print(f"{'ratio':<34}{'set':>10}{'get':>10}   targets: set <= 0.50x, get <= 1.00x")
    for name, peer in (
        ("stratacache", "diskcache"),
        ("stratacache-bounded", "diskcache"),
        ("stratacache-lru", "diskcache-lru"),
    ):
        set_ratio = medians[(name, "set")] / medians[(peer, "set")]
        get_ratio = medians[(name, "get")] / medians[(peer, "get")]
        verdict = "met" if set_ratio <= 0.5 and get_ratio <= 1.0 else "MISSED"
        print(f"{name + ' / ' + peer:<34}{set_ratio:>9.2f}x{get_ratio:>9.2f}x   {verdict}")


if __name__ == "__main__":
    main()
