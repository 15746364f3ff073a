"""Snapshots of the server's keyspace: SAVE, BGSAVE, the ``save`` schedule, load at start.

The file is ``dir/dbfilename`` in the format of :mod:`stratacache.core.snapshot`. Every
write is atomic: a temporary file in the same directory, fsync, rename over the old file,
fsync of the directory, so a crash at any moment leaves the previous snapshot or the new
one, never a mix.

* ``SAVE`` writes on the event loop (the server answers nobody meanwhile).
* ``BGSAVE`` forks: the child writes the keyspace as it was at the fork (copy-on-write
  pages) and leaves with ``os._exit``; it never touches the event loop, a socket, a lock
  or another thread (it reads the stores' maps directly, with one C call per store, since
  a lock held by another thread at the fork would never be released in the child). The
  parent checks the child with ``waitpid(WNOHANG)`` from its own ``hz`` timer.
* The ``save`` schedule ("secs changes" pairs) starts a BGSAVE when at least ``changes``
  keys changed within ``secs`` seconds of the last save; changes are counted by a
  ``change_listeners`` hook (one per key written, as Redis counts ``dirty``).
* On shutdown (SIGTERM, SHUTDOWN) the server saves when a schedule is set, or when told
  ``SHUTDOWN SAVE``; ``SHUTDOWN NOSAVE`` never saves.
* At start the snapshot is loaded unless the append-only log will be (``appendonly`` on
  and a log present); expired keys are dropped; a corrupt file stops the start with a
  :class:`~stratacache.SnapshotError` naming the file and the offset.

Only one background child runs at a time: :func:`active_child` is the check BGSAVE and
BGREWRITEAOF share (``server.extra["child"]`` holds ``(kind, pid)`` for a child of another
feature).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._exceptions import CacheError, SnapshotError
from ..core.snapshot import HASH, LIST, SET, STRING, ZSET, SnapshotReader, SnapshotWriter

if TYPE_CHECKING:
    from .app import Server
    from .keyspace import Database

__all__ = [
    "SnapshotState",
    "active_child",
    "bgsave",
    "info_lines",
    "load_at_start",
    "parse_save",
    "save",
    "snapshot_path",
    "start",
    "state",
    "stop",
]

logger = logging.getLogger("stratacache.server")

_RETRY_DELAY = 5.0  # Redis's CONFIG_BGSAVE_RETRY_DELAY: after a failed BGSAVE, wait this long


@dataclass
class SnapshotState:
    """The server's snapshot bookkeeping (``server.extra["snapshot"]``)."""

    dirty: int = 0
    dirty_at_fork: int = 0
    last_save: float = field(default_factory=time.time)
    last_try: float = 0.0
    last_bgsave_ok: bool = True
    last_bgsave_seconds: int = -1
    child_pid: int | None = None
    child_started: float = 0.0
    child_temp: str = ""
    scheduled: bool = False
    saves: int = 0
    loaded_keys: int = 0
    expired_on_load: int = 0
    shutdown_mode: str = ""  # "", "save" or "nosave" (SHUTDOWN's option)
    saved_for_shutdown: bool = False

    def key_changed(self, db: Database, key: str) -> None:
        """``server.change_listeners`` hook: one more change since the last save."""
        self.dirty += 1


def state(server: Server) -> SnapshotState:
    """The server's :class:`SnapshotState` (created, and its change hook installed, on first use)."""
    current: SnapshotState | None = server.extra.get("snapshot")
    if current is None:
        current = server.extra["snapshot"] = SnapshotState(last_save=server.started)
        server.change_listeners.append(current.key_changed)
    return current


def parse_save(value: Any) -> str:
    """The ``save`` option: "" (off) or "secs changes" pairs of non-negative integers."""
    text = value.decode() if isinstance(value, bytes) else value
    parts = text.split() if isinstance(text, str) else ["?"]
    # Redis's CONFIG SET text; the YAML loader adds the file and the option's name.
    if len(parts) % 2 or not all(part.isdigit() for part in parts):
        raise ValueError("Invalid save parameters")
    return " ".join(str(int(p)) for p in parts)


def save_points(server: Server) -> list[tuple[int, int]]:
    """The ``save`` schedule as (seconds, changes) pairs (empty: off)."""
    parts = [int(p) for p in str(getattr(server.config, "save", "")).split()]
    return list(zip(parts[::2], parts[1::2], strict=True))


def snapshot_path(server: Server) -> str:
    """``dir/dbfilename``."""
    config = server.config
    return os.path.join(getattr(config, "dir", "."), getattr(config, "dbfilename", "dump.scs"))


