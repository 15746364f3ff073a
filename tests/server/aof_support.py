"""Helpers of the append-only log tests: ``stratacache serve`` subprocesses on a log
directory, a keyspace dump to compare two servers, a log replayed into a real Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis
from respclient import HOST

from servers import free_port


class AofServer:
    """``stratacache serve --config FILE`` with a log in ``directory`` (options Redis-named)."""

    def __init__(self, directory: Path, **options: Any) -> None:
        self.directory = directory
        self.port = free_port()
        self.options = {"port": self.port, "dir": str(directory), "appendonly": "yes", **options}
        self.config = directory / f"server-{self.port}.yaml"
        self.config.write_text("".join(f"{k.replace('_', '-')}: {v!r}\n" for k, v in self.options.items()))
        self.proc: subprocess.Popen[str] | None = None

    @property
    def log(self) -> Path:
        """The log file."""
        return self.directory / str(self.options.get("appendfilename", "appendonly.aof"))

    def start(self) -> AofServer:
        """Start it and wait for its banner (raises with stderr if it exits instead)."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stratacache.cli", "serve", "--config", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code, err = self.finish()
            raise RuntimeError(f"the server exited with {code}: {err}")
        self.proc.stdout.readline()
        return self

    def client(self, db: int = 0) -> redis.Redis:
        """redis-py on it."""
        return redis.Redis(host=HOST, port=self.port, db=db, socket_timeout=10)

    def kill(self) -> None:
        """SIGKILL, no goodbye."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.communicate(timeout=10)

    def finish(self, sig: int | None = signal.SIGTERM) -> tuple[int, str]:
        """Send ``sig`` (if running) and wait: (exit status, stderr)."""
        assert self.proc is not None
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


def run_serve(config: Path) -> tuple[int, str]:
    """``stratacache serve --config FILE`` expected to exit at once: (status, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", "stratacache.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return proc.returncode, proc.stderr


def keyspace(port: int, databases: range = range(16)) -> dict[tuple[int, bytes], Any]:
    """Every key of every database: (db, key) -> (type, value, PEXPIRETIME)."""
    result: dict[tuple[int, bytes], Any] = {}
    for db in databases:
        r = redis.Redis(host=HOST, port=port, db=db)
        try:
            for key in r.keys("*"):
                kind = r.type(key)
                if kind == b"string":
                    value: Any = r.get(key)
                elif kind == b"list":
                    value = r.lrange(key, 0, -1)
                elif kind == b"set":
                    value = sorted(r.smembers(key))
                elif kind == b"hash":
                    value = r.hgetall(key)
                elif kind == b"zset":
                    value = r.zrange(key, 0, -1, withscores=True)
                else:
                    value = kind
                result[(db, key)] = (kind, value, r.execute_command("PEXPIRETIME", key))
        finally:
            r.close()
    return result


def replay_into_redis(log: Path, port: int) -> str:
    """Feed the log to a real redis-server with ``redis-cli --pipe`` (Redis's own tooling);
    returns redis-cli's report, which names any error reply."""
    with open(log, "rb") as handle:
        proc = subprocess.run(
            ["redis-cli", "-h", HOST, "-p", str(port), "--pipe"],
            stdin=handle,
            capture_output=True,
            timeout=60,
            check=False,
        )
    report = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, report
    assert "errors: 0" in report, report
    return report
