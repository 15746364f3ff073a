"""Redis's own tools and redis-py (sync and asyncio) against ``stratacache serve``."""

from __future__ import annotations

import subprocess

import pytest
import redis
import redis.asyncio

from servers import require_binary
from stratacache.server import ServerThread


def _cli(port: int, *args: str, stdin: str | None = None) -> str:
    require_binary("redis-cli")
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_redis_cli_runs_commands(ours: ServerThread) -> None:
    assert _cli(ours.port, "PING").strip() == "PONG"
    assert _cli(ours.port, "SET", "greeting", "hello").strip() == "OK"
    assert _cli(ours.port, "GET", "greeting").strip() == "hello"
    assert _cli(ours.port, "GET", "missing").strip() == ""
    # Commands read from standard input, as in a shell pipeline.
    assert _cli(ours.port, stdin="SET a 1\nGET a\n").split() == ["OK", "1"]


def test_redis_cli_pipe_mode_loads_a_stream_of_commands(ours: ServerThread) -> None:
    stream = "".join(f"SET key:{i} value:{i}\r\n" for i in range(1000))
    out = _cli(ours.port, "--pipe", stdin=stream)
    assert "errors: 0, replies: 1000" in out
    assert _cli(ours.port, "GET", "key:999").strip() == "value:999"


def test_redis_benchmark_completes_get_and_set(ours: ServerThread) -> None:
    require_binary("redis-benchmark")
    done = subprocess.run(
        [
            "redis-benchmark",
            "-h",
            "127.0.0.1",
            "-p",
            str(ours.port),
            "-c",
            "4",
            "-n",
            "2000",
            "-P",
            "8",
            "-t",
            "get,set",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.replace("\r", "\n")
    assert "SET:" in lines
    assert "GET:" in lines
    assert "requests per second" in lines


def test_redis_py_sync_resp2_and_resp3(ours: ServerThread) -> None:
    for protocol in (2, 3):
        with redis.Redis(host="127.0.0.1", port=ours.port, protocol=protocol) as r:
            assert r.ping() is True
            assert r.set(f"p{protocol}", "x") is True
            assert r.get(f"p{protocol}") == b"x"


@pytest.mark.parametrize("protocol", [2, 3])
async def test_redis_py_asyncio(ours: ServerThread, protocol: int) -> None:
    r = redis.asyncio.Redis(host="127.0.0.1", port=ours.port, protocol=protocol)
    try:
        assert await r.ping() is True
        assert await r.set("async", "1") is True
        assert await r.get("async") == b"1"
        async with r.pipeline(transaction=False) as pipe:
            for i in range(50):
                pipe.set(f"a{i}", i)
            for i in range(50):
                pipe.get(f"a{i}")
            replies = await pipe.execute()
        assert replies[50:] == [str(i).encode() for i in range(50)]
    finally:
        await r.aclose()
