"""The skeleton end to end: connect, run, pipeline, unknown commands, arity."""

from __future__ import annotations

from typing import Any

import redis
from respclient import Err, Pair, RespConn

from stratacache.server.resp import encode_command


def test_ping_echo_get_set_match_redis(pair: Pair) -> None:
    assert pair.check("PING") == "PONG"
    assert pair.check("PING", "hi") == b"hi"
    assert pair.check("ECHO", "x") == b"x"
    assert pair.check("SET", "k", "v") == "OK"
    assert pair.check("GET", "k") == b"v"
    assert pair.check("GET", "nope") is None


def test_unknown_command_and_arity_errors_match_redis(pair: Pair) -> None:
    assert isinstance(pair.check("NOSUCH", "a", "b"), Err)
    assert isinstance(pair.check("NOSUCH"), Err)
    assert isinstance(pair.check("GET"), Err)
    assert isinstance(pair.check("GET", "a", "b"), Err)
    assert isinstance(pair.check("PING", "a", "b"), Err)


def test_pipeline_of_many_commands_answers_in_order(client: RespConn) -> None:
    client.send_raw(b"".join(encode_command("SET", f"k{i}", i % 10) for i in range(500)))
    assert [client.read() for _ in range(500)] == ["OK"] * 500
    client.send_raw(b"".join(encode_command("GET", f"k{i}") for i in range(500)))
    assert [client.read() for _ in range(500)] == [b"%d" % (i % 10) for i in range(500)]


def test_redis_py_sync_works(rclient: redis.Redis) -> None:
    assert rclient.ping() is True
    assert rclient.set("a", "1") is True
    assert rclient.get("a") == b"1"


def test_internal_errors_answer_and_keep_the_connection(client: RespConn, ours: Any) -> None:
    # SELECT with a huge database number is an error reply, never a dropped connection.
    assert client.call("SELECT", "99999") == Err("ERR DB index is out of range")
    assert client.call("PING") == "PONG"


def test_an_error_quoting_a_line_break_stays_one_line_as_in_redis(pair: Pair) -> None:
    # The unknown-command error quotes the arguments; a raw CR LF in them would end the
    # error line early and leave the rest of it to be read as the next reply.
    reply = pair.check("NOSUCH", "a\r\nb")
    assert isinstance(reply, Err)
    assert "\r" not in reply.message
    assert "\n" not in reply.message
    assert pair.check("PING") == "PONG"
