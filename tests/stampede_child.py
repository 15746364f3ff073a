"""Child processes for test_stampede_processes.py: many callers missing one cold key at once.

``python stampede_child.py CONFIG`` where CONFIG is JSON: ``{"caches": {name: url},
"counters": dir, "lease_ttl": s, "mode": "rounds"|"hang", ...}``.

* ``rounds`` (with ``"processes": N``, ``"load_seconds": s``): a zygote. It imports
  stratacache and the drivers once, then forks N workers (real processes, each with its
  own connections, opened after the fork; even-numbered ones use Cache, odd ones
  AsyncCache). It prints ``ready`` when every worker has opened its caches; then for each
  stdin line ``NAME KEY`` it wakes every worker at once (one pipe write each), and each
  calls ``get_or_set(KEY, loader)`` on cache NAME; it prints the N values as one JSON
  line. ``NAME KEY swr`` does the same with a 1 s ttl and a 30 s stale-while-revalidate
  window. ``quit`` ends. Forking from one process that has imported everything keeps 32
  processes from paying for 32 interpreter start-ups.
* ``hang`` (with ``"key"``): on every cache at once, take the lease for KEY, start
  loading, and hang there (the test kills the process with SIGKILL mid-load).

The loader appends one byte to ``<counters>/<NAME>`` (O_APPEND: atomic across processes),
so the test counts loader calls from the file's size, not from any process's memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from typing import Any

import stratacache as sc

# Imported before forking, so that no worker imports them again.
import stratacache._async.backends.file
import stratacache._async.backends.memcached
import stratacache._async.backends.redis
import stratacache._sync.backends.file
import stratacache._sync.backends.memcached
import stratacache._sync.backends.redis


def _loader(counters: str, name: str, seconds: float) -> Any:
    def load() -> str:
        fd = os.open(os.path.join(counters, name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, b"x")
            call = os.fstat(fd).st_size  # this call's number, give or take a concurrent one
        finally:
            os.close(fd)
        time.sleep(seconds)
        return f"loaded-by-{os.getpid()}-call-{call}"

    return load


def _policy(config: dict[str, Any]) -> sc.StampedePolicy:
    return sc.StampedePolicy(
        lease_ttl=config["lease_ttl"], wait_timeout=20, backoff_initial=0.01, backoff_max=0.1
    )


def _round(line: str) -> tuple[str, str, float, sc.StampedePolicy | None]:
    """``NAME KEY [swr]``: the cache, the key, the ttl and the policy override of one round."""
    name, key, *mode = line.split()
    if mode == ["swr"]:  # a short ttl, then a 30 s stale-while-revalidate window
        return (
            name,
            key,
            1.0,
            sc.StampedePolicy(
                lease_ttl=10,
                wait_timeout=20,
                backoff_initial=0.01,
                backoff_max=0.1,
                stale_while_revalidate=30,
            ),
        )
    return name, key, 60.0, None


def _sync_worker(config: dict[str, Any], commands: Any, report: Any) -> None:
    policy = _policy(config)
    caches = {name: sc.Cache(url, namespace="stampede") for name, url in config["caches"].items()}
    for cache in caches.values():
        cache.ping()  # connect now: the rounds measure the stampede, not connection set-up
    report("ready")
    for line in commands:
        if line.strip() == "quit":
            break
        name, key, ttl, override = _round(line)
        load = _loader(config["counters"], name, config["load_seconds"])
        report(caches[name].get_or_set(key, load, ttl=ttl, policy=override or policy))
    for cache in caches.values():
        cache.close()


async def _async_worker(config: dict[str, Any], commands: Any, report: Any) -> None:
    policy = _policy(config)
    caches = {name: sc.AsyncCache(url, namespace="stampede") for name, url in config["caches"].items()}
    for cache in caches.values():
        await cache.ping()
    loop = asyncio.get_running_loop()
    report("ready")
    while True:
        line = await loop.run_in_executor(None, commands.readline)
        if not line or line.strip() == "quit":
            break
        name, key, ttl, override = _round(line)
        load = _loader(config["counters"], name, config["load_seconds"])
        report(await caches[name].get_or_set(key, load, ttl=ttl, policy=override or policy))
    for cache in caches.values():
        await cache.close()


def _fork_worker(index: int, config: dict[str, Any], result_w: int, others: list[int]) -> tuple[int, int]:
    command_r, command_w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(command_r)
        return pid, command_w
    code = 0
    try:
        # Keep no write end of any command pipe, ours or earlier workers': if the zygote
        # dies, every worker then reads end-of-file and exits instead of waiting forever.
        for fd in [command_w, *others]:
            os.close(fd)
        commands = os.fdopen(command_r, "r")

        def report(value: str) -> None:
            # One short write per line: atomic on a pipe (under PIPE_BUF), never interleaved.
            os.write(result_w, f"{index} {value}\n".encode())

        if index % 2:
            asyncio.run(_async_worker(config, commands, report))
        else:
            _sync_worker(config, commands, report)
    except BaseException as exc:
        os.write(result_w, f"{index} error:{type(exc).__name__}:{exc}\n".encode()[:500])
        code = 1
    finally:
        os._exit(code)


def run_rounds(config: dict[str, Any]) -> None:
    count = config["processes"]
    result_r, result_w = os.pipe()
    workers: list[tuple[int, int]] = []
    for i in range(count):
        workers.append(_fork_worker(i, config, result_w, [w for _, w in workers]))
    os.close(result_w)
    results = os.fdopen(result_r, "r")

    def collect() -> list[str]:
        values = [""] * count
        for _ in range(count):
            line = results.readline()
            if not line:
                raise SystemExit("a worker died")
            index, value = line.rstrip("\n").split(" ", 1)
            values[int(index)] = value
        return values

    print(json.dumps(collect()), flush=True)  # every "ready" (or an error)
    for line in sys.stdin:
        command = line.encode()
        for _, command_w in workers:
            os.write(command_w, command)
        if line.strip() == "quit":
            break
        print(json.dumps(collect()), flush=True)
    for pid, command_w in workers:
        os.close(command_w)
        os.waitpid(pid, 0)


def run_hang(config: dict[str, Any]) -> None:
    """Load KEY on every cache at once (a thread each), each load hanging after it starts."""
    policy = _policy(config)
    threads = []
    for name, url in config["caches"].items():
        cache = sc.Cache(url, namespace="stampede")
        load = _loader(config["counters"], name, 3600)
        thread = threading.Thread(
            target=cache.get_or_set, args=(config["key"], load, 60), kwargs={"policy": policy}
        )
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    settings = json.loads(sys.argv[1])
    if settings["mode"] == "hang":
        run_hang(settings)
    else:
        run_rounds(settings)
