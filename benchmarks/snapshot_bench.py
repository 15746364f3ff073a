"""Snapshots: SAVE, BGSAVE and the load at start of N string keys, ``stratacache serve``
next to redis-server (RDB) in the same run, plus the memory backend's save and load.

    PYTHONPATH=src python benchmarks/snapshot_bench.py            # 1,000,000 keys, ~1 min
    PYTHONPATH=src python benchmarks/snapshot_bench.py --keys 100000

Keys are ``key:N``, values ``value:N``, written by pipelined MSETs. For each server: SAVE's
time (client side), the file size, the time from process start to a served DBSIZE after a
SIGKILL and restart (the load), and for ours a BGSAVE with writes going on: its duration, the
writes served meanwhile and the child's peak private memory (the pages it copied).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from _harness import cpu_model, now
from _servers import free_port


def _start(argv: list[str], port: int, workdir: str) -> tuple[subprocess.Popen[bytes], float]:
    """Start a server and wait until it serves DBSIZE (loading done): (process, seconds)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # A plain connect to poll (redis-py's default retries back off for seconds), then
    # DBSIZE until it is served (redis-server answers LOADING while it loads).
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"{argv[0]} exited with {proc.returncode}") from None
            time.sleep(0.005)
    client = redis.Redis(port=port)
    while True:
        try:
            client.dbsize()
            break
        except redis.BusyLoadingError:
            time.sleep(0.005)
    client.close()
    return proc, time.perf_counter() - started


def _private_mib(pid: int) -> int:
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(("Private_Dirty", "Private_Clean")):
                    total += int(line.split()[1])
    except OSError:
        return 0
    return total // 1024


def _fill(client: redis.Redis, keys: int) -> None:
    pipe = client.pipeline(transaction=False)
    for start in range(0, keys, 1000):
        pipe.mset({f"key:{i}": f"value:{i}" for i in range(start, min(keys, start + 1000))})
        if start % 100_000 == 0:
            pipe.execute()
    pipe.execute()


def server_run(name: str, keys: int) -> dict[str, float]:
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        if name == "stratacache":
            config = Path(workdir, "s.yaml")
            log_path = f"{workdir}/log.txt"
            options = {"port": port, "dir": workdir, "save": "", "maxmemory": "8gb", "logfile": log_path}
            config.write_text("".join(f"{name}: {value!r}\n" for name, value in options.items()))
            argv = [sys.executable, "-m", "stratacache.cli", "serve", "--config", str(config)]
            dump = Path(workdir, "dump.scs")
        else:
            argv = ["redis-server", "--port", str(port), "--dir", workdir, "--save", "", "--appendonly", "no"]
            dump = Path(workdir, "dump.rdb")
        proc, _ = _start(argv, port, workdir)
        client = redis.Redis(port=port)
        _fill(client, keys)
        started = time.perf_counter()
        client.save()
        result = {"save_s": time.perf_counter() - started, "size_mb": dump.stat().st_size / 1e6}
        if name == "stratacache":
            started = time.perf_counter()
            client.bgsave()
            child = int(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0])
            peak = writes = 0
            pipe = client.pipeline(transaction=False)
            while client.info("persistence")["rdb_bgsave_in_progress"]:
                peak = max(peak, _private_mib(child))
                for _ in range(1000):
                    pipe.set(f"key:{writes}", "new")
                    writes += 1
                pipe.execute()
            result |= {"bgsave_s": time.perf_counter() - started, "bgsave_writes": writes, "child_mib": peak}
        client.close()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc, result["load_s"] = _start(argv, port, workdir)
        if name == "stratacache":
            # The server's own figure, without the interpreter's start-up.
            log = Path(workdir, "log.txt").read_text()
            logged = re.findall(r"DB loaded from disk: .*, ([0-9.]+) s\)", log)
            result["load_logged_s"] = float(logged[-1])
        assert redis.Redis(port=port).dbsize() == keys
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return result


def library_run(keys: int) -> dict[str, float]:
    import stratacache as sc

    with tempfile.TemporaryDirectory() as workdir:
        path = os.path.join(workdir, "lib.scs")
        cache = sc.Cache(snapshot=path, max_entries=None, serializer="msgpack")
        cache.set_many({f"key:{i}": f"value:{i}" for i in range(keys)})
        started = time.perf_counter()
        cache.close()  # saves
        save = time.perf_counter() - started
        started = time.perf_counter()
        again = sc.Cache(snapshot=path, max_entries=None, serializer="msgpack")
        load = time.perf_counter() - started
        assert again.get(f"key:{keys - 1}") == f"value:{keys - 1}"
        again.close()
        return {"save_s": save, "load_s": load, "size_mb": os.path.getsize(path) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"{now()}  {cpu_model()}  Python {sys.version.split()[0]}  load {os.getloadavg()[0]:.1f}")
    print(f"{args.keys:,} string keys")
    ours = server_run("stratacache", args.keys)
    theirs = server_run("redis", args.keys)
    for label, key in (("SAVE", "save_s"), ("load at start", "load_s")):
        ratio = ours[key] / theirs[key]
        print(f"{label:14} stratacache {ours[key]:6.2f} s   redis {theirs[key]:6.2f} s   x{ratio:.1f}")
    alone = ours["load_logged_s"]
    print(f"{'':14} (of which stratacache's load itself: {alone:.2f} s; the rest is start-up)")
    print(f"{'file':14} stratacache {ours['size_mb']:6.1f} MB  redis {theirs['size_mb']:6.1f} MB")
    print(
        f"BGSAVE         {ours['bgsave_s']:.2f} s, {int(ours['bgsave_writes']):,} writes served meanwhile, "
        f"child's private memory peak {int(ours['child_mib'])} MiB"
    )
    lib = library_run(args.keys)
    save, load, size = lib["save_s"], lib["load_s"], lib["size_mb"]
    print(f"memory backend save (close) {save:.2f} s, load (open) {load:.2f} s, {size:.1f} MB")


if __name__ == "__main__":
    main()
