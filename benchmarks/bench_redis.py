"""Micro-benchmark: stratacache's Redis backend against raw redis-py, side by side.

Run from the repository root (redis-server must be on PATH)::

    PYTHONPATH=src python benchmarks/bench_redis.py            # full run, about 4 minutes
    PYTHONPATH=src python benchmarks/bench_redis.py --quick    # about 30 seconds
    PYTHONPATH=src python benchmarks/bench_redis.py --json out.json

The script starts its own throw-away ``redis-server`` on a free loopback port
(``--save "" --appendonly no``, no persistence) and stops it at the end, also on Ctrl-C.
On a machine with two or more CPUs, the server is pinned to CPU 0 with ``taskset -c 0`` and
this client process pins itself to CPU 1 (``os.sched_setaffinity(0, {1})``): client and
server each get a CPU of their own, so a round trip does not wait for the scheduler to
switch between them and the figures are steadier (``--no-pin`` turns this off).

Every number is ns per operation (per key for the 100-key batches), measured with
``time.perf_counter_ns`` around a batched loop over a pre-built key list. Contenders are
interleaved round by round (the order rotates every round) so machine drift hits them all
alike; the median round is reported. The garbage collector is off while a round is timed.
The raw redis-py clients get the same pool settings as stratacache's backend (a
``BlockingConnectionPool`` of the same size, the same timeouts and retry policy) and store
and load the very bytes stratacache writes (msgpack with stratacache's 4-byte header). The
output is a set of RATIOS (stratacache / raw) measured in the same run: absolute numbers
from a shared, noisy machine mean little on their own, and nothing here passes or fails.
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness and _servers, next to this file
from _harness import (  # also puts src/ on the path when stratacache is not importable
    ROLE_DIAG,
    ROLE_PEER,
    ROLE_RAW,
    ROLE_SC,
    Contender,
    Scenario,
    Style,
    Target,
    aloop_call1,
    aloop_call2,
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
from _servers import SERVER_CPU, Server, pin_client, sigterm_as_exit, start_redis

import stratacache as sc

try:
    import msgpack
    import redis
    import redis.asyncio as aredis
    import redis.exceptions as rexc
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - a setup problem, reported plainly
    raise SystemExit(f"bench_redis needs the redis extra: pip install 'stratacache[redis]' ({exc})") from exc

_SyncBlockingPool: Any = redis.BlockingConnectionPool  # untyped constructor in redis-py's sync client

# The pool settings both sides use. They are the backend's defaults, passed explicitly to
# Cache/AsyncCache and copied into the raw clients' pools.
POOL_SIZE = 16
TIMEOUT = 2.0  # socket read/write timeout, and the wait for a free pooled connection
CONNECT_TIMEOUT = 2.0
RETRIES = 3  # on connection errors, exponential backoff with jitter (as the backend)
RETRY_BACKOFF = 0.02

N_KEYS = 1_000  # keys stored for the single-key loops
BATCH = 100  # keys per get_many / MGET / set_many / pipeline
N_BATCHES = 20  # distinct 100-key batches, cycled
TTL = 600  # seconds, for set_many with a ttl
STYLE = Style(count="calls", digits=0, ratio_digits=3, sc_ratio_rows=False)


# --------------------------------------------------------------------------- clients


def _pool_kwargs(port: int) -> dict[str, Any]:
    """What the backend gives its BlockingConnectionPool (without the retry object)."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "db": 0,
        "max_connections": POOL_SIZE,
        "timeout": TIMEOUT,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": TIMEOUT,
        "retry_on_error": [rexc.ConnectionError],
        "health_check_interval": 0,
    }


def raw_sync_client(port: int) -> Any:
    retry = Retry(ExponentialWithJitterBackoff(base=RETRY_BACKOFF, cap=1.0), RETRIES)
    pool = _SyncBlockingPool(retry=retry, **_pool_kwargs(port))
    return redis.Redis.from_pool(pool)


