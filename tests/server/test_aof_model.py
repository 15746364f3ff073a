"""A property of the append-only log: for any sequence of writes, the log rebuilds the same
keyspace in our server after a restart and in a real Redis replaying it (``redis-cli
--pipe``), and that keyspace is what the server held before the restart."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from aof_support import keyspace, replay_into_redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from respclient import RespConn

from stratacache.server import ServerThread
from stratacache.server.config import config_from_mapping

KEYS = st.sampled_from(["k0", "k1", "k2", "k3"])
VALUES = st.sampled_from(["1", "2.5", "x", "-7", "hello"])
# Seconds: at least a minute, so no key expires between the reads compared on a loaded
# machine (a 5 ms PX made the keyspace differ by timing, not by the log).
SMALL = st.integers(min_value=60, max_value=5000)

COMMAND = st.one_of(
    st.tuples(st.just("SET"), KEYS, VALUES),
    st.tuples(st.just("SET"), KEYS, VALUES, st.just("EX"), SMALL.map(str)),
    st.tuples(st.just("SET"), KEYS, VALUES, st.just("PX"), SMALL.map(lambda s: str(s * 1000))),
    st.tuples(st.just("SETEX"), KEYS, SMALL.map(str), VALUES),
    st.tuples(st.just("INCRBYFLOAT"), KEYS, st.sampled_from(["1.5", "0.1", "-3"])),
    st.tuples(st.just("INCR"), KEYS),
    st.tuples(st.just("APPEND"), KEYS, VALUES),
    st.tuples(st.just("DEL"), KEYS),
    st.tuples(st.just("EXPIRE"), KEYS, st.sampled_from(["100", "-1", "1000"])),
    st.tuples(st.just("PERSIST"), KEYS),
    st.tuples(st.just("GETEX"), KEYS, st.sampled_from(["PERSIST", "EX"]), SMALL.map(str)).map(
        lambda c: c[:3] if c[2] == "PERSIST" else c
    ),
    st.tuples(st.just("SADD"), KEYS, VALUES, VALUES),
    st.tuples(st.just("SPOP"), KEYS),
    st.tuples(st.just("SPOP"), KEYS, st.sampled_from(["1", "2", "10"])),
    st.tuples(st.just("RPUSH"), KEYS, VALUES, VALUES),
    st.tuples(st.just("LPOP"), KEYS),
    st.tuples(st.just("BLPOP"), KEYS, KEYS, st.just("0.01")),
    st.tuples(st.just("BLMOVE"), KEYS, KEYS, st.just("LEFT"), st.just("RIGHT"), st.just("0.01")),
    st.tuples(st.just("HSET"), KEYS, VALUES, VALUES),
    st.tuples(st.just("HINCRBYFLOAT"), KEYS, VALUES, st.sampled_from(["1.25", "-0.5"])),
    st.tuples(st.just("ZADD"), KEYS, st.sampled_from(["1", "2.5", "-inf"]), VALUES),
    st.tuples(st.just("ZINCRBY"), KEYS, st.sampled_from(["0.1", "3"]), VALUES),
    st.tuples(st.just("COPY"), KEYS, KEYS),
    st.tuples(st.just("RENAME"), KEYS, KEYS),
    st.tuples(st.just("SELECT"), st.sampled_from(["0", "1"])),
)
STEP = st.one_of(
    COMMAND.map(lambda c: [list(c)]),
    st.lists(COMMAND, min_size=1, max_size=4).map(lambda cs: [["MULTI"], *[list(c) for c in cs], ["EXEC"]]),
)


def _server(directory: str) -> ServerThread:
    config = config_from_mapping(
        {"port": 0, "appendonly": "yes", "dir": directory, "appendfsync": "always"}, "test"
    )
    return ServerThread(config).start()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=12))
def test_any_writes_rebuild_the_same_keyspace(steps: list[list[list[str]]], real: Any) -> None:
    directory = tempfile.mkdtemp(prefix="aof-model-")
    try:
        first = _server(directory)
        conn = RespConn(first.port)  # raw: errors (WRONGTYPE, ...) are replies, not raised
        for step in steps:
            for command in step:
                conn.call(*command)
        conn.close()
        expected = keyspace(first.port, range(2))
        first.stop()
        assert first.server is not None
        assert first.server.internal_errors == 0
        again = _server(directory)
        try:
            assert keyspace(again.port, range(2)) == expected
        finally:
            again.stop()
        real.flush()
        replay_into_redis(Path(directory) / "appendonly.aof", real.port)
        assert keyspace(real.port, range(2)) == expected
    finally:
        shutil.rmtree(directory, ignore_errors=True)
