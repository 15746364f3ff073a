"""Key commands against a real redis-server: success and error replies, text for text."""

from __future__ import annotations

import time
from typing import Any

import pytest
from respclient import Err, Pair, RespConn

from stratacache.server.keyspace import RedisValue

NOT_INTEGER = Err("ERR value is not an integer or out of range")


def _scan_all(conn: RespConn, *options: Any) -> list[bytes]:
    seen: list[bytes] = []
    cursor = b"0"
    while True:
        cursor, items = conn.call("SCAN", cursor, *options)
        seen += items
        if cursor == b"0":
            return seen


def test_del_unlink_exists_touch_type(pair: Pair) -> None:
    pair.check("MSET", "a", "1", "b", "2", "c", "3")
    assert pair.check("EXISTS", "a", "a", "nope", "b") == 3
    assert pair.check("TOUCH", "a", "nope") == 1
    assert pair.check("TYPE", "a") == "string"
    assert pair.check("TYPE", "nope") == "none"
    assert pair.check("DEL", "a", "nope", "a") == 1
    assert pair.check("UNLINK", "b", "c") == 2
    assert pair.check("EXISTS", "a", "b", "c") == 0
    for name in ("DEL", "UNLINK", "EXISTS", "TOUCH", "TYPE"):
        assert isinstance(pair.check(name), Err)
    assert isinstance(pair.check("TYPE", "a", "b"), Err)


def test_expire_family_and_ttls(pair: Pair) -> None:
    pair.check("SET", "k", "v")
    assert pair.check("TTL", "k") == -1
    assert pair.check("PTTL", "k") == -1
    assert pair.check("EXPIRETIME", "k") == -1
    assert pair.check("PEXPIRETIME", "k") == -1
    assert pair.check("TTL", "nope") == -2
    assert pair.check("PEXPIRETIME", "nope") == -2
    assert pair.check("EXPIRE", "k", "100") == 1
    assert pair.check("TTL", "k") == 100
    ours, real = pair.call("PTTL", "k")
    assert 99_000 < ours <= 100_000
    assert 99_000 < real <= 100_000
    assert pair.check("PEXPIRE", "k", "200000") == 1
    assert pair.check("TTL", "k") == 200
    at = int(time.time()) + 1000
    assert pair.check("EXPIREAT", "k", at) == 1
    assert pair.check("EXPIRETIME", "k") == at
    assert pair.check("PEXPIRETIME", "k") == at * 1000
    assert pair.check("PEXPIREAT", "k", at * 1000 + 123) == 1
    assert pair.check("PEXPIRETIME", "k") == at * 1000 + 123
    assert pair.check("EXPIRETIME", "k") == at
    assert pair.check("PERSIST", "k") == 1
    assert pair.check("PERSIST", "k") == 0
    assert pair.check("PERSIST", "nope") == 0
    assert pair.check("TTL", "k") == -1
    assert pair.check("EXPIRE", "nope", "10") == 0
    # A time in the past deletes the key (and answers 1).
    assert pair.check("EXPIRE", "k", "-1") == 1
    assert pair.check("EXISTS", "k") == 0
    pair.check("SET", "k", "v")
    assert pair.check("PEXPIREAT", "k", "1") == 1
    assert pair.check("GET", "k") is None


