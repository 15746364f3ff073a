"""Connection commands: HELLO AUTH RESET CLIENT, against a real redis-server where Redis's."""

from __future__ import annotations

from typing import Any

import redis
from respclient import HOST, Err, Pair, RespConn

from stratacache.server import ServerThread
from stratacache.server.app import VERSION


def test_hello_replies_and_errors_match_redis(pair: Pair) -> None:
    for args in (
        ("HELLO", "4"),
        ("HELLO", "1"),
        ("HELLO", "x"),
        ("HELLO", "3", "foo"),
        ("HELLO", "3", "auth", "a"),
        ("HELLO", "2", "SETNAME", "a b"),
        ("HELLO", "3", "AUTH", "default", "x"),  # no password configured: any is accepted
    ):
        if args[-1] == "x" and args[1] == "3":
            ours, real = pair.call(*args)
            assert ours[b"proto"] == real[b"proto"] == 3
            continue
        pair.check(*args)
    ours, real = pair.call("HELLO", "2")
    # The same flat array but for the version (we report 7.2's) and the connection id.
    assert ours[0::2] == real[0::2]
    assert [v for i, v in enumerate(ours) if i not in (3, 7)] == [
        v for i, v in enumerate(real) if i not in (3, 7)
    ]


def test_hello_3_switches_protocol_and_reports_the_server(client: RespConn) -> None:
    reply = client.call("HELLO", "3", "SETNAME", "app")
    assert reply == {
        b"server": b"redis",
        b"version": VERSION.encode(),
        b"proto": 3,
        b"id": client.call("CLIENT", "ID"),
        b"mode": b"standalone",
        b"role": b"master",
        b"modules": [],
    }
    # RESP3 now: a map comes back as a map, and HELLO 2 goes back to arrays.
    assert client.call("CLIENT", "GETNAME") == b"app"
    assert isinstance(client.call("HELLO"), dict)
    assert isinstance(client.call("HELLO", "2"), list)


def test_auth_without_a_password_configured_matches_redis(pair: Pair) -> None:
    pair.check("AUTH", "x")
    pair.check("AUTH", "default", "anything")  # the nopass default user takes any password
    pair.check("AUTH", "nobody", "x")
    pair.check("AUTH", "a", "b", "c")
    pair.check("AUTH")


def test_client_setname_getname_id_match_redis(pair: Pair) -> None:
    pair.check("CLIENT", "GETNAME")
    pair.check("CLIENT", "SETNAME", "a b")
    pair.check("CLIENT", "SETNAME", "caf\xe9")
    pair.check("CLIENT", "SETNAME", "worker-1")
    pair.check("CLIENT", "GETNAME")
    pair.check("CLIENT", "SETNAME", "")
    pair.check("CLIENT", "GETNAME")
    pair.check("CLIENT", "ID", "x")
    pair.check("CLIENT", "NOSUCH")
    pair.check("CLIENT")
    pair.check("CLIENT", "SETNAME")
    ours, _real = pair.call("CLIENT", "ID")
    assert isinstance(ours, int)
    assert ours > 0


def test_client_kill_errors_match_redis(pair: Pair) -> None:
    for args in (
        ("CLIENT", "KILL", "1.2.3.4:5"),
        ("CLIENT", "KILL", "ID", "99999"),
        ("CLIENT", "KILL", "ID", "x"),
        ("CLIENT", "KILL", "ID", "0"),
        ("CLIENT", "KILL", "USER", "nobody"),
        ("CLIENT", "KILL", "foo", "bar"),
        ("CLIENT", "KILL", "ADDR", "1.2.3.4:5", "SKIPME", "maybe"),
        ("CLIENT", "KILL", "ADDR", "1.2.3.4:5", "SKIPME"),
        ("CLIENT", "KILL", "TYPE", "bogus"),
        ("CLIENT", "KILL", "TYPE", "master"),
        ("CLIENT", "NO-EVICT", "maybe"),
        ("CLIENT", "NO-EVICT", "on"),
        ("CLIENT", "NO-EVICT", "off"),
        ("CLIENT", "LIST", "TYPE", "bogus"),
        ("CLIENT", "LIST", "foo"),
    ):
        pair.check(*args)


def _fields(line: bytes) -> dict[str, str]:
    return dict(item.split("=", 1) for item in line.decode().strip().split(" "))


def test_client_list_has_redis_fields_in_order(pair: Pair) -> None:
    pair.ours.call("CLIENT", "SETNAME", "me")
    ours = _fields(pair.ours.call("CLIENT", "INFO"))
    real = _fields(pair.real.call("CLIENT", "INFO"))
    # Redis 7.2 adds lib-name and lib-ver (7.0, the real server here, has neither).
    assert list(ours) == [*real, "lib-name", "lib-ver"]
    assert ours["name"] == "me"
    assert ours["cmd"] == real["cmd"] == "client|info"
    assert ours["flags"] == "N"
    assert ours["db"] == "0"
    assert ours["resp"] == "2"
    assert ours["user"] == "default"
    assert ours["multi"] == "-1"
    listed = pair.ours.call("CLIENT", "LIST").decode().splitlines()
    mine = [_fields(line.encode()) for line in listed if _fields(line.encode())["name"] == "me"]
    assert len(mine) == 1
    assert mine[0]["cmd"] == "client|list"
    ident = ours["id"]
    assert _fields(pair.ours.call("CLIENT", "LIST", "ID", ident))["id"] == ident
    assert pair.ours.call("CLIENT", "LIST", "TYPE", "pubsub") == b""


