"""The append-only log: what is logged (checked against a real Redis replaying the same log),
recovery (torn tail, corruption), ``stratacache check-log``, BGREWRITEAOF, CONFIG SET."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from aof_support import keyspace, replay_into_redis, run_serve
from respclient import HOST, RespConn

from stratacache.cli import main as cli_main
from stratacache.server import ServerThread

Factory = Callable[..., ServerThread]

NOW_MS = int(time.time() * 1000)

# Each family: the commands run on a server with appendonly yes; the log must rebuild the
# same keyspace in our server and in a real Redis.
FAMILIES: dict[str, list[list[Any]]] = {
    "strings-relative-times": [
        ["SET", "a", "1"],
        ["SET", "b", "2", "EX", "100"],
        ["SET", "c", "3", "PX", "100000", "NX"],
        ["SET", "c", "4", "PX", "100000", "NX"],  # changes nothing: not logged
        ["SETEX", "d", "100", "v"],
        ["PSETEX", "e", "100000", "v"],
        ["SET", "f", "v", "EXAT", str(NOW_MS // 1000 + 300)],
        ["SET", "g", "v", "KEEPTTL"],
        ["GETEX", "a", "EX", "50"],
        ["GETEX", "b", "PERSIST"],
        ["GETEX", "f", "PXAT", str(NOW_MS + 7000)],
        ["SET", "h", "v", "PX", "1"],  # expires before the restart: dropped
        ["APPEND", "a", "x"],
        ["GETDEL", "g"],
        ["DEL", "missing"],
    ],
    "keys-expiry": [
        ["MSET", "k1", "1", "k2", "2", "k3", "3", "k4", "4"],
        ["EXPIRE", "k1", "100"],
        ["PEXPIRE", "k2", "100000"],
        ["EXPIREAT", "k3", str(NOW_MS // 1000 + 200)],
        ["PEXPIREAT", "k4", str(NOW_MS + 300000)],
        ["EXPIRE", "k4", "100", "GT"],  # not greater: nothing logged
        ["EXPIRE", "k1", "-1"],  # in the past: deletes (logged as DEL)
        ["PERSIST", "k2"],
        ["RENAME", "k3", "k5"],
        ["COPY", "k5", "k6"],
        ["MOVE", "k6", "3"],
    ],
    "floats-and-random": [
        ["INCRBYFLOAT", "f", "1.5"],
        ["INCRBYFLOAT", "f", "0.1"],
        ["EXPIRE", "f", "100"],
        ["INCRBYFLOAT", "f", "2e3"],
        ["HSET", "h", "x", "1"],
        ["HINCRBYFLOAT", "h", "x", "0.25"],
        ["SADD", "s", *[f"m{i}" for i in range(20)]],
        ["SPOP", "s"],
        ["SPOP", "s", "5"],
        ["SADD", "t", "a", "b"],
        ["SPOP", "t", "10"],
        ["INCR", "n"],
        ["INCRBY", "n", "41"],
    ],
    "lists-and-blocking": [
        ["RPUSH", "l", "a", "b", "c", "d", "e", "f"],
        ["BLPOP", "none", "l", "1"],
        ["BRPOP", "l", "1"],
        ["BLMOVE", "l", "m", "LEFT", "RIGHT", "1"],
        ["BRPOPLPUSH", "l", "m", "1"],
        ["BLMPOP", "1", "2", "none", "l", "LEFT", "COUNT", "5"],
        ["LPUSH", "x", "1", "2", "3"],
        ["LMPOP", "1", "x", "RIGHT"],
        ["LTRIM", "x", "0", "0"],
    ],
    "zsets-hashes-sets": [
        ["ZADD", "z", "1", "a", "2.5", "b", "-inf", "c", "inf", "d"],
        ["ZINCRBY", "z", "0.1", "a"],
        ["ZPOPMIN", "z"],
        ["HSET", "h", "f1", "v1", "f2", "v2"],
        ["HDEL", "h", "f1"],
        ["SADD", "s1", "a", "b", "c"],
        ["SADD", "s2", "b", "c", "d"],
        ["SINTERSTORE", "s3", "s1", "s2"],
        ["SMOVE", "s1", "s2", "a"],
    ],
    "transactions-scripts-select": [
        ["MULTI"],
        ["SET", "t1", "1", "EX", "100"],
        ["INCR", "t2"],
        ["SPOP", "nothing"],
        ["EXEC"],
        [
            "EVAL",
            "redis.call('set', KEYS[1], 'v'); redis.call('incrbyfloat', 'fl', '1.5'); return 1",
            "1",
            "sk",
        ],
        ["EVAL", "return redis.call('get', 'sk')", "0"],  # reads only: nothing logged
        ["SELECT", "5"],
        ["SET", "in5", "x", "PX", "100000"],
        ["SELECT", "0"],
        ["SET", "in0", "y"],
    ],
    "flushes": [
        ["SET", "a", "1"],
        ["SELECT", "2"],
        ["SET", "b", "2"],
        ["FLUSHDB"],
        ["SET", "c", "3"],
        ["SELECT", "0"],
        ["FLUSHALL"],
        ["SET", "d", "4"],
    ],
}


def _run_family(port: int, commands: list[list[Any]]) -> None:
    # One connection (SELECT and MULTI are per connection).
    r = redis.Redis(host=HOST, port=port, single_connection_client=True)
    try:
        for command in commands:
            r.execute_command(*command)
    finally:
        r.close()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_log_rebuilds_the_keyspace_in_ours_and_in_redis(
    family: str, tmp_path: Path, server_factory: Factory, real: Any
) -> None:
    first = server_factory(appendonly="yes", dir=str(tmp_path), appendfsync="always")
    _run_family(first.port, FAMILIES[family])
    expected = keyspace(first.port)
    time.sleep(0.01)  # PX 1 has expired (dropped at load, as by Redis)
    expected = {k: v for k, v in expected.items() if k != (0, b"h") or family != "strings-relative-times"}
    first.stop()
    log = tmp_path / "appendonly.aof"
    data = log.read_bytes()
    # Relative times and blocking or random commands never reach the log.
    for word in (
        b"EX\r",
        b"SETEX",
        b"PSETEX",
        b"BLPOP",
        b"BRPOP",
        b"BLMOVE",
        b"SPOP",
        b"INCRBYFLOAT",
        b"EVAL",
    ):
        assert word not in data.upper(), word
    second = server_factory(appendonly="yes", dir=str(tmp_path))
    assert keyspace(second.port) == expected
    replay_into_redis(log, real.port)
    assert keyspace(real.port) == expected


def test_served_blocking_pop_is_logged_as_a_pop_after_the_push(
    tmp_path: Path, server_factory: Factory, real: Any
) -> None:
    ours = server_factory(appendonly="yes", dir=str(tmp_path), appendfsync="always")
    results: list[Any] = []
    blocked = redis.Redis(host=HOST, port=ours.port)
    waiter = threading.Thread(
        target=lambda: results.append(blocked.execute_command("BLMOVE", "q", "done", "LEFT", "RIGHT", "5"))
    )
    waiter.start()
    time.sleep(0.2)
    pusher = redis.Redis(host=HOST, port=ours.port)
    pusher.rpush("q", "job1", "job2")
    waiter.join(10)
    assert results == [b"job1"]
    pusher.close()
    blocked.close()
    expected = keyspace(ours.port)
    assert expected[(0, b"done")][1] == [b"job1"]
    ours.stop()
    log = tmp_path / "appendonly.aof"
    data = log.read_bytes()
    assert data.index(b"LMOVE") > data.upper().index(b"RPUSH")
    replay_into_redis(log, real.port)
    assert keyspace(real.port) == expected
    again = server_factory(appendonly="yes", dir=str(tmp_path))
    assert keyspace(again.port) == expected


def test_only_changes_are_logged(tmp_path: Path, server_factory: Factory) -> None:
    ours = server_factory(appendonly="yes", dir=str(tmp_path), appendfsync="always")
    r = redis.Redis(host=HOST, port=ours.port)
    r.set("k", "v")
    size = (tmp_path / "appendonly.aof").stat().st_size
    r.delete("missing")
    r.srem("nothing", "x")
    r.expire("missing", 10)
    r.get("k")
    r.set("k", "w", nx=True)
    assert (tmp_path / "appendonly.aof").stat().st_size == size
    info = r.info("persistence")
    assert info["aof_enabled"] == 1
    assert info["aof_current_size"] == size
    r.close()


# ------------------------------------------------------------------------- recovery


def _write_log(path: Path, commands: list[list[bytes]]) -> bytes:
    from stratacache.server.aof import encode_command

    data = b"".join(encode_command(c) for c in commands)
    path.write_bytes(data)
    return data


def _config(tmp_path: Path, **options: Any) -> Path:
    config = tmp_path / "server.yaml"
    options = {"port": 0, "dir": str(tmp_path), "appendonly": "yes", **options}
    config.write_text("".join(f"{k}: {v!r}\n" for k, v in options.items()))
    return config


def test_torn_tail_is_truncated_with_a_log_line(tmp_path: Path, server_factory: Factory) -> None:
    log = tmp_path / "appendonly.aof"
    good = _write_log(log, [[b"SET", b"a", b"1"], [b"RPUSH", b"l", b"x", b"y"]])
    with open(log, "ab") as handle:
        handle.write(b"*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$5\r\nhel")
    ours = server_factory(appendonly="yes", dir=str(tmp_path))
    r = redis.Redis(host=HOST, port=ours.port)
    assert r.get("a") == b"1"
    assert r.lrange("l", 0, -1) == [b"x", b"y"]
    assert r.get("b") is None
    assert log.read_bytes()[: len(good)] == good
    r.set("b", "later")
    r.close()
    ours.stop()
    again = server_factory(appendonly="yes", dir=str(tmp_path))
    assert redis.Redis(host=HOST, port=again.port).get("b") == b"later"


def test_torn_multi_block_is_dropped_whole(tmp_path: Path, server_factory: Factory) -> None:
    log = tmp_path / "appendonly.aof"
    good = _write_log(log, [[b"SET", b"a", b"1"]])
    with open(log, "ab") as handle:
        handle.write(b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n2\r\n*1\r\n$4\r\nEX")
    ours = server_factory(appendonly="yes", dir=str(tmp_path))
    r = redis.Redis(host=HOST, port=ours.port)
    assert r.get("b") is None
    assert r.get("a") == b"1"
    assert log.read_bytes() == good
    r.close()


def test_torn_tail_is_refused_with_aof_load_truncated_no(tmp_path: Path) -> None:
    log = tmp_path / "appendonly.aof"
    _write_log(log, [[b"SET", b"a", b"1"]])
    with open(log, "ab") as handle:
        handle.write(b"*2\r\n$3\r\nGET")
    before = log.read_bytes()
    code, err = run_serve(_config(tmp_path, **{"aof-load-truncated": "no"}))
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(log) in lines[0], err
    assert "byte offset 27" in lines[0], err
    assert log.read_bytes() == before  # nothing touched


def test_corruption_in_the_middle_refuses_to_start_naming_file_and_offset(tmp_path: Path) -> None:
    log = tmp_path / "appendonly.aof"
    data = _write_log(log, [[b"SET", b"a", b"1"], [b"SET", b"b", b"2"], [b"SET", b"c", b"3"]])
    offset = data.index(b"$1\r\nb")
    log.write_bytes(data[:offset] + b"#" + data[offset + 1 :])
    code, err = run_serve(_config(tmp_path))
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(log) in lines[0], err
    assert f"byte offset {offset}" in lines[0], err


def test_unknown_command_in_the_log_refuses_naming_its_offset(tmp_path: Path) -> None:
    log = tmp_path / "appendonly.aof"
    data = _write_log(log, [[b"SET", b"a", b"1"], [b"NOSUCHCMD", b"x"], [b"SET", b"c", b"3"]])
    code, err = run_serve(_config(tmp_path))
    assert code == 1
    assert f"byte offset {data.index(b'*2')}" in err, err
    assert "NOSUCHCMD" in err, err


def test_unwritable_directory_is_a_clear_error_naming_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, err = run_serve(_config(tmp_path, dir=str(blocker / "sub")))
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert str(blocker / "sub" / "appendonly.aof") in err, err


# ------------------------------------------------------------------------- check-log


def test_check_log_explains_and_fixes_a_torn_tail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "appendonly.aof"
    good = _write_log(log, [[b"SET", b"a", b"1"], [b"SET", b"b", b"2"]])
    log.write_bytes(good + b"*3\r\n$3\r\nSET\r\n$1")
    assert cli_main(["check-log", str(log)]) == 1
    out = capsys.readouterr().out
    assert f"2 whole commands, last good offset {len(good)}" in out
    assert "torn tail" in out
    assert "--fix" in out
    assert log.stat().st_size > len(good)  # explaining changes nothing
    assert cli_main(["check-log", "--fix", str(log)]) == 0
    out = capsys.readouterr().out
    assert f"truncated {log} to {len(good)} bytes" in out
    assert log.read_bytes() == good
    assert cli_main(["check-log", str(log)]) == 0
    assert "ok:" in capsys.readouterr().out


def test_check_log_cuts_corruption_only_when_told(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "appendonly.aof"
    data = _write_log(
        log, [[b"SET", b"a", b"1"], [b"SET", b"b", b"2"], [b"SET", b"c", b"3"], [b"SET", b"d", b"4"]]
    )
    first = data.index(b"*3", 1)
    corrupt = data[:first] + b"?" + data[first + 1 :]
    log.write_bytes(corrupt)
    assert cli_main(["check-log", "--fix", str(log)]) == 1
    out = capsys.readouterr().out
    assert f"corrupt: at byte offset {first}" in out
    lost = len(corrupt) - first
    assert f"lose {lost} bytes (about 2 commands)" in out
    assert log.read_bytes() == corrupt
    assert cli_main(["check-log", "--fix", "--truncate-at-corruption", str(log)]) == 0
    assert f"({lost} bytes, about 2 commands, removed)" in capsys.readouterr().out
    assert log.read_bytes() == data[:first]


# ------------------------------------------------------------------------- rewrite


def _wait_rewrite(r: redis.Redis, count: int, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = r.info("persistence")
        if info["aof_rewrite_in_progress"] == 0 and info["aof_rewrites"] >= count:
            return info
        time.sleep(0.02)
    raise AssertionError(f"no rewrite done: {r.info('persistence')}")


def test_bgrewriteaof_while_writes_continue_loses_nothing(
    tmp_path: Path, server_factory: Factory, real: Any
) -> None:
    ours = server_factory(appendonly="yes", dir=str(tmp_path), appendfsync="everysec")
    r = redis.Redis(host=HOST, port=ours.port)
    pipe = r.pipeline(transaction=False)
    for i in range(3000):
        pipe.set(f"base:{i}", i)
    pipe.rpush("biglist", *range(1000))
    pipe.hset("bighash", mapping={f"f{i}": i for i in range(300)})
    pipe.zadd("bigz", {f"m{i}": i / 3 for i in range(300)})
    pipe.sadd("bigset", *range(300))
    pipe.set("ttl", "v", px=500000)
    pipe.execute()
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        w = redis.Redis(host=HOST, port=ours.port)
        i = 0
        while not stop.is_set():
            w.set(f"live:{i}", i)
            w.incr("counter")
            written.append(i)
            i += 1
        w.close()

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.05)
    assert r.bgrewriteaof()
    with pytest.raises(redis.ResponseError, match="already in progress"):
        r.bgrewriteaof()
    info = _wait_rewrite(r, 1)
    time.sleep(0.1)
    stop.set()
    thread.join(10)
    assert info["aof_last_bgrewrite_status"] == "ok"
    assert len(written) > 10
    expected = keyspace(ours.port, range(1))
    assert expected[(0, b"counter")][1] == str(len(written)).encode()
    r.close()
    ours.stop()
    log = tmp_path / "appendonly.aof"
    assert b"set\r\n$6\r\nbase:0" not in log.read_bytes()  # compacted: the base writes SET
    again = server_factory(appendonly="yes", dir=str(tmp_path))
    assert keyspace(again.port, range(1)) == expected
    replay_into_redis(log, real.port)
    assert keyspace(real.port, range(1)) == expected


def test_automatic_rewrite_by_growth(tmp_path: Path, server_factory: Factory) -> None:
    ours = server_factory(
        appendonly="yes",
        dir=str(tmp_path),
        auto_aof_rewrite_min_size="4kb",
        auto_aof_rewrite_percentage=100,
    )
    r = redis.Redis(host=HOST, port=ours.port)
    for i in range(300):
        r.set("same", i)  # one key rewritten over and over: the rewrite is tiny
    info = _wait_rewrite(r, 1)
    assert info["aof_current_size"] < 4096
    assert r.get("same") == b"299"
    r.close()


def test_config_set_appendonly_at_run_time(tmp_path: Path, server_factory: Factory) -> None:
    ours = server_factory(dir=str(tmp_path))
    r = redis.Redis(host=HOST, port=ours.port)
    r.set("before", "1", px=300000)
    r.rpush("list", "a", "b")
    assert r.config_get("appendonly") == {"appendonly": "no"}
    assert r.config_set("appendonly", "yes")
    r.set("during", "2")
    _wait_rewrite(r, 1)
    r.set("after", "3")
    assert r.config_set("appendfsync", "always")
    r.incr("counter")
    expected = keyspace(ours.port, range(1))
    assert r.config_set("appendonly", "no")
    r.set("not-logged", "x")
    r.close()
    ours.stop()
    again = server_factory(appendonly="yes", dir=str(tmp_path))
    assert keyspace(again.port, range(1)) == expected


def test_bgrewriteaof_with_appendonly_off_writes_the_file(tmp_path: Path, server_factory: Factory) -> None:
    ours = server_factory(dir=str(tmp_path))
    r = redis.Redis(host=HOST, port=ours.port)
    r.set("k", "v")
    r.bgrewriteaof()
    deadline = time.monotonic() + 10
    while not (tmp_path / "appendonly.aof").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    r.close()
    ours.stop()
    again = server_factory(appendonly="yes", dir=str(tmp_path))
    assert redis.Redis(host=HOST, port=again.port).get("k") == b"v"


def test_evictions_are_logged_as_del(tmp_path: Path, server_factory: Factory, real: Any) -> None:
    ours = server_factory(
        appendonly="yes", dir=str(tmp_path), maxmemory="1mb", maxmemory_policy="allkeys-lru"
    )
    r = redis.Redis(host=HOST, port=ours.port)
    for i in range(400):
        r.set(f"key:{i}", b"x" * 10000)
    r.rpush("list", *range(100))
    expected = keyspace(ours.port, range(1))
    assert r.info("stats")["evicted_keys"] > 100
    assert len(expected) < 400
    r.close()
    ours.stop()
    log = tmp_path / "appendonly.aof"
    assert b"DEL" in log.read_bytes()
    # A Redis without a memory limit replaying the log ends with the same keys.
    replay_into_redis(log, real.port)
    assert keyspace(real.port, range(1)) == expected


def test_yaml_appendfsync_no_is_read_as_the_policy() -> None:
    import yaml

    from stratacache.server.config import config_from_mapping

    # YAML turns a bare ``no`` into False: it must still mean the policy "no".
    data = yaml.safe_load("appendonly: yes\nappendfsync: no\n")
    config = config_from_mapping(data, "test.yaml")
    assert config.appendonly is True
    assert config.appendfsync == "no"


def test_leaving_always_in_the_pass_of_a_write_releases_its_reply(
    tmp_path: Path, server_factory: Factory
) -> None:
    ours = server_factory(appendonly="yes", dir=str(tmp_path), appendfsync="always")
    conn = RespConn(ours.port)
    # One read: the SET waits for the group fsync, then the policy changes in the same pass.
    conn.send_raw(
        b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n"
        b"*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$11\r\nappendfsync\r\n$8\r\neverysec\r\n"
    )
    assert conn.read() == "OK"
    assert conn.read() == "OK"
    assert conn.call("GET", "a") == b"1"
    conn.close()


def test_load_large_values_and_expired_sets(tmp_path: Path, server_factory: Factory) -> None:
    big = bytes(range(256)) * 20000  # 5 MB: several reads of the loader
    later = str(int(time.time() * 1000) + 100_000).encode()
    _write_log(
        tmp_path / "appendonly.aof",
        [
            [b"SET", b"big", big],
            [b"SET", b"live", b"1", b"PXAT", later],
            [b"SET", b"gone", b"1"],
            [b"SET", b"gone", b"2", b"PXAT", b"1000"],  # in the past: dropped
            [b"RPUSH", b"after", b"x"],
        ],
    )
    ours = server_factory(appendonly="yes", dir=str(tmp_path))
    r = redis.Redis(host=HOST, port=ours.port)
    assert r.get("big") == big
    assert r.execute_command("PEXPIRETIME", "live") == int(later)
    assert r.exists("gone") == 0
    assert r.lrange("after", 0, -1) == [b"x"]
    r.close()


@pytest.mark.parametrize(
    "tail",
    [
        b"",
        b"*3\r\n$3\r\nSET\r\n$1",
        b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nc\r\n$1\r\n1\r\n*1\r\n$4\r\nEX",
        b"*3\r\n$3\r\nSET\r\n#1\r\nc\r\n$1\r\n1\r\n",
        b"*0\r\n*1\r\n$4\r\nPING\r\n",
    ],
)
def test_scan_reads_a_log_in_pieces_as_it_reads_it_whole(
    tail: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stratacache.server import aof_check

    head = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n" * 3
    whole = aof_check.scan(head + tail)
    monkeypatch.setattr(aof_check, "_SCAN_CHUNK", 5)
    assert aof_check.scan(head + tail) == whole
    assert aof_check.scan(b"junk" + head + tail, 4).good == whole.good + 4
    assert whole.kind == ("ok" if not tail else "corrupt" if b"#" in tail or b"*0" in tail else "truncated")
