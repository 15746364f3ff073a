"""Warm restarts of the memory backend: a store saved to and loaded from a snapshot file.

The file is the server's format (:mod:`stratacache.core.snapshot`), database 0. Plain values
are string records holding the cache's serialized bytes: a cache with a serializer already
stores bytes, which are written as they are; a cache of objects (no serializer) has them
encoded by a msgpack :class:`~stratacache.serializers.Codec` here, and decoded on load.
Native lists, sets and hashes are list, set and hash records, their elements encoded the
same way. So a server can load a library snapshot, and the library a server's, wherever
the values are bytes the other side understands.

Writes are atomic (temporary file in the same directory, fsync, rename, directory fsync);
:class:`PeriodicSaver` saves every ``interval`` seconds on a daemon thread.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .._exceptions import ConfigurationError, SerializationError, SnapshotError
from ..core.entries import _Hash, _List, _Set
from ..core.memory_store import MemoryStore
from ..core.snapshot import HASH, KIND_NAMES, LIST, SET, STRING, SnapshotReader, SnapshotWriter

__all__ = ["PeriodicSaver", "check_path", "load_store", "save_store"]

logger = logging.getLogger("stratacache.memory")


def check_path(path: str) -> str:
    """``path`` as a string, refused (ConfigurationError naming ``snapshot``) when its
    directory does not exist or cannot be written, or when it is a directory."""
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise ConfigurationError(f"snapshot: {path!r} is not a file path")
    directory = os.path.dirname(os.path.abspath(text))
    if os.path.isdir(text):
        raise ConfigurationError(f"snapshot: {text!r} is a directory, not a file path")
    if not os.path.isdir(directory):
        raise ConfigurationError(f"snapshot: the directory of {text!r} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigurationError(f"snapshot: cannot write in the directory of {text!r}")
    return text


class _Values:
    """Element encoding both ways: raw bytes for a cache that serializes, a msgpack codec
    for a cache of objects."""

    def __init__(self, codec: Any | None) -> None:
        from ..serializers import Codec

        self.raw = codec is not None
        self.codec = codec if codec is not None else Codec("msgpack")

    def encode(self, value: Any, key: str) -> bytes:
        if self.raw and type(value) is bytes:
            return value
        encoded: bytes = self.codec.encode(value, key)
        return encoded

    def encode_member(self, value: Any, key: str) -> bytes:
        if self.raw and type(value) is bytes:
            return value
        encoded: bytes = self.codec.encode_member(value, key)
        return encoded

    def decode(self, data: bytes, key: str) -> Any:
        return data if self.raw else self.codec.decode(data, key)


def save_store(store: MemoryStore, path: str, codec: Any | None) -> int:
    """Write ``store``'s live entries to ``path`` atomically; the number of keys.
    SnapshotError naming the path on an I/O failure, SerializationError naming the key of
    a value that cannot be encoded (the previous file is then left as it was)."""
    values = _Values(codec)
    entries = store.export_entries()
    now = time.time()
    directory = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(temp, "wb", buffering=1024 * 1024) as f:
            writer = SnapshotWriter(f, created_ms=int(now * 1000))
            for key, value, left in entries:
                raw = key.encode("utf-8", "surrogatepass")
                deadline = None if left is None else round((now + left) * 1000)
                cls = type(value)
                if cls is _List:
                    writer.add(0, raw, LIST, [values.encode(v, key) for v in value], deadline)
                elif cls is _Set:
                    writer.add(0, raw, SET, [values.encode_member(v, key) for v in value], deadline)
                elif cls is _Hash:
                    fields = [(name.encode(), values.encode(v, key)) for name, v in value.items()]
                    writer.add(0, raw, HASH, fields, deadline)
                else:
                    writer.add_string(0, raw, values.encode(value, key), deadline)
            count = writer.finish()
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise SnapshotError(f"cannot write the snapshot: {exc.strerror or exc}", path=path) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return count


def load_store(store: MemoryStore, path: str, codec: Any | None) -> int:
    """Load the snapshot at ``path`` (database 0) into ``store``: expired entries are
    dropped; a missing file loads nothing. SnapshotError naming the file (and the offset)
    when it is unreadable, truncated or corrupt, or holds what the store cannot (a zset);
    the store is then left empty. Returns the number of keys loaded."""
    values = _Values(codec)
    try:
        f = open(path, "rb", buffering=1024 * 1024)  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise SnapshotError(f"cannot read the snapshot: {exc.strerror or exc}", path=path) from exc
    loaded = 0
    # Many new objects would set off repeated full collections; one at the end instead.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with f:
            reader = SnapshotReader(f, path, size=os.fstat(f.fileno()).st_size)
            now_ms = time.time() * 1000
            for db, raw, kind, value, deadline in reader:
                if db != 0:
                    continue
                ttl: float | None = None
                if deadline is not None:
                    if deadline <= now_ms:
                        continue
                    ttl = (deadline - now_ms) / 1000
                try:
                    key = raw.decode("utf-8", "surrogatepass")
                except UnicodeDecodeError:
                    message = f"key {raw!r} is not UTF-8 (a library key is a str)"
                    raise SnapshotError(message, path=path) from None
                _put(store, key, kind, value, ttl, values=values, path=path)
                loaded += 1
    except (SnapshotError, SerializationError):
        store.clear()
        raise
    finally:
        if collecting:
            gc.enable()
    return loaded


def _put(
    store: MemoryStore, key: str, kind: int, value: Any, ttl: float | None, *, values: _Values, path: str
) -> None:
    decode = values.decode
    if kind == STRING:
        store.set(key, decode(value, key), ttl)
        return
    if kind == LIST:
        store.delete(key)
        store.push(key, [decode(v, key) for v in value], False)
    elif kind == SET:
        store.delete(key)
        store.sadd(key, [decode(v, key) for v in value])
    elif kind == HASH:
        store.delete(key)
        store.hset(key, {name.decode("utf-8", "surrogatepass"): decode(v, key) for name, v in value})
    else:
        raise SnapshotError(
            f"key {key!r} holds a {KIND_NAMES[kind]}, which the memory backend does not have", path=path
        )
    if ttl is not None:
        store.expire(key, ttl)


class PeriodicSaver:
    """Call ``save()`` every ``interval`` seconds on a daemon thread until :meth:`stop`.
    A failed save is logged (and kept in :attr:`last_error`); the next one is tried."""

    def __init__(self, save: Callable[[], object], interval: float, name: str) -> None:
        self._save = save
        self.interval = interval
        self.last_error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"stratacache-snapshot {name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._save()
                self.last_error = None
            except Exception as exc:  # a thread has nobody to raise to: log and retry
                self.last_error = exc
                logger.warning("periodic snapshot failed: %s", exc)

    def stop(self) -> None:
        """Stop the thread (waits for a save in progress)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
