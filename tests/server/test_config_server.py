"""The server's configuration: the YAML loader's checks, and the limits it sets, each
tested with real sockets on a server of its own (query and output buffers, maxclients,
idle timeout)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from respclient import HOST, Closed, Err, RespConn

from stratacache import ConfigurationError
from stratacache.server import ServerThread, load_config
from stratacache.server.config import DEFAULT_PORT, ServerConfig, config_from_mapping, parse_size

# ----------------------------------------------------------------------------- loading


def test_defaults_are_the_documented_ones() -> None:
    config = ServerConfig()
    assert (config.bind, config.port, DEFAULT_PORT) == (("127.0.0.1",), 7379, 7379)
    assert config.maxmemory == 512 * 1024 * 1024
    assert config.maxmemory_policy == "allkeys-lru"
    assert config.get("maxmemory") == str(512 * 1024 * 1024)


def test_yaml_file_sets_options(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text(
        "port: 7400\nbind: [127.0.0.1, '::1']\nmaxmemory: 64mb\nmaxmemory_policy: allkeys-lfu\n"
        "timeout: 30\nstores:\n  1: {type: session, expire_after_access: 60}\n"
        "users:\n  reader: {password: pw, readonly: yes}\n"
    )
    config = load_config(path)
    assert config.port == 7400
    assert config.bind == ("127.0.0.1", "::1")
    assert config.maxmemory == 64 * 1024 * 1024
    assert config.maxmemory_policy == "allkeys-lfu"
    assert config.timeout == 30
    assert config.store_for(1).type == "session"
    assert config.users["reader"].readonly is True
    assert config.source == str(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("maxmemory: 12 parsecs\n", "server.yaml: maxmemory: '12 parsecs' is not a size"),
        ("port: 70000\n", "server.yaml: port: 70000 is out of range [0, 65535]"),
        ("port: seven\n", "server.yaml: port: 'seven' is not an integer"),
        ("maxmemory-policy: lru\n", "server.yaml: maxmemory-policy: 'lru' is not one of noeviction"),
        ("colour: blue\n", "server.yaml: unknown option 'colour' (value 'blue')"),
        ("stores:\n  99: {type: general}\n", "server.yaml: stores.99: no such database"),
        ("stores:\n  0: {type: fast}\n", "server.yaml: stores.0.type: 'fast' is not one of"),
        ("stores:\n  0: {max_bytes: lots}\n", "server.yaml: stores.0.max_bytes: 'lots' is not a size"),
        ("users:\n  bob: {readonly: maybe}\n", "server.yaml: users.bob: 'maybe' is not yes/no"),
        ("port: [1\n", "server.yaml: not valid YAML"),
        ("- a list\n", "server.yaml: expected a mapping of options at the top level"),
    ],
)
def test_yaml_errors_name_file_key_and_value(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "server.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as info:
        load_config(path)
    assert str(info.value).startswith(str(tmp_path / expected))


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"nope\.yaml: cannot read the config file"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "size"),
    [("0", 0), ("100", 100), ("1k", 1000), ("1kb", 1024), ("2MB", 2 * 1024**2), (" 1gb ", 1024**3), (5, 5)],
)
def test_sizes_read_as_redis_reads_them(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "1.5mb", "-1", "1tb", True, None, -3])
def test_bad_sizes_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(bad)


def test_config_set_names_the_option_and_value() -> None:
    config = config_from_mapping({}, "test")
    with pytest.raises(ConfigurationError, match=r"^CONFIG SET: maxclients: 0 is out of range"):
        config.set("maxclients", "0")
    with pytest.raises(ConfigurationError, match=r"^CONFIG SET: unknown option 'nosuch'"):
        config.set("nosuch", "1")


# ------------------------------------------------------------------------------ limits


def read_until_closed(conn: RespConn, timeout: float = 5.0) -> bool:
    """Drain the connection; True once the server closed it (within ``timeout``)."""
    return conn.closed(timeout)


def send_until_refused(conn: RespConn, data: bytes, times: int) -> bool:
    """Send ``data`` ``times`` times; False as soon as the server refuses more."""
    try:
        for _ in range(times):
            conn.send_raw(data)
            time.sleep(0.001)
    except OSError:
        return False
    return True


def test_query_buffer_limit_closes_the_client(server_factory: Callable[..., ServerThread]) -> None:
    running = server_factory(client_query_buffer_limit="1mb")
    hog, healthy = RespConn(running.port), RespConn(running.port)
    try:
        # A 4 MB argument (under proto-max-bulk-len) whose query buffer passes 1 MB.
        hog.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4000000\r\n")
        assert not send_until_refused(hog, b"x" * 65536, 64)  # 4 MB: refused before the end
        assert read_until_closed(hog)
        assert healthy.call("PING") == "PONG"
        assert healthy.call("GET", "k") is None
    finally:
        hog.close()
        healthy.close()


def test_query_buffer_under_the_limit_is_fine(server_factory: Callable[..., ServerThread]) -> None:
    running = server_factory(client_query_buffer_limit="1mb")
    conn = RespConn(running.port)
    try:
        assert conn.call("SET", "k", b"v" * 900_000) == "OK"
        assert conn.call("STRLEN", "k") in (
            900_000,
            Err("ERR unknown command 'STRLEN', with args beginning with: 'k' "),
        )
    finally:
        conn.close()


def test_output_buffer_limit_closes_a_client_that_does_not_read(
    server_factory: Callable[..., ServerThread],
) -> None:
    running = server_factory(client_output_buffer_limit_normal="256kb")
    setter = RespConn(running.port)
    assert setter.call("SET", "big", b"v" * 1_000_000) == "OK"
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((HOST, running.port))
    try:
        sock.sendall(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n" * 40)  # 40 MB of replies, unread
        time.sleep(0.5)
        sock.settimeout(5)
        received = 0
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
        assert received < 40_000_000  # cut off, not all delivered
        assert setter.call("PING") == "PONG"
        assert running.server is not None
        assert len(running.server.clients) == 1
    finally:
        sock.close()
        setter.close()


def test_maxclients_refuses_with_redis_text(server_factory: Callable[..., ServerThread]) -> None:
    running = server_factory(maxclients=2)
    first, second = RespConn(running.port), RespConn(running.port)
    try:
        assert first.call("PING") == second.call("PING") == "PONG"
        third = RespConn(running.port)
        try:
            assert third.read() == Err("ERR max number of clients reached")
            assert read_until_closed(third)
        finally:
            third.close()
        second.close()
        deadline = time.monotonic() + 5
        while True:  # the slot frees once the server saw the close
            fourth = RespConn(running.port)
            try:
                reply = fourth.call("PING")
            except Closed:
                reply = None
            fourth.close()
            if reply == "PONG" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert reply == "PONG"
        assert first.call("PING") == "PONG"
    finally:
        first.close()


def test_idle_timeout_closes_idle_clients_only(server_factory: Callable[..., ServerThread]) -> None:
    running = server_factory(timeout=1, hz=50)
    idle, busy = RespConn(running.port), RespConn(running.port)
    try:
        assert idle.call("PING") == busy.call("PING") == "PONG"
        for _ in range(8):
            time.sleep(0.25)
            assert busy.call("PING") == "PONG"
        assert read_until_closed(idle, timeout=2)
        assert busy.call("PING") == "PONG"
    finally:
        idle.close()
        busy.close()


def test_no_timeout_by_default(server_factory: Callable[..., ServerThread]) -> None:
    running = server_factory(hz=50)
    idle = RespConn(running.port)
    try:
        assert idle.call("PING") == "PONG"
        assert not idle.closed(timeout=1.2)
        assert idle.call("PING") == "PONG"
    finally:
        idle.close()
