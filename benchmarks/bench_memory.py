"""Micro-benchmark: stratacache's memory cache against in-process peers.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_memory.py            # full run, about 1.5 minutes
    PYTHONPATH=src python benchmarks/bench_memory.py --quick    # about 10 seconds
    PYTHONPATH=src python benchmarks/bench_memory.py --json out.json --layers

Every number is ns per operation, measured with ``time.perf_counter_ns`` around a batched
loop of N operations over a pre-built key list. Contenders are interleaved round by round
(the order rotates every round) so machine drift hits them all alike; the median round is
reported. The garbage collector is off while a round is timed. The output is a set of
RATIOS to peers measured in the same run: absolute numbers from a shared, noisy machine
mean little on their own, and nothing here passes or fails. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import random
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness, next to this file
from _harness import (  # also puts src/ on the path when stratacache is not importable
    ROLE_FLOOR,
    ROLE_PEER,
    ROLE_SC,
    Contender,
    Scenario,
    Style,
    aloop_call1,
    loop_call1,
    loop_call2,
    machine_json,
    print_machine,
    print_scenario,
    run_async,
    run_sync,
    scenario_json,
    versions,
    write_json,
)

import stratacache as sc


def _optional(name: str) -> Any:
    """A peer library, or None when it is not installed (its rows are then skipped)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


cachetools = _optional("cachetools")
cachebox = _optional("cachebox")
theine = _optional("theine")
aiocache = _optional("aiocache")

CAPACITY = 10_000  # entries in every bounded cache
HOT = 1_000  # keys the get/overwrite loops draw from
EVICT_CYCLE = 2 * CAPACITY  # keys cycled through by the eviction loop
TTL = 600  # seconds, for the per-entry-TTL variants
SEED = 20240601
STYLE = Style(count="ops", digits=1, ratio_digits=2, sc_ratio_rows=True)


# --------------------------------------------------------------------------- loops
# The call loops beyond _harness's (loop_call1, loop_call2, aloop_call1): subscripts, a ttl
# keyword, a bare loop; the same overhead rule (FOR_ITER + one call or subscript).


def loop_subscript(c: Any, keys: list[str]) -> None:
    for k in keys:
        c[k]


def loop_subscript_miss(c: Any, keys: list[str]) -> None:
    for k in keys:
        # Not contextlib.suppress: that is a Python-level context manager and would dominate.
        try:  # noqa: SIM105
            c[k]
        except KeyError:
            pass


def loop_call_ttl(fn: Callable[..., Any], keys: list[str], value: Any) -> None:
    for k in keys:
        fn(k, value, ttl=TTL)


def loop_setitem(c: Any, keys: list[str], value: Any) -> None:
    for k in keys:
        c[k] = value


def loop_pass(_: Any, keys: list[str]) -> None:
    for _k in keys:
        pass


def _value(i: int) -> dict[str, Any]:
    return {"id": i, "name": f"user-{i}"}


class Keys:
    """Every key list, built once, outside any timed region."""

    def __init__(self, ops: int) -> None:
        rng = random.Random(SEED)
        self.all = [f"key:{i}" for i in range(CAPACITY)]
        self.hot = rng.sample(self.all, HOT)
        self.hot_ops = [self.hot[rng.randrange(HOT)] for _ in range(ops)]
        self.missing = [f"miss:{i}" for i in range(HOT)]
        self.miss_ops = [self.missing[rng.randrange(HOT)] for _ in range(ops)]
        cycle = [f"evict:{i}" for i in range(EVICT_CYCLE)]
        # A whole number of cycles, so every round continues the cycle where the last one
        # stopped and every set is a new key that pushes the oldest one out.
        self.evict_cycle = cycle
        self.evict_ops = cycle * max(1, round(ops / EVICT_CYCLE))
        self.set_value = _value(-1)


def _fill(setter: Callable[[str, Any], Any], keys: list[str]) -> None:
    for i, k in enumerate(keys):
        setter(k, _value(i))


