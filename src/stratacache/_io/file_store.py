"""The on-disk engine behind ``file://``: an SQLite index in WAL mode plus one file per large value.

This module does I/O (blocking SQLite and file calls), which is why it lives in
:mod:`stratacache._io` and not in the pure-logic :mod:`stratacache.core`; it is the one
synchronous engine that both backend flavours wrap: the sync
``FileBackend`` calls it directly, the async one runs each call in a worker thread (see
``stratacache._drivers.offload_async``). Policy decisions (which entry to evict, whether an
entry is alive) are plain comparisons on the row's columns.

Layout of a cache directory::

    cache.db, cache.db-wal, cache.db-shm    the SQLite index (WAL mode)
    cache.reserve                           1 MiB kept free for deletes on a full disk
    3f/<prefix>3f9a...c1.val                values above ``inline_threshold``, fanned out
                                            over 256 sub-directories by the name's first byte

Design decisions, and why:

* **One row per key** in ``entries``; a plain value up to ``inline_threshold`` bytes is the
  row's ``value`` BLOB, a larger one lives in its own file named in ``file`` with its CRC-32 in
  ``crc``. Lists, sets and hashes keep their elements in their own tables (``list_items``,
  ``set_members``, ``hash_fields``) keyed by the owning row's id, so ``sadd`` or ``rpush`` on a
  big collection writes one element, not the whole collection, inside one transaction.
* **Triggers keep the bookkeeping inside SQLite's own transactions**: the ``meta`` row's item
  and byte totals (what ``max_bytes`` is checked against), the removal of a collection's
  elements when its row is deleted or overwritten, and a ``trash`` list of value files whose
  row went away. Every process sharing the directory, and every crash, sees totals that match
  the rows, because they commit or roll back together.
* **A large value is written before its row**: temp file, ``fsync``, ``rename`` to a fresh random
  name, then the row is committed. A reader can only reach a file through a committed row, and
  the name is never reused, so it never sees a partial file. Files of deleted or overwritten rows
  are unlinked after the commit from ``trash`` (which survives a crash: any process empties it
  later); files orphaned by a crash between rename and commit are reclaimed by
  :meth:`FileStore.reclaim_orphans`. A row whose file is missing or fails its CRC reads as a miss
  and is removed.
* **Expiry is absolute wall-clock time** (``time.time()`` by default): the directory is shared by
  processes, and monotonic clocks are per boot and not comparable between them. ``clock`` can be
  injected for tests (a ``FakeClock``) but must then be shared by every user of the directory.
* **Writers in one process take one lock per database** before they write: SQLite's busy handler
  sleeps in millisecond steps, so letting a process's threads contend in SQLite would cost far
  more than a ``threading.Lock``. Between processes, SQLite's file locks and ``timeout`` decide.
  Readers never take it: WAL lets them run beside the writer, each thread on its own connection.
* **An in-flight guard around every public operation**: ``close()`` (and the rebuild of a
  damaged index) waits until no other thread is inside one, because closing an SQLite
  connection that another thread is using crashes the process.
* **The directory is not trusted**: value files are reached through directory fds without
  following symbolic links, and every name read from the index must have the shape the store
  writes; a damaged index is latched, reported by ``ping()`` and rebuilt by ``clear()``.
* **Versions for compare-and-set come from the row's content, not a new column** (no schema
  change): the SHA-1 of an inline value, or the name of a value file (a fresh random name on
  every write). Each verb (``set_if_version``, ``delete_if_version``, ``pull``, ``replace``)
  reads, compares and writes inside one IMMEDIATE transaction, so it is atomic across threads
  and processes.
* **Access order for ``lru``/``lfu`` is recorded lazily**: a hit is noted in memory and written
  in one batch (every ``_READ_FLUSH`` hits, before an eviction and at each janitor sweep), so a
  read stays a read and never takes the write lock. Recency across processes is therefore
  approximate by at most one unflushed batch per process.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import functools
import hashlib
import logging
import os
import re
import secrets
import sqlite3
import stat
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeVar

from .._exceptions import (
    BackendUnavailable,
    CacheClosed,
    CacheError,
    CacheTimeout,
    ConfigurationError,
    InvalidArgument,
    InvalidKey,
    ValueTooLarge,
    WrongType,
)
from .._types import MISSING, Item, Missing
from ..core.glob import compile_glob
from .janitor import janitor

__all__ = ["DB_NAME", "POLICIES", "RESERVE_NAME", "SYNC_MODES", "FileStore", "FileStoreCounters"]

logger = logging.getLogger("stratacache")

DB_NAME = "cache.db"
# Space set aside so that deletes still commit on a full disk: released (unlinked) when SQLite
# or a value file reports ENOSPC during an operation that frees space, then re-created by a
# later sweep once there is room. SQLite must append to the WAL even to delete a row.
RESERVE_NAME = "cache.reserve"
_RESERVE_SIZE = 1 << 20
POLICIES = ("lru", "lfu", "fifo")
SYNC_MODES = ("normal", "full")
SCHEMA_VERSION = 1

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_K_PLAIN, _K_LIST, _K_SET, _K_HASH = 0, 1, 2, 3
_KIND_NAMES = {_K_PLAIN: "plain value", _K_LIST: "list", _K_SET: "set", _K_HASH: "hash"}
# Hits of lru/lfu noted in memory before they are written in one transaction.
_READ_FLUSH = 256
# Keys per IN (...) statement in get_many/delete_many, well under SQLite's variable limit.
_CHUNK = 500
# Rows per eviction step: one SELECT ordered by the policy's index, then one DELETE.
_EVICT_BATCH = 64
# The janitor's connection waits this long for the write lock, then skips the sweep: a busy
# cache must not hold up the process-wide janitor thread (it sweeps memory stores too).
_SWEEP_BUSY_TIMEOUT = 0.05
# A value file or temp file nobody references is deleted once it is this old: a writer in
# another process may be between its rename and its commit, which takes at most `timeout`.
_ORPHAN_AGE = 3600.0
# The only value file names the store writes: a fan-out sub-directory named by two hex digits,
# then the prefix (no '/', no NUL, no leading '.') and 32 hex digits whose first two are the
# sub-directory's. Every name read from the index is checked against it before any file call,
# so a crafted row ("../../etc/passwd", "/abs", "ab/../x") never reaches the filesystem.
_VALUE_NAME = re.compile(r"([0-9a-f]{2})/((?!\.)[^/\x00]*([0-9a-f]{32})\.val)")
_SUB_NAME = re.compile(r"[0-9a-f]{2}")
# Value files are opened relative to a directory fd and never through a symbolic link; a
# FIFO planted in their place must not block the reader.
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_VALUE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# The tables and columns the store reads: an index without them is damaged (or not ours).
_TABLES = {
    "entries": ("id", "key", "kind", "value", "file", "crc", "size", "length", "expires", "stored",
                "accessed", "hits"),
    "list_items": ("owner", "pos", "value"),
    "set_members": ("owner", "member"),
    "hash_fields": ("owner", "field", "value"),
    "meta": ("id", "items", "bytes", "evictions", "expirations"),
    "trash": ("id", "file"),
}  # fmt: skip

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id       INTEGER PRIMARY KEY,
    key      TEXT    NOT NULL UNIQUE,
    kind     INTEGER NOT NULL,          -- 0 plain value, 1 list, 2 set, 3 hash
    value    BLOB,                      -- a plain value stored inline
    file     TEXT,                      -- or the name of the file holding it
    crc      INTEGER,                   -- CRC-32 of that file's content
    size     INTEGER NOT NULL,          -- bytes counted against max_bytes (key + value/elements)
    length   INTEGER NOT NULL,          -- number of elements of a collection
    expires  REAL,                      -- absolute clock time; NULL = never
    stored   REAL    NOT NULL,          -- last write (informational; fifo orders by id)
    accessed REAL    NOT NULL,          -- last read or write (lru order)
    hits     INTEGER NOT NULL           -- reads + writes (lfu order)
);
CREATE INDEX IF NOT EXISTS entries_expires ON entries (expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS list_items (
    owner INTEGER NOT NULL, pos INTEGER NOT NULL, value BLOB NOT NULL, PRIMARY KEY (owner, pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS set_members (
    owner INTEGER NOT NULL, member BLOB NOT NULL, PRIMARY KEY (owner, member)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hash_fields (
    owner INTEGER NOT NULL, field TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (owner, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    items INTEGER NOT NULL, bytes INTEGER NOT NULL, evictions INTEGER NOT NULL, expirations INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta VALUES (0, 0, 0, 0, 0);
CREATE TABLE IF NOT EXISTS trash (id INTEGER PRIMARY KEY, file TEXT NOT NULL);

CREATE TRIGGER IF NOT EXISTS entries_count_insert AFTER INSERT ON entries BEGIN
    UPDATE meta SET items = items + 1, bytes = bytes + new.size;
END;
CREATE TRIGGER IF NOT EXISTS entries_count_delete AFTER DELETE ON entries BEGIN
    UPDATE meta SET items = items - 1, bytes = bytes - old.size;
END;
CREATE TRIGGER IF NOT EXISTS entries_count_resize AFTER UPDATE OF size ON entries
WHEN new.size != old.size BEGIN
    UPDATE meta SET bytes = bytes + new.size - old.size;
END;
CREATE TRIGGER IF NOT EXISTS entries_trash_delete AFTER DELETE ON entries
WHEN old.file IS NOT NULL BEGIN
    INSERT INTO trash (file) VALUES (old.file);
END;
CREATE TRIGGER IF NOT EXISTS entries_trash_replace AFTER UPDATE OF file ON entries
WHEN old.file IS NOT NULL AND old.file IS NOT new.file BEGIN
    INSERT INTO trash (file) VALUES (old.file);
END;
CREATE TRIGGER IF NOT EXISTS entries_elements_delete AFTER DELETE ON entries
WHEN old.kind != 0 BEGIN
    DELETE FROM list_items WHERE owner = old.id;
    DELETE FROM set_members WHERE owner = old.id;
    DELETE FROM hash_fields WHERE owner = old.id;
END;
CREATE TRIGGER IF NOT EXISTS entries_elements_replace AFTER UPDATE OF kind ON entries
WHEN old.kind != 0 AND new.kind IS NOT old.kind BEGIN
    DELETE FROM list_items WHERE owner = old.id;
    DELETE FROM set_members WHERE owner = old.id;
    DELETE FROM hash_fields WHERE owner = old.id;
END;
"""

# The policy's eviction order and the index that serves it, created only by a bounded store:
# an index costs every write, and an unbounded cache never asks for the order. An index whose
# entry moves on every write (lru's access time) adds about two pages to each commit's WAL
# frames, which is most of a set's cost on a slow disk; fifo needs none: rows are numbered in
# insertion order, so the oldest insertion is the smallest id, and an overwrite (an upsert
# that keeps the row) keeps the key's place in the queue.
_ORDER: dict[str, tuple[str, str | None]] = {
    "lru": ("accessed, id", "CREATE INDEX IF NOT EXISTS entries_lru ON entries (accessed)"),
    "lfu": ("hits, accessed, id", "CREATE INDEX IF NOT EXISTS entries_lfu ON entries (hits, accessed)"),
    "fifo": ("id", None),
}

