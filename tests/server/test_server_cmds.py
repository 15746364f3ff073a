"""Server commands: INFO COMMAND CONFIG DBSIZE FLUSHDB FLUSHALL TIME MEMORY SHUTDOWN ROLE."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from respclient import HOST, Closed, Err, Pair, RespConn

from stratacache.server import ServerThread
from stratacache.server.app import VERSION
from stratacache.server.commands.server import bytes_to_human


def _info(text: bytes) -> dict[str, str]:
    fields = {}
    for line in text.decode().split("\r\n"):
        if line and not line.startswith("#"):
            key, _, value = line.partition(":")
            fields[key] = value
    return fields


def _sections(text: bytes) -> list[str]:
    return [line[2:] for line in text.decode().split("\r\n") if line.startswith("# ")]


def test_info_sections_match_redis(pair: Pair) -> None:
    for args in (("INFO",), ("INFO", "default"), ("INFO", "all"), ("INFO", "server", "keyspace")):
        ours, real = pair.call(*args)
        assert _sections(ours) == _sections(real), args
    ours, real = pair.call("INFO", "everything")
    assert set(_sections(real)) - {"Latencystats"} <= set(_sections(ours))
    assert pair.check("INFO", "nosuchsection") == b""


def test_info_has_the_fields_clients_read(client: RespConn, ours: ServerThread) -> None:
    client.call("SET", "a", "1")
    assert ours.server is not None
    db = ours.server.databases[0]
    ours.call(lambda: db.set("b", b"2", 100))
    client.call("GET", "a")
    client.call("GET", "nope")
    info = _info(client.call("INFO", "everything"))
    assert info["redis_version"] == VERSION
    assert info["redis_mode"] == "standalone"
    assert info["arch_bits"] == "64"
    assert info["os"]
    assert int(info["process_id"]) > 0
    assert int(info["tcp_port"]) == ours.port
    assert int(info["uptime_in_seconds"]) >= 0
    assert int(info["connected_clients"]) >= 1
    assert int(info["used_memory"]) > 0
    assert info["used_memory_human"].endswith(("B", "K", "M"))
    assert int(info["maxmemory"]) == 512 * 1024 * 1024
    assert info["maxmemory_policy"] == "allkeys-lru"
    assert float(info["mem_fragmentation_ratio"]) > 0
    assert int(info["total_commands_processed"]) > 0
    assert int(info["instantaneous_ops_per_sec"]) >= 0
    assert int(info["keyspace_hits"]) >= 1
    assert int(info["keyspace_misses"]) >= 1
    assert int(info["evicted_keys"]) >= 0
    assert int(info["expired_keys"]) >= 0
    assert info["role"] == "master"
    assert info["cluster_enabled"] == "0"
    db0 = dict(item.split("=") for item in info["db0"].split(","))
    assert db0["keys"] == "2"
    assert db0["expires"] == "1"
    assert 0 < int(db0["avg_ttl"]) <= 100_000


def test_info_is_parsed_by_redis_py(rclient: redis.Redis) -> None:
    rclient.set("k", "v")
    info = rclient.info()
    assert info["redis_version"] == VERSION
    assert info["db0"]["keys"] == 1
    assert rclient.info("memory")["maxmemory_policy"] == "allkeys-lru"


def test_bytes_to_human_matches_redis() -> None:
    assert bytes_to_human(0) == "0B"
    assert bytes_to_human(1023) == "1023B"
    assert bytes_to_human(1024) == "1.00K"
    assert bytes_to_human(1536) == "1.50K"
    assert bytes_to_human(512 * 1024 * 1024) == "512.00M"
    assert bytes_to_human(3 * 1024**3) == "3.00G"


def test_instantaneous_ops_per_sec_counts_recent_commands(client: RespConn) -> None:
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        client.call("PING")
    assert int(_info(client.call("INFO", "stats"))["instantaneous_ops_per_sec"]) > 0


def test_command_count_info_docs_list_getkeys(pair: Pair, client: RespConn) -> None:
    count = client.call("COMMAND", "COUNT")
    assert count == len(client.call("COMMAND"))
    for name in (
        "get",
        "set",
        "ping",
        "echo",
        *("client", "config", "memory", "command", "dbsize", "flushall", "flushdb", "info"),
        *("time", "hello", "auth", "reset", "quit", "select", "shutdown", "role"),
    ):
        ours, real = pair.call("COMMAND", "INFO", name)
        # Name, arity, flags, first key, last key, step: Redis's.
        assert ours[0][:6] == real[0][:6], name
    ours, real = pair.call("COMMAND", "INFO", "client|id")
    assert ours[0][:2] == real[0][:2]
    pair.check("COMMAND", "INFO", "nosuchcommand")
    pair.check("COMMAND", "GETKEYS", "set", "a", "b")
    pair.check("COMMAND", "GETKEYS", "nosuch", "a")
    # Redis 7.0 (the real server here) answers both with an arity error naming
    # 'command|getkeys'; 7.2, which we follow, says what is wrong.
    assert client.call("COMMAND", "GETKEYS", "get") == Err(
        "ERR Invalid number of arguments specified for command"
    )
    assert client.call("COMMAND", "GETKEYS", "ping") == Err("ERR The command has no key arguments")
    pair.check("COMMAND", "NOSUCH")
    pair.check("COMMAND", "COUNT", "x")
    pair.check("COMMAND", "DOCS", "nosuchcommand")
    client.call("HELLO", "3")  # maps as maps
    docs = client.call("COMMAND", "DOCS", "get", "client")
    assert docs[b"get"][b"group"] == b"string"
    assert docs[b"get"][b"summary"]
    assert b"client|list" in docs[b"client"][b"subcommands"]
    names = client.call("COMMAND", "LIST")
    assert b"get" in names
    assert b"client|kill" in names
    assert client.call("COMMAND", "LIST", "FILTERBY", "PATTERN", "conf*") == [
        b"config",
        b"config|get",
        b"config|set",
        b"config|resetstat",
        b"config|help",
        b"config|rewrite",
    ]
    assert client.call("COMMAND", "LIST", "FILTERBY", "MODULE", "x") == []
    assert b"get" in client.call("COMMAND", "LIST", "FILTERBY", "ACLCAT", "read")
    assert client.call("COMMAND", "LIST", "FILTERBY", "x") == Err("ERR syntax error")


def test_config_get_and_set_errors_match_redis(pair: Pair) -> None:
    for args in (
        ("CONFIG", "SET", "nosuch", "y"),
        ("CONFIG", "SET", "maxmemory", "abc"),
        ("CONFIG", "SET", "maxmemory"),
        ("CONFIG", "SET", "maxmemory", "1", "maxmemory", "2"),
        ("CONFIG", "SET", "hz", "1", "hz"),
        ("CONFIG", "SET", "databases", "3"),
        ("CONFIG", "SET", "hz", "abc"),
        ("CONFIG", "SET", "maxmemory-policy", "bad"),
        ("CONFIG", "GET"),
        ("CONFIG", "NOSUCH"),
        ("CONFIG", "RESETSTAT", "x"),
        ("CONFIG", "GET", "nosuch*"),
        ("CONFIG", "GET", "databases"),
    ):
        pair.check(*args)
    ours, real = pair.call("CONFIG", "GET", "save", "appendonly")  # a map: any order
    assert dict(zip(ours[::2], ours[1::2], strict=True)) == dict(zip(real[::2], real[1::2], strict=True))
    # maxclients's range is ours (Redis: 1 to 4294967295): compare only the start.
    for value in ("0", "-1"):
        ours, real = pair.call("CONFIG", "SET", "maxclients", value)
        assert ours.message.split(" - ")[0] == real.message.split(" - ")[0]


def test_config_set_several_and_get_patterns(client: RespConn, ours: ServerThread) -> None:
    assert ours.server is not None
    config = ours.server.config
    before = (config.hz, config.timeout)
    try:
        assert client.call("CONFIG", "SET", "hz", "20", "timeout", "300") == "OK"
        assert client.call("CONFIG", "GET", "hz", "time*") == [b"hz", b"20", b"timeout", b"300"]
        # All or nothing: one bad value changes none of them.
        assert isinstance(client.call("CONFIG", "SET", "hz", "30", "timeout", "x"), Err)
        assert client.call("CONFIG", "GET", "hz") == [b"hz", b"20"]
        names = client.call("CONFIG", "GET", "*")[0::2]
        assert b"maxmemory-policy" in names
        assert b"requirepass" in names
    finally:
        config.hz, config.timeout = before


def test_config_resetstat_zeroes_the_counters(client: RespConn) -> None:
    client.call("GET", "nope")
    assert client.call("CONFIG", "RESETSTAT") == "OK"
    stats = _info(client.call("INFO", "stats"))
    assert stats["keyspace_misses"] == "0"
    assert int(stats["total_commands_processed"]) <= 1
    assert stats["evicted_keys"] == "0"


def test_dbsize_flushdb_flushall_match_redis(pair: Pair) -> None:
    pair.check("SET", "a", "1")
    pair.check("SET", "b", "1")
    pair.check("DBSIZE")
    pair.check("DBSIZE", "x")
    pair.check("FLUSHDB", "foo")
    pair.check("FLUSHALL", "ASYNC", "SYNC")
    pair.check("FLUSHDB", "ASYNC")
    pair.check("DBSIZE")
    pair.check("SELECT", "1")
    pair.check("SET", "c", "1")
    pair.check("SELECT", "0")
    pair.check("SET", "a", "1")
    pair.check("FLUSHALL", "SYNC")
    pair.check("DBSIZE")
    pair.check("SELECT", "1")
    pair.check("DBSIZE")


def test_time_role_match_redis(pair: Pair) -> None:
    ours, real = pair.call("TIME")
    assert abs(int(ours[0]) - int(real[0])) <= 2
    assert 0 <= int(ours[1]) < 1_000_000
    pair.check("TIME", "x")
    pair.check("ROLE")


def test_memory_usage_matches_redis_shape(pair: Pair) -> None:
    pair.check("MEMORY", "USAGE", "nokey")
    pair.check("MEMORY", "USAGE")
    pair.check("SET", "k", "v" * 1000)
    pair.check("MEMORY", "USAGE", "k", "SAMPLES", "x")
    pair.check("MEMORY", "USAGE", "k", "foo")
    pair.check("MEMORY", "NOSUCH")
    ours, real = pair.call("MEMORY", "USAGE", "k", "SAMPLES", "0")
    assert 1000 < ours < 2000
    assert 1000 < real < 2000
    stats = pair.ours.call("MEMORY", "STATS")
    assert stats[stats.index(b"keys.count") + 1] == 1


def test_shutdown_errors_match_redis(pair: Pair) -> None:
    pair.check("SHUTDOWN", "foo")
    pair.check("SHUTDOWN", "NOSAVE", "SAVE")
    pair.check("SHUTDOWN", "ABORT")


def test_shutdown_closes_the_server_gracefully(server_factory: Callable[..., ServerThread]) -> None:
    running = server_factory()
    conn = RespConn(running.port)
    other = redis.Redis(host=HOST, port=running.port, retry=Retry(NoBackoff(), 0))
    try:
        conn.send_raw(b"*1\r\n$4\r\nPING\r\n*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")
        assert conn.read() == "PONG"  # replies before SHUTDOWN in the batch go out
        with pytest.raises(Closed):
            conn.read()
        assert running._thread is not None
        running._thread.join(5)
        assert not running._thread.is_alive()
        with pytest.raises(redis.ConnectionError):
            other.ping()
    finally:
        conn.close()
        other.close()


def test_redis_py_shutdown_returns(server_factory: Callable[..., ServerThread]) -> None:
    running = server_factory()
    # No retries: redis-py reconnects (with backoff) after a dropped connection by default.
    r = redis.Redis(host=HOST, port=running.port, retry=Retry(NoBackoff(), 0))
    try:
        r.shutdown(nosave=True)  # redis-py expects the connection to close, no reply
    finally:
        r.close()