class SyncCaches:
    """Fresh, filled instances of every sync contender (one set per scenario)."""

    def __init__(self, keys: Keys, *, fill: bool = True) -> None:
        url = f"memory://?max_entries={CAPACITY}&policy=lru"
        self.sc = sc.Cache(url)
        self.sc_ttl = sc.Cache(url)
        self.sc_msgpack = sc.Cache(url, serializer="msgpack")
        # The default policy (tinylfu) and the access-free ones, for the policy rows.
        self.sc_tinylfu = sc.Cache(f"memory://?max_entries={CAPACITY}&policy=tinylfu")
        self.sc_fifo = sc.Cache(f"memory://?max_entries={CAPACITY}&policy=fifo")
        self.sc_lfu = sc.Cache(f"memory://?max_entries={CAPACITY}&policy=lfu")
        self.sc_random = sc.Cache(f"memory://?max_entries={CAPACITY}&policy=random")
        self.ct_lru: Any = cachetools.LRUCache(CAPACITY) if cachetools else None
        self.ct_ttl: Any = cachetools.TTLCache(CAPACITY, ttl=TTL) if cachetools else None
        self.cb_lru: Any = cachebox.LRUCache(CAPACITY) if cachebox else None
        self.th: Any = _theine_cache() if theine else None
        self.dict: dict[str, Any] = {}
        self.extra: list[Any] = []  # more stratacache caches to close
        if fill:
            _fill(self.sc.set, keys.all)
            _fill(lambda k, v: self.sc_ttl.set(k, v, ttl=TTL), keys.all)
            _fill(self.sc_msgpack.set, keys.all)
            for extra in (self.sc_tinylfu, self.sc_fifo, self.sc_lfu, self.sc_random):
                _fill(extra.set, keys.all)
            for c in (self.ct_lru, self.ct_ttl, self.cb_lru, self.dict):
                if c is not None:
                    _fill(c.__setitem__, keys.all)
            if self.th is not None:
                _fill(self.th.set, keys.all)

    def close(self) -> None:
        for c in (
            self.sc,
            self.sc_ttl,
            self.sc_msgpack,
            self.sc_tinylfu,
            self.sc_fifo,
            self.sc_lfu,
            self.sc_random,
            *self.extra,
        ):
            c.close()
        if self.th is not None:
            self.th.close()


def _theine_cache() -> Any:
    try:
        return theine.Cache(CAPACITY, nolock=True)
    except TypeError:  # an older theine without nolock
        return theine.Cache(CAPACITY)


def _probes(c: SyncCaches) -> dict[str, Callable[[str], bool]]:
    """Per get contender: is ``key`` present, asked through that cache's own API."""

    def in_sc(cache: Any) -> Callable[[str], bool]:
        return lambda k: cache.get(k, sc.MISSING) is not sc.MISSING

    probes: dict[str, Callable[[str], bool]] = {
        "Cache.get": in_sc(c.sc),
        "Cache.get [ttl]": in_sc(c.sc_ttl),
        "Cache.get [msgpack]": in_sc(c.sc_msgpack),
        "Cache.get [tinylfu]": in_sc(c.sc_tinylfu),
        "Cache.get [fifo]": in_sc(c.sc_fifo),
        "Cache.get [lfu]": in_sc(c.sc_lfu),
        "Cache.get [random]": in_sc(c.sc_random),
        "dict.get": c.dict.__contains__,
    }
    if c.ct_lru is not None:
        probes["cachetools.LRUCache[k]"] = probes["cachetools.LRUCache.get"] = c.ct_lru.__contains__
        probes["cachetools.TTLCache.get"] = c.ct_ttl.__contains__
    if c.cb_lru is not None:
        probes["cachebox.LRUCache.get"] = c.cb_lru.__contains__
    if c.th is not None:
        probes["theine.Cache.get"] = lambda k: bool(c.th.get(k)[1])
    return probes


