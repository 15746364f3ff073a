"""Tests of the test-server harness in ``tests/servers.py``, against real processes only.

The fixtures come from ``servers.py`` through ``tests/conftest.py``.

The assertions talk to the servers over raw sockets on purpose: the harness must be trustworthy
independently of the client libraries and of the code under test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import servers
from servers import (
    MemcachedServer,
    MemcachedServerFactory,
    RedisServer,
    RedisServerFactory,
    free_port,
    have_binary,
    require_binary,
)

# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def need_redis() -> None:
    """Skip (or fail on CI) when redis-server is missing."""
    require_binary("redis-server")


@pytest.fixture
def need_memcached() -> None:
    """Skip (or fail on CI) when memcached is missing."""
    require_binary("memcached")


class RawConnection:
    """A line-oriented raw TCP connection, for speaking RESP or the memcached text protocol."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5.0)
        self.rfile = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        """Send ``data`` as is."""
        self.sock.sendall(data)

    def line(self) -> bytes:
        """Read one CRLF-terminated line."""
        return self.rfile.readline()

    def close(self) -> None:
        """Close the file object and the socket."""
        self.rfile.close()
        self.sock.close()


@pytest.fixture
def connect() -> Iterator[type[RawConnection]]:
    """Yield a RawConnection factory whose connections are all closed at teardown."""
    opened: list[RawConnection] = []

    class Tracked(RawConnection):
        def __init__(self, port: int) -> None:
            super().__init__(port)
            opened.append(self)

    yield Tracked
    for conn in opened:
        conn.close()


def resp(*args: str) -> bytes:
    """Encode a Redis command as a RESP array of bulk strings."""
    return b"".join(
        [b"*%d\r\n" % len(args), *(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args)]
    )


def assert_refused(port: int) -> None:
    """Assert that nothing listens on ``port`` any more."""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2.0).close()


def assert_gone(pid: int) -> None:
    """Assert that ``pid`` no longer exists (not even as an unreaped zombie)."""
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# --------------------------------------------------------------------------------------------------
# Binaries and ports
# --------------------------------------------------------------------------------------------------


def test_free_port_is_bindable_and_never_repeated() -> None:
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == len(ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[0]))


def test_require_binary_skips_locally_and_fails_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    name = "stratacache-no-such-binary"
    assert not have_binary(name)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"install_servers\.sh"):
        require_binary(name)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(RuntimeError, match=rf"{name}.*not installed.*install_servers\.sh"):
        require_binary(name)


def test_require_binary_passes_for_present_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "stratacache-fake-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    assert have_binary(fake.name)
    require_binary(fake.name)


def test_extra_args_must_not_be_a_string() -> None:
    with pytest.raises(TypeError):
        RedisServer(extra_args="--maxmemory 1mb")


# --------------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("need_redis")
def test_redis_answers_ping_set_get(tmp_path: Path, connect: type[RawConnection]) -> None:
    with RedisServer(tmpdir=tmp_path) as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert server.host == "127.0.0.1"
        assert server.pid is not None
        conn = connect(server.port)
        conn.send(resp("PING"))
        assert conn.line() == b"+PONG\r\n"
        conn.send(resp("SET", "greeting", "hello"))
        assert conn.line() == b"+OK\r\n"
        conn.send(resp("GET", "greeting"))
        assert conn.line() == b"$5\r\n"
        assert conn.line() == b"hello\r\n"
        # The harness' own client agrees, and flush() empties the server.
        assert server.command("GET", "greeting") == b"hello"
        server.flush()
        assert server.command("DBSIZE") == 0
        assert (tmp_path / "redis-server.log").exists()


@pytest.mark.usefixtures("need_redis")
def test_redis_password(tmp_path: Path, connect: type[RawConnection]) -> None:
    with RedisServer(password="s3cret/pw", tmpdir=tmp_path) as server:
        assert server.url == f"redis://:s3cret%2Fpw@127.0.0.1:{server.port}/0"
        conn = connect(server.port)
        conn.send(resp("GET", "k"))
        assert conn.line().startswith(b"-NOAUTH")
        conn.send(resp("AUTH", "wrong"))
        assert conn.line().startswith(b"-WRONGPASS")
        conn.send(resp("AUTH", "s3cret/pw"))
        assert conn.line() == b"+OK\r\n"
        conn.send(resp("SET", "k", "v"))
        assert conn.line() == b"+OK\r\n"
        assert server.command("GET", "k") == b"v"