def raw_async_client(port: int) -> Any:
    retry = AsyncRetry(ExponentialWithJitterBackoff(base=RETRY_BACKOFF, cap=1.0), RETRIES)
    pool = aredis.BlockingConnectionPool(retry=retry, **_pool_kwargs(port))
    return aredis.Redis.from_pool(pool)


def cache_kwargs() -> dict[str, Any]:
    return {"pool_size": POOL_SIZE, "timeout": TIMEOUT, "connect_timeout": CONNECT_TIMEOUT}


def _value(i: int) -> dict[str, Any]:
    return {"id": i, "name": f"user-{i}"}


HEADER = 4  # stratacache's value header: magic, version, format, flags


def _unpack(data: bytes) -> Any:
    """The raw baseline's decoding of a stratacache value: skip the header, msgpack.unpackb."""
    return msgpack.unpackb(data[HEADER:])


def commandstats(client: Any) -> dict[str, int]:
    """{command: calls} from INFO commandstats."""
    info = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    out = {cmd: n - before.get(cmd, 0) for cmd, n in after.items()}
    return {cmd: n for cmd, n in out.items() if n and cmd != "info"}


# ------------------------------------------------------------------------ scenarios


class Data:
    """Keys, values and their stored bytes, built once, outside any timed region."""

    def __init__(self, calls: int, batch_calls: int) -> None:
        self.keys = [f"bench:k:{i}" for i in range(N_KEYS)]
        # A fixed stride through the keys: every call a different key, no randomness needed.
        self.ops = [self.keys[(i * 7919) % N_KEYS] for i in range(calls)]
        self.batches = [self.keys[b * BATCH : (b + 1) * BATCH] for b in range(N_BATCHES)]
        self.batch_ops = [self.batches[i % N_BATCHES] for i in range(batch_calls)]
        self.set_value = _value(-1)
        self.set_bytes = b""  # the stored form of set_value, read back from the server
        self.stored: dict[str, bytes] = {}  # key -> the bytes stratacache stored

    def fill(self, cache: sc.Cache, raw: Any) -> None:
        for i, k in enumerate(self.keys):
            cache.set(k, _value(i))
        values = raw.mget(self.keys)
        self.stored = dict(zip(self.keys, values, strict=True))
        cache.set("bench:probe", self.set_value)
        self.set_bytes = raw.get("bench:probe")
        if self.set_bytes is None or any(v is None for v in values):
            raise SystemExit("setup failed: values written through Cache are not on the server")


def restore(raw: Any, data: Data) -> None:
    """Put back the bytes the get loops expect (the set loops overwrite the same keys)."""
    raw.mset(data.stored)


def _check_gets(s: Scenario, probes: dict[str, tuple[Callable[[str], Any], bool]], data: Data) -> None:
    """Before timing: every get contender hits and reads back the value (decoded) or the bytes."""
    for name, (probe, decoded) in probes.items():
        wrong = 0
        for i, k in enumerate(data.keys[:BATCH]):
            if probe(k) != (_value(i) if decoded else data.stored[k]):
                wrong += 1
        if wrong:
            s.warnings.append(f"{name}: {wrong}/{BATCH} probe keys did not read back as expected")


def scenario_get(cache: sc.Cache, raw: Any, data: Data) -> Scenario:
    ops = data.ops
    backend_get = cache.backend.get
    raw_get = raw.get

    def raw_get_unpack(key: str) -> Any:
        return _unpack(raw_get(key))

    C = Contender
    s = Scenario(
        key="get_hit",
        title="1. get hit, sync",
        detail=f"{N_KEYS:,} keys, small msgpack dict each",
        calls=len(ops),
        per_call=1,
        contenders=[
            C("Cache.get", ROLE_SC, lambda: loop_call1(cache.get, ops), "default settings, msgpack decode"),
            C("redis.Redis.get", ROLE_RAW, lambda: loop_call1(raw_get, ops), "returns the stored bytes"),
            C("redis.Redis.get + unpackb", ROLE_PEER, lambda: loop_call1(raw_get_unpack, ops), "+ msgpack"),
            C("RedisBackend.get", ROLE_DIAG, lambda: loop_call1(backend_get, ops), "cache.backend.get"),
        ],
        targets=[Target("Cache.get", "redis.Redis.get", 1.10)],
    )
    _check_gets(
        s,
        {
            "Cache.get": (cache.get, True),
            "redis.Redis.get": (raw_get, False),
            "redis.Redis.get + unpackb": (raw_get_unpack, True),
        },
        data,
    )
    return s


