"""The memcached listener with real clients: pymemcache (Client, HashClient, serde), redis-py
on the same keys (the shared keyspace, CAS after RESP writes), expiry, limits, memory
pressure, stats, the command line, and garbage that must not hurt the server."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from cliproc import finish, serve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcclient import HOST, McConn, mc_port, start_listener
from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient
from pymemcache.exceptions import MemcacheServerError
from pymemcache.serde import pickle_serde

from servers import free_port
from stratacache.server import ServerThread
from stratacache.server.memcache.protocol import CLOSE, Request, RequestParser, strtol, strtoull


@pytest.fixture
def pm(mc: ServerThread) -> Iterator[Client]:
    """pymemcache on our listener (replies awaited: noreply off)."""
    client = Client((HOST, mc_port(mc)), default_noreply=False, timeout=5)
    yield client
    client.close()


@pytest.fixture
def resp(mc: ServerThread) -> Iterator[redis.Redis]:
    """redis-py on the same server (database 0, the default memcached-db)."""
    client = redis.Redis(host=HOST, port=mc.port)
    yield client
    client.close()


@pytest.fixture
def own_servers() -> Iterator[list[ServerThread]]:
    """Servers of a test's own configuration, stopped afterwards (no internal error allowed)."""
    started: list[ServerThread] = []
    yield started
    for running in started:
        running.stop()
        assert running.server is not None
        assert running.server.internal_errors == 0, "the server logged an internal error"


# ------------------------------------------------------------------------ pymemcache


def test_pymemcache_commands(pm: Client) -> None:
    assert pm.set("a", b"1", expire=0, flags=5) is True
    assert pm.get("a") == b"1"
    assert pm.get_many(["a", "missing"]) == {"a": b"1"}
    value, cas = pm.gets("a")
    assert value == b"1"
    assert pm.cas("a", b"2", cas) is True
    assert pm.cas("a", b"3", cas) is False  # the CAS changed with the write
    assert pm.add("a", b"x") is False
    assert pm.add("b", b"x") is True
    assert pm.replace("missing", b"x") is False
    assert pm.replace("b", b"y") is True
    assert pm.append("b", b"z") is True
    assert pm.prepend("b", b"<") is True
    assert pm.get("b") == b"<yz"
    assert pm.incr("a", 10) == 12
    assert pm.decr("a", 100) == 0
    assert pm.incr("missing", 1) is None
    assert pm.touch("a", 100) is True
    assert pm.touch("missing", 100) is False
    assert pm.set_many({"x": b"1", "y": b"2"}) == []
    assert pm.delete_many(["x", "y"]) is True
    assert pm.get_many(["x", "y"]) == {}
    assert pm.delete("b") is True
    assert pm.delete("b") is False
    assert pm.version() == b"1.6.18"
    stats = pm.stats()
    assert stats[b"cmd_get"] >= 3
    assert stats[b"curr_connections"] >= 1
    settings_stats = pm.stats("settings")
    assert settings_stats[b"item_size_max"] == 2 * 1024 * 1024
    assert pm.flush_all() is True
    assert pm.get("a") is None


def test_pymemcache_noreply_and_meta_free_client(mc: ServerThread) -> None:
    client = Client((HOST, mc_port(mc)), default_noreply=True)
    try:
        for i in range(50):
            client.set(f"k{i}", b"v%d" % i)
        client.delete("k0")
        client.append("missing", b"x")  # NOT_STORED, unread (noreply)
        assert client.get("k49") == b"v49"
        assert client.get("k0") is None
    finally:
        client.close()


def test_pymemcache_serde_keeps_types(mc: ServerThread) -> None:
    client = Client((HOST, mc_port(mc)), serde=pickle_serde, default_noreply=False)
    try:
        values: dict[str, Any] = {"s": "text", "i": 42, "d": {"a": [1, 2]}, "b": b"\x00raw", "t": (1, "x")}
        for key, value in values.items():
            assert client.set(key, value)
        for key, value in values.items():
            assert client.get(key) == value
    finally:
        client.close()


