"""Hash commands against a real redis-server, HINCRBYFLOAT's long double arithmetic digit
for digit, and the listpack/hashtable encodings."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from respclient import Err, Pair, RespConn

from stratacache.server.commands.hashes import HashValue, format_ld_human, parse_ld

WRONGTYPE = Err("WRONGTYPE Operation against a key holding the wrong kind of value")


def test_set_get_delete_match_redis(pair: Pair) -> None:
    assert pair.check("HSET", "h", "a", "1", "b", "2") == 2
    assert pair.check("HSET", "h", "a", "10", "c", "3") == 1
    assert pair.check("HMSET", "h", "d", "4") == "OK"
    assert pair.check("HSETNX", "h", "a", "x") == 0
    assert pair.check("HSETNX", "h", "e", "5") == 1
    assert pair.check("HSETNX", "new", "f", "v") == 1
    assert pair.check("HGET", "h", "a") == b"10"
    assert pair.check("HGET", "h", "zz") is None
    assert pair.check("HGET", "noh", "a") is None
    assert pair.check("HMGET", "h", "a", "zz", "e") == [b"10", None, b"5"]
    assert pair.check("HMGET", "noh", "a", "b") == [None, None]
    # Small hashes keep insertion order in both servers (listpack).
    pair.check("HGETALL", "h")
    pair.check("HKEYS", "h")
    pair.check("HVALS", "h")
    assert pair.check("HGETALL", "noh") == []
    assert pair.check("HKEYS", "noh") == []
    assert pair.check("HVALS", "noh") == []
    assert pair.check("HLEN", "h") == 5
    assert pair.check("HLEN", "noh") == 0
    assert pair.check("HEXISTS", "h", "a") == 1
    assert pair.check("HEXISTS", "h", "zz") == 0
    assert pair.check("HEXISTS", "noh", "a") == 0
    assert pair.check("HSTRLEN", "h", "a") == 2
    assert pair.check("HSTRLEN", "h", "zz") == 0
    assert pair.check("HSTRLEN", "noh", "a") == 0
    assert pair.check("HDEL", "h", "a", "zz", "b") == 2
    assert pair.check("HDEL", "noh", "a") == 0
    pair.check("HGETALL", "h")
    assert pair.check("HDEL", "h", "c", "d", "e") == 3
    assert pair.check("HLEN", "h") == 0  # the empty hash is gone
    pair.check("SET", "str", "x")
    for args in (
        ("HSET", "str", "a", "1"),
        ("HMSET", "str", "a", "1"),
        ("HSETNX", "str", "a", "1"),
        ("HGET", "str", "a"),
        ("HMGET", "str", "a"),
        ("HDEL", "str", "a"),
        ("HLEN", "str"),
        ("HEXISTS", "str", "a"),
        ("HGETALL", "str"),
        ("HKEYS", "str"),
        ("HVALS", "str"),
        ("HSTRLEN", "str", "a"),
        ("HINCRBY", "str", "a", "1"),
        ("HINCRBYFLOAT", "str", "a", "1"),
        ("HRANDFIELD", "str"),
        ("HRANDFIELD", "str", "2"),
    ):
        assert pair.check(*args) == WRONGTYPE, args
    for args in (
        ("HSET", "h"),
        ("HSET", "h", "a"),
        ("HSET", "h", "a", "b", "c"),
        ("HMSET", "h", "a", "b", "c"),
    ):
        assert isinstance(pair.check(*args), Err)


def test_hincrby_matches_redis(pair: Pair) -> None:
    assert pair.check("HINCRBY", "h", "n", "5") == 5
    assert pair.check("HINCRBY", "h", "n", "-7") == -2
    pair.check("HSET", "h", "max", "9223372036854775807", "min", "-9223372036854775808", "s", "x")
    pair.check("HSET", "h", "lead", "01", "sp", " 1")
    for args in (
        ("max", "1"),
        ("min", "-1"),
        ("max", "-1"),
        ("s", "1"),
        ("lead", "1"),
        ("sp", "1"),
        ("n", "x"),
        ("n", "1.5"),
        ("n", "01"),
        ("n", "+1"),
        ("n", "-0"),
        ("n", "9223372036854775808"),
        ("n", "-9223372036854775808"),
        ("n", "-1"),
    ):
        pair.check("HINCRBY", "h", *args)
    pair.check("HGETALL", "h")


def test_hincrbyfloat_matches_redis_digit_for_digit(pair: Pair) -> None:
    for field, steps in (
        ("e", ["0.1", "0.2", "0.3", "-0.6"]),
        ("g", ["1.5e10", "1e20", "-1e20"]),
        ("k", ["3.814697265625e-06", "3.814697265625e-06"]),  # a tie at the 18th decimal
        ("hex", ["0x10", "0x1p3", "0x.8", "-0x1P-2"]),
        ("forms", [".5", "5.", "+1.5", "-0.0", "1E2", "1e-20", "-1e-20"]),
        ("huge", ["1e4931", "1e4931", "-1e4931"]),
        ("tiny", ["1e-4940"]),
        ("third", ["3", "0.3333333333333333333", "-1e-17"]),
    ):
        for step in steps:
            pair.check("HINCRBYFLOAT", "h", field, step)
    for bad in ("x", "1_0", "1e", "0x1p", "-nan", "nan", "1e-5000", "1e5000", " 1", "1 ", "", "0x"):
        pair.check("HINCRBYFLOAT", "h", "e", bad)
    assert pair.check("HINCRBYFLOAT", "h", "e", "inf") == Err("ERR value is NaN or Infinity")
    assert pair.check("HINCRBYFLOAT", "h", "e", "-Infinity") == Err("ERR value is NaN or Infinity")
    pair.check("HSET", "h", "s", "abc", "i", "inf", "big", "1e4932", "over", "1e5000", "ws", " 2")
    for field in ("s", "i", "big", "over", "ws"):
        pair.check("HINCRBYFLOAT", "h", field, "1")
    assert pair.check("HINCRBYFLOAT", "h", "big", "1e4932") == Err(
        "ERR increment would produce NaN or Infinity"
    )
    # Long values made Redis's hash a hashtable (its order is its own): compare as maps.
    mine, theirs = pair.call("HGETALL", "h")
    assert dict(zip(mine[::2], mine[1::2], strict=True)) == dict(zip(theirs[::2], theirs[1::2], strict=True))


def test_long_double_helpers() -> None:
    tenth = parse_ld(b"0.1")
    assert isinstance(tenth, Fraction)
    assert tenth != Fraction(1, 10)  # the nearest long double, not the decimal
    assert abs(tenth - Fraction(1, 10)) < Fraction(1, 10**19)
    assert format_ld_human(parse_ld(b"1e-20")) == b"0"  # type: ignore[arg-type]
    assert format_ld_human(parse_ld(b"-1e-20")) == b"0"  # type: ignore[arg-type]
    assert format_ld_human(parse_ld(b"-2.5")) == b"-2.5"  # type: ignore[arg-type]
    assert parse_ld(b"1" + b"0" * 6000) is None  # longer than Redis reads
    assert parse_ld(b"1e999999999") is None  # overflow, found without computing 10**999999999


def test_hrandfield_shapes_and_errors_match_redis(pair: Pair) -> None:
    fields = {b"f%d" % i: b"v%d" % i for i in range(6)}
    pair.check("HSET", "h", *[x for kv in fields.items() for x in kv])
    assert pair.ours.call("HRANDFIELD", "h") in fields
    for count in ("0", "3", "6", "10", "-3", "-10"):
        mine, theirs = pair.call("HRANDFIELD", "h", count)
        assert len(mine) == len(theirs)
        assert set(mine) <= set(fields)
        mine, theirs = pair.call("HRANDFIELD", "h", count, "WITHVALUES")
        assert len(mine) == len(theirs)
        for field, value in zip(mine[::2], mine[1::2], strict=True):
            assert fields[field] == value
        if not count.startswith("-"):
            assert len(set(mine[::2])) == len(mine) // 2
    for args in (
        ("noh",),
        ("noh", "3"),
        ("noh", "-3", "WITHVALUES"),
        ("h", "x"),
        ("h", "x", "WITH"),
        ("h", "1", "WITH"),
        ("h", "1", "WITHVALUES", "x"),
        ("h", "-9223372036854775807", "WITHVALUES"),
        ("h", "-4611686018427387904", "WITHVALUES"),
    ):
        pair.check("HRANDFIELD", *args)


def test_encoding_and_nbytes(ours: Any, client: RespConn) -> None:
    db = ours.server.databases[0]
    client.call("HSET", "h", *[f"f{i}" for i in range(1024)])  # 512 fields
    value = db.get("h")
    assert isinstance(value, HashValue)
    assert value.encoding() == "listpack"
    base = value.nbytes
    client.call("HSET", "h", "f0", "x" * 64)
    assert value.encoding() == "listpack"
    client.call("HSET", "h", "f0", "f1")
    assert value.nbytes == base
    client.call("HINCRBYFLOAT", "h", "f0", "0.5")
    client.call("HINCRBY", "h", "new", "2")
    client.call("HDEL", "h", "new")
    client.call("HSET", "h", "f0", "f1")
    assert value.nbytes == base
    client.call("HSET", "h", "extra", "1")
    assert value.encoding() == "hashtable"
    client.call("HSET", "long", "a", "x" * 65)
    assert db.get("long").encoding() == "hashtable"


def _full_scan(conn: RespConn, *args: str) -> dict[bytes, bytes]:
    cursor = b"0"
    seen: dict[bytes, bytes] = {}
    for _ in range(10000):
        cursor, items = conn.call(args[0], args[1], cursor, *args[2:])
        for field, value in zip(items[::2], items[1::2], strict=True):
            assert field not in seen
            seen[field] = value
        if cursor == b"0":
            return seen
    raise AssertionError("the scan never ended")


def test_hscan_matches_redis(pair: Pair) -> None:
    pair.check("HSET", "small", "b", "1", "a", "2", "ab", "3")
    assert pair.check("HSCAN", "small", "0") == [b"0", [b"b", b"1", b"a", b"2", b"ab", b"3"]]
    assert pair.check("HSCAN", "small", "0", "MATCH", "a*", "COUNT", "1") == [b"0", [b"a", b"2", b"ab", b"3"]]
    assert pair.check("HSCAN", "noh", "0") == [b"0", []]
    pair.check("HSET", "big", *[f"{kind}{i}" for i in range(300) for kind in ("f", "v")])
    for options in ((), ("COUNT", "13"), ("MATCH", "f2?", "COUNT", "40")):
        assert _full_scan(pair.ours, "HSCAN", "big", *options) == _full_scan(
            pair.real, "HSCAN", "big", *options
        )
    pair.check("SET", "str", "x")
    for args in (
        ("str", "0"),
        ("small", "x"),
        ("small", "0", "COUNT", "0"),
        ("small", "0", "MATCH"),
        ("small", "0", "NOVALUES"),  # Redis 7.4's option; 7.0 and 7.2 refuse it
        ("noh", "x"),
    ):
        assert isinstance(pair.check("HSCAN", *args), Err), args


_HKEYS = ("h1", "h2", "hs")
_FIELDS = st.sampled_from(["a", "b", "c", "n", "f" * 70])
_VALUES = st.sampled_from(["1", "-2", "0.5", "x", "10", "1e3", "v" * 70])
_HKEY = st.sampled_from(_HKEYS)
_HASH_COMMANDS = st.one_of(
    st.tuples(
        st.sampled_from(["HSET", "HMSET"]),
        _HKEY,
        st.lists(st.tuples(_FIELDS, _VALUES), min_size=1, max_size=3),
    ),
    st.tuples(st.just("HSETNX"), _HKEY, _FIELDS, _VALUES),
    st.tuples(st.sampled_from(["HGET", "HEXISTS", "HSTRLEN"]), _HKEY, _FIELDS),
    st.tuples(st.sampled_from(["HMGET", "HDEL"]), _HKEY, st.lists(_FIELDS, min_size=1, max_size=3)),
    st.tuples(st.sampled_from(["HLEN", "HGETALL", "HKEYS", "HVALS"]), _HKEY),
    st.tuples(st.just("HINCRBY"), _HKEY, _FIELDS, st.sampled_from(["1", "-5", "x", "9223372036854775807"])),
    st.tuples(st.just("HINCRBYFLOAT"), _HKEY, _FIELDS, st.sampled_from(["0.1", "-2.5", "1e3", "x", "3"])),
)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(_HASH_COMMANDS, min_size=5, max_size=25))
def test_random_hash_command_sequences_match_redis(pair: Pair, sequence: list[Any]) -> None:
    pair.check("DEL", *_HKEYS)
    pair.check("SET", "hs", "string")
    pair.check("HSET", "h1", "a", "1", "b", "x", "n", "0.5")
    for command in sequence:
        args: list[str] = []
        for part in command:
            if isinstance(part, list):
                for item in part:
                    args.extend(item if isinstance(item, tuple) else [item])
            else:
                args.append(part)
        # A hash with a 70-byte field or value is a hashtable in Redis: its order is its own.
        if args[0] in ("HGETALL", "HKEYS", "HVALS"):
            pair.check_sorted(*args)
        else:
            pair.check(*args)
    for key in _HKEYS:
        if pair.check("TYPE", key) == "hash":
            pair.check_sorted("HGETALL", key)


def test_object_encoding_and_type_match_redis(pair: Pair) -> None:
    pair.check("HSET", "h", *[f"f{i}" for i in range(1024)])  # 512 fields
    assert pair.check("TYPE", "h") == "hash"
    assert pair.check("OBJECT", "ENCODING", "h") == b"listpack"
    pair.check("HSET", "h", "one", "more")
    assert pair.check("OBJECT", "ENCODING", "h") == b"hashtable"
    pair.check("HSET", "long", "f", "v" * 65)
    assert pair.check("OBJECT", "ENCODING", "long") == b"hashtable"
    pair.check("HINCRBYFLOAT", "inc", "f", "1e30")  # a 31-byte value: still small
    assert pair.check("OBJECT", "ENCODING", "inc") == b"listpack"


def test_resp3_reply_types_are_redis_7s(ours: Any) -> None:
    """HGETALL answers a map, HRANDFIELD WITHVALUES pairs, as a real Redis 7.0 in RESP3."""
    from stratacache.server.commands import COMMANDS
    from stratacache.server.connection import Client
    from stratacache.server.resp import encode

    server = ours.server
    replies: list[bytes] = []

    def run() -> None:
        fake = Client(server)
        fake.resp3 = True
        for args in (
            [b"HSET", b"h", b"a", b"1", b"b", b"2", b"c", b"3"],
            [b"HGETALL", b"nh"],
            [b"HGETALL", b"h"],
            [b"HRANDFIELD", b"h", b"-2", b"WITHVALUES"],
            [b"HRANDFIELD", b"h", b"2"],
            [b"HRANDFIELD", b"nh", b"2"],
        ):
            replies.append(encode(COMMANDS[args[0].lower()].handler(fake, args), True))

    ours.call(run)
    assert replies[1] == b"%0\r\n"
    assert replies[2] == b"%3\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$1\r\n3\r\n"
    assert replies[3].startswith(b"*2\r\n*2\r\n")
    assert replies[4].startswith(b"*2\r\n$1\r\n")
    assert replies[5] == b"*0\r\n"
