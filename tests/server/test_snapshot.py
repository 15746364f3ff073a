"""Snapshots of the server: SAVE/BGSAVE/LASTSAVE, the save schedule, load at start,
SHUTDOWN SAVE/NOSAVE, and what a crashed or corrupt save leaves behind.

Restarts are real: ``stratacache serve`` subprocesses on a scratch directory, stopped with
SIGTERM, SIGKILL or SHUTDOWN."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cliproc import finish
from respclient import Err, Pair, RespConn

from servers import free_port
from stratacache.core.snapshot import SnapshotReader
from stratacache.server import ServerThread
from stratacache.server.keyspace import RedisValue

# Every type, TTLs, another database, binary keys and values, special scores.
WRITES: list[tuple[Any, ...]] = [
    ("SET", "s", "plain"),
    ("SET", b"bin\x00\xff", b"\x00\x01\xfe\xff"),
    ("SET", "big", "x" * 5000),
    ("SET", "ttl", "v", "PX", "100000"),
    ("RPUSH", "l", "a", "b", "c", "a"),
    ("RPUSH", "biglist", *[f"item{i}" for i in range(300)]),
    ("SADD", "ints", "3", "1", "2"),
    ("SADD", "words", "x", "y", "z"),
    ("HSET", "h", "f1", "v1", "f2", "v2"),
    ("ZADD", "z", "1.5", "a", "-inf", "b", "inf", "c", "0", "d"),
    ("EXPIRE", "h", "5000"),
    ("SELECT", "3"),
    ("SET", "other-db", "3"),
    ("ZADD", "z3", "2", "m"),
    ("SELECT", "0"),
]


def view(conn: RespConn) -> dict[Any, Any]:
    """Every key of databases 0 and 3 with its type, contents and rounded TTL."""
    result: dict[Any, Any] = {}
    for db in (0, 3):
        assert conn.call("SELECT", db) == "OK"
        for key in sorted(conn.call("KEYS", "*")):
            kind = conn.call("TYPE", key)
            if kind == "string":
                value = conn.call("GET", key)
            elif kind == "list":
                value = conn.call("LRANGE", key, 0, -1)
            elif kind == "set":
                value = sorted(conn.call("SMEMBERS", key))
            elif kind == "hash":
                value = sorted(conn.call("HGETALL", key))
            else:
                value = conn.call("ZRANGE", key, 0, -1, "WITHSCORES")
            ttl = conn.call("PTTL", key)
            result[(db, key)] = (kind, value, -1 if ttl < 0 else round(ttl / 10_000))
    assert conn.call("SELECT", 0) == "OK"
    return result


class Served:
    """A ``stratacache serve`` subprocess on ``workdir`` with Redis-named options."""

    def __init__(self, workdir: Path, port: int | None = None, **options: Any) -> None:
        self.workdir = workdir
        self.options = {"save": "", **options}
        self.port = free_port() if port is None else port
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Served:
        lines = [f"port: {self.port}", f"dir: {str(self.workdir)!r}", "loglevel: warning"]
        lines += [f"{name.replace('_', '-')}: {value!r}" for name, value in self.options.items()]
        config = self.workdir / "server.yaml"
        config.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stratacache.cli", "serve", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=self.workdir,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "Redis protocol on" in line, self.finish()[1]
        return self

    def start_expecting_failure(self) -> tuple[int, str]:
        """Start a server that must refuse to start: (exit status, stderr)."""
        lines = [f"port: {self.port}", f"dir: {str(self.workdir)!r}", "save: ''"]
        config = self.workdir / "server.yaml"
        config.write_text("\n".join(lines) + "\n")
        proc = subprocess.run(
            [sys.executable, "-m", "stratacache.cli", "serve", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=self.workdir,
        )
        return proc.returncode, proc.stderr

    def conn(self) -> RespConn:
        return RespConn(self.port, timeout=20)

    def finish(self, sig: int | None = None) -> tuple[int, str]:
        """Send ``sig`` (if any) and wait: (exit status, stderr)."""
        assert self.proc is not None
        return finish(self.proc, sig, timeout=30)

    def kill(self) -> None:
        """SIGKILL and reap, without reading the pipes (a stopped child may hold them)."""
        proc = self.proc
        assert proc is not None
        proc.kill()
        proc.wait(timeout=30)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

    def children(self) -> list[int]:
        assert self.proc is not None
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:  # the server is gone
            return []


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def make(**options: Any) -> Served:
        served = Served(tmp_path, **options).start()
        started.append(served)
        return served

    yield make
    for served in started:
        if served.proc is not None and served.proc.poll() is None:
            for pid in served.children():
                os.kill(pid, signal.SIGKILL)
            served.kill()


def info(conn: RespConn) -> dict[str, str]:
    text = conn.call("INFO", "persistence").decode()
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def wait_bgsave(conn: RespConn, timeout: float = 20) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fields = info(conn)
        if fields["rdb_bgsave_in_progress"] == "0":
            return fields
        time.sleep(0.02)
    raise AssertionError("BGSAVE did not finish")


def test_save_and_restart_keep_every_type_as_redis_has_it(
    serve: Callable[..., Served], real: Any, tmp_path: Path
) -> None:
    server = serve()
    ours, theirs = server.conn(), RespConn(real.port)
    pair = Pair(ours, theirs)
    for args in WRITES:
        pair.check(*args)
    pair.check("SET", "gone", "soon", "PX", "150")
    assert ours.call("SAVE") == "OK"
    assert info(ours)["rdb_changes_since_last_save"] == "0"
    ours.close()
    assert server.finish(signal.SIGKILL)[0] == -signal.SIGKILL
    time.sleep(0.2)  # "gone" expires on disk

    again = serve()
    ours = again.conn()
    mine, redis_view = view(ours), view(theirs)
    assert (0, b"gone") not in mine
    assert mine == redis_view
    fields = info(ours)
    assert fields["rdb_last_load_keys_loaded"] == str(len(mine))
    assert fields["rdb_last_load_keys_expired"] == "1"
    assert fields["loading"] == "0"
    assert abs(int(ours.call("LASTSAVE")) - time.time()) < 5
    ours.close()
    theirs.close()


def test_bgsave_is_a_point_in_time_copy(serve: Callable[..., Served]) -> None:
    server = serve()
    conn = server.conn()
    for start in range(0, 100_000, 10_000):
        conn.call("MSET", *[x for i in range(start, start + 10_000) for x in (f"k:{i}", f"v{i}")])
    assert conn.call("BGSAVE") == "Background saving started"
    # Pipelined right behind it: none of these is in the snapshot.
    conn.send("SET", "k:1", "changed")
    conn.send("SET", "after", "1")
    conn.send("DEL", "k:2")
    conn.send("BGSAVE")
    assert [conn.read() for _ in range(4)] == [
        "OK",
        "OK",
        1,
        Err("ERR Background save already in progress"),
    ]
    assert conn.call("BGSAVE", "SCHEDULE") == Err("ERR Background save already in progress")
    fields = wait_bgsave(conn)
    assert fields["rdb_last_bgsave_status"] == "ok"
    assert fields["rdb_saves"] == "1"
    # Three changes came after the fork.
    assert fields["rdb_changes_since_last_save"] == "3"
    conn.close()
    server.finish(signal.SIGKILL)

    conn = serve().conn()
    assert conn.call("DBSIZE") == 100_000
    assert conn.call("GET", "k:1") == b"v1"
    assert conn.call("GET", "k:2") == b"v2"
    assert conn.call("EXISTS", "after") == 0
    conn.close()


def test_killed_bgsave_child_leaves_the_previous_snapshot(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    server = serve()
    conn = server.conn()
    conn.call("SET", "before", "1")
    assert conn.call("SAVE") == "OK"
    previous = (tmp_path / "dump.scs").read_bytes()
    for start in range(0, 300_000, 10_000):
        conn.call("MSET", *[x for i in range(start, start + 10_000) for x in (f"key:{i}", "v" * 50)])
    assert conn.call("BGSAVE") == "Background saving started"
    children = server.children()
    assert len(children) == 1
    os.kill(children[0], signal.SIGKILL)
    fields = wait_bgsave(conn)
    assert fields["rdb_last_bgsave_status"] == "err"
    assert (tmp_path / "dump.scs").read_bytes() == previous
    assert sorted(p.name for p in tmp_path.glob("*.scs")) == ["dump.scs"]  # no temp file left
    conn.close()
    server.finish(signal.SIGKILL)

    conn = serve().conn()
    assert conn.call("DBSIZE") == 1
    conn.close()


def test_server_killed_mid_bgsave(serve: Callable[..., Served], tmp_path: Path) -> None:
    server = serve()
    conn = server.conn()
    conn.call("SET", "before", "1")
    assert conn.call("SAVE") == "OK"
    previous = (tmp_path / "dump.scs").read_bytes()
    for start in range(0, 300_000, 10_000):
        conn.call("MSET", *[x for i in range(start, start + 10_000) for x in (f"key:{i}", "v" * 50)])
    assert conn.call("BGSAVE") == "Background saving started"
    (child,) = server.children()
    # Once the child holds no socket, freeze it mid-write.
    deadline = time.monotonic() + 10
    while _sockets(child) and time.monotonic() < deadline:
        time.sleep(0.001)
    os.kill(child, signal.SIGSTOP)
    try:
        assert _sockets(child) == 0
        # kill -9 of the server: its clients see the connection close at once, and a new
        # server can take the port at once (the child holds neither socket).
        server.kill()
        assert conn.closed(timeout=1)
        conn.close()
        restarted = serve(port=server.port)
    finally:
        os.kill(child, signal.SIGKILL)  # kill -9 of the child too, mid-write
    assert (tmp_path / "dump.scs").read_bytes() == previous
    restarted.finish(signal.SIGKILL)

    conn = serve().conn()
    assert conn.call("DBSIZE") == 1
    conn.close()


def _sockets(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd).startswith("socket:")
    return count


def _saved(serve: Callable[..., Served], tmp_path: Path) -> bytes:
    server = serve()
    conn = server.conn()
    for start in range(0, 20_000, 5_000):
        conn.call("MSET", *[x for i in range(start, start + 5_000) for x in (f"k{i}", f"value {i}")])
    assert conn.call("SAVE") == "OK"
    conn.close()
    server.finish(signal.SIGKILL)
    return (tmp_path / "dump.scs").read_bytes()


def test_corrupt_snapshot_refuses_to_start(serve: Callable[..., Served], tmp_path: Path) -> None:
    data = bytearray(_saved(serve, tmp_path))
    path = tmp_path / "dump.scs"
    with path.open("rb") as f:
        blocks = [start for start, _ in SnapshotReader(f).blocks()]
    victim = blocks[len(blocks) // 2]
    data[victim + 100] ^= 0x40
    path.write_bytes(bytes(data))
    status, err = Served(tmp_path).start_expecting_failure()
    assert status == 1
    assert f"{path} at offset {victim}: checksum mismatch" in err
    assert "Traceback" not in err


def test_truncated_snapshot_refuses_to_start(serve: Callable[..., Served], tmp_path: Path) -> None:
    data = _saved(serve, tmp_path)
    path = tmp_path / "dump.scs"
    path.write_bytes(data[: len(data) // 2])
    status, err = Served(tmp_path).start_expecting_failure()
    assert status == 1
    assert f"{path} at offset " in err
    assert "truncated" in err or "runs past the end" in err


def test_shutdown_save_nosave_and_sigterm(serve: Callable[..., Served], tmp_path: Path) -> None:
    path = tmp_path / "dump.scs"
    server = serve()  # save "": SIGTERM does not save
    conn = server.conn()
    conn.call("SET", "a", "1")
    conn.close()
    assert server.finish(signal.SIGTERM)[0] == 0
    assert not path.exists()

    server = serve()
    conn = server.conn()
    conn.call("SET", "a", "1")
    conn.send("SHUTDOWN", "SAVE")
    assert conn.closed()
    conn.close()
    assert server.finish()[0] == 0
    assert path.exists()

    server = serve(save="3600 1")
    conn = server.conn()
    assert conn.call("GET", "a") == b"1"
    conn.call("SET", "b", "2")
    conn.send("SHUTDOWN", "NOSAVE")
    assert conn.closed()
    conn.close()
    server.finish()

    server = serve(save="3600 1")
    conn = server.conn()
    assert conn.call("EXISTS", "b") == 0  # NOSAVE kept it off the disk
    conn.call("SET", "c", "3")
    conn.close()
    assert server.finish(signal.SIGTERM)[0] == 0  # a schedule is set: SIGTERM saves

    conn = serve().conn()
    assert conn.call("MGET", "a", "b", "c") == [b"1", None, b"3"]
    conn.close()


def test_save_schedule_starts_a_bgsave(server_factory: Callable[..., ServerThread], tmp_path: Path) -> None:
    running = server_factory(save="1 3 100 1000", dir=str(tmp_path), hz=50)
    conn = RespConn(running.port)
    conn.call("SET", "a", "1")
    conn.call("SET", "b", "1")
    time.sleep(1.3)
    assert info(conn)["rdb_saves"] == "0"  # two changes: under the threshold
    assert info(conn)["rdb_changes_since_last_save"] == "2"
    conn.call("SET", "c", "1")
    deadline = time.monotonic() + 10
    while info(conn)["rdb_saves"] == "0" and time.monotonic() < deadline:
        time.sleep(0.05)
    fields = wait_bgsave(conn)
    assert fields["rdb_saves"] == "1"
    assert fields["rdb_last_bgsave_status"] == "ok"
    assert fields["rdb_changes_since_last_save"] == "0"
    with (tmp_path / "dump.scs").open("rb") as f:
        assert sorted(r.key for r in SnapshotReader(f)) == [b"a", b"b", b"c"]
    conn.close()


def test_errors_and_replies_as_redis(pair: Pair) -> None:
    pair.check("BGSAVE", "NOW")
    pair.check("BGSAVE", "SCHEDULE", "x")
    pair.check("SAVE", "x")
    pair.check("LASTSAVE", "x")
    assert pair.ours.call("CONFIG", "GET", "save") == [b"save", b""]  # the test server's
    ours, theirs = pair.call("CONFIG", "GET", "dbfilename")
    assert ours == [b"dbfilename", b"dump.scs"]
    assert theirs == [b"dbfilename", b"dump.rdb"]
    pair.check("CONFIG", "SET", "save", "100")
    pair.check("CONFIG", "SET", "save", "1 x")
    assert pair.ours.call("CONFIG", "SET", "dbfilename", "a/b") == Err(
        "ERR CONFIG SET failed (possibly related to argument 'dbfilename') - "
        "'a/b' is not a plain file name (the directory is 'dir')"
    )


def test_info_persistence_fields(client: RespConn) -> None:
    fields = info(client)
    for name in (
        "loading",
        "rdb_changes_since_last_save",
        "rdb_bgsave_in_progress",
        "rdb_last_save_time",
        "rdb_last_bgsave_status",
        "rdb_last_bgsave_time_sec",
        "rdb_saves",
    ):
        assert name in fields
    before = int(fields["rdb_changes_since_last_save"])
    client.call("SET", "k", "v")
    client.call("HSET", "h", "f", "v")
    assert int(info(client)["rdb_changes_since_last_save"]) == before + 2


def test_bgsave_schedule_waits_for_another_child(
    server_factory: Callable[..., ServerThread], tmp_path: Path
) -> None:
    running = server_factory(dir=str(tmp_path), hz=50)
    server = running.server
    assert server is not None
    conn = RespConn(running.port)
    conn.call("SET", "k", "v")
    # Another feature's child (an AOF rewrite) registers itself here.
    running.call(lambda: server.extra.__setitem__("child", ("aof", 0)))
    assert conn.call("BGSAVE") == Err(
        "ERR Another child process is active (AOF?): can't BGSAVE right now. "
        "Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible."
    )
    assert conn.call("BGSAVE", "SCHEDULE") == "Background saving scheduled"
    time.sleep(0.2)
    assert info(conn)["rdb_saves"] == "0"  # not while the other child runs
    running.call(lambda: server.extra.pop("child"))
    deadline = time.monotonic() + 10
    while info(conn)["rdb_saves"] == "0" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert wait_bgsave(conn)["rdb_saves"] == "1"
    with (tmp_path / "dump.scs").open("rb") as f:
        assert [r.key for r in SnapshotReader(f)] == [b"k"]
    conn.close()


class _Odd(RedisValue):
    """A value type the snapshot format has no record for."""

    type_name = "stream"

    def encoding(self) -> str:
        return "odd"

    def __len__(self) -> int:
        return 1


def test_save_failures_name_the_file_or_the_key(
    server_factory: Callable[..., ServerThread], tmp_path: Path
) -> None:
    running = server_factory(dir=str(tmp_path / "missing"))
    server = running.server
    assert server is not None
    conn = RespConn(running.port)
    conn.call("SET", "k", "v")
    reply = conn.call("SAVE")
    assert reply == Err(
        f"ERR {tmp_path}/missing/dump.scs: cannot write the snapshot: No such file or directory"
    )
    assert conn.call("CONFIG", "SET", "dir", str(tmp_path)) == "OK"
    running.call(lambda: server.databases[0].set("odd", _Odd()))
    reply = conn.call("SAVE")
    assert reply == Err(
        f"ERR {tmp_path}/dump.scs: cannot write the snapshot: "
        "key 'odd' in db 0 holds a stream, which a snapshot cannot hold"
    )
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind
    conn.close()