def scenario_set(cache: sc.Cache, raw: Any, data: Data) -> Scenario:
    ops = data.ops
    value, stored = data.set_value, data.set_bytes
    raw_set = raw.set
    packb = msgpack.packb
    header = stored[:HEADER]

    def raw_set_pack(key: str, v: Any) -> Any:
        return raw_set(key, header + packb(v))

    C = Contender
    s = Scenario(
        key="set",
        title="2. set (overwrite), sync",
        detail=f"{N_KEYS:,} keys, value {value!r}, no ttl",
        calls=len(ops),
        per_call=1,
        contenders=[
            C("Cache.set", ROLE_SC, lambda: loop_call2(cache.set, ops, value), "default settings, msgpack"),
            C("redis.Redis.set", ROLE_RAW, lambda: loop_call2(raw_set, ops, stored), "pre-encoded bytes"),
            C(
                "redis.Redis.set + packb",
                ROLE_PEER,
                lambda: loop_call2(raw_set_pack, ops, value),
                "+ msgpack",
            ),
        ],
        targets=[Target("Cache.set", "redis.Redis.set", 1.10)],
    )
    before = raw.get(ops[0])
    cache.set(ops[0], value)
    if raw.get(ops[0]) != stored:
        s.warnings.append("Cache.set stored other bytes than the raw contender stores")
    raw.set(ops[0], before)
    return s


def scenario_get_many(cache: sc.Cache, raw: Any, data: Data) -> Scenario:
    batches = data.batch_ops
    raw_mget = raw.mget
    unpack = _unpack

    def raw_mget_dict(keys: list[str]) -> dict[str, Any]:
        # What get_many returns: a dict of the present keys with decoded values.
        return {k: unpack(v) for k, v in zip(keys, raw_mget(keys), strict=True) if v is not None}

    C = Contender
    s = Scenario(
        key="get_many",
        title=f"4. get_many of {BATCH} keys, sync (figures per key)",
        detail=f"{N_BATCHES} distinct batches of {BATCH} present keys, cycled",
        calls=len(batches),
        per_call=BATCH,
        contenders=[
            C(
                "Cache.get_many",
                ROLE_SC,
                lambda: loop_call1(cache.get_many, batches),
                "dict of decoded values",
            ),
            C("redis.Redis.mget", ROLE_RAW, lambda: loop_call1(raw_mget, batches), "list of bytes"),
            C("mget + dict + unpackb", ROLE_PEER, lambda: loop_call1(raw_mget_dict, batches), "same result"),
        ],
        targets=[Target("Cache.get_many", "redis.Redis.mget", 1.5)],
    )
    keys = data.batches[0]
    got = cache.get_many(keys)
    if got != raw_mget_dict(keys) or len(got) != BATCH:
        s.warnings.append("Cache.get_many did not return the same dict as MGET + decode")
    # One round trip: exactly one MGET reaches the server, and no other command.
    before = commandstats(raw)
    cache.get_many(keys)
    delta = _delta(before, commandstats(raw))
    s.checks.append(f"round trips: one Cache.get_many of {BATCH} keys sent {delta or 'nothing'}")
    assert delta == {"mget": 1}, f"get_many of {BATCH} keys should be one MGET, the server saw {delta}"
    return s