def test_expire_options(pair: Pair) -> None:
    pair.check("SET", "k", "v")
    assert pair.check("EXPIRE", "k", "100", "XX") == 0
    assert pair.check("EXPIRE", "k", "100", "GT") == 0  # no expiry counts as infinite
    assert pair.check("EXPIRE", "k", "100", "LT") == 1
    assert pair.check("EXPIRE", "k", "50", "NX") == 0
    assert pair.check("EXPIRE", "k", "200", "lt") == 0
    assert pair.check("EXPIRE", "k", "200", "gt") == 1
    assert pair.check("EXPIRE", "k", "300", "xx", "gt") == 1
    assert pair.check("EXPIRE", "k", "150", "XX", "LT") == 1
    assert pair.check("TTL", "k") == 150
    assert pair.check("PERSIST", "k") == 1
    assert pair.check("EXPIRE", "k", "50", "NX") == 1
    assert pair.check("TTL", "k") == 50
    for options in (("NX", "XX"), ("NX", "GT"), ("nx", "lt"), ("GT", "LT"), ("XX", "NX", "GT")):
        assert isinstance(pair.check("EXPIRE", "k", "10", *options), Err)
    assert pair.check("EXPIRE", "k", "10", "BOGUS") == Err("ERR Unsupported option BOGUS")
    # An equal time is neither greater nor less.
    at = int(time.time()) + 1000
    assert pair.check("EXPIREAT", "k", at) == 1
    assert pair.check("EXPIREAT", "k", at, "GT") == 0
    assert pair.check("EXPIREAT", "k", at, "LT") == 0
    assert pair.check("PEXPIREAT", "k", at * 1000 - 1, "LT") == 1
    assert pair.check("PEXPIREAT", "k", at * 1000, "GT") == 1
    # Options are checked before the time.
    assert pair.check("PEXPIRE", "k", "x", "GT", "LT") == Err(
        "ERR GT and LT options at the same time are not compatible"
    )


@pytest.mark.parametrize("name", ["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"])
def test_expire_errors_and_overflow(pair: Pair, name: str) -> None:
    pair.check("SET", "k", "v")
    for value in ("x", "1.5", " 1", "+1", "01", "", "9223372036854775808"):
        assert pair.check(name, "k", value) == NOT_INTEGER
    for value in (
        "9223372036854775807",
        "9223372036854775",
        "9223372036854776",
        "-9223372036854775",
        "-9223372036854776",
        "9223372036854775000",
        "9223370000000000000",
    ):
        pair.check(name, "k", value)
        pair.check("SET", "k", "v")
    assert isinstance(pair.check(name, "k"), Err)


def test_rename_and_renamenx(pair: Pair) -> None:
    assert pair.check("RENAME", "nope", "x") == Err("ERR no such key")
    assert pair.check("RENAMENX", "nope", "x") == Err("ERR no such key")
    assert pair.check("RENAME", "nope", "nope") == Err("ERR no such key")
    pair.check("SET", "a", "1")
    pair.check("EXPIRE", "a", "100")
    assert pair.check("RENAME", "a", "a") == "OK"
    assert pair.check("RENAMENX", "a", "a") == 0
    assert pair.check("RENAME", "a", "b") == "OK"
    assert pair.check("GET", "b") == b"1"
    assert pair.check("TTL", "b") == 100
    assert pair.check("EXISTS", "a") == 0
    pair.check("SET", "c", "3")
    assert pair.check("RENAMENX", "b", "c") == 0
    assert pair.check("RENAMENX", "b", "d") == 1
    assert pair.check("RENAME", "d", "c") == "OK"
    assert pair.check("GET", "c") == b"1"
    assert pair.check("TTL", "c") == 100


