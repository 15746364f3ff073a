"""The Memcached listener of ``stratacache serve`` next to a real memcached: one run.

    python benchmarks/memcache_listener_bench.py [--ops 20000]

Starts ``memcached -t 1`` and ``stratacache serve --memcached-port`` (uvloop) on free
loopback ports, then with one pymemcache client each (replies awaited): ``--ops`` sets of a
32-byte value, ``--ops`` gets, then ``--ops`` keys through ``get_many`` in batches of 100 (one
pipelined multi-get per batch). Prints operations per second for each and the ratio. The
client is Python, so the single-key figures are mostly its own round-trip cost: read the
ratio, and the multi-get line for the server side.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable

from pymemcache.client.base import Client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _rate(run: Callable[[], None], count: int) -> float:
    start = time.perf_counter()
    run()
    return count / (time.perf_counter() - start)


def _measure(port: int, ops: int) -> dict[str, float]:
    client = Client(("127.0.0.1", port), default_noreply=False)
    value = b"v" * 32
    keys = [f"key:{i:012d}" for i in range(ops)]
    try:
        results = {
            "set": _rate(lambda: [client.set(k, value) for k in keys], ops),
            "get": _rate(lambda: [client.get(k) for k in keys], ops),
            "get_many x100": _rate(
                lambda: [client.get_many(keys[i : i + 100]) for i in range(0, ops, 100)], ops
            ),
        }
    finally:
        client.close()
    return results


def main() -> int:
    """Run the comparison once and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=20_000)
    args = parser.parse_args()
    mport, sport, rport = _free_port(), _free_port(), _free_port()
    memcached = [
        "memcached",
        "-l",
        "127.0.0.1",
        "-p",
        str(mport),
        "-U",
        "0",
        "-t",
        "1",
        "-m",
        "256",
    ]
    if os.geteuid() == 0:
        memcached += ["-u", "root"]
    serve = [
        sys.executable,
        "-m",
        "stratacache.cli",
        "serve",
        "--port",
        str(rport),
        "--memcached-port",
        str(sport),
    ]
    procs = [subprocess.Popen(memcached), subprocess.Popen(serve, stdout=subprocess.DEVNULL)]
    try:
        _wait(mport)
        _wait(sport)
        real = _measure(mport, args.ops)
        ours = _measure(sport, args.ops)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    print("| pymemcache, one client | stratacache serve | memcached -t 1 | ratio |")
    print("|---|---:|---:|---:|")
    for name in real:
        print(f"| {name} ops/s | {ours[name]:,.0f} | {real[name]:,.0f} | {ours[name] / real[name]:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