def scenario_set_many(cache: sc.Cache, raw: Any, data: Data) -> Scenario:
    batches = data.batch_ops
    stored = data.set_bytes
    value = data.set_value
    mappings = [dict.fromkeys(b, value) for b in data.batches]
    raw_items = [[(k, stored) for k in b] for b in data.batches]
    cache_ops = [mappings[i % N_BATCHES] for i in range(len(batches))]
    raw_ops = [raw_items[i % N_BATCHES] for i in range(len(batches))]
    px = TTL * 1000
    set_many = cache.set_many
    pipeline = raw.pipeline

    def cache_set_many(mapping: dict[str, Any]) -> None:
        set_many(mapping, ttl=TTL)

    def raw_pipeline(items: list[tuple[str, bytes]]) -> None:
        with pipeline(transaction=False) as pipe:
            for k, v in items:
                pipe.set(k, v, px=px)
            pipe.execute()

    C = Contender
    s = Scenario(
        key="set_many_ttl",
        title=f"5b. set_many of {BATCH} keys with ttl={TTL}, sync (figures per key)",
        detail="one pipeline of SET PX either way",
        calls=len(batches),
        per_call=BATCH,
        contenders=[
            C(
                "Cache.set_many(ttl)",
                ROLE_SC,
                lambda: loop_call1(cache_set_many, cache_ops),
                "msgpack encode",
            ),
            C("pipeline SET PX", ROLE_RAW, lambda: loop_call1(raw_pipeline, raw_ops), "pre-encoded bytes"),
        ],
        targets=[Target("Cache.set_many(ttl)", "pipeline SET PX", 1.5)],
    )
    before = commandstats(raw)
    cache_set_many(mappings[0])
    delta = _delta(before, commandstats(raw))
    s.checks.append(f"commands: one Cache.set_many of {BATCH} keys with a ttl sent {delta}")
    if delta != {"set": BATCH}:
        s.warnings.append(f"set_many sent {delta}, expected {BATCH} SETs in one pipeline")
    if raw.get(data.batches[0][0]) != stored:
        s.warnings.append("Cache.set_many stored other bytes than the raw pipeline stores")
    return s


