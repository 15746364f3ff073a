"""``stratacache serve`` next to a real redis-server, measured by ``redis-benchmark`` (issue 14).

One run starts both servers (free loopback ports, no persistence), then measures each phase
on one server then the other (so that both meet about the same load on a shared machine),
with the same options:

* **throughput**: ``redis-benchmark -c 50 -P 16 -t get,set`` (requests per second, p50);
* **latency and CPU**: ``redis-benchmark -c 50 -t get,set`` without pipelining: p50, and the
  server's CPU time per request (utime + stime from ``/proc/<pid>/stat`` before and after);
* **memory**: RSS (``/proc/<pid>/status``) before and after loading ``--keys`` keys of 16
  bytes (``key:%012d``) with 32-byte values through a pipelined loader.

It prints a table with our/Redis ratios and, with ``--output``, writes it into the "Server"
section of that Markdown file (between the ``server_bench`` markers; the rest of the file is
kept). With two or more CPUs and ``taskset``, both servers run on CPU 0 and redis-benchmark on
CPU 1 (``--no-pin`` turns that off).

    python benchmarks/server_bench.py                      # full run, ~1 minute
    python benchmarks/server_bench.py --output docs/benchmarks.md
    python benchmarks/server_bench.py --requests 2000 --keys 1000   # a smoke run
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _servers import CLIENT_CPU, SERVER_CPU, Server, sigterm_as_exit, start_redis, start_server

BEGIN = "<!-- server_bench:begin -->"
END = "<!-- server_bench:end -->"
SECTION = "## Server (issue 14): `stratacache serve` next to redis-server"
LOAD_BATCH = 10_000  # commands per write of the loader


@dataclass
class Result:
    """What one server measured."""

    name: str
    rps: dict[str, float] = field(default_factory=dict)  # pipelined, by test
    p50_pipelined: dict[str, float] = field(default_factory=dict)
    rps_plain: dict[str, float] = field(default_factory=dict)  # no pipelining
    p50: dict[str, float] = field(default_factory=dict)  # ms, no pipelining
    cpu_us: float = 0.0  # server CPU microseconds per request, no pipelining
    rss_empty: int = 0
    rss_loaded: int = 0


def start_ours(*, pin: bool) -> Server:
    """``stratacache serve`` from this interpreter (so the checkout's code is measured)."""

    def argv(exe: str, port: int, workdir: str) -> list[str]:
        return [sys.executable, "-m", "stratacache", "serve", "--port", str(port), "--bind", "127.0.0.1"]

    # start_server looks the executable up on PATH; the interpreter always is.
    return start_server(os.path.basename(sys.executable), argv, pin=pin)


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """VmRSS of ``pid``."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def redis_benchmark(
    port: int, requests: int, clients: int, pipeline: int, pin: bool, tests: str
) -> dict[str, tuple[float, float]]:
    """``{test: (rps, p50 ms)}`` for ``tests`` ("set,get")."""
    cmd = [
        "redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(clients), "-P", str(pipeline),
        "-n", str(requests), "-t", tests, "--csv",
    ]  # fmt: skip
    if pin and shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        cmd = ["taskset", "-c", str(CLIENT_CPU), *cmd]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600).stdout
    results: dict[str, tuple[float, float]] = {}
    for row in csv.DictReader(io.StringIO(out)):
        results[row["test"]] = (float(row["rps"]), float(row["p50_latency_ms"]))
    if set(results) != set(tests.upper().split(",")):
        raise SystemExit(f"unexpected redis-benchmark output:\n{out}")
    return results


def load_keys(port: int, count: int) -> None:
    """SET ``count`` keys ``key:%012d`` (16 bytes) to 32-byte values, pipelined."""
    value = b"v" * 32
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for start in range(0, count, LOAD_BATCH):
            stop = min(start + LOAD_BATCH, count)
            payload = b"".join(
                b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$32\r\n%b\r\n" % (i, value)
                for i in range(start, stop)
            )
            sock.sendall(payload)
            expected = 5 * (stop - start)  # "+OK\r\n" each
            got = bytearray()
            while len(got) < expected:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise SystemExit("the server closed the connection while loading keys")
                got += chunk
            if bytes(got) != b"+OK\r\n" * (stop - start):
                raise SystemExit(f"unexpected reply while loading keys: {bytes(got[:200])!r}")


def check_loaded(port: int, count: int) -> None:
    """The last key loaded reads back (the loader saw every reply, so all went in)."""
    key = b"key:%012d" % (count - 1)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"*2\r\n$3\r\nGET\r\n$16\r\n%b\r\n" % key)
        reply = sock.recv(64)
    if reply != b"$32\r\n" + b"v" * 32 + b"\r\n":
        raise SystemExit(f"unexpected GET reply {reply!r} after loading keys")


def measure(servers: dict[str, Server], args: argparse.Namespace) -> dict[str, Result]:
    """Every phase on each server in turn, so that both meet about the same machine load."""
    results = {name: Result(name) for name in servers}
    # Throughput, pipelined: one test at a time, alternating servers.
    for test in ("set", "get"):
        for name, server in servers.items():
            rps, p50 = redis_benchmark(server.port, args.requests, 50, 16, args.pin, test)[test.upper()]
            results[name].rps[test.upper()] = rps
            results[name].p50_pipelined[test.upper()] = p50
    # Latency and CPU per request, one request per round trip.
    plain = max(args.requests // 4, 1)
    for name, server in servers.items():
        result = results[name]
        before = cpu_seconds(server.proc.pid)
        for test, (rps, p50) in redis_benchmark(server.port, plain, 50, 1, args.pin, "set,get").items():
            result.rps_plain[test] = rps
            result.p50[test] = p50
        result.cpu_us = (cpu_seconds(server.proc.pid) - before) / (2 * plain) * 1e6
    # Memory: RSS before (the benchmarks left two keys), then with the keys loaded.
    for name, server in servers.items():
        result = results[name]
        pid = server.proc.pid
        time.sleep(0.2)
        result.rss_empty = rss_bytes(pid)
        load_keys(server.port, args.keys)
        check_loaded(server.port, args.keys)
        time.sleep(0.2)
        result.rss_loaded = rss_bytes(pid)
    return results


def _ratio(ours: float, redis: float) -> str:
    return f"{ours / redis:.2f}x" if redis else "-"


def table(ours: Result, redis: Result, args: argparse.Namespace) -> str:
    mb = 1024 * 1024
    rows: list[tuple[str, str, str, str]] = []
    for test in ("SET", "GET"):
        rows.append(
            (
                f"{test} rps, -c 50 -P 16",
                f"{ours.rps[test]:,.0f}",
                f"{redis.rps[test]:,.0f}",
                _ratio(ours.rps[test], redis.rps[test]),
            )
        )
    for test in ("SET", "GET"):
        rows.append(
            (
                f"{test} rps, -c 50",
                f"{ours.rps_plain[test]:,.0f}",
                f"{redis.rps_plain[test]:,.0f}",
                _ratio(ours.rps_plain[test], redis.rps_plain[test]),
            )
        )
    for test in ("SET", "GET"):
        rows.append(
            (
                f"{test} p50 ms, -c 50",
                f"{ours.p50[test]:.3f}",
                f"{redis.p50[test]:.3f}",
                _ratio(ours.p50[test], redis.p50[test]),
            )
        )
    rows.append(
        (
            "server CPU us/request, -c 50",
            f"{ours.cpu_us:.2f}",
            f"{redis.cpu_us:.2f}",
            _ratio(ours.cpu_us, redis.cpu_us),
        )
    )
    rows.append(
        (
            "RSS empty (MiB)",
            f"{ours.rss_empty / mb:.1f}",
            f"{redis.rss_empty / mb:.1f}",
            _ratio(ours.rss_empty, redis.rss_empty),
        )
    )
    rows.append(
        (
            f"RSS with {args.keys:,} keys (MiB)",
            f"{ours.rss_loaded / mb:.1f}",
            f"{redis.rss_loaded / mb:.1f}",
            _ratio(ours.rss_loaded, redis.rss_loaded),
        )
    )
    ours_key = (ours.rss_loaded - ours.rss_empty) / args.keys
    redis_key = (redis.rss_loaded - redis.rss_empty) / args.keys
    rows.append(
        ("RSS growth per key (bytes)", f"{ours_key:.0f}", f"{redis_key:.0f}", _ratio(ours_key, redis_key))
    )
    lines = ["| measure | stratacache serve | redis-server | ratio |", "|---|---:|---:|---:|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def write_section(path: Path, block: str) -> None:
    """Put ``block`` between the markers of the Server section, creating it if need be."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    body = f"{BEGIN}\n{block}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + body + tail
    else:
        section = f"{SECTION}\n\n{body}\n\n"
        match = re.search(r"^## ", text, re.MULTILINE)
        text = (
            text[: match.start()] + section + text[match.start() :]
            if match
            else text.rstrip("\n") + "\n\n" + section
        )
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000, help="requests per pipelined test")
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys loaded for the RSS figure")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin servers and client")
    parser.add_argument("--output", type=Path, help="Markdown file whose Server section gets the table")
    args = parser.parse_args(argv)
    if shutil.which("redis-benchmark") is None:
        raise SystemExit("redis-benchmark is not on PATH")
    with sigterm_as_exit(), start_redis(pin=args.pin) as redis, start_ours(pin=args.pin) as ours:
        results = measure({"redis-server": redis, "stratacache": ours}, args)
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[2]
    header = (
        f"{time.strftime('%Y-%m-%d', time.gmtime())}, redis-benchmark {args.requests:,} requests a test "
        f"(a quarter of that without pipelining), {args.keys:,} keys loaded; redis-server "
        f"{redis_version.removeprefix('v=')}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, "
        + (f"servers on CPU {SERVER_CPU}, redis-benchmark on CPU {CLIENT_CPU}" if args.pin else "not pinned")
        + "."
    )
    block = header + "\n\n" + table(results["stratacache"], results["redis-server"], args)
    print(block)
    if args.output is not None:
        write_section(args.output, block)
        print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