def get_contenders(c: SyncCaches, ops: list[str], *, miss: bool) -> list[Contender]:
    C = Contender
    out = [
        C("Cache.get", ROLE_SC, lambda: loop_call1(c.sc.get, ops), "lru, default stats on"),
        C("Cache.get [ttl]", ROLE_SC, lambda: loop_call1(c.sc_ttl.get, ops), f"entries set with ttl={TTL}"),
        C("Cache.get [msgpack]", ROLE_SC, lambda: loop_call1(c.sc_msgpack.get, ops), 'serializer="msgpack"'),
        C("Cache.get [tinylfu]", ROLE_SC, lambda: loop_call1(c.sc_tinylfu.get, ops), "the default policy"),
        C("Cache.get [fifo]", ROLE_SC, lambda: loop_call1(c.sc_fifo.get, ops), "policy=fifo"),
        C("Cache.get [lfu]", ROLE_SC, lambda: loop_call1(c.sc_lfu.get, ops), "policy=lfu"),
        C("Cache.get [random]", ROLE_SC, lambda: loop_call1(c.sc_random.get, ops), "policy=random"),
    ]
    if c.ct_lru is not None:
        lru, ttl = c.ct_lru, c.ct_ttl
        if miss:
            out.append(
                C(
                    "cachetools.LRUCache[k]",
                    ROLE_PEER,
                    lambda: loop_subscript_miss(lru, ops),
                    "try/except KeyError",
                )
            )
        else:
            out.append(C("cachetools.LRUCache[k]", ROLE_PEER, lambda: loop_subscript(lru, ops)))
        out.append(C("cachetools.LRUCache.get", ROLE_PEER, lambda: loop_call1(lru.get, ops)))
        out.append(C("cachetools.TTLCache.get", ROLE_PEER, lambda: loop_call1(ttl.get, ops), f"ttl={TTL}"))
    if c.cb_lru is not None:
        box = c.cb_lru
        out.append(C("cachebox.LRUCache.get", ROLE_PEER, lambda: loop_call1(box.get, ops), "Rust"))
    if c.th is not None:
        th = c.th
        out.append(
            C("theine.Cache.get", ROLE_PEER, lambda: loop_call1(th.get, ops), "nolock=True, W-TinyLFU")
        )
    out.append(C("dict.get", ROLE_FLOOR, lambda: loop_call1(c.dict.get, ops), "no eviction, floor"))
    return out


def set_contenders(c: SyncCaches, ops: list[str], value: Any, *, evict: bool) -> list[Contender]:
    C = Contender
    out = [
        C("Cache.set", ROLE_SC, lambda: loop_call2(c.sc.set, ops, value), "lru, default stats on"),
        C("Cache.set [ttl]", ROLE_SC, lambda: loop_call_ttl(c.sc_ttl.set, ops, value), f"ttl={TTL} per call"),
        C(
            "Cache.set [msgpack]",
            ROLE_SC,
            lambda: loop_call2(c.sc_msgpack.set, ops, value),
            'serializer="msgpack"',
        ),
        C(
            "Cache.set [tinylfu]",
            ROLE_SC,
            lambda: loop_call2(c.sc_tinylfu.set, ops, value),
            "the default policy",
        ),
    ]
    if c.ct_lru is not None:
        lru, ttl = c.ct_lru, c.ct_ttl
        out.append(C("cachetools.LRUCache[k]=v", ROLE_PEER, lambda: loop_setitem(lru, ops, value)))
        out.append(
            C("cachetools.TTLCache[k]=v", ROLE_PEER, lambda: loop_setitem(ttl, ops, value), f"ttl={TTL}")
        )
    if c.cb_lru is not None:
        box = c.cb_lru
        out.append(C("cachebox.LRUCache[k]=v", ROLE_PEER, lambda: loop_setitem(box, ops, value), "Rust"))
    if c.th is not None:
        th = c.th
        out.append(
            C("theine.Cache.set", ROLE_PEER, lambda: loop_call2(th.set, ops, value), "nolock=True, W-TinyLFU")
        )
    note = "grows, never evicts; floor" if evict else "floor"
    out.append(C("dict[k]=v", ROLE_FLOOR, lambda: loop_setitem(c.dict, ops, value), note))
    return out


# ------------------------------------------------------------------------ scenarios


def _check(scenario: Scenario, caches: SyncCaches, keys: list[str], *, want: bool) -> None:
    """Make sure a 'hit' loop only hits and a 'miss' loop only misses, for every contender."""
    probes = _probes(caches)
    for c in scenario.contenders:
        probe = probes[c.name]
        wrong = sum(probe(k) != want for k in keys)
        if wrong:
            state = "missing" if want else "present"
            scenario.warnings.append(f"{c.name}: {wrong}/{len(keys)} keys were {state}")


def scenario_get(keys: Keys, *, miss: bool) -> tuple[Scenario, SyncCaches]:
    caches = SyncCaches(keys)
    ops = keys.miss_ops if miss else keys.hot_ops
    s = Scenario(
        key="get_miss" if miss else "get_hit",
        title="2. get miss, sync" if miss else "1. get hit, sync",
        detail=(
            f"{HOT:,} absent keys against a full {CAPACITY:,}-entry cache"
            if miss
            else f"{HOT:,} hot keys, random order, in a full {CAPACITY:,}-entry cache"
        ),
        calls=len(ops),
        contenders=get_contenders(caches, ops, miss=miss),
    )
    _check(s, caches, keys.missing if miss else keys.hot, want=not miss)
    return s, caches


