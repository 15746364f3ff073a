"""Throw-away servers for the benchmark scripts (not a benchmark itself).

:func:`start_redis` and :func:`start_memcached` start a private server on a free loopback
port, without persistence, in a temporary directory of its own. With ``pin=True`` on a
machine with two or more CPUs (and ``taskset`` on PATH) the server runs on ``SERVER_CPU``;
:func:`pin_client` then puts this process on ``CLIENT_CPU``, so a round trip does not wait
for the scheduler to switch between client and server. The server runs in its own session,
so a Ctrl-C reaches only the script, which stops the server (a :class:`Server` is a context
manager); :func:`sigterm_as_exit` makes a SIGTERM unwind the same way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

SERVER_CPU = 0
CLIENT_CPU = 1
START_TIMEOUT = 10.0  # seconds a server has to accept connections


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    pinned: bool  # the server runs on SERVER_CPU (taskset)
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

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def start_server(name: str, argv: Callable[[str, int, str], list[str]], *, pin: bool) -> Server:
    """Start ``argv(executable, port, workdir)`` and wait until it accepts connections."""
    exe = shutil.which(name)
    if exe is None:
        raise SystemExit(f"{name} is not on PATH (see scripts/install_servers.sh)")
    workdir = tempfile.TemporaryDirectory(prefix=f"bench-{name}-")
    port = free_port()
    cmd = argv(exe, port, workdir.name)
    pinned = pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    if pinned:
        cmd = ["taskset", "-c", str(SERVER_CPU), *cmd]
    # Its own session, so a Ctrl-C reaches only this script, which then stops the server.
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=workdir.name
    )
    server = Server(name, proc, port, pinned, workdir)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not _accepts(port):
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with code {proc.returncode} on port {port}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not answer on port {port} within {START_TIMEOUT:.0f} s")
            time.sleep(0.05)
    except BaseException:
        server.stop()
        raise
    return server


def start_redis(*, pin: bool) -> Server:
    """A redis-server with no persistence (``--save "" --appendonly no``)."""

    def argv(exe: str, port: int, workdir: str) -> list[str]:
        return [
            exe,
            "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", workdir, "--logfile", "", "--protected-mode", "yes",
        ]  # fmt: skip

    return start_server("redis-server", argv, pin=pin)


def start_memcached(*, pin: bool) -> Server:
    """A memcached with 64 MB, one worker thread, no UDP."""

    def argv(exe: str, port: int, workdir: str) -> list[str]:
        cmd = [exe, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64", "-t", "1"]
        if os.geteuid() == 0:
            cmd += ["-u", "root"]
        return cmd

    return start_server("memcached", argv, pin=pin)


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