def active_child(server: Server) -> str | None:
    """The kind of background child running ("rdb", "aof", ...), None when there is none."""
    if state(server).child_pid is not None:
        return "rdb"
    other = server.extra.get("child")
    if other:
        return str(other[0])
    return None


# ----------------------------------------------------------------------------- writing


def write_records(server: Server, writer: SnapshotWriter, now: float) -> None:
    """Every live key of every database into ``writer``, without taking a lock (fork-safe:
    see the module docstring). Keys already expired at ``now`` are left out."""
    for db in server.databases:
        index = db.index
        add_string = writer.add_string
        # One C call copies the map's items: no other thread can change it halfway.
        for key, entry in list(db.store._data.items()):
            expires = entry.expires
            deadline: int | None = None
            if expires is not None and expires != float("inf"):
                if expires <= now:
                    continue
                deadline = round(expires * 1000)
            value = entry.value
            raw = key.encode("latin-1")
            if type(value) is bytes:
                add_string(index, raw, value, deadline)
                continue
            kind = value.type_name
            if kind == "list":
                writer.add(index, raw, LIST, list(value.items), deadline)
            elif kind == "set":
                writer.add(index, raw, SET, value.members, deadline)
            elif kind == "hash":
                writer.add(index, raw, HASH, list(value.fields.items()), deadline)
            elif kind == "zset":
                writer.add(index, raw, ZSET, [(member, score) for score, member in value], deadline)
            else:  # a type the format has no record for: fail the save rather than drop the key
                raise ValueError(f"key {key!r} in db {index} holds a {kind}, which a snapshot cannot hold")


def write_file(server: Server, path: str, temp: str) -> int:
    """Write the snapshot to ``temp``, fsync it, rename it to ``path``, fsync the directory.
    Returns the number of keys. OSError on failure (the temporary file is removed)."""
    now = time.time()
    try:
        with open(temp, "wb", buffering=1024 * 1024) as f:
            writer = SnapshotWriter(f, created_ms=int(now * 1000))
            write_records(server, writer, now)
            count = writer.finish()
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_directory(os.path.dirname(path) or ".")
    return count


def fsync_directory(directory: str) -> None:
    """fsync ``directory``, so a rename into it survives a crash (snapshots and the log)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(server: Server) -> None:
    """SAVE: write the snapshot now, on the loop. Raises SnapshotError (logged) on failure."""
    st = state(server)
    path = snapshot_path(server)
    temp = os.path.join(os.path.dirname(path) or ".", f"temp-{os.getpid()}.scs")
    started = time.time()
    dirty = st.dirty
    try:
        count = write_file(server, path, temp)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        logger.error("cannot save the snapshot %s: %s", path, reason)
        raise SnapshotError(f"cannot write the snapshot: {reason}", path=path) from exc
    st.dirty -= dirty
    st.last_save = time.time()
    st.saves += 1
    logger.info("DB saved on disk: %s (%d keys, %.3f s)", path, count, st.last_save - started)


def bgsave(server: Server) -> None:
    """Fork a child that writes the snapshot (the caller checked no child runs). Without
    ``os.fork`` (not POSIX), save on the loop instead."""
    st = state(server)
    path = snapshot_path(server)
    st.last_try = time.time()
    if not hasattr(os, "fork"):  # pragma: no cover - the server is POSIX-only
        save(server)
        return
    temp = os.path.join(os.path.dirname(path) or ".", f"temp-bg-{os.getpid()}.scs")
    # Objects the collector visits have their headers written, which copies their pages
    # (copy-on-write): frozen, the parent's collections skip them until the child is done.
    gc.freeze()
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns on fork with threads alive (the store janitor): the child
            # takes no lock and runs no thread, which is what the warning is about.
            warnings.filterwarnings("ignore", r".*multi-threaded.*fork", DeprecationWarning)
            pid = os.fork()
    except OSError:
        gc.unfreeze()
        raise
    if pid == 0:  # pragma: no cover - the child; its work is checked through the file
        _child(server, path, temp)
    st.child_pid = pid
    st.child_started = time.time()
    st.child_temp = temp
    st.dirty_at_fork = st.dirty
    st.scheduled = False
    logger.info("Background saving started by pid %d", pid)


def _child(server: Server, path: str, temp: str) -> None:  # pragma: no cover - runs in the child
    """The BGSAVE child: write, then leave with ``os._exit`` (no atexit handlers, no
    flushing of the parent's buffers, no loop shutdown)."""
    code = 1
    gc.disable()  # a collection would write to every object's header: all pages copied
    try:
        # The parent's signal handlers write to the loop's wake-up fd, shared with the
        # parent: a signal to the child must not look like one to the parent.
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, signal.SIG_DFL)
        # Drop the child's copies of every descriptor (the listening and client sockets, the
        # loop's epoll and wake-up fds): closing a copy does not touch the parent's socket,
        # but holding one would keep the port bound and the clients' connections open if
        # the parent died first. Nothing here uses them; the file is opened afterwards, and
        # no Python object is released before os._exit, so none closes a reused number.
        os.closerange(3, _max_fd())
        write_file(server, path, temp)
        code = 0
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            os.write(2, f"stratacache: background save to {path} failed: {exc}\n".encode())
    finally:
        os._exit(code)