_GET = "SELECT kind, value, file, crc, expires FROM entries WHERE key = ?"
# One statement, so a plain set is one autocommit write: a fresh row, or the old row (and its
# id, which its collection elements hang off) overwritten; the triggers clean up after it.
_SET = (
    "INSERT INTO entries (key, kind, value, file, crc, size, length, expires, stored, accessed, hits) "
    "VALUES (?1, 0, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?7, 1) "
    "ON CONFLICT (key) DO UPDATE SET kind = 0, value = excluded.value, file = excluded.file, "
    "crc = excluded.crc, size = excluded.size, length = 0, expires = excluded.expires, "
    "stored = excluded.stored, accessed = excluded.accessed, hits = entries.hits + 1"
)
# add: the same statement, but an existing row is overwritten only when it has expired, so
# "only if absent" is decided atomically inside SQLite (rowcount 0 = the key was alive).
_ADD = _SET + " WHERE entries.expires IS NOT NULL AND entries.expires <= ?8"
_OWNER = "SELECT id, kind, expires, length, size FROM entries WHERE key = ?"
_NEW_OWNER = (
    "INSERT INTO entries (key, kind, value, file, crc, size, length, expires, stored, accessed, hits) "
    "VALUES (?, ?, NULL, NULL, NULL, ?, 0, NULL, ?, ?, 1)"
)
_RESIZE = "UPDATE entries SET size = size + ?, length = ?, stored = ?, accessed = ? WHERE id = ?"


class FileStoreCounters(NamedTuple):
    """Items, bytes, evictions and expirations of a directory (or of the keys under a prefix)."""

    items: int
    bytes: int
    evictions: int
    expirations: int


class _Owner(NamedTuple):
    id: int
    length: int
    size: int


def _alive(expires: float | None, now: float) -> bool:
    return expires is None or expires > now


def _parse_counter(value: bytes, key: str, what: str) -> int:
    """A counter stored as ASCII decimal; strictly ``-?[0-9]+`` (as the memory store reads them)."""
    digits = value[1:] if value[:1] == b"-" else value
    if digits.isdigit():
        try:
            return int(value)
        except ValueError:  # more digits than sys.get_int_max_str_digits()
            pass
    raise WrongType(f"{what} on key {_short(key)}: the value is not an integer")


def _add_counter(current: int, delta: int, key: str, what: str) -> int:
    result = current + delta
    if not _INT64_MIN <= result <= _INT64_MAX:
        raise InvalidArgument(f"{what} on key {_short(key)} would overflow a 64-bit counter")
    return result


def _short(key: str) -> str:
    """``repr(key)``, cut for error messages (keys may be 10,000 characters long)."""
    text = repr(key)
    return text if len(text) <= 120 else text[:100] + "...'"


def prefix_bounds(prefix: str) -> tuple[str, str | None]:
    """``(low, high)`` so that ``low <= key < high`` holds exactly for keys starting with ``prefix``.

    SQLite compares TEXT as UTF-8 bytes, which orders like code points, so the bound is the
    prefix with its last character incremented (carrying past U+10FFFF, skipping surrogates,
    which UTF-8 cannot encode). ``high`` is None when no bound exists (all U+10FFFF).
    """
    head = prefix
    while head:
        code = ord(head[-1]) + 1
        if code <= 0x10FFFF:
            if 0xD800 <= code <= 0xDFFF:
                code = 0xE000
            return prefix, head[:-1] + chr(code)
        head = head[:-1]
    return prefix, None


