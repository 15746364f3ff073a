"""Tests of the test-server harness in ``tests/servers.py``, against real processes only.

The fixtures come from ``servers.py`` through ``tests/conftest.py``.

The assertions talk to the servers over raw sockets on purpose: the harness must be trustworthy
independently of the client libraries and of the code under test.  redis-py is used on top, as
proof that a real client gets along with the TLS, cluster and sentinel set-ups.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
import redis
import redis.backoff
import redis.cluster
import redis.retry
import redis.sentinel
import trustme

import servers
from servers import (
    DEFAULT_MEMCACHED_ITEM_SIZE_LIMIT,
    REDIS_TEST_PASSWORD,
    MemcachedServer,
    MemcachedServerFactory,
    RedisCluster,
    RedisClusterFactory,
    RedisSentinelFactory,
    RedisSentinelSet,
    RedisServer,
    RedisServerFactory,
    RespError,
    free_port,
    have_binary,
    memcached_url,
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
# Redis over TLS, and with a password
# --------------------------------------------------------------------------------------------------


def test_redis_tls_server_serves_tls_and_plain(redis_tls_server: RedisServer) -> None:
    server = redis_tls_server
    assert server.tls_port != server.port
    prefix = f"rediss://127.0.0.1:{server.tls_port}/0?ssl_ca_certs="
    assert server.tls_url.startswith(prefix)
    assert unquote(server.tls_url.removeprefix(prefix)) == str(server.ca_path)
    for path in (server.ca_path, server.client_cert_path, server.client_key_path):
        assert path.is_file()
        assert path.parent.parent == server.tmpdir

    # Raw RESP over TLS, verifying the server against the CA and presenting the client certificate.
    assert server.command("SET", "over", "tls", tls=True) == "OK"
    # The plain listener serves the same data.
    assert server.command("GET", "over") == b"tls"
    # Without the client certificate too (--tls-auth-clients optional).
    reply = servers._redis_call(server.host, server.tls_port, None, [("PING",)], 5.0, server.ssl_context())
    assert reply == ["PONG"]

    # A real client: redis-py, from the URL and from explicit arguments.
    with redis.Redis.from_url(server.tls_url) as client:
        assert client.get("over") == b"tls"
    with redis.Redis(
        host=server.host,
        port=server.tls_port,
        ssl=True,
        ssl_ca_certs=str(server.ca_path),
        ssl_certfile=str(server.client_cert_path),
        ssl_keyfile=str(server.client_key_path),
    ) as client:
        assert client.ping() is True
    server.flush()


def test_redis_tls_port_refuses_plaintext_and_strangers(redis_tls_server: RedisServer) -> None:
    server = redis_tls_server
    # Plain RESP to the TLS port: the server drops the connection instead of answering.
    with pytest.raises(ConnectionError):
        servers._redis_call(server.host, server.tls_port, None, [("PING",)], 5.0)
    no_retries = redis.retry.Retry(redis.backoff.NoBackoff(), 0)  # the default retries cost seconds
    with (
        redis.Redis(host=server.host, port=server.tls_port, socket_timeout=5, retry=no_retries) as client,
        pytest.raises(redis.exceptions.ConnectionError),
    ):
        client.ping()
    # The certificate is not trusted by default: the CA is ours alone.
    with pytest.raises(ssl.SSLCertVerificationError):
        servers._redis_call(
            server.host, server.tls_port, None, [("PING",)], 5.0, ssl.create_default_context()
        )
    # A client certificate from another CA is rejected (optional means "may be absent", not "unchecked").
    # The client sees the server's "unknown ca" alert or, when the server has closed first, an EOF or
    # a reset; the same context without that certificate works (test above), so it is the cause.
    context = server.ssl_context()
    stranger = trustme.CA().issue_cert("stranger.invalid")
    with stranger.private_key_and_cert_chain_pem.tempfile() as pem:
        context.load_cert_chain(pem)
    with pytest.raises(OSError):
        servers._redis_call(server.host, server.tls_port, None, [("PING",)], 5.0, context)


def test_redis_tls_restart_keeps_both_ports(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory(tls=True, password="pw")
    assert server.tls_url.startswith(f"rediss://:pw@127.0.0.1:{server.tls_port}/0?")
    port, tls_port = server.port, server.tls_port
    server.kill()
    assert_refused(tls_port)
    server.restart()
    assert (server.port, server.tls_port) == (port, tls_port)
    assert server.command("PING", tls=True) == "PONG"


@pytest.mark.usefixtures("need_redis")
def test_redis_tls_retries_when_the_tls_port_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        real_free_port = servers.free_port
        # The main port is free, the TLS port (asked for second) is taken.
        offered = iter([real_free_port(), taken])
        monkeypatch.setattr(servers, "free_port", lambda: next(offered, None) or real_free_port())
        with RedisServer(tls=True, tmpdir=tmp_path) as server:
            assert taken not in (server.port, server.tls_port)
            assert server.command("PING", tls=True) == "PONG"
        assert "Address already in use" in (tmp_path / "redis-server.log").read_text()


def test_tls_attributes_need_tls(tmp_path: Path) -> None:
    server = RedisServer(tmpdir=tmp_path)
    for name in ("tls_port", "tls_url", "ca_path", "client_cert_path", "client_key_path"):
        with pytest.raises(RuntimeError, match="tls=True"):
            getattr(server, name)
    tls_server = RedisServer(tls=True, tmpdir=tmp_path / "tls-unstarted")
    assert tls_server.ca_path.is_file()  # made up front, usable before start()
    with pytest.raises(RuntimeError, match="not been started"):
        _ = tls_server.tls_port


def test_redis_password_server(redis_password_server: RedisServer) -> None:
    server = redis_password_server
    assert server.password == REDIS_TEST_PASSWORD == "s3cret-pw"
    assert server.url == f"redis://:s3cret-pw@127.0.0.1:{server.port}/0"
    with pytest.raises(RespError, match="NOAUTH"):
        servers._redis_call(server.host, server.port, None, [("GET", "k")], 5.0)
    with redis.Redis.from_url(server.url) as client:
        assert client.set("k", "v") is True
    assert server.command("GET", "k") == b"v"
    server.flush()


# --------------------------------------------------------------------------------------------------
# Redis Cluster
# --------------------------------------------------------------------------------------------------


def keys_one_per_node(cluster: RedisCluster) -> dict[int, str]:
    """Map each node's port to a key whose slot that node serves."""
    found: dict[int, str] = {}
    for i in range(1000):
        found.setdefault(cluster.node_for_key(f"key-{i}").port, f"key-{i}")
        if len(found) == len(cluster.nodes):
            return found
    raise AssertionError(f"1000 keys did not reach every node: {found}")


