"""The Memcached backend against real ``memcached`` processes (never mocks), plus its pure parts.

* the conformance suite, sync and async, on one node and on two;
* key safety (CRLF injection against a real server, long and unicode keys), value size,
  failover with two nodes and a kill, recovery after a restart, timeouts on a frozen server;
* compare-and-swap stress with many threads and tasks, namespace clear isolation, counters
  at the edges (negative, overflow), wrong types;
* the sans-IO protocol parser (fed whole, byte by byte, with trailing bytes) and the
  wire-key mapping (property-based: injective, always safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servers import MemcachedServer, MemcachedServerFactory, memcached_url
from stratacache import (
    AsyncCache,
    BackendUnavailable,
    Cache,
    CacheTimeout,
    ConfigurationError,
    InvalidArgument,
    InvalidTTL,
    UnsupportedOperation,
    ValueTooLarge,
    WrongType,
)
from stratacache._async.backends.memcached import AsyncMemcachedBackend
from stratacache._sync.backends.memcached import MemcachedBackend
from stratacache._types import MISSING
from stratacache.core import memcached_protocol as proto
from stratacache.core.memcached_keys import (
    RESERVED,
    fallback_generation_key,
    generation_key,
    is_safe,
    namespaced_key,
    wire_key,
)

TWO_MB = 2 * 1024 * 1024


# ----------------------------------------------------------------------------- servers


@pytest.fixture
def mc_pair(memcached_pair: tuple[MemcachedServer, MemcachedServer]) -> list[MemcachedServer]:
    """The session's two memcached nodes (2 MiB item limit), as a list."""
    return list(memcached_pair)


def url(servers: list[MemcachedServer]) -> str:
    return memcached_url(servers)


