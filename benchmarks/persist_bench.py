"""The append-only log of ``stratacache serve`` next to redis-server's, in one run (issue 15).

Both servers run with the log on, in temporary directories of the same file system, with
``appendfsync always`` and automatic rewrites off (``auto-aof-rewrite-percentage 0``, so
neither compacts its log behind the other's back):

* **write throughput**: ``redis-benchmark -t set -c 50 -P 1`` then ``-P 16``, on one server
  then the other (requests per second; every reply waits for its fsync, in group commits);
* **restart**: ``--keys`` keys (default 1M, ``key:%012d`` to 32-byte values) loaded through a
  pipelined client, the server stopped (SIGTERM), started again on the same directory, and
  timed from the start of the process to the first GET of the last key that answers its value
  (Redis loads its own AOF: its base plus the incremental file of those SETs).

It prints a table with our/Redis ratios and, with ``--output``, writes it into the
"Persistence" section of that Markdown file (between the ``persist_bench`` markers).

    python benchmarks/persist_bench.py                          # full run, a few minutes
    python benchmarks/persist_bench.py --output docs/benchmarks.md
    python benchmarks/persist_bench.py --requests 2000 --keys 10000   # a smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _servers import Server, pin_client, sigterm_as_exit, start_server
from server_bench import load_keys, redis_benchmark

BEGIN = "<!-- persist_bench:begin -->"
END = "<!-- persist_bench:end -->"
SECTION = "## Persistence (issue 15): append-only log next to redis-server's"


def _ours_argv(exe: str, port: int, workdir: str) -> list[str]:
    config = Path(workdir) / "server.yaml"
    config.write_text(
        f"port: {port}\nbind: 127.0.0.1\ndir: {workdir}\nappendonly: yes\nappendfsync: always\n"
        "auto-aof-rewrite-percentage: 0\nmaxmemory: 2gb\n"
    )
    return [sys.executable, "-m", "stratacache", "serve", "--config", str(config)]


def _redis_argv(exe: str, port: int, workdir: str) -> list[str]:
    return [
        exe,
        "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
        "--appendfsync", "always", "--auto-aof-rewrite-percentage", "0", "--dir", workdir,
        "--logfile", "", "--protected-mode", "yes",
    ]  # fmt: skip


def start(name: str, pin: bool) -> Server:
    """Our server or redis-server, log on, ``appendfsync always``."""
    if name == "ours":
        return start_server(os.path.basename(sys.executable), _ours_argv, pin=pin)
    return start_server("redis-server", _redis_argv, pin=pin)


def restart_seconds(server: Server, keys: int) -> float:
    """Stop ``server`` (SIGTERM), start it again on its directory with its port and time it
    until a GET of the last key loaded answers the value."""
    server.proc.terminate()
    server.proc.wait(timeout=120)
    argv = list(server.proc.args)  # type: ignore[arg-type]
    key = b"key:%012d" % (keys - 1)
    expected = b"$32\r\n" + b"v" * 32 + b"\r\n"
    started = time.perf_counter()
    server.proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=server.workdir.name,
    )
    deadline = started + 600
    while time.perf_counter() < deadline:
        if server.proc.poll() is not None:
            raise SystemExit(f"{server.name} exited with {server.proc.returncode} while restarting")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                while True:
                    sock.sendall(b"*2\r\n$3\r\nGET\r\n$16\r\n%b\r\n" % key)
                    reply = sock.recv(256)
                    if reply == expected:
                        return time.perf_counter() - started
                    if not reply.startswith(b"-LOADING"):
                        raise SystemExit(f"{server.name}: unexpected reply {reply!r} after restart")
                    time.sleep(0.005)
        except (ConnectionRefusedError, ConnectionResetError):
            time.sleep(0.005)
    raise SystemExit(f"{server.name} did not load its log within 600 s")


def log_bytes(server: Server) -> int:
    """The size of the server's log files (Redis 7: its appendonlydir)."""
    total = 0
    for root, _, files in os.walk(server.workdir.name):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files if ".aof" in f)
    return total


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000, help="requests per redis-benchmark run")
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys loaded before the restart")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and client to CPUs")
    parser.add_argument("--output", type=Path, help="write the table into this Markdown file")
    args = parser.parse_args(argv)
    pin = not args.no_pin
    pinned = pin_client(pin)
    names = ("ours", "redis")
    rps: dict[tuple[str, int], float] = {}
    restart: dict[str, float] = {}
    sizes: dict[str, int] = {}
    with sigterm_as_exit():
        servers = {name: start(name, pin) for name in names}
        try:
            for pipeline in (1, 16):
                for name in names:  # one then the other, phase by phase
                    result = redis_benchmark(
                        servers[name].port, args.requests, args.clients, pipeline, pin, "set"
                    )
                    rps[(name, pipeline)] = result["SET"][0]
                    print(f"{name}: SET -c {args.clients} -P {pipeline}: {rps[(name, pipeline)]:,.0f} req/s")
            for name in names:
                load_keys(servers[name].port, args.keys)
                sizes[name] = log_bytes(servers[name])
            for name in names:
                restart[name] = restart_seconds(servers[name], args.keys)
                print(f"{name}: restart with {args.keys:,} keys: {restart[name]:.2f} s")
        finally:
            for server in servers.values():
                server.stop()
    lines = [
        SECTION,
        "",
        BEGIN,
        f"`python benchmarks/persist_bench.py` on {platform.machine()} with {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; client {pinned}. Both servers: `appendonly yes`, "
        "`appendfsync always`, automatic rewrites off, logs on the same file system.",
        "",
        "| measure | ours | redis-server | ours / Redis |",
        "|---|---:|---:|---:|",
    ]
    for pipeline in (1, 16):
        ours, redis = rps[("ours", pipeline)], rps[("redis", pipeline)]
        lines.append(
            f"| SET req/s, -c {args.clients} -P {pipeline} (n={args.requests:,}) "
            f"| {ours:,.0f} | {redis:,.0f} | {ours / redis:.2f}x |"
        )
    ours_s, redis_s = restart["ours"], restart["redis"]
    lines.append(
        f"| restart with {args.keys:,} keys (s, to the first answer of the last key) "
        f"| {ours_s:.2f} | {redis_s:.2f} | {redis_s / ours_s:.2f}x speed |"
    )
    lines.append(f"| log size (bytes) | {sizes['ours']:,} | {sizes['redis']:,} | |")
    lines += [END, ""]
    block = "\n".join(lines)
    print()
    print(block)
    if args.output is not None:
        write_section(args.output, block)
    return 0


def write_section(path: Path, block: str) -> None:
    """Replace the text between the markers (or append the section) in ``path``."""
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head = text[: text.index(SECTION)] if SECTION in text else text[: text.index(BEGIN)]
        tail = text[text.index(END) + len(END) :].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