def test_redis_cluster_is_ok_and_spreads_keys(redis_cluster: RedisCluster) -> None:
    nodes = redis_cluster.nodes
    assert len(nodes) == 3
    assert redis_cluster.url == "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in nodes) + "/"
    for node in nodes:
        info = node.cluster_info()
        assert info["cluster_state"] == "ok"
        assert info["cluster_known_nodes"] == "3"
        assert info["cluster_slots_ok"] == "16384"
        assert node.nodes_conf_path.is_file()
        assert node.cluster_bus_port not in {n.port for n in nodes}
    assert len({node.node_id() for node in nodes}) == 3

    # The cluster is shared by the session: start from empty nodes, whatever ran before.
    for node in nodes:
        node.command("FLUSHALL")
    keys = keys_one_per_node(redis_cluster)
    # A real cluster client routes each key to its node...
    with redis.cluster.RedisCluster(host="127.0.0.1", port=nodes[0].port) as client:
        for port, key in keys.items():
            assert client.set(key, str(port)) is True
    # ...where the raw protocol finds it, while the other nodes redirect.
    for node in nodes:
        key = keys[node.port]
        assert node.command("GET", key) == str(node.port).encode()
        assert node.command("DBSIZE") == 1
        other = next(n for n in nodes if n is not node)
        with pytest.raises(RespError, match=rf"^MOVED \d+ 127\.0\.0\.1:{node.port}$"):
            other.command("GET", key)

    redis_cluster.flush()
    assert [node.command("DBSIZE") for node in nodes] == [0, 0, 0]


def test_redis_cluster_node_restart_rejoins(redis_cluster_factory: RedisClusterFactory) -> None:
    cluster = redis_cluster_factory()
    node = cluster.nodes[1]
    node_id, port, bus_port, pid = node.node_id(), node.port, node.cluster_bus_port, node.pid
    assert pid is not None
    key = keys_one_per_node(cluster)[port]

    node.kill()
    assert_gone(pid)
    assert_refused(port)
    node.restart()
    # Same port, bus port and nodes.conf, hence the same identity and slots.
    assert (node.port, node.cluster_bus_port, node.node_id()) == (port, bus_port, node_id)
    cluster.wait_ok(timeout=15)
    assert cluster.node_for_key(key) is node
    with redis.cluster.RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port) as client:
        assert client.set(key, "back") is True
    assert node.command("GET", key) == b"back"

    # The whole cluster comes back after stop() too, without another --cluster create.
    pids = [n.pid for n in cluster.nodes]
    cluster.stop()
    for old_pid in pids:
        assert old_pid is not None
        assert_gone(old_pid)
    cluster.start()
    assert node.node_id() == node_id


