"""The file backend: conformance in both flavours, then what only a disk cache has to get right.

Multi-process races and the SIGKILL crash test run real OS processes on a shared directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import gc
import logging
import os
import random
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stratacache import (
    MISSING,
    AsyncCache,
    BackendUnavailable,
    Cache,
    CacheClosed,
    CacheTimeout,
    ConfigurationError,
    InvalidKey,
    ValueTooLarge,
    WrongType,
)
from stratacache._async.backends.file import AsyncFileBackend
from stratacache._config import parse_mapping, parse_url
from stratacache._io.file_store import DB_NAME, RESERVE_NAME, FileStore, glob_literal_prefix, prefix_bounds
from stratacache._io.janitor import janitor
from stratacache._sync.backends.file import FileBackend
from stratacache.testing import FakeClock


@pytest.fixture
def cache_clock() -> FakeClock:
    """A fake wall clock: the file backend stores absolute deadlines from the clock it is given."""
    return FakeClock(start=1_700_000_000.0)


# The conformance suite runs on the file backend from tests/conftest.py (BACKENDS["file"]).


# ---------------------------------------------------------------------------------------------
# Helpers

SRC = str(Path(__file__).resolve().parent.parent / "src")


def run_python(code: str, *, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that imports this checkout's stratacache."""
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


def value_files(directory: Path) -> list[Path]:
    """Every file in the fan-out sub-directories (value files and leftover temp files)."""
    return sorted(p for sub in directory.iterdir() if sub.is_dir() for p in sub.iterdir())


@pytest.fixture
def fdir(tmp_path: Path) -> Path:
    """A cache directory that does not exist yet."""
    return tmp_path / "cache"


