"""String commands against a real redis-server: success and error replies, text for text."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from respclient import Err, Pair, RespConn

from stratacache.server.keyspace import RedisValue

NOT_INTEGER = Err("ERR value is not an integer or out of range")
NOT_FLOAT = Err("ERR value is not a valid float")
SYNTAX = Err("ERR syntax error")
WRONGTYPE = Err("WRONGTYPE Operation against a key holding the wrong kind of value")


class _OtherType(RedisValue):
    """A value of another type on our side (lists are another module's; this keeps these
    tests independent of it): TYPE says list, and it is not a string."""

    __slots__ = ()
    type_name = "list"

    def encoding(self) -> str:
        return "listpack"

    def __len__(self) -> int:
        return 1


def _make_list(pair: Pair, ours: Any, key: str) -> None:
    """A one-element list at ``key`` on the real server, a non-string value on ours."""
    assert pair.real.call("RPUSH", key, "x") == 1
    db = ours.server.databases[0]
    ours.call(lambda: db.set(key, _OtherType()))
    assert pair.check("TYPE", key) == "list"


def test_get_set_basics(pair: Pair) -> None:
    assert pair.check("SET", "k", "v") == "OK"
    assert pair.check("GET", "k") == b"v"
    assert pair.check("SET", "k", "") == "OK"
    assert pair.check("GET", "k") == b""
    assert pair.check("SET", "k", b"\x00\xff\r\n") == "OK"
    assert pair.check("GET", "k") == b"\x00\xff\r\n"
    assert isinstance(pair.check("SET", "k"), Err)


def test_set_options(pair: Pair) -> None:
    assert pair.check("SET", "k", "v", "NX") == "OK"
    assert pair.check("SET", "k", "w", "NX") is None
    assert pair.check("SET", "k", "w", "XX") == "OK"
    assert pair.check("SET", "nope", "w", "XX") is None
    assert pair.check("GET", "nope") is None
    assert pair.check("SET", "k", "x", "GET") == b"w"
    assert pair.check("SET", "new", "x", "GET") is None
    assert pair.check("SET", "k", "y", "NX", "GET") == b"x"
    assert pair.check("GET", "k") == b"x"
    assert pair.check("SET", "k2", "y", "XX", "GET") is None
    assert pair.check("EXISTS", "k2") == 0
    assert pair.check("SET", "k", "v", "EX", "100") == "OK"
    assert pair.check("TTL", "k") == 100
    assert pair.check("SET", "k", "v2", "KEEPTTL") == "OK"
    assert pair.check("TTL", "k") == 100
    assert pair.check("SET", "k", "v3") == "OK"
    assert pair.check("TTL", "k") == -1
    assert pair.check("SET", "k", "v", "PX", "100000") == "OK"
    assert pair.check("TTL", "k") == 100
    at = int(time.time()) + 500
    assert pair.check("SET", "k", "v", "EXAT", at) == "OK"
    assert pair.check("EXPIRETIME", "k") == at
    assert pair.check("SET", "k", "v", "PXAT", at * 1000 + 7) == "OK"
    assert pair.check("PEXPIRETIME", "k") == at * 1000 + 7
    assert pair.check("SET", "k", "v", "ex", "10", "EX", "20") == "OK"  # the last one wins
    assert pair.check("TTL", "k") == 20
    # An absolute time in the past: OK, and the key is gone.
    assert pair.check("SET", "k", "v", "PXAT", "1") == "OK"
    assert pair.check("GET", "k") is None
    assert pair.check("SET", "k", "v", "EXAT", "1", "GET") is None


@pytest.mark.parametrize(
    "options",
    [
        ("NX", "XX"),
        ("XX", "NX"),
        ("EX", "10", "PX", "10"),
        ("PX", "10", "EX", "10"),
        ("EX", "10", "EXAT", "10"),
        ("PXAT", "10", "EXAT", "10"),
        ("EX", "10", "KEEPTTL"),
        ("KEEPTTL", "PX", "10"),
        ("EX",),
        ("PERSIST",),
        ("BOGUS",),
        ("NXX",),
        ("GETT",),
        ("KEEPTTL", "EX"),
    ],
)
def test_set_syntax_errors(pair: Pair, options: tuple[str, ...]) -> None:
    pair.check("SET", "k", "old")
    assert pair.check("SET", "k", "v", *options) == SYNTAX
    assert pair.check("GET", "k") == b"old"


@pytest.mark.parametrize("unit", ["EX", "PX", "EXAT", "PXAT"])
def test_set_expire_errors(pair: Pair, unit: str) -> None:
    for value in ("0", "-1", "9223372036854775807", "9223372036854775", "9223372036854776"):
        pair.check("SET", "k", "v", unit, value)
        pair.check("DEL", "k")
    for value in ("x", "1.5", "", " 1", "9223372036854775808"):
        assert pair.check("SET", "k", "v", unit, value) == NOT_INTEGER
    assert pair.check("SET", "k", "v", unit, "0") == Err("ERR invalid expire time in 'set' command")


def test_set_get_on_another_type_is_wrongtype(pair: Pair, ours: Any) -> None:
    _make_list(pair, ours, "l")
    assert pair.check("SET", "l", "v", "GET") == WRONGTYPE
    # The expire time is checked before the type.
    assert pair.check("SET", "l", "v", "GET", "EX", "0") == Err("ERR invalid expire time in 'set' command")
    assert pair.check("SET", "l", "v") == "OK"  # SET itself replaces any type
    assert pair.check("GET", "l") == b"v"


def test_wrongtype_replies(pair: Pair, ours: Any) -> None:
    _make_list(pair, ours, "l")
    for args in (
        ("GET", "l"),
        ("GETSET", "l", "v"),
        ("GETDEL", "l"),
        ("GETEX", "l"),
        ("APPEND", "l", "v"),
        ("STRLEN", "l"),
        ("GETRANGE", "l", "0", "1"),
        ("SETRANGE", "l", "0", "v"),
        ("INCR", "l"),
        ("DECRBY", "l", "2"),
        ("INCRBYFLOAT", "l", "1.5"),
    ):
        assert pair.check(*args) == WRONGTYPE
    assert pair.check("MGET", "l", "nope") == [None, None]
    assert pair.check("SETRANGE", "l", "0", "") == WRONGTYPE


def test_getset_getdel_getex(pair: Pair) -> None:
    assert pair.check("GETSET", "k", "1") is None
    pair.check("EXPIRE", "k", "100")
    assert pair.check("GETSET", "k", "2") == b"1"
    assert pair.check("TTL", "k") == -1
    assert pair.check("GETDEL", "k") == b"2"
    assert pair.check("GETDEL", "k") is None
    pair.check("SET", "k", "v")
    assert pair.check("GETEX", "k") == b"v"
    assert pair.check("GETEX", "k", "EX", "100") == b"v"
    assert pair.check("TTL", "k") == 100
    assert pair.check("GETEX", "k", "PX", "200000") == b"v"
    assert pair.check("TTL", "k") == 200
    at = int(time.time()) + 300
    assert pair.check("GETEX", "k", "EXAT", at) == b"v"
    assert pair.check("EXPIRETIME", "k") == at
    assert pair.check("GETEX", "k", "PXAT", at * 1000 + 1) == b"v"
    assert pair.check("PEXPIRETIME", "k") == at * 1000 + 1
    assert pair.check("GETEX", "k", "PERSIST") == b"v"
    assert pair.check("TTL", "k") == -1
    assert pair.check("GETEX", "k", "PXAT", "1") == b"v"
    assert pair.check("EXISTS", "k") == 0
    pair.check("SET", "k", "v")
    for options in (
        ("EX",),
        ("PERSIST", "EX", "10"),
        ("EX", "10", "PERSIST"),
        ("KEEPTTL",),
        ("NX",),
        ("GET",),
        ("EX", "1", "PX", "1"),
    ):
        assert pair.check("GETEX", "k", *options) == SYNTAX
    for value in ("0", "-5", "x", "9223372036854775807"):
        pair.check("GETEX", "k", "EX", value)
    # A missing key answers nil before the time is checked.
    assert pair.check("GETEX", "nope", "EX", "x") is None
    assert pair.check("GETEX", "nope", "EX", "0") is None
    assert pair.check("GETEX", "nope", "BOGUS") == SYNTAX
    assert pair.check("GETEX", "k", "EX", "0") == Err("ERR invalid expire time in 'getex' command")


def test_mget_mset_msetnx_setnx(pair: Pair) -> None:
    assert pair.check("MSET", "a", "1", "b", "2") == "OK"
    assert pair.check("MGET", "a", "nope", "b") == [b"1", None, b"2"]
    assert pair.check("MSET", "a", "1", "b") == Err("ERR wrong number of arguments for 'mset' command")
    assert pair.check("MSETNX", "a", "1", "b") == Err("ERR wrong number of arguments for 'msetnx' command")
    assert isinstance(pair.check("MSET", "a"), Err)
    assert isinstance(pair.check("MGET"), Err)
    assert pair.check("MSETNX", "c", "3", "a", "x") == 0
    assert pair.check("EXISTS", "c") == 0
    assert pair.check("MSETNX", "c", "3", "d", "4") == 1
    assert pair.check("MGET", "c", "d") == [b"3", b"4"]
    assert pair.check("SETNX", "c", "x") == 0
    assert pair.check("SETNX", "e", "x") == 1
    pair.check("EXPIRE", "a", "100")
    pair.check("MSET", "a", "5")
    assert pair.check("TTL", "a") == -1


def test_setex_psetex(pair: Pair) -> None:
    assert pair.check("SETEX", "k", "100", "v") == "OK"
    assert pair.check("TTL", "k") == 100
    assert pair.check("PSETEX", "k", "100000", "v") == "OK"
    assert pair.check("TTL", "k") == 100
    assert pair.check("SETEX", "k", "0", "v") == Err("ERR invalid expire time in 'setex' command")
    assert pair.check("PSETEX", "k", "-1", "v") == Err("ERR invalid expire time in 'psetex' command")
    assert pair.check("SETEX", "k", "x", "v") == NOT_INTEGER
    for value in ("9223372036854775807", "9223372036854775", "9223372036854776"):
        pair.check("SETEX", "k", value, "v")
        pair.check("PSETEX", "k", value, "v")
    assert isinstance(pair.check("SETEX", "k", "10"), Err)


def test_append_strlen_getrange_setrange(pair: Pair) -> None:
    assert pair.check("APPEND", "k", "hello") == 5
    pair.check("EXPIRE", "k", "100")
    assert pair.check("APPEND", "k", " world") == 11
    assert pair.check("TTL", "k") == 100
    assert pair.check("STRLEN", "k") == 11
    assert pair.check("STRLEN", "nope") == 0
    for start, end in (
        (0, 4),
        (-5, -1),
        (0, -1),
        (5, 2),
        (-1, -5),
        (-100, 100),
        (20, 30),
        (0, 0),
        (-3, 2),
        (-9223372036854775808, 9223372036854775807),
    ):
        pair.check("GETRANGE", "k", start, end)
    assert pair.check("GETRANGE", "nope", "0", "-1") == b""
    assert pair.check("GETRANGE", "k", "x", "1") == NOT_INTEGER
    assert pair.check("GETRANGE", "nope", "0", "1.5") == NOT_INTEGER
    assert pair.check("SETRANGE", "k", "6", "WORLD") == 11
    assert pair.check("GET", "k") == b"hello WORLD"
    assert pair.check("SETRANGE", "k", "15", "!") == 16
    assert pair.check("GET", "k") == b"hello WORLD\x00\x00\x00\x00!"
    assert pair.check("TTL", "k") == 100
    assert pair.check("SETRANGE", "k", "0", "") == 16
    assert pair.check("SETRANGE", "new", "3", "ab") == 5
    assert pair.check("GET", "new") == b"\x00\x00\x00ab"
    assert pair.check("SETRANGE", "empty", "5", "") == 0
    assert pair.check("EXISTS", "empty") == 0
    assert pair.check("SETRANGE", "k", "-1", "x") == Err("ERR offset is out of range")
    assert pair.check("SETRANGE", "k", "x", "x") == NOT_INTEGER
    too_big = Err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    assert pair.check("SETRANGE", "k", 512 * 1024 * 1024, "x") == too_big
    assert pair.check("SETRANGE", "nope", 512 * 1024 * 1024 - 1, "xy") == too_big
    assert pair.check("SETRANGE", "nope", "9223372036854775807", "x") == too_big
    assert pair.check("EXISTS", "nope") == 0


def test_append_past_the_limit(server_factory: Any) -> None:
    # Redis's limit is proto-max-bulk-len (512mb by default); a small one tests the same path.
    running = server_factory(proto_max_bulk_len="1mb")
    conn = RespConn(running.port)
    try:
        assert conn.call("SET", "k", b"x" * 1000) == "OK"
        assert conn.call("APPEND", "k", b"y" * (1024 * 1024 - 1000)) == 1024 * 1024
        assert conn.call("APPEND", "k", "z") == Err(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
        )
        assert conn.call("STRLEN", "k") == 1024 * 1024
    finally:
        conn.close()


def test_incr_family(pair: Pair) -> None:
    assert pair.check("INCR", "n") == 1
    assert pair.check("INCRBY", "n", "41") == 42
    assert pair.check("DECR", "n") == 41
    assert pair.check("DECRBY", "n", "-9") == 50
    assert pair.check("INCRBY", "n", "-100") == -50
    pair.check("EXPIRE", "n", "100")
    assert pair.check("INCR", "n") == -49
    assert pair.check("TTL", "n") == 100
    for value in ("x", "1.5", " 1", "01", "+1", "-0", "", "9223372036854775808", "1e3"):
        pair.check("SET", "bad", value)
        assert pair.check("INCR", "bad") == NOT_INTEGER
        assert pair.check("INCRBY", "n", value) == NOT_INTEGER
    pair.check("SET", "max", "9223372036854775807")
    assert pair.check("INCR", "max") == Err("ERR increment or decrement would overflow")
    assert pair.check("DECRBY", "max", "-1") == Err("ERR increment or decrement would overflow")
    pair.check("SET", "min", "-9223372036854775808")
    assert pair.check("DECR", "min") == Err("ERR increment or decrement would overflow")
    assert pair.check("INCRBY", "min", "9223372036854775807") == -1
    pair.check("DECRBY", "n", "-9223372036854775808")
    pair.check("DECRBY", "nope", "-9223372036854775808")
    assert pair.check("INCRBY", "m", "-9223372036854775808") == -9223372036854775808


@pytest.mark.parametrize(
    ("start", "increments"),
    [
        (None, ["10.5"]),
        ("10.50", ["0.1"]),
        ("5.0e3", ["2.0e2"]),
        ("3", ["0"]),
        (None, ["1e20"]),
        (None, ["0.1", "0.2"]),
        (None, ["-1.5", "1.5"]),
        (None, ["1e-20"]),
        (None, ["-1e-20"]),
        ("1.1", ["2.2", "3.3", "-6.6"]),
        (None, ["123456789012345678901234567890"]),
        (None, ["0x1p3"]),
        (None, ["0X.8P1"]),
        (None, [".5", "1.", "+3", "-0"]),
        (None, ["1.7976931348623157e308", "1e308"]),
        (None, ["1e4000"]),
        (None, ["3.3e-4940"]),
        (None, ["1e-5000"]),
        (None, ["0e99999999999999999999"]),
        (None, ["1e5000"]),
        (None, ["inf"]),
        (None, ["-Infinity"]),
        (None, ["nan"]),
        (None, ["1e"]),
        (None, [" 1"]),
        (None, ["1 "]),
        (None, ["0x"]),
        (None, [""]),
        (None, ["1,5"]),
        ("abc", ["1"]),
        ("inf", ["1"]),
        ("1e4932", ["1e4932"]),
        ("9223372036854775807", ["1"]),
    ],
)
def test_incrbyfloat_matches_redis(pair: Pair, start: str | None, increments: list[str]) -> None:
    if start is not None:
        pair.check("SET", "f", start)
    for increment in increments:
        pair.check("INCRBYFLOAT", "f", increment)
        pair.check("GET", "f")


def test_incrbyfloat_keeps_ttl_and_checks_arity(pair: Pair) -> None:
    pair.check("SET", "f", "1")
    pair.check("EXPIRE", "f", "100")
    assert pair.check("INCRBYFLOAT", "f", "0.5") == b"1.5"
    assert pair.check("TTL", "f") == 100
    assert isinstance(pair.check("INCRBYFLOAT", "f"), Err)
    assert pair.check("INCRBYFLOAT", "f", "x") == NOT_FLOAT


def test_keyspace_hits_and_misses_are_counted(client: RespConn, ours: Any) -> None:
    server = ours.server
    hits, misses = server.keyspace_hits, server.keyspace_misses
    client.call("SET", "k", "v")
    client.call("GET", "k")
    client.call("GET", "nope")
    client.call("MGET", "k", "nope", "k")
    assert server.keyspace_hits - hits == 3
    assert server.keyspace_misses - misses == 2


# ------------------------------------------- random command sequences, ours vs Redis

_KEYS = ["k0", "k1", "k2"]
_VALUES = ["", "0", "1", "-1", "10", "abc", "3.5", "9223372036854775807", "x" * 50, "1e3"]
_INTS = ["-5", "-1", "0", "1", "2", "5", "100", "x", "9223372036854775807"]
_FLOATS = ["0.5", "-1.5", "1e3", "abc", "0.1", "-0.1"]
_AT = ["4102444800", "4102444900", "4102445000"]  # absolute times: no clock in the replies

keys_ = st.sampled_from(_KEYS)
values = st.sampled_from(_VALUES)
ints = st.sampled_from(_INTS)


def _set_command(key: str, value: str, options: list[list[str]]) -> list[str]:
    return ["SET", key, value] + [word for option in options for word in option]


commands = st.one_of(
    st.builds(
        _set_command,
        keys_,
        values,
        st.lists(
            st.sampled_from([["NX"], ["XX"], ["GET"], ["KEEPTTL"], ["EX", "100"], ["PX", "100000"]]),
            max_size=2,
        ),
    ),
    st.tuples(st.sampled_from(["GET", "GETDEL", "STRLEN", "INCR", "DECR", "TYPE", "TTL", "PERSIST"]), keys_),
    # EXPIRETIME/PEXPIRETIME would show the clock after a relative expiry: tested on their own.
    st.tuples(st.just("TOUCH"), keys_),
    st.tuples(st.sampled_from(["GETSET", "SETNX", "APPEND"]), keys_, values),
    st.tuples(st.sampled_from(["INCRBY", "DECRBY"]), keys_, ints),
    st.tuples(st.just("INCRBYFLOAT"), keys_, st.sampled_from(_FLOATS)),
    st.tuples(st.just("GETRANGE"), keys_, ints, ints),
    st.tuples(st.just("SETRANGE"), keys_, st.sampled_from(["0", "1", "3", "-1"]), values),
    st.tuples(st.just("SETEX"), keys_, st.sampled_from(["100", "0", "x"]), values),
    st.tuples(st.just("GETEX"), keys_, st.sampled_from([[], ["EX", "100"], ["PERSIST"], ["PXAT", "1"]])),
    st.tuples(st.just("EXPIRE"), keys_, st.sampled_from(["100", "-1", "x"])),
    st.tuples(st.just("PEXPIRE"), keys_, st.sampled_from(["200000", "0"])),
    st.tuples(
        st.just("EXPIREAT"),
        keys_,
        st.sampled_from(_AT),
        st.sampled_from([[], ["NX"], ["XX"], ["GT"], ["LT"], ["NX", "GT"]]),
    ),
    st.tuples(st.sampled_from(["MGET", "DEL", "EXISTS", "UNLINK"]), st.lists(keys_, min_size=1, max_size=3)),
    st.tuples(
        st.sampled_from(["MSET", "MSETNX"]), st.lists(st.tuples(keys_, values), min_size=1, max_size=2)
    ),
    st.tuples(st.sampled_from(["RENAME", "RENAMENX", "COPY"]), keys_, keys_),
    st.tuples(
        st.just("COPY"), keys_, keys_, st.sampled_from([["REPLACE"], ["DB", "1"], ["DB", "1", "REPLACE"]])
    ),
    st.tuples(st.just("MOVE"), keys_, st.sampled_from(["0", "1"])),
    st.tuples(st.just("KEYS"), st.sampled_from(["*", "k[01]", "k?", "x*"])),
)


def _flatten(command: Any) -> list[str]:
    out: list[str] = []
    for part in command if isinstance(command, (list, tuple)) else [command]:
        if isinstance(part, (list, tuple)):
            out += _flatten(part)
        else:
            out.append(part)
    return out


def _check_ttl(pair: Pair, key: str) -> None:
    """TTL on both; seconds left may differ by one when the two calls straddle a rounding
    boundary (the servers are asked a fraction of a millisecond apart)."""
    ours, real = pair.call("TTL", key)
    if isinstance(ours, int) and isinstance(real, int) and ours >= 0 and real >= 0:
        assert abs(ours - real) <= 1, (key, ours, real)
    else:
        assert ours == real, (key, ours, real)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(st.one_of(st.none(), values), min_size=3, max_size=3),
    st.lists(st.sampled_from(_AT), min_size=3, max_size=3),
    st.lists(commands, min_size=5, max_size=25),
)
def test_random_command_sequences_match_redis(
    pair: Pair, initial: list[str | None], deadlines: list[str], sequence: list[Any]
) -> None:
    for db in ("1", "0"):
        pair.check("SELECT", db)
        pair.check("DEL", *_KEYS)
    # A starting state where most keys exist, some with an expiry, so commands meet values.
    for key, value, at in zip(_KEYS, initial, deadlines, strict=True):
        if value is not None:
            pair.check("SET", key, value)
            if value.startswith("1"):
                pair.check("EXPIREAT", key, at)
    for command in sequence:
        args = _flatten(command)
        if args[0] == "KEYS":
            pair.check_sorted(*args)
        elif args[0] == "TTL":
            _check_ttl(pair, args[1])
        else:
            pair.check(*args)
    for key in _KEYS:
        if pair.check("TYPE", key) == "string":
            pair.check("GET", key)
        _check_ttl(pair, key)
    pair.check("SELECT", "1")
    pair.check_sorted("KEYS", "*")
    pair.check("SELECT", "0")