def raw(server: MemcachedServer, command: bytes) -> bytes:
    """One command on a fresh socket, reply up to the first line (raw protocol, no library)."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(command)
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


@pytest.fixture
def mc(mc_pair: list[MemcachedServer]) -> Iterator[Cache]:
    """A sync cache on both servers, emptied first."""
    with Cache(url(mc_pair), max_value_size=TWO_MB) as cache:
        cache.clear()
        yield cache


@pytest.fixture
async def amc(mc_pair: list[MemcachedServer]) -> AsyncIterator[AsyncCache]:
    """An async cache on both servers, emptied first."""
    async with AsyncCache(url(mc_pair), max_value_size=TWO_MB) as cache:
        await cache.clear()
        yield cache


# The conformance suite runs on one and two memcached nodes from tests/conftest.py
# (SERVER_BACKENDS "memcached" and "memcached-2").


# ----------------------------------------------------------------------------- wire keys

safe_text = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7D), min_size=1, max_size=60)


def assert_valid_wire(key: bytes) -> None:
    assert 1 <= len(key) <= 250
    assert all(0x21 <= byte <= 0x7E for byte in key), key


def test_wire_key_forms() -> None:
    assert wire_key("user:1") == b"user:1"
    assert wire_key("x" * 250) == b"x" * 250
    long = wire_key("x" * 251)
    assert long.startswith(b"~xxx")
    assert len(long) < 250
    spaced = wire_key("a b")
    assert spaced.startswith(b"~a_b~")
    assert wire_key("").startswith(b"~~")
    assert wire_key("has~tilde").startswith(b"~")  # the reserved character forces hashing
    assert namespaced_key("app:", "17", "user:1") == b"app:~17~user:1"
    assert namespaced_key("app:", "17", "") == b"app:~17~"
    assert namespaced_key("app:", "17", "a b").startswith(b"~")
    assert generation_key("app:") == b"app:~gen"
    assert generation_key("sp ace:").startswith(b"~")
    assert fallback_generation_key("app:", "10.0.0.1:11211") == b"app:~gen~10.0.0.1:11211"
    assert fallback_generation_key("sp ace:", "10.0.0.1:11211").startswith(b"~")
    for key in (
        wire_key("\r\n"),
        wire_key("ключ"),
        namespaced_key("n s:", "1.2", "k\x00"),
        generation_key("é:"),
    ):
        assert_valid_wire(key)
    assert is_safe("a:b")
    assert not any(is_safe(key) for key in ("a b", "a~b", "", "x" * 251))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=300), min_size=2, max_size=6, unique=True))
def test_wire_keys_are_injective_and_safe(keys: list[str]) -> None:
    wires = [wire_key(key) for key in keys]
    for wire in wires:
        assert_valid_wire(wire)
    assert len(set(wires)) == len(wires)


@settings(max_examples=300, deadline=None)
@given(safe_text, st.text(max_size=300), st.integers(0, 2**64), st.text(max_size=300))
def test_wire_key_spaces_never_collide(prefix: str, rest: str, generation: int, other: str) -> None:
    prefix += ":"
    plain = wire_key(other)
    spaced = namespaced_key(prefix, str(generation), rest)
    bumped = namespaced_key(prefix, str(generation + 1), rest)
    gen = generation_key(prefix)
    fallback = fallback_generation_key(prefix, "127.0.0.1:11211")
    failover = namespaced_key(prefix, f"{generation}_{generation}", rest)
    for key in (plain, spaced, bumped, gen, fallback, failover):
        assert_valid_wire(key)
    assert len({plain, spaced, bumped, gen, fallback, failover}) == 6
    # A raw (unhashed) key never starts with the reserved character; a hashed one always does.
    assert plain.startswith(RESERVED.encode()) != is_safe(other)


# ----------------------------------------------------------------------------- protocol

REPLY = (
    b"VALUE k1 0 3\r\nabc\r\nVALUE k2 42 5 99\r\nx\r\ny\r\r\nEND\r\n"
    b"STORED\r\nNOT_FOUND\r\n12\r\nSTAT pid 7\r\nEND\r\n"
    b"VA 2 t-1 c5 f3\r\nhi\r\nHD t10\r\nEN\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\n"
)
EXPECTED = [
    proto.Value(b"k1", 0, b"abc", None),
    proto.Value(b"k2", 42, b"x\r\ny\r", 99),
    proto.End(),
    proto.Line(b"STORED"),
    proto.Line(b"NOT_FOUND"),
    proto.Line(b"12"),
    proto.Stat("pid", "7"),
    proto.End(),
    proto.MetaValue(b"VA", (b"t-1", b"c5", b"f3"), b"hi"),
    proto.MetaValue(b"HD", (b"t10",), None),
    proto.MetaValue(b"EN", (), None),
    proto.ErrorReply("CLIENT_ERROR", "bad data chunk"),
    proto.ErrorReply("ERROR", ""),
]


def drain(parser: proto.ResponseParser) -> list[proto.Event]:
    events = []
    while (event := parser.next_event()) is not None:
        events.append(event)
    return events


def test_parser_whole_and_byte_by_byte_and_trailing() -> None:
    whole = proto.ResponseParser()
    whole.receive_data(REPLY)
    assert drain(whole) == EXPECTED
    assert whole.buffered == 0
    stepwise = proto.ResponseParser()
    events: list[proto.Event] = []
    for i in range(len(REPLY)):
        stepwise.receive_data(REPLY[i : i + 1])
        events.extend(drain(stepwise))
    assert events == EXPECTED
    trailing = proto.ResponseParser()
    trailing.receive_data(b"STORED\r\nVALUE k 0 10\r\nabc")
    assert drain(trailing) == [proto.Line(b"STORED")]
    assert trailing.buffered > 0
    trailing.receive_data(b"defghij\r\n")
    assert drain(trailing) == [proto.Value(b"k", 0, b"abcdefghij", None)]
    assert [proto.is_terminal(e) for e in EXPECTED[:3]] == [False, False, True]
    assert EXPECTED[8].flag(b"c") == b"5"  # type: ignore[union-attr]
    assert EXPECTED[8].flag(b"z") is None  # type: ignore[union-attr]
    assert isinstance(EXPECTED[11].exception(), proto.MemcachedReplyError)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "data",
    [
        b"STORED\n",  # bare LF
        b"VALUE k 0 3\r\nabcd\r\n",  # block longer than announced
        b"VALUE k 0 3\r\nab\r\n\r\n",  # shorter
        b"VALUE k 0 -1\r\n",  # negative length
        b"VALUE k 0 x\r\n",  # not a number
        b"VALUE k 0\r\n",  # missing field
        b"VALUE k 0 99999999999\r\n",  # over the cap
        b"VA\r\n",  # VA without length
        b"\r\n",  # empty line
        b"X" * (proto.MAX_LINE + 10),  # no line end in sight
        b"STO\rRED\r\n",  # stray CR
    ],
    ids=repr,
)
def test_parser_is_strict(data: bytes) -> None:
    parser = proto.ResponseParser(max_value_size=1 << 20)
    parser.receive_data(data)
    with pytest.raises(proto.ProtocolViolation):
        drain(parser)


# Values that look like protocol to a parser that would not count bytes.
TRICKY_VALUES = [b"\r\nEND\r\n", b"x\r\nVALUE k 0 1\r\ny", b"\r", b"\n", b"END"]


def _parsed(data: bytes) -> dict[bytes, tuple[bytes, int]]:
    """What the strict parser makes of one whole get reply: {key: (data, flags)}."""
    parser = proto.ResponseParser()
    parser.receive_data(data)
    events = drain(parser)
    assert events[-1] == proto.End()
    assert parser.buffered == 0
    return {e.key: (e.data, e.flags) for e in events if isinstance(e, proto.Value)}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text("abc:~!", min_size=1, max_size=8),
            st.integers(0, 2**32 - 1),
            st.binary(max_size=40) | st.sampled_from(TRICKY_VALUES),
        ),
        max_size=6,
        unique_by=lambda item: item[0],
    )
)
def test_parse_values_agrees_with_the_parser(items: list[tuple[str, int, bytes]]) -> None:
    reply = b"".join(b"VALUE %s %d %d\r\n%s\r\n" % (k.encode(), f, len(v), v) for k, f, v in items)
    reply += b"END\r\n"
    fast = proto.parse_values(reply)
    if all(b"\r\n" not in v for _, _, v in items):
        assert fast is not None
    # The fast path gives the parser's answer, or None (then the parser decides).
    assert fast is None or fast == _parsed(reply)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"END\r\nEND\r\n",  # bytes after the reply
        b"VALUE k 0 3\r\nabc\r\n",  # no END yet
        b"VALUE k 0 3\r\nabcd\r\nEND\r\n",  # longer than announced
        b"VALUE k 0 3 7\r\nabc\r\nEND\r\n",  # a cas (gets): not for this path
        b"VALUE k 0 +3\r\nabc\r\nEND\r\n",
        b"VALUE k\n 0 3\r\nabc\r\nEND\r\n",
        b"SERVER_ERROR out of memory\r\n",
        b"VALUE k 0 3\r\nabc\r\nSERVER_ERROR x\r\nEND\r\n",
    ],
    ids=repr,
)
def test_parse_values_leaves_anything_irregular_to_the_parser(data: bytes) -> None:
    assert proto.parse_values(data) is None


def test_encoders_refuse_unsafe_keys_and_values() -> None:
    for bad in (b"a b", b"x\r\nflush_all", b"", b"k" * 251, b"tab\t", b"nul\x00"):
        with pytest.raises(ValueError, match="key"):
            proto.encode_retrieval(b"get", [bad])
        with pytest.raises(ValueError, match="key"):
            proto.encode_storage(b"set", bad, b"v")
        with pytest.raises(ValueError, match="key"):
            proto.encode_meta(b"mg", bad, (b"t",))
    with pytest.raises(ValueError, match="flags"):
        proto.encode_storage(b"set", b"k", b"v", flags=1 << 32)
    with pytest.raises(ValueError, match="delta"):
        proto.encode_arith(b"incr", b"k", -1)
    with pytest.raises(ValueError, match="flag"):
        proto.encode_meta(b"mg", b"k", (b"t v",))
    assert (
        proto.encode_storage(b"cas", b"k", b"ab", 3, 10, cas=7, noreply=True)
        == b"cas k 3 10 2 7 noreply\r\nab\r\n"
    )
    assert proto.encode_touch(b"k", 5) == b"touch k 5\r\n"
    assert proto.encode_delete(b"k") == b"delete k\r\n"


def test_exptime_rounds_up_and_goes_absolute_past_30_days() -> None:
    assert proto.exptime(None, 1000.0) == 0
    assert proto.exptime(0.2, 1000.0) == 1
    assert proto.exptime(1.0, 1000.0) == 1
    assert proto.exptime(1.01, 1000.0) == 2
    limit = proto.RELATIVE_EXPTIME_LIMIT
    assert proto.exptime(limit, 1000.0) == limit
    assert proto.exptime(limit + 1, 1_700_000_000.5) == 1_700_000_000 + limit + 1


# ----------------------------------------------------------------------------- configuration


def test_configuration_errors(mc_pair: list[MemcachedServer]) -> None:
    with pytest.raises(ConfigurationError, match="servers"):
        MemcachedBackend([])
    with pytest.raises(ConfigurationError, match="servers"):
        MemcachedBackend("127.0.0.1:11211")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="twice"):
        MemcachedBackend(["127.0.0.1:1", ("127.0.0.1", 1)])
    for name in ("pool_size", "failure_threshold", "max_value_size"):
        with pytest.raises(ConfigurationError, match=name):
            MemcachedBackend(["127.0.0.1:1"], **{name: 0})
    for name in ("timeout", "connect_timeout", "dead_retry"):
        with pytest.raises(ConfigurationError, match=name):
            MemcachedBackend(["127.0.0.1:1"], **{name: -1})
    with pytest.raises(ConfigurationError, match="pool_size"):
        Cache(url(mc_pair) + "?pool_size=0")
    with pytest.raises(ConfigurationError, match="bogus"):
        Cache(url(mc_pair) + "?bogus=1")
    backend = MemcachedBackend(["127.0.0.1", "127.0.0.1:1"])
    assert backend.nodes == ["127.0.0.1:11211", "127.0.0.1:1"]
    assert backend.describe() == "memcached 127.0.0.1:11211,127.0.0.1:1"
    assert "127.0.0.1:1" in repr(backend)


def test_url_builds_a_two_node_backend(mc: Cache, mc_pair: list[MemcachedServer]) -> None:
    backend = mc.backend
    assert isinstance(backend, MemcachedBackend)
    assert backend.nodes == [f"{s.host}:{s.port}" for s in mc_pair]
    assert backend.capabilities.ttl_resolution == 1.0
    assert backend.capabilities.delete_pattern is False


# ----------------------------------------------------------------------------- key safety


def test_crlf_key_cannot_inject_a_command(mc: Cache, mc_pair: list[MemcachedServer]) -> None:
    mc.set("victim", "still here")
    for evil in ("x\r\nflush_all\r\n", "x flush_all", "k\r\ndelete victim\r\n", "\x00", "a\nb"):
        mc.set(evil, "evil")
        assert mc.get(evil) == "evil"
        assert mc.add(evil, "again") is False
        assert mc.incr(evil + "n") == 1
        assert mc.delete(evil) is True
    assert mc.get("victim") == "still here"
    # And the server really holds the key under its hashed name, not a mangled command.
    hashed = wire_key("x\r\nflush_all\r\n")
    assert hashed.startswith(b"~x__flush_all__~")


def test_long_and_unicode_keys_are_distinct(mc: Cache) -> None:
    base = "k" * 10_000
    keys = [base, base + "a", base + "b", "ключ", "ключ ", "键/with spaces", "a" * 250, "a" * 251, "~a", "_a"]
    for i, key in enumerate(keys):
        mc.set(key, i)
    assert [mc.get(key) for key in keys] == list(range(len(keys)))
    assert mc.get_many(keys) == {key: i for i, key in enumerate(keys)}
    assert mc.delete_many(keys) == len(keys)


# ----------------------------------------------------------------------------- values


def test_value_too_large_before_sending(mc: Cache) -> None:
    small = Cache(mc.backend.__class__(mc.backend.nodes, max_value_size=1000))
    with pytest.raises(ValueTooLarge, match=r"'big'.*1000 bytes"):
        small.set("big", b"x" * 2000)
    with pytest.raises(ValueTooLarge, match="1000"):
        small.set_many({"ok": 1, "big": b"x" * 2000})
    with pytest.raises(ValueTooLarge, match="1000"):
        small.add("big", b"x" * 2000)
    assert small.get("ok") is None  # nothing of the batch was sent
    with pytest.raises(ValueTooLarge, match="1000"):
        small.rpush("list", b"x" * 2000)
    small.close()


def test_value_too_large_from_the_server(mc_pair: list[MemcachedServer]) -> None:
    # The client believes in 8 MB; the servers hold 2 MB: the server's refusal is translated.
    with Cache(url(mc_pair), max_value_size=8 * TWO_MB) as cache:
        with pytest.raises(ValueTooLarge, match="item size limit"):
            cache.set("huge", b"x" * (3 * 1024 * 1024))
        cache.set("after", 1)  # the connection is usable afterwards
        assert cache.get("after") == 1


async def test_value_too_large_from_the_server_async(mc_pair: list[MemcachedServer]) -> None:
    async with AsyncCache(url(mc_pair), max_value_size=8 * TWO_MB) as cache:
        with pytest.raises(ValueTooLarge, match="item size limit"):
            await cache.set("huge", b"x" * (3 * 1024 * 1024))
        with pytest.raises(ValueTooLarge):
            await cache.set_many({"huge": b"x" * (3 * 1024 * 1024), "ok": 1})
        await cache.set("after", 1)
        assert await cache.get("after") == 1


def test_ttl_over_30_days_is_sent_as_absolute_time(mc: Cache) -> None:
    forty_days = 40 * 24 * 3600
    mc.set("long", 1, ttl=forty_days)
    remaining = mc.ttl("long")
    assert isinstance(remaining, float)
    # +2: an absolute exptime is measured against memcached's clock, which ticks once a second
    # and may run up to a second apart from ours.
    assert forty_days - 5 < remaining <= forty_days + 2
    assert mc.expire("long", forty_days * 2) is True
    remaining = mc.ttl("long")
    assert isinstance(remaining, float)
    assert remaining > forty_days
    mc.rpush("l", 1)
    mc.expire("l", forty_days)
    mc.rpush("l", 2)  # a compare-and-swap write keeps the long expiry (absolute again)
    remaining = mc.ttl("l")
    assert isinstance(remaining, float)
    assert remaining > forty_days - 5


# ----------------------------------------------------------------------------- counters


def test_incr_negative_and_overflow_edges(mc: Cache) -> None:
    assert mc.decr("n", 5) == -5
    assert mc.get("n") == -5
    assert mc.incr("n", 3) == -2  # native incr refuses "-5": the decimal-text path takes over
    assert mc.incr("n", 10) == 8
    assert mc.decr("n", 8) == 0
    assert mc.decr("n") == -1
    mc.set("big", 2**63 - 2)
    assert mc.incr("big") == 2**63 - 1
    with pytest.raises(InvalidArgument, match="overflow"):
        mc.incr("big")
    assert mc.get("big") == 2**63 - 1  # unchanged
    with pytest.raises(InvalidArgument, match="overflow"):
        mc.incr("big", 2**63 - 1)
    assert mc.get("big") == 2**63 - 1
    mc.set("small", -(2**63) + 1)
    assert mc.decr("small") == -(2**63)
    with pytest.raises(InvalidArgument, match="overflow"):
        mc.decr("small")
    assert mc.get("small") == -(2**63)
    assert mc.incr("zero", 0) == 0


def test_incr_wrong_types(mc: Cache) -> None:
    for value in ("12a", 1.5, b"7", [1]):
        mc.set("v", value)
        with pytest.raises(WrongType, match="'v'"):
            mc.incr("v")
        with pytest.raises(WrongType):
            mc.decr("v")
        assert mc.get("v") == value
    mc.rpush("l", 1)
    with pytest.raises(WrongType, match="list"):
        mc.incr("l")
    with pytest.raises(WrongType, match="list"):
        mc.decr("l")
    assert mc.lrange("l") == [1]


def test_counter_created_by_many_threads_at_once(mc: Cache) -> None:
    barrier = threading.Barrier(16)

    def work() -> None:
        barrier.wait()
        for _ in range(20):
            mc.incr("fresh")
            mc.decr("neg")

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mc.get("fresh") == 320
    assert mc.get("neg") == -320


# ----------------------------------------------------------------------------- wrong types


def test_wrong_types_everywhere(mc: Cache) -> None:
    mc.set("plain", "v")
    mc.rpush("list", 1)
    mc.sadd("set", 1)
    mc.hset("hash", "f", "1")
    for call in (
        lambda: mc.rpush("plain", 1),
        lambda: mc.lpop("plain"),
        lambda: mc.lrange("plain"),
        lambda: mc.llen("plain"),
        lambda: mc.sadd("plain", 1),
        lambda: mc.smembers("plain"),
        lambda: mc.hset("plain", "f", 1),
        lambda: mc.hget("plain", "f"),
        lambda: mc.get("list"),
        lambda: mc.get("set"),
        lambda: mc.get("hash"),
        lambda: mc.sadd("list", 1),
        lambda: mc.rpush("set", 1),
        lambda: mc.hincrby("list", "f"),
        lambda: mc.hincrby("hash", "f"),  # "1" is a msgpack string, not an integer
        lambda: mc.srem("hash", 1),
        lambda: mc.hdel("set", "f"),
        lambda: mc.scard("hash"),
    ):
        with pytest.raises(WrongType):
            call()
    assert mc.get("plain") == "v"
    assert mc.lrange("list") == [1]
    assert mc.smembers("set") == {1}
    assert mc.hgetall("hash") == {"f": "1"}
    # get_many skips collections, as Redis MGET and the memory backend do.
    assert mc.get_many(["plain", "list", "set", "hash"]) == {"plain": "v"}
    assert mc.exists("list") is True
    assert mc.delete("list") is True


def test_foreign_flags_read_as_plain_values(mc: Cache, mc_pair: list[MemcachedServer]) -> None:
    # A value another client stored with its own small flags is a plain value to us.
    backend = mc.backend
    assert isinstance(backend, MemcachedBackend)
    server = next(s for s in mc_pair if f"{s.host}:{s.port}" == backend.node_for("foreign"))
    assert raw(server, b"set foreign 1 0 2\r\n42\r\n") == b"STORED\r\n"
    assert mc.get("foreign") == 42


def test_delete_pattern_is_unsupported(mc: Cache) -> None:
    with pytest.raises(UnsupportedOperation, match=r"memcached.*delete_pattern.*enumerate"):
        mc.delete_pattern("user:*")


# ----------------------------------------------------------------------------- namespaces


def test_namespace_clear_is_isolated_and_o1(mc: Cache, mc_pair: list[MemcachedServer]) -> None:
    one = Cache(mc.backend, namespace="one", serializer="msgpack")
    two = Cache(mc.backend, namespace="two", serializer="msgpack")
    nested = Cache(mc.backend, namespace="one:sub", serializer="msgpack")
    for i in range(50):
        one.set(f"k{i}", i)
        two.set(f"k{i}", i)
        mc.set(f"k{i}", i)
    nested.set("k", "inner")
    one.rpush("list", 1)
    backend = mc.backend
    assert isinstance(backend, MemcachedBackend)
    servers = {server.address: server for server in mc_pair}
    stored = [backend._locate(f"one:k{i}") for i in range(50)]
    one.clear()
    # O(1): nothing was deleted, the generation moved (old items age out on their own). Read
    # raw, by wire key: curr_items also drops as the crawler reclaims earlier flushed items.
    for wk, node in stored:
        assert raw(servers[node.address], b"get " + wk + b"\r\n").startswith(b"VALUE"), wk
    assert one.get_many([f"k{i}" for i in range(50)]) == {}
    assert one.lrange("list") == []
    assert nested.get("k") == "inner"  # "one:sub" is its own namespace, not inside "one"
    assert two.get_many([f"k{i}" for i in range(50)]) == {f"k{i}": i for i in range(50)}
    assert mc.get_many([f"k{i}" for i in range(50)]) == {f"k{i}": i for i in range(50)}
    one.set("k0", "again")
    assert one.get("k0") == "again"
    nested.set("k", "inner2")
    nested.clear()
    assert nested.get("k") is None
    assert one.get("k0") == "again"  # clearing the inner one leaves the outer one alone


def test_namespace_clear_seen_by_another_process(mc_pair: list[MemcachedServer]) -> None:
    # Two independent backends stand for two processes: nothing is cached across operations.
    with (
        Cache(url(mc_pair), namespace="shared") as first,
        Cache(url(mc_pair), namespace="shared") as second,
    ):
        first.set("k", 1)
        assert second.get("k") == 1
        second.clear()
        assert first.get("k") is None
        first.set("k", 2)
        assert second.get("k") == 2


def test_lost_generation_key_never_resurrects_old_keys(mc: Cache, mc_pair: list[MemcachedServer]) -> None:
    ns = Cache(mc.backend, namespace="evict", serializer="msgpack")
    ns.set("k", "old")
    gen = generation_key("evict:")
    for server in mc_pair:  # as if the generation key had been evicted
        raw(server, b"delete " + gen + b"\r\n")
    assert ns.get("k") is None  # a fresh random generation, not generation 0 or 1
    ns.set("k", "new")
    assert ns.get("k") == "new"


def test_non_namespaced_cache_pays_no_generation_lookup(mc: Cache) -> None:
    backend = mc.backend
    assert isinstance(backend, MemcachedBackend)
    calls: list[list[str]] = []
    original = backend._generations

    def spy(node: Any, owner: str, prefixes: list[str]) -> str:
        calls.append(prefixes)
        return original(node, owner, prefixes)

    backend._generations = spy  # type: ignore[method-assign]
    mc.set("k", 1)
    mc.get("k")
    assert calls == []
    Cache(backend, namespace="ns").get("k")
    assert calls == [["ns:"]]


# ----------------------------------------------------------------------------- batches


def test_get_many_makes_one_request_per_node(mc: Cache) -> None:
    backend = mc.backend
    assert isinstance(backend, MemcachedBackend)
    keys = [f"k{i}" for i in range(100)]
    mc.set_many({key: i for i, key in enumerate(keys)})
    assert {backend.node_for(key) for key in keys} == set(backend.nodes)  # both nodes hold some
    requests: list[int] = []
    for node in backend._nodes.values():
        real = node.get_many

        def counting(wire: list[bytes], real: Any = real) -> Any:
            requests.append(len(wire))
            return real(wire)

        node.get_many = counting  # type: ignore[method-assign]
    assert mc.get_many(keys) == {key: i for i, key in enumerate(keys)}
    assert len(requests) == 2
    assert sum(requests) == 100
    assert mc.delete_many([*keys, "absent", keys[0]]) == 100


# ----------------------------------------------------------------------------- concurrency


def test_cas_stress_threads(mc: Cache) -> None:
    threads_n, rounds = 16, 40

    def work(n: int) -> None:
        for i in range(rounds):
            mc.rpush("list", f"{n}:{i}")
            mc.sadd("set", f"{n}:{i}")
            mc.hincrby("hash", "count", 1)
            mc.hset("hash", f"f{n}", i)
            mc.decr("negative")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = threads_n * rounds
    items = mc.lrange("list")
    assert len(items) == total
    assert len(set(items)) == total  # no lost and no duplicated push
    for n in range(threads_n):  # each writer's pushes stay in its own order
        mine = [item for item in items if item.startswith(f"{n}:")]
        assert mine == [f"{n}:{i}" for i in range(rounds)]
    assert mc.scard("set") == total
    assert mc.hget("hash", "count") == total
    assert mc.hlen("hash") == threads_n + 1
    assert mc.get("negative") == -total


async def test_cas_stress_tasks(amc: AsyncCache) -> None:
    async def work(n: int) -> None:
        for i in range(30):
            await amc.rpush("list", i)
            await amc.sadd("set", f"{n}:{i}")
            await amc.hincrby("hash", "count", -1)
            await amc.incr("counter")

    await asyncio.gather(*(work(n) for n in range(24)))
    assert await amc.llen("list") == 24 * 30
    assert await amc.scard("set") == 24 * 30
    assert await amc.hget("hash", "count") == -24 * 30
    assert await amc.get("counter") == 24 * 30


def test_small_pool_makes_threads_wait_not_fail(mc_pair: list[MemcachedServer]) -> None:
    with Cache(url(mc_pair[:1]), pool_size=1) as cache:
        cache.clear()
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(30):
                    cache.incr("n")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert cache.get("n") == 240


async def test_small_pool_makes_tasks_wait_and_cancellation_is_safe(mc_pair: list[MemcachedServer]) -> None:
    async with AsyncCache(url(mc_pair[:1]), pool_size=2) as cache:
        await cache.clear()
        await cache.set("k", "v")
        await asyncio.gather(*(cache.incr("n") for _ in range(50)))
        assert await cache.get("n") == 50
        # Cancel callers mid-request: their connections are dropped, never reused half-read.
        for _ in range(20):
            task = asyncio.ensure_future(cache.get_many([f"x{i}" for i in range(200)]))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert await cache.get("k") == "v"
        assert await cache.get("n") == 50


# ----------------------------------------------------------------------------- faults


def keys_on(backend: Any, node: str, count: int = 3) -> list[str]:
    found = []
    i = 0
    while len(found) < count:
        key = f"key{i}"
        if backend.node_for(key) == node:
            found.append(key)
        i += 1
    return found


def test_failover_two_nodes_one_killed_then_back(memcached_server_factory: MemcachedServerFactory) -> None:
    first, second = memcached_server_factory(), memcached_server_factory()
    with Cache(url([first, second]), failure_threshold=2, dead_retry=1.0, timeout=0.5) as cache:
        backend = cache.backend
        assert isinstance(backend, MemcachedBackend)
        a, b = backend.nodes
        on_a, on_b = keys_on(backend, a), keys_on(backend, b)
        for key in on_a + on_b:
            cache.set(key, key)
        second.kill()
        # The survivor's keys are still served.
        assert [cache.get(key) for key in on_a] == on_a
        # The dead node's keys fail, fast, naming the node, until it is marked dead...
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(BackendUnavailable, match=b) as info:
                cache.get(on_b[0])
            assert time.monotonic() - started < 0.5
            assert info.value.__cause__ is not None
        assert backend.node_state(b) == "dead"
        # ...then they fail over to the next node on the ring (as misses at first).
        assert cache.get(on_b[0]) is None
        cache.set(on_b[0], "on the survivor")
        assert cache.get(on_b[0]) == "on the survivor"
        assert cache.ping() is True  # one node answers
        report = cache.health()
        assert report.healthy is True
        # The node comes back: after dead_retry it is tried again and rejoins.
        second.restart()
        time.sleep(1.1)
        assert cache.get(on_b[1]) is None  # restarted empty, but answering
        assert backend.node_state(b) == "alive"
        cache.set(on_b[1], "back")
        assert raw(second, b"get " + on_b[1].encode() + b"\r\n").startswith(b"VALUE")
        assert [cache.get(key) for key in on_a] == on_a


def test_single_node_stop_and_recovery(memcached_server_factory: MemcachedServerFactory) -> None:
    server = memcached_server_factory()
    with Cache(server.url, failure_threshold=1, dead_retry=0.5, timeout=0.5, connect_timeout=0.5) as cache:
        cache.set("k", 1)
        server.kill()
        for call in (
            lambda: cache.get("k"),
            lambda: cache.set("k", 2),
            lambda: cache.get_many(["k", "j"]),
            lambda: cache.incr("n"),
            lambda: cache.rpush("l", 1),
            lambda: cache.ttl("k"),
            cache.clear,
        ):
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                call()
            assert time.monotonic() - started < 1.0
        with pytest.raises(BackendUnavailable, match="no server answers"):
            cache.ping()
        assert cache.health().healthy is False
        server.restart()
        time.sleep(0.6)
        assert cache.get("k") is None
        cache.set("k", 3)
        assert cache.get("k") == 3
        assert cache.ping() is True


async def test_single_node_stop_and_recovery_async(memcached_server_factory: MemcachedServerFactory) -> None:
    server = memcached_server_factory()
    async with AsyncCache(server.url, failure_threshold=1, dead_retry=0.5, timeout=0.5) as cache:
        await cache.set("k", 1)
        server.kill()
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                await cache.get("k")
            assert time.monotonic() - started < 1.0
        with pytest.raises(BackendUnavailable, match="marked dead"):
            await cache.set("k", 1)
        server.restart()
        await asyncio.sleep(0.6)
        assert await cache.get("k") is None
        await cache.set("k", 3)
        assert await cache.get("k") == 3


def test_frozen_server_times_out(memcached_server_factory: MemcachedServerFactory) -> None:
    server = memcached_server_factory()
    assert server.pid is not None
    with Cache(server.url, timeout=0.3, failure_threshold=5) as cache:
        cache.set("k", 1)
        os.kill(server.pid, signal.SIGSTOP)
        time.sleep(0.1)  # the stop is delivered asynchronously
        try:
            started = time.monotonic()
            with pytest.raises(CacheTimeout, match=server.url.removeprefix("memcached://")):
                cache.get("k")
            assert time.monotonic() - started < 1.0
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert cache.get("k") == 1  # the timed-out connection was dropped, not reused


async def test_frozen_server_times_out_async(memcached_server_factory: MemcachedServerFactory) -> None:
    server = memcached_server_factory()
    assert server.pid is not None
    async with AsyncCache(server.url, timeout=0.3, failure_threshold=5) as cache:
        await cache.set("k", 1)
        os.kill(server.pid, signal.SIGSTOP)
        time.sleep(0.1)  # the stop is delivered asynchronously
        try:
            started = time.monotonic()
            with pytest.raises(CacheTimeout):
                await cache.get("k")
            assert time.monotonic() - started < 1.0
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert await cache.get("k") == 1


def test_sync_reads_replies_over_many_reads(mc: Cache) -> None:
    # Values bigger than one read, values holding protocol lines, a batch of ~2.4 MB.
    big = os.urandom(1_500_000)
    tricky = TRICKY_VALUES
    mc.set("big", big)
    for i, value in enumerate(tricky):
        mc.set(f"t{i}", value)
    batch = {f"b{i}": os.urandom(60_000) for i in range(40)}
    mc.set_many(batch)
    for _ in range(3):  # again on reused connections: nothing left unread
        assert mc.get("big") == big
        assert [mc.get(f"t{i}") for i in range(len(tricky))] == tricky
        assert mc.get_many([*batch, "missing"]) == batch
        named = {f"t{i}": value for i, value in enumerate(tricky)}
        assert mc.get_many(list(named)) == named


class ScriptedPeer:
    """A TCP peer that answers each request with the next canned reply, byte by byte
    (a reply ending in ``<close>`` closes the connection after it).

    Not memcached: it exists to send what a real server rarely does (a reply split in
    every possible place, an error line to a get, stray bytes, a close mid-reply).
    """

    def __init__(self, replies: list[bytes]) -> None:
        self.replies = replies
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.replies:
            conn, _ = self.listener.accept()
            with conn:
                while self.replies:
                    if not conn.recv(65536):
                        break
                    reply = self.replies.pop(0)
                    closing = reply.endswith(b"<close>")
                    reply = reply.removesuffix(b"<close>")
                    for i in range(len(reply)):
                        conn.sendall(reply[i : i + 1])
                    if closing:
                        break
        self.listener.close()


def test_sync_driver_against_a_scripted_peer() -> None:
    from stratacache._drivers.memcached_sync import MemcachedNode
    from stratacache._exceptions import ProtocolError

    peer = ScriptedPeer(
        [
            b"VERSION 1.6.99\r\n",  # the connecting request (version), through pymemcache
            b"VALUE k 5 3\r\nabc\r\nEND\r\n",
            b"VALUE a 0 2\r\nxy\r\nVALUE b 0 0\r\n\r\nEND\r\n",
            b"END\r\n",
            b"SERVER_ERROR out of memory storing object\r\n",
            b"VERSION 1.6.99\r\n",
            b"END\r\nEND\r\n",  # stray bytes after the reply
            b"VERSION 1.6.99\r\n",
            b"VALUE k 0 10\r\nabc<close>",  # the peer closes mid-reply
        ]
    )
    node = MemcachedNode("127.0.0.1", peer.port, pool_size=1, timeout=2.0)
    assert node.version() == "1.6.99"
    assert node.get(b"k") == (b"abc", 5)
    assert node.get_many([b"a", b"b"]) == {b"a": (b"xy", 0), b"b": (b"", 0)}
    assert node.get(b"k") is None
    with pytest.raises(proto.MemcachedReplyError, match="out of memory"):
        node.get(b"k")
    assert node.version() == "1.6.99"  # a new connection after the error
    with pytest.raises(ProtocolError, match="stray"):
        node.get_many([b"k"])
    assert node.version() == "1.6.99"
    with pytest.raises(BackendUnavailable, match="closed the connection"):
        node.get(b"k")
    node.close()


def test_get_translates_a_server_error() -> None:
    peer = ScriptedPeer([b"VERSION 1.6.99\r\n", b"SERVER_ERROR out of memory\r\n"])
    backend = MemcachedBackend([f"127.0.0.1:{peer.port}"])
    backend._single._idle[-1].version()  # type: ignore[union-attr]  # connect this client
    with pytest.raises(BackendUnavailable, match="out of memory"):
        backend.get("k")
    backend.close()


def test_wire_keys_and_the_known_keys_memo() -> None:
    from stratacache.core import memcached_keys

    keys = ["plain", "with space", "x" * 300, "ünï", "plain", "a~b"]
    assert memcached_keys.wire_keys(keys) == [wire_key(k) for k in keys]
    assert memcached_keys.wire_keys(keys) == [wire_key(k) for k in keys]  # now from the memo
    for i in range(memcached_keys._KNOWN_MAX + 10):
        wire_key(f"fill:{i}")
    assert len(memcached_keys._KNOWN) <= memcached_keys._KNOWN_MAX
    assert all(is_safe(k) for k in memcached_keys._KNOWN)


def test_closed_port_is_backend_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Cache(f"memcached://127.0.0.1:{port}") as cache:
        with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}"):
            cache.get("k")
        assert cache.health().healthy is False


async def test_async_backend_direct_use(mc_pair: list[MemcachedServer]) -> None:
    backend = AsyncMemcachedBackend([(s.host, s.port) for s in mc_pair], max_value_size=TWO_MB)
    try:
        await backend.clear(None)
        await backend.set("k", b"v", None)
        assert await backend.get("k") == b"v"
        counters = await backend.counters(None)
        assert counters.items >= 1
        assert (await backend.counters("ns:")).items == 0
        await backend.ping()
    finally:
        await backend.close()
        await backend.close()


def test_stats_counters(mc: Cache) -> None:
    mc.set("k", 1)
    stats = mc.stats()
    assert stats.items >= 1
    assert stats.bytes > 0


# ----------------------------------------------------------------------------- generation failover


def _mark_dead(cache: Cache, backend: MemcachedBackend, address: str, key: str) -> None:
    """Operate on ``key`` (owned by ``address``) until the backend marks that node dead."""
    for _ in range(5):
        if backend.node_state(address) == "dead":
            return
        with contextlib.suppress(BackendUnavailable, CacheTimeout):
            cache.get(key)
    assert backend.node_state(address) == "dead"


@pytest.mark.parametrize("fault", ["freeze", "kill"])
def test_generation_node_failure_never_resurrects_and_spares_survivors(
    memcached_server_factory: MemcachedServerFactory, fault: str
) -> None:
    """The node that held the namespace generation flaps (frozen, or killed and restarted).

    Before the fix the generation lived on one node: while it was dead every key of the
    namespace missed (on the survivor too), and when it came back its old generation brought
    back every value deleted, overwritten or cleared in between.
    """
    first, second = memcached_server_factory(), memcached_server_factory()
    servers = {server.address: server for server in (first, second)}
    with Cache(
        url([first, second]), namespace="app", failure_threshold=1, dead_retry=0.4, timeout=0.3
    ) as cache:
        backend = cache.backend
        assert isinstance(backend, MemcachedBackend)
        # The node the generation used to live on alone, and the other one.
        flapping = backend._ring.node_for(generation_key("app:"))
        survivor = next(address for address in servers if address != flapping)
        server = servers[flapping]
        keys = [f"k{i}" for i in range(40)]
        on_flapping = [key for key in keys if backend.node_for("app:" + key) == flapping]
        on_survivor = [key for key in keys if backend.node_for("app:" + key) == survivor]
        assert on_flapping
        assert on_survivor
        cache.set_many(dict.fromkeys(keys, "v1"))
        assert server.pid is not None

        def fail() -> None:
            if fault == "freeze":
                os.kill(server.pid, signal.SIGSTOP)  # type: ignore[arg-type]
                time.sleep(0.1)  # the stop is delivered asynchronously
            else:
                server.kill()
            _mark_dead(cache, backend, flapping, on_flapping[0])

        def recover() -> None:
            if fault == "freeze":
                os.kill(server.pid, signal.SIGCONT)  # type: ignore[arg-type]
            else:
                server.restart()
            time.sleep(0.5)  # past dead_retry: the next operation probes the node

        try:
            fail()
            # The survivor's keys are still served while the other node is dead.
            assert [cache.get(key) for key in on_survivor] == ["v1"] * len(on_survivor)
            deleted, rewritten = keys[0::2], keys[1::2]
            cache.delete_many(deleted)
            cache.set_many(dict.fromkeys(rewritten, "v2"))
            recover()
            for key in keys:
                # Never a value from before the failure: deleted stays deleted, a rewritten
                # key is its new value or (written to the fallback node) a miss.
                assert cache.get(key) in ((None,) if key in deleted else ("v2", None)), key
            assert backend.node_state(flapping) == "alive"
            assert [cache.get(key) for key in rewritten if key in on_survivor] == ["v2"] * len(
                [key for key in rewritten if key in on_survivor]
            )
            # Values written to the fallback during the first outage never come back in a second.
            cache.set_many(dict.fromkeys(keys, "v3"))
            fail()
            assert all(cache.get(key) in ("v3", None) for key in keys)
            assert [cache.get(key) for key in on_survivor] == ["v3"] * len(on_survivor)
            # A clear() while the node is dead covers it once it is back.
            cache.set(on_flapping[0], "during")
            cache.clear()
            recover()
            assert cache.get_many(keys) == {}
            assert [cache.get(key) for key in keys] == [None] * len(keys)
        finally:
            if fault == "freeze" and server.pid is not None:
                os.kill(server.pid, signal.SIGCONT)


def test_backend_ttl_past_2038_is_invalid_ttl(mc_pair: list[MemcachedServer]) -> None:
    # Memcached reads an exptime over 30 days as an absolute 32-bit unix time; used directly,
    # the backend refuses a ttl past 2038-01-19 instead of sending a number the server rejects
    # (or, past 2**32, one that wraps into the past).
    backend = MemcachedBackend([server.address for server in mc_pair])
    try:
        for ttl in (2.0**31, 2.0**40):
            for call in (
                lambda seconds: backend.set("ttl-range-probe", b"v", seconds),
                lambda seconds: backend.add("ttl-range-probe", b"v", seconds),
                lambda seconds: backend.set_many({"ttl-range-probe": b"v"}, seconds),
                lambda seconds: backend.expire("ttl-range-probe", seconds),
            ):
                with pytest.raises(InvalidTTL, match=r"memcached.*2038"):
                    call(ttl)
        assert backend.get("ttl-range-probe") is MISSING
    finally:
        backend.close()


async def test_generation_node_failure_async(memcached_server_factory: MemcachedServerFactory) -> None:
    """The async flavour (own asyncio driver) of the generation failover test, frozen node."""
    first, second = memcached_server_factory(), memcached_server_factory()
    servers = {server.address: server for server in (first, second)}
    async with AsyncCache(
        url([first, second]), namespace="app", failure_threshold=1, dead_retry=0.4, timeout=0.3
    ) as cache:
        backend = cache.backend
        assert isinstance(backend, AsyncMemcachedBackend)
        flapping = backend._ring.node_for(generation_key("app:"))
        server = servers[flapping]
        assert server.pid is not None
        keys = [f"k{i}" for i in range(40)]
        on_flapping = [key for key in keys if backend.node_for("app:" + key) == flapping]
        on_survivor = [key for key in keys if backend.node_for("app:" + key) != flapping]
        await cache.set_many(dict.fromkeys(keys, "v1"))
        os.kill(server.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(0.1)
            for _ in range(5):
                if backend.node_state(flapping) == "dead":
                    break
                with contextlib.suppress(BackendUnavailable, CacheTimeout):
                    await cache.get(on_flapping[0])
            assert backend.node_state(flapping) == "dead"
            assert [await cache.get(key) for key in on_survivor] == ["v1"] * len(on_survivor)
            assert await cache.delete_many(keys) == len(on_survivor)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        await asyncio.sleep(0.5)
        assert await cache.get_many(keys) == {}
        assert [await cache.get(key) for key in keys] == [None] * len(keys)
        assert backend.node_state(flapping) == "alive"
