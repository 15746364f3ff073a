"""Transactions (MULTI EXEC DISCARD WATCH UNWATCH) against a real redis-server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from respclient import HOST, Err, Pair, RespConn

from stratacache.server import ServerThread
from stratacache.server.commands import COMMANDS, Command

EXECABORT = Err("EXECABORT Transaction discarded because of previous errors.")


@pytest.fixture
def others(ours: ServerThread, real: Any) -> Iterator[Pair]:
    """A second pair of raw connections (another client on each server)."""
    a, b = RespConn(ours.port), RespConn(real.port)
    yield Pair(a, b)
    a.close()
    b.close()


def test_multi_exec_discard_errors_match_redis(pair: Pair) -> None:
    assert pair.check("EXEC") == Err("ERR EXEC without MULTI")
    assert pair.check("DISCARD") == Err("ERR DISCARD without MULTI")
    assert pair.check("MULTI") == "OK"
    assert pair.check("MULTI") == Err("ERR MULTI calls can not be nested")
    assert pair.check("WATCH", "k") == Err("ERR WATCH inside MULTI is not allowed")
    assert pair.check("SET", "k", "v") == "QUEUED"
    assert pair.check("GET", "k") == "QUEUED"
    # Neither the nested MULTI nor the WATCH flags the transaction.
    assert pair.check("EXEC") == ["OK", b"v"]
    assert pair.check("EXEC") == Err("ERR EXEC without MULTI")
    for args in (("WATCH",), ("UNWATCH", "x"), ("MULTI", "x"), ("DISCARD", "x")):
        assert isinstance(pair.check(*args), Err)  # outside MULTI: arity errors
    # Redis answers a refused EXEC with EXECABORT even outside MULTI.
    assert pair.check("EXEC", "x") == Err(
        "EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command"
    )


def test_exec_returns_errors_inside_the_array(pair: Pair) -> None:
    pair.check("MULTI")
    pair.check("SET", "k", "1")
    pair.check("SET", "k", "v", "EX", "notanumber")
    pair.check("SET", "k", "v", "EX", "0")
    pair.check("GET", "k")
    reply = pair.check("EXEC")
    assert reply[0] == "OK"
    assert reply[3] == b"1"
    assert isinstance(reply[1], Err)
    assert isinstance(reply[2], Err)


@pytest.mark.parametrize(
    "bad",
    [("NOSUCHCOMMAND", "x"), ("GET",), ("GET", "a", "b"), ("SET", "k")],
    ids=["unknown", "arity-low", "arity-high", "set-arity"],
)
def test_queue_time_error_aborts_exec(pair: Pair, bad: tuple[str, ...]) -> None:
    pair.check("SET", "k", "before")
    pair.check("MULTI")
    pair.check("SET", "k", "after")
    assert isinstance(pair.check(*bad), Err)
    assert pair.check("SET", "k", "later") == "QUEUED"  # still queued after the error
    assert pair.check("EXEC") == EXECABORT
    assert pair.check("GET", "k") == b"before"  # nothing ran
    assert pair.check("EXEC") == Err("ERR EXEC without MULTI")


def test_discard_drops_the_queue_and_the_watches(pair: Pair, others: Pair) -> None:
    pair.check("SET", "k", "1")
    pair.check("WATCH", "k")
    pair.check("MULTI")
    pair.check("SET", "k", "2")
    assert pair.check("DISCARD") == "OK"
    assert pair.check("GET", "k") == b"1"
    others.check("SET", "k", "3")  # no longer watched: the next transaction runs
    pair.check("MULTI")
    pair.check("SET", "k", "4")
    assert pair.check("EXEC") == ["OK"]


def test_watched_key_changed_by_another_client_aborts(pair: Pair, others: Pair) -> None:
    pair.check("SET", "k", "1")
    pair.check("WATCH", "k", "unrelated")
    others.check("SET", "k", "2")
    pair.check("MULTI")
    pair.check("SET", "k", "3")
    assert pair.check("EXEC") is None  # the null array
    assert pair.check("GET", "k") == b"2"
    # EXEC dropped the watches: the next transaction runs.
    others.check("SET", "k", "5")
    pair.check("MULTI")
    pair.check("SET", "k", "6")
    assert pair.check("EXEC") == ["OK"]


def test_own_write_after_watch_aborts_and_unwatch_clears(pair: Pair) -> None:
    pair.check("WATCH", "k")
    pair.check("SET", "k", "mine")
    pair.check("MULTI")
    pair.check("GET", "k")
    assert pair.check("EXEC") is None
    pair.check("WATCH", "k")
    pair.check("SET", "k", "again")
    assert pair.check("UNWATCH") == "OK"
    pair.check("MULTI")
    pair.check("GET", "k")
    assert pair.check("EXEC") == [b"again"]


def test_writes_inside_exec_do_not_abort_the_next_transaction(pair: Pair) -> None:
    pair.check("WATCH", "k")
    pair.check("MULTI")
    pair.check("SET", "k", "1")
    assert pair.check("EXEC") == ["OK"]
    # The EXEC above wrote k while (formerly) watching it; that must not leak into this one.
    pair.check("MULTI")
    pair.check("SET", "k", "2")
    assert pair.check("EXEC") == ["OK"]
    pair.check("WATCH", "k")
    pair.check("MULTI")
    pair.check("GET", "k")
    assert pair.check("EXEC") == [b"2"]


def _set_with_ttl(ours: ServerThread, pair: Pair, key: str, value: str, ms: int) -> None:
    """SET key value PX ms on both (ours through its database: SET's options are another
    family's, and this test is about WATCH)."""
    server = ours.server
    assert server is not None
    ours.call(lambda: server.databases[0].set(key, value.encode(), ms / 1000))
    assert pair.real.call("SET", key, value, "PX", ms) == "OK"


def test_watch_key_that_expires_before_exec_aborts(ours: ServerThread, pair: Pair) -> None:
    _set_with_ttl(ours, pair, "k", "v", 60)
    pair.check("WATCH", "k")
    time.sleep(0.15)  # nobody touches k: it only expires
    pair.check("MULTI")
    pair.check("SET", "other", "x")
    assert pair.check("EXEC") is None
    # A watched key with an expiry that has not passed yet does not abort.
    _set_with_ttl(ours, pair, "k2", "v", 100_000)
    pair.check("WATCH", "k2")
    pair.check("MULTI")
    pair.check("GET", "k2")
    assert pair.check("EXEC") == [b"v"]
    # Nor does one whose watch was dropped (UNWATCH) before it expired.
    _set_with_ttl(ours, pair, "k3", "v", 60)
    pair.check("WATCH", "k3")
    pair.check("UNWATCH")
    time.sleep(0.15)
    pair.check("MULTI")
    pair.check("GET", "k3")
    assert pair.check("EXEC") == [None]


def test_watched_absent_key_created_aborts(pair: Pair, others: Pair) -> None:
    pair.check("WATCH", "absent")
    others.check("SET", "absent", "now")
    pair.check("MULTI")
    pair.check("GET", "absent")
    assert pair.check("EXEC") is None


def test_watch_is_per_database(pair: Pair, others: Pair) -> None:
    pair.check("WATCH", "k")  # in db 0
    others.check("SELECT", "1")
    others.check("SET", "k", "db1")  # same name, other database
    pair.check("MULTI")
    pair.check("SELECT", "1")
    pair.check("GET", "k")
    assert pair.check("EXEC") == ["OK", b"db1"]
    others.check("SELECT", "0")


def test_flush_dirties_watchers(ours: ServerThread, client: RespConn) -> None:
    # FLUSHDB belongs to another command family; the flush itself is the database's.
    client.call("SET", "k", "v")
    client.call("WATCH", "k")
    server = ours.server
    assert server is not None
    ours.call(server.databases[0].flush)
    client.call("MULTI")
    client.call("SET", "k", "w")
    assert client.call("EXEC") is None


def _over_maxmemory(mine: ServerThread, pair: Pair) -> None:
    """Put both servers over maxmemory with noeviction (denyoom commands answer OOM)."""
    pair.check("SET", "big", "x" * 1000)
    server = mine.server
    assert server is not None

    def shrink() -> None:
        # The store keeps itself within the pool by evicting; lowering the limit under what
        # is used is the way to put our server over it, as Redis is with maxmemory 1.
        server.config.maxmemory = 1
        server.config.maxmemory_policy = "noeviction"

    mine.call(shrink)
    assert pair.real.call("CONFIG", "SET", "maxmemory", "1") == "OK"


OOM = Err("OOM command not allowed when used memory > 'maxmemory'.")


@pytest.fixture
def private_pair(
    server_factory: Callable[..., ServerThread], redis_server_factory: Any
) -> Iterator[tuple[ServerThread, Pair, Pair]]:
    """Servers of this test's own (their limits change): ours, and two clients on each."""
    mine, theirs = server_factory(), redis_server_factory()
    first = Pair(RespConn(mine.port), RespConn(theirs.port))
    second = Pair(RespConn(mine.port), RespConn(theirs.port))
    yield mine, first, second
    for conn in (first.ours, first.real, second.ours, second.real):
        conn.close()


def test_queue_time_oom_aborts_exec_like_redis(private_pair: tuple[ServerThread, Pair, Pair]) -> None:
    mine, pair, _ = private_pair
    _over_maxmemory(mine, pair)
    assert pair.check("SET", "k", "v") == OOM
    assert pair.check("GET", "big") == b"x" * 1000  # outside MULTI reads still run
    pair.check("MULTI")
    assert pair.check("SET", "k", "v") == OOM
    # Queueing takes memory: in MULTI even a read is refused over maxmemory.
    assert pair.check("GET", "big") == OOM
    assert pair.check("EXEC") == EXECABORT
    assert pair.check("MULTI") == "OK"
    assert pair.check("DISCARD") == "OK"  # never refused


def test_exec_of_a_denyoom_queue_over_maxmemory_is_refused_like_redis(
    private_pair: tuple[ServerThread, Pair, Pair],
) -> None:
    mine, pair, other = private_pair
    pair.check("MULTI")
    assert pair.check("SET", "k", "v") == "QUEUED"  # queued while there is room
    _over_maxmemory(mine, other)  # memory runs out before EXEC
    assert pair.check("EXEC") == Err(f"EXECABORT Transaction discarded because of: {OOM.message}")
    assert pair.check("GET", "k") is None
    assert pair.check("EXEC") == Err("ERR EXEC without MULTI")


def test_refused_exec_discards_the_transaction_like_redis(pair: Pair) -> None:
    pair.check("SET", "k", "1")
    pair.check("MULTI")
    pair.check("SET", "k", "2")
    assert pair.check("EXEC", "extra") == Err(
        "EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command"
    )
    assert pair.check("EXEC") == Err("ERR EXEC without MULTI")
    assert pair.check("GET", "k") == b"1"


def test_in_exec_flag_is_set_only_while_exec_runs(
    ours: ServerThread, client: RespConn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A probe command standing for a blocking command, which reads the flag to answer at once.
    def probe(conn: Any, args: list[bytes]) -> Any:
        return 1 if conn.extra.get("in_exec") else 0

    monkeypatch.setitem(
        COMMANDS, b"xprobe", Command(name="xprobe", handler=probe, arity=1, flags=frozenset())
    )
    assert client.call("XPROBE") == 0
    client.call("MULTI")
    client.call("XPROBE")
    client.call("XPROBE")
    assert client.call("EXEC") == [1, 1]
    assert client.call("XPROBE") == 0


def test_redis_py_transaction_pipeline(rclient: redis.Redis) -> None:
    with rclient.pipeline(transaction=True) as pipe:
        pipe.set("a", "1").get("a").set("b", "2")
        assert pipe.execute() == [True, b"1", True]
    with rclient.pipeline(transaction=True) as pipe:
        pipe.set("a", "v", ex=0)
        pipe.get("a")
        with pytest.raises(redis.ResponseError, match="invalid expire time"):
            pipe.execute()
    with rclient.pipeline(transaction=True) as pipe:
        pipe.watch("a")
        assert pipe.get("a") == b"1"
        rclient.set("a", "changed")
        pipe.multi()
        pipe.set("a", "mine")
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert rclient.get("a") == b"changed"


def test_optimistic_locking_from_many_threads_reaches_the_exact_total(ours: ServerThread) -> None:
    threads_n, per_thread = 8, 40
    retries = [0] * threads_n
    errors: list[BaseException] = []
    start = threading.Barrier(threads_n)

    def worker(index: int) -> None:
        r = redis.Redis(host=HOST, port=ours.port, protocol=2)
        try:
            start.wait()
            for _ in range(per_thread):
                with r.pipeline(transaction=True) as pipe:
                    while True:
                        try:
                            pipe.watch("counter")
                            value = int(pipe.get("counter") or 0)
                            pipe.multi()
                            pipe.set("counter", value + 1)
                            pipe.execute()
                            break
                        except redis.WatchError:
                            retries[index] += 1
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            r.close()

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(60)
    assert not errors
    r = redis.Redis(host=HOST, port=ours.port, protocol=2)
    try:
        assert int(r.get("counter") or 0) == threads_n * per_thread
    finally:
        r.close()
    # The workers really contended: some transactions were aborted and retried.
    assert sum(retries) > 0