def scenario_set(keys: Keys, *, evict: bool) -> tuple[Scenario, SyncCaches]:
    caches = SyncCaches(keys, fill=not evict)
    ops = keys.evict_ops if evict else keys.hot_ops
    if evict:
        # Steady state before timing: every cache full, the next key always the oldest-evicted.
        value = keys.set_value
        for c in set_contenders(caches, keys.evict_cycle, value, evict=True):
            c.run()
    s = Scenario(
        key="set_evict" if evict else "set_overwrite",
        title="3b. set with eviction, sync" if evict else "3a. set (overwrite existing key), sync",
        detail=(
            f"cycling {EVICT_CYCLE:,} keys through a {CAPACITY:,}-entry cache: every set inserts and evicts"
            if evict
            else f"{HOT:,} hot keys, random order, already present in a full {CAPACITY:,}-entry cache"
        ),
        calls=len(ops),
        contenders=set_contenders(caches, ops, keys.set_value, evict=evict),
    )
    if evict:
        try:
            for name, inst in (("Cache.set", caches.sc), ("Cache.set [ttl]", caches.sc_ttl)):
                if inst.stats().evictions == 0:
                    s.warnings.append(f"{name}: no evictions recorded")
        except Exception as exc:  # stats() shape may change; the benchmark must still run
            s.warnings.append(f"could not read stratacache eviction counters: {exc!r}")
    return s, caches


def scenario_layers(keys: Keys) -> tuple[Scenario, SyncCaches]:
    """Diagnostic: the get-hit path of ``Cache.get`` peeled layer by layer (uses internals)."""
    caches = SyncCaches(keys)
    ops = keys.hot_ops
    cache = caches.sc
    C = Contender
    out = [
        C("for k in keys: pass", ROLE_FLOOR, lambda: loop_pass(None, ops), "loop overhead alone"),
        C("dict.get", ROLE_FLOOR, lambda: loop_call1(caches.dict.get, ops), "one C call"),
    ]
    od: OrderedDict[str, list[Any]] = OrderedDict((k, [v, None]) for k, v in caches.dict.items())

    def od_get(key: str, _get: Any = od.get, _move: Any = od.move_to_end) -> Any:
        entry = _get(key)
        if entry is None:
            return None
        _move(key)
        return entry[0]

    out.append(
        C("OrderedDict get+move_to_end", ROLE_FLOOR, lambda: loop_call1(od_get, ops), "minimal LRU fn")
    )
    # Internals: skipped, not failed, when the facade's attributes change.
    backend = getattr(cache, "_backend", None)
    store = getattr(backend, "store", None)
    if store is not None and hasattr(store, "get"):
        out.append(C("MemoryStore.get", ROLE_FLOOR, lambda: loop_call1(store.get, ops), "lock, expiry, LRU"))
    if backend is not None:
        out.append(C("MemoryBackend.get", ROLE_FLOOR, lambda: loop_call1(backend.get, ops), "+ wrapper call"))
    out.append(C("Cache.get", ROLE_SC, lambda: loop_call1(cache.get, ops), "+ facade: key, hooks, stats"))
    try:
        unsampled = sc.Cache(f"memory://?max_entries={CAPACITY}", latency_sample=2**62)
    except Exception:  # latency_sample renamed or bounded; the row is optional
        unsampled = None
    if unsampled is not None:
        _fill(unsampled.set, keys.all)
        caches.extra.append(unsampled)
        out.append(
            C(
                "Cache.get, no latency sampling",
                ROLE_SC,
                lambda: loop_call1(unsampled.get, ops),
                "latency_sample=2**62",
            )
        )
    if caches.ct_lru is not None:
        lru = caches.ct_lru
        out.append(C("cachetools.LRUCache.get", ROLE_PEER, lambda: loop_call1(lru.get, ops)))
        out.append(C("cachetools.LRUCache[k]", ROLE_PEER, lambda: loop_subscript(lru, ops)))
    s = Scenario(
        key="layers",
        title="5. diagnostic: Cache.get hit, layer by layer",
        detail="each row adds one layer of the call path; the bracket is that layer's cost",
        calls=len(ops),
        contenders=out,
        layers=True,
    )
    return s, caches


