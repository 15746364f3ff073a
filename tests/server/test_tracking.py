"""CLIENT TRACKING (server-assisted client-side caching): option errors, invalidation shapes in
RESP3 and through REDIRECT in RESP2, BCAST, OPTIN/OPTOUT, NOLOOP, flushes, compared with a
real redis-server; redis-py's client-side cache against ours."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.cache import CacheConfig
from redis.connection import CacheProxyConnection
from respclient import HOST, Err, Push, RespConn

from stratacache.server import ServerThread
from stratacache.server.commands import tracking
from stratacache.server.connection import Client
from stratacache.server.resp import encode_command


class Side:
    """One server under test: ``ours`` or the real one, and how to flush it."""

    def __init__(self, port: int, flush: Any, set_ttl: Any) -> None:
        self.port = port
        self.flush = flush
        self.set_ttl = set_ttl  # (key, value, seconds): a key with an expiry
        self.opened: list[RespConn] = []

    def conn(self, resp3: bool = False) -> RespConn:
        conn = RespConn(self.port)
        self.opened.append(conn)
        if resp3:
            assert conn.call("HELLO", "3")
        return conn


@pytest.fixture
def sides(ours: ServerThread, real: Any) -> Iterator[list[Side]]:
    """Both servers, ours first. Ours has no FLUSHDB on this branch: its flush is the
    database's own (what FLUSHDB runs)."""
    server = ours.server
    assert server is not None

    def flush_ours() -> None:
        ours.call(server.databases[0].flush)

    def flush_real() -> None:
        conn = RespConn(real.port)
        assert conn.call("FLUSHDB") == "OK"
        conn.close()

    # SET's options belong to the strings family (another branch): ours writes the database.
    def set_ttl_ours(key: str, value: str, seconds: float) -> None:
        ours.call(lambda: server.databases[0].set(key, value.encode(), seconds))

    def set_ttl_real(key: str, value: str, seconds: float) -> None:
        conn = RespConn(real.port)
        assert conn.call("SET", key, value, "PX", int(seconds * 1000)) == "OK"
        conn.close()

    made = [Side(ours.port, flush_ours, set_ttl_ours), Side(real.port, flush_real, set_ttl_real)]
    yield made
    for side in made:
        for conn in side.opened:
            conn.close()


def run_both(sides: list[Side], scenario: Any) -> list[Any]:
    """Run ``scenario(side)`` (returning what it observed) on both; assert equal; return it."""
    mine, theirs = (scenario(side) for side in sides)
    assert mine == theirs, f"ours {mine!r} != redis {theirs!r}"
    return mine  # type: ignore[no-any-return]


def kinds(values: list[Any]) -> list[Any]:
    """Replies with their push-ness, so that a push never equals an array."""
    return [(value, type(value).__name__) for value in values]


