"""Helpers for the cluster tests: a 3-node layout on free ports, the per-node configurations
(one function, so durability options can be added to every node in one place), nodes as
threads of the test process or as ``stratacache serve`` subprocesses (for kill -9)."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from servers import free_port
from stratacache.server import ServerThread
from stratacache.server.config import config_from_mapping

__all__ = ["HOST", "RANGES", "NodeProcess", "layout", "node_configs", "start_threads", "stop_threads"]

HOST = "127.0.0.1"
# The three primaries' slots as `redis-cli --cluster create` spreads them over three nodes.
RANGES = ("0-5460", "5461-10922", "10923-16383")


def layout(ports: list[int], ranges: tuple[str, ...] = RANGES) -> dict[str, Any]:
    """The ``cluster`` mapping for nodes on ``ports`` (ids derived from the addresses)."""
    return {
        "nodes": [
            {"host": HOST, "port": port, "slots": slots} for port, slots in zip(ports, ranges, strict=True)
        ]
    }


def node_configs(ports: list[int] | None = None, **options: Any) -> list[dict[str, Any]]:
    """One configuration mapping per node (as YAML would give it), sharing one ``cluster``
    mapping; ``options`` are Redis-named options added to every node (e.g.
    ``appendonly="yes", appendfsync="always"``, with a ``dir`` per node when given as a
    callable of the port)."""
    ports = ports if ports is not None else [free_port() for _ in RANGES]
    shared = layout(ports)
    configs = []
    for port in ports:
        extra = {
            name.replace("_", "-"): value(port) if callable(value) else value
            for name, value in options.items()
        }
        configs.append({"port": port, "bind": HOST, "cluster-enabled": "yes", "cluster": shared, **extra})
    return configs


def start_threads(configs: list[dict[str, Any]]) -> list[ServerThread]:
    """A :class:`ServerThread` per configuration (each listens on its configured port)."""
    started: list[ServerThread] = []
    try:
        for config in configs:
            started.append(ServerThread(config_from_mapping(config, "test")).start())
    except BaseException:
        stop_threads(started)
        raise
    return started


def stop_threads(threads: list[ServerThread]) -> None:
    """Stop every thread, then fail if one logged an internal error."""
    for running in threads:
        running.stop()
    for running in threads:
        assert running.server is not None
        assert running.server.internal_errors == 0, "a cluster node logged an internal error"


class NodeProcess:
    """A ``stratacache serve --config <file>`` subprocess: start, kill -9, restart."""

    def __init__(self, config: dict[str, Any], directory: Path) -> None:
        self.config = config
        self.port: int = config["port"]
        self.path = directory / f"node-{self.port}.yaml"
        self.path.write_text(yaml.safe_dump(config))
        self.log = directory / f"node-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> NodeProcess:
        """Start the process and wait until it accepts connections."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stratacache.cli", "serve", "--config", str(self.path)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node on port {self.port} exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.2):
                return self
            time.sleep(0.05)
        raise TimeoutError(f"node on port {self.port} did not listen within {timeout} s")

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown), SIGKILL if it lingers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