@pytest.mark.usefixtures("need_redis")
def test_redis_kill_then_restart_on_same_port(tmp_path: Path, connect: type[RawConnection]) -> None:
    with RedisServer(tmpdir=tmp_path) as server:
        port, pid = server.port, server.pid
        assert pid is not None
        server.command("SET", "k", "v")

        server.kill()
        assert not server.running
        assert server.pid is None
        assert_gone(pid)
        assert_refused(port)
        server.kill()  # idempotent

        server.restart()
        assert server.port == port
        assert server.pid not in (None, pid)
        conn = connect(port)
        conn.send(resp("PING"))
        assert conn.line() == b"+PONG\r\n"
        # No persistence: a restarted server is empty.
        conn.send(resp("GET", "k"))
        assert conn.line() == b"$-1\r\n"


@pytest.mark.usefixtures("need_redis")
def test_redis_restart_while_running_and_after_stop(tmp_path: Path) -> None:
    server = RedisServer(tmpdir=tmp_path).start()
    try:
        port = server.port
        server.restart()
        assert server.port == port
        assert server.command("PING") == "PONG"
        server.stop()
        server.restart()
        assert server.port == port
        assert server.command("PING") == "PONG"
    finally:
        server.stop()


@pytest.mark.usefixtures("need_redis")
def test_redis_stop_leaves_no_process(tmp_path: Path) -> None:
    server = RedisServer(tmpdir=tmp_path).start()
    pid, port = server.pid, server.port
    assert pid is not None
    server.stop()
    assert_gone(pid)
    assert_refused(port)
    assert not server.running
    server.stop()  # idempotent
    assert "stopped" in repr(server)


@pytest.mark.usefixtures("need_redis")
def test_redis_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    server = RedisServer(tmpdir=tmp_path).start()
    pid = server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # a stopped process cannot act on SIGTERM, only SIGKILL ends it
    started = time.monotonic()
    server.stop(timeout=0.3)
    assert time.monotonic() - started < 3.0
    assert_gone(pid)


@pytest.mark.usefixtures("need_redis")
def test_redis_start_failure_reports_log_tail(tmp_path: Path) -> None:
    server = RedisServer(extra_args=["--no-such-directive", "x"], tmpdir=tmp_path)
    with pytest.raises(RuntimeError, match=r"(?s)exited with code.*no-such-directive"):
        server.start()
    assert not server.running


@pytest.mark.usefixtures("need_redis")
def test_redis_start_retries_when_port_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        real_free_port = servers.free_port
        offered = iter([taken])
        monkeypatch.setattr(servers, "free_port", lambda: next(offered, None) or real_free_port())
        with RedisServer(tmpdir=tmp_path) as server:
            assert server.port != taken
            assert server.command("PING") == "PONG"
        assert "Address already in use" in (tmp_path / "redis-server.log").read_text()


@pytest.mark.usefixtures("need_redis", "need_memcached")
def test_servers_get_different_ports(tmp_path: Path) -> None:
    with (
        RedisServer(tmpdir=tmp_path / "a") as first,
        RedisServer(tmpdir=tmp_path / "b") as second,
        MemcachedServer(tmpdir=tmp_path / "c") as third,
    ):
        assert len({first.port, second.port, third.port}) == 3
        assert len({first.pid, second.pid, third.pid}) == 3


# --------------------------------------------------------------------------------------------------
# Memcached
# --------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("need_memcached")
def test_memcached_answers_set_get(tmp_path: Path, connect: type[RawConnection]) -> None:
    with MemcachedServer(tmpdir=tmp_path) as server:
        assert server.url == f"memcached://127.0.0.1:{server.port}"
        conn = connect(server.port)
        conn.send(b"version\r\n")
        assert conn.line().startswith(b"VERSION ")
        conn.send(b"set greeting 0 0 5\r\nhello\r\n")
        assert conn.line() == b"STORED\r\n"
        conn.send(b"get greeting\r\n")
        assert conn.line() == b"VALUE greeting 0 5\r\n"
        assert conn.line() == b"hello\r\n"
        assert conn.line() == b"END\r\n"
        server.flush()
        conn.send(b"get greeting\r\n")
        assert conn.line() == b"END\r\n"


