"""Hit ratio (and per-request cost) of stratacache's eviction policies against peers.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_hit_ratio.py                      # ~1-2 minutes
    PYTHONPATH=src python benchmarks/bench_hit_ratio.py --traces DIR --json out.json

For every trace in the directory (default ``/work/shared/traces``, the LIRS traces of
Caffeine's simulator; see its README) and for cache sizes of 2% and 10% of the trace's
distinct keys (``max(8, int(distinct * frac))``), every contender replays the whole trace as
"get; on a miss, set":

* ours: ``lru``, ``lfu``, ``fifo``, ``random`` and ``tinylfu``, driven directly through
  :func:`stratacache.core.simulate.simulate` (a set of resident keys plus the policy);
* theine 2.x (``from theine import Cache``; W-TinyLFU with a fixed 1% window, Rust core);
* cachetools ``LRUCache`` (a reference: our ``lru`` must match it exactly);
* OPT (Belady's offline optimum with bypass), copied from the traces' README.

Trace keys are integers, replayed as Python ints so that hashing is the same from run to
run (str hashes are salted per process). The randomized contenders are replayed ``--seeds``
times (default 5) and their mean is reported: ``random`` and ``tinylfu`` with seeds 1..N
(tinylfu's seed salts its sketch's hash and drives the admission coin), theine with a fresh
cache each time (it salts its hashes per instance). On a few rows one run of W-TinyLFU can
differ from another by several points (the hill climber amplifies small differences), so a
single seed would flatter or wrong it; the ``tinylfu range`` column shows the spread.

Every contender runs in this one process, one after the other, so the table compares like
with like. The second table is the cost per simulated request (total time / requests over all
traces and sizes), a ratio to cachetools in the same run; it is not a pure policy cost for the
peers, which are whole caches (theine also buffers and locks), and nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

try:
    from stratacache.core.simulate import read_trace, simulate
except ImportError:  # running without PYTHONPATH=src: use the checkout this file lives in
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from stratacache.core.simulate import read_trace, simulate

try:
    import cachetools
except ImportError:  # pragma: no cover - a peer is optional
    cachetools = None
try:
    import theine
except ImportError:  # pragma: no cover
    theine = None

OURS = ["lru", "lfu", "fifo", "random", "tinylfu"]
RANDOMIZED = {"random", "tinylfu", "theine"}
FRACTIONS = (0.02, 0.10)
TARGET_ROW = -1.0  # tinylfu >= max(lru, theine) - 1 point on every row
TARGET_MEAN = 1.0  # mean(tinylfu) >= mean(per-row max(lru, theine)) + 1 point


@dataclass
class Row:
    trace: str
    requests: int
    distinct: int
    size: int
    opt: float | None
    ratios: dict[str, float]  # contender -> hit ratio in percent (mean over repetitions)
    seconds: dict[str, float]  # contender -> replay time (mean over repetitions)
    spread: dict[str, tuple[float, float]]  # contender -> (min, max) hit ratio over repetitions


def load_keys(path: Path) -> list[Hashable]:
    raw = list(read_trace(path))
    return [int(k) for k in raw] if all(k.isdigit() for k in raw) else list(raw)


def readme_opt(directory: Path) -> dict[tuple[str, int], float]:
    """(trace, size) -> OPT hit ratio from the README table (empty if there is none)."""
    readme = directory / "README.md"
    table: dict[tuple[str, int], float] = {}
    if not readme.exists():
        return table
    for line in readme.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[2].isdigit() and cells[3].isdigit():
            table[(cells[0], int(cells[3]))] = float(cells[4])
    return table


Runner = Callable[[list[Hashable], int, int], int]  # (keys, size, seed) -> hits


def run_ours(name: str) -> Runner:
    def run(keys: list[Hashable], size: int, seed: int) -> int:
        kwargs = {"seed": seed} if name in RANDOMIZED else {}
        return simulate(keys, name, size, **kwargs).hits

    return run


def run_theine(keys: list[Hashable], size: int, seed: int) -> int:
    cache = theine.Cache(size)
    get, put = cache.get, cache.set
    hits = 0
    for key in keys:
        _, ok = get(key)
        if ok:
            hits += 1
        else:
            put(key, key)
    cache.close()
    return hits


def run_cachetools(keys: list[Hashable], size: int, seed: int) -> int:
    cache = cachetools.LRUCache(maxsize=size)
    get = cache.get
    miss = object()
    hits = 0
    for key in keys:
        if get(key, miss) is miss:
            cache[key] = key
        else:
            hits += 1
    return hits


def run_baseline(keys: list[Hashable], size: int, seed: int) -> int:
    """The harness alone: the resident set of ``simulate`` with no policy (never evicts)."""
    resident: set[Hashable] = set()
    hits = 0
    for key in keys:
        if key in resident:
            hits += 1
        else:
            resident.add(key)
    return hits


def contenders() -> dict[str, Runner]:
    table = {name: run_ours(name) for name in OURS}
    if theine is not None:
        table["theine"] = run_theine
    if cachetools is not None:
        table["cachetools-lru"] = run_cachetools
    table["baseline"] = run_baseline
    return table


def measure(directory: Path, seeds: int) -> list[Row]:
    opt = readme_opt(directory)
    runners = contenders()
    rows = []
    for path in sorted(directory.glob("*.trace*")):
        name = path.name.split(".")[0]
        keys = load_keys(path)
        distinct = len(set(keys))
        for frac in FRACTIONS:
            size = max(8, int(distinct * frac))
            row = Row(name, len(keys), distinct, size, opt.get((name, size)), {}, {}, {})
            for contender, run in runners.items():
                ratios = []
                elapsed = 0.0
                for seed in range(1, (seeds if contender in RANDOMIZED else 1) + 1):
                    gc.collect()
                    start = time.perf_counter()
                    hits = run(keys, size, seed)
                    elapsed += time.perf_counter() - start
                    ratios.append(100 * hits / len(keys))
                row.ratios[contender] = sum(ratios) / len(ratios)
                row.seconds[contender] = elapsed / len(ratios)
                row.spread[contender] = (min(ratios), max(ratios))
            rows.append(row)
            print(f"  measured {name} @ {size}", file=sys.stderr, flush=True)
    return rows


def fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def reference(row: Row) -> float:
    """The per-row bar: the better of plain LRU and theine."""
    return max(row.ratios["lru"], row.ratios.get("theine", 0.0))


def hit_ratio_table(rows: Sequence[Row]) -> str:
    peers = [c for c in ("theine", "cachetools-lru") if c in rows[0].ratios]
    head = ["trace", "requests", "distinct", "size", "OPT", *OURS, "tinylfu range", *peers]
    head.append("tinylfu - max(lru, theine)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(head) - 3)]
    for r in rows:
        cells = [r.trace, str(r.requests), str(r.distinct), str(r.size), fmt(r.opt)]
        cells += [fmt(r.ratios[c]) for c in OURS]
        low, high = r.spread["tinylfu"]
        cells.append(f"{low:.2f}-{high:.2f}")
        cells += [fmt(r.ratios[c]) for c in peers]
        cells.append(f"{r.ratios['tinylfu'] - reference(r):+.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    n = len(rows)
    mean = [
        "**mean**",
        "",
        "",
        "",
        fmt(sum(r.opt or 0 for r in rows) / n if all(r.opt for r in rows) else None),
    ]
    mean += [fmt(sum(r.ratios[c] for r in rows) / n) for c in OURS]
    mean.append("")
    mean += [fmt(sum(r.ratios[c] for r in rows) / n) for c in peers]
    mean.append(f"{sum(r.ratios['tinylfu'] - reference(r) for r in rows) / n:+.2f}")
    lines.append("| " + " | ".join(mean) + " |")
    return "\n".join(lines)


def targets(rows: Sequence[Row]) -> str:
    out = []
    failing = [r for r in rows if r.ratios["tinylfu"] < reference(r) + TARGET_ROW]
    worst = min(rows, key=lambda r: r.ratios["tinylfu"] - reference(r))
    out.append(
        f"per row, tinylfu >= max(lru, theine) - 1.0: {len(rows) - len(failing)}/{len(rows)} rows met"
        f"; worst margin {worst.ratios['tinylfu'] - reference(worst):+.2f} ({worst.trace} @ {worst.size})"
    )
    for r in failing:
        out.append(
            f"    NOT MET {r.trace} @ {r.size}: tinylfu {r.ratios['tinylfu']:.2f} vs "
            f"max(lru {r.ratios['lru']:.2f}, theine {r.ratios.get('theine', 0):.2f})"
        )
    n = len(rows)
    mean_tinylfu = sum(r.ratios["tinylfu"] for r in rows) / n
    mean_best = sum(reference(r) for r in rows) / n
    verdict = "met" if mean_tinylfu >= mean_best + TARGET_MEAN else "NOT MET"
    out.append(
        f"mean: tinylfu {mean_tinylfu:.2f} vs mean of per-row max(lru, theine) {mean_best:.2f} "
        f"+ 1.00 = {mean_best + TARGET_MEAN:.2f}: {verdict} ({mean_tinylfu - mean_best - TARGET_MEAN:+.2f})"
    )
    if "cachetools-lru" in rows[0].ratios:
        same = all(r.ratios["lru"] == r.ratios["cachetools-lru"] for r in rows)
        out.append(f"lru == cachetools LRUCache on every row: {'yes' if same else 'NO'}")
    return "\n".join(out)


def cost_table(rows: Sequence[Row]) -> str:
    total = sum(r.requests for r in rows)
    names = list(rows[0].seconds)
    per = {c: 1e9 * sum(r.seconds[c] for r in rows) / total for c in names}
    ref = per.get("cachetools-lru")
    lines = ["| contender | ns / request | x cachetools LRU |", "|---|---:|---:|"]
    for c in names:
        ratio = f"{per[c] / ref:.2f}" if ref else ""
        lines.append(f"| {c} | {per[c]:.0f} | {ratio} |")
    return "\n".join(lines)


def header() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [
        f"python {platform.python_version()}",
        f"theine {getattr(theine, '__version__', 'installed') if theine else 'missing'}",
        f"cachetools {cachetools.__version__ if cachetools else 'missing'}",
    ]
    return (
        f"# bench_hit_ratio {datetime.now():%Y-%m-%d %H:%M} | {cpu} x{os.cpu_count()} | {', '.join(versions)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=Path, default=Path("/work/shared/traces"))
    parser.add_argument("--seeds", type=int, default=5, help="runs of each randomized contender")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    args = parser.parse_args(argv)
    rows = measure(args.traces, max(1, args.seeds))
    if not rows:
        print(f"no *.trace* files in {args.traces}", file=sys.stderr)
        return 1
    print(header())
    print()
    print(
        "## Hit ratio, % of requests (get; on a miss, set)"
        f"; random, tinylfu, theine: mean of {args.seeds} runs"
    )
    print()
    print(hit_ratio_table(rows))
    print()
    print("## Targets")
    print()
    print(targets(rows))
    print()
    print("## Cost per simulated request (all traces and sizes, same run)")
    print()
    print(cost_table(rows))
    print()
    print(
        "baseline = the replay loop and resident set alone (no policy, no eviction); ours = baseline "
        "+ policy calls; theine and cachetools are whole caches (they also store values)."
    )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