def test_copy(pair: Pair) -> None:
    pair.check("SET", "a", "1")
    pair.check("PEXPIRE", "a", "100000")
    assert pair.check("COPY", "a", "b") == 1
    assert pair.check("GET", "b") == b"1"
    assert pair.check("TTL", "b") == 100
    assert pair.check("COPY", "a", "b") == 0
    pair.check("SET", "a", "2")
    assert pair.check("COPY", "a", "b", "REPLACE") == 1
    assert pair.check("GET", "b") == b"2"
    assert pair.check("TTL", "b") == -1
    assert pair.check("COPY", "nope", "b") == 0
    assert pair.check("COPY", "a", "a") == Err("ERR source and destination objects are the same")
    assert pair.check("COPY", "a", "a", "DB", "0") == Err("ERR source and destination objects are the same")
    assert pair.check("COPY", "a", "a", "DB", "1") == 1
    assert pair.check("COPY", "a", "a", "DB", "1") == 0
    assert pair.check("COPY", "a", "a", "DB", "1", "replace") == 1
    assert pair.check("COPY", "a", "b", "DB", "99") == Err("ERR DB index is out of range")
    assert pair.check("COPY", "a", "b", "DB", "-1") == Err("ERR DB index is out of range")
    assert pair.check("COPY", "a", "b", "DB", "x") == NOT_INTEGER
    assert pair.check("COPY", "a", "b", "DB", "99999999999") == Err(
        "ERR value is out of range, value must between -2147483648 and 2147483647"
    )
    assert pair.check("COPY", "a", "b", "DB") == Err("ERR syntax error")
    assert pair.check("COPY", "a", "b", "BOGUS") == Err("ERR syntax error")
    pair.check("SELECT", "1")
    assert pair.check("GET", "a") == b"2"
    pair.check("DEL", "a")
    pair.check("SELECT", "0")


def test_move(pair: Pair) -> None:
    pair.check("SET", "a", "1")
    pair.check("EXPIRE", "a", "100")
    assert pair.check("MOVE", "a", "0") == Err("ERR source and destination objects are the same")
    assert pair.check("MOVE", "a", "99") == Err("ERR DB index is out of range")
    assert pair.check("MOVE", "a", "x") == NOT_INTEGER
    assert pair.check("MOVE", "nope", "1") == 0
    assert pair.check("MOVE", "a", "1") == 1
    assert pair.check("EXISTS", "a") == 0
    pair.check("SET", "a", "2")
    assert pair.check("MOVE", "a", "1") == 0
    pair.check("SELECT", "1")
    assert pair.check("GET", "a") == b"1"
    assert pair.check("TTL", "a") == 100
    pair.check("DEL", "a")
    pair.check("SELECT", "0")


def test_keys_and_randomkey(pair: Pair) -> None:
    assert pair.check("RANDOMKEY") is None
    assert pair.check("KEYS", "*") == []
    for key in ("hello", "hallo", "hxllo", "hllo", "heeeello", "", "x*y"):
        pair.check("SET", key, "v")
    for pattern in ("*", "h?llo", "h*llo", "h[ae]llo", "h[^e]llo", "h[a-b]llo", "x\\*y", "**", ""):
        pair.check_sorted("KEYS", pattern)
    ours, real = pair.call("RANDOMKEY")
    assert ours in (b"hello", b"hallo", b"hxllo", b"hllo", b"heeeello", b"", b"x*y")
    assert real is not None
    assert isinstance(pair.check("KEYS"), Err)
    assert isinstance(pair.check("RANDOMKEY", "x"), Err)


def test_scan_full_iteration(pair: Pair, client: RespConn) -> None:
    for i in range(300):
        pair.check("SET", f"key:{i}", i)
    for i in range(20):
        pair.check("SET", f"other:{i}", i)
    assert sorted(_scan_all(pair.ours)) == sorted(_scan_all(pair.real))
    assert sorted(_scan_all(pair.ours, "MATCH", "other:*", "COUNT", "7")) == sorted(
        _scan_all(pair.real, "MATCH", "other:*", "COUNT", "7")
    )
    assert sorted(_scan_all(pair.ours, "TYPE", "string", "COUNT", "1000")) == sorted(
        _scan_all(pair.real, "TYPE", "string", "COUNT", "1000")
    )
    assert _scan_all(pair.ours, "TYPE", "hash") == []
    # No duplicates, and keys present throughout are returned while others come and go.
    seen: list[bytes] = []
    cursor = b"0"
    step = 0
    while True:
        cursor, items = client.call("SCAN", cursor, "COUNT", "13")
        seen += items
        client.call("SET", f"new:{step}", "x")
        client.call("DEL", f"key:{299 - step}")
        step += 1
        if cursor == b"0":
            break
    assert len(seen) == len(set(seen))
    assert {f"key:{i}".encode() for i in range(300 - step)} <= set(seen)
    assert not {f"key:{299 - i}".encode() for i in range(step - 1)} & set(seen[-13:])
    # Expired keys are not returned.
    client.call("PEXPIRE", "other:0", "1")
    time.sleep(0.01)
    assert b"other:0" not in _scan_all(client, "MATCH", "other:*")


