"""Blocking list commands (BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP): the same scenarios run on
our server and on a real redis-server, plus what only ours can show (waiter bookkeeping,
the no-block rule inside EXEC/scripts)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from respclient import Err, RespConn

from stratacache.server.commands import COMMANDS
from stratacache.server.commands.lists import blocked_clients, unblock_client
from stratacache.server.connection import Client, Deferred
from stratacache.server.resp import NULL_ARRAY

Scenario = Callable[[int], Any]


def _both(ours: Any, real: Any, scenario: Scenario) -> Any:
    """Run ``scenario(port)`` on both servers; assert the results are equal; return it."""
    mine, theirs = scenario(ours.port), scenario(real.port)
    assert mine == theirs, f"ours {mine!r} != redis {theirs!r}"
    return mine


def test_timeout_errors_match_redis(ours: Any, real: Any) -> None:
    def scenario(port: int) -> Any:
        conn = RespConn(port)
        try:
            return [
                conn.call("BLPOP", "l", timeout)
                for timeout in ("x", "-1", "-0.5", "1e30", "inf", "nan", "0.1x", "")
            ] + [
                conn.call("BRPOP", "l", "-1"),
                conn.call("BLMOVE", "a", "b", "LEFT", "LEFT", "x"),
                conn.call("BLMOVE", "a", "b", "UP", "LEFT", "x"),
                conn.call("BRPOPLPUSH", "a", "b", "-1"),
                conn.call("BLMPOP", "x", "1", "l", "LEFT"),
                conn.call("BLMPOP", "0", "0", "l", "LEFT"),
                conn.call("BLMPOP", "0", "1", "l", "UP"),
            ]
        finally:
            conn.close()

    replies = _both(ours, real, scenario)
    assert replies[0] == Err("ERR timeout is not a float or out of range")
    assert replies[1] == Err("ERR timeout is negative")


def test_available_element_is_served_at_once(ours: Any, real: Any) -> None:
    def scenario(port: int) -> Any:
        conn = RespConn(port)
        try:
            conn.call("RPUSH", "b", "1", "2", "3")
            conn.call("SET", "str", "x")
            return [
                conn.call("BLPOP", "nol", "b", "0"),
                conn.call("BRPOP", "nol", "b", "0"),
                conn.call("BLMOVE", "b", "c", "LEFT", "RIGHT", "0"),
                conn.call("BRPOPLPUSH", "c", "b", "0"),
                conn.call("BLMPOP", "0", "2", "nol", "b", "LEFT", "COUNT", "5"),
                conn.call("BLPOP", "str", "b", "0"),  # wrong type before any list
                conn.call("BLMOVE", "nol", "str", "LEFT", "LEFT", "0.01"),
            ]
        finally:
            conn.close()

    _both(ours, real, scenario)


def test_timeout_replies_null_array_or_nil(ours: Any, real: Any) -> None:
    def scenario(port: int) -> Any:
        conn = RespConn(port)
        try:
            lines = []
            for args in (
                ("BLPOP", "nol", "0.05"),
                ("BRPOP", "nol", "nol2", "0.05"),
                ("BLMPOP", "0.05", "1", "nol", "LEFT"),
                ("BLMOVE", "nol", "dst", "LEFT", "LEFT", "0.05"),
                ("BRPOPLPUSH", "nol", "dst", "0.05"),
            ):
                started = time.monotonic()
                conn.send(*args)
                lines.append(conn.rfile.readline())
                assert 0.04 <= time.monotonic() - started < 2
            return lines
        finally:
            conn.close()

    assert _both(ours, real, scenario) == [b"*-1\r\n"] * 5


def test_longest_waiting_client_is_served_first(ours: Any, real: Any) -> None:
    def scenario(port: int) -> Any:
        first, second, pusher = RespConn(port), RespConn(port), RespConn(port)
        try:
            first.send("BLPOP", "q", "5")
            time.sleep(0.05)
            second.send("BRPOP", "other", "q", "5")
            time.sleep(0.05)
            pushed = pusher.call("RPUSH", "q", "a")
            got_first = first.read()
            pushed2 = pusher.call("LPUSH", "q", "b", "c")  # one left over
            got_second = second.read()
            return [pushed, got_first, pushed2, got_second, pusher.call("LRANGE", "q", "0", "-1")]
        finally:
            for conn in (first, second, pusher):
                conn.close()

    assert _both(ours, real, scenario) == [1, [b"q", b"a"], 2, [b"q", b"b"], [b"c"]]


def test_lmove_and_blmove_chains_wake_clients(ours: Any, real: Any) -> None:
    def scenario(port: int) -> Any:
        mover, waiter, pusher = RespConn(port), RespConn(port), RespConn(port)
        try:
            mover.send("BLMOVE", "src", "mid", "RIGHT", "LEFT", "5")
            time.sleep(0.05)
            waiter.send("BLMPOP", "5", "2", "nol", "mid", "LEFT", "COUNT", "3")
            time.sleep(0.05)
            pusher.call("RPUSH", "src", "x")
            moved = mover.read()
            popped = waiter.read()
            # LMOVE wakes too
            waiter.send("BLPOP", "dst", "5")
            time.sleep(0.05)
            pusher.call("RPUSH", "src2", "y")
            pusher.call("LMOVE", "src2", "dst", "LEFT", "LEFT")
            return [moved, popped, waiter.read(), pusher.call("LLEN", "dst")]
        finally:
            for conn in (mover, waiter, pusher):
                conn.close()

    assert _both(ours, real, scenario) == [b"x", [b"mid", [b"x"]], [b"dst", b"y"], 0]


def test_pipelined_commands_wait_behind_a_blocked_one(ours: Any, real: Any) -> None:
    def scenario(port: int) -> Any:
        blocked, pusher = RespConn(port), RespConn(port)
        try:
            blocked.send_raw(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nk\r\n$1\r\n5\r\n*2\r\n$4\r\nLLEN\r\n$1\r\nk\r\n")
            time.sleep(0.05)
            pusher.call("RPUSH", "k", "1", "2")
            return [blocked.read(), blocked.read()]
        finally:
            blocked.close()
            pusher.close()

    assert _both(ours, real, scenario) == [[b"k", b"1"], 1]


def test_disconnect_unblocks_and_leaves_the_element(ours: Any, client: RespConn) -> None:
    server = ours.server
    gone = RespConn(ours.port)
    gone.send("BLPOP", "k", "0")
    deadline = time.monotonic() + 2
    while blocked_clients(server) != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert blocked_clients(server) == 1
    gone.close()
    while blocked_clients(server) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert blocked_clients(server) == 0
    assert client.call("RPUSH", "k", "v") == 1
    assert client.call("LLEN", "k") == 1  # nobody took it


def test_unblock_client_answers_like_a_timeout_or_an_error(ours: Any) -> None:
    server = ours.server
    conns = [RespConn(ours.port), RespConn(ours.port)]
    try:
        conns[0].send("BLPOP", "k", "0")
        conns[1].send("BLMOVE", "k", "d", "LEFT", "LEFT", "0")
        deadline = time.monotonic() + 2
        while blocked_clients(server) != 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        clients = sorted(server.clients.values(), key=lambda c: c.id)[-2:]
        results: list[bool] = []
        ours.call(lambda: results.append(unblock_client(clients[0])))
        ours.call(lambda: results.append(unblock_client(clients[1], error=True)))
        assert results == [True, True]
        assert conns[0].read() is None
        assert conns[1].read() == Err("UNBLOCKED client unblocked via CLIENT UNBLOCK")
        assert blocked_clients(server) == 0
    finally:
        for conn in conns:
            conn.close()


@pytest.mark.parametrize("flag", ["in_exec", "in_script"])
def test_blocking_commands_do_not_block_inside_exec_or_scripts(ours: Any, flag: str) -> None:
    """EXEC and EVAL set ``client.extra[flag]`` while they run commands: a blocking command
    then answers nil at once, as in Redis."""
    server = ours.server
    results: list[Any] = []

    def run() -> None:
        fake = Client(server)
        fake.extra[flag] = True
        for args in (
            [b"BLPOP", b"nol", b"0"],
            [b"BRPOP", b"nol", b"1"],
            [b"BLMPOP", b"0", b"1", b"nol", b"LEFT"],
            [b"BLMOVE", b"nol", b"d", b"LEFT", b"LEFT", b"0"],
            [b"BRPOPLPUSH", b"nol", b"d", b"0"],
        ):
            results.append(COMMANDS[args[0].lower()].handler(fake, args))
        # A push inside EXEC serves blocked clients after it, from the loop, not during it.
        results.append(blocked_clients(server))

    ours.call(run)
    assert results[:3] == [NULL_ARRAY] * 3
    assert results[3:5] == [None, None]
    assert not any(type(r) is Deferred for r in results)
    assert results[5] == 0


def test_push_inside_exec_serves_after_the_transaction(ours: Any) -> None:
    server = ours.server
    waiting = RespConn(ours.port)
    try:
        waiting.send("BLPOP", "k", "5")
        deadline = time.monotonic() + 2
        while blocked_clients(server) != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        seen: list[Any] = []

        def transaction() -> None:
            fake = Client(server)
            fake.extra["in_exec"] = True
            COMMANDS[b"rpush"].handler(fake, [b"RPUSH", b"k", b"a", b"b"])
            # Still inside the "transaction": nobody was served yet.
            seen.append(blocked_clients(server))
            seen.append(COMMANDS[b"lpop"].handler(fake, [b"LPOP", b"k"]))
            fake.extra.pop("in_exec")

        ours.call(transaction)
        assert seen == [1, b"a"]
        assert waiting.read() == [b"k", b"b"]
    finally:
        waiting.close()


def test_rename_onto_a_waited_key_serves_it(ours: Any, real: Any) -> None:
    def scenario(port: int) -> Any:
        waiting, other = RespConn(port), RespConn(port)
        try:
            waiting.send("BLPOP", "k", "5")
            time.sleep(0.05)
            other.call("RPUSH", "src", "x", "y")
            other.call("RENAME", "src", "k")
            return [waiting.read(), other.call("LRANGE", "k", "0", "-1")]
        finally:
            waiting.close()
            other.close()

    assert _both(ours, real, scenario) == [[b"k", b"x"], [b"y"]]


def test_a_push_in_another_database_does_not_serve(ours: Any, real: Any) -> None:
    def scenario(port: int) -> Any:
        waiting, other = RespConn(port), RespConn(port)
        try:
            waiting.call("SELECT", "1")
            waiting.call("DEL", "k")
            waiting.send("BLPOP", "k", "0.3")
            time.sleep(0.05)
            other.call("RPUSH", "k", "db0")
            return [waiting.read(), other.call("LLEN", "k")]
        finally:
            waiting.close()
            other.close()

    assert _both(ours, real, scenario) == [None, 1]


def test_sub_millisecond_timeout_is_rounded_up_not_forever(ours: Any, real: Any) -> None:
    """Redis rounds the timeout up to whole milliseconds: 0.0001 s is 1 ms (a 0 would mean
    "wait forever"), and -0.0001 is 0."""

    def scenario(port: int) -> Any:
        waiting, other = RespConn(port), RespConn(port)
        try:
            waiting.send("BRPOP", "k", "0.0001")
            time.sleep(0.2)
            other.call("RPUSH", "k", "late")
            first = waiting.read()
            waiting.send("BRPOP", "k2", "-0.0001")
            time.sleep(0.2)
            other.call("RPUSH", "k2", "later")
            return [first, waiting.read()]
        finally:
            waiting.close()
            other.close()

    assert _both(ours, real, scenario) == [None, [b"k2", b"later"]]
