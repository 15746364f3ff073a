"""``stratacache serve`` as a user runs it: a subprocess, its banner, its options, its
errors, and SIGTERM's graceful shutdown."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cliproc import banner, finish, serve, stop
from respclient import HOST, RespConn

from servers import free_port
from stratacache.server.config import DEFAULT_PORT


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A server on a free port, stopped (and reaped) after the test."""
    port = free_port()
    proc = serve("--port", str(port), "--maxmemory", "8mb")
    try:
        text = banner(proc)
        assert f"127.0.0.1:{port}" in text, text + (proc.stderr.read() if proc.stderr else "")
        yield proc, port
    finally:
        finish(proc, signal.SIGTERM)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def test_serve_without_arguments_uses_the_documented_defaults() -> None:
    if not port_free(DEFAULT_PORT):
        pytest.skip(f"port {DEFAULT_PORT} is taken on this machine")
    proc = serve()
    try:
        text = banner(proc)
        assert "127.0.0.1:7379" in text
        assert "maxmemory 536870912 bytes" in text
        assert "redis-cli -h 127.0.0.1 -p 7379" in text
        conn = RespConn(DEFAULT_PORT)
        assert conn.call("PING") == "PONG"
        conn.close()
    finally:
        assert stop(proc) == 0


def test_options_port_bind_maxmemory(server: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = server
    conn = RespConn(port)
    try:
        assert conn.call("SET", "k", "v") == "OK"
        assert conn.call("GET", "k") == b"v"
    finally:
        conn.close()
    assert stop(proc) == 0


def test_banner_shows_bind_and_maxmemory() -> None:
    port = free_port()
    proc = serve("--port", str(port), "--bind", "127.0.0.1", "--maxmemory", "2mb")
    try:
        text = banner(proc)
        assert f"Redis protocol on 127.0.0.1:{port}" in text
        assert "maxmemory 2097152 bytes" in text
        assert f"redis://127.0.0.1:{port}/0" in text
    finally:
        assert stop(proc) == 0


def test_config_file_is_read(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "server.yaml"
    path.write_text(f"port: {port}\nmaxmemory: 3mb\nmaxmemory-policy: allkeys-lfu\n")
    proc = serve("--config", str(path))
    try:
        text = banner(proc)
        assert f"127.0.0.1:{port}" in text
        assert "maxmemory 3145728 bytes, policy allkeys-lfu" in text
    finally:
        assert stop(proc) == 0


def test_command_line_overrides_the_config_file(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "server.yaml"
    path.write_text("port: 1\nmaxmemory: 3mb\n")
    proc = serve("--config", str(path), "--port", str(port))
    try:
        assert f"127.0.0.1:{port}" in banner(proc)
    finally:
        assert stop(proc) == 0


@pytest.mark.parametrize(
    ("args", "yaml", "expected"),
    [
        ((), "maxmemory: 12 parsecs\n", "{path}: maxmemory: '12 parsecs' is not a size"),
        ((), "prot: 7000\n", "{path}: unknown option 'prot' (value 7000)"),
        ((), "port: [1\n", "{path}: not valid YAML"),
        (("--maxmemory", "lots"), "", "command line: maxmemory: 'lots' is not a size"),
        (("--maxmemory-policy", "fifo"), "", "command line: maxmemory-policy: 'fifo' is not one of"),
    ],
)
def test_configuration_errors_name_file_key_value(
    tmp_path: Path, args: tuple[str, ...], yaml: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml)
    proc = subprocess.run(
        [sys.executable, "-m", "stratacache.cli", "serve", "--config", str(path), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("stratacache serve: " + expected.format(path=path)), proc.stderr
    assert "Traceback" not in proc.stderr


def test_port_in_use_is_a_clean_error() -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "stratacache.cli", "serve", "--port", str(port)],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1
    assert proc.stderr.startswith("stratacache serve: cannot listen:")
    assert "Traceback" not in proc.stderr


def test_sigterm_answers_the_pipeline_in_flight_then_exits_0(
    server: tuple[subprocess.Popen[str], int],
) -> None:
    proc, port = server

    def batch(first: int, count: int) -> bytes:
        return b"".join(
            b"*3\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$1\r\nv\r\n" % (len(key), key)
            for key in (b"k%d" % i for i in range(first, first + count))
        )

    with socket.create_connection((HOST, port), timeout=10) as sock:
        assert sock.sendall(batch(0, 20000)) is None
        # The server stopped while the second batch is sent and the signal comes: the batch
        # is unread in the socket buffers when it handles the signal, and must be read and
        # answered all the same (closing a socket with unread input would reset it).
        proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(0.05)
            sock.sendall(batch(20000, 5000))
            proc.send_signal(signal.SIGTERM)
        finally:
            proc.send_signal(signal.SIGCONT)
        received = b""
        while chunk := sock.recv(1 << 20):
            received += chunk
    assert received == b"+OK\r\n" * 25000  # every reply, then the close
    status, err = finish(proc)
    assert status == 0
    assert "received SIGTERM, shutting down" in err
    # Stopped accepting: nothing listens on the port any more.
    with pytest.raises(OSError):
        socket.create_connection((HOST, port), timeout=2).close()


def test_sigterm_with_idle_clients_exits_0(server: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = server
    idle = [RespConn(port) for _ in range(3)]
    try:
        assert idle[0].call("PING") == "PONG"
        started = time.monotonic()
        assert stop(proc) == 0
        assert time.monotonic() - started < 5
        assert all(conn.closed(2) for conn in idle)
    finally:
        for conn in idle:
            conn.close()
