"""Pub/sub: SUBSCRIBE and friends, PUBLISH, PUBSUB, compared with a real redis-server; redis-py's
PubSub (sync and asyncio) against ours; clean-up on disconnect; slow subscribers."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from respclient import HOST, Closed, Err, Pair, Push, RespConn

from stratacache.server import ServerThread
from stratacache.server.pubsub import glob_matcher
from stratacache.server.resp import encode_command

SUBSCRIBED_ERROR = (
    "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
    "are allowed in this context"
)


class Both:
    """Extra raw connections, one on each server, driven in lock step."""

    def __init__(self, ours: ServerThread, real: Any) -> None:
        self.ports = (ours.port, real.port)
        self.opened: list[RespConn] = []

    def conns(self) -> tuple[RespConn, RespConn]:
        pair = (RespConn(self.ports[0]), RespConn(self.ports[1]))
        self.opened.extend(pair)
        return pair

    def close(self) -> None:
        for conn in self.opened:
            conn.close()


@pytest.fixture
def both(ours: ServerThread, real: Any) -> Iterator[Both]:
    made = Both(ours, real)
    yield made
    made.close()


def same(conns: tuple[RespConn, RespConn], *args: Any) -> Any:
    """Run on both; the replies (and their push-ness) must be equal."""
    mine, theirs = conns[0].call(*args), conns[1].call(*args)
    assert (mine, type(mine)) == (theirs, type(theirs)), f"{args!r}: ours {mine!r} != redis {theirs!r}"
    return mine


def same_read(conns: tuple[RespConn, RespConn]) -> Any:
    """Read the next reply (a message) on both; must be equal."""
    mine, theirs = conns[0].read(), conns[1].read()
    assert (mine, type(mine)) == (theirs, type(theirs)), f"ours {mine!r} != redis {theirs!r}"
    return mine


def test_subscribe_and_unsubscribe_replies_match_redis(pair: Pair) -> None:
    conns = (pair.ours, pair.real)
    assert same(conns, "SUBSCRIBE", "a", "b") == [b"subscribe", b"a", 1]
    assert same_read(conns) == [b"subscribe", b"b", 2]
    assert same(conns, "SUBSCRIBE", "a") == [b"subscribe", b"a", 2]  # already: count unchanged
    assert same(conns, "PSUBSCRIBE", "h*llo") == [b"psubscribe", b"h*llo", 3]
    assert same(conns, "UNSUBSCRIBE", "b") == [b"unsubscribe", b"b", 2]
    assert same(conns, "UNSUBSCRIBE", "never") == [b"unsubscribe", b"never", 2]
    assert same(conns, "UNSUBSCRIBE") == [b"unsubscribe", b"a", 1]
    assert same(conns, "UNSUBSCRIBE") == [b"unsubscribe", None, 1]
    assert same(conns, "PUNSUBSCRIBE") == [b"punsubscribe", b"h*llo", 0]
    assert same(conns, "PUNSUBSCRIBE") == [b"punsubscribe", None, 0]
    # Out of pub/sub mode: other commands run again.
    assert same(conns, "GET", "k") is None
    assert same(conns, "SSUBSCRIBE", "s1", "s2") == [b"ssubscribe", b"s1", 1]
    assert same_read(conns) == [b"ssubscribe", b"s2", 2]
    assert same(conns, "SUNSUBSCRIBE", "s1") == [b"sunsubscribe", b"s1", 1]
    assert same(conns, "SUNSUBSCRIBE") == [b"sunsubscribe", b"s2", 0]
    assert same(conns, "SUNSUBSCRIBE") == [b"sunsubscribe", None, 0]
    for name in ("SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "PUBLISH", "SPUBLISH"):
        assert isinstance(same(conns, name), Err)
    assert isinstance(same(conns, "PUBLISH", "a"), Err)


def test_shard_and_plain_subscriptions_count_apart_like_redis(both: Both) -> None:
    conns = both.conns()
    assert same(conns, "SSUBSCRIBE", "s") == [b"ssubscribe", b"s", 1]
    assert same(conns, "SUBSCRIBE", "a") == [b"subscribe", b"a", 1]
    assert same(conns, "PSUBSCRIBE", "p*") == [b"psubscribe", b"p*", 2]
    assert same(conns, "UNSUBSCRIBE") == [b"unsubscribe", b"a", 1]
    assert same(conns, "PUNSUBSCRIBE") == [b"punsubscribe", b"p*", 0]
    # Still in pub/sub mode through the shard channel.
    assert same(conns, "UNSUBSCRIBE") == [b"unsubscribe", None, 0]
    assert same(conns, "GET", "k") == Err(SUBSCRIBED_ERROR.format("get"))
    assert same(conns, "SUNSUBSCRIBE", "s") == [b"sunsubscribe", b"s", 0]
    assert same(conns, "GET", "k") is None


def test_unsubscribing_from_everything_lists_each_channel(client: RespConn) -> None:
    client.call("SUBSCRIBE", "a", "b", "c")
    client.read(), client.read()
    client.call("PSUBSCRIBE", "x*", "y*")
    client.read()
    got = [client.call("UNSUBSCRIBE")] + [client.read() for _ in range(2)]
    assert sorted(reply[1] for reply in got) == [b"a", b"b", b"c"]
    assert [reply[2] for reply in got] == [4, 3, 2]
    got = [client.call("PUNSUBSCRIBE"), client.read()]
    assert sorted(reply[1] for reply in got) == [b"x*", b"y*"]
    assert [reply[2] for reply in got] == [1, 0]
    assert client.call("PING") == "PONG"


def test_messages_and_receiver_counts_match_redis(both: Both) -> None:
    sub, pub = both.conns(), both.conns()
    same(sub, "SUBSCRIBE", "news.tech")
    same(sub, "PSUBSCRIBE", "news.*")
    same(sub, "PSUBSCRIBE", "n?ws.[st]ech")
    same(sub, "SSUBSCRIBE", "news.tech")
    assert same(pub, "PUBLISH", "news.tech", "hello") == 3
    assert same_read(sub) == [b"message", b"news.tech", b"hello"]
    # Redis delivers to patterns in its dict's order: compare as sets.
    mine = sorted([sub[0].read(), sub[0].read()])
    assert mine == sorted([sub[1].read(), sub[1].read()])
    assert mine == [
        [b"pmessage", b"n?ws.[st]ech", b"news.tech", b"hello"],
        [b"pmessage", b"news.*", b"news.tech", b"hello"],
    ]
    assert same(pub, "PUBLISH", "news.art", "x") == 1
    assert same_read(sub) == [b"pmessage", b"news.*", b"news.art", b"x"]
    assert same(pub, "PUBLISH", "other", "x") == 0
    assert same(pub, "SPUBLISH", "news.tech", "shard") == 1
    assert same_read(sub) == [b"smessage", b"news.tech", b"shard"]
    assert same(pub, "SPUBLISH", "nobody", "x") == 0
    # Binary-safe channels and payloads.
    same(sub, "SUBSCRIBE", b"\x00\xff ch")
    assert same(pub, "PUBLISH", b"\x00\xff ch", b"\r\n\x00") == 1
    assert same_read(sub) == [b"message", b"\x00\xff ch", b"\r\n\x00"]
    # Two subscribers of one channel: both get it, the count says 2.
    other = both.conns()
    same(other, "SUBSCRIBE", "news.tech")
    assert same(pub, "PUBLISH", "news.tech", "again") == 4
    assert same_read(other) == [b"message", b"news.tech", b"again"]


def test_subscribed_context_allows_only_subscriptions_ping_quit_reset(both: Both) -> None:
    conns = both.conns()
    same(conns, "SUBSCRIBE", "a")
    for args in (
        ("GET", "k"),
        ("SET", "k", "v"),
        ("PUBLISH", "a", "m"),
        ("SPUBLISH", "a", "m"),
        ("PUBSUB", "CHANNELS"),
        ("PUBSUB", "NUMSUB", "a"),
    ):
        reply = same(conns, *args)
        assert isinstance(reply, Err)
        assert "only (P|S)SUBSCRIBE" in reply.message
    assert same(conns, "GET", "k") == Err(SUBSCRIBED_ERROR.format("get"))
    assert same(conns, "PUBSUB", "NUMPAT") == Err(SUBSCRIBED_ERROR.format("pubsub|numpat"))
    # Unknown commands and arity errors come first.
    assert isinstance(same(conns, "NOSUCH"), Err)
    assert same(conns, "GET") == Err("ERR wrong number of arguments for 'get' command")
    # PING answers in the pub/sub shape.
    assert same(conns, "PING") == [b"pong", b""]
    assert same(conns, "PING", "hi") == [b"pong", b"hi"]
    assert same(conns, "PSUBSCRIBE", "p*") == [b"psubscribe", b"p*", 2]
    assert same(conns, "QUIT") == "OK"


def test_pattern_subscription_alone_is_pubsub_mode(both: Both) -> None:
    conns = both.conns()
    same(conns, "PSUBSCRIBE", "x")
    assert same(conns, "GET", "k") == Err(SUBSCRIBED_ERROR.format("get"))
    same(conns, "PUNSUBSCRIBE", "x")
    assert same(conns, "GET", "k") is None


def test_resp3_subscriptions_are_pushes_and_other_commands_run(both: Both) -> None:
    conns = both.conns()
    for conn in conns:
        assert isinstance(conn.call("HELLO", "3"), dict)
    reply = same(conns, "SUBSCRIBE", "a", "b")
    assert isinstance(reply, Push)
    assert reply == [b"subscribe", b"a", 1]
    assert same_read(conns) == Push([b"subscribe", b"b", 2])
    # RESP3: no restriction; PING is a plain PONG.
    assert same(conns, "GET", "k") is None
    assert same(conns, "PING") == "PONG"
    # Publishing to itself: the message is pushed before PUBLISH's reply, as in Redis.
    for conn in conns:
        conn.send("PUBLISH", "a", "m")
    message = same_read(conns)
    assert isinstance(message, Push)
    assert message == [b"message", b"a", b"m"]
    assert same_read(conns) == 1
    assert same(conns, "UNSUBSCRIBE", "a") == Push([b"unsubscribe", b"a", 1])
    assert same(conns, "UNSUBSCRIBE") == Push([b"unsubscribe", b"b", 0])
    assert same(conns, "PUNSUBSCRIBE") == Push([b"punsubscribe", None, 0])


def test_pubsub_introspection_matches_redis(both: Both) -> None:
    subs = [both.conns() for _ in range(3)]
    query = both.conns()
    same(subs[0], "SUBSCRIBE", "alpha")
    same(subs[1], "SUBSCRIBE", "alpha")
    same(subs[1], "SUBSCRIBE", "beta")
    same(subs[2], "PSUBSCRIBE", "al*")
    same(subs[1], "PSUBSCRIBE", "al*")
    same(subs[2], "PSUBSCRIBE", "b?ta")
    same(subs[2], "SSUBSCRIBE", "shard-a")
    mine, theirs = query[0].call("PUBSUB", "CHANNELS"), query[1].call("PUBSUB", "CHANNELS")
    assert sorted(mine) == sorted(theirs) == [b"alpha", b"beta"]
    assert same(query, "PUBSUB", "CHANNELS", "a*") == [b"alpha"]
    assert same(query, "PUBSUB", "CHANNELS", "z*") == []
    assert same(query, "PUBSUB", "NUMSUB") == []
    assert same(query, "PUBSUB", "NUMSUB", "alpha", "beta", "none") == [b"alpha", 2, b"beta", 1, b"none", 0]
    assert same(query, "PUBSUB", "NUMPAT") == 2  # distinct patterns (Redis 7)
    assert same(query, "PUBSUB", "SHARDCHANNELS") == [b"shard-a"]
    assert same(query, "PUBSUB", "SHARDCHANNELS", "x*") == []
    assert same(query, "PUBSUB", "SHARDNUMSUB", "shard-a", "alpha") == [b"shard-a", 1, b"alpha", 0]
    assert same(query, "PUBSUB", "HELP")[0].startswith("PUBSUB <subcommand>")
    for args in (
        ("PUBSUB",),
        ("PUBSUB", "NOPE"),
        ("PUBSUB", "CHANNELS", "a", "b"),
        ("PUBSUB", "SHARDCHANNELS", "a", "b"),
        ("PUBSUB", "NUMPAT", "x"),
        ("PUBSUB", "HELP", "x"),
    ):
        assert isinstance(same(query, *args), Err)
    # RESP3: the same arrays.
    for conn in query:
        conn.call("HELLO", "3")
    assert same(query, "PUBSUB", "NUMSUB", "alpha") == [b"alpha", 2]


def test_messages_published_before_an_unsubscribe_arrive_before_its_reply(
    ours: ServerThread, client: RespConn
) -> None:
    server = ours.server
    assert server is not None
    sub = RespConn(ours.port)
    subscriber = server.clients[sub.call("CLIENT", "ID")]
    sub.call("SUBSCRIBE", "ch")
    sub.call("PSUBSCRIBE", "c*")

    def same_turn() -> None:
        # Messages batched for this turn of the loop, then the subscriber's UNSUBSCRIBE
        # arrives in the same turn.
        for i in range(3):
            server.extra["pubsub"].publish(b"ch", b"%d" % i)
        subscriber.data_received(encode_command("UNSUBSCRIBE", "ch"))

    ours.call(same_turn)
    got = [sub.read() for _ in range(7)]
    assert got[:6:2] == [[b"message", b"ch", b"%d" % i] for i in range(3)]
    assert got[6] == [b"unsubscribe", b"ch", 1]
    sub.close()


def test_many_pipelined_messages_arrive_whole_and_in_order(ours: ServerThread, client: RespConn) -> None:
    sub = RespConn(ours.port)
    sub.call("SUBSCRIBE", "ch")
    client.send_raw(b"".join(encode_command("PUBLISH", "ch", f"m{i}") for i in range(2000)))
    assert [client.read() for _ in range(2000)] == [1] * 2000
    assert [sub.read() for _ in range(2000)] == [[b"message", b"ch", f"m{i}".encode()] for i in range(2000)]
    assert sub.call("PING") == [b"pong", b""]
    sub.close()


def test_disconnected_subscribers_are_forgotten(ours: ServerThread, client: RespConn) -> None:
    sub = RespConn(ours.port)
    sub.call("SUBSCRIBE", "ch")
    sub.call("PSUBSCRIBE", "c*")
    sub.call("SSUBSCRIBE", "sh")
    assert client.call("PUBLISH", "ch", "x") == 2
    sub.close()
    wait_for(lambda: client.call("PUBSUB", "NUMSUB", "ch") == [b"ch", 0])
    assert client.call("PUBLISH", "ch", "x") == 0
    assert client.call("PUBSUB", "NUMPAT") == 0
    assert client.call("PUBSUB", "SHARDCHANNELS") == []
    hub = ours.server.extra["pubsub"]  # type: ignore[union-attr]
    assert not hub.channels
    assert not hub.patterns
    assert not hub.shard_channels


def test_a_subscriber_that_does_not_read_is_disconnected(
    server_factory: Callable[..., ServerThread],
) -> None:
    running = server_factory(client_output_buffer_limit_pubsub="256kb")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect((HOST, running.port))
    slow.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n")
    publisher = RespConn(running.port)
    wait_for(lambda: publisher.call("PUBSUB", "NUMSUB", "ch") == [b"ch", 1])
    payload = b"x" * 16384
    delivered = 0
    for _ in range(2000):  # 32 MB at most: far past the kernel's buffers and the limit
        count = publisher.call("PUBLISH", "ch", payload)
        delivered += count
        if count == 0:
            break
    assert publisher.call("PUBSUB", "NUMSUB", "ch") == [b"ch", 0]
    assert delivered < 2000
    # The publisher and the server are unharmed.
    assert publisher.call("PING") == "PONG"
    slow.close()
    publisher.close()


def test_redis_py_pubsub_sync(rclient: redis.Redis) -> None:
    pubsub = rclient.pubsub()
    pubsub.subscribe("events")
    pubsub.psubscribe("ev*")
    assert next_message(pubsub) == {"type": "subscribe", "pattern": None, "channel": b"events", "data": 1}
    assert next_message(pubsub)["type"] == "psubscribe"
    assert rclient.publish("events", "one") == 2
    assert next_message(pubsub) == {"type": "message", "pattern": None, "channel": b"events", "data": b"one"}
    assert next_message(pubsub) == {
        "type": "pmessage",
        "pattern": b"ev*",
        "channel": b"events",
        "data": b"one",
    }
    assert rclient.pubsub_numsub("events") == [(b"events", 1)]
    assert rclient.pubsub_numpat() == 1
    assert rclient.pubsub_channels() == [b"events"]
    pubsub.ping()
    assert next_message(pubsub)["type"] == "pong"
    pubsub.unsubscribe()
    pubsub.punsubscribe()
    assert {next_message(pubsub)["type"], next_message(pubsub)["type"]} == {"unsubscribe", "punsubscribe"}
    assert rclient.publish("events", "two") == 0
    pubsub.close()


def test_redis_py_pubsub_sync_resp3_and_handlers(ours: ServerThread) -> None:
    r = redis.Redis(host=HOST, port=ours.port, protocol=3)
    received: list[Any] = []
    pubsub = r.pubsub()
    pubsub.subscribe(cb=received.append)
    thread = pubsub.run_in_thread(sleep_time=0.01, daemon=True)
    try:
        wait_for(lambda: r.pubsub_numsub("cb") == [[b"cb", 1]] or r.pubsub_numsub("cb") == [(b"cb", 1)])
        assert r.publish("cb", "payload") == 1
        wait_for(lambda: len(received) == 1)
        assert received[0]["data"] == b"payload"
    finally:
        thread.stop()
        thread.join(5)
        pubsub.close()
        r.close()


async def test_redis_py_pubsub_asyncio(ours: ServerThread) -> None:
    r = redis.asyncio.Redis(host=HOST, port=ours.port)
    try:
        pubsub = r.pubsub()
        await pubsub.subscribe("a", "b")
        await pubsub.psubscribe("c*")
        kinds = [(await next_async(pubsub))["type"] for _ in range(3)]
        assert kinds == ["subscribe", "subscribe", "psubscribe"]
        assert await r.publish("cat", "meow") == 1
        message = await next_async(pubsub)
        assert message == {"type": "pmessage", "pattern": b"c*", "channel": b"cat", "data": b"meow"}
        assert await r.publish("b", "x") == 1
        assert (await next_async(pubsub))["data"] == b"x"
        await pubsub.unsubscribe("a")
        assert (await next_async(pubsub)) == {
            "type": "unsubscribe",
            "pattern": None,
            "channel": b"a",
            "data": 2,
        }
        await pubsub.aclose()
    finally:
        await r.aclose()


# ----------------------------------------------------------------------------- globs

_GLOB_ALPHABET = "ab[]^-\\*?"
_CHANNELS = sorted(
    {""}
    | set(_GLOB_ALPHABET)
    | {a + b for a in "ab[]-\\*" for b in "ab]^-?"}
    | {"aab", "abab", "ba]", "a-b", "[ab]", "a\\b", "bbbb", "ab*", "a?b"}
)


@pytest.fixture(scope="module")
def glob_oracle(redis_server: Any) -> Iterator[RespConn]:
    """A real redis-server with one subscriber on every channel of _CHANNELS."""
    subscriber = RespConn(redis_server.port)
    subscriber.call("SUBSCRIBE", *_CHANNELS)
    for _ in range(len(_CHANNELS) - 1):
        subscriber.read()
    query = RespConn(redis_server.port)
    yield query
    query.close()
    subscriber.close()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pattern=st.text(alphabet=_GLOB_ALPHABET, max_size=7))
def test_glob_matches_what_redis_matches(glob_oracle: RespConn, pattern: str) -> None:
    expected = sorted(glob_oracle.call("PUBSUB", "CHANNELS", pattern))
    match = glob_matcher(pattern.encode())
    assert sorted(ch.encode() for ch in _CHANNELS if match(ch.encode())) == expected, pattern


def test_glob_is_linear_on_hostile_patterns() -> None:
    match = glob_matcher(b"a*" * 40 + b"b")
    started = time.perf_counter()
    assert not match(b"a" * 5000)
    assert time.perf_counter() - started < 1.0


# ----------------------------------------------------------------------------- helpers


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def next_message(pubsub: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
        if message is not None:
            return message  # type: ignore[no-any-return]
    raise AssertionError("no message")


async def next_async(pubsub: Any) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            message = await pubsub.get_message(timeout=0.1)
            if message is not None:
                return message  # type: ignore[no-any-return]


def test_closed_connection_is_reported(ours: ServerThread) -> None:
    conn = RespConn(ours.port)
    conn.call("SUBSCRIBE", "x")
    conn.send("QUIT")
    assert conn.read() == "OK"
    with pytest.raises(Closed):
        conn.read()
    conn.close()