def test_hashclient_over_two_listeners(own_servers: list[ServerThread]) -> None:
    own_servers.extend([start_listener(), start_listener()])
    nodes = [(HOST, mc_port(running)) for running in own_servers]
    client = HashClient(nodes, default_noreply=False)
    try:
        items = {f"key-{i}": b"value-%d" % i for i in range(200)}
        client.set_many(items)
        assert client.get_many(list(items)) == items
        # Both nodes hold part of the keys, each visible over its own RESP port.
        counts = []
        for running in own_servers:
            with redis.Redis(host=HOST, port=running.port) as r:
                counts.append(r.dbsize())
        assert sum(counts) == 200
        assert min(counts) > 0
    finally:
        client.close()


def test_big_and_binary_values(pm: Client) -> None:
    value = os.urandom(1024 * 1024)
    assert pm.set("big", value)
    assert pm.get("big") == value
    with pytest.raises(MemcacheServerError, match="object too large for cache"):
        pm.set("huge", b"x" * (2 * 1024 * 1024 + 1))
    assert pm.get("big") == value  # the connection survived the refusal


def test_default_item_size_limit_is_one_mib(own_servers: list[ServerThread]) -> None:
    running = start_listener()
    own_servers.append(running)
    conn = McConn(mc_port(running))
    mib = 1024 * 1024
    assert conn.call(b"set a 0 0 %d\r\n%b\r\n" % (mib, b"x" * mib)) == b"STORED\r\n"
    reply = conn.call(b"set a 0 0 %d\r\n%b\r\nget b\r\n" % (mib + 1, b"x" * (mib + 1)))
    assert reply == b"SERVER_ERROR object too large for cache\r\nEND\r\n"
    conn.close()


# ------------------------------------------------------------------ shared keyspace


def test_keys_are_shared_with_resp(pm: Client, resp: redis.Redis) -> None:
    pm.set("from-mc", b"hello", flags=7)
    assert resp.get("from-mc") == b"hello"  # flags live beside the value, not in it
    resp.set("from-resp", b"world")
    assert pm.get("from-resp") == b"world"
    assert pm.gets("from-resp")[0] == b"world"
    resp.append("from-mc", b"!")
    conn_reply = McConn(pm.server[1])
    # A RESP write resets the item: its flags are 0 from then on.
    assert conn_reply.call(b"get from-mc\r\n") == b"VALUE from-mc 0 6\r\nhello!\r\nEND\r\n"
    conn_reply.close()
    resp.rpush("a-list", b"x")
    assert pm.get("a-list") is None  # a non-string is no item
    assert pm.add("a-list", b"x") is False  # but its key is taken
    assert pm.set("a-list", b"x") is True  # and a set replaces it
    assert resp.type("a-list") == b"string"


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.set("k", b"other"),
        lambda r: r.append("k", b"x"),
        lambda r: r.expire("k", 100),
        lambda r: r.setrange("k", 0, b"v"),
        lambda r: r.incr("k"),
        lambda r: r.delete("k") and r.set("k", b"1"),
    ],
    ids=["set", "append", "expire", "setrange", "incr", "delete+set"],
)
def test_cas_changes_on_resp_writes(pm: Client, resp: redis.Redis, change: Any) -> None:
    pm.set("k", b"1")
    _, cas = pm.gets("k")
    assert pm.gets("k")[1] == cas  # stable while nothing changes
    change(resp)
    _, after = pm.gets("k")
    assert after != cas
    assert pm.cas("k", b"mine", cas) is False
    assert pm.cas("k", b"mine", after) is True


def test_cas_changes_on_every_memcached_write(pm: Client) -> None:
    pm.set("k", b"1")
    seen = {pm.gets("k")[1]}
    for write in (
        lambda: pm.set("k", b"2"),
        lambda: pm.append("k", b"3"),
        lambda: pm.prepend("k", b"4"),
        lambda: pm.incr("k", 1),
        lambda: pm.replace("k", b"5"),
    ):
        write()
        cas = pm.gets("k")[1]
        assert cas not in seen
        seen.add(cas)
    pm.touch("k", 100)
    assert pm.gets("k")[1] in seen  # touch keeps the CAS, as memcached