@pytest.mark.usefixtures("need_memcached")
def test_memcached_kill_restart_and_stop(tmp_path: Path, connect: type[RawConnection]) -> None:
    server = MemcachedServer(tmpdir=tmp_path).start()
    try:
        port, pid = server.port, server.pid
        assert pid is not None
        server.kill()
        assert_gone(pid)
        assert_refused(port)

        server.restart()
        assert server.port == port
        new_pid = server.pid
        assert new_pid not in (None, pid)
        conn = connect(port)
        conn.send(b"version\r\n")
        assert conn.line().startswith(b"VERSION ")

        server.stop()
        assert_gone(new_pid)
        assert_refused(port)
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------------
# Fixtures and process-lifetime guarantees
# --------------------------------------------------------------------------------------------------


def test_factories_start_independent_servers(
    redis_server_factory: RedisServerFactory, memcached_server_factory: MemcachedServerFactory
) -> None:
    plain = redis_server_factory()
    locked = redis_server_factory(password="pw", extra_args=["--maxmemory", "1mb"])
    cache = memcached_server_factory(extra_args=["-I", "2m"])
    assert plain.port != locked.port
    assert locked.command("CONFIG", "GET", "maxmemory") == [b"maxmemory", b"1048576"]
    assert cache.running
    # Killed servers are fine at teardown too.
    plain.kill()


def test_session_fixtures(redis_server: RedisServer, memcached_server: MemcachedServer) -> None:
    assert redis_server.running
    assert memcached_server.running
    assert redis_server.command("SET", "stratacache-harness", "1") == "OK"
    redis_server.flush()
    assert redis_server.command("EXISTS", "stratacache-harness") == 0
    memcached_server.flush()
    assert redis_server.port != memcached_server.port


def _run_child(script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter that can import ``servers``."""
    env = {**os.environ, "PYTHONPATH": str(Path(servers.__file__).parent)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.usefixtures("need_redis", "need_memcached")
def test_atexit_stops_servers_left_running() -> None:
    result = _run_child(
        """
        from servers import MemcachedServer, RedisServer
        redis = RedisServer().start()
        memcached = MemcachedServer().start()
        print(redis.pid, memcached.pid, redis.tmpdir, flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    redis_pid, memcached_pid, tmpdir = result.stdout.split()
    # The child reaped them itself before exiting.
    assert_gone(int(redis_pid))
    assert_gone(int(memcached_pid))
    assert not Path(tmpdir).exists()


# Runs as a child subreaper, so that the server orphaned by the victim's death is reparented to it
# and can be reaped here: otherwise it would linger as a zombie under a PID 1 that may never reap.
_SUBREAPER = """
import ctypes, os, signal, subprocess, sys, time

ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
victim = subprocess.run([sys.executable, "-c", sys.argv[1]], capture_output=True, text=True)
server_pid = int(victim.stdout.split()[0])
deadline = time.monotonic() + 5
while time.monotonic() < deadline:
    pid, status = os.waitpid(server_pid, os.WNOHANG)
    if pid:
        print(victim.returncode, server_pid, os.waitstatus_to_exitcode(status))
        sys.exit(0)
    time.sleep(0.02)
os.kill(server_pid, signal.SIGKILL)
os.waitpid(server_pid, 0)
sys.exit(f"server {server_pid} outlived its killed parent")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
@pytest.mark.usefixtures("need_redis")
def test_servers_die_with_a_killed_parent(tmp_path: Path) -> None:
    victim = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from servers import RedisServer
        redis = RedisServer(tmpdir=Path({str(tmp_path)!r})).start()
        print(redis.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no cleanup of any kind
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(servers.__file__).parent)}
    result = subprocess.run(
        [sys.executable, "-c", _SUBREAPER, victim],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    victim_code, server_pid, server_code = map(int, result.stdout.split())
    assert victim_code == -signal.SIGKILL
    assert server_code == -signal.SIGKILL  # killed by PDEATHSIG, not by anything else
    assert_gone(server_pid)