def test_client_list_shows_db_and_resp3(client: RespConn) -> None:
    client.call("SELECT", "3")
    client.call("HELLO", "3")
    fields = _fields(client.call("CLIENT", "INFO"))
    assert fields["db"] == "3"
    assert fields["resp"] == "3"


def test_client_kill_by_id_addr_user_and_skipme(ours: ServerThread) -> None:
    a, b, c = RespConn(ours.port), RespConn(ours.port), RespConn(ours.port)
    try:
        b_id = b.call("CLIENT", "ID")
        assert a.call("CLIENT", "KILL", "ID", b_id) == 1
        assert b.closed()
        c_addr = _fields(c.call("CLIENT", "INFO"))["addr"]
        assert a.call("CLIENT", "KILL", c_addr) == "OK"  # the old form
        assert c.closed()
        assert a.call("CLIENT", "KILL", c_addr) == Err("ERR No such client")
        # SKIPME yes (the default) spares the caller; SKIPME no kills it after the reply.
        me = _fields(a.call("CLIENT", "INFO"))["addr"]
        assert a.call("CLIENT", "KILL", "ADDR", me) == 0
        assert a.call("CLIENT", "KILL", "ADDR", me, "SKIPME", "no") == 1
        assert a.closed()
    finally:
        for conn in (a, b, c):
            conn.close()


def test_client_kill_by_user_and_laddr(ours: ServerThread) -> None:
    a, b = RespConn(ours.port), RespConn(ours.port)
    try:
        laddr = _fields(b.call("CLIENT", "INFO"))["laddr"]
        assert a.call("CLIENT", "KILL", "LADDR", laddr, "USER", "default") >= 1
        assert b.closed()
        assert a.call("PING") == "PONG"
    finally:
        a.close()
        b.close()


def test_client_setinfo_and_no_touch_follow_redis_7_2(client: RespConn) -> None:
    # CLIENT SETINFO and NO-TOUCH are Redis 7.2's (the real server here, 7.0, lacks both).
    assert client.call("CLIENT", "SETINFO", "lib-name", "redis-py") == "OK"
    assert client.call("CLIENT", "SETINFO", "LIB-VER", "5.0") == "OK"
    assert client.call("CLIENT", "SETINFO", "lib-name", "a b") == Err(
        "ERR lib-name cannot contain spaces, newlines or special characters."
    )
    assert client.call("CLIENT", "SETINFO", "color", "x") == Err("ERR Unrecognized option 'color'")
    assert client.call("CLIENT", "SETINFO", "lib-name") == Err(
        "ERR wrong number of arguments for 'client|setinfo' command"
    )
    assert client.call("CLIENT", "NO-TOUCH", "on") == "OK"
    fields = _fields(client.call("CLIENT", "INFO"))
    assert fields["lib-name"] == "redis-py"
    assert fields["lib-ver"] == "5.0"
    assert fields["flags"] == "T"
    assert client.call("CLIENT", "NO-TOUCH", "x") == Err("ERR syntax error")


def test_client_help_lists_the_subcommands(client: RespConn) -> None:
    text = client.call("CLIENT", "HELP")
    assert text[0].startswith("CLIENT <subcommand>")
    for sub in ("GETNAME", "ID", "INFO", "LIST [options ...]", "SETNAME <name>", "HELP"):
        assert sub in text


def test_reset_restores_a_new_connection_state(pair: Pair) -> None:
    for conn in (pair.ours, pair.real):
        conn.call("SELECT", "2")
        conn.call("CLIENT", "SETNAME", "x")
        conn.call("SET", "k", "v")
    assert pair.check("RESET") == "RESET"
    pair.check("CLIENT", "GETNAME")
    pair.check("GET", "k")  # database 0 again
    ours = _fields(pair.ours.call("CLIENT", "INFO"))
    assert ours["db"] == "0"
    assert ours["multi"] == "-1"


def test_reset_goes_back_to_resp2(client: RespConn) -> None:
    client.call("HELLO", "3")
    assert client.call("RESET") == "RESET"
    assert isinstance(client.call("HELLO"), list)


def test_redis_py_handshake_with_resp3_and_client_name(ours: ServerThread) -> None:
    r = redis.Redis(host=HOST, port=ours.port, protocol=3, client_name="svc")
    try:
        assert r.ping() is True
        assert r.client_getname() == "svc" or r.client_getname() == b"svc"
        info: Any = r.client_info()
        assert info["name"] == "svc"
        assert int(info["resp"]) == 3
    finally:
        r.close()
