"""Security: requirepass, named users (read-only, allow-lists), NOAUTH, TLS, loopback bind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from respclient import HOST, Err, RespConn

from servers import free_port
from stratacache import Cache
from stratacache.server import ServerConfig, ServerThread

# redis-py retries failed connections with backoff by default: seconds per failing test.
_NO_RETRY = Retry(NoBackoff(), 0)
NOPERM = "NOPERM User {} has no permissions to run the '{}' command"


def test_requirepass_needs_auth_first(server_factory: Callable[..., ServerThread]) -> None:
    running = server_factory(requirepass="s3cret")
    conn = RespConn(running.port)
    try:
        assert conn.call("PING") == Err("NOAUTH Authentication required.")
        assert conn.call("GET", "k") == Err("NOAUTH Authentication required.")
        assert conn.call("HELLO", "3") == Err(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
            "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
            "select the RESP protocol version at the same time"
        )
        assert conn.call("AUTH", "wrong") == Err(
            "WRONGPASS invalid username-password pair or user is disabled."
        )
        assert conn.call("AUTH", "default", "wrong") == Err(
            "WRONGPASS invalid username-password pair or user is disabled."
        )
        assert conn.call("PING") == Err("NOAUTH Authentication required.")
        assert conn.call("AUTH", "s3cret") == "OK"
        assert conn.call("PING") == "PONG"
        # RESET logs the connection out again.
        assert conn.call("RESET") == "RESET"
        assert conn.call("PING") == Err("NOAUTH Authentication required.")
        reply = conn.call("HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "c1")
        assert reply[b"proto"] == 3
        assert conn.call("CLIENT", "GETNAME") == b"c1"
    finally:
        conn.close()


def test_requirepass_texts_match_redis(redis_server: object) -> None:
    # The same texts on a real redis-server with requirepass (set and unset around the check).
    real = RespConn(redis_server.port)  # type: ignore[attr-defined]
    try:
        assert real.call("CONFIG", "SET", "requirepass", "s3cret") == "OK"
        other = RespConn(redis_server.port)  # type: ignore[attr-defined]
        try:
            assert other.call("PING") == Err("NOAUTH Authentication required.")
            assert other.call("AUTH", "wrong") == Err(
                "WRONGPASS invalid username-password pair or user is disabled."
            )
            assert other.call("AUTH", "a", "b", "c") == Err("ERR syntax error")
        finally:
            other.close()
    finally:
        real.call("CONFIG", "SET", "requirepass", "")
        real.close()


def test_redis_py_with_password(server_factory: Callable[..., ServerThread]) -> None:
    running = server_factory(requirepass="pw")
    good = redis.Redis(host=HOST, port=running.port, password="pw")
    bad = redis.Redis(host=HOST, port=running.port, password="nope", retry=_NO_RETRY)
    try:
        assert good.set("k", "v") is True
        assert good.get("k") == b"v"
        with pytest.raises(redis.AuthenticationError):
            bad.ping()
    finally:
        good.close()
        bad.close()


@pytest.fixture
def with_users(server_factory: Callable[..., ServerThread]) -> ServerThread:
    return server_factory(
        requirepass="admin",
        users={
            "reader": {"password": "rp", "readonly": True},
            "limited": {"password": "lp", "commands": ["get", "ping", "client|id"]},
            "off": {"password": "op", "enabled": False},
            "open": {},
        },
    )


def test_named_users_authenticate(with_users: ServerThread) -> None:
    conn = RespConn(with_users.port)
    try:
        assert conn.call("AUTH", "reader", "wrong") == Err(
            "WRONGPASS invalid username-password pair or user is disabled."
        )
        assert conn.call("AUTH", "off", "op") == Err(
            "WRONGPASS invalid username-password pair or user is disabled."
        )
        assert conn.call("AUTH", "nobody", "x") == Err(
            "WRONGPASS invalid username-password pair or user is disabled."
        )
        assert conn.call("AUTH", "open", "anything") == "OK"  # no password: any (nopass)
        assert conn.call("AUTH", "reader", "rp") == "OK"
        fields = conn.call("CLIENT", "INFO").decode()
        assert " user=reader " in fields
        assert conn.call("AUTH", "default", "admin") == "OK"
    finally:
        conn.close()


def test_readonly_user_gets_noperm_on_writes(with_users: ServerThread) -> None:
    conn = RespConn(with_users.port)
    try:
        assert conn.call("AUTH", "reader", "rp") == "OK"
        assert conn.call("GET", "k") is None
        assert conn.call("SET", "k", "v") == Err(NOPERM.format("reader", "set"))
        assert conn.call("FLUSHALL") == Err(NOPERM.format("reader", "flushall"))
        assert conn.call("DBSIZE") == 0
    finally:
        conn.close()


def test_allow_list_user_runs_only_its_commands(with_users: ServerThread) -> None:
    conn = RespConn(with_users.port)
    try:
        assert conn.call("AUTH", "limited", "lp") == "OK"
        assert conn.call("PING") == "PONG"
        assert conn.call("GET", "k") is None
        assert conn.call("SET", "k", "v") == Err(NOPERM.format("limited", "set"))
        assert isinstance(conn.call("CLIENT", "ID"), int)
        assert conn.call("CLIENT", "KILL", "ID", "1") == Err(NOPERM.format("limited", "client|kill"))
        assert conn.call("CONFIG", "GET", "requirepass") == Err(NOPERM.format("limited", "config|get"))
    finally:
        conn.close()


def test_noperm_text_is_redis_7_2s(redis_server: object) -> None:
    # Redis 7.0 (the real server here) says "this user has no permissions..."; 7.2, which we
    # follow, names the user. Check that the rest of the text is the same.
    admin = RespConn(redis_server.port)  # type: ignore[attr-defined]
    user = RespConn(redis_server.port)  # type: ignore[attr-defined]
    try:
        assert admin.call("ACL", "SETUSER", "ro", "on", ">rp", "~*", "+get") == "OK"
        assert user.call("AUTH", "ro", "rp") == "OK"
        reply = user.call("SET", "k", "v")
        assert reply == Err("NOPERM this user has no permissions to run the 'set' command")
        assert reply.message.replace("this user", "User ro") == NOPERM.format("ro", "set")
    finally:
        admin.call("ACL", "DELUSER", "ro")
        admin.close()
        user.close()


def test_default_config_binds_to_loopback_only() -> None:
    assert ServerConfig().bind == ("127.0.0.1",)
    with ServerThread(ServerConfig(port=0, save="")) as running:
        assert running.server is not None
        hosts = {srv.sockets[0].getsockname()[0] for srv in running.server._servers}
        assert hosts == {"127.0.0.1"}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    base = tmp_path_factory.mktemp("tls")
    paths = {"ca": base / "ca.pem", "cert": base / "cert.pem", "key": base / "key.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    paths["cert"].write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    return paths


@pytest.fixture
def tls_server(server_factory: Callable[..., ServerThread], certs: dict[str, Path]) -> tuple[int, Path]:
    port = free_port()
    server_factory(
        tls_port=port,
        tls_cert_file=str(certs["cert"]),
        tls_key_file=str(certs["key"]),
        requirepass="pw",
    )
    return port, certs["ca"]


def test_tls_with_redis_py(tls_server: tuple[int, Path]) -> None:
    port, ca = tls_server
    r = redis.Redis(host=HOST, port=port, ssl=True, ssl_ca_certs=str(ca), password="pw")
    try:
        assert r.set("k", "over tls") is True
        assert r.get("k") == b"over tls"
    finally:
        r.close()
    url = redis.Redis.from_url(f"rediss://:pw@{HOST}:{port}/0?ssl_ca_certs={ca}")
    try:
        assert url.get("k") == b"over tls"
    finally:
        url.close()


def test_tls_refuses_a_client_that_does_not_trust_the_ca(tls_server: tuple[int, Path]) -> None:
    port, _ = tls_server
    r = redis.Redis(host=HOST, port=port, ssl=True, password="pw", retry=_NO_RETRY)  # system CAs
    try:
        with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
            r.ping()
    finally:
        r.close()


def test_tls_with_our_cache(tls_server: tuple[int, Path]) -> None:
    port, ca = tls_server
    with Cache(f"rediss://:pw@{HOST}:{port}/0?ssl_ca_certs={ca}") as cache:
        cache.set("k", "over tls")
        assert cache.get("k") == "over tls"


def test_tls_needs_cert_and_key(certs: dict[str, Path]) -> None:
    config = ServerConfig(port=0, tls_port=free_port(), tls_cert_file=str(certs["cert"]))
    with pytest.raises(Exception, match="tls-port needs tls-cert-file and tls-key-file"):
        ServerThread(config).start()


def test_plain_text_client_on_the_tls_port_is_refused(tls_server: tuple[int, Path]) -> None:
    port, _ = tls_server
    conn = RespConn(port)
    try:
        conn.send_raw(b"PING\r\n")
        assert conn.closed()
    finally:
        conn.close()