def glob_literal_prefix(pattern: str) -> str:
    """The literal text every key matching the Redis glob ``pattern`` starts with."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char in "*?[":
            break
        if char == "\\" and i + 1 < n:
            out.append(pattern[i + 1])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _value_name_ok(name: object) -> bool:
    """True for a value file name of the shape the store writes (see ``_VALUE_NAME``)."""
    if not isinstance(name, str):
        return False
    match = _VALUE_NAME.fullmatch(name)
    return match is not None and match[3][:2] == match[1]


def _format_fault(version: int) -> str:
    return f"it holds a cache of format {version}; this stratacache writes format {SCHEMA_VERSION}"


class _Unsafe(Exception):
    """A path from the index or the directory that the store refuses to follow (internal)."""


def _is_damage(exc: BaseException) -> bool:
    """True when a sqlite3 error means the index itself is damaged (or not an index of ours)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    if getattr(exc, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
        return True
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and text.startswith(("no such table", "no such column"))


def _is_full(exc: BaseException) -> bool:
    """True when an error means the disk (or the file size limit) is full."""
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL"
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _guarded(method: Callable[Concatenate[FileStore, _P], _R]) -> Callable[Concatenate[FileStore, _P], _R]:
    """Run ``method`` as one in-flight operation (see ``FileStore._enter``)."""
    op = method.__name__
    # Whether the first argument is the key, for errors raised before the method runs.
    keyed = op not in ("get_many", "set_many", "delete_many", "delete_pattern", "keys_page", "counters",
                       "sweep", "reclaim_orphans")  # fmt: skip

    @functools.wraps(method)
    def guarded(self: FileStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        # _enter and _leave written out, and acquire()/release() rather than `with`: this runs
        # around every operation (its cost is in docs/file-backend.md, under "Closing").
        gate = self._gate_lock
        gate.acquire()
        if self._exclusive or self._closed or self._damage is not None:
            gate.release()
            self._enter(op, args[0] if keyed and args else None)  # type: ignore[arg-type]
        else:
            self._inflight += 1
            gate.release()
        try:
            return method(self, *args, **kwargs)
        finally:
            gate.acquire()
            self._inflight -= 1
            if self._exclusive and not self._inflight:
                self._gate.notify_all()
            gate.release()

    return guarded


def _sql_glob(pattern: str, key: str) -> bool:
    # Registered on every connection as sc_glob(): SQLite's own GLOB knows no backslash
    # escapes and differs from Redis on classes, so the match is stratacache's linear matcher.
    return compile_glob(pattern)(key)


# Process-wide, one write lock per database file, shared by every FileStore on it.
_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()
_STORES: weakref.WeakSet[FileStore] = weakref.WeakSet()


def _write_lock(path: str) -> threading.Lock:
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(path)
        if lock is None:
            lock = _WRITE_LOCKS[path] = threading.Lock()
        return lock


def _after_fork_in_child() -> None:
    # SQLite forbids using a connection opened before fork() in the child, and closing it
    # there could checkpoint or unlink the WAL under the parent: the child forgets (leaks)
    # them and opens its own. Locks may have been held by threads that do not exist here.
    global _WRITE_LOCKS_GUARD  # noqa: PLW0603 - replaced, not mutated: the old one may be held
    _WRITE_LOCKS_GUARD = threading.Lock()
    for path in list(_WRITE_LOCKS):
        _WRITE_LOCKS[path] = threading.Lock()
    for store in list(_STORES):
        store._forget_connections()


os.register_at_fork(after_in_child=_after_fork_in_child)


class FileStore:
    """A durable cache in ``directory`` that threads and processes can share.

    Values are ``bytes`` (what the facade's codec produced); counters are ASCII decimal.
    ``max_bytes`` bounds the sum of key and value sizes (None: unbounded), evicting by
    ``policy`` (``lru``, ``lfu`` or ``fifo``); ``janitor_interval`` is the number of seconds
    between sweeps of expired entries by the process-wide janitor thread (None: no sweeps;
    expired entries are then never returned but only reclaimed when overwritten or evicted);
    ``inline_threshold`` is the largest value kept inside SQLite; ``sync`` is ``normal`` or
    ``full`` (see ``docs/file-backend.md``); ``timeout`` is how long a write waits for another
    process's write lock before :class:`CacheTimeout`; ``clock`` returns wall-clock seconds.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        file_mode: int = 0o600,
        dir_mode: int = 0o700,
        prefix: str = "",
        max_bytes: int | None = None,
        policy: str = "lru",
        janitor_interval: float | None = 60.0,
        inline_threshold: int = 32 * 1024,
        sync: str = "normal",
        timeout: float = 10.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._check_options(file_mode, dir_mode, prefix, max_bytes, policy, janitor_interval,
                            inline_threshold, sync, timeout)  # fmt: skip
        self.directory = os.path.abspath(os.fspath(directory))
        self.file_mode = file_mode
        self.dir_mode = dir_mode
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.policy = policy
        self.janitor_interval = janitor_interval
        self.inline_threshold = inline_threshold
        self.sync = sync
        self.timeout = timeout
        self.clock: Callable[[], float] = clock or time.time
        self._db_path = os.path.join(self.directory, DB_NAME)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_guard = threading.Lock()
        self._closed = False
        # The in-flight guard: every public operation counts itself in and out under _gate;
        # close() and the rebuild of a damaged index wait (as the one exclusive user) until no
        # operation is inside, so no connection is ever closed while a thread is using it.
        self._gate_lock = threading.Lock()
        self._gate = threading.Condition(self._gate_lock)
        self._inflight = 0
        self._exclusive = False
        # Why the index cannot be used (None: it can); set at open or by the first operation
        # that meets the damage, cleared by clear()'s rebuild.
        self._damage: str | None = None
        self._db_id: tuple[int, int] | None = None
        self._dir_fd = -1
        self._reserve_released = False
        #: Index entries naming a path the store refused to follow (see docs/file-backend.md).
        self.unsafe_paths = 0
        self._reads: dict[str, int] | None = {} if max_bytes is not None and policy != "fifo" else None
        self._order = _ORDER[policy][0]
        self._sweep_conn: sqlite3.Connection | None = None
        self._next_sweep = time.monotonic() + (janitor_interval or 0.0)
        self._next_orphan_scan = time.monotonic() + _ORPHAN_AGE
        self._lock = _write_lock(os.path.realpath(self._db_path))
        self._open()
        _STORES.add(self)
        if janitor_interval is not None:
            janitor.watch(self)

    # ------------------------------------------------------------------ setup

    @staticmethod
    def _check_options(  # noqa: PLR0917 - private, called once with every option
        file_mode: int,
        dir_mode: int,
        prefix: str,
        max_bytes: int | None,
        policy: str,
        janitor_interval: float | None,
        inline_threshold: int,
        sync: str,
        timeout: float,
    ) -> None:
        for name, mode in (("file_mode", file_mode), ("dir_mode", dir_mode)):
            if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o7777:
                raise ConfigurationError(
                    f"parameter {name!r}: expected permission bits like 0o600, got {mode!r}"
                )
        if not file_mode & 0o600 == 0o600:
            raise ConfigurationError(
                f"parameter 'file_mode': the owner needs read and write (0o600), got {oct(file_mode)}"
            )
        if not dir_mode & 0o700 == 0o700:
            raise ConfigurationError(
                f"parameter 'dir_mode': the owner needs rwx (0o700), got {oct(dir_mode)}"
            )
        if (
            not isinstance(prefix, str)
            or "/" in prefix
            or "\x00" in prefix
            or os.sep in prefix
            or prefix.startswith(".")
        ):
            raise ConfigurationError(
                "parameter 'prefix': expected a file name prefix without '/', NUL or a leading '.', "
                f"got {prefix!r}"
            )
        if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1
        ):
            raise ConfigurationError(
                f"parameter 'max_bytes': expected a positive integer or None, got {max_bytes!r}"
            )
        if policy not in POLICIES:
            raise ConfigurationError(
                f"parameter 'policy': expected one of {', '.join(POLICIES)}, got {policy!r}"
            )
        if sync not in SYNC_MODES:
            raise ConfigurationError(
                f"parameter 'sync': expected one of {', '.join(SYNC_MODES)}, got {sync!r}"
            )
        if janitor_interval is not None and (
            isinstance(janitor_interval, bool)
            or not isinstance(janitor_interval, (int, float))
            or not janitor_interval > 0
        ):
            raise ConfigurationError(
                "parameter 'janitor_interval': expected a positive number of seconds or None, "
                f"got {janitor_interval!r}"
            )
        if (
            isinstance(inline_threshold, bool)
            or not isinstance(inline_threshold, int)
            or inline_threshold < 0
        ):
            raise ConfigurationError(
                f"parameter 'inline_threshold': expected a non-negative integer, got {inline_threshold!r}"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ConfigurationError(
                f"parameter 'timeout': expected a positive number of seconds, got {timeout!r}"
            )

    def _open(self, *, rebuilding: bool = False) -> None:
        """Create the directory and the database (with our permissions) and the schema.

        A directory that cannot be used raises ConfigurationError. A database that is damaged,
        not SQLite, or of another format does not: the store opens with ``_damage`` set, every
        operation and ``ping()`` (so ``health()``) say why, and ``clear()`` rebuilds it.
        The index is opened under a shared flock on the directory, which a rebuild holds
        exclusively (``rebuilding``: the caller is that rebuild and holds it already).
        """
        where = f"file cache directory {self.directory!r}"
        try:
            if not os.path.isdir(self.directory):
                os.makedirs(self.directory, mode=self.dir_mode, exist_ok=True)
                # makedirs's mode is filtered by the umask; the option is what the user asked for.
                os.chmod(self.directory, self.dir_mode)
            if not os.access(self.directory, os.W_OK | os.X_OK):
                raise PermissionError(13, "Permission denied", self.directory)
            if self._dir_fd < 0:
                # Value files and sub-directories are reached relative to this fd, never by a
                # path that could run through a symbolic link planted in the directory.
                self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise ConfigurationError(f"{where} cannot be used: {exc.strerror or exc}") from exc
        if rebuilding:
            self._open_index(where)
            return
        # A rebuild unlinks cache.db, then its -wal and -shm, then creates the new index: a
        # store opening in between would create a cache.db whose WAL and shm the rebuild then
        # unlinks under it (two WALs for one database). Waiting for the rebuild avoids that.
        try:
            fcntl.flock(self._dir_fd, fcntl.LOCK_SH)
        except OSError as exc:
            raise ConfigurationError(f"{where} cannot be locked: {exc.strerror or exc}") from exc
        try:
            self._open_index(where)
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(self._dir_fd, fcntl.LOCK_UN)

    def _rebuild_elsewhere(self) -> bool:
        """True while another store (of any process) rebuilds the index; never waits."""
        try:
            # A fresh open file description: a flock on _dir_fd would convert this store's own.
            fd = os.open(".", _OPEN_DIR, dir_fd=self._dir_fd)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            os.close(fd)  # releases the probe's lock with it
        return False

    def _open_index(self, where: str) -> None:
        """The database part of :meth:`_open`: cache.db with our permissions, then the schema."""
        # The index file is never opened here, only stat()ed (or created under another name):
        # closing any descriptor of it would drop the POSIX locks this process's SQLite
        # connections hold on it (they are per process and inode, not per descriptor), and
        # another process could then take the database as unused and delete its WAL.
        try:
            info = os.stat(DB_NAME, dir_fd=self._dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            info = self._create_index_file(where)
        except OSError as exc:
            raise ConfigurationError(f"{where} cannot be used: {exc.strerror or exc}") from exc
        if stat.S_ISLNK(info.st_mode):
            # A cache.db planted as a symlink would have SQLite write wherever it points.
            self._damage = f"{DB_NAME} is a symbolic link; refusing to follow it"
            return
        if not stat.S_ISREG(info.st_mode):
            raise ConfigurationError(f"{where} cannot be used: {DB_NAME} is not a regular file")
        if not os.access(DB_NAME, os.R_OK | os.W_OK, dir_fd=self._dir_fd):
            raise ConfigurationError(f"{where} cannot be used: {DB_NAME}: Permission denied")
        # Taken before SQLite opens the file: should a rebuild replace it in between, the
        # identity is the old file's and the next check reopens (never the reverse).
        self._db_id = (info.st_dev, info.st_ino)
        try:
            conn = self._connect()
            conn.execute("PRAGMA journal_mode = WAL")
            with self._transaction(conn):
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version not in (0, SCHEMA_VERSION):
                    self._damage = _format_fault(version)
                    return
                for statement in _split_script(_SCHEMA):
                    conn.execute(statement)
                index = _ORDER[self.policy][1]
                if self.max_bytes is not None and index is not None:
                    conn.execute(index)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self._damage = self._schema_fault(conn)
        except sqlite3.Error as exc:
            if not _is_damage(exc):
                self._close_connections()
                raise ConfigurationError(
                    f"{where}: {self._db_path!r} cannot be opened as a cache: {exc}"
                ) from exc
            self._damage = f"{type(exc).__name__}: {exc}"
        if self._damage is None:
            self._make_reserve()

    def _create_index_file(self, where: str) -> os.stat_result:
        """Create an empty cache.db with ``file_mode``; the stat of whichever cache.db is there.

        Created here rather than by SQLite so it gets file_mode (SQLite gives the -wal and -shm
        files the database file's permissions): under a temporary name, closed, then linked
        into place, so no descriptor of the published file is ever closed by this store (see
        :meth:`_open_index`). Another store creating it at the same time wins the link; its
        file is used.
        """
        temp = f".{DB_NAME}-new-{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(temp, flags, self.file_mode, dir_fd=self._dir_fd)
            try:
                os.fchmod(fd, self.file_mode)  # the umask filtered os.open's mode
            finally:
                os.close(fd)
            try:
                os.link(temp, DB_NAME, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
            except FileExistsError:
                pass
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                    raise
                # A filesystem without hard links: create it in place; a store of this
                # process could only have it open within the microseconds until the close.
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(DB_NAME, flags, self.file_mode, dir_fd=self._dir_fd))
                    os.chmod(DB_NAME, self.file_mode, dir_fd=self._dir_fd)
            finally:
                os.unlink(temp, dir_fd=self._dir_fd)
            return os.stat(DB_NAME, dir_fd=self._dir_fd, follow_symlinks=False)
        except OSError as exc:
            raise ConfigurationError(f"{where} cannot be used: {exc.strerror or exc}") from exc

    @staticmethod
    def _schema_fault(conn: sqlite3.Connection) -> str | None:
        """Why the tables are not the ones this store reads (None: they are)."""
        for table, columns in _TABLES.items():
            found = tuple(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))
            if found != columns:
                return f"table {table!r} has columns {found!r}, expected {columns!r}"
        return None

    def _make_reserve(self) -> None:
        """Set aside ``_RESERVE_SIZE`` bytes (best effort) that a delete on a full disk can use."""
        try:
            fd = os.open(
                RESERVE_NAME, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, self.file_mode,
                dir_fd=self._dir_fd,
            )  # fmt: skip
        except OSError:
            return
        try:
            if os.fstat(fd).st_size < _RESERVE_SIZE:
                # Written, not truncated to size: a sparse file would free nothing when unlinked.
                block = bytes(64 * 1024)
                for _ in range(_RESERVE_SIZE // len(block)):
                    os.write(fd, block)
            self._reserve_released = False
        except OSError:
            # No room for it now: the next sweep tries again.
            self._reserve_released = True
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def _release_reserve(self) -> bool:
        """Free the reserve for an operation that frees space; True if there was one to free."""
        try:
            os.unlink(RESERVE_NAME, dir_fd=self._dir_fd)
        except OSError:
            return False
        self._reserve_released = True
        return True

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection (one per thread: WAL readers then run side by side)."""
        if self._closed:
            raise CacheClosed(f"file cache {self.directory!r} is closed")
        conn = sqlite3.connect(
            self._db_path,
            timeout=self.timeout,
            isolation_level=None,  # autocommit; transactions are explicit BEGIN IMMEDIATE
            check_same_thread=False,  # close() closes every thread's connection
            cached_statements=256,
        )
        # Tracked before it is configured: configuring reads the file, which fails on a damaged
        # index, and such a connection must still stay open until _close_connections(). While it
        # is open it pins the index's inode: were it dropped (closed whenever the garbage
        # collector gets to it), the number could go to the index another store rebuilds, and
        # _index_replaced() would take the new index for the damaged one.
        with self._conns_guard:
            self._conns.append(conn)
        self._configure(conn)
        self._local.conn = conn
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        # NORMAL in WAL mode: a commit is a write to the WAL without fsync (the WAL is synced at
        # checkpoints), so a process crash loses nothing committed and power loss can lose the
        # last commits but never corrupts. FULL syncs the WAL at every commit.
        conn.execute("PRAGMA synchronous = " + ("FULL" if self.sync == "full" else "NORMAL"))
        conn.create_function("sc_glob", 2, _sql_glob, deterministic=True)

    def _conn(self) -> sqlite3.Connection:
        try:
            conn: sqlite3.Connection = self._local.conn
        except AttributeError:
            return self._connect()
        return conn

    def _forget_connections(self) -> None:
        self._local = threading.local()
        self._conns = []
        self._conns_guard = threading.Lock()
        self._sweep_conn = None
        self._lock = _write_lock(os.path.realpath(self._db_path))
        # Threads that were inside an operation do not exist in the child.
        self._gate_lock = threading.Lock()
        self._gate = threading.Condition(self._gate_lock)
        self._inflight = 0
        self._exclusive = False

    def _close_connections(self) -> None:
        # Only ever called with no operation in flight (by close/rebuild as the exclusive user,
        # or from _open before the store is shared): closing a connection that another thread
        # is inside crashes SQLite (use after free), which is what the gate prevents.
        with self._conns_guard:
            conns, self._conns = self._conns, []
        if self._sweep_conn is not None:
            conns.append(self._sweep_conn)
            self._sweep_conn = None
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    # ------------------------------------------------------------------ in-flight guard

    def _enter(self, op: str, key: str | None = None) -> None:
        """Count one operation in; CacheClosed once close() has begun, the damage when damaged."""
        with self._gate:
            while self._exclusive:
                self._gate.wait()
            if self._closed:
                where = "" if key is None else f" on key {_short(key)}"
                raise CacheClosed(f"file cache {self.directory!r} is closed: {op}(){where} after close()")
            self._inflight += 1
        if self._damage is not None and op not in ("clear", "ping"):
            self._leave()
            self._check_damage(op, key)

    def _leave(self) -> None:
        with self._gate_lock:
            self._inflight -= 1
            if not self._inflight and self._exclusive:
                self._gate.notify_all()

    @contextlib.contextmanager
    def _exclusive_use(self) -> Iterator[None]:
        """Wait until no operation is in flight and keep new ones out until the block ends."""
        with self._gate:
            while self._exclusive:
                self._gate.wait()
            self._exclusive = True
            while self._inflight:
                self._gate.wait()
        try:
            yield
        finally:
            with self._gate:
                self._exclusive = False
                self._gate.notify_all()

    def _damaged_error(self, op: str, key: str | None = None) -> BackendUnavailable:
        where = f"file cache {self.directory!r}: {op}()" + (
            f" on key {_short(key)}" if key is not None else ""
        )
        return BackendUnavailable(
            f"{where}: the index {DB_NAME} is damaged ({self._damage}); clear() rebuilds it "
            "(see docs/file-backend.md, 'Damaged index')"
        )

    def _check_damage(self, op: str, key: str | None) -> None:
        """With a damaged index: reopen it if another process (or clear()) replaced it, else raise."""
        if self._index_replaced():
            self._reopen()
        if self._damage is not None:
            raise self._damaged_error(op, key)
        self._enter(op, key)

    def _index_replaced(self) -> bool:
        """True when cache.db is no longer the file this store's connections opened."""
        try:
            info = os.stat(DB_NAME, dir_fd=self._dir_fd, follow_symlinks=False)
        except OSError:
            return True
        return (info.st_dev, info.st_ino) != self._db_id

    def _reopen(self) -> None:
        """Drop every connection and open cache.db afresh (after a rebuild, here or elsewhere)."""
        with self._exclusive_use():
            if self._closed:
                return
            self._close_connections()
            self._damage = None
            # The directory may have been replaced too (deleted and created again).
            if self._dir_fd >= 0:
                os.close(self._dir_fd)
                self._dir_fd = -1
            try:
                self._open()
            except CacheError as exc:
                self._damage = f"it cannot be reopened: {exc}"

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: takes SQLite's write lock up front, so a read-then-write
        transaction never fails halfway with SQLITE_BUSY_SNAPSHOT; ROLLBACK on any error."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextlib.contextmanager
    def _writing(
        self, op: str, key: str | None, conn: sqlite3.Connection | None = None
    ) -> Iterator[sqlite3.Connection]:
        """This process's write lock + one IMMEDIATE transaction; driver errors translated."""
        if conn is None:
            conn = self._conn()
        with self._lock:
            try:
                with self._transaction(conn):
                    yield conn
            except (sqlite3.Error, OSError, UnicodeEncodeError) as exc:
                raise self._fail(op, key, exc) from exc

    def _fail(self, op: str, key: str | None, exc: BaseException) -> CacheError:
        """The stratacache error for a sqlite3/OS error raised by ``op`` on ``key``."""
        where = f"file cache {self.directory!r}: {op}()" + (
            f" on key {_short(key)}" if key is not None else ""
        )
        text = str(exc)
        if isinstance(exc, sqlite3.ProgrammingError) and "closed" in text:
            return CacheClosed(f"{where}: the cache is closed")
        if isinstance(exc, UnicodeEncodeError):
            return InvalidKey(f"{where}: the file backend stores keys as UTF-8, and this one is not: {exc}")
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return CacheTimeout(
                f"{where}: another process held the write lock for more than {self.timeout} s: {text}"
            )
        if _is_damage(exc):
            # Latched: every later operation (and health()) reports it until clear() rebuilds.
            self._damage = f"{type(exc).__name__}: {text}"
            return self._damaged_error(op, key)
        if _is_full(exc):
            return BackendUnavailable(
                f"{where}: the disk holding the cache is full ({type(exc).__name__}: {text}); "
                "nothing was changed"
            )
        return BackendUnavailable(f"{where}: {type(exc).__name__}: {text}")

    def _retry_when_full(self, op: str, fn: Callable[[], _R]) -> _R:
        """Run a space-freeing ``fn``; on a full disk, free the reserve and compact the WAL, then retry.

        Deleting a row still appends pages to the WAL, so on a full disk it fails like a write
        would; the reserve (see RESERVE_NAME) is what lets it commit.
        """
        try:
            return fn()
        except CacheError as exc:
            if exc.__cause__ is None or not _is_full(exc.__cause__):
                raise
            if not self._release_reserve():
                raise
        logger.warning("file cache %r: the disk is full; released the reserve for %s()", self.directory, op)
        with contextlib.suppress(sqlite3.Error, CacheError):
            # Moves the WAL's pages into the database and empties it, so the retry appends
            # to a WAL with room rather than growing it.
            self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return fn()

    # ------------------------------------------------------------------ value files

    def _open_sub(self, sub: str, create: bool) -> int:
        """An fd of the fan-out sub-directory ``sub``, never through a symbolic link.

        OSError when it is missing (and not ``create``); _Unsafe when it is not a real directory.
        """
        try:
            return os.open(sub, _OPEN_DIR, dir_fd=self._dir_fd)
        except FileNotFoundError:
            if not create:
                raise
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _Unsafe(f"{sub!r} is not a directory (a symbolic link or a file)") from exc
            raise
        with contextlib.suppress(FileExistsError):
            os.mkdir(sub, self.dir_mode, dir_fd=self._dir_fd)
        fd = os.open(sub, _OPEN_DIR, dir_fd=self._dir_fd)
        os.fchmod(fd, self.dir_mode)  # the umask filtered mkdir's mode
        return fd

    def _write_file(self, data: bytes) -> tuple[str, int]:
        """Write ``data`` to a new value file atomically; its name and CRC-32."""
        token = secrets.token_hex(16)
        sub = token[:2]
        try:
            dir_fd = self._open_sub(sub, create=True)
        except _Unsafe as exc:
            raise NotADirectoryError(errno.ENOTDIR, str(exc), os.path.join(self.directory, sub)) from None
        try:
            base = f"{self.prefix}{token}.val"
            temp = f".tmp-{token}"
            fd = os.open(
                temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, self.file_mode,
                dir_fd=dir_fd,
            )  # fmt: skip
            try:
                os.fchmod(fd, self.file_mode)  # the umask filtered os.open's mode
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                # Synced before the rename: the name, once visible, never points at a torn file.
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=dir_fd)
                raise
            os.close(fd)
            os.rename(temp, base, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            if self.sync == "full":
                # The rename itself survives power loss only once the directory is synced.
                os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return f"{sub}/{base}", zlib.crc32(data)

    def _refuse(self, op: str, key: str | None, name: object, why: str) -> None:
        """Report an index entry naming a path the store will not follow (it is never touched)."""
        self.unsafe_paths += 1
        logger.warning(
            "file cache %r: %s()%s: the index names the value file %r, which %s; it was not read or "
            "deleted, and the entry is dropped",
            self.directory, op, "" if key is None else f" on key {_short(key)}", name, why,
        )  # fmt: skip

    def _load_file(self, op: str, key: str, name: object) -> bytes | None:
        """A value file's content; None when it is gone or is not a file the store wrote.

        Never follows a symbolic link (in the sub-directory or the file name), never opens a
        path of another shape than the store's own names, never reads a FIFO, a device or a
        file with other hard links (ours have exactly one): those are reported and read as gone.
        """
        if not _value_name_ok(name):
            self._refuse(
                op, key, name, "is not a name this store writes (an absolute path, '..' or a separator)"
            )
            return None
        assert isinstance(name, str)
        sub, base = name.split("/")
        try:
            dir_fd = self._open_sub(sub, create=False)
        except FileNotFoundError:
            return None
        except _Unsafe as exc:
            self._refuse(op, key, name, str(exc))
            return None
        try:
            try:
                fd = os.open(base, _OPEN_VALUE, dir_fd=dir_fd)
            except FileNotFoundError:
                return None
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                self._refuse(op, key, name, "is a symbolic link")
                return None
        finally:
            os.close(dir_fd)
        try:
            info = os.fstat(fd)
            # No link left: a concurrent delete or overwrite unlinked it after the row was read.
            if info.st_nlink == 0:
                return None
            if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
                self._refuse(op, key, name, "is not a regular file with one link")
                return None
            with open(fd, "rb", closefd=False) as handle:
                return handle.read()
        finally:
            os.close(fd)

    def _unlink_file(self, name: str) -> None:
        """Remove a value file by its (already validated) name, never through a symbolic link.

        unlink() never follows the last component, and the sub-directory is opened without
        following one, so a planted link is removed itself, never what it points at.
        """
        sub, base = name.split("/")
        try:
            dir_fd = self._open_sub(sub, create=False)
        except (OSError, _Unsafe):
            return
        try:
            with contextlib.suppress(FileNotFoundError):  # another process got there first
                os.unlink(base, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)

    def _read_file(self, conn: sqlite3.Connection, key: str, name: str, crc: int | None) -> bytes | Missing:
        """A value file's content, or MISSING (and the row dropped) when it is gone or damaged."""
        try:
            data = self._load_file("get", key, name)
        except OSError as exc:
            raise self._fail("get", key, exc) from exc
        if data is not None and zlib.crc32(data) == crc:
            return data
        # Gone (deleted by hand, or a crash), damaged or unsafe: a miss, never a partial value.
        with self._lock:
            try:
                with self._transaction(conn):
                    conn.execute("DELETE FROM entries WHERE key = ? AND file = ?", (key, name))
            except sqlite3.Error as exc:
                raise self._fail("get", key, exc) from exc
        self._empty_trash(conn)
        return MISSING

    def _empty_trash(self, conn: sqlite3.Connection) -> None:
        """Unlink the files of deleted/overwritten rows (listed by the triggers), then forget them."""
        try:
            rows = conn.execute("SELECT id, file FROM trash LIMIT 1000").fetchall()
            if not rows:
                return
            for _, name in rows:
                if _value_name_ok(name):
                    self._unlink_file(name)
                else:
                    self._refuse("empty_trash", None, name, "is not a name this store writes")
            with self._lock:
                conn.executemany("DELETE FROM trash WHERE id = ?", [(row_id,) for row_id, _ in rows])
        except (sqlite3.Error, OSError):
            # Left for the next sweep: the rows are still listed, nothing is lost.
            return

    # ------------------------------------------------------------------ plain values

    @_guarded
    def get(self, key: str) -> Any:
        """The value at ``key`` or MISSING; WrongType if it holds a collection."""
        try:
            conn = self._local.conn
        except AttributeError:
            conn = self._connect()
        try:
            row = conn.execute(_GET, (key,)).fetchone()
        except (sqlite3.Error, UnicodeEncodeError) as exc:
            raise self._fail("get", key, exc) from exc
        if row is None:
            return MISSING
        kind, value, file, crc, expires = row
        if expires is not None and expires <= self.clock():
            return MISSING
        if kind:
            raise WrongType(f"get on key {_short(key)}: it holds a {_KIND_NAMES[kind]}")
        reads = self._reads
        if reads is not None:
            self._note_read(reads, key)
        if file is not None:
            return self._read_file(conn, key, file, crc)
        return value

    @_guarded
    def get_many(self, keys: list[str]) -> dict[str, Any]:
        """The present plain values among ``keys`` (collections are skipped, as Redis MGET does)."""
        found: dict[str, Any] = {}
        if not keys:
            return found
        conn = self._conn()
        now = self.clock()
        reads = self._reads
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            sql = (
                "SELECT key, kind, value, file, crc, expires FROM entries WHERE key IN ("
                + ",".join("?" * len(chunk))
                + ")"
            )
            try:
                rows = conn.execute(sql, chunk).fetchall()
            except (sqlite3.Error, UnicodeEncodeError) as exc:
                raise self._fail("get_many", None, exc) from exc
            for key, kind, value, file, crc, expires in rows:
                if kind or not _alive(expires, now):
                    continue
                if file is not None:
                    found_value = self._read_file(conn, key, file, crc)
                    if found_value is MISSING:
                        continue
                    found[key] = found_value
                else:
                    found[key] = value
                if reads is not None:
                    self._note_read(reads, key)
        return found

    def _prepare(self, key: str, value: bytes, now: float, ttl: float | None) -> tuple[Any, ...]:
        """The parameters of _SET for one value, its file written first when it is large."""
        size = len(key) + len(value)
        if self.max_bytes is not None and size > self.max_bytes:
            raise ValueTooLarge(
                f"value of {len(value)} bytes for key {_short(key)} exceeds the file cache's "
                f"max_bytes={self.max_bytes}"
            )
        expires = None if ttl is None else now + ttl
        if len(value) > self.inline_threshold:
            try:
                name, crc = self._write_file(value)
            except OSError as exc:
                raise self._fail("set", key, exc) from exc
            return (key, None, name, crc, size, expires, now)
        return (key, value, None, None, size, expires, now)

    def _discard_files(self, params: Iterable[tuple[Any, ...]]) -> None:
        """Remove value files written for rows that were never committed."""
        for row in params:
            if row[2] is not None:
                with contextlib.suppress(OSError):  # an orphan at worst: reclaim_orphans takes it
                    self._unlink_file(row[2])

    @_guarded
    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value`` (replacing anything, collections included) for ``ttl`` seconds."""
        params = self._prepare(key, value, self.clock(), ttl)
        try:
            conn = self._local.conn
        except AttributeError:
            conn = self._connect()
        before = conn.total_changes
        with self._lock:
            try:
                conn.execute(_SET, params)
            except (sqlite3.Error, UnicodeEncodeError) as exc:
                self._discard_files((params,))
                raise self._fail("set", key, exc) from exc
        # The statement makes at most 2 changes itself (the row, the totals); more means a
        # trigger also trashed a value file or dropped a collection's elements. (total_changes
        # counts trigger work, and is far cheaper than asking the trash table every time.)
        if params[2] is not None or conn.total_changes - before > 2:
            self._empty_trash(conn)
        if self.max_bytes is not None:
            self._enforce_limit(conn, (key,))

    @_guarded
    def set_many(self, items: Mapping[str, bytes], ttl: float | None) -> None:
        """Store every item with one ttl, in one transaction (all or none)."""
        if not items:
            return
        now = self.clock()
        rows: list[tuple[Any, ...]] = []
        try:
            for key, value in items.items():
                rows.append(self._prepare(key, value, now, ttl))
            with self._writing("set_many", None) as conn:
                conn.executemany(_SET, rows)
        except BaseException:
            self._discard_files(rows)
            raise
        self._empty_trash(conn)
        if self.max_bytes is not None:
            self._enforce_limit(conn, tuple(items))

    @_guarded
    def add(self, key: str, value: bytes, ttl: float | None) -> bool:
        """Store only if ``key`` is absent or expired, atomically across processes."""
        now = self.clock()
        params = self._prepare(key, value, now, ttl)
        conn = self._conn()
        with self._lock:
            try:
                stored = conn.execute(_ADD, (*params, now)).rowcount > 0
            except (sqlite3.Error, UnicodeEncodeError) as exc:
                self._discard_files((params,))
                raise self._fail("add", key, exc) from exc
        if not stored:
            self._discard_files((params,))
            return False
        self._empty_trash(conn)
        if self.max_bytes is not None:
            self._enforce_limit(conn, (key,))
        return True

    @_guarded
    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed (and had not expired). Works on a full disk."""
        return self._retry_when_full("delete", functools.partial(self._delete, key))

    def _delete(self, key: str) -> bool:
        conn = self._conn()
        before = conn.total_changes
        with self._lock:
            try:
                row = conn.execute("DELETE FROM entries WHERE key = ? RETURNING expires", (key,)).fetchone()
            except (sqlite3.Error, UnicodeEncodeError) as exc:
                raise self._fail("delete", key, exc) from exc
        if row is None:
            return False
        if conn.total_changes - before > 2:  # a value file or collection went with it
            self._empty_trash(conn)
        return _alive(row[0], self.clock())

    @_guarded
    def delete_many(self, keys: list[str]) -> int:
        """Remove keys in one transaction; how many existed. Works on a full disk."""
        if not keys:
            return 0
        return self._retry_when_full("delete_many", functools.partial(self._delete_many, keys))

    def _delete_many(self, keys: list[str]) -> int:
        now = self.clock()
        count = 0
        with self._writing("delete_many", None) as conn:
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                sql = (
                    "DELETE FROM entries WHERE key IN (" + ",".join("?" * len(chunk)) + ") RETURNING expires"
                )
                count += sum(1 for (expires,) in conn.execute(sql, chunk).fetchall() if _alive(expires, now))
        self._empty_trash(conn)
        return count

    # ------------------------------------------------------------------ verbs

    _ROW = "SELECT id, kind, value, file, crc, size, expires, stored FROM entries WHERE key = ?"

    def _live_plain(self, conn: sqlite3.Connection, key: str, op: str, now: float) -> tuple[Any, ...] | None:
        """``(id, kind, value, file, crc, size, expires, stored)`` of the live entry at ``key``, or None.

        WrongType when it holds a collection.
        """
        row: tuple[Any, ...] | None = conn.execute(self._ROW, (key,)).fetchone()
        if row is None or not _alive(row[6], now):
            return None
        if row[1]:
            raise WrongType(f"{op} on key {_short(key)}: it holds a {_KIND_NAMES[row[1]]}")
        return row

    @staticmethod
    def _version(value: bytes | None, file: str | None) -> str:
        # A value file's name is fresh on every write; an inline value is named by its bytes.
        if file is not None:
            return "f:" + file
        return hashlib.sha1(value or b"", usedforsecurity=False).hexdigest()

    @_guarded
    def get_item(self, key: str) -> Item | Missing:
        """The live plain entry at ``key`` with its version, write time and expiry (unix time), size."""
        conn = self._conn()
        now = self.clock()
        try:
            row = self._live_plain(conn, key, "get_item", now)
        except (sqlite3.Error, UnicodeEncodeError) as exc:
            raise self._fail("get_item", key, exc) from exc
        if row is None:
            return MISSING
        _, _, value, file, crc, size, expires, stored = row
        if file is not None:
            value = self._read_file(conn, key, file, crc)
            if value is MISSING:
                return MISSING
        if self._reads is not None:
            self._note_read(self._reads, key)
        # The store's clock is wall-clock time by default; a test's clock is shifted onto it.
        shift = time.time() - now
        expires_at = None if expires is None else expires + shift
        return Item(key, value, self._version(value, file), stored + shift, expires_at, (), size - len(key))

    @_guarded
    def set_if_version(self, key: str, value: bytes, ttl: float | None, version: int | str) -> bool:
        """Store only if the live entry at ``key`` still has ``version``, in one transaction."""

        def unchanged(conn: sqlite3.Connection, now: float) -> bool:
            row = self._live_plain(conn, key, "set_if_version", now)
            return row is not None and self._version(row[2], row[3]) == version

        return self._store_if("set_if_version", key, value, ttl, unchanged)

    def _store_if(
        self,
        operation: str,
        key: str,
        value: bytes,
        ttl: float | None,
        condition: Callable[[sqlite3.Connection, float], bool],
    ) -> bool:
        """Write ``key`` only if ``condition(conn, now)`` holds, checked and written in one
        transaction (compare-and-set, replace); True when stored. A value file prepared
        for a write that did not happen is removed."""
        now = self.clock()
        params = self._prepare(key, value, now, ttl)
        stored = False
        try:
            with self._writing(operation, key) as conn:
                if condition(conn, now):
                    conn.execute(_SET, params)
                    stored = True
        finally:
            if not stored:
                self._discard_files((params,))
        if stored:
            self._empty_trash(conn)
            if self.max_bytes is not None:
                self._enforce_limit(conn, (key,))
        return stored

    @_guarded
    def delete_if_version(self, key: str, version: int | str) -> bool:
        """Remove ``key`` only if its live entry still has ``version``, in one transaction."""
        now = self.clock()
        with self._writing("delete_if_version", key) as conn:
            row = self._live_plain(conn, key, "delete_if_version", now)
            if row is None or self._version(row[2], row[3]) != version:
                return False
            conn.execute("DELETE FROM entries WHERE id = ?", (row[0],))
        self._empty_trash(conn)
        return True

    @_guarded
    def pull(self, key: str) -> Any:
        """Remove ``key`` and return its value (MISSING when absent), in one transaction."""
        now = self.clock()
        with self._writing("pull", key) as conn:
            row = self._live_plain(conn, key, "pull", now)
            if row is None:
                return MISSING
            row_id, _, value, file, crc, _, _, _ = row
            if file is not None:
                value = self._load_file("pull", key, file)
                if value is None or zlib.crc32(value) != crc:
                    value = MISSING  # gone or damaged: a miss, and the row goes anyway
            conn.execute("DELETE FROM entries WHERE id = ?", (row_id,))
        self._empty_trash(conn)
        return value

    @_guarded
    def replace(self, key: str, value: bytes, ttl: float | None) -> bool:
        """Store only if ``key`` holds something live (a collection included), in one transaction."""

        def present(conn: sqlite3.Connection, now: float) -> bool:
            row = conn.execute("SELECT expires FROM entries WHERE key = ?", (key,)).fetchone()
            return row is not None and _alive(row[0], now)

        return self._store_if("replace", key, value, ttl, present)

    @_guarded
    def exists(self, key: str) -> bool:
        """True when ``key`` holds anything unexpired."""
        conn = self._conn()
        try:
            row = conn.execute("SELECT expires FROM entries WHERE key = ?", (key,)).fetchone()
        except (sqlite3.Error, UnicodeEncodeError) as exc:
            raise self._fail("exists", key, exc) from exc
        return row is not None and _alive(row[0], self.clock())

    @_guarded
    def incr(self, key: str, delta: int) -> int:
        """Add ``delta`` to the integer at ``key``: created from 0 without expiry; keeps an expiry."""
        now = self.clock()
        with self._writing("incr", key) as conn:
            row = conn.execute(
                "SELECT id, kind, value, file, crc, expires FROM entries WHERE key = ?", (key,)
            ).fetchone()
            if row is None or not _alive(row[5], now):
                result = _add_counter(0, delta, key, "incr")
                text = str(result).encode()
                conn.execute(_SET, (key, text, None, None, len(key) + len(text), None, now))
            else:
                row_id, kind, value, file, crc, _ = row
                if kind:
                    raise WrongType(f"incr on key {_short(key)}: it holds a {_KIND_NAMES[kind]}")
                if file is not None:
                    # Only with a tiny inline_threshold can a counter be in a file.
                    value = self._load_file("incr", key, file)
                    if value is None or zlib.crc32(value) != crc:
                        raise BackendUnavailable(
                            f"file cache {self.directory!r}: incr() on key {_short(key)}: its value "
                            "file is missing, damaged or unsafe"
                        )
                result = _add_counter(_parse_counter(value, key, "incr"), delta, key, "incr")
                text = str(result).encode()
                # Counters always live inline: they are a few bytes.
                conn.execute(
                    "UPDATE entries SET value = ?, file = NULL, crc = NULL, size = ?, stored = ?, "
                    "accessed = ?, hits = hits + 1 WHERE id = ?",
                    (text, len(key) + len(text), now, now, row_id),
                )
        self._empty_trash(conn)
        if self.max_bytes is not None:
            self._enforce_limit(conn, (key,))
        return result

    @_guarded
    def expire(self, key: str, ttl: float | None) -> bool:
        """Set the remaining life of ``key`` (None: never expire); False when absent."""
        now = self.clock()
        conn = self._conn()
        with self._lock:
            try:
                cursor = conn.execute(
                    "UPDATE entries SET expires = ? WHERE key = ? AND (expires IS NULL OR expires > ?)",
                    (None if ttl is None else now + ttl, key, now),
                )
            except (sqlite3.Error, UnicodeEncodeError) as exc:
                raise self._fail("expire", key, exc) from exc
        return cursor.rowcount > 0

    @_guarded
    def ttl(self, key: str) -> float | Missing | None:
        """Seconds left, None for no expiry, MISSING when absent."""
        conn = self._conn()
        try:
            row = conn.execute("SELECT expires FROM entries WHERE key = ?", (key,)).fetchone()
        except (sqlite3.Error, UnicodeEncodeError) as exc:
            raise self._fail("ttl", key, exc) from exc
        if row is None:
            return MISSING
        expires = row[0]
        if expires is None:
            return None
        left: float = expires - self.clock()
        return left if left > 0 else MISSING

    @_guarded
    def delete_pattern(self, pattern: str) -> int:
        """Delete the keys matching a Redis-style glob; how many (expired ones are not counted)."""
        return self._retry_when_full("delete_pattern", functools.partial(self._delete_pattern, pattern))

    def _delete_pattern(self, pattern: str) -> int:
        where, args = _matching(pattern)
        now = self.clock()
        with self._writing("delete_pattern", None) as conn:
            rows = conn.execute(f"DELETE FROM entries WHERE {where} RETURNING expires", args).fetchall()
        self._empty_trash(conn)
        return sum(1 for (expires,) in rows if _alive(expires, now))

    @_guarded
    def keys_page(self, pattern: str, after: str | None, limit: int) -> list[str]:
        """Up to ``limit`` live keys matching the Redis-style glob, in key order, each greater
        than ``after`` (None: from the first); the same selection ``delete_pattern`` deletes."""
        where, args = _matching(pattern)
        if after is not None:
            where, args = f"key > ? AND {where}", (after, *args)
        conn = self._conn()
        try:
            rows = conn.execute(
                f"SELECT key FROM entries WHERE {where} AND (expires IS NULL OR expires > ?) "
                "ORDER BY key LIMIT ?",
                (*args, self.clock(), limit),
            ).fetchall()
        except (sqlite3.Error, UnicodeEncodeError) as exc:
            raise self._fail("iter_keys", None, exc) from exc
        return [key for (key,) in rows]

    def clear(self, prefix: str | None = None) -> None:
        """Delete everything, or only the keys starting with ``prefix``. Works on a full disk.

        On a damaged index (see ``ping``) it rebuilds the index instead, empty, whatever the
        prefix: the entries of a damaged index cannot be told apart reliably.
        """
        self._enter("clear")
        try:
            if self._damage is None:
                try:
                    self._retry_when_full("clear", functools.partial(self._clear, prefix))
                    return
                except BackendUnavailable:
                    if self._damage is None:
                        raise
        finally:
            self._leave()
        if self._rebuild():
            # Another process rebuilt it first: what is in it now was written after the damage.
            self.clear(prefix)

    def _rebuild(self) -> bool:
        """Replace a damaged index with an empty one; True if another process had replaced it already.

        Waits until no operation of this store is in flight; between processes a flock on the
        directory keeps two rebuilds apart. Other processes notice the new index (its inode
        differs) at their next operation on the damaged one, ping or sweep, and reopen it.
        """
        with self._exclusive_use():
            if self._closed:
                raise CacheClosed(f"file cache {self.directory!r} is closed: clear() after close()")
            try:
                fcntl.flock(self._dir_fd, fcntl.LOCK_EX)
            except OSError as exc:
                raise self._fail("clear", None, exc) from exc
            try:
                # Compared while this store's connections still pin the damaged index's inode
                # (see _connect), so its number cannot belong to another process's rebuild yet.
                replaced = self._index_replaced()
                self._close_connections()
                if not replaced:
                    logger.warning(
                        "file cache %r: rebuilding the damaged index (%s)", self.directory, self._damage
                    )
                    for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(name, dir_fd=self._dir_fd)
                    self._remove_files(known=frozenset(), min_age=None)
                self._damage = None
                self._reads = {} if self._reads is not None else None
                self._open(rebuilding=True)
            except OSError as exc:
                raise self._fail("clear", None, exc) from exc
            finally:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._dir_fd, fcntl.LOCK_UN)
            if self._damage is not None:
                raise self._damaged_error("clear")
        return replaced

    def _clear(self, prefix: str | None) -> None:
        with self._writing("clear", None) as conn:
            if prefix is None:
                conn.execute("DELETE FROM entries")
            else:
                where, args = _range(*prefix_bounds(prefix))
                conn.execute(f"DELETE FROM entries WHERE {where} 1", args)
        if self._reads:
            self._reads.clear()
        self._empty_trash(conn)

    # ------------------------------------------------------------------ collections

    def _owner(  # noqa: PLR0917 - private; every caller passes all six
        self, conn: sqlite3.Connection, key: str, kind: int, op: str, create: bool, now: float
    ) -> _Owner | None:
        """The live collection row at ``key`` (inside a write transaction); WrongType if another kind."""
        row = conn.execute(_OWNER, (key,)).fetchone()
        if row is not None and not _alive(row[2], now):
            # Expired: gone for every purpose, elements included (the trigger drops them).
            conn.execute("DELETE FROM entries WHERE id = ?", (row[0],))
            conn.execute("UPDATE meta SET expirations = expirations + 1")
            row = None
        if row is None:
            if not create:
                return None
            cursor = conn.execute(_NEW_OWNER, (key, kind, len(key), now, now))
            assert cursor.lastrowid is not None
            return _Owner(cursor.lastrowid, 0, len(key))
        if row[1] != kind:
            raise WrongType(
                f"{op} on key {_short(key)}: it holds a {_KIND_NAMES[row[1]]}, not a {_KIND_NAMES[kind]}"
            )
        return _Owner(row[0], row[3], row[4])

    def _read_owner(self, key: str, kind: int, op: str) -> tuple[sqlite3.Connection, int | None, int]:
        """(connection, row id or None when absent, length) for a read-only collection operation."""
        conn = self._conn()
        try:
            row = conn.execute(_OWNER, (key,)).fetchone()
        except (sqlite3.Error, UnicodeEncodeError) as exc:
            raise self._fail(op, key, exc) from exc
        if row is None or not _alive(row[2], self.clock()):
            return conn, None, 0
        if row[1] != kind:
            raise WrongType(
                f"{op} on key {_short(key)}: it holds a {_KIND_NAMES[row[1]]}, not a {_KIND_NAMES[kind]}"
            )
        return conn, row[0], row[3]

    def _changed(
        self, conn: sqlite3.Connection, owner: _Owner, length: int, size_delta: int, now: float
    ) -> None:
        """After elements changed: drop an emptied collection (as Redis does), else update its totals."""
        if length <= 0:
            conn.execute("DELETE FROM entries WHERE id = ?", (owner.id,))
        else:
            conn.execute(_RESIZE, (size_delta, length, now, now, owner.id))

    def _after_write(self, conn: sqlite3.Connection, key: str) -> None:
        if self.max_bytes is not None:
            self._enforce_limit(conn, (key,))

    def _check_size(self, key: str, owner: _Owner, delta: int) -> None:
        if self.max_bytes is not None and owner.size + delta > self.max_bytes:
            raise ValueTooLarge(
                f"the collection at key {_short(key)} would grow to {owner.size + delta} bytes, "
                f"over the file cache's max_bytes={self.max_bytes}"
            )

    @_guarded
    def push(self, key: str, values: list[bytes], left: bool) -> int:
        """LPUSH (left) or RPUSH; the new length."""
        op = "lpush" if left else "rpush"
        now = self.clock()
        with self._writing(op, key) as conn:
            owner = self._owner(conn, key, _K_LIST, op, bool(values), now)
            if owner is None:
                return 0
            if not values:
                return owner.length
            delta = sum(len(v) for v in values)
            self._check_size(key, owner, delta)
            if left:
                first = conn.execute(
                    "SELECT pos FROM list_items WHERE owner = ? ORDER BY pos LIMIT 1", (owner.id,)
                ).fetchone()
                start = first[0] if first else 0
                rows = [(owner.id, start - 1 - i, v) for i, v in enumerate(values)]
            else:
                last = conn.execute(
                    "SELECT pos FROM list_items WHERE owner = ? ORDER BY pos DESC LIMIT 1", (owner.id,)
                ).fetchone()
                start = last[0] if last else -1
                rows = [(owner.id, start + 1 + i, v) for i, v in enumerate(values)]
            conn.executemany("INSERT INTO list_items (owner, pos, value) VALUES (?, ?, ?)", rows)
            length = owner.length + len(values)
            self._changed(conn, owner, length, delta, now)
        self._after_write(conn, key)
        return length

    @_guarded
    def pop(self, key: str, left: bool) -> Any:
        """LPOP (left) or RPOP; MISSING when the list is empty or absent."""
        op = "lpop" if left else "rpop"
        now = self.clock()
        with self._writing(op, key) as conn:
            owner = self._owner(conn, key, _K_LIST, op, False, now)
            if owner is None:
                return MISSING
            row = conn.execute(
                "SELECT pos, value FROM list_items WHERE owner = ? ORDER BY pos "
                + ("" if left else "DESC")
                + " LIMIT 1",
                (owner.id,),
            ).fetchone()
            if row is None:  # pragma: no cover - an empty list is deleted in the same transaction
                return MISSING
            conn.execute("DELETE FROM list_items WHERE owner = ? AND pos = ?", (owner.id, row[0]))
            value: bytes = row[1]
            self._changed(conn, owner, owner.length - 1, -len(value), now)
        return value

    @_guarded
    def llen(self, key: str) -> int:
        """Length of the list (0 when absent)."""
        return self._read_owner(key, _K_LIST, "llen")[2]

    @_guarded
    def lrange(self, key: str, start: int, stop: int) -> list[Any]:
        """Elements start..stop inclusive, negative indexes from the end (Redis LRANGE)."""
        conn = self._conn()
        try:
            # One read transaction: the row and its elements from the same snapshot.
            conn.execute("BEGIN")
            try:
                row = conn.execute(_OWNER, (key,)).fetchone()
                if row is None or not _alive(row[2], self.clock()):
                    return []
                if row[1] != _K_LIST:
                    raise WrongType(
                        f"lrange on key {_short(key)}: it holds a {_KIND_NAMES[row[1]]}, not a list"
                    )
                owner, n = row[0], row[3]
                if start < 0:
                    start = max(0, n + start)
                if stop < 0:
                    stop = n + stop
                stop = min(stop, n - 1)
                if start > stop:
                    return []
                first = conn.execute(
                    "SELECT pos FROM list_items WHERE owner = ? ORDER BY pos LIMIT 1", (owner,)
                ).fetchone()[0]
                rows = conn.execute(
                    "SELECT value FROM list_items WHERE owner = ? AND pos BETWEEN ? AND ? ORDER BY pos",
                    (owner, first + start, first + stop),
                ).fetchall()
                return [value for (value,) in rows]
            finally:
                conn.execute("COMMIT")
        except (sqlite3.Error, UnicodeEncodeError) as exc:
            raise self._fail("lrange", key, exc) from exc

    @_guarded
    def sadd(self, key: str, members: list[bytes]) -> int:
        """Add members; how many were new."""
        now = self.clock()
        with self._writing("sadd", key) as conn:
            owner = self._owner(conn, key, _K_SET, "sadd", bool(members), now)
            if owner is None or not members:
                return 0
            added = 0
            delta = 0
            for member in members:
                if conn.execute(
                    "INSERT OR IGNORE INTO set_members (owner, member) VALUES (?, ?)", (owner.id, member)
                ).rowcount:
                    added += 1
                    delta += len(member)
            self._check_size(key, owner, delta)
            self._changed(conn, owner, owner.length + added, delta, now)
        self._after_write(conn, key)
        return added

    @_guarded
    def srem(self, key: str, members: list[bytes]) -> int:
        """Remove members; how many were there."""
        now = self.clock()
        with self._writing("srem", key) as conn:
            owner = self._owner(conn, key, _K_SET, "srem", False, now)
            if owner is None or not members:
                return 0
            removed = 0
            delta = 0
            for member in members:
                if conn.execute(
                    "DELETE FROM set_members WHERE owner = ? AND member = ?", (owner.id, member)
                ).rowcount:
                    removed += 1
                    delta -= len(member)
            if removed:
                self._changed(conn, owner, owner.length - removed, delta, now)
        return removed

    @_guarded
    def smembers(self, key: str) -> builtins.set[Any]:
        """Every member (empty when absent)."""
        conn, owner, _ = self._read_owner(key, _K_SET, "smembers")
        if owner is None:
            return builtins.set()
        try:
            return {m for (m,) in conn.execute("SELECT member FROM set_members WHERE owner = ?", (owner,))}
        except sqlite3.Error as exc:
            raise self._fail("smembers", key, exc) from exc

    @_guarded
    def sismember(self, key: str, member: bytes) -> bool:
        """Membership test."""
        conn, owner, _ = self._read_owner(key, _K_SET, "sismember")
        if owner is None:
            return False
        try:
            row = conn.execute(
                "SELECT 1 FROM set_members WHERE owner = ? AND member = ?", (owner, member)
            ).fetchone()
        except sqlite3.Error as exc:
            raise self._fail("sismember", key, exc) from exc
        return row is not None

    @_guarded
    def scard(self, key: str) -> int:
        """Set size (0 when absent)."""
        return self._read_owner(key, _K_SET, "scard")[2]

    @_guarded
    def hset(self, key: str, mapping: Mapping[str, bytes]) -> int:
        """Set fields; how many were new."""
        now = self.clock()
        with self._writing("hset", key) as conn:
            owner = self._owner(conn, key, _K_HASH, "hset", bool(mapping), now)
            if owner is None or not mapping:
                return 0
            new = 0
            delta = 0
            for field, value in mapping.items():
                old = conn.execute(
                    "SELECT length(value) FROM hash_fields WHERE owner = ? AND field = ?", (owner.id, field)
                ).fetchone()
                if old is None:
                    new += 1
                    delta += len(field) + len(value)
                else:
                    delta += len(value) - old[0]
                conn.execute(
                    "INSERT INTO hash_fields (owner, field, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (owner, field) DO UPDATE SET value = excluded.value",
                    (owner.id, field, value),
                )
            self._check_size(key, owner, delta)
            self._changed(conn, owner, owner.length + new, delta, now)
        self._after_write(conn, key)
        return new

    @_guarded
    def hget(self, key: str, field: str) -> Any:
        """One field's value or MISSING."""
        return self._hget(key, field)

    def _hget(self, key: str, field: str) -> Any:
        conn = self._conn()
        try:
            # One statement: the row's kind/expiry and the field from one snapshot.
            row = conn.execute(
                "SELECT e.kind, e.expires, h.value FROM entries e "
                "LEFT JOIN hash_fields h ON h.owner = e.id AND h.field = ? WHERE e.key = ?",
                (field, key),
            ).fetchone()
        except (sqlite3.Error, UnicodeEncodeError) as exc:
            raise self._fail("hget", key, exc) from exc
        if row is None or not _alive(row[1], self.clock()):
            return MISSING
        if row[0] != _K_HASH:
            raise WrongType(f"hget on key {_short(key)}: it holds a {_KIND_NAMES[row[0]]}, not a hash")
        return MISSING if row[2] is None else row[2]

    @_guarded
    def hgetall(self, key: str) -> dict[str, Any]:
        """Every field (empty when absent)."""
        conn = self._conn()
        try:
            rows = conn.execute(
                "SELECT e.kind, e.expires, h.field, h.value FROM entries e "
                "LEFT JOIN hash_fields h ON h.owner = e.id WHERE e.key = ?",
                (key,),
            ).fetchall()
        except (sqlite3.Error, UnicodeEncodeError) as exc:
            raise self._fail("hgetall", key, exc) from exc
        if not rows or not _alive(rows[0][1], self.clock()):
            return {}
        if rows[0][0] != _K_HASH:
            raise WrongType(f"hgetall on key {_short(key)}: it holds a {_KIND_NAMES[rows[0][0]]}, not a hash")
        return {field: value for _, _, field, value in rows if field is not None}

    @_guarded
    def hdel(self, key: str, fields: list[str]) -> int:
        """Remove fields; how many existed."""
        now = self.clock()
        with self._writing("hdel", key) as conn:
            owner = self._owner(conn, key, _K_HASH, "hdel", False, now)
            if owner is None or not fields:
                return 0
            removed = 0
            delta = 0
            for field in dict.fromkeys(fields):
                row = conn.execute(
                    "DELETE FROM hash_fields WHERE owner = ? AND field = ? RETURNING length(value)",
                    (owner.id, field),
                ).fetchone()
                if row is not None:
                    removed += 1
                    delta -= len(field) + row[0]
            if removed:
                self._changed(conn, owner, owner.length - removed, delta, now)
        return removed

    @_guarded
    def hexists(self, key: str, field: str) -> bool:
        """Field presence."""
        return self._hget(key, field) is not MISSING

    @_guarded
    def hlen(self, key: str) -> int:
        """Number of fields (0 when absent)."""
        return self._read_owner(key, _K_HASH, "hlen")[2]

    @_guarded
    def hincrby(self, key: str, field: str, delta: int) -> int:
        """Add ``delta`` to an integer field (created from 0); the new value."""
        now = self.clock()
        with self._writing("hincrby", key) as conn:
            owner = self._owner(conn, key, _K_HASH, "hincrby", False, now)
            old = None
            if owner is not None:
                old = conn.execute(
                    "SELECT value FROM hash_fields WHERE owner = ? AND field = ?", (owner.id, field)
                ).fetchone()
            current = 0 if old is None else _parse_counter(old[0], key, "hincrby")
            # Computed before the hash is created: an overflow must leave no empty hash behind.
            result = _add_counter(current, delta, key, "hincrby")
            if owner is None:
                owner = self._owner(conn, key, _K_HASH, "hincrby", True, now)
                assert owner is not None
            text = str(result).encode()
            conn.execute(
                "INSERT INTO hash_fields (owner, field, value) VALUES (?, ?, ?) "
                "ON CONFLICT (owner, field) DO UPDATE SET value = excluded.value",
                (owner.id, field, text),
            )
            if old is None:
                self._changed(conn, owner, owner.length + 1, len(field) + len(text), now)
            else:
                self._changed(conn, owner, owner.length, len(text) - len(old[0]), now)
        self._after_write(conn, key)
        return result

    # ------------------------------------------------------------------ bounds, expiry, upkeep

    def _note_read(self, reads: dict[str, int], key: str) -> None:
        # Not under a lock: two threads racing here can lose one hit of an lfu count, which
        # only blurs an approximate order; a lock would cost every read.
        reads[key] = reads.get(key, 0) + 1
        if len(reads) >= _READ_FLUSH:
            self._flush_reads(self._conn())

    def _flush_reads(self, conn: sqlite3.Connection) -> None:
        """Write the noted hits (lru: access time, lfu: counts) in one transaction."""
        if not self._reads:
            return
        reads, self._reads = self._reads, {}
        now = self.clock()
        try:
            with self._lock, self._transaction(conn):
                conn.executemany(
                    "UPDATE entries SET accessed = ?, hits = hits + ? WHERE key = ?",
                    [(now, count, key) for key, count in reads.items()],
                )
        except sqlite3.Error:
            # Access order is a hint; losing one batch (e.g. to a busy timeout) is harmless.
            return

    def _enforce_limit(self, conn: sqlite3.Connection, protect: tuple[str, ...]) -> None:
        """Evict by the policy until the directory's total is within max_bytes."""
        max_bytes = self.max_bytes
        assert max_bytes is not None
        try:
            total = conn.execute("SELECT bytes FROM meta").fetchone()[0]
        except sqlite3.Error as exc:
            raise self._fail("evict", None, exc) from exc
        if total <= max_bytes:
            return
        self._flush_reads(conn)
        now = self.clock()
        exclude = ",".join("?" * len(protect))
        evicted = expired = 0
        with self._writing("evict", None, conn):
            # Expired entries go first: dropping them loses nothing.
            expired = len(
                conn.execute(
                    "DELETE FROM entries WHERE expires IS NOT NULL AND expires <= ? RETURNING id", (now,)
                ).fetchall()
            )
            total = conn.execute("SELECT bytes FROM meta").fetchone()[0]
            while total > max_bytes:
                # The keys just written are never their own write's victims (lfu would otherwise
                # pick a new entry, with the fewest hits, first).
                rows = conn.execute(
                    f"SELECT id, size FROM entries WHERE key NOT IN ({exclude}) "
                    f"ORDER BY {self._order} LIMIT ?",
                    (*protect, _EVICT_BATCH),
                ).fetchall()
                if not rows:
                    break
                victims = []
                for row_id, size in rows:
                    victims.append((row_id,))
                    total -= size
                    if total <= max_bytes:
                        break
                conn.executemany("DELETE FROM entries WHERE id = ?", victims)
                evicted += len(victims)
            conn.execute(
                "UPDATE meta SET evictions = evictions + ?, expirations = expirations + ?", (evicted, expired)
            )
        self._empty_trash(conn)

    def purge_expired(self, limit: int = 1000) -> int:
        """One janitor sweep, when due: expired rows (``limit`` at most), trash, noted hits, bounds.

        Called every second by the process-wide janitor thread; does its work only every
        ``janitor_interval`` seconds. Never raises: a failed sweep is retried at the next one.
        Also where a store notices that another process rebuilt a damaged index, and where a
        reserve released on a full disk is set aside again.
        """
        if self._closed or self.janitor_interval is None:
            return 0
        tick = time.monotonic()
        if tick < self._next_sweep:
            return 0
        self._next_sweep = tick + self.janitor_interval
        # Not while another process rebuilds: reopening would wait for it, and this thread
        # sweeps every store of the process. The next sweep tries again.
        if self._index_replaced() and not self._rebuild_elsewhere():
            with contextlib.suppress(CacheError, OSError):
                self._reopen()
        # Never waits: the janitor thread also sweeps the memory stores, and close() or a
        # rebuild may wait for a slow operation here; such a sweep is skipped, not delayed.
        with self._gate_lock:
            if self._exclusive or self._closed or self._damage is not None:
                return 0
            self._inflight += 1
        try:
            return self._sweep(limit)
        except (CacheError, sqlite3.Error, OSError):
            return 0
        finally:
            self._leave()

    @_guarded
    def sweep(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired entries now, empty the trash, flush hits; how many expired."""
        try:
            return self._sweep(limit)
        except (sqlite3.Error, OSError) as exc:
            raise self._fail("sweep", None, exc) from exc

    def _sweep(self, limit: int) -> int:
        conn = self._sweep_conn
        if conn is None:
            conn = sqlite3.connect(
                self._db_path, timeout=_SWEEP_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            self._configure(conn)
            self._sweep_conn = conn
        self._flush_reads(conn)
        if not self._lock.acquire(timeout=self.timeout):
            return 0
        try:
            with self._transaction(conn):
                rows = conn.execute(
                    "DELETE FROM entries WHERE id IN (SELECT id FROM entries WHERE expires IS NOT NULL "
                    "AND expires <= ? LIMIT ?) RETURNING id",
                    (self.clock(), limit),
                ).fetchall()
                if rows:
                    conn.execute("UPDATE meta SET expirations = expirations + ?", (len(rows),))
        finally:
            self._lock.release()
        self._empty_trash(conn)
        if self.max_bytes is not None:
            self._enforce_limit(conn, ())
        if self._reserve_released:
            self._make_reserve()
        tick = time.monotonic()
        if tick >= self._next_orphan_scan:
            self._next_orphan_scan = tick + _ORPHAN_AGE
            self._reclaim_orphans(_ORPHAN_AGE)
        return len(rows)

    @_guarded
    def reclaim_orphans(self, min_age: float = _ORPHAN_AGE) -> int:
        """Delete value and temp files no row refers to, older than ``min_age`` seconds; how many.

        They are left by a process killed between writing a file and committing its row. The
        age guard spares files another process has just written and is about to commit. Only
        real sub-directories named by two hex digits are looked into, never through a symbolic
        link, and a link found inside one is removed itself, never what it points at.
        """
        return self._reclaim_orphans(min_age)

    def _reclaim_orphans(self, min_age: float) -> int:
        conn = self._conn()
        try:
            known = {name for (name,) in conn.execute("SELECT file FROM entries WHERE file IS NOT NULL")}
            known.update(name for (name,) in conn.execute("SELECT file FROM trash"))
        except sqlite3.Error as exc:
            raise self._fail("reclaim_orphans", None, exc) from exc
        try:
            return self._remove_files(frozenset(known), min_age)
        except OSError as exc:
            raise self._fail("reclaim_orphans", None, exc) from exc

    def _remove_files(self, known: frozenset[str], min_age: float | None) -> int:
        """Unlink what the fan-out sub-directories hold apart from ``known`` names; how many.

        ``min_age``: only entries older than that many seconds (None: all, for a rebuild).
        """
        cutoff = None if min_age is None else time.time() - min_age
        removed = 0
        # A fresh fd: listdir() on a shared one would share its offset with another thread's.
        top = os.open(".", _OPEN_DIR, dir_fd=self._dir_fd)
        try:
            subs = os.listdir(top)
        finally:
            os.close(top)
        for sub in subs:
            if not _SUB_NAME.fullmatch(sub):
                continue
            try:
                dir_fd = self._open_sub(sub, create=False)
            except (OSError, _Unsafe):
                continue  # gone, or a link or file planted in place of a sub-directory
            try:
                for entry in os.listdir(dir_fd):
                    if f"{sub}/{entry}" in known:
                        continue
                    try:
                        info = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
                        if stat.S_ISDIR(info.st_mode) or (cutoff is not None and info.st_mtime > cutoff):
                            continue
                        os.unlink(entry, dir_fd=dir_fd)
                        removed += 1
                    except FileNotFoundError:
                        continue
            finally:
                os.close(dir_fd)
        return removed

    # ------------------------------------------------------------------ introspection, lifecycle

    @_guarded
    def counters(self, prefix: str | None = None) -> FileStoreCounters:
        """Items and bytes (of the keys under ``prefix``, or of the directory), evictions, expirations."""
        conn = self._conn()
        try:
            items, total, evictions, expirations = conn.execute(
                "SELECT items, bytes, evictions, expirations FROM meta"
            ).fetchone()
            if prefix is not None:
                where, args = _range(*prefix_bounds(prefix))
                items, total = conn.execute(
                    f"SELECT count(*), coalesce(sum(size), 0) FROM entries WHERE {where} 1", args
                ).fetchone()
        except sqlite3.Error as exc:
            raise self._fail("counters", None, exc) from exc
        return FileStoreCounters(items, total, evictions, expirations)

    def ping(self) -> None:
        """Return when the index answers and is sound; BackendUnavailable saying why otherwise.

        Checks the directory, the tables and columns the store reads and the format version,
        and reports a damage met earlier by any operation (SQLite's "malformed" or "not a
        database"), so ``health()`` shows a damaged index until ``clear()`` rebuilds it.
        """
        if not os.path.isdir(self.directory):
            raise BackendUnavailable(f"file cache directory {self.directory!r} has disappeared")
        if self._index_replaced() and not self._closed:
            self._reopen()  # another process rebuilt it, or it was deleted by hand
        self._enter("ping")
        try:
            if self._damage is not None:
                raise self._damaged_error("ping")
            conn = self._conn()
            try:
                conn.execute("SELECT items FROM meta").fetchone()
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                fault = self._schema_fault(conn)
            except sqlite3.Error as exc:
                raise self._fail("ping", None, exc) from exc
            if version != SCHEMA_VERSION:
                fault = _format_fault(version)
            if fault is not None:
                self._damage = fault
                raise self._damaged_error("ping")
        finally:
            self._leave()

    def close(self) -> None:
        """Write the noted hits, empty the trash, stop sweeping, close every connection. Idempotent.

        Waits for the operations other threads have in flight (each ends normally), and every
        operation that starts after it began raises CacheClosed.
        """
        with self._exclusive_use():
            if self._closed:
                return
            if self._damage is None:
                try:
                    conn = self._conn()
                    self._flush_reads(conn)
                    self._empty_trash(conn)
                except (CacheError, sqlite3.Error):
                    pass
            self._closed = True
            janitor.unwatch(self)
            self._close_connections()
            if self._dir_fd >= 0:
                os.close(self._dir_fd)
                self._dir_fd = -1

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def describe(self) -> str:
        """Directory, policy and bound, for errors and health reports."""
        return f"file {self.directory} (policy={self.policy}, max_bytes={self.max_bytes}, sync={self.sync})"


def _range(low: str, high: str | None) -> tuple[str, tuple[str, ...]]:
    """A WHERE fragment (ending in AND) selecting keys in ``[low, high)`` through the key index."""
    if not low:
        return "", ()
    if high is None:
        return "key >= ? AND", (low,)
    return "key >= ? AND key < ? AND", (low, high)


def _matching(pattern: str) -> tuple[str, tuple[str, ...]]:
    """A WHERE condition selecting the keys that match the Redis-style glob ``pattern``: the
    range of its literal prefix through the key index, then the glob on the keys in it."""
    where, args = _range(*prefix_bounds(glob_literal_prefix(pattern)))
    return f"{where} sc_glob(?, key)", (*args, pattern)


def _split_script(script: str) -> list[str]:
    """The statements of the schema script (executescript would COMMIT our transaction)."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s]
