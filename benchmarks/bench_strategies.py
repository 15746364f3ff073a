"""Write-behind against write-through over Redis, into a SQLite source and a remote-like source.

Run from the repository root (redis-server must be on PATH)::

    PYTHONPATH=src python benchmarks/bench_strategies.py            # about 30 seconds
    PYTHONPATH=src python benchmarks/bench_strategies.py --quick    # about 10 seconds

The script starts its own throw-away ``redis-server`` (no persistence) on a free loopback
port. Each contender makes ``--writes`` writes of a small dict, in one thread, over
``--keys`` distinct keys (cycled, so with fewer keys than writes write-behind coalesces),
through a ``Cache`` on that Redis, into one of two sources:

* ``sqlite``: a SQLite file in WAL mode with ``synchronous=FULL`` (every commit is
  fsynced); ``store`` commits one row, ``store_many`` one batch.
* ``remote``: a dict behind ``--latency`` seconds of sleep per call, like a database or
  service across a network; ``store_many`` also costs one round trip.

Two figures per contender, each the median of ``--rounds`` runs:

* ``ack/s``: writes per second as the caller sees them (the loop's wall time);
* ``durable/s``: writes per second until the source holds every write (the loop plus,
  for write-behind, ``flush()``).

Nothing here passes or fails; docs/patterns/strategies.md quotes one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import sigterm_as_exit, start_redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
import stratacache as sc

VALUE = {"id": 12345, "name": "a cached row", "tags": ["a", "b"], "score": 3.5}


class SqliteSource:
    """A SQLite table; every commit fsynced."""

    name = "sqlite"

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute("pragma journal_mode=wal")
        self.conn.execute("pragma synchronous=full")
        self.conn.execute("create table if not exists kv (key text primary key, value text)")

    def load(self, key: str) -> Any:
        row = self.conn.execute("select value from kv where key = ?", (key,)).fetchone()
        return sc.MISSING if row is None else row[0]

    def store(self, key: str, value: Any) -> None:
        self.store_many({key: value})

    def store_many(self, items: dict[str, Any]) -> None:
        with self.conn:
            self.conn.execute("begin")
            self.conn.executemany(
                "insert or replace into kv values (?, ?)", [(k, repr(v)) for k, v in items.items()]
            )

    def delete(self, key: str) -> None:
        self.conn.execute("delete from kv where key = ?", (key,))

    def count(self) -> int:
        return int(self.conn.execute("select count(*) from kv").fetchone()[0])


class RemoteSource(sc.MappingSource):
    """A dict behind a fixed round-trip time per call."""

    name = "remote"

    def __init__(self, latency: float) -> None:
        super().__init__()
        self.latency = latency

    def store(self, key: str, value: Any) -> None:
        time.sleep(self.latency)
        super().store(key, value)

    def store_many(self, items: dict[str, Any]) -> None:
        time.sleep(self.latency)
        super().store_many(items)


def run_once(
    kind: str, strategy: str, cache: sc.Cache, args: argparse.Namespace, workdir: str
) -> tuple[float, float]:
    cache.clear()
    source: Any = (
        SqliteSource(os.path.join(workdir, f"{strategy}-{time.monotonic_ns()}.db"))
        if kind == "sqlite"
        else RemoteSource(args.latency)
    )
    keys = [f"row:{i % args.keys}" for i in range(args.writes)]
    if strategy == "write-through":
        writer: Any = sc.WriteThrough(cache, source, ttl=300)
    else:
        writer = sc.WriteBehind(cache, source, ttl=300, batch_size=args.batch, flush_interval=0.05)
    started = time.perf_counter()
    for key in keys:
        writer.set(key, VALUE)
    acked = time.perf_counter() - started
    if strategy == "write-behind":
        writer.flush()
        writer.close()
    durable = time.perf_counter() - started
    return args.writes / acked, args.writes / durable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--writes", type=int, default=None)
    parser.add_argument("--keys", type=int, default=None, help="distinct keys (default: writes / 4)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--batch", type=int, default=100, help="write-behind batch_size")
    parser.add_argument("--latency", type=float, default=0.001, help="remote source round trip, s")
    args = parser.parse_args()
    args.writes = args.writes or (1000 if args.quick else 3000)
    args.keys = args.keys or args.writes // 4
    args.rounds = args.rounds or (1 if args.quick else 3)

    print(f"# {time.strftime('%Y-%m-%d')}  Python {platform.python_version()}  {platform.machine()}")
    print(f"# {args.writes} writes over {args.keys} keys, {args.rounds} round(s), batch_size={args.batch}")
    print(f"# remote source latency {args.latency * 1000:g} ms per call; cache: redis-server on loopback")
    with (
        sigterm_as_exit(),
        start_redis(pin=False) as redis,
        tempfile.TemporaryDirectory() as workdir,
        sc.Cache(f"redis://127.0.0.1:{redis.port}/0") as cache,
    ):
        print(f"{'source':<8} {'strategy':<14} {'ack/s':>10} {'durable/s':>10}")
        for kind in ("sqlite", "remote"):
            results: dict[str, tuple[float, float]] = {}
            for strategy in ("write-through", "write-behind"):
                runs = [run_once(kind, strategy, cache, args, workdir) for _ in range(args.rounds)]
                ack = statistics.median(r[0] for r in runs)
                durable = statistics.median(r[1] for r in runs)
                results[strategy] = (ack, durable)
                print(f"{kind:<8} {strategy:<14} {ack:>10,.0f} {durable:>10,.0f}")
            through, behind = results["write-through"], results["write-behind"]
            ack_ratio, durable_ratio = behind[0] / through[0], behind[1] / through[1]
            print(f"{kind:<8} {'behind/through':<14} {ack_ratio:>9.1f}x {durable_ratio:>9.1f}x")


if __name__ == "__main__":
    main()