def test_scan_with_a_stale_cursor_is_answered(client: RespConn) -> None:
    for i in range(50):
        client.call("SET", f"k{i}", i)
    for cursor in ("123456789", "18446744073709551615", "-1", str((5 << 40) | 3)):
        reply = client.call("SCAN", cursor)
        assert isinstance(reply, list)
        assert isinstance(reply[1], list)


def test_object_subcommands(pair: Pair) -> None:
    pair.check("SET", "int", "12345")
    pair.check("SET", "big", "123456789012345678901")
    pair.check("SET", "neg", "-5")
    pair.check("SET", "lead", "012")
    pair.check("SET", "emb", "x" * 44)
    pair.check("SET", "raw", "x" * 45)
    for key, encoding in (
        ("int", "int"),
        ("neg", "int"),
        ("big", "embstr"),
        ("lead", "embstr"),
        ("emb", "embstr"),
        ("raw", "raw"),
    ):
        assert pair.check("OBJECT", "ENCODING", key) == encoding.encode()
    pair.check("INCR", "int")
    assert pair.check("OBJECT", "ENCODING", "int") == b"int"
    assert pair.check("OBJECT", "ENCODING", "nope") is None
    assert pair.check("OBJECT", "REFCOUNT", "raw") == 1
    assert pair.check("OBJECT", "REFCOUNT", "nope") is None
    assert pair.check("OBJECT", "IDLETIME", "raw") == 0
    assert pair.check("OBJECT", "IDLETIME", "nope") is None
    # Neither server runs an LFU policy here.
    assert pair.check("OBJECT", "FREQ", "raw") == Err(
        "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note "
        "that when switching between policies at runtime LRU and LFU data will take some time "
        "to adjust."
    )
    assert isinstance(pair.check("OBJECT", "HELP"), list)
    assert pair.check("OBJECT", "BOGUS", "raw") == Err("ERR unknown subcommand 'BOGUS'. Try OBJECT HELP.")
    assert isinstance(pair.check("OBJECT"), Err)
    assert isinstance(pair.check("OBJECT", "ENCODING"), Err)
    assert isinstance(pair.check("OBJECT", "ENCODING", "a", "b"), Err)
    assert isinstance(pair.check("OBJECT", "HELP", "x"), Err)


def test_object_freq_and_idletime_under_lfu(server_factory: Any) -> None:
    running = server_factory(maxmemory_policy="allkeys-lfu")
    conn = RespConn(running.port)
    try:
        conn.call("SET", "k", "v")
        for _ in range(5):
            conn.call("GET", "k")
        freq = conn.call("OBJECT", "FREQ", "k")
        assert isinstance(freq, int)
        assert 0 <= freq <= 255
        assert conn.call("OBJECT", "IDLETIME", "k") == Err(
            "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that "
            "when switching between policies at runtime LRU and LFU data will take some time to "
            "adjust."
        )
    finally:
        conn.close()