def test_memcached_db_option(own_servers: list[ServerThread]) -> None:
    running = start_listener(memcached_db=3)
    own_servers.append(running)
    conn = McConn(mc_port(running))
    assert conn.call(b"set k 0 0 1\r\nv\r\n") == b"STORED\r\n"
    with (
        redis.Redis(host=HOST, port=running.port, db=3) as r3,
        redis.Redis(host=HOST, port=running.port) as r0,
    ):
        assert r3.get("k") == b"v"
        assert r0.get("k") is None
        r0.set("only-db0", b"x")
    assert conn.call(b"get only-db0\r\nflush_all\r\n") == b"END\r\nOK\r\n"
    with redis.Redis(host=HOST, port=running.port) as r0:
        assert r0.get("only-db0") == b"x"  # flush_all empties memcached-db only
    conn.close()


def test_memcached_db_must_exist() -> None:
    from stratacache._exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="memcached-db: 20 is no database"):
        start_listener(memcached_db=20)


# ------------------------------------------------------------------------- expiry


def test_exptime_rules(mc_conn: McConn, resp: redis.Redis) -> None:
    now = int(time.time())
    mc_conn.call(b"set rel 0 100 1\r\nx\r\n")
    assert 99 <= resp.ttl("rel") <= 100
    mc_conn.call(b"set abs 0 %d 1\r\nx\r\n" % (now + 500))
    assert 498 <= resp.ttl("abs") <= 500
    thirty_days = 60 * 60 * 24 * 30
    mc_conn.call(b"set limit 0 %d 1\r\nx\r\n" % thirty_days)
    assert resp.ttl("limit") > thirty_days - 5  # still relative
    mc_conn.call(b"set past 0 %d 1\r\nx\r\n" % (thirty_days + 1))  # a Unix time in 1970
    mc_conn.call(b"set neg 0 -1 1\r\nx\r\n")
    mc_conn.call(b"set never 0 0 1\r\nx\r\n")
    assert resp.exists("past", "neg") == 0
    assert resp.ttl("never") == -1
    assert mc_conn.call(b"touch never 0\r\nmg never t\r\nmg rel t\r\n") == b"TOUCHED\r\nHD t-1\r\nHD t100\r\n"


def test_items_expire(mc_conn: McConn) -> None:
    mc_conn.call(b"set a 3 1 1\r\nx\r\nms b 1 T1 F9\r\ny\r\n")
    time.sleep(1.1)
    assert mc_conn.call(b"get a b\r\nmg b v\r\n") == b"END\r\nEN\r\n"


def test_flush_all_with_delay(mc_conn: McConn) -> None:
    assert (
        mc_conn.call(b"set a 0 0 1\r\nx\r\nflush_all 1\r\nget a\r\n")
        == b"STORED\r\nOK\r\nVALUE a 0 1\r\nx\r\nEND\r\n"
    )
    time.sleep(1.2)
    assert mc_conn.call(b"get a\r\n") == b"END\r\n"
    # A new flush_all replaces the pending one.
    mc_conn.call(b"set b 0 0 1\r\nx\r\nflush_all 1\r\nflush_all 0\r\nset c 0 0 1\r\ny\r\n")
    time.sleep(1.2)
    assert mc_conn.call(b"get c\r\n") == b"VALUE c 0 1\r\ny\r\nEND\r\n"


def test_side_table_is_swept(mc: ServerThread, mc_conn: McConn) -> None:
    assert mc.server is not None
    items = mc.server.extra["memcache"].items
    mc_conn.call(b"".join(b"set k%d 1 1 1\r\nx\r\n" % i for i in range(100)))
    mc_conn.call(b"set kept 1 0 1\r\nx\r\n")
    assert len(items.meta) == 101
    time.sleep(1.1)
    mc.call(lambda: items.sweep(10_000))
    mc.call(lambda: items.sweep(10_000))
    assert list(items.meta) == ["kept"]
    assert mc_conn.call(b"mg kept f\r\n") == b"HD f1\r\n"


# ------------------------------------------------------------------- memory pressure


def test_noeviction_refuses_writes(own_servers: list[ServerThread]) -> None:
    running = start_listener(maxmemory="2mb", maxmemory_policy="noeviction")
    own_servers.append(running)
    conn = McConn(mc_port(running))
    value = b"x" * 50_000
    replies = [conn.call(b"set k%d 0 0 %d\r\n%b\r\n" % (i, len(value), value)) for i in range(80)]
    assert b"SERVER_ERROR out of memory storing object\r\n" in replies
    assert replies[0] == b"STORED\r\n"
    assert conn.call(b"ms m 1\r\nx\r\n") == b"SERVER_ERROR out of memory storing object\r\n"
    assert conn.call(b"get k0\r\n").startswith(b"VALUE k0 0 50000\r\n")  # reads still work
    conn.close()


