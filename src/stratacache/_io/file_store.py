"""The on-disk engine behind ``file://``: an SQLite index in WAL mode plus one file per large value.

This module does I/O (blocking SQLite and file calls), which is why it lives in
:mod:`stratacache._io` and not in the pure-logic :mod:`stratacache.core`; it is the one
synchronous engine that both backend flavours wrap: the sync
``FileBackend`` calls it directly, the async one runs each call in a worker thread (see
``stratacache._drivers.offload_async``). Policy decisions (which entry to evict, whether an
entry is alive) are plain comparisons on the row's columns.

Layout of a cache directory::

    cache.db, cache.db-wal, cache.db-shm    the SQLite index (WAL mode)
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
* **Access order for ``lru``/``lfu`` is recorded lazily**: a hit is noted in memory and written
  in one batch (every ``_READ_FLUSH`` hits, before an eviction and at each janitor sweep), so a
  read stays a read and never takes the write lock. Recency across processes is therefore
  approximate by at most one unflushed batch per process.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import secrets
import sqlite3
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

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
from .._types import MISSING, Missing
from ..core.glob import compile_glob
from .janitor import janitor

__all__ = ["DB_NAME", "FileStore", "FileStoreCounters", "POLICIES", "SYNC_MODES"]

DB_NAME = "cache.db"
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
        self._made_dirs: set[str] = set()
        self._reads: dict[str, int] | None = {} if max_bytes is not None and policy != "fifo" else None
        self._order = _ORDER[policy][0]
        self._sweep_conn: sqlite3.Connection | None = None
        self._next_sweep = time.monotonic() + (janitor_interval or 0.0)
        self._next_orphan_scan = time.monotonic() + _ORPHAN_AGE
        self._open()
        self._lock = _write_lock(os.path.realpath(self._db_path))
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

    def _open(self) -> None:
        """Create the directory and the database (with our permissions) and the schema."""
        where = f"file cache directory {self.directory!r}"
        try:
            if not os.path.isdir(self.directory):
                os.makedirs(self.directory, mode=self.dir_mode, exist_ok=True)
                # makedirs's mode is filtered by the umask; the option is what the user asked for.
                os.chmod(self.directory, self.dir_mode)
            if not os.access(self.directory, os.W_OK | os.X_OK):
                raise PermissionError(13, "Permission denied", self.directory)
            # Created here rather than by SQLite so it gets file_mode; SQLite gives the -wal and
            # -shm files the database file's permissions.
            fd = os.open(self._db_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, self.file_mode)
            try:
                if os.fstat(fd).st_size == 0:
                    os.fchmod(fd, self.file_mode)
            finally:
                os.close(fd)
        except OSError as exc:
            raise ConfigurationError(f"{where} cannot be used: {exc.strerror or exc}") from exc
        try:
            conn = self._connect()
            conn.execute("PRAGMA journal_mode = WAL")
            with self._transaction(conn):
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version not in (0, SCHEMA_VERSION):
                    raise ConfigurationError(
                        f"{where} holds a cache of format {version}; this stratacache writes format "
                        f"{SCHEMA_VERSION}: use another directory or clear this one"
                    )
                for statement in _split_script(_SCHEMA):
                    conn.execute(statement)
                index = _ORDER[self.policy][1]
                if self.max_bytes is not None and index is not None:
                    conn.execute(index)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except CacheError:
            self._close_connections()
            raise
        except sqlite3.Error as exc:
            self._close_connections()
            raise ConfigurationError(
                f"{where}: {self._db_path!r} cannot be opened as a cache: {exc}"
            ) from exc

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
        self._configure(conn)
        self._local.conn = conn
        with self._conns_guard:
            self._conns.append(conn)
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

    def _close_connections(self) -> None:
        with self._conns_guard:
            conns, self._conns = self._conns, []
        if self._sweep_conn is not None:
            conns.append(self._sweep_conn)
            self._sweep_conn = None
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

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
        return BackendUnavailable(f"{where}: {type(exc).__name__}: {text}")

    # ------------------------------------------------------------------ value files

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def _write_file(self, data: bytes) -> tuple[str, int]:
        """Write ``data`` to a new value file atomically; its name and CRC-32."""
        token = secrets.token_hex(16)
        sub = token[:2]
        folder = os.path.join(self.directory, sub)
        if sub not in self._made_dirs:
            try:
                os.mkdir(folder, self.dir_mode)
                os.chmod(folder, self.dir_mode)
            except FileExistsError:
                pass
            self._made_dirs.add(sub)
        name = f"{sub}/{self.prefix}{token}.val"
        temp = os.path.join(folder, f".tmp-{token}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, self.file_mode)
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
                os.unlink(temp)
            raise
        os.close(fd)
        os.rename(temp, self._path(name))
        if self.sync == "full":
            # The rename itself survives power loss only once the directory is synced.
            dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return name, zlib.crc32(data)

    def _read_file(self, conn: sqlite3.Connection, key: str, name: str, crc: int | None) -> bytes | Missing:
        """A value file's content, or MISSING (and the row dropped) when it is gone or damaged."""
        try:
            with open(self._path(name), "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            data = None
        except OSError as exc:
            raise self._fail("get", key, exc) from exc
        if data is not None and zlib.crc32(data) == crc:
            return data
        # Gone (deleted by hand, or a crash) or damaged: a miss, never a partial value.
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
                with contextlib.suppress(FileNotFoundError):  # another process got there first
                    os.unlink(self._path(name))
            with self._lock:
                conn.executemany("DELETE FROM trash WHERE id = ?", [(row_id,) for row_id, _ in rows])
        except (sqlite3.Error, OSError):
            # Left for the next sweep: the rows are still listed, nothing is lost.
            return

    # ------------------------------------------------------------------ plain values

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
                with contextlib.suppress(OSError):
                    os.unlink(self._path(row[2]))

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

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed (and had not expired)."""
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

    def delete_many(self, keys: list[str]) -> int:
        """Remove keys in one transaction; how many existed."""
        if not keys:
            return 0
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

    def exists(self, key: str) -> bool:
        """True when ``key`` holds anything unexpired."""
        conn = self._conn()
        try:
            row = conn.execute("SELECT expires FROM entries WHERE key = ?", (key,)).fetchone()
        except (sqlite3.Error, UnicodeEncodeError) as exc:
            raise self._fail("exists", key, exc) from exc
        return row is not None and _alive(row[0], self.clock())

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
                    with open(self._path(file), "rb") as handle:
                        value = handle.read()
                    if zlib.crc32(value) != crc:
                        raise BackendUnavailable(f"incr on key {_short(key)}: its value file is damaged")
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

    def delete_pattern(self, pattern: str) -> int:
        """Delete the keys matching a Redis-style glob; how many (expired ones are not counted)."""
        low, high = prefix_bounds(glob_literal_prefix(pattern))
        where, args = _range(low, high)
        now = self.clock()
        with self._writing("delete_pattern", None) as conn:
            rows = conn.execute(
                f"DELETE FROM entries WHERE {where} sc_glob(?, key) RETURNING expires", (*args, pattern)
            ).fetchall()
        self._empty_trash(conn)
        return sum(1 for (expires,) in rows if _alive(expires, now))

    def clear(self, prefix: str | None = None) -> None:
        """Delete everything, or only the keys starting with ``prefix``."""
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

    def llen(self, key: str) -> int:
        """Length of the list (0 when absent)."""
        return self._read_owner(key, _K_LIST, "llen")[2]

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

    def smembers(self, key: str) -> builtins.set[Any]:
        """Every member (empty when absent)."""
        conn, owner, _ = self._read_owner(key, _K_SET, "smembers")
        if owner is None:
            return builtins.set()
        try:
            return {m for (m,) in conn.execute("SELECT member FROM set_members WHERE owner = ?", (owner,))}
        except sqlite3.Error as exc:
            raise self._fail("smembers", key, exc) from exc

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

    def scard(self, key: str) -> int:
        """Set size (0 when absent)."""
        return self._read_owner(key, _K_SET, "scard")[2]

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

    def hget(self, key: str, field: str) -> Any:
        """One field's value or MISSING."""
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

    def hexists(self, key: str, field: str) -> bool:
        """Field presence."""
        return self.hget(key, field) is not MISSING

    def hlen(self, key: str) -> int:
        """Number of fields (0 when absent)."""
        return self._read_owner(key, _K_HASH, "hlen")[2]

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
        """
        if self._closed or self.janitor_interval is None:
            return 0
        tick = time.monotonic()
        if tick < self._next_sweep:
            return 0
        self._next_sweep = tick + self.janitor_interval
        try:
            return self.sweep(limit)
        except (CacheError, sqlite3.Error, OSError):
            return 0

    def sweep(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired entries now, empty the trash, flush hits; how many expired."""
        conn = self._sweep_conn
        if conn is None:
            conn = sqlite3.connect(
                self._db_path, timeout=_SWEEP_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            self._configure(conn)
            self._sweep_conn = conn
        if self._closed:
            return 0
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
        tick = time.monotonic()
        if tick >= self._next_orphan_scan:
            self._next_orphan_scan = tick + _ORPHAN_AGE
            self.reclaim_orphans()
        return len(rows)

    def reclaim_orphans(self, min_age: float = _ORPHAN_AGE) -> int:
        """Delete value and temp files no row refers to, older than ``min_age`` seconds; how many.

        They are left by a process killed between writing a file and committing its row. The
        age guard spares files another process has just written and is about to commit.
        """
        conn = self._conn()
        try:
            known = {name for (name,) in conn.execute("SELECT file FROM entries WHERE file IS NOT NULL")}
            known.update(name for (name,) in conn.execute("SELECT file FROM trash"))
        except sqlite3.Error as exc:
            raise self._fail("reclaim_orphans", None, exc) from exc
        cutoff = time.time() - min_age
        removed = 0
        for sub in os.listdir(self.directory):
            folder = os.path.join(self.directory, sub)
            if len(sub) != 2 or not os.path.isdir(folder):
                continue
            for entry in os.scandir(folder):
                name = f"{sub}/{entry.name}"
                if name in known:
                    continue
                try:
                    if entry.stat().st_mtime <= cutoff:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

    # ------------------------------------------------------------------ introspection, lifecycle

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
        """Return when the database answers; BackendUnavailable (naming the directory) otherwise."""
        conn = self._conn()
        try:
            conn.execute("SELECT items FROM meta").fetchone()
        except sqlite3.Error as exc:
            raise self._fail("ping", None, exc) from exc
        if not os.path.isdir(self.directory):
            raise BackendUnavailable(f"file cache directory {self.directory!r} has disappeared")

    def close(self) -> None:
        """Write the noted hits, empty the trash, stop sweeping, close every connection. Idempotent."""
        if self._closed:
            return
        try:
            conn = self._conn()
            self._flush_reads(conn)
            self._empty_trash(conn)
        except CacheError:
            pass
        self._closed = True
        janitor.unwatch(self)
        self._close_connections()

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
