"""Instructions per operation (valgrind callgrind), stratacache's memory cache against peers.

Run from the repository root (needs ``valgrind``; about 5 minutes)::

    PYTHONPATH=src python benchmarks/bench_instructions.py
    PYTHONPATH=src python benchmarks/bench_instructions.py --only get_hit --ops 50000

Wall-clock timings on a shared 2-core machine swing by 30-100% between rounds (see
bench_memory.py, which reports them). An instruction count does not: callgrind counts the
same total for the same program and input whatever else the machine does. Each contender runs
in its own process under ``valgrind --tool=callgrind``, once with N operations and once with
2N; the difference divided by N is the cost of one operation, free of interpreter start-up,
imports and set-up, less that of a baseline program that builds the same key lists and loops
over them doing nothing. Instructions are not nanoseconds (cache misses and branch mispredictions
are not in them), so read the ratios as "how much work", next to bench_memory's "how long".

Scenarios (the same as bench_memory.py's): a hit on 1,000 hot keys in a full 10,000-entry
cache; a miss (the same keys with a suffix; the key concatenation is in every row alike); a
set that evicts (20,000 keys cycled through 10,000 entries); an awaited hit.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Each program reads N from argv, builds its cache and keys, then runs N operations.
PRELUDE = """
import random, sys
N = int(sys.argv[1])
random.seed(20240601)
HOT = [f"k{i}" for i in range(1000)]
KEYS = [random.choice(HOT) for _ in range(N)]
CYCLE = [f"e{i}" for i in range(20000)]
EVICT = [CYCLE[i % 20000] for i in range(N)]
"""

GET_SC = (
    PRELUDE
    + """
import stratacache as sc
c = sc.Cache("memory://?max_entries=10000&policy={policy}")
for k in HOT: c.set(k, 1)
get = c.get
for k in KEYS: get(k)
"""
)

SET_SC = (
    PRELUDE
    + """
import stratacache as sc
c = sc.Cache("memory://?max_entries=10000&policy={policy}")
for k in CYCLE: c.set(k, 1)
s = c.set
for k in EVICT: s(k, 1)
"""
)

AGET_SC = (
    PRELUDE
    + """
import asyncio, stratacache as sc
async def main():
    c = sc.AsyncCache("memory://?max_entries=10000&policy={policy}")
    for k in HOT: await c.set(k, 1)
    get = c.get
    for k in KEYS: await get(k)
asyncio.run(main())
"""
)

CACHETOOLS_GET = (
    PRELUDE
    + """
import cachetools
c = cachetools.LRUCache(10000)
for k in HOT: c[k] = 1
get = c.get
for k in KEYS: get(k)
"""
)


def missing(get_program: str) -> str:
    """A get-hit program turned into a get-miss one: the same keys with a suffix."""
    return get_program.replace("get(k)\n", "get(k + 'x')\n")


PROGRAMS: dict[str, dict[str, str]] = {
    "get_hit": {
        "Cache.get lru": GET_SC.replace("{policy}", "lru"),
        "Cache.get fifo": GET_SC.replace("{policy}", "fifo"),
        "Cache.get random": GET_SC.replace("{policy}", "random"),
        "Cache.get lfu": GET_SC.replace("{policy}", "lfu"),
        "Cache.get tinylfu": GET_SC.replace("{policy}", "tinylfu"),
        "cachetools.LRUCache.get": CACHETOOLS_GET,
        "theine.Cache.get": PRELUDE
        + """
import theine
c = theine.Cache(10000, nolock=True)
for k in HOT: c.set(k, 1)
get = c.get
for k in KEYS: get(k)
""",
    },
    "get_miss": {
        "Cache.get lru": missing(GET_SC.replace("{policy}", "lru")),
        "Cache.get tinylfu": missing(GET_SC.replace("{policy}", "tinylfu")),
        "cachetools.LRUCache.get": missing(CACHETOOLS_GET),
    },
    "set_evict": {
        "Cache.set lru": SET_SC.replace("{policy}", "lru"),
        "Cache.set tinylfu": SET_SC.replace("{policy}", "tinylfu"),
        "cachetools.LRUCache[k]=v": PRELUDE
        + """
