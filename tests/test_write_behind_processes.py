"""Write-behind across real processes: the source fails or stalls mid-run, then SIGTERM.

Four child processes (two sync, two async) write through a redis-backed cache into one
SQLite file, recording each acknowledged write (after ``set`` returned) in a file of their
own. Mid-run the parent makes each child's source fail (every store raises) or stall
(every store hangs), lets them write on, and sends SIGTERM. The handler installed with
``handle_signals=True`` flushes: retries, then the dead-letter callback (an append-only
JSON-lines file) for a failing source, and the close timeout for a stalled one. The test
then checks the guarantee: for every key, the last acknowledged value (or a later one)
is in SQLite or in the dead-letter record.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from servers import RedisServer

CHILD = textwrap.dedent(
    """
    import asyncio, json, os, sqlite3, sys, time
    import stratacache as sc

    flavour, db, control, cache_url, prefix = sys.argv[1:6]
    acks = open(os.path.join(control, "acks"), "a", buffering=1)
    letters = open(os.path.join(control, "dead"), "a", buffering=1)


    def trouble():
        if os.path.exists(os.path.join(control, "stall")):
            return "stall"
        if os.path.exists(os.path.join(control, "fail")):
            raise OSError("database down")
        return None


    class SqliteSource:
        name = "sqlite-" + prefix

        def __init__(self):
            self.conn = sqlite3.connect(db, timeout=10, check_same_thread=False)

        def load(self, key):
            row = self.conn.execute("select value from kv where key = ?", (key,)).fetchone()
            return sc.MISSING if row is None else json.loads(row[0])

        def _write(self, items):
            with self.conn:
                self.conn.executemany(
                    "insert or replace into kv values (?, ?)",
                    [(k, json.dumps(v)) for k, v in items.items()],
                )

        def store(self, key, value):
            self.store_many({key: value})

        def store_many(self, items):
            if trouble() == "stall":
                time.sleep(60)  # a hung database: only the close timeout gets past it
            self._write(items)

        def delete(self, key):
            raise AssertionError("the child never deletes")


    class AsyncSqliteSource(SqliteSource):
        async def store(self, key, value):
            await self.store_many({key: value})

        async def store_many(self, items):
            if trouble() == "stall":
                await asyncio.sleep(60)
            self._write(items)


    def dead_letter(letter):
        letters.write(json.dumps({"key": letter.key, "value": letter.value}) + "\\n")
        os.fsync(letters.fileno())


    OPTIONS = dict(
        batch_size=4, flush_interval=0.01, max_retries=3, retry_delay=0.005,
        close_timeout=0.5, dead_letter=dead_letter, handle_signals=True,
    )


    def main_sync():
        wb = sc.WriteBehind(sc.Cache(cache_url), SqliteSource(), **OPTIONS)
        i = 0
        while True:
            key = f"{prefix}{i % 7}"  # few keys, many writes: coalescing at work
            try:
                wb.set(key, i)
            except sc.CacheClosed:
                break
            acks.write(f"{key} {i}\\n")
            i += 1
            time.sleep(0.001)
        time.sleep(30)  # the flush re-sends SIGTERM when done, which ends us


    async def main_async():
        async with sc.AsyncCache(cache_url) as cache:
            wb = sc.AsyncWriteBehind(cache, AsyncSqliteSource(), **OPTIONS)
            i = 0
            while True:
                key = f"{prefix}{i % 7}"
                try:
                    await wb.set(key, i)
                except sc.CacheClosed:
                    break
                acks.write(f"{key} {i}\\n")
                i += 1
                await asyncio.sleep(0.001)
            await asyncio.sleep(30)


    main_sync() if flavour == "sync" else asyncio.run(main_async())
    """
)


def _acked(control: Path) -> dict[str, int]:
    last: dict[str, int] = {}
    for line in (control / "acks").read_text().splitlines():
        key, value = line.split()
        last[key] = int(value)
    return last


def _lines(path: Path) -> int:
    return path.read_text().count("\n")


def _wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "children never got there"
        time.sleep(0.02)


@pytest.mark.parametrize("trouble", ["fail", "stall"])
def test_every_acknowledged_write_reaches_the_source_or_the_dead_letters(
    tmp_path: Path, redis_server: RedisServer, trouble: str
) -> None:
    db = tmp_path / "source.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table kv (key text primary key, value text)")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    children = []
    for n, flavour in enumerate(["sync", "async", "sync", "async"]):
        control = tmp_path / f"child{n}"
        control.mkdir()
        (control / "acks").touch()
        (control / "dead").touch()
        args = [sys.executable, str(script), flavour, str(db), str(control), redis_server.url, f"c{n}:"]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        children.append((proc, control))

    # Healthy for a while, then the trouble starts under load and lasts until SIGTERM.
    _wait_for(lambda: all(len(_acked(control)) == 7 for _, control in children))
    for _, control in children:
        (control / trouble).touch()
    marks = [_lines(control / "acks") for _, control in children]
    _wait_for(
        lambda: all(
            _lines(control / "acks") > mark + 20 for (_, control), mark in zip(children, marks, strict=True)
        )
    )
    for proc, _ in children:
        proc.send_signal(signal.SIGTERM)
    for proc, _ in children:
        try:
            _, stderr = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        # Ended by the SIGTERM passed on to the default handler, after the flush.
        assert proc.returncode == -signal.SIGTERM, stderr.decode()

    with sqlite3.connect(db) as conn:
        stored = {key: json.loads(value) for key, value in conn.execute("select key, value from kv")}
    for _, control in children:
        dead: dict[str, list[int]] = {}
        for line in (control / "dead").read_text().splitlines():
            letter = json.loads(line)
            dead.setdefault(letter["key"], []).append(letter["value"])
        assert dead, "the trouble should have sent writes to the dead-letter callback"
        for key, value in _acked(control).items():
            # This value, or a later write of the key (acknowledged just before the signal),
            # is in the source or in the dead-letter record.
            assert stored.get(key, -1) >= value or max(dead.get(key, [-1])) >= value, (key, value)
    assert os.path.getsize(db) > 0


EXIT_CHILD = textwrap.dedent(
    """
    import json, sys
    import stratacache as sc

    class JsonFile(sc.MappingSource):
        def store_many(self, items):
            super().store_many(items)
            with open(sys.argv[1], "w") as f:
                json.dump(dict(self.data), f)

    wb = sc.WriteBehind(sc.Cache("memory://"), JsonFile(), flush_interval=30, batch_size=1000)
    for i in range(50):
        wb.set(f"k{i}", i)
    print(wb.pending)
    # No close(): the interpreter's exit flushes.
    """
)


def test_sync_write_behind_is_flushed_at_interpreter_exit(tmp_path: Path) -> None:
    out = tmp_path / "source.json"
    result = subprocess.run(
        [sys.executable, "-c", EXIT_CHILD, str(out)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "50"  # all still queued when the script ended
    assert json.loads(out.read_text()) == {f"k{i}": i for i in range(50)}