async def async_scenarios(port: int, data: Data, rounds: int, which: tuple[str, ...]) -> list[Scenario]:
    """The async scenarios named in ``which`` (get, set, get_many), each run and printed in turn."""
    cache = sc.AsyncCache(f"redis://127.0.0.1:{port}/0", **cache_kwargs())
    raw = raw_async_client(port)
    try:
        ops, batches = data.ops, data.batch_ops
        value, stored = data.set_value, data.set_bytes
        raw_get, raw_set, raw_mget = raw.get, raw.set, raw.mget

        async def raw_get_unpack(key: str) -> Any:
            return _unpack(await raw_get(key))

        async def raw_mget_dict(keys: list[str]) -> dict[str, Any]:
            values = await raw_mget(keys)
            return {k: _unpack(v) for k, v in zip(keys, values, strict=True) if v is not None}

        C = Contender
        out: list[Scenario] = []
        if "get" in which:
            s = Scenario(
                key="async_get_hit",
                title="3. async get hit (sequential awaits in one task)",
                detail=f"{N_KEYS:,} keys, small msgpack dict each",
                calls=len(ops),
                per_call=1,
                contenders=[
                    C("AsyncCache.get", ROLE_SC, lambda: aloop_call1(cache.get, ops), "msgpack decode"),
                    C("redis.asyncio.Redis.get", ROLE_RAW, lambda: aloop_call1(raw_get, ops), "stored bytes"),
                    C("redis.asyncio get + unpackb", ROLE_PEER, lambda: aloop_call1(raw_get_unpack, ops)),
                    C("AsyncRedisBackend.get", ROLE_DIAG, lambda: aloop_call1(cache.backend.get, ops)),
                ],
                targets=[Target("AsyncCache.get", "redis.asyncio.Redis.get", 1.10)],
                is_async=True,
            )
            wrong = 0
            for i, k in enumerate(data.keys[:BATCH]):
                got = (await cache.get(k), await raw_get(k), await raw_get_unpack(k))
                wrong += got != (_value(i), data.stored[k], _value(i))
            if wrong:
                s.warnings.append(f"{wrong}/{BATCH} probe keys did not read back as expected")
            out.append(s)
        if "set" in which:
            out.append(
                Scenario(
                    key="async_set",
                    title="3b. async set (overwrite, sequential awaits)",
                    detail=f"{N_KEYS:,} keys, no ttl",
                    calls=len(ops),
                    per_call=1,
                    contenders=[
                        C("AsyncCache.set", ROLE_SC, lambda: aloop_call2(cache.set, ops, value), "msgpack"),
                        C("redis.asyncio.Redis.set", ROLE_RAW, lambda: aloop_call2(raw_set, ops, stored)),
                    ],
                    targets=[Target("AsyncCache.set", "redis.asyncio.Redis.set", 1.10)],
                    is_async=True,
                )
            )
        if "get_many" in which:
            s = Scenario(
                key="async_get_many",
                title=f"5a. async get_many of {BATCH} keys (figures per key)",
                detail=f"{N_BATCHES} distinct batches of {BATCH} present keys, cycled",
                calls=len(batches),
                per_call=BATCH,
                contenders=[
                    C("AsyncCache.get_many", ROLE_SC, lambda: aloop_call1(cache.get_many, batches)),
                    C("redis.asyncio.Redis.mget", ROLE_RAW, lambda: aloop_call1(raw_mget, batches), "bytes"),
                    C("async mget + dict + unpackb", ROLE_PEER, lambda: aloop_call1(raw_mget_dict, batches)),
                ],
                targets=[Target("AsyncCache.get_many", "redis.asyncio.Redis.mget", 1.5)],
                is_async=True,
            )
            keys = data.batches[0]
            many = await cache.get_many(keys)
            if many != await raw_mget_dict(keys) or len(many) != BATCH:
                s.warnings.append("AsyncCache.get_many did not return the same dict as MGET + decode")
            out.append(s)
        for s in out:
            await run_async(s, rounds)
            print_scenario(s, rounds, STYLE)
            sys.stdout.flush()
        return out
    finally:
        await cache.close()
        await raw.aclose()


# --------------------------------------------------------------------------- output


def redis_versions(server_version: str) -> dict[str, str]:
    return {**versions(("redis", "hiredis", "msgpack")), "redis-server": server_version}


# ----------------------------------------------------------------------------- main


