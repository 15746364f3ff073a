"""List commands against a real redis-server: success and error replies, reply shapes
(nil vs null array vs empty array) and the listpack/quicklist encodings."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from respclient import Err, Pair, RespConn

from stratacache.server.commands.lists import LIST_MAX_LISTPACK_SIZE, ListValue

WRONGTYPE = Err("WRONGTYPE Operation against a key holding the wrong kind of value")


def _raw(conn: RespConn, *args: Any) -> bytes:
    """The raw reply line (to tell ``$-1`` from ``*-1``)."""
    conn.send(*args)
    return conn.rfile.readline()


def test_push_pop_and_lengths_match_redis(pair: Pair) -> None:
    assert pair.check("LPUSH", "l", "a", "b", "c") == 3
    assert pair.check("RPUSH", "l", "x", "y") == 5
    assert pair.check("LRANGE", "l", "0", "-1") == [b"c", b"b", b"a", b"x", b"y"]
    assert pair.check("LPUSHX", "nol", "a") == 0
    assert pair.check("RPUSHX", "nol", "a", "b") == 0
    assert pair.check("LPUSHX", "l", "z") == 6
    assert pair.check("RPUSHX", "l", "w") == 7
    assert pair.check("LLEN", "l") == 7
    assert pair.check("LLEN", "nol") == 0
    assert pair.check("LPOP", "l") == b"z"
    assert pair.check("RPOP", "l") == b"w"
    assert pair.check("LPOP", "l", "2") == [b"c", b"b"]
    assert pair.check("RPOP", "l", "10") == [b"y", b"x", b"a"]
    assert pair.check("LPOP", "l") is None
    assert pair.check("RPOP", "nol") is None
    pair.check("SET", "str", "x")
    for cmd in ("LPUSH", "RPUSH", "LPUSHX", "RPUSHX"):
        assert pair.check(cmd, "str", "a") == WRONGTYPE
    for args in (("LPOP", "str"), ("RPOP", "str", "0"), ("LLEN", "str")):
        assert pair.check(*args) == WRONGTYPE
    assert isinstance(pair.check("LPUSH", "l"), Err)
    assert isinstance(pair.check("LPOP", "l", "1", "2"), Err)
    assert pair.check("LPOP", "l", "-1") == Err("ERR value is out of range, must be positive")
    assert pair.check("LPOP", "l", "x") == Err("ERR value is out of range, must be positive")


def test_pop_with_count_tells_null_array_from_empty_array(pair: Pair) -> None:
    pair.check("RPUSH", "l", "a")
    for args in (
        ("LPOP", "nol", "0"),  # *-1: missing key, even with count 0
        ("LPOP", "nol", "2"),  # *-1
        ("RPOP", "nol"),  # $-1
        ("LPOP", "l", "0"),  # *0: the key exists
        ("LMPOP", "1", "nol", "LEFT"),  # *-1
    ):
        assert _raw(pair.ours, *args) == _raw(pair.real, *args), args


def test_lrange_lindex_lset_linsert_match_redis(pair: Pair) -> None:
    pair.check("RPUSH", "l", *"abcdefg")
    for start, stop in ((0, -1), (2, 4), (-3, -1), (-100, 100), (5, 2), (7, 10), (-1, -2), (0, 0)):
        pair.check("LRANGE", "l", str(start), str(stop))
    for index in (0, 3, 6, 7, -1, -7, -8, 100):
        pair.check("LINDEX", "l", str(index))
    assert pair.check("LINDEX", "l", "x") == Err("ERR value is not an integer or out of range")
    assert pair.check("LINDEX", "nol", "x") is None
    assert pair.check("LRANGE", "l", "x", "1") == Err("ERR value is not an integer or out of range")
    assert pair.check("LRANGE", "nol", "0", "01") == Err("ERR value is not an integer or out of range")
    assert pair.check("LRANGE", "nol", "0", "-1") == []
    assert pair.check("LSET", "l", "1", "B") == "OK"
    assert pair.check("LSET", "l", "-1", "G") == "OK"
    assert pair.check("LSET", "l", "7", "x") == Err("ERR index out of range")
    assert pair.check("LSET", "l", "-8", "x") == Err("ERR index out of range")
    assert pair.check("LSET", "l", "x", "x") == Err("ERR value is not an integer or out of range")
    assert pair.check("LSET", "nol", "0", "x") == Err("ERR no such key")
    assert pair.check("LINSERT", "l", "BEFORE", "c", "c0") == 8
    assert pair.check("LINSERT", "l", "after", "G", "end") == 9
    assert pair.check("LINSERT", "l", "AFTER", "zz", "x") == -1
    assert pair.check("LINSERT", "nol", "AFTER", "a", "x") == 0
    assert pair.check("LINSERT", "l", "MIDDLE", "a", "x") == Err("ERR syntax error")
    pair.check("LRANGE", "l", "0", "-1")
    pair.check("SET", "str", "x")
    assert pair.check("LSET", "str", "x", "a") == WRONGTYPE
    assert pair.check("LINSERT", "str", "BEFORE", "a", "b") == WRONGTYPE
    assert pair.check("LRANGE", "str", "0", "1") == WRONGTYPE
    assert pair.check("LINDEX", "str", "0") == WRONGTYPE


def test_lrem_ltrim_match_redis(pair: Pair) -> None:
    for count in ("2", "-2", "0", "-10", "10"):
        pair.check("RPUSH", "l", *"abacabaa")
        pair.check("LREM", "l", count, "a")
        pair.check("LRANGE", "l", "0", "-1")
        pair.check("LTRIM", "l", "1", "0")  # empties and deletes it
        assert pair.check("LLEN", "l") == 0
    assert pair.check("LREM", "nol", "0", "a") == 0
    assert pair.check("LREM", "l", "x", "a") == Err("ERR value is not an integer or out of range")
    for start, stop in ((1, -2), (0, 0), (-2, -1), (3, 100), (-100, 2)):
        pair.check("RPUSH", "t", *"abcdefg")
        assert pair.check("LTRIM", "t", str(start), str(stop)) == "OK"
        pair.check("LRANGE", "t", "0", "-1")
        pair.check("LTRIM", "t", "1", "0")
    assert pair.check("LTRIM", "nol", "0", "1") == "OK"
    assert pair.check("LTRIM", "t", "x", "1") == Err("ERR value is not an integer or out of range")
    pair.check("SET", "str", "x")
    assert pair.check("LREM", "str", "0", "a") == WRONGTYPE
    assert pair.check("LTRIM", "str", "0", "1") == WRONGTYPE


def test_lpos_options_and_errors_match_redis(pair: Pair) -> None:
    pair.check("RPUSH", "l", *"abcabcabc")
    for options in (
        (),
        ("RANK", "2"),
        ("RANK", "-1"),
        ("RANK", "-3"),
        ("RANK", "4"),
        ("COUNT", "0"),
        ("COUNT", "2"),
        ("COUNT", "2", "RANK", "-1"),
        ("COUNT", "0", "RANK", "2"),
        ("MAXLEN", "1"),
        ("MAXLEN", "4", "COUNT", "0"),
        ("RANK", "-1", "MAXLEN", "3", "COUNT", "0"),
        ("COUNT", "1", "COUNT", "0"),
    ):
        pair.check("LPOS", "l", "a", *options)
        pair.check("LPOS", "l", "z", *options)
    assert pair.check("LPOS", "nol", "a") is None
    assert pair.check("LPOS", "nol", "a", "COUNT", "0") == []
    for options in (
        ("RANK", "0"),
        ("RANK", "x"),
        ("COUNT", "-1"),
        ("COUNT", "x"),
        ("MAXLEN", "-1"),
        ("MAXLEN", "x"),
        ("RANK",),
        ("FOO", "1"),
    ):
        assert isinstance(pair.check("LPOS", "l", "a", *options), Err)
        assert isinstance(pair.check("LPOS", "nol", "a", *options), Err)
    pair.check("SET", "str", "x")
    assert pair.check("LPOS", "str", "a") == WRONGTYPE


def test_lmove_rpoplpush_lmpop_match_redis(pair: Pair) -> None:
    pair.check("RPUSH", "src", "a", "b", "c", "d", "e", "f")
    for wherefrom in ("LEFT", "RIGHT"):
        for whereto in ("LEFT", "RIGHT"):
            pair.check("LMOVE", "src", "dst", wherefrom, whereto)
    pair.check("LRANGE", "src", "0", "-1")
    pair.check("LRANGE", "dst", "0", "-1")
    assert pair.check("LMOVE", "dst", "dst", "LEFT", "RIGHT") is not None  # rotation
    pair.check("LRANGE", "dst", "0", "-1")
    assert pair.check("RPOPLPUSH", "dst", "other") is not None
    assert pair.check("RPOPLPUSH", "nol", "other") is None
    assert pair.check("LMOVE", "nol", "other", "LEFT", "LEFT") is None
    assert pair.check("LMOVE", "src", "dst", "UP", "LEFT") == Err("ERR syntax error")
    pair.check("SET", "str", "x")
    assert pair.check("LMOVE", "src", "str", "LEFT", "LEFT") == WRONGTYPE
    assert pair.check("LMOVE", "nol", "str", "LEFT", "LEFT") is None  # source checked first
    assert pair.check("LMOVE", "str", "dst", "LEFT", "LEFT") == WRONGTYPE
    assert pair.check("RPOPLPUSH", "str", "dst") == WRONGTYPE
    pair.check("LRANGE", "src", "0", "-1")
    # A one-element list moved onto itself stays.
    pair.check("RPUSH", "one", "x")
    assert pair.check("LMOVE", "one", "one", "LEFT", "RIGHT") == b"x"
    assert pair.check("LLEN", "one") == 1

    pair.check("RPUSH", "m2", "1", "2", "3")
    assert pair.check("LMPOP", "2", "nol", "m2", "LEFT") == [b"m2", [b"1"]]
    assert pair.check("LMPOP", "2", "nol", "m2", "RIGHT", "COUNT", "5") == [b"m2", [b"3", b"2"]]
    assert pair.check("LMPOP", "2", "nol", "m2", "LEFT") is None
    assert pair.check("LMPOP", "2", "str", "m2", "LEFT") == WRONGTYPE
    for args in (
        ("0", "a", "LEFT"),
        ("x", "a", "LEFT"),
        ("-1", "a", "LEFT"),
        ("2", "a", "LEFT"),
        ("1", "a", "MIDDLE"),
        ("1", "a", "LEFT", "COUNT", "0"),
        ("1", "a", "LEFT", "COUNT", "x"),
        ("1", "a", "LEFT", "COUNT", "1", "COUNT", "1"),
        ("1", "a", "LEFT", "FOO"),
        ("1", "a", "LEFT", "COUNT"),
        ("1",),
    ):
        assert isinstance(pair.check("LMPOP", *args), Err), args


def test_encoding_follows_redis_72_listpack_size(ours: Any, client: RespConn) -> None:
    """Redis 7.0 (the reference server here) always says quicklist; 7.2, which we follow,
    keeps small lists in one listpack of at most 8 KB and converts back at half that."""
    db = ours.server.databases[0]
    client.call("RPUSH", "l", *["x" * 50] * 10)
    value = db.get("l")
    assert isinstance(value, ListValue)
    assert value.encoding() == "listpack"
    client.call("RPUSH", "l", *["x" * 50] * 200)
    assert value.encoding() == "quicklist"
    assert value.lpbytes > LIST_MAX_LISTPACK_SIZE
    client.call("LTRIM", "l", "0", "99")  # ~5 KB: still over half the limit
    assert value.encoding() == "quicklist"
    client.call("LTRIM", "l", "0", "9")
    assert value.encoding() == "listpack"
    # One big element is a quicklist at once.
    client.call("RPUSH", "big", "y" * 10000)
    assert db.get("big").encoding() == "quicklist"


def test_nbytes_tracks_every_change(ours: Any, client: RespConn) -> None:
    db = ours.server.databases[0]
    client.call("RPUSH", "l", "aaa", "bb", "c")
    value = db.get("l")
    base = value.nbytes
    client.call("LSET", "l", "0", "a" * 103)
    assert value.nbytes == base + 100
    client.call("LINSERT", "l", "BEFORE", "bb", "x" * 10)
    client.call("LREM", "l", "0", "x" * 10)
    client.call("RPUSH", "l", "z" * 20)
    client.call("RPOP", "l")
    assert value.nbytes == base + 100
    client.call("LMOVE", "l", "l2", "LEFT", "LEFT")
    assert value.nbytes + db.get("l2").nbytes == base + 100
    lp = value.lpbytes
    client.call("RPUSH", "l", "12", "-5000", "123456789012")
    client.call("RPOP", "l", "3")
    assert value.lpbytes == lp


_LKEYS = ("l1", "l2", "ls")
_ITEMS = st.sampled_from(["a", "b", "c", "1", "-2", "a" * 70])
_INDEX = st.sampled_from(["0", "1", "-1", "2", "-3", "5", "x"])
_LKEY = st.sampled_from(_LKEYS)
_SIDE = st.sampled_from(["LEFT", "RIGHT"])
_LIST_COMMANDS = st.one_of(
    st.tuples(
        st.sampled_from(["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"]),
        _LKEY,
        st.lists(_ITEMS, min_size=1, max_size=4),
    ),
    st.tuples(st.sampled_from(["LPOP", "RPOP"]), _LKEY, st.sampled_from([[], ["0"], ["2"], ["-1"]])),
    st.tuples(st.just("LRANGE"), _LKEY, _INDEX, _INDEX),
    st.tuples(st.just("LINDEX"), _LKEY, _INDEX),
    st.tuples(st.just("LSET"), _LKEY, _INDEX, _ITEMS),
    st.tuples(st.just("LINSERT"), _LKEY, st.sampled_from(["BEFORE", "AFTER", "X"]), _ITEMS, _ITEMS),
    st.tuples(st.just("LREM"), _LKEY, _INDEX, _ITEMS),
    st.tuples(st.just("LTRIM"), _LKEY, _INDEX, _INDEX),
    st.tuples(
        st.just("LPOS"),
        _LKEY,
        _ITEMS,
        st.sampled_from([[], ["RANK", "-1"], ["COUNT", "0"], ["RANK", "2", "COUNT", "2"], ["MAXLEN", "2"]]),
    ),
    st.tuples(st.just("LMOVE"), _LKEY, _LKEY, _SIDE, _SIDE),
    st.tuples(st.just("RPOPLPUSH"), _LKEY, _LKEY),
    st.tuples(st.just("LMPOP"), st.just("2"), _LKEY, _LKEY, _SIDE, st.sampled_from([[], ["COUNT", "2"]])),
    st.tuples(st.just("LLEN"), _LKEY),
)


def _flatten(command: Any) -> list[str]:
    args: list[str] = []
    for part in command:
        if isinstance(part, list):
            args.extend(part)
        else:
            args.append(part)
    return args


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(_LIST_COMMANDS, min_size=5, max_size=25))
def test_random_list_command_sequences_match_redis(pair: Pair, sequence: list[Any]) -> None:
    pair.check("DEL", *_LKEYS)
    pair.check("SET", "ls", "string")  # a key of another type: WRONGTYPE paths too
    # Start from lists holding the items, so that pivots, ranks and moves meet them.
    pair.check("RPUSH", "l1", "a", "b", "c", "1", "-2", "a", "b")
    pair.check("RPUSH", "l2", "c", "a", "1")
    for command in sequence:
        pair.check(*_flatten(command))
    for key in _LKEYS:
        if pair.check("TYPE", key) == "list":
            pair.check("LRANGE", key, "0", "-1")


def test_type_of_a_list_matches_redis(pair: Pair) -> None:
    pair.check("RPUSH", "l", "a")
    assert pair.check("TYPE", "l") == "list"