def test_option_errors_match_redis(sides: list[Side]) -> None:
    def scenario(side: Side) -> list[Any]:
        conn = side.conn()
        other = side.conn()
        other_id = other.call("CLIENT", "ID")
        replies = [
            conn.call("CLIENT", "TRACKING"),
            conn.call("CLIENT", "TRACKING", "maybe"),
            conn.call("CLIENT", "TRACKING", "on", "bogus"),
            conn.call("CLIENT", "TRACKING", "on", "PREFIX", "a"),
            conn.call("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a", "PREFIX", "ab"),
            conn.call("CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"),
            conn.call("CLIENT", "TRACKING", "on", "OPTIN", "BCAST"),
            conn.call("CLIENT", "TRACKING", "on", "REDIRECT", "999999"),
            conn.call("CLIENT", "TRACKING", "on", "REDIRECT", "x"),
            conn.call("CLIENT", "TRACKING", "on", "REDIRECT", "007"),
            conn.call("CLIENT", "TRACKING", "on", "REDIRECT", other_id, "REDIRECT", other_id),
            conn.call("CLIENT", "TRACKING", "on", "REDIRECT"),
            conn.call("CLIENT", "CACHING", "yes"),
            conn.call("CLIENT", "CACHING", "yes", "no"),
            conn.call("CLIENT", "GETREDIR"),
            conn.call("CLIENT", "GETREDIR", "x"),
            conn.call("CLIENT", "TRACKINGINFO", "x"),
            conn.call("CLIENT", "TRACKING", "on", "OPTIN"),
            conn.call("CLIENT", "CACHING", "no"),
            conn.call("CLIENT", "CACHING", "maybe"),
            conn.call("CLIENT", "TRACKING", "on", "OPTOUT"),
            conn.call("CLIENT", "TRACKING", "on", "BCAST"),
            conn.call("CLIENT", "TRACKING", "off"),
            conn.call("CLIENT", "TRACKING", "on", "OPTOUT"),
            conn.call("CLIENT", "CACHING", "yes"),
            conn.call("CLIENT", "TRACKING", "off"),
            conn.call("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "user:"),
            conn.call("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "user:1"),
            conn.call("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "use"),
            conn.call("CLIENT", "TRACKING", "on"),
            conn.call("CLIENT", "NOSUCH"),
        ]
        return kinds(replies)

    replies = run_both(sides, scenario)
    assert sum(isinstance(reply, Err) for reply, _ in replies) == 25


def test_trackinginfo_and_getredir_match_redis(sides: list[Side]) -> None:
    def scenario(side: Side) -> list[Any]:
        seen: list[Any] = []
        for resp3 in (False, True):
            conn = side.conn(resp3)
            other = side.conn()
            other_id = other.call("CLIENT", "ID")

            def info(conn: RespConn = conn) -> Any:
                """(flags, redirect, prefixes), from the RESP3 map or the RESP2 array."""
                reply = conn.call("CLIENT", "TRACKINGINFO")
                if isinstance(reply, dict):
                    return reply[b"flags"], reply[b"redirect"], reply[b"prefixes"]
                assert reply[0::2] == [b"flags", b"redirect", b"prefixes"]
                return reply[1], reply[3], reply[5]

            seen += [info(), conn.call("CLIENT", "GETREDIR")]
            conn.call("CLIENT", "TRACKING", "on", "REDIRECT", other_id)
            flags, redirect, prefixes = info()
            seen += [flags, redirect == other_id, prefixes, conn.call("CLIENT", "GETREDIR") == other_id]
            conn.call("CLIENT", "TRACKING", "on", "OPTIN", "NOLOOP")
            conn.call("CLIENT", "CACHING", "yes")
            seen += [info(), conn.call("CLIENT", "GETREDIR")]
            conn.call("CLIENT", "TRACKING", "off")
            conn.call("CLIENT", "TRACKING", "on", "OPTOUT")
            conn.call("CLIENT", "CACHING", "no")
            seen.append(info())
            conn.call("CLIENT", "GETREDIR")  # another CLIENT subcommand keeps CACHING
            conn.call("GET", "x")  # any other command consumes it
            seen.append(info())
            conn.call("CLIENT", "TRACKING", "off")
            conn.call("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "b", "PREFIX", "a")
            seen.append(info())
            conn.call("CLIENT", "TRACKING", "off")
            conn.call("CLIENT", "TRACKING", "on", "BCAST")
            seen.append(info())
            conn.call("CLIENT", "TRACKING", "off")
            seen += [info(), conn.call("CLIENT", "GETREDIR")]
        return seen

    run_both(sides, scenario)


def test_resp3_invalidations_match_redis(sides: list[Side]) -> None:
    def scenario(side: Side) -> list[Any]:
        tracker = side.conn(resp3=True)
        writer = side.conn()
        seen = [tracker.call("CLIENT", "TRACKING", "on")]
        seen.append(tracker.call("GET", "k"))
        writer.call("SET", "k", "1")
        seen.append(tracker.read())  # the invalidation
        seen.append(tracker.call("GET", "k"))  # read again: tracked again
        writer.call("SET", "k", "2")
        writer.call("SET", "k", "3")  # once forgotten, no second invalidation
        seen.append(tracker.read())
        seen.append(tracker.call("PING"))
        # Keys read by another command than GET, and a key never read.
        seen.append(tracker.call("GET", "s"))
        writer.call("SET", "unread", "1")
        writer.call("SET", "s", "1")
        seen.append(tracker.read())
        # The tracker's own write: the reply first, then the invalidation.
        tracker.call("GET", "own")
        seen.append(tracker.call("SET", "own", "1"))
        seen.append(tracker.read())
        # A flush: one invalidation with a null.
        tracker.call("GET", "k")
        side.flush()
        seen.append(tracker.read())
        seen.append(tracker.call("PING"))
        # Off: nothing more.
        tracker.call("GET", "k")
        seen.append(tracker.call("CLIENT", "TRACKING", "off"))
        writer.call("SET", "k", "9")
        seen.append(tracker.call("PING"))
        return kinds(seen)

    seen = run_both(sides, scenario)
    assert seen[2] == (Push([b"invalidate", [b"k"]]), "Push")
    assert seen[9] == (Push([b"invalidate", [b"own"]]), "Push")
    assert seen[10] == (Push([b"invalidate", None]), "Push")


def test_noloop_optin_optout_match_redis(sides: list[Side]) -> None:
    def scenario(side: Side) -> list[Any]:
        tracker = side.conn(resp3=True)
        writer = side.conn()
        seen = [tracker.call("CLIENT", "TRACKING", "on", "NOLOOP")]
        tracker.call("GET", "k")
        tracker.call("SET", "k", "mine")
        seen.append(tracker.call("PING"))  # no invalidation for its own write
        tracker.call("GET", "k")
        writer.call("SET", "k", "theirs")
        seen.append(tracker.read())
        tracker.call("CLIENT", "TRACKING", "off")
        tracker.call("CLIENT", "TRACKING", "on", "OPTIN")
        tracker.call("CLIENT", "CACHING", "yes")
        tracker.call("GET", "o1")
        tracker.call("GET", "o2")  # CACHING applied to the previous command only
        writer.call("SET", "o2", "1")
        writer.call("SET", "o1", "1")
        seen.append(tracker.read())
        seen.append(tracker.call("PING"))
        tracker.call("CLIENT", "TRACKING", "off")
        tracker.call("CLIENT", "TRACKING", "on", "OPTOUT")
        tracker.call("CLIENT", "CACHING", "no")
        tracker.call("GET", "p1")  # not tracked
        tracker.call("GET", "p2")
        writer.call("SET", "p1", "1")
        writer.call("SET", "p2", "1")
        seen.append(tracker.read())
        seen.append(tracker.call("PING"))
        return kinds(seen)

    seen = run_both(sides, scenario)
    assert seen[3] == (Push([b"invalidate", [b"o1"]]), "Push")


def test_redirect_to_a_resp2_subscriber_and_to_resp3_match_redis(sides: list[Side]) -> None:
    def scenario(side: Side) -> list[Any]:
        listener = side.conn()
        listener_id = listener.call("CLIENT", "ID")
        seen = [listener.call("SUBSCRIBE", "__redis__:invalidate")]
        tracker = side.conn()
        writer = side.conn()
        seen.append(tracker.call("CLIENT", "TRACKING", "on", "REDIRECT", listener_id))
        tracker.call("GET", "k")
        tracker.call("GET", "j")
        writer.call("SET", "k", "1")
        seen.append(listener.read())
        side.flush()
        seen.append(listener.read())
        # A RESP2 redirect client not in pub/sub mode gets nothing.
        plain = side.conn()
        plain_id = plain.call("CLIENT", "ID")
        tracker.call("CLIENT", "TRACKING", "on", "REDIRECT", plain_id)
        tracker.call("GET", "k")
        writer.call("SET", "k", "2")
        seen.append(plain.call("PING"))
        # A RESP3 redirect client gets the invalidate push.
        modern = side.conn(resp3=True)
        modern_id = modern.call("CLIENT", "ID")
        tracker.call("CLIENT", "TRACKING", "on", "REDIRECT", modern_id)
        tracker.call("GET", "k")
        writer.call("SET", "k", "3")
        seen.append(modern.read())
        return kinds(seen)

    seen = run_both(sides, scenario)
    assert seen[2] == ([b"message", b"__redis__:invalidate", [b"k"]], "list")
    assert seen[3] == ([b"message", b"__redis__:invalidate", None], "list")


def test_broken_redirect_matches_redis(sides: list[Side]) -> None:
    def scenario(side: Side) -> list[Any]:
        tracker = side.conn(resp3=True)
        writer = side.conn()
        gone = RespConn(side.port)
        gone_id = gone.call("CLIENT", "ID")
        seen = [tracker.call("CLIENT", "TRACKING", "on", "REDIRECT", gone_id)]
        gone.close()
        # Wait until the server noticed (the id is gone from its clients).
        while tracker.call("CLIENT", "TRACKING", "on", "REDIRECT", gone_id) == "OK":
            pass
        tracker.call("GET", "z")
        writer.call("SET", "z", "1")
        seen.append(tracker.read() == Push([b"tracking-redir-broken", gone_id]))
        info = tracker.call("CLIENT", "TRACKINGINFO")
        seen.append(info[b"flags"])
        seen.append(info[b"redirect"] == gone_id)
        return seen

    assert run_both(sides, scenario) == ["OK", True, ("set", [b"broken_redirect", b"on"]), True]


def test_bcast_prefixes_batches_and_noloop_match_redis(sides: list[Side]) -> None:
    def scenario(side: Side) -> list[Any]:
        tracker = side.conn(resp3=True)
        writer = side.conn()
        seen = [tracker.call("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a", "PREFIX", "b", "NOLOOP")]
        # One pipelined batch: the keys of a prefix come in one message, sorted.
        writer.send_raw(b"".join(encode_command("SET", key, "1") for key in ("a2", "c", "b1", "a1", "a2")))
        assert [writer.read() for _ in range(5)] == ["OK"] * 5
        seen.append(tracker.read())
        seen.append(tracker.read())
        seen.append(tracker.call("SET", "a3", "1"))  # its own change: NOLOOP
        writer.call("SET", "a4", "1")
        seen.append(tracker.read())
        side.flush()
        seen.append(tracker.read())
        seen.append(tracker.call("PING"))
        tracker.call("CLIENT", "TRACKING", "off")
        all_keys = side.conn(resp3=True)
        seen.append(all_keys.call("CLIENT", "TRACKING", "on", "BCAST"))
        writer.call("SET", "zz", "1")
        seen.append(all_keys.read())
        return kinds(seen)

    seen = run_both(sides, scenario)
    assert seen[1] == (Push([b"invalidate", [b"a1", b"a2"]]), "Push")


def test_a_remembered_key_that_expires_is_invalidated_like_redis(sides: list[Side]) -> None:
    def scenario(side: Side) -> list[Any]:
        tracker = side.conn(resp3=True)
        seen = [tracker.call("CLIENT", "TRACKING", "on")]
        side.set_ttl("short", "1", 0.1)
        side.set_ttl("long", "1", 100)
        seen.append(tracker.call("GET", "short"))
        seen.append(tracker.call("GET", "long"))
        # Nobody touches the key: the expiry itself must be announced (Redis's active expiry
        # finds it within a few cycles of 100 ms).
        tracker.sock.settimeout(3)
        seen.append(tracker.read())
        seen.append(tracker.call("PING"))
        return kinds(seen)

    seen = run_both(sides, scenario)
    assert seen[3] == (Push([b"invalidate", [b"short"]]), "Push")


def test_a_key_rewritten_with_a_shorter_ttl_is_invalidated_at_the_new_deadline(
    sides: list[Side],
) -> None:
    def scenario(side: Side) -> list[Any]:
        tracker = side.conn(resp3=True)
        seen = [tracker.call("CLIENT", "TRACKING", "on")]
        side.set_ttl("k", "old", 100)
        seen.append(tracker.call("GET", "k"))
        side.set_ttl("k", "new", 0.1)
        seen.append(tracker.read())  # the change
        seen.append(tracker.call("GET", "k"))
        tracker.sock.settimeout(3)
        seen.append(tracker.read())  # the expiry, at the new deadline
        return kinds(seen)

    seen = run_both(sides, scenario)
    assert seen[2] == seen[4] == (Push([b"invalidate", [b"k"]]), "Push")


def test_expiry_timers_are_dropped_with_the_keys(ours: ServerThread) -> None:
    server = ours.server
    assert server is not None
    tracker = RespConn(ours.port)
    tracker.call("HELLO", "3")
    tracker.call("CLIENT", "TRACKING", "on")
    ours.call(lambda: server.databases[0].set("k", b"1", 100))
    tracker.call("GET", "k")
    state = server.extra["tracking"]
    assert list(state.expiries) == [(0, "k")]
    ours.call(server.databases[0].flush)
    assert tracker.read() == Push([b"invalidate", None])
    assert not state.expiries
    tracker.close()


def test_flushing_every_database_sends_one_null(ours: ServerThread) -> None:
    server = ours.server
    assert server is not None
    tracker = RespConn(ours.port)
    tracker.call("HELLO", "3")
    tracker.call("CLIENT", "TRACKING", "on")

    def flush_all() -> None:
        for db in server.databases:
            db.flush()

    ours.call(flush_all)
    assert tracker.read() == Push([b"invalidate", None])
    assert tracker.call("PING") == "PONG"
    tracker.close()


def test_tracking_clients_switch_class_and_are_forgotten_on_disconnect(ours: ServerThread) -> None:
    server = ours.server
    assert server is not None
    conn = RespConn(ours.port)
    cid = conn.call("CLIENT", "ID")
    assert type(server.clients[cid]) is Client
    conn.call("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "p")
    assert type(server.clients[cid]) is tracking.TrackingClient
    conn.call("CLIENT", "TRACKING", "off")
    assert type(server.clients[cid]) is Client
    conn.call("CLIENT", "TRACKING", "on")
    conn.call("GET", "remembered")
    state = server.extra["tracking"]
    assert state.table == {"remembered": {cid}}
    conn.close()
    deadline = time.monotonic() + 5
    while state.clients and time.monotonic() < deadline:
        time.sleep(0.005)
    assert cid not in server.clients
    assert not state.clients
    assert not state.table
    assert not state.prefixes


def test_the_table_is_bounded_and_evicted_keys_are_invalidated(
    ours: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracking, "TRACKING_TABLE_MAX_KEYS", 3)
    tracker = RespConn(ours.port)
    tracker.call("HELLO", "3")
    tracker.call("CLIENT", "TRACKING", "on")
    for key in ("k1", "k2", "k3"):
        tracker.call("GET", key)
    tracker.send("GET", "k4")
    replies = [tracker.read(), tracker.read()]
    assert Push([b"invalidate", [b"k1"]]) in replies
    assert None in replies
    state = ours.server.extra["tracking"]  # type: ignore[union-attr]
    assert sorted(state.table) == ["k2", "k3", "k4"]
    tracker.close()


def test_redis_py_client_side_cache_is_invalidated(
    ours: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    # redis-py enables its cache only for servers that say 7.4 or later (a product policy:
    # the protocol it uses, CLIENT TRACKING and RESP3 pushes, is Redis 6's); ours says 7.2.
    monkeypatch.setattr(CacheProxyConnection, "MIN_ALLOWED_VERSION", "7.2.0")
    cached = redis.Redis(host=HOST, port=ours.port, protocol=3, cache_config=CacheConfig())
    writer = redis.Redis(host=HOST, port=ours.port)
    try:
        writer.set("user:1", "alice")
        assert cached.get("user:1") == b"alice"
        cache = cached.get_cache()
        assert cache is not None
        assert cache.size == 1
        assert cached.get("user:1") == b"alice"  # served from the local cache
        writer.set("user:1", "bob")
        # The invalidation is read before the next command: never the stale value.
        deadline = 200
        while cached.get("user:1") != b"bob" and deadline:
            deadline -= 1
        assert cached.get("user:1") == b"bob"
    finally:
        cached.close()
        writer.close()