def test_eviction_policy_makes_room(own_servers: list[ServerThread]) -> None:
    running = start_listener(maxmemory="2mb", maxmemory_policy="allkeys-lru")
    own_servers.append(running)
    conn = McConn(mc_port(running))
    value = b"x" * 50_000
    for i in range(80):
        assert conn.call(b"set k%d 0 0 %d\r\n%b\r\n" % (i, len(value), value)) == b"STORED\r\n"
    assert conn.call(b"get k79\r\n").startswith(b"VALUE k79")
    assert conn.call(b"get k0\r\n") == b"END\r\n"  # evicted
    stats = dict(line.split(b" ")[1:3] for line in conn.call(b"stats\r\n").splitlines()[:-1])
    assert int(stats[b"evictions"]) > 0
    conn.close()


# ------------------------------------------------------------------------ stats


def test_stats_groups(mc_conn: McConn) -> None:
    mc_conn.call(b"stats reset\r\nset a 0 0 1\r\nx\r\nget a\r\nget b\r\n")
    general = mc_conn.call(b"stats\r\n")
    assert general.endswith(b"END\r\n")
    fields = dict(line.split(b" ", 2)[1:] for line in general.splitlines()[:-1])
    assert fields[b"get_hits"] == b"1"
    assert fields[b"get_misses"] == b"1"
    assert fields[b"curr_items"] == b"1"
    assert fields[b"version"] == b"1.6.18"
    assert mc_conn.call(b"stats items\r\n").startswith(b"STAT items:1:number 1\r\n")
    assert b"STAT active_slabs 1\r\n" in mc_conn.call(b"stats slabs\r\n")
    assert b"STAT item_size_max 2097152\r\n" in mc_conn.call(b"stats settings\r\n")
    assert mc_conn.call(b"stats reset\r\nstats\r\n").count(b"STAT get_hits 0\r\n") == 1


# ------------------------------------------------------------------- command line


def test_serve_memcached_port_flag() -> None:
    port, mport = free_port(), free_port()
    proc = serve("--port", str(port), "--memcached-port", str(mport))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"Memcached protocol on 127.0.0.1:{mport}" in line, line
        conn = McConn(mport)
        assert conn.call(b"set a 0 0 2\r\nhi\r\n") == b"STORED\r\n"
        with redis.Redis(host=HOST, port=port) as r:
            assert r.get("a") == b"hi"
        conn.close()
    finally:
        status, err = finish(proc, signal.SIGTERM)
    assert status == 0, err


# ----------------------------------------------------------------- garbage, framing


def test_parser_fed_byte_by_byte() -> None:
    stream = b"set a 1 2 3\r\nabc\r\nget a b\r\nms k 2 T5\r\nhi\r\nmn\r\n"
    whole = RequestParser(1024)
    whole.feed(stream)
    expected = []
    while (item := whole.next()) is not None:
        expected.append(repr(item))
    parser = RequestParser(1024)
    got = []
    for byte in stream:
        parser.feed(bytes([byte]))
        while (item := parser.next()) is not None:
            got.append(repr(item))
    assert got == expected
    assert [repr(Request([b"set", b"a", b"1", b"2", b"3"], b"abc"))] == expected[:1]


def test_parser_closes_on_an_endless_line() -> None:
    parser = RequestParser(1024)
    parser.feed(b"set " + b"x" * 3000)
    assert parser.next() is CLOSE
    getter = RequestParser(1024)
    getter.feed(b"get " + b"x " * 3000)
    assert getter.next() is None  # a multi-get may be long: wait for its end


def test_number_parsers_follow_memcached() -> None:
    assert strtoull(b"18446744073709551615") == 2**64 - 1
    assert strtoull(b"18446744073709551616") is None
    assert strtoull(b"-1") is None
    assert strtoull(b"-0") == 0
    assert strtoull(b" 7 ") == 7
    assert strtoull(b"7x") is None
    assert strtoull(b"") is None
    assert strtol(b"-5") == -5
    assert strtol(b"2147483648") == -(2**31)  # truncated to 32 bits, as memcached
    assert strtol(b"4294967297") == 1
    assert strtol(b"9223372036854775808") is None