def test_redis_cluster_needs_three_primaries(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 3"):
        RedisCluster(primaries=2, tmpdir=tmp_path)


# --------------------------------------------------------------------------------------------------
# Redis Sentinel
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def sentinel_client(sentinel_set: RedisSentinelSet) -> Iterator[redis.sentinel.Sentinel]:
    """A redis-py Sentinel client of ``sentinel_set``, with every connection closed afterwards.

    redis.sentinel has no type annotations, hence the ``type: ignore`` on the calls into it.
    """
    client = redis.sentinel.Sentinel([("127.0.0.1", sentinel_set.sentinel_port)], socket_timeout=5)  # type: ignore[no-untyped-call]
    try:
        yield client
    finally:
        for connection in client.sentinels:
            connection.close()


def test_redis_sentinel_resolves_primary(redis_sentinel: RedisSentinelSet) -> None:
    primary, replica = redis_sentinel.nodes
    assert redis_sentinel.service_name == "mymaster"
    assert redis_sentinel.url == f"redis+sentinel://127.0.0.1:{redis_sentinel.sentinel_port}/mymaster"
    assert redis_sentinel.primary_address() == ("127.0.0.1", primary.port)
    assert redis_sentinel.primary_node() is primary
    assert redis_sentinel.replica_node() is replica
    assert redis_sentinel.sentinel.command("PING") == "PONG"
    assert replica.info("replication")["master_link_status"] == "up"

    with sentinel_client(redis_sentinel) as client:
        assert client.discover_master("mymaster") == ("127.0.0.1", primary.port)  # type: ignore[no-untyped-call]
        assert client.discover_slaves("mymaster") == [("127.0.0.1", replica.port)]  # type: ignore[no-untyped-call]
        writer = client.master_for("mymaster")  # type: ignore[no-untyped-call]
        try:
            assert writer.set("k", "v") is True
        finally:
            writer.close()
    _wait_until(lambda: replica.command("GET", "k") == b"v")

    redis_sentinel.flush()
    # flush() waits for the replica, so both are empty right away.
    assert primary.command("DBSIZE") == 0
    assert replica.command("DBSIZE") == 0


def test_redis_sentinel_failover_and_back(redis_sentinel_factory: RedisSentinelFactory) -> None:
    sentinel_set = redis_sentinel_factory()
    first, second = sentinel_set.nodes

    started = time.monotonic()
    assert sentinel_set.failover() is second
    assert time.monotonic() - started < 10
    assert sentinel_set.primary_address() == ("127.0.0.1", second.port)
    assert servers._role(second) == "master"
    assert first.info("replication")["master_port"] == str(second.port)
    with sentinel_client(sentinel_set) as client:
        assert client.discover_master("mymaster") == ("127.0.0.1", second.port)  # type: ignore[no-untyped-call]
        writer = client.master_for("mymaster")  # type: ignore[no-untyped-call]
        try:
            assert writer.set("after", "failover") is True
        finally:
            writer.close()
    _wait_until(lambda: first.command("GET", "after") == b"failover")

    # Failovers can follow each other.
    assert sentinel_set.failover() is first
    assert sentinel_set.primary_address() == ("127.0.0.1", first.port)
    assert second.info("replication")["master_link_status"] == "up"


def test_redis_sentinel_processes_restart(redis_sentinel_factory: RedisSentinelFactory) -> None:
    sentinel_set = redis_sentinel_factory()
    _, replica = sentinel_set.nodes
    sentinel = sentinel_set.sentinel

    replica.kill()
    replica.restart()
    sentinel_set.wait_ready(timeout=10)

    port, pid = sentinel.port, sentinel.pid
    assert pid is not None
    sentinel.kill()
    assert_gone(pid)
    sentinel.restart()
    assert sentinel.port == port
    # It reads back the configuration it rewrote, so it still knows the primary and the replica.
    assert "sentinel myid" in sentinel.config_path.read_text()
    sentinel_set.wait_ready(timeout=10)

    processes = [sentinel, *sentinel_set.nodes]
    pids = [proc.pid for proc in processes]
    sentinel_set.stop()
    for old_pid in pids:
        assert old_pid is not None
        assert_gone(old_pid)


# --------------------------------------------------------------------------------------------------
# Several memcached nodes, and the item size limit
# --------------------------------------------------------------------------------------------------


def test_memcached_pair_nodes_are_independent(
    memcached_pair: tuple[MemcachedServer, MemcachedServer],
) -> None:
    first, second = memcached_pair
    assert first.port != second.port
    assert memcached_url(memcached_pair) == f"memcached://127.0.0.1:{first.port},127.0.0.1:{second.port}"
    assert memcached_url([first]) == first.url
    set_cmd = b"set only-on-first 0 0 1\r\nx\r\n"
    assert mc_call(first, set_cmd, b"STORED\r\n") == b"STORED\r\n"
    assert mc_call(second, b"get only-on-first\r\n", b"END\r\n") == b"END\r\n"
    second.flush()
    assert mc_call(first, b"get only-on-first\r\n", b"END\r\n").startswith(b"VALUE only-on-first")
    first.flush()
    with pytest.raises(ValueError):
        memcached_url([])


def test_memcached_item_size_limit(memcached_server: MemcachedServer) -> None:
    assert memcached_server.item_size_limit == DEFAULT_MEMCACHED_ITEM_SIZE_LIMIT == 2 * 1024 * 1024
    assert memcached_setting(memcached_server, "item_size_max") == str(2 * 1024 * 1024)
    # A 1 MiB value plus a small header fits (it would not under memcached's default -I 1m)...
    value = b"h" * 64 + b"v" * 1024 * 1024
    request = b"set big 0 0 %d\r\n%s\r\n" % (len(value), value)
    assert mc_call(memcached_server, request, b"STORED\r\n") == b"STORED\r\n"
    reply = mc_call(memcached_server, b"get big\r\n", b"END\r\n")
    assert reply == b"VALUE big 0 %d\r\n%s\r\nEND\r\n" % (len(value), value)
    # ...and anything beyond the limit does not.
    too_big = b"v" * (memcached_server.item_size_limit + 1)
    request = b"set huge 0 0 %d\r\n%s\r\n" % (len(too_big), too_big)
    assert mc_call(memcached_server, request, b"STORED\r\n").startswith(b"SERVER_ERROR object too large")
    memcached_server.flush()


def test_memcached_item_size_limit_is_configurable(memcached_server_factory: MemcachedServerFactory) -> None:
    server = memcached_server_factory(item_size_limit=4 * 1024 * 1024)
    assert memcached_setting(server, "item_size_max") == str(4 * 1024 * 1024)
    with pytest.raises(ValueError, match="item_size_limit"):
        memcached_server_factory(extra_args=["-I", "1m"])


def mc_call(server: MemcachedServer, request: bytes, terminator: bytes) -> bytes:
    """Send a memcached text-protocol request; read until ``terminator`` or an error line."""
    return servers._memcached_call(server.host, server.port, request, (terminator,), 5.0)


def memcached_setting(server: MemcachedServer, name: str) -> str:
    """One value of ``stats settings``."""
    for line in mc_call(server, b"stats settings\r\n", b"END\r\n").decode().splitlines():
        parts = line.split()
        if parts[:2] == ["STAT", name]:
            return parts[2]
    raise AssertionError(f"memcached has no setting {name!r}")


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` (e.g. replication catching up) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# --------------------------------------------------------------------------------------------------
# Fixtures and process-lifetime guarantees
# --------------------------------------------------------------------------------------------------


def test_factories_start_independent_servers(
    redis_server_factory: RedisServerFactory, memcached_server_factory: MemcachedServerFactory
) -> None:
    plain = redis_server_factory()
    locked = redis_server_factory(password="pw", extra_args=["--maxmemory", "1mb"])
    cache = memcached_server_factory(item_size_limit=4 * 1024 * 1024, extra_args=["-c", "64"])
    assert plain.port != locked.port
    assert locked.command("CONFIG", "GET", "maxmemory") == [b"maxmemory", b"1048576"]
    assert cache.running
    # Killed servers are fine at teardown too.
    plain.kill()


def test_session_fixtures(redis_server: RedisServer, memcached_server: MemcachedServer) -> None:
    assert redis_server.running
    assert memcached_server.running
    assert memcached_server.item_size_limit == 2 * 1024 * 1024
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
