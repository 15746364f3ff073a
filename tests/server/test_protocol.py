"""Protocol errors against Redis 7: the same raw bytes go to our server and to a real
redis-server, and the bytes each answers (and whether it closes) must be equal."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from respclient import HOST, Err, Pair, RespConn

from servers import REDIS_TEST_PASSWORD
from stratacache.server import ServerThread

QUIET = 0.15  # seconds without data after which a connection that stays open is judged open


def exchange(conn: RespConn, data: bytes, quiet: float = QUIET) -> tuple[bytes, bool]:
    """Send ``data``; return everything answered and whether the server closed."""
    conn.sock.sendall(data)
    conn.sock.settimeout(quiet)
    out = b""
    try:
        while True:
            chunk = conn.sock.recv(65536)
            if not chunk:
                return out, True
            out += chunk
    except TimeoutError:
        return out, False
    except ConnectionResetError:
        return out, True


def both(pair: Pair, data: bytes) -> tuple[bytes, bool]:
    """The exchange on both servers, asserted equal; returns ours."""
    mine = exchange(pair.ours, data)
    theirs = exchange(pair.real, data)
    assert mine == theirs, f"{data[:80]!r}: ours {mine!r} != redis {theirs!r}"
    return mine


def err(text: str) -> tuple[bytes, bool]:
    return b"-ERR Protocol error: " + text.encode() + b"\r\n", True


BIG = 70_000  # over PROTO_INLINE_MAX_SIZE (64 KiB)

CASES: list[tuple[bytes, tuple[bytes, bool]]] = [
    # multibulk length: Redis's string2ll (no sign, no leading zero, no "-0"), <= INT_MAX
    (b"*\r\n", err("invalid multibulk length")),
    (b"*x\r\n", err("invalid multibulk length")),
    (b"*+1\r\n", err("invalid multibulk length")),
    (b"*01\r\n", err("invalid multibulk length")),
    (b"*-0\r\n", err("invalid multibulk length")),
    (b"* 1\r\n", err("invalid multibulk length")),
    (b"*-9223372036854775809\r\n", err("invalid multibulk length")),
    (b"*99999999999999999999999\r\n", err("invalid multibulk length")),
    (b"*2147483648\r\n", err("invalid multibulk length")),
    (b"*2147483647\r\n", (b"", False)),  # waits for 2**31-1 arguments
    (b"*-1\r\n*0\r\nPING\r\n", (b"+PONG\r\n", False)),  # empty commands are skipped
    (b"*1" + b"1" * BIG, err("too big mbulk count string")),
    # bulk length
    (b"*1\r\n$\r\n", err("invalid bulk length")),
    (b"*1\r\n$-1\r\n", err("invalid bulk length")),
    (b"*1\r\n$-0\r\n", err("invalid bulk length")),
    (b"*1\r\n$00\r\n", err("invalid bulk length")),
    (b"*1\r\n$1x\r\n", err("invalid bulk length")),
    (b"*1\r\n$536870913\r\n", err("invalid bulk length")),  # over proto-max-bulk-len
    (b"*1\r\n$536870912\r\n", (b"", False)),  # at it: waits for the data
    (b"*1\r\n$" + b"1" * BIG, err("too big bulk count string")),
    # expected '$': the offending byte, a line break shown as a space
    (b"*1\r\n+PING\r\n", (b"-ERR Protocol error: expected '$', got '+'\r\n", True)),
    (b"*2\r\n$4\r\nECHO\r\n:1\r\n", (b"-ERR Protocol error: expected '$', got ':'\r\n", True)),
    (b"*1\r\n\r\n", (b"-ERR Protocol error: expected '$', got ' '\r\n", True)),
    (b"*1\r\n\xff\r\n", (b"-ERR Protocol error: expected '$', got '\xff'\r\n", True)),
    (b"*1\r\n+PING", (b"", False)),  # no line end yet: Redis waits before looking
    # inline requests: sdssplitargs's quoting, the 64 KiB limit
    (b"PING 'a\r\n", err("unbalanced quotes in request")),
    (b'PING "a\r\n', err("unbalanced quotes in request")),
    (b'PING "a"b\r\n', err("unbalanced quotes in request")),
    (b"PING 'a'b\r\n", err("unbalanced quotes in request")),
    (b"PING " + b"a" * BIG, err("too big inline request")),
    (
        b"ECHO \"a\\x41\\n\\\"b\" 'c\\'d'\r\n",
        (b"-ERR wrong number of arguments for 'echo' command\r\n", False),
    ),
    (b'ECHO "a\\x41\\n\\"b"\r\n', (b'$5\r\naA\n"b\r\n', False)),
    (b"ECHO 'c\\'d\\n'\r\n", (b"$5\r\nc'd\\n\r\n", False)),
    (b"ECHO a\x0bb\r\n", (b"$3\r\na\x0bb\r\n", False)),  # \v does not end an argument
    (b"\x0b ECHO\tx\r\n", (b"$1\r\nx\r\n", False)),  # but is skipped between arguments
    (b"ECHO a\rb\r\n", (b"-ERR wrong number of arguments for 'echo' command\r\n", False)),
    (b"\r\n\r\n  \nPING\n", (b"+PONG\r\n", False)),  # blank lines are skipped
    (b"PING\r\r\n", (b"+PONG\r\n", False)),
    # a NUL stops Redis's line search (its buffer is a C string): the request waits
    (b"PING\x00\r\n", (b"", False)),
    (b"*1\x00\r\n", (b"", False)),
    (b"*1\r\n$1\x00\r\na\r\n", (b"", False)),
    (b"*1\r\n$1" + b"\x00" * BIG, err("too big bulk count string")),
    # commands before the error in the same read are run and answered first
    (
        b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n*1\r\n$x\r\nPING\r\n",
        (b"+OK\r\n-ERR Protocol error: invalid bulk length\r\n", True),
    ),
]


@pytest.mark.parametrize(("data", "expected"), CASES, ids=[repr(c[0][:32]) for c in CASES])
def test_protocol_error_matches_redis(pair: Pair, data: bytes, expected: tuple[bytes, bool]) -> None:
    assert both(pair, data) == expected


def test_protocol_error_counts_and_other_clients_go_on(pair: Pair, ours: ServerThread) -> None:
    assert ours.server is not None
    before = ours.server.protocol_errors
    other = RespConn(ours.port)
    try:
        assert both(pair, b"*1\r\n$x\r\n") == err("invalid bulk length")
        assert other.call("PING") == "PONG"
    finally:
        other.close()
    assert ours.server.protocol_errors == before + 1


# Redis deliberately differs here: it takes any byte after '\r' as the '\n' and skips the two
# bytes after a bulk argument unread; we check them (DESIGN.md: strict parsers), so a
# desynchronised client is stopped instead of running whatever its next bytes spell.
STRICT: list[tuple[bytes, bytes, str]] = [
    (b"*1\r\n$4\r\nPINGxx", b"+PONG\r\n", "expected CRLF after bulk argument"),
    (b"*1\rX$4\r\nPING\r\n", b"+PONG\r\n", "expected CRLF after multibulk length"),
    (b"*1\r\n$4\rXPING\r\n", b"+PONG\r\n", "expected CRLF after bulk length"),
]


@pytest.mark.parametrize(("data", "redis_reply", "ours_error"), STRICT)
def test_we_check_the_crlf_redis_skips(pair: Pair, data: bytes, redis_reply: bytes, ours_error: str) -> None:
    assert exchange(pair.real, data) == (redis_reply, False)
    assert exchange(pair.ours, data) == err(ours_error)


@pytest.fixture
def auth_pair(server_factory: Callable[..., ServerThread], redis_password_server: Any) -> Any:
    """Fresh connections to our server and to a real one, both with a password."""
    ours = server_factory(requirepass=REDIS_TEST_PASSWORD)
    made: list[RespConn] = []

    def connect() -> Pair:
        pair = Pair(RespConn(ours.port), RespConn(redis_password_server.port))
        made.extend((pair.ours, pair.real))
        return pair

    yield connect
    for conn in made:
        conn.close()


AUTH = b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%b\r\n" % (len(REDIS_TEST_PASSWORD), REDIS_TEST_PASSWORD.encode())


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"*11\r\n", err("unauthenticated multibulk length")),
        (b"*10\r\n", (b"", False)),
        (b"*1\r\n$16385\r\n", err("unauthenticated bulk length")),
        (b"*1\r\n$16384\r\n", (b"", False)),
        (AUTH + b"*11\r\n", (b"+OK\r\n", False)),  # the limits end with AUTH, mid-read too
        (AUTH + b"*1\r\n$16385\r\n", (b"+OK\r\n", False)),
        (b"*1\r\n$4\r\nPING\r\n", (b"-NOAUTH Authentication required.\r\n", False)),
    ],
)
def test_unauthenticated_limits_match_redis(
    auth_pair: Callable[[], Pair], data: bytes, expected: tuple[bytes, bool]
) -> None:
    if data.startswith(AUTH):
        reply = auth_pair().ours.call("AUTH", "wrong")
        if isinstance(reply, Err) and reply.message.startswith("ERR unknown command"):
            pytest.skip("AUTH is not on this branch yet (the connection family adds it)")
    pair = auth_pair()
    assert both(pair, data) == expected


def test_proto_max_bulk_len_is_configurable(server_factory: Callable[..., ServerThread]) -> None:
    running = server_factory(proto_max_bulk_len="1kb")
    conn = RespConn(running.port)
    try:
        assert exchange(conn, b"*2\r\n$4\r\nECHO\r\n$1024\r\n" + b"x" * 1024 + b"\r\n") == (
            b"$1024\r\n" + b"x" * 1024 + b"\r\n",
            False,
        )
        assert exchange(conn, b"*2\r\n$4\r\nECHO\r\n$1025\r\n") == err("invalid bulk length")
    finally:
        conn.close()


def test_http_request_is_logged_and_closed(
    pair: Pair, ours: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="stratacache.server"):
        # GET's arity error and the rest of the read are dropped: the client is gone.
        assert both(pair, b"GET / HTTP/1.1\r\nHost: localhost:6379\r\nAccept: */*\r\n\r\n") == (
            b"",
            True,
        )
    assert "Possible SECURITY ATTACK detected" in caplog.text
    assert "Host:" in caplog.text or "host:" in caplog.text


@pytest.mark.parametrize(
    "data",
    [
        b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
        b"HoSt: example.com\r\n",
        b"*2\r\n$5\r\nhost:\r\n$1\r\nx\r\nPING\r\n",
        b"*1\r\n$4\r\npost\r\n",
    ],
)
def test_post_and_host_close_like_redis(pair: Pair, data: bytes) -> None:
    assert both(pair, data) == (b"", True)


def test_http_probe_closes_before_auth(auth_pair: Callable[[], Pair]) -> None:
    assert both(auth_pair(), b"POST / HTTP/1.1\r\n") == (b"", True)


def test_http_probe_leaves_other_clients(ours: ServerThread) -> None:
    healthy = RespConn(ours.port)
    try:
        with socket.create_connection((HOST, ours.port), timeout=5) as probe:
            probe.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            probe.settimeout(5)
            assert probe.recv(100) == b""
        assert healthy.call("PING") == "PONG"
    finally:
        healthy.close()


def test_connections_parse_with_the_compiled_accelerator(client: RespConn, ours: ServerThread) -> None:
    # The connection's parser is fastparse.BatchParser (compiled, ~10x faster than the
    # hiredis one here; same results, see tests/server/test_fastparse.py).
    from stratacache.server.fastparse import BatchParser

    assert client.call("PING") == "PONG"
    assert ours.server is not None
    parsers = {type(c.parser) for c in ours.server.clients.values()}
    assert parsers == {BatchParser}