import cachetools
c = cachetools.LRUCache(10000)
for k in CYCLE: c[k] = 1
s = c.__setitem__
for k in EVICT: s(k, 1)
""",
        "theine.Cache.set": PRELUDE
        + """
import theine
c = theine.Cache(10000, nolock=True)
for k in CYCLE: c.set(k, 1)
s = c.set
for k in EVICT: s(k, 1)
""",
    },
    "async_get_hit": {
        "AsyncCache.get lru": AGET_SC.replace("{policy}", "lru"),
        "AsyncCache.get tinylfu": AGET_SC.replace("{policy}", "tinylfu"),
        "aiocache.SimpleMemoryCache.get": PRELUDE
        + """
import asyncio
from aiocache import SimpleMemoryCache
async def main():
    c = SimpleMemoryCache(timeout=None)
    for k in HOT: await c.set(k, 1)
    get = c.get
    for k in KEYS: await get(k)
asyncio.run(main())
""",
    },
}

# Which rows each scenario's stratacache rows are compared with (the targets).
PEERS = {
    "get_hit": ["cachetools.LRUCache.get", "theine.Cache.get"],
    "get_miss": ["cachetools.LRUCache.get"],
    "set_evict": ["cachetools.LRUCache[k]=v", "theine.Cache.set"],
    "async_get_hit": ["aiocache.SimpleMemoryCache.get"],
}


def instructions(program: str, ops: int, workdir: Path) -> int:
    """Total instructions of ``program`` run with ``ops`` operations, under callgrind."""
    script = workdir / "program.py"
    script.write_text(program)
    out = workdir / "callgrind.out"
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(script),
            str(ops),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"program failed under valgrind:\n{result.stderr[-2000:]}")
    match = re.search(r"Collected\s*:\s*(\d+)", result.stderr) or re.search(
        r"I\s+refs:\s+([\d,]+)", result.stderr
    )
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{result.stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def per_op(program: str, ops: int, workdir: Path) -> float:
    """Instructions of one operation: (I(2N) - I(N)) / N."""
    return (instructions(program, 2 * ops, workdir) - instructions(program, ops, workdir)) / ops


# The same prelude and an empty loop over both key lists: what building N keys and looping
# over them costs. It is subtracted from every contender, so a row is the operation alone.
BASELINE = (
    PRELUDE
    + """
for k in KEYS: pass
for k in EVICT: pass
"""
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=100_000, help="N (the runs do N and 2N operations)")
    parser.add_argument("--only", choices=sorted(PROGRAMS), action="append", help="run only these scenarios")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    print(f"instructions per operation, valgrind callgrind, N={args.ops:,} (I(2N) - I(N)) / N")
    print(f"Python {sys.version.split()[0]}; PYTHONHASHSEED=0; * = stratacache")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        baseline = per_op(BASELINE, args.ops, workdir)
        print(f"baseline (building the keys, the bare loop): {baseline:,.0f} per operation, subtracted")
        for scenario in args.only or list(PROGRAMS):
            programs = PROGRAMS[scenario]
            counts = {
                name: per_op(program, args.ops, workdir) - baseline for name, program in programs.items()
            }
            peers = [p for p in PEERS[scenario] if p in counts]
            print(f"\n{scenario}")
            header = f"  {'contender':34s} {'instr/op':>10s}" + "".join(f"  {'/ ' + p:>30s}" for p in peers)
            print(header)
            for name, count in counts.items():
                ours = name not in PEERS[scenario]
                ratios = "".join(f"  {count / counts[p]:>29.2f}x" for p in peers) if ours else ""
                print(f"{'*' if ours else ' '} {name:34s} {count:>10,.0f}{ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