# ---------------------------------------------------------------------------------------------
# URL, dict and keyword forms


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///var/cache/app", {"directory": "/var/cache/app"}),
        ("file://localhost/var/cache/app", {"directory": "/var/cache/app"}),
        ("file:///var/cache/my%20app/", {"directory": "/var/cache/my app/"}),
        (
            "file:///c?file_mode=640&dir_mode=0o750&prefix=v-&max_bytes=1000&policy=LFU"
            "&janitor_interval=none&inline_threshold=0&sync=full&timeout=2.5",
            {
                "directory": "/c",
                "file_mode": 0o640,
                "dir_mode": 0o750,
                "prefix": "v-",
                "max_bytes": 1000,
                "policy": "lfu",
                "janitor_interval": None,
                "inline_threshold": 0,
                "sync": "full",
                "timeout": 2.5,
            },
        ),
        ("file://?directory=/d", {"directory": "/d"}),
    ],
)
def test_url_forms(url: str, expected: dict[str, Any]) -> None:
    config = parse_url(url)
    assert config.backend == "file"
    assert config.backend_options == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file://server/share", "no host"),
        ("file:///c?file_mode=999", "file_mode"),
        ("file:///c?file_mode=rw", "file_mode"),
        ("file:///c?policy=random", "policy"),
        ("file:///c?sync=sometimes", "sync"),
        ("file:///c?max_bytes=-1", "max_bytes"),
        ("file:///c?janitor_interval=0", "janitor_interval"),
        ("file:///c?inline_threshold=-5", "inline_threshold"),
        ("file:///c?colour=blue", "colour"),
    ],
)
def test_bad_urls_name_the_fault(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_url(url)


def test_dict_config_and_keywords(fdir: Path) -> None:
    config = parse_mapping({"backend": "file", "directory": str(fdir), "max_bytes": "2048"})
    assert config.backend_options == {"directory": str(fdir), "max_bytes": 2048}
    with Cache.from_config({"backend": "file", "directory": str(fdir)}) as c:
        c.set("k", 1)
    with Cache(FileBackend(fdir)) as c:
        assert c.get("k") == 1
        assert str(fdir) in repr(c)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs a directory"),
        ({"file_mode": 0o200}, "file_mode"),
        ({"file_mode": "600"}, "file_mode"),
        ({"dir_mode": 0o500}, "dir_mode"),
        ({"prefix": "a/b"}, "prefix"),
        ({"prefix": ".hidden"}, "prefix"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_bytes": True}, "max_bytes"),
        ({"policy": "tinylfu"}, "policy"),
        ({"sync": "off"}, "sync"),
        ({"janitor_interval": -1}, "janitor_interval"),
        ({"inline_threshold": 1.5}, "inline_threshold"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_keywords_name_the_fault(fdir: Path, kwargs: dict[str, Any], message: str) -> None:
    if "needs a directory" not in message:
        kwargs = {"directory": fdir, **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        FileBackend(**kwargs)


# ---------------------------------------------------------------------------------------------
# Directory, permissions and errors at the boundary


def test_directory_is_created_with_modes(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b"
    store = FileStore(directory, dir_mode=0o750, file_mode=0o640, prefix="val-", inline_threshold=10)
    try:
        store.set("big", b"x" * 100, None)
        assert stat.S_IMODE(directory.stat().st_mode) == 0o750
        for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"):
            assert stat.S_IMODE((directory / name).stat().st_mode) == 0o640, name
        (file,) = value_files(directory)
        assert file.name.startswith("val-")
        assert stat.S_IMODE(file.stat().st_mode) == 0o640
        assert stat.S_IMODE(file.parent.stat().st_mode) == 0o750
    finally:
        store.close()


def test_default_modes_are_private(fdir: Path) -> None:
    with Cache(f"file://{fdir}?inline_threshold=4") as c:
        c.set("k", "a longer value")
        assert stat.S_IMODE(fdir.stat().st_mode) == 0o700
        assert stat.S_IMODE((fdir / DB_NAME).stat().st_mode) == 0o600
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in value_files(fdir))


def test_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    FileStore(tmp_path).close()
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


def test_directory_under_a_file_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigurationError, match=str(blocker / "cache")) as info:
        FileStore(blocker / "cache")
    assert isinstance(info.value.__cause__, OSError)


def test_unwritable_directory_is_a_configuration_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    if os.geteuid() != 0:
        locked.chmod(0o500)
        with pytest.raises(ConfigurationError, match=r"locked.*Permission denied"):
            FileStore(locked)
        return
    # root ignores permission bits: try as an unprivileged user, in a forked child.
    for parent in (tmp_path, *tmp_path.parents):
        parent.chmod(parent.stat().st_mode | 0o011)  # traversable, still unlistable
    locked.chmod(0o755)  # readable, not writable by others
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 3
        try:
            os.setgid(65534)
            os.setuid(65534)
            FileStore(locked)
            code = 1
        except ConfigurationError as exc:
            code = 0 if str(locked) in str(exc) and "Permission denied" in str(exc) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# ---------------------------------------------------------------------------------------------
# A damaged index: reported by health(), rebuilt by clear()


def assert_damaged_then_rebuilt(fdir: Path, reason: str) -> None:
    """The cache opens, says why in health() and every operation, and clear() rebuilds it."""
    with Cache(f"file://{fdir}") as c:
        report = c.health()
        assert report.healthy is False
        assert report.error is not None
        for part in ("damaged", reason, str(fdir)):
            assert part in report.error
        with pytest.raises(BackendUnavailable, match=f"get\\(\\) on key 'k'.*damaged.*{reason}"):
            c.get("k")
        with pytest.raises(BackendUnavailable, match="clear\\(\\) rebuilds it"):
            c.set("k", 1)
        c.clear()
        assert c.health().healthy is True
        assert c.get("k") is None
        c.set("k", 1)
        assert c.get("k") == 1
    with Cache(f"file://{fdir}") as c:  # and the rebuilt index is sound on disk
        assert c.health().healthy is True
        assert c.get("k") == 1


def test_a_file_that_is_not_a_database_is_damage_and_clear_rebuilds_it(fdir: Path) -> None:
    fdir.mkdir()
    (fdir / DB_NAME).write_bytes(b"this is not an SQLite database, just text " * 100)
    assert_damaged_then_rebuilt(fdir, "not a database")


def test_another_format_is_damage_and_clear_rebuilds_it(fdir: Path) -> None:
    FileStore(fdir).close()
    with sqlite3.connect(fdir / DB_NAME) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    assert_damaged_then_rebuilt(fdir, "format 99")


def test_a_wrong_schema_is_damage_and_clear_rebuilds_it(fdir: Path) -> None:
    FileStore(fdir).close()
    with sqlite3.connect(fdir / DB_NAME) as conn:
        conn.execute("DROP TABLE hash_fields")
        conn.execute("CREATE TABLE hash_fields (owner INTEGER, blob BLOB)")
    conn.close()
    assert_damaged_then_rebuilt(fdir, "hash_fields")


def test_a_truncated_index_is_reported_and_clear_rebuilds_it(fdir: Path) -> None:
    with Cache(f"file://{fdir}?serializer=raw") as c:
        c.set_many({f"key{i:05d}": b"v" * 200 for i in range(3000)})
    size = (fdir / DB_NAME).stat().st_size
    assert size > 400_000
    os.truncate(fdir / DB_NAME, size // 3)
    with Cache(f"file://{fdir}?serializer=raw") as c:
        errors: list[BackendUnavailable] = []
        for i in range(0, 3000, 7):
            try:
                c.get(f"key{i:05d}")
            except BackendUnavailable as exc:
                errors.append(exc)
        # The first read that met the missing pages latched the damage; every later one says so.
        assert errors, "reading a truncated index met no damage"
        assert "damaged" in str(errors[-1])
        assert "malformed" in str(errors[-1])
        report = c.health()
        assert report.healthy is False
        assert report.error is not None
        assert "malformed" in report.error
        c.clear()
        assert c.health().healthy is True
        assert c.get("key00000") is None
        c.set("key00000", b"fresh")
        assert c.get("key00000") == b"fresh"
    con = sqlite3.connect(fdir / DB_NAME)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()


def test_another_store_follows_a_rebuild(fdir: Path) -> None:
    fdir.mkdir()
    (fdir / DB_NAME).write_bytes(b"garbage " * 1000)
    first, second = FileStore(fdir), FileStore(fdir)
    try:
        with pytest.raises(BackendUnavailable, match="damaged"):
            second.ping()
        first.clear()
        first.set("k", b"v", None)
        second.ping()  # notices the new index (another inode) and reopens it
        assert second.get("k") == b"v"
        second.clear()  # a plain clear now: the index is sound
        assert first.get("k") is MISSING
    finally:
        first.close()
        second.close()


def _open_paths(path: Path) -> list[str]:
    """What this process has open at ``path`` (Linux: /proc/self/fd); a deleted file ends in ' (deleted)'."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(path)):
                found.append(target)
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_a_rebuild_is_noticed_after_a_garbage_collection(fdir: Path) -> None:
    # The flaky failure of test_another_store_follows_a_rebuild, made deterministic: a store
    # opening a damaged index dropped its connection, which the garbage collector closed
    # whenever it ran. Once closed and unlinked by the rebuild, the old index's inode number was
    # free, ext4 gave it to the new index, and the other store took the new index for the
    # damaged one it had met (same device and inode). gc.collect() here is a collection at the
    # worst moment; the store must keep the damaged index open until it reopens.
    fdir.mkdir()
    (fdir / DB_NAME).write_bytes(b"garbage " * 1000)
    first, second = FileStore(fdir), FileStore(fdir)
    try:
        gc.collect()
        assert len(_open_paths(fdir / DB_NAME)) >= 2  # each store still holds the damaged index
        first.clear()
        first.set("k", b"v", None)
        # The rebuilt index is another file, and the damaged one is still open in `second`.
        assert f"{fdir / DB_NAME} (deleted)" in _open_paths(fdir / DB_NAME)
        second.ping()
        assert second.get("k") == b"v"
        assert f"{fdir / DB_NAME} (deleted)" not in _open_paths(fdir / DB_NAME)  # closed at reopen
    finally:
        first.close()
        second.close()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_a_store_opening_during_a_rebuild_waits_for_it(fdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The rebuild unlinks cache.db, then its -wal and -shm, then creates the new index. A store
    # opening in between created a cache.db of its own with a WAL and shm that the rebuild then
    # unlinked under it: the rebuilding store wrote to new -wal/-shm files, the other one kept
    # the unlinked ones, and the two saw different databases. Opening must wait for the rebuild.
    fdir.mkdir()
    (fdir / DB_NAME).write_bytes(b"garbage " * 1000)
    rebuilder = FileStore(fdir)
    paused, resume = threading.Event(), threading.Event()
    unlink = os.unlink

    def unlink_pausing(path: Any, *args: Any, **kwargs: Any) -> None:
        if path == DB_NAME + "-wal" and threading.current_thread().name == "rebuild":
            paused.set()
            assert resume.wait(30)
        unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink_pausing)
    opened: list[FileStore] = []
    rebuild = threading.Thread(target=rebuilder.clear, name="rebuild")
    opener = threading.Thread(target=lambda: opened.append(FileStore(fdir)), name="opener")
    rebuild.start()
    try:
        assert paused.wait(30)  # cache.db is gone, its -wal and -shm not yet
        opener.start()
        opener.join(0.5)
        assert opener.is_alive(), "a store opened the index in the middle of a rebuild"
    finally:
        resume.set()
        rebuild.join(30)
        opener.join(30)
    monkeypatch.undo()
    (other,) = opened
    try:
        rebuilder.set("a", b"1", None)
        other.set("b", b"2", None)
        assert (other.get("a"), rebuilder.get("b")) == (b"1", b"2")
        assert not [p for p in _open_paths(fdir / DB_NAME) if p.endswith("(deleted)")]
    finally:
        other.close()
        rebuilder.close()


def test_janitor_sweep_skips_a_reopen_while_another_process_rebuilds(fdir: Path) -> None:
    # Opening the index waits for a rebuild (the flock above); the janitor thread sweeps every
    # store of the process and must not wait on another process's rebuild: it skips the
    # reopen and tries again at its next sweep.
    store = FileStore(fdir, janitor_interval=3600)
    lock_fd = os.open(fdir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # what a rebuild elsewhere holds
        (fdir / DB_NAME).unlink()  # ... after unlinking the damaged index
        store._next_sweep = 0.0  # due now
        sweep = threading.Thread(target=store.purge_expired)
        sweep.start()
        sweep.join(5)
        assert not sweep.is_alive(), "the janitor's sweep waited for another process's rebuild"
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        store._next_sweep = 0.0
        store.purge_expired()  # the rebuild is over: this sweep reopens the index
        store.set("k", b"v", None)
        assert store.get("k") == b"v"
        assert (fdir / DB_NAME).exists()
    finally:
        os.close(lock_fd)
        store.close()


def _posix_locks(path: Path) -> list[str]:
    """This process's POSIX locks on ``path`` (Linux: /proc/locks), without each line's
    leading ordinal ("3:"), which shifts as other processes take and drop locks."""
    info = path.stat()
    suffix = f":{info.st_ino}"
    return sorted(
        line.split(":", 1)[1].strip()
        for line in Path("/proc/locks").read_text().splitlines()
        if " POSIX " in line and f" {os.getpid()} " in line and any(f.endswith(suffix) for f in line.split())
    )


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs /proc/locks")
def test_opening_another_store_keeps_this_processs_sqlite_locks(fdir: Path) -> None:
    # POSIX locks belong to the process and the inode: closing ANY descriptor of cache.db drops
    # every lock the process's SQLite connections hold on it. Opening a store used to open and
    # close cache.db (to create it with file_mode and read its identity), which silently
    # released a reader's lock; another process could then take the database as unused.
    first = FileStore(fdir)
    first.set("k", b"v", None)
    reader = sqlite3.connect(fdir / DB_NAME, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM entries").fetchone()  # holds a SHARED lock
        held = _posix_locks(fdir / DB_NAME)
        assert held
        second = FileStore(fdir)  # another store of this process opens the index
        assert _posix_locks(fdir / DB_NAME) == held
        second.close()  # SQLite's own close keeps them (it defers closing while locks are held)
        assert _posix_locks(fdir / DB_NAME) == held
        reader.execute("COMMIT")
    finally:
        reader.close()
        first.close()


def test_index_is_created_where_hard_links_are_refused(fdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # cache.db is made under a temporary name and linked into place; on a filesystem without
    # hard links (EPERM from link()) it is created in place, still with file_mode.
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", refuse)
    store = FileStore(fdir, file_mode=0o640)
    try:
        store.set("k", b"v", None)
        assert store.get("k") == b"v"
        assert stat.S_IMODE((fdir / DB_NAME).stat().st_mode) == 0o640
        assert sorted(p.name for p in fdir.iterdir() if p.name.startswith(".")) == []  # no temp left
    finally:
        store.close()


def test_locked_database_is_a_timeout(fdir: Path) -> None:
    store = FileStore(fdir, timeout=0.1)
    other = sqlite3.connect(fdir / DB_NAME, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        started = time.monotonic()
        with pytest.raises(CacheTimeout, match="write lock") as info:
            store.set("k", b"v", None)
        assert time.monotonic() - started < 5
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        with pytest.raises(CacheTimeout):
            store.incr("n", 1)
        assert store.get("k") is MISSING  # readers are not blocked by the writer (WAL)
        other.execute("ROLLBACK")
        store.set("k", b"v", None)
        assert store.get("k") == b"v"
    finally:
        other.close()
        store.close()


def test_vanished_directory_fails_ping(tmp_path: Path) -> None:
    import shutil

    with Cache(f"file://{tmp_path}/gone") as c:
        assert c.ping() is True
        shutil.rmtree(tmp_path / "gone")
        with pytest.raises(BackendUnavailable, match="disappeared"):
            c.ping()
        assert c.health().healthy is False


def test_closed_store_refuses(fdir: Path) -> None:
    store = FileStore(fdir)
    store.set("k", b"v", None)
    store.close()
    store.close()
    assert store.closed
    with pytest.raises(CacheClosed, match=r"file cache .* is closed: get\(\) on key 'k' after close\(\)"):
        store.get("k")
    with pytest.raises(CacheClosed):
        store.set("k", b"v", None)
    assert store.purge_expired() == 0


def test_closed_store_refuses_from_another_thread(fdir: Path) -> None:
    store = FileStore(fdir)
    errors: list[BaseException] = []

    def use() -> None:
        try:
            store.get("k")
        except BaseException as exc:
            errors.append(exc)

    store.close()
    thread = threading.Thread(target=use)
    thread.start()
    thread.join()
    assert isinstance(errors[0], CacheClosed)


# close() while other threads (or tasks) use the cache: they finish or get CacheClosed. The old
# store closed every thread's SQLite connection while other threads were inside it (SIGSEGV),
# so each run is a subprocess: a crash fails the test instead of killing pytest.

_CLOSE_RACE = """
import asyncio, random, sys, tempfile, threading, time
from stratacache import AsyncCache, Cache, CacheClosed
from stratacache._io.file_store import FileStore
from stratacache._sync.backends.file import FileBackend

mode, rounds = sys.argv[1], int(sys.argv[2])
root = tempfile.mkdtemp(dir=sys.argv[3])
bad = []
ops = 0

def step(target, rng, set_value):
    key = f"k{rng.randrange(40)}"
    pick = rng.random()
    if pick < 0.4:
        target.get(key)
    elif pick < 0.8:
        set_value(key, b"x" * rng.choice([10, 100, 1000]))
    elif pick < 0.9:
        target.delete_pattern("k1*")
    else:
        target.clear()

def threads(n):
    global ops
    url = f"{root}/c{n}"
    if mode == "store":
        target = FileStore(url, inline_threshold=64, max_bytes=100_000)
        set_value = lambda k, v: target.set(k, v, None)
    elif mode == "backend":
        target = FileBackend(url, inline_threshold=64, max_bytes=100_000)
        set_value = lambda k, v: target.set(k, v, None)
    else:
        target = Cache(f"file://{url}?inline_threshold=64&max_bytes=100000")
        set_value = target.set
    started = threading.Barrier(7)

    def work(seed):
        global ops
        rng = random.Random(seed)
        started.wait()
        while True:
            try:
                step(target, rng, set_value)
                ops += 1
            except CacheClosed:
                return
            except BaseException as exc:
                bad.append(repr(exc))
                return

    workers = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for w in workers:
        w.start()
    started.wait()
    time.sleep(0.01)
    target.close()
    for w in workers:
        w.join()

async def tasks(n):
    global ops
    cache = AsyncCache(f"file://{root}/c{n}?inline_threshold=64&max_bytes=100000")
    stop = False

    async def work(seed):
        global ops
        rng = random.Random(seed)
        while not stop:
            key = f"k{rng.randrange(40)}"
            pick = rng.random()
            try:
                if pick < 0.4:
                    await cache.get(key)
                elif pick < 0.8:
                    await cache.set(key, b"x" * rng.choice([10, 100, 1000]))
                elif pick < 0.9:
                    await cache.delete_pattern("k1*")
                else:
                    await cache.clear()
                ops += 1
            except CacheClosed:
                return
            except BaseException as exc:
                bad.append(repr(exc))
                return

    running = [asyncio.create_task(work(i)) for i in range(8)]
    await asyncio.sleep(0.02)
    # The backend's own close, while worker threads still run the tasks' store calls (the
    # facade's close would first swap in a closed backend for new calls).
    await cache.backend.close()
    stop = True
    await asyncio.gather(*running)
    await cache.close()

for n in range(rounds):
    if mode == "async":
        asyncio.run(tasks(n))
    else:
        threads(n)
print(len(bad), ops, bad[:3])
"""


@pytest.mark.parametrize("mode", ["store", "backend", "facade", "async"])
def test_close_while_other_threads_use_the_cache(mode: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _CLOSE_RACE, mode, "25", str(tmp_path)],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    assert "was not read or deleted" not in result.stderr  # no live value file taken for a planted one
    bad, ops, sample = result.stdout.split(" ", 2)
    assert bad == "0", f"other threads saw errors other than CacheClosed: {sample}"
    assert int(ops) > 0


def test_keys_that_utf8_cannot_hold_are_invalid(fdir: Path) -> None:
    with Cache(f"file://{fdir}") as c:
        with pytest.raises(InvalidKey, match="UTF-8"):
            c.set("bad\ud800", 1)
        with pytest.raises(InvalidKey):
            c.get("bad\ud800")


def test_nul_and_glob_characters_in_keys(fdir: Path) -> None:
    with Cache(f"file://{fdir}") as c:
        c.set("a\x00b", 1)
        c.set("a", 2)
        assert c.get("a\x00b") == 1
        assert c.get("a") == 2
        assert c.delete_pattern("a\x00*") == 1
        assert c.get("a") == 2


def test_wrong_type_names_key_and_kinds(fdir: Path) -> None:
    with Cache(f"file://{fdir}") as c:
        c.set("plain", "v")
        c.rpush("list", 1)
        c.hset("hash", "f", "x")
        with pytest.raises(WrongType, match=r"'plain'.*plain value, not a list"):
            c.rpush("plain", 1)
        with pytest.raises(WrongType, match=r"'list'.*list"):
            c.get("list")
        with pytest.raises(WrongType, match="'list'"):
            c.incr("list")
        with pytest.raises(WrongType, match="not an integer"):
            c.hincrby("hash", "f")
        with pytest.raises(WrongType):
            c.smembers("hash")
        with pytest.raises(WrongType):
            c.hgetall("list")
        with pytest.raises(WrongType):
            c.lrange("hash")
        c.set("list", "now plain")  # set replaces a collection, as Redis SET does
        assert c.get("list") == "now plain"
        with pytest.raises(WrongType, match="plain value, not a list"):
            c.llen("list")


def test_counter_overflow_leaves_value(fdir: Path) -> None:
    with Cache(f"file://{fdir}") as c:
        c.set("n", 2**63 - 1)
        with pytest.raises(ValueError, match="overflow"):
            c.incr("n")
        assert c.get("n") == 2**63 - 1
        with pytest.raises(ValueError, match="overflow"):
            c.hincrby("h", "f", 2**63 - 1) and c.hincrby("h", "f", 1)
        assert c.hget("h", "f") == 2**63 - 1


# ---------------------------------------------------------------------------------------------
# Large values in their own files


def test_large_values_live_in_files_and_are_cleaned(fdir: Path) -> None:
    with Cache(f"file://{fdir}?inline_threshold=1000") as c:
        big = b"\x01" * 5000
        c.set("big", big)
        c.set("small", b"s")
        assert len(value_files(fdir)) == 1
        assert c.get("big") == big
        assert c.get_many(["big", "small"]) == {"big": big, "small": b"s"}
        c.set("big", b"\x02" * 6000)  # overwrite: new file, the old one goes
        (_file,) = value_files(fdir)
        assert c.get("big") == b"\x02" * 6000
        c.set("big", "now small")
        assert value_files(fdir) == []
        for i in range(3):
            c.set(f"b{i}", big)
        assert len(value_files(fdir)) == 3
        assert c.delete("b0") is True
        assert c.delete_pattern("b?") == 2
        assert value_files(fdir) == []
        c.set("b", big)
        c.clear()
        assert value_files(fdir) == []
        c.set_many({"x": big, "y": big})
        assert c.delete_many(["x", "y"]) == 2
        assert value_files(fdir) == []


def test_missing_or_damaged_value_file_reads_as_a_miss(fdir: Path) -> None:
    with Cache(f"file://{fdir}?inline_threshold=10") as c:
        c.set("gone", b"g" * 100)
        c.set("torn", b"t" * 100)
        c.set("kept", b"k" * 100)
        files = {f.read_bytes()[-1:]: f for f in value_files(fdir)}
        files[b"g"].unlink()
        data = files[b"t"].read_bytes()
        files[b"t"].write_bytes(data[: len(data) // 2])  # a torn write
        assert c.get("gone") is None
        assert c.get_many(["gone", "torn", "kept"]) == {"kept": b"k" * 100}
        assert c.exists("gone") is False
        assert c.exists("torn") is False
        assert c.get("kept") == b"k" * 100


def test_counter_in_a_file(fdir: Path) -> None:
    with Cache(f"file://{fdir}?inline_threshold=0") as c:
        c.set("n", 41)
        assert len(value_files(fdir)) == 1
        assert c.incr("n") == 42
        assert value_files(fdir) == []  # counters move inline
        assert c.get("n") == 42


def test_orphans_are_reclaimed(fdir: Path) -> None:
    store = FileStore(fdir, inline_threshold=10)
    try:
        store.set("kept", b"k" * 100, None)
        (fdir / "ab").mkdir(exist_ok=True)
        (fdir / "ab" / ".tmp-deadbeef").write_bytes(b"half")
        (fdir / "ab" / "deadbeef.val").write_bytes(b"never committed")
        assert store.reclaim_orphans() == 0  # too young: a writer may be about to commit it
        assert store.reclaim_orphans(min_age=0) == 2
        assert len(value_files(fdir)) == 1
        assert store.get("kept") == b"k" * 100
    finally:
        store.close()


def test_unwritable_value_file_is_backend_unavailable(fdir: Path) -> None:
    store = FileStore(fdir, inline_threshold=10)
    try:
        for sub in range(256):
            (fdir / f"{sub:02x}").write_text("not a directory")
        with pytest.raises(BackendUnavailable, match="big") as info:
            store.set("big", b"b" * 100, None)
        assert isinstance(info.value.__cause__, OSError)
        assert store.get("big") is MISSING
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# The directory is not trusted: planted symlinks and crafted index rows


def old_file(path: Path, content: bytes) -> Path:
    """A file outside the cache, two hours old (so an orphan sweep would take it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    past = time.time() - 7200
    os.utime(path, (past, past))
    return path


def test_reclaim_never_follows_a_symlink_out_of_the_directory(tmp_path: Path) -> None:
    fdir = tmp_path / "cache"
    outside = tmp_path / "outside"
    victims = [old_file(outside / "precious.val", b"keep me"), old_file(outside / ".tmp-x", b"me too")]
    store = FileStore(fdir, inline_threshold=10)
    try:
        store.set("kept", b"k" * 100, None)
        real_sub = value_files(fdir)[0].parent
        planted_sub = next(f"{n:02x}" for n in range(256) if not (fdir / f"{n:02x}").exists())
        (fdir / planted_sub).symlink_to(outside, target_is_directory=True)  # a sub-directory
        link = real_sub / ("0" * 32 + ".val")  # and a value file
        link.symlink_to(victims[0])
        past = time.time() - 7200
        os.utime(link, (past, past), follow_symlinks=False)
        assert store.reclaim_orphans(min_age=0) == 1  # the link itself, not what it points at
        assert not link.is_symlink()
        assert [v.read_bytes() for v in victims] == [b"keep me", b"me too"]
        assert store.get("kept") == b"k" * 100
    finally:
        store.close()


def test_a_symlink_in_place_of_a_value_file_is_never_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fdir = tmp_path / "cache"
    secret = old_file(tmp_path / "outside" / "secret", b"s3cret data")
    store = FileStore(fdir, inline_threshold=10)
    try:
        store.set("k", b"v" * 100, None)
        store.set("j", b"w" * 100, None)
        with sqlite3.connect(fdir / DB_NAME) as conn:  # crafted CRCs: only the link stops a read
            conn.execute("UPDATE entries SET crc = ?", (zlib.crc32(secret.read_bytes()),))
        conn.close()
        # k: the value file itself is a link to the secret.
        path_k = fdir / store_file(fdir, "k")
        path_k.unlink()
        path_k.symlink_to(secret)
        # j: its sub-directory is a link to a directory holding a file of the same name.
        name_j = store_file(fdir, "j")
        sub_j = fdir / name_j.split("/")[0]
        if sub_j == path_k.parent:
            (sub_j / name_j.split("/")[1]).unlink()
        else:
            shutil.rmtree(sub_j)
        (tmp_path / "outside" / "fake").mkdir()
        (tmp_path / "outside" / "fake" / name_j.split("/")[1]).write_bytes(secret.read_bytes())
        if sub_j != path_k.parent:
            sub_j.symlink_to(tmp_path / "outside" / "fake", target_is_directory=True)
        with caplog.at_level(logging.WARNING, logger="stratacache"):
            assert store.get("k") is MISSING
            assert store.get_many(["k", "j"]) == {}
        assert secret.read_bytes() == b"s3cret data"
        assert (tmp_path / "outside" / "fake" / name_j.split("/")[1]).exists()
        assert store.unsafe_paths >= 1
        assert "symbolic link" in caplog.text
        assert str(fdir) in caplog.text
    finally:
        store.close()


def store_file(fdir: Path, key: str) -> str:
    """The value file name the index holds for ``key``."""
    conn = sqlite3.connect(fdir / DB_NAME)
    try:
        return str(conn.execute("SELECT file FROM entries WHERE key = ?", (key,)).fetchone()[0])
    finally:
        conn.close()


def test_crafted_index_rows_are_not_read_or_deleted_and_are_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fdir = tmp_path / "cache"
    victim = old_file(tmp_path / "victim", b"victim's data")
    store = FileStore(fdir, inline_threshold=10)
    (fdir / "00").mkdir()
    names = ["../victim", str(victim), "00/../../victim", "00/../../victim\x00.val", "..", ""]
    try:
        with sqlite3.connect(fdir / DB_NAME) as conn:
            for n, name in enumerate(names):
                conn.execute(
                    "INSERT INTO entries (key, kind, value, file, crc, size, length, expires, stored, "
                    "accessed, hits) VALUES (?, 0, NULL, ?, ?, 10, 0, NULL, 0, 0, 0)",
                    (f"evil{n}", name, zlib.crc32(victim.read_bytes())),
                )
                conn.execute("INSERT INTO trash (file) VALUES (?)", (name,))
        conn.close()
        with caplog.at_level(logging.WARNING, logger="stratacache"):
            assert store.get("evil0") is MISSING
            assert store.get_many([f"evil{n}" for n in range(len(names))]) == {}
            store.set("evil2", b"x" * 100, None)  # an overwrite trashes the old name
            assert store.delete("evil2") is True
            assert store.delete_many([f"evil{n}" for n in range(len(names))]) >= 0
            store.sweep()
            store.reclaim_orphans(min_age=0)
            store.clear()
        assert victim.read_bytes() == b"victim's data"
        assert store.unsafe_paths >= len(names)
        assert "'../victim'" in caplog.text
        assert repr(str(victim)) in caplog.text
        assert "was not read or deleted" in caplog.text
        with Cache(backend="file", directory=str(fdir)) as c:
            assert c.stats().backend == {"unsafe_paths": 0}
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# A full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs (needs root; skipped elsewhere)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr!r}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill_until_full(store: FileStore, rng: random.Random, written: dict[str, bytes]) -> BackendUnavailable:
    """Set values in files and inline until the disk is full; the error that said so."""
    for i in range(100_000):
        value = rng.randbytes(3000 if i % 3 == 0 else 600)
        try:
            store.set(f"k{i}", value, None)
        except BackendUnavailable as exc:
            return exc
        written[f"k{i}"] = value
    raise AssertionError("the disk never filled up")


def test_a_full_disk_refuses_writes_loses_nothing_and_still_deletes(small_disk: Path) -> None:
    directory = small_disk / "cache"
    store = FileStore(directory, inline_threshold=2000)
    rng = random.Random(7)
    written: dict[str, bytes] = {}
    try:
        error = fill_until_full(store, rng, written)
        assert re.search(r"set\(\) on key 'k\d+': the disk holding the cache is full", str(error))
        assert str(directory) in str(error)
        assert isinstance(error.__cause__, (sqlite3.OperationalError, OSError))
        assert len(written) > 100
        with pytest.raises(BackendUnavailable, match=r"'big'.*full"):
            store.set("big", rng.randbytes(200_000), None)
        assert not [p for p in value_files(directory) if p.name.startswith(".tmp-")]
        with pytest.raises(BackendUnavailable, match="full"):
            store.set("k1", b"an overwrite that does not fit " * 100, None)
        # Nothing that was written is lost, the failed overwrite included.
        assert store.get_many(list(written)) == written
        keys = list(written)
        assert store.delete(keys[0]) is True
        assert store.delete_many(keys[1:40]) == 39
        assert store.delete_pattern("k1*") > 0
        store.clear()
        assert store.counters().items == 0
        assert value_files(directory) == []
        store.set("after", b"v" * 5000, None)  # the space is usable again
        assert store.get("after") == b"v" * 5000
        assert store.sweep() == 0
        assert (directory / RESERVE_NAME).stat().st_size > 0  # set aside again by the sweep
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# Bounds and eviction


def fill(c: Cache, keys: list[str], size: int = 1000) -> None:
    for key in keys:
        c.set(key, b"v" * size)


def test_max_bytes_holds_and_value_too_large(fdir: Path) -> None:
    with Cache(f"file://{fdir}?max_bytes=20000&serializer=raw") as c:
        fill(c, [f"k{i}" for i in range(100)])
        stats = c.stats()
        assert stats.bytes <= 20000
        assert stats.evictions >= 80
        assert c.get("k99") == b"v" * 1000  # the newest survived
        with pytest.raises(ValueTooLarge, match="max_bytes=20000"):
            c.set("huge", b"x" * 30000)
        with pytest.raises(ValueTooLarge):
            c.rpush("list", b"x" * 30000)
        assert c.exists("huge") is False


def test_lru_keeps_what_is_read(fdir: Path, cache_clock: FakeClock) -> None:
    with Cache(f"file://{fdir}?max_bytes=11000&policy=lru&serializer=raw", clock=cache_clock) as c:
        fill(c, [f"k{i}" for i in range(10)])
        for _ in range(3):
            cache_clock.advance(1)
            assert c.get("k0") is not None
        cache_clock.advance(1)
        fill(c, ["new1", "new2"])
        assert c.exists("k0") is True
        assert c.exists("k1") is False
        assert c.exists("k2") is False


def test_lfu_keeps_what_is_read_often(fdir: Path, cache_clock: FakeClock) -> None:
    with Cache(f"file://{fdir}?max_bytes=11000&policy=lfu&serializer=raw", clock=cache_clock) as c:
        fill(c, [f"k{i}" for i in range(10)])
        for i in range(10):
            cache_clock.advance(1)
            for _ in range(5 if i != 4 else 0):
                c.get(f"k{i}")
        fill(c, ["new"])
        assert c.exists("k4") is False  # never read
        assert all(c.exists(f"k{i}") for i in range(10) if i != 4)


def test_fifo_evicts_first_inserted(fdir: Path) -> None:
    with Cache(f"file://{fdir}?max_bytes=11000&policy=fifo&serializer=raw") as c:
        fill(c, [f"k{i}" for i in range(10)])
        for _ in range(5):
            c.get("k0")  # reads do not matter to fifo
        fill(c, ["new1", "new2"])
        assert not c.exists("k0")
        assert not c.exists("k1")
        assert c.exists("k2")
        assert c.exists("new2")


def test_expired_entries_are_evicted_first(fdir: Path, cache_clock: FakeClock) -> None:
    with Cache(f"file://{fdir}?max_bytes=11000&serializer=raw", clock=cache_clock) as c:
        c.set("short", b"v" * 1000, ttl=1)
        fill(c, [f"k{i}" for i in range(9)])
        cache_clock.advance(2)
        fill(c, ["new"])
        assert all(c.exists(f"k{i}") for i in range(9))
        assert c.stats().expirations == 1


def test_collections_count_against_max_bytes(fdir: Path) -> None:
    with Cache(f"file://{fdir}?max_bytes=5000&serializer=raw") as c:
        c.set("a", b"x" * 2000)
        for i in range(4):
            c.rpush("list", b"y" * 1000)
            c.sadd("set", str(i).encode() * 10)
        assert c.stats().bytes <= 5000
        assert c.exists("a") is False
        assert c.llen("list") == 4


def test_lru_bound_shared_by_processes(fdir: Path) -> None:
    FileStore(fdir, max_bytes=50_000).close()
    code = f"""
        from stratacache import Cache
        with Cache("file://{fdir}?max_bytes=50000&serializer=raw") as c:
            for i in range(100):
                c.set(f"{{__import__('os').getpid()}}:{{i}}", b"v" * 1000)
    """
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    store = FileStore(fdir)
    try:
        assert store.counters().bytes <= 50_000
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# Expiry and the janitor


def test_janitor_sweeps_expired_entries(fdir: Path, cache_clock: FakeClock) -> None:
    with Cache(f"file://{fdir}?janitor_interval=0.01&inline_threshold=10", clock=cache_clock) as c:
        c.set("a", "x" * 100, ttl=5)
        c.set("b", 1, ttl=5)
        c.rpush("l", 1)
        c.expire("l", 5)
        c.set("forever", 1)
        assert len(value_files(fdir)) == 1
        cache_clock.advance(10)
        time.sleep(0.02)
        janitor.run_once()
        stats = c.stats()
        assert stats.items == 1
        assert stats.expirations == 3
        assert value_files(fdir) == []


def test_sweep_now_and_no_janitor(fdir: Path, cache_clock: FakeClock) -> None:
    store = FileStore(fdir, janitor_interval=None, clock=cache_clock)
    try:
        store.set("a", b"1", 1)
        cache_clock.advance(2)
        assert store.purge_expired() == 0  # not watched, nothing due
        assert store.counters().items == 1
        assert store.get("a") is MISSING  # never returned though
        assert store.sweep() == 1
        assert store.counters().items == 0
    finally:
        store.close()


def test_sweep_survives_a_busy_database(fdir: Path) -> None:
    store = FileStore(fdir, janitor_interval=0.01, timeout=0.1)
    other = sqlite3.connect(fdir / DB_NAME, isolation_level=None)
    try:
        store.set("a", b"1", 0.001)
        other.execute("BEGIN IMMEDIATE")
        time.sleep(0.02)
        assert store.purge_expired() == 0  # skipped, not raised
    finally:
        other.execute("ROLLBACK")
        other.close()
        store.close()


# ---------------------------------------------------------------------------------------------
# Concurrency: threads and processes


def test_threads_share_one_directory(fdir: Path) -> None:
    with Cache(f"file://{fdir}") as c:

        def work(n: int) -> None:
            for _ in range(100):
                c.incr("n")
                c.sadd("s", n)  # not get_ident(): an exited thread's ident can be reused

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert c.get("n") == 800
        assert c.scard("s") == 8


_RACER = """
import sys
from stratacache import Cache
url, who = sys.argv[1], sys.argv[2]
with Cache(url) as c:
    won = c.add("claim", who)
    for i in range(200):
        c.incr("counter")
        c.hincrby("h", "f")
        c.rpush("list", who)
        c.sadd("set", f"{who}:{i % 50}")
    print("won" if won else "lost")
"""


def test_processes_race_on_incr_add_and_collections(fdir: Path) -> None:
    url = f"file://{fdir}"
    FileStore(fdir).close()
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, url, str(n)], env=env, stdout=subprocess.PIPE, text=True
        )
        for n in range(4)
    ]
    outputs = [p.communicate(timeout=180)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4
    assert sorted(outputs) == ["lost", "lost", "lost", "won"]
    with Cache(url) as c:
        assert c.get("counter") == 800
        assert c.hget("h", "f") == 800
        assert c.llen("list") == 800
        assert c.scard("set") == 200
        assert c.get("claim") == str(outputs.index("won"))
        assert c.stats().items == 5


def test_forked_child_opens_its_own_connections(fdir: Path) -> None:
    store = FileStore(fdir)
    store.set("k", b"parent", None)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        try:
            ok = store.get("k") == b"parent"
            store.set("k", b"child", None)
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.get("k") == b"child"
    store.close()


async def test_async_flavour_runs_off_the_event_loop(fdir: Path) -> None:
    backend = AsyncFileBackend(fdir)
    seen: list[int] = []
    original = backend.store.get

    def spy(key: str) -> Any:
        seen.append(threading.get_ident())
        return original(key)

    backend.store.get = spy  # type: ignore[method-assign]
    async with AsyncCache(backend) as c:
        await c.set("k", 1)
        results = await asyncio.gather(*(c.get("k") for _ in range(5)))
        assert results == [1] * 5
        assert threading.get_ident() not in seen
        assert (await c.stats()).items == 1


# ---------------------------------------------------------------------------------------------
# Crash safety


_CRASHER = """
import sys, zlib
from stratacache import Cache

def value(key, i, size):
    head = f"{key}|{i}|{size}|".encode()
    return head + bytes((i + j) % 251 for j in range(size))

url = sys.argv[1]
c = Cache(url, serializer="raw")
print("ready", flush=True)
i = 0
while True:
    key = f"k{i % 16}"
    size = 200_000 if i % 3 == 0 else 100
    c.set(key, value(key, i, size))
    if i % 5 == 0:
        c.rpush("log", str(i).encode())
        c.incr("writes")
    if i % 7 == 0:
        c.delete(f"k{(i + 3) % 16}")
    i += 1
"""


def _check_value(key: str, data: bytes) -> None:
    """A value read after a crash must be exactly one of the values written for that key."""
    parts = data.split(b"|", 3)
    assert parts[0].decode() == key, (key, data[:40])
    i, size = int(parts[1]), int(parts[2])
    expected = f"{key}|{i}|{size}|".encode() + bytes((i + j) % 251 for j in range(size))
    assert data == expected, f"{key}: a partial or mixed value ({len(data)} bytes)"


@pytest.mark.slow
def test_sigkill_during_writes_never_leaves_a_partial_value(fdir: Path) -> None:
    url = f"file://{fdir}?inline_threshold=4096"
    FileStore(fdir).close()
    env = {**os.environ, "PYTHONPATH": SRC}
    rng = random.Random(5)
    for _ in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", _CRASHER, url], env=env, stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.2, 0.8))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        # Reopen as a new user of the directory would, and read everything.
        with Cache(url, serializer="raw") as c:
            found = c.get_many([f"k{n}" for n in range(16)])
            for key, data in found.items():
                _check_value(key, data)
            log = c.lrange("log")
            assert all(entry.isdigit() for entry in log)
            writes = c.get("writes")
            # rpush and incr are two transactions: a kill between them leaves the log one ahead.
            assert len(log) - int(writes or 0) in (0, 1)
            assert c.ping() is True
    store = FileStore(fdir)
    try:
        store.reclaim_orphans(min_age=0)
        referenced = {
            row[0] for row in store._conn().execute("SELECT file FROM entries WHERE file IS NOT NULL")
        }
        on_disk = {f"{p.parent.name}/{p.name}" for p in value_files(fdir)}
        assert on_disk == referenced  # no leftovers once orphans are reclaimed
        assert store._conn().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# Helpers of the store


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", ("", None)),
        ("app:", ("app:", "app;")),
        ("a\U0010ffff", ("a\U0010ffff", "b")),
        ("\U0010ffff", ("\U0010ffff", None)),
        ("x\ud7ff", ("x\ud7ff", "x\ue000")),
    ],
)
def test_prefix_bounds(prefix: str, expected: tuple[str, str | None]) -> None:
    assert prefix_bounds(prefix) == expected


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [
        ("user:*", "user:"),
        ("ns\\*\\[x\\]:u?", "ns*[x]:u"),
        ("[ab]c", ""),
        ("plain", "plain"),
        ("end\\", "end\\"),
    ],
)
def test_glob_literal_prefix(pattern: str, literal: str) -> None:
    assert glob_literal_prefix(pattern) == literal


def test_counters_per_namespace(fdir: Path) -> None:
    with Cache(f"file://{fdir}", namespace="one") as one, Cache(f"file://{fdir}", namespace="two") as two:
        one.set("a", 1)
        one.set("b", 2)
        two.set("a", 1)
        assert one.stats().items == 2
        assert two.stats().items == 1
        one.clear()
        assert two.get("a") == 1
        assert one.stats().items == 0


async def test_async_cache_reports_and_rebuilds_a_damaged_index(fdir: Path) -> None:
    fdir.mkdir()
    (fdir / DB_NAME).write_bytes(b"\x00garbage" * 512)
    async with AsyncCache(f"file://{fdir}") as c:
        report = await c.health()
        assert report.healthy is False
        assert report.error is not None
        assert "not a database" in report.error
        with pytest.raises(BackendUnavailable, match=r"get\(\) on key 'k'.*damaged"):
            await c.get("k")
        await c.clear()
        await c.set("k", 1)
        assert await c.get("k") == 1
        assert (await c.health()).healthy is True