SCENARIO_NAMES = ("get", "set", "async_get", "async_set", "get_many", "async_get_many", "set_many")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (about 30 s)")
    parser.add_argument("--json", metavar="PATH", help="also write every number to this JSON file")
    parser.add_argument("--rounds", type=int, help="override the number of timed rounds")
    parser.add_argument("--ops", type=int, help="override the single-key calls per round")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client to CPUs")
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help=f"comma-separated subset of the scenarios to run: {','.join(SCENARIO_NAMES)} (default: all)",
    )
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else set(SCENARIO_NAMES)
    if not only <= set(SCENARIO_NAMES):
        parser.error(f"--only: unknown scenario(s) {sorted(only - set(SCENARIO_NAMES))}")
    args.only = only
    if (args.rounds is not None and args.rounds < 1) or (args.ops is not None and args.ops < 1):
        parser.error("--rounds and --ops must be positive")

    # Many short rounds rather than a few long ones: each round pairs the contenders back to
    # back, and the targets are judged on the median of those pairs' ratios.
    rounds = args.rounds or (7 if args.quick else 40)
    calls = args.ops or (1_000 if args.quick else 2_000)
    batch_calls = max(10, calls // 20)

    started = time.monotonic()
    with sigterm_as_exit(), start_redis(pin=not args.no_pin) as server:
        return _run(args, server, rounds, calls, batch_calls, started)


def _run(
    args: argparse.Namespace, server: Server, rounds: int, calls: int, batch_calls: int, t0: float
) -> int:
    client_pin = pin_client(not args.no_pin)
    server_pin = f"pinned to CPU {SERVER_CPU} (taskset -c {SERVER_CPU})" if server.pinned else "not pinned"
    raw = raw_sync_client(server.port)
    cache = sc.Cache(f"redis://127.0.0.1:{server.port}/0", **cache_kwargs())
    try:
        server_version = str(raw.info("server").get("redis_version", "?"))
        hiredis_on = bool(getattr(redis.utils, "HIREDIS_AVAILABLE", False))
        print_machine("redis", redis_versions(server_version))
        print(f"redis-py parser: {'hiredis' if hiredis_on else 'pure Python (hiredis not available)'}")
        print(
            f"server: redis-server on 127.0.0.1:{server.port}, --save '' --appendonly no, {server_pin}; "
            f"client: {client_pin}"
        )
        print(
            f"pools (both sides): BlockingConnectionPool max_connections={POOL_SIZE}, timeout={TIMEOUT}s, "
            f"connect_timeout={CONNECT_TIMEOUT}s, {RETRIES} retries on connection errors"
        )
        mode = "quick" if args.quick else "full"
        print(
            f"mode: {mode}; * = stratacache, ( = an inner layer of it; ratio = stratacache / row "
            "(below 1 = stratacache faster)"
        )
        sys.stdout.flush()

        data = Data(calls, batch_calls)
        data.fill(cache, raw)
        scenarios: list[Scenario] = []
        port = server.port

        def sync(build: Callable[[sc.Cache, Any, Data], Scenario]) -> None:
            s = build(cache, raw, data)
            run_sync(s, rounds)
            scenarios.append(s)
            print_scenario(s, rounds, STYLE)
            sys.stdout.flush()

        # In the numbered order; the set loops overwrite the keys, so the stored bytes are
        # put back before the next get loop.
        only = args.only
        if "get" in only:
            sync(scenario_get)
        if "set" in only:
            sync(scenario_set)
            restore(raw, data)
        wanted = tuple(name for name in ("get", "set") if f"async_{name}" in only)
        if wanted:
            scenarios.extend(asyncio.run(async_scenarios(port, data, rounds, wanted)))
            restore(raw, data)
        if "get_many" in only:
            sync(scenario_get_many)
        if "async_get_many" in only:
            scenarios.extend(asyncio.run(async_scenarios(port, data, rounds, ("get_many",))))
        if "set_many" in only:
            sync(scenario_set_many)
    finally:
        cache.close()
        raw.close()

    elapsed = time.monotonic() - t0
    print("\nsummary (targets from issue 4; median of per-round ratios, see benchmarks/README.md)")
    for s in scenarios:
        for t in s.targets:
            v = t.verdict(s)
            if v is not None:
                verdict = "met" if v[1] else "MISSED"
                print(f"  {t.ours:<22} / {t.raw:<26} {v[0]:7.4f}x  (<= {t.limit:.2f}x: {verdict})")
    print(f"\n(total {elapsed:.1f} s)")

    if args.json:
        doc = {
            **machine_json(),
            "versions": redis_versions(server_version),
            "hiredis": hiredis_on,
            "pinning": {"server": server_pin, "client": client_pin},
            "pool": {"max_connections": POOL_SIZE, "timeout": TIMEOUT, "connect_timeout": CONNECT_TIMEOUT},
            "mode": "quick" if args.quick else "full",
            "rounds": rounds,
            "elapsed_s": elapsed,
            "scenarios": [
                scenario_json(
                    s,
                    {"unit": s.unit, "calls_per_round": s.calls, "keys_per_call": s.per_call},
                    targets=True,
                )
                for s in scenarios
            ],
        }
        write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:  # the finally blocks in main() have stopped the server by now
        print("\ninterrupted; the benchmark's redis-server was stopped", file=sys.stderr)
        raise SystemExit(130) from None