def test_a_big_value_is_swallowed_not_buffered(mc_conn: McConn, mc: ServerThread) -> None:
    size = 5 * 1024 * 1024
    mc_conn.send(b"set big 0 0 %d\r\n" % size)
    for _ in range(size // 65536):
        mc_conn.send(b"x" * 65536)
    assert mc_conn.call(b"\r\nset ok 0 0 1\r\ny\r\n") == (
        b"SERVER_ERROR object too large for cache\r\nSTORED\r\n"
    )


_GARBAGE = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.sampled_from(
            [
                b"set ",
                b"get ",
                b"ms ",
                b"mg ",
                b"ma ",
                b"md ",
                b"cas ",
                b"incr ",
                b"a ",
                b"0 ",
                b"1 ",
                b"-1 ",
                b"99999999999999999999 ",
                b"\r\n",
                b"\n",
                b"noreply ",
                b"b ",
                b"v ",
                b"N0 ",
                b"MA ",
                b"\x00",
                b"C1 ",
                b"YQ== ",
                b"q ",
                b"gat ",
                b"touch ",
                b"flush_all ",
                b"stats ",
                b"verbosity ",
                b"T-1 ",
            ]
        ),
        max_size=40,
    ).map(b"".join),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_GARBAGE)
def test_garbage_never_breaks_the_server(mc: ServerThread, garbage: bytes) -> None:
    """Any bytes: no internal error (the mc fixture checks), and the connection either
    closes or still answers once whatever data block it waits for is complete."""
    conn = McConn(mc_port(mc), timeout=5)
    try:
        conn.send(garbage)
        # Ends any data block the garbage opened (none is longer than 2**31 here, and
        # most are short): enough filler, then a line end, then a marker.
        conn.send(b"\r\n" * 64)
        conn.sock.settimeout(0.3)
        try:
            conn.sock.sendall(b"mn\r\n")
            data = b""
            while not data.endswith(b"MN\r\n"):
                chunk = conn.sock.recv(65536)
                if not chunk:
                    break  # closed cleanly (an over-long line): allowed
                data += chunk
        except (TimeoutError, ConnectionError):
            pass  # waiting for a long data block, or reset after a close: allowed
    finally:
        conn.close()
    # The server still serves a new connection.
    fresh = McConn(mc_port(mc))
    assert fresh.call(b"version\r\n") == b"VERSION 1.6.18\r\n"
    fresh.close()


def test_connection_closed_mid_command(mc: ServerThread) -> None:
    for partial in (b"set a 0 0 10\r\nabc", b"get a", b"ms a 5 T0\r\nab", b"mg a v"):
        sock = socket.create_connection((HOST, mc_port(mc)))
        sock.sendall(partial)
        sock.close()
    fresh = McConn(mc_port(mc))
    assert fresh.call(b"get a\r\n") == b"END\r\n"
    fresh.close()


def test_memcached_port_in_use_leaves_no_socket_open() -> None:
    import gc
    import warnings

    from stratacache.server import ServerConfig

    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            ServerThread(ServerConfig(port=0, memcached_port=port)).start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_commands_refused_while_loading(mc: ServerThread, mc_conn: McConn) -> None:
    server = mc.server
    assert server is not None
    mc.call(lambda: setattr(server, "loading", True))
    try:
        refused = b"SERVER_ERROR loading the dataset in memory\r\n"
        mc_conn.send(b"get a\r\nmg a v\r\n")
        assert mc_conn.read_until(refused * 2) == b""
    finally:
        mc.call(lambda: setattr(server, "loading", False))
    assert mc_conn.call(b"get a\r\n") == b"END\r\n"