def _max_fd() -> int:  # pragma: no cover - runs in the child
    try:
        return max(int(name) for name in os.listdir("/proc/self/fd")) + 1
    except (OSError, ValueError):
        return os.sysconf("SC_OPEN_MAX")


def poll_child(server: Server) -> None:
    """Reap a finished BGSAVE child and record how it went (non-blocking)."""
    st = state(server)
    pid = st.child_pid
    if pid is None:
        return
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        done, status = pid, 1 << 8
    if done == 0:
        return
    st.child_pid = None
    gc.unfreeze()
    st.last_bgsave_seconds = int(time.time() - st.child_started)
    ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    st.last_bgsave_ok = ok
    if ok:
        st.dirty -= st.dirty_at_fork
        st.last_save = time.time()
        st.saves += 1
        logger.info("Background saving terminated with success")
    else:
        with contextlib.suppress(OSError):
            os.unlink(st.child_temp)
        logger.error("Background saving failed (status %d)", status)


def kill_child(server: Server) -> None:
    """Stop a running BGSAVE child and remove its temporary file (at shutdown)."""
    st = state(server)
    pid = st.child_pid
    if pid is None:
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    with contextlib.suppress(OSError):
        os.unlink(st.child_temp)
    st.child_pid = None
    gc.unfreeze()


def cron(server: Server) -> None:
    """Each timer tick: reap the child; start a scheduled or due BGSAVE."""
    st = state(server)
    poll_child(server)
    if active_child(server) is not None or getattr(server, "shutting_down", False):
        return
    now = time.time()
    if st.scheduled:
        bgsave(server)
        return
    if not st.last_bgsave_ok and now - st.last_try < _RETRY_DELAY:
        return
    for seconds, changes in save_points(server):
        if st.dirty >= changes and now - st.last_save > seconds:
            logger.info("%d changes in %d seconds. Saving...", changes, seconds)
            bgsave(server)
            return


async def _timer(server: Server) -> None:
    while True:
        await asyncio.sleep(1 / server.config.hz)
        try:
            cron(server)
        except Exception:  # a failed fork must not end the timer
            logger.exception("snapshot timer")


# ----------------------------------------------------------------------------- loading


def load_at_start(server: Server) -> bool:
    """Load ``dir/dbfilename`` if it exists and the append-only log is not the source
    (Redis's order). True when a snapshot was loaded."""
    config = server.config
    if getattr(config, "appendonly", False):
        log = os.path.join(getattr(config, "dir", "."), getattr(config, "appendfilename", "appendonly.aof"))
        if os.path.exists(log):
            return False
    path = snapshot_path(server)
    if not os.path.exists(path):
        return False
    load_file(server, path)
    return True