# Corner cases compared in one sequence: option names compared as C strings (up to a NUL),
# repeated options, cursors and counts with NULs, integer-encoded values under GETRANGE,
# SETRANGE and INCRBYFLOAT, tiny float increments, duplicate keys in MSETNX.
CORNER_CASES = [
    ("SET", "k", "v", b"nx\x00x"),
    ("SET", "k", "v", b"EX\x00", "10"),
    ("EXPIRE", "k", "10", b"nx\x00x"),
    ("PEXPIREAT", "k", "-9223372036854775808"),
    ("SET", "k", "v"),
    ("EXPIREAT", "k", "-9223372036854775808"),
    ("SCAN", "0", "COUNT", b"10\x00"),
    ("SCAN", b"0\x00x"),
    ("OBJECT", "help"),
    ("OBJECT", "encoding", "k", "x"),
    ("object", "Bogus"),
    ("OBJECT", "HELP", "k"),
    ("COPY", "k", "z", "DB", "1", "DB", "0"),
    ("COPY", "k", "k", "DB", "1", "DB", "0"),
    ("SET", "n", "12345"),
    ("GETRANGE", "n", "1", "2"),
    ("SETRANGE", "n", "1", "x"),
    ("GET", "n"),
    ("INCRBYFLOAT", "n", "1"),
    ("SET", "f", "1.5"),
    ("INCR", "f"),
    ("INCRBYFLOAT", "f", "-1.5"),
    ("GET", "f"),
    ("SET", "g", "0"),
    ("INCRBYFLOAT", "g", "1e-17"),
    ("INCRBYFLOAT", "g", "5e-18"),
    ("INCRBYFLOAT", "g", "-2e-17"),
    ("SET", "k", "v", "GET", "GET"),
    ("SET", "k", "v", "KEEPTTL", "KEEPTTL"),
    ("GETEX", "k", "PERSIST", "PERSIST"),
    ("EXPIRE", "k", "10", "NX", "NX"),
    ("SCAN", "0", "MATCH", "a", "MATCH", "k*"),
    ("SCAN", "0", "TYPE", "string", "TYPE", "list"),
    ("RENAME", "k", "k2"),
    ("TYPE", "k2"),
    ("DEL", "k2", "n", "f", "g", "z"),
    ("RANDOMKEY",),
    ("MOVE", "k", "-1"),
    ("MOVE", "k", "16"),
    ("TOUCH", "a", "b"),
    ("GETRANGE", "nope", "-1", "-5"),
    ("APPEND", "a", ""),
    ("EXISTS", "a"),
    ("SETNX", "a", "x"),
    ("MSETNX", "a", "1", "a", "2"),
    ("MSET", "a", "1", "a", "2"),
    ("GET", "a"),
    ("MSETNX", "q", "1", "q", "2"),
    ("GET", "q"),
]


# OBJECT ENCODING after INCRBYFLOAT/APPEND/SETRANGE is left out: Redis reports the history
# (embstr, raw), ours the content (see docs/server.md).


def test_corner_cases_match_redis(pair: Pair) -> None:
    bad: list[tuple[object, ...]] = []
    for case in CORNER_CASES:
        ours, real = pair.call(*case)
        if ours != real:
            bad.append((case, ours, real))
    assert not bad, "\n".join(map(repr, bad))


class _Bag(RedisValue):
    """A collection value of ours with mutable members (no ``copy`` method)."""

    __slots__ = ("items",)
    type_name = "set"

    def __init__(self, items: list[bytes]) -> None:
        super().__init__()
        self.items = items
        self.nbytes = sum(len(item) for item in items)

    def encoding(self) -> str:
        return "listpack"

    def __len__(self) -> int:
        return len(self.items)


def test_copy_of_a_collection_is_independent(client: RespConn, ours: Any) -> None:
    db = ours.server.databases[0]
    ours.call(lambda: db.set("bag", _Bag([b"a", b"b"])))
    assert client.call("COPY", "bag", "bag2") == 1
    assert client.call("TYPE", "bag2") == "set"
    assert client.call("OBJECT", "ENCODING", "bag2") == b"listpack"
    original, copied = db.get("bag"), db.get("bag2")
    assert type(copied) is _Bag
    assert copied is not original
    assert copied.items == [b"a", b"b"]
    assert copied.items is not original.items
    assert copied.nbytes == original.nbytes
