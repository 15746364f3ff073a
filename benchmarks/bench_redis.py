"""Micro-benchmark: stratacache's Redis backend against raw redis-py, side by side.

Run from the repository root (redis-server must be on PATH)::

    PYTHONPATH=src python benchmarks/bench_redis.py            # full run, about 2 minutes
    PYTHONPATH=src python benchmarks/bench_redis.py --quick    # about 15 seconds
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
import contextlib
import gc
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

try:
    import stratacache as sc
except ImportError:  # running without PYTHONPATH=src: use the checkout this file lives in
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
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

perf_counter_ns = time.perf_counter_ns
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
SERVER_CPU = 0
CLIENT_CPU = 1

ROLE_SC = "stratacache"
ROLE_RAW = "raw"  # the baseline the targets are measured against
ROLE_PEER = "peer"  # another raw variant (e.g. with msgpack decoding), shown for context
ROLE_DIAG = "diagnostic"  # an inner layer of stratacache, to show where the time goes


# --------------------------------------------------------------------------- loops
# One tiny function per call shape, so each contender pays exactly the same loop overhead.
# Call targets are bound methods looked up once, outside the loop.


def loop_call1(fn: Callable[[Any], Any], keys: list[Any]) -> None:
    for k in keys:
        fn(k)


def loop_call2(fn: Callable[[Any, Any], Any], keys: list[str], value: Any) -> None:
    for k in keys:
        fn(k, value)


async def aloop_call1(fn: Callable[[Any], Awaitable[Any]], keys: list[Any]) -> None:
    for k in keys:
        await fn(k)


async def aloop_call2(fn: Callable[[Any, Any], Awaitable[Any]], keys: list[str], value: Any) -> None:
    for k in keys:
        await fn(k, value)


# ----------------------------------------------------------------------- contenders


@dataclass
class Contender:
    name: str
    role: str
    run: Callable[[], Any]  # runs the whole op list once (returns an awaitable when async)
    note: str = ""
    rounds: list[float] = field(default_factory=list)  # ns per unit, one per timed round

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)


@dataclass
class Target:
    ours: str
    raw: str
    limit: float

    def verdict(self, s: Scenario) -> tuple[float, bool] | None:
        by_name = {c.name: c for c in s.contenders}
        if self.ours not in by_name or self.raw not in by_name:
            return None
        ratio = by_name[self.ours].median / by_name[self.raw].median
        return ratio, ratio <= self.limit


@dataclass
class Scenario:
    key: str
    title: str
    detail: str
    calls: int  # calls per contender per round
    per_call: int  # units per call: 1, or BATCH for the batch scenarios (figures are per key)
    contenders: list[Contender]
    targets: list[Target] = field(default_factory=list)
    is_async: bool = False
    warnings: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    @property
    def unit(self) -> str:
        return "ns/op" if self.per_call == 1 else "ns/key"


def run_sync(s: Scenario, rounds: int) -> None:
    contenders = s.contenders
    units = s.calls * s.per_call
    for c in contenders:  # warm-up: connections opened, code specialised
        c.run()
    for r in range(rounds):
        order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
        gc.collect()
        gc.disable()
        try:
            for c in order:
                t0 = perf_counter_ns()
                c.run()
                t1 = perf_counter_ns()
                c.rounds.append((t1 - t0) / units)
        finally:
            gc.enable()


async def run_async(s: Scenario, rounds: int) -> None:
    contenders = s.contenders
    units = s.calls * s.per_call
    for c in contenders:
        await c.run()
    for r in range(rounds):
        order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
        gc.collect()
        gc.disable()
        try:
            for c in order:
                t0 = perf_counter_ns()
                await c.run()
                t1 = perf_counter_ns()
                c.rounds.append((t1 - t0) / units)
        finally:
            gc.enable()


# --------------------------------------------------------------------------- server


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    pinned: bool
    workdir: tempfile.TemporaryDirectory[str]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.workdir.cleanup()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(*, pin: bool) -> Server:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not on PATH (see scripts/install_servers.sh)")
    workdir = tempfile.TemporaryDirectory(prefix="bench-redis-")
    port = _free_port()
    cmd = [
        exe,
        "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", workdir.name, "--logfile", "", "--protected-mode", "yes",
    ]  # fmt: skip
    pinned = pin and shutil.which("taskset") is not None
    if pinned:
        cmd = ["taskset", "-c", str(SERVER_CPU), *cmd]
    # Its own session, so a Ctrl-C reaches only this script, which then stops the server.
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=workdir.name
    )
    server = Server(proc, port, pinned, workdir)
    probe = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"redis-server exited with code {proc.returncode} on port {port}")
            try:
                probe.ping()
                break
            except rexc.ConnectionError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"redis-server did not answer on port {port} within 10 s") from None
                time.sleep(0.05)
    except BaseException:
        server.stop()
        raise
    finally:
        probe.close()
    return server


def pin_client(pin: bool) -> str:
    """Pin this process to CLIENT_CPU when the machine has it; describe what was done."""
    if not pin:
        return "not pinned (--no-pin)"
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity on this platform)"
    available = os.sched_getaffinity(0)
    if CLIENT_CPU not in available or SERVER_CPU not in available:
        return f"not pinned (CPUs {sorted(available)} available; need {SERVER_CPU} and {CLIENT_CPU})"
    os.sched_setaffinity(0, {CLIENT_CPU})
    return f"pinned to CPU {CLIENT_CPU} (os.sched_setaffinity)"


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
            print_scenario(s, rounds)
            sys.stdout.flush()
        return out
    finally:
        await cache.close()
        await raw.aclose()


# --------------------------------------------------------------------------- output


def ratios(s: Scenario) -> dict[str, dict[str, float]]:
    """{stratacache contender: {other contender: stratacache median / other median}}."""
    out: dict[str, dict[str, float]] = {}
    for a in s.contenders:
        if a.role != ROLE_SC:
            continue
        out[a.name] = {b.name: a.median / b.median for b in s.contenders if b is not a and b.median > 0}
    return out


def _spread(c: Contender) -> str:
    lo, hi = min(c.rounds), max(c.rounds)
    return f"{100 * (hi - lo) / c.median:5.1f}%"


def print_scenario(s: Scenario, rounds: int) -> None:
    width = max(len(c.name) for c in s.contenders) + 2
    print()
    print(f"{s.title}  ({s.detail})")
    per = "" if s.per_call == 1 else f" of {s.per_call} keys"
    print(f"  {s.calls:,} calls{per}/round x {rounds} rounds; {s.unit} = median round, min = best round,")
    print("  spread = (max-min)/median across rounds")
    print(f"  {'contender':<{width}} {s.unit:>8} {'min':>8}  {'spread':>6}  note")
    for c in s.contenders:
        tag = {ROLE_SC: "*", ROLE_RAW: " ", ROLE_PEER: " ", ROLE_DIAG: "("}[c.role]
        note = c.note + (" [diagnostic: an inner layer of *]" if c.role == ROLE_DIAG else "")
        line = f"{tag} {c.name:<{width}} {c.median:8.0f} {min(c.rounds):8.0f}  {_spread(c)}  {note}"
        print(line.rstrip())
    r = ratios(s)
    sc_names = list(r)
    head = "".join(f"{n:>{max(12, len(n) + 2)}}" for n in sc_names)
    print(f"  ratio = stratacache / row{'':<{max(0, width - 25)}}   {head}")
    for c in s.contenders:
        if c.role == ROLE_SC:
            continue
        cells = "".join(f"{f'{r[n][c.name]:.3f}x':>{max(12, len(n) + 2)}}" for n in sc_names)
        print(f"    / {c.name:<{width - 2}}  {cells}")
    for name, raw_name, extra in _overheads(s):
        print(f"  {name} - {raw_name} = {extra:+.0f} {s.unit} (the facade's cost on top of the raw call)")
    for t in s.targets:
        v = t.verdict(s)
        if v is not None:
            ratio, met = v
            print(
                f"  target {t.ours} / {t.raw} <= {t.limit:.2f}x: {ratio:.4f}x, {'met' if met else 'MISSED'}"
            )
    for line in s.checks:
        print(f"  check: {line}")
    for w in s.warnings:
        print(f"  WARNING: {w}")


def _overheads(s: Scenario) -> list[tuple[str, str, float]]:
    by_name = {c.name: c for c in s.contenders}
    out = []
    for t in s.targets:
        if t.ours in by_name and t.raw in by_name:
            out.append((t.ours, t.raw, by_name[t.ours].median - by_name[t.raw].median))
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def versions(server_version: str) -> dict[str, str]:
    out = {"stratacache": getattr(sc, "__version__", "?")}
    for name in ("redis", "hiredis", "msgpack"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    out["redis-server"] = server_version
    return out


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C does, so the server is stopped either way."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (about 15 s)")
    parser.add_argument("--json", metavar="PATH", help="also write every number to this JSON file")
    parser.add_argument("--rounds", type=int, help="override the number of timed rounds")
    parser.add_argument("--ops", type=int, help="override the single-key calls per round")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client to CPUs")
    args = parser.parse_args(argv)
    if (args.rounds is not None and args.rounds < 1) or (args.ops is not None and args.ops < 1):
        parser.error("--rounds and --ops must be positive")

    rounds = args.rounds or (5 if args.quick else 15)
    calls = args.ops or (1_000 if args.quick else 5_000)
    batch_calls = max(10, calls // 20)

    started = time.monotonic()
    with sigterm_as_exit():
        server = start_server(pin=not args.no_pin)
        try:
            return _run(args, server, rounds, calls, batch_calls, started)
        finally:
            server.stop()


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
        print(f"stratacache redis benchmark  {datetime.now().astimezone().isoformat(timespec='seconds')}")
        py = f"{platform.python_version()} ({platform.python_implementation()})"
        print(f"Python {py} on {platform.platform()}")
        print(f"CPU: {cpu_model()}  ({os.cpu_count()} logical cores visible)")
        print("versions: " + ", ".join(f"{k} {v}" for k, v in versions(server_version).items()))
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
            print_scenario(s, rounds)
            sys.stdout.flush()

        # In the numbered order; the set loops overwrite the keys, so the stored bytes are
        # put back before the next get loop.
        sync(scenario_get)
        sync(scenario_set)
        restore(raw, data)
        scenarios.extend(asyncio.run(async_scenarios(port, data, rounds, ("get", "set"))))
        restore(raw, data)
        sync(scenario_get_many)
        scenarios.extend(asyncio.run(async_scenarios(port, data, rounds, ("get_many",))))
        sync(scenario_set_many)
    finally:
        cache.close()
        raw.close()

    elapsed = time.monotonic() - t0
    print("\nsummary (targets from issue 4)")
    for s in scenarios:
        for t in s.targets:
            v = t.verdict(s)
            if v is not None:
                verdict = "met" if v[1] else "MISSED"
                print(f"  {t.ours:<22} / {t.raw:<26} {v[0]:7.4f}x  (<= {t.limit:.2f}x: {verdict})")
    print(f"\n(total {elapsed:.1f} s)")

    if args.json:
        doc = {
            "date": datetime.now().astimezone().isoformat(timespec="seconds"),
            "python": sys.version,
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "versions": versions(server_version),
            "hiredis": hiredis_on,
            "pinning": {"server": server_pin, "client": client_pin},
            "pool": {"max_connections": POOL_SIZE, "timeout": TIMEOUT, "connect_timeout": CONNECT_TIMEOUT},
            "mode": "quick" if args.quick else "full",
            "rounds": rounds,
            "elapsed_s": elapsed,
            "scenarios": [
                {
                    "key": s.key,
                    "title": s.title,
                    "detail": s.detail,
                    "unit": s.unit,
                    "calls_per_round": s.calls,
                    "keys_per_call": s.per_call,
                    "contenders": [
                        {
                            "name": c.name,
                            "role": c.role,
                            "note": c.note,
                            "median_ns": c.median,
                            "min_ns": min(c.rounds),
                            "max_ns": max(c.rounds),
                            "rounds_ns": c.rounds,
                        }
                        for c in s.contenders
                    ],
                    "ratios": ratios(s),
                    "targets": [
                        {"ours": t.ours, "raw": t.raw, "limit": t.limit, "ratio": v[0], "met": v[1]}
                        for t in s.targets
                        if (v := t.verdict(s)) is not None
                    ],
                    "checks": s.checks,
                    "warnings": s.warnings,
                }
                for s in scenarios
            ],
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:  # the finally blocks in main() have stopped the server by now
        print("\ninterrupted; the benchmark's redis-server was stopped", file=sys.stderr)
        raise SystemExit(130) from None