def load_file(server: Server, path: str) -> int:
    """Load every live record of the snapshot at ``path`` into the databases. SnapshotError
    (naming the file and the offset) when it is unreadable, truncated or corrupt."""
    from .commands.hashes import HashValue
    from .commands.lists import ListValue
    from .commands.sets import SetValue
    from .zset import ZSet

    st = state(server)
    vars(server)["loading"] = True
    loaded = expired = 0
    started = time.time()
    # A million new objects would set off full collections over and over (each walking
    # everything loaded so far); one collection at the end instead.
    collecting = gc.isenabled()
    gc.disable()
    try:
        try:
            f = open(path, "rb", buffering=1024 * 1024)  # noqa: SIM115 - closed below
        except OSError as exc:
            raise SnapshotError(f"cannot read the snapshot: {exc.strerror or exc}", path=path) from exc
        with f:
            size = os.fstat(f.fileno()).st_size
            reader = SnapshotReader(f, path, size=size)
            databases = server.databases
            now_ms = time.time() * 1000
            # Plain strings without expiry (most keys) go in by batches through set_many:
            # one lock and one pool relief per batch instead of per key.
            batch: dict[str, Any] = {}
            batch_db = 0
            for db_index, key, kind, value, deadline in reader:
                if kind == STRING and deadline is None and db_index == batch_db and len(batch) < 1024:
                    batch[key.decode("latin-1")] = value
                    continue
                if batch:
                    loaded += len(batch)
                    databases[batch_db].store.set_many(batch, None)
                    batch = {}
                if kind == STRING and deadline is None and db_index < len(databases):
                    batch_db = db_index
                    batch[key.decode("latin-1")] = value
                    continue
                if db_index >= len(databases):
                    raise SnapshotError(
                        f"the snapshot holds database {db_index}, the server has {len(databases)} "
                        "(raise 'databases')",
                        path=path,
                    )
                if deadline is not None and deadline <= now_ms:
                    expired += 1
                    continue
                obj: Any
                if kind == STRING:
                    obj = value
                elif kind == LIST:
                    obj = ListValue()
                    for item in value:
                        obj.push(item, False)
                elif kind == SET:
                    obj = SetValue(value[0] if value else None, len(value))
                    for member in value:
                        obj.add(member)
                elif kind == HASH:
                    obj = HashValue()
                    for name, item in value:
                        obj.put(name, item)
                else:
                    obj = ZSet.from_scores(dict(value))
                if kind != STRING and not value:
                    continue  # Redis never holds an empty collection
                # The store's own set: no client, watcher or tracker exists yet to be told
                # (Database.set's change hooks cost a fifth of the load time).
                # Deadlines are kept as stored (the store's clock is the wall clock).
                store = databases[db_index].store
                if deadline is None:
                    store.set(key.decode("latin-1"), obj, None)
                else:
                    store.set_until(key.decode("latin-1"), obj, deadline / 1000)
                loaded += 1
            if batch:
                loaded += len(batch)
                databases[batch_db].store.set_many(batch, None)
    except SnapshotError:
        raise
    except CacheError as exc:  # the store refused a key (a value over a store's limit)
        raise SnapshotError(f"cannot load the snapshot into the stores: {exc}", path=path) from exc
    finally:
        vars(server)["loading"] = False
        if collecting:
            gc.enable()
    st.dirty = 0
    st.loaded_keys = loaded
    st.expired_on_load = expired
    st.last_save = time.time()
    logger.info(
        "DB loaded from disk: %s (%d keys, %d expired dropped, %.3f s)",
        path,
        loaded,
        expired,
        time.time() - started,
    )
    return loaded


# ----------------------------------------------------------------------- lifecycle hooks


def start(server: Server) -> None:
    """At server start, before listening: count changes, load the snapshot, run the timer.
    A corrupt snapshot raises :class:`~stratacache.SnapshotError` (the start fails)."""
    state(server)
    load_at_start(server)
    server._tasks.append(asyncio.get_running_loop().create_task(_timer(server)))


def stop(server: Server) -> None:
    """At shutdown, after the last commands ran: stop a BGSAVE child, then save when a
    schedule is set or SHUTDOWN SAVE asked for it (not after SHUTDOWN NOSAVE). A failed
    save is logged; the shutdown goes on."""
    st = state(server)
    kill_child(server)
    if st.saved_for_shutdown or st.shutdown_mode == "nosave":
        return
    if st.shutdown_mode == "save" or save_points(server):
        with contextlib.suppress(SnapshotError):  # logged by save()
            save(server)


# --------------------------------------------------------------------------------- INFO


def info_lines(server: Server) -> list[str]:
    """INFO persistence's ``loading`` and ``rdb_*`` fields, in Redis's order."""
    st = state(server)
    now = time.time()
    running = st.child_pid is not None
    return [
        f"loading:{int(bool(getattr(server, 'loading', False)))}",
        "async_loading:0",
        "current_cow_peak:0",
        "current_cow_size:0",
        "current_cow_size_age:0",
        "current_fork_perc:0.00",
        "current_save_keys_processed:0",
        "current_save_keys_total:0",
        f"rdb_changes_since_last_save:{st.dirty}",
        f"rdb_bgsave_in_progress:{int(running)}",
        f"rdb_last_save_time:{int(st.last_save)}",
        f"rdb_last_bgsave_status:{'ok' if st.last_bgsave_ok else 'err'}",
        f"rdb_last_bgsave_time_sec:{st.last_bgsave_seconds}",
        f"rdb_current_bgsave_time_sec:{int(now - st.child_started) if running else -1}",
        f"rdb_saves:{st.saves}",
        "rdb_last_cow_size:0",
        f"rdb_last_load_keys_expired:{st.expired_on_load}",
        f"rdb_last_load_keys_loaded:{st.loaded_keys}",
    ]