def scenario_async(keys: Keys) -> tuple[Scenario, list[Any]]:
    ops = keys.hot_ops
    cache = sc.AsyncCache("memory://?policy=lru")
    default = sc.AsyncCache("memory://")
    C = Contender
    contenders = [
        C("AsyncCache.get", ROLE_SC, lambda: aloop_call1(cache.get, ops), "policy=lru, stats on"),
        C("AsyncCache.get [tinylfu]", ROLE_SC, lambda: aloop_call1(default.get, ops), "the default policy"),
    ]
    closers: list[Any] = [cache, default]
    peers: list[Any] = []
    if aiocache is not None:
        ai = aiocache.SimpleMemoryCache(timeout=None)
        peers.append(ai)
        name, note = "aiocache.SimpleMemoryCache.get", "timeout=None"
        contenders.append(C(name, ROLE_PEER, lambda: aloop_call1(ai.get, ops), note))
    d: dict[str, Any] = {}

    async def floor_get(key: str, _get: Any = d.get) -> Any:
        return _get(key)

    contenders.append(C("async def -> dict.get", ROLE_FLOOR, lambda: aloop_call1(floor_get, ops), "floor"))
    s = Scenario(
        key="async_get_hit",
        title="4. async get hit",
        detail=f"{HOT:,} hot keys, awaited in a tight loop inside one asyncio.run",
        calls=len(ops),
        contenders=contenders,
        is_async=True,
    )

    async def fill() -> None:
        for i, k in enumerate(keys.all):
            v = _value(i)
            await cache.set(k, v)
            await default.set(k, v)
            d[k] = v
            for p in peers:
                await p.set(k, v)

    return s, [fill, closers, peers]


# --------------------------------------------------------------------------- output


def peer_versions() -> dict[str, str]:
    """stratacache's and each installed peer's version."""
    peers = [m.__name__ for m in (cachetools, cachebox, theine, aiocache) if m is not None]
    return versions(peers, missing=lambda name: getattr(sys.modules[name], "__version__", "?"))


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (about 10 s)")
    parser.add_argument("--json", metavar="PATH", help="also write every number to this JSON file")
    parser.add_argument("--layers", action="store_true", help="add a layer-by-layer breakdown of Cache.get")
    parser.add_argument("--rounds", type=int, help="override the number of timed rounds")
    parser.add_argument("--ops", type=int, help="override the operations per round")
    args = parser.parse_args(argv)
    if (args.rounds is not None and args.rounds < 1) or (args.ops is not None and args.ops < 1):
        parser.error("--rounds and --ops must be positive")

    rounds = args.rounds or (5 if args.quick else 7)
    ops = args.ops or (EVICT_CYCLE if args.quick else 10 * EVICT_CYCLE)
    if cachetools is None:
        print("note: cachetools is not installed; its rows are skipped", file=sys.stderr)

    started = time.monotonic()
    print_machine("memory", peer_versions())
    mode = "quick" if args.quick else "full"
    print(f"mode: {mode}; ns/op includes the shared loop overhead (see README); * = stratacache")

    keys = Keys(ops)
    scenarios: list[Scenario] = []
    builders: list[Callable[[], tuple[Scenario, Any]]] = [
        lambda: scenario_get(keys, miss=False),
        lambda: scenario_get(keys, miss=True),
        lambda: scenario_set(keys, evict=False),
        lambda: scenario_set(keys, evict=True),
    ]
    for build in builders:
        s, caches = build()
        run_sync(s, rounds)
        caches.close()
        scenarios.append(s)
        print_scenario(s, rounds, STYLE)
        sys.stdout.flush()

    s, (fill, closers, peers) = scenario_async(keys)

    async def async_main() -> None:
        await fill()
        await run_async(s, rounds)
        for c in closers:
            await c.close()
        for p in peers:
            await p.close()

    asyncio.run(async_main())
    scenarios.append(s)
    print_scenario(s, rounds, STYLE)

    if args.layers:
        s, caches = scenario_layers(keys)
        run_sync(s, rounds)
        caches.close()
        scenarios.append(s)
        print_scenario(s, rounds, STYLE)

    elapsed = time.monotonic() - started
    print(f"\n(total {elapsed:.1f} s)")

    if args.json:
        doc = {
            **machine_json(),
            "versions": peer_versions(),
            "mode": "quick" if args.quick else "full",
            "rounds": rounds,
            "capacity": CAPACITY,
            "hot_keys": HOT,
            "evict_cycle": EVICT_CYCLE,
            "elapsed_s": elapsed,
            "unit": "ns/op",
            "scenarios": [scenario_json(s, {"ops_per_round": s.calls}) for s in scenarios],
        }
        write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