def test_e_flag_sets_the_cas(mc_conn: McConn) -> None:
    # E is newer than the memcached here (1.6.18 refuses it): ours only.
    assert mc_conn.call(b"ms k 1 E500 c\r\nx\r\nmg k c\r\n") == b"HD c500\r\nHD c500\r\n"
    assert mc_conn.call(b"ms k 1 C500 E600\r\ny\r\nmg k c v\r\n") == b"HD\r\nVA 1 c600\r\ny\r\n"
    assert mc_conn.call(b"mg new N30 E700 c\r\n") == b"HD c700 W\r\n"
    assert mc_conn.call(b"ma n N0 J1 E800 c\r\nma n E900 c v\r\n") == b"HD c800\r\nVA 1 c900\r\n2\r\n"
    # Numbers given later stay above the ones clients chose.
    reply = mc_conn.call(b"set other 0 0 1\r\nz\r\ngets other\r\n")
    assert int(reply.split(b"\r\n")[1].split()[-1]) > 900


def test_config_get_shows_the_options(mc: ServerThread, resp: redis.Redis) -> None:
    config = resp.config_get("memcached-*")
    assert config["memcached-port"] == str(mc_port(mc))
    assert config["memcached-db"] == "0"
    assert config["memcached-bind"] == ""  # the server's bind
    assert config["memcached-max-item-size"] == str(2 * 1024 * 1024)
    with pytest.raises(redis.ResponseError):
        resp.config_set("memcached-port", 1)


def test_store_byte_limit_refuses_an_item(own_servers: list[ServerThread]) -> None:
    running = start_listener(stores={0: {"max_bytes": 10_000}})
    own_servers.append(running)
    conn = McConn(mc_port(running))
    big = b"x" * 20_000
    too_large = b"SERVER_ERROR object too large for cache\r\n"
    assert conn.call(b"set a 0 0 %d\r\n%b\r\n" % (len(big), big)) == too_large
    assert conn.call(b"ms a %d\r\n%b\r\n" % (len(big), big)) == too_large
    assert conn.call(b"set a 0 0 1\r\nx\r\nget a\r\n") == b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"
    conn.close()


def test_output_buffer_limit_closes_a_client_that_does_not_read(own_servers: list[ServerThread]) -> None:
    running = start_listener(client_output_buffer_limit_normal="1mb")
    own_servers.append(running)
    conn = McConn(mc_port(running))
    big = b"x" * 1_000_000
    assert conn.call(b"set big 0 0 %d\r\n%b\r\n" % (len(big), big)) == b"STORED\r\n"
    conn.send(b"get big\r\n" * 100)  # ~100 MB of replies, none read yet
    time.sleep(0.5)
    received = 0
    conn.sock.settimeout(5)
    try:
        while chunk := conn.sock.recv(1 << 20):
            received += len(chunk)
    except ConnectionError:
        pass
    assert received < 50_000_000
    conn.close()
    fresh = McConn(mc_port(running))
    assert fresh.call(b"get nothing\r\n") == b"END\r\n"
    fresh.close()


def test_side_table_is_charged_to_the_pool(mc: ServerThread, mc_conn: McConn) -> None:
    from stratacache.server.memcache.items import ENTRY_COST

    assert mc.server is not None
    pool = mc.server.pool
    items = mc.server.extra["memcache"].items
    mc_conn.call(b"".join(b"set k%d 0 0 1\r\nx\r\n" % i for i in range(300)))
    mc_conn.call(b"set flagged 7 0 1\r\nx\r\n")
    mc.call(items.account)
    before = pool.used
    mc_conn.call(b"get " + b" ".join(b"k%d" % i for i in range(300)) + b"\r\n")  # 300 fetch entries
    mc.call(items.account)
    assert pool.used - before == 300 * ENTRY_COST
    # Relief drops the entries that hold only fetch state; the flags stay.
    freed: list[int] = []
    mc.call(lambda: freed.append(items.evict_bytes(10**9)))
    assert freed == [300 * ENTRY_COST]
    assert list(items.meta) == ["flagged"]
    assert mc_conn.call(b"mg flagged f\r\nmg k1 h\r\n") == b"HD f7\r\nHD h0\r\n"


def test_maxclients_refuses_a_connection(own_servers: list[ServerThread]) -> None:
    running = start_listener(maxclients=1)
    own_servers.append(running)
    first = McConn(mc_port(running))
    assert first.call(b"version\r\n") == b"VERSION 1.6.18\r\n"
    second = McConn(mc_port(running))
    assert second.read_until(b"\r\n") == b"ERROR Too many open connections"
    assert second.closed()
    second.close()
    assert first.call(b"version\r\n") == b"VERSION 1.6.18\r\n"
    first.close()
