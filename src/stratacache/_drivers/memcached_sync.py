"""One memcached server, sync flavour: a pool of pymemcache clients behind the ``MemcachedNode`` API.

The pair of ``memcached_async.py``; the generated sync Memcached backend imports this
module. Same methods, same return values, same errors; only the driver differs.

* **Pool.** pymemcache's ``PooledClient`` raises ``RuntimeError("Too many objects")`` when
  every client is busy; a cache should wait instead. So the pool is ours: a list of
  ``pool_size`` lazily-connecting ``pymemcache.Client`` objects. Taking one is a
  ``list.pop()`` (atomic under the GIL, no lock on the hot path); only when all are busy does
  a caller wait on a condition, up to ``timeout``. Node selection is the backend's hash ring,
  not pymemcache's ``HashClient``.
* **get / get_many** read their reply themselves on the pooled client's connected socket
  (pymemcache's reader is ~5 us of Python per get): one ``recv()``, then
  ``parse_values``; a reply that is not whole and regular in that read goes to the strict
  ``ResponseParser`` (``_read_values``), which reads on. pymemcache connects the socket
  (a client's first command goes through it) and runs every other command.
* **Meta commands** (``mg``/``md``), which pymemcache has no method for, go through its
  public ``raw_command``, which reads one reply line; that is all ``mg <key> t`` and
  ``md <key> C<cas>`` answer. A value with its cas *and* ttl cannot come back in one line,
  so :meth:`MemcachedNode.get_for_update` is ``gets`` then ``mg t`` here (one ``mg v f c t``
  in the asyncio client).
* ``delete_many`` pipelines its deletes through ``Client._misc_cmd`` (pymemcache's own
  ``delete_many`` answers True whatever existed, and the contract needs the count).
* pymemcache closes a client's socket after any error, so a client never goes back to the
  pool with half a reply unread; we also close it on BaseException (KeyboardInterrupt).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pymemcache.client.base import Client
from pymemcache.exceptions import (
    MemcacheClientError,
    MemcacheError,
    MemcacheServerError,
    MemcacheUnexpectedCloseError,
    MemcacheUnknownCommandError,
)

from .._exceptions import BackendUnavailable, CacheTimeout, ProtocolError
from ..core.memcached_protocol import (
    End,
    ErrorReply,
    MemcachedReplyError,
    NodeSettings,
    ProtocolViolation,
    ResponseParser,
    Value,
    check_key,
    parse_values,
)

__all__ = ["MemcachedNode", "gather"]

_T = TypeVar("_T")
_Item = tuple[bytes, int]
# One recv() for a get reply: most arrive whole in it (see MemcachedNode.get).
_READ_SIZE = 65536


def gather(calls: Sequence[Callable[[], _T]]) -> list[_T]:
    """Run ``calls`` one after the other (the asyncio flavour runs them concurrently)."""
    return [call() for call in calls]


class _Serde:
    """Bytes in as they are; out as ``(data, flags)``, so the backend sees collection flags."""

    @staticmethod
    def serialize(key: Any, value: bytes) -> tuple[bytes, int]:
        return value, 0

    @staticmethod
    def deserialize(key: Any, value: bytes, flags: int) -> _Item:
        return value, flags


_SERDE = _Serde()


class MemcachedNode(NodeSettings):
    """A pool of pymemcache clients to one memcached server, with the commands the backend uses."""

    def _setup(self) -> None:
        """Create the pool (its connections open on first use)."""
        # pymemcache connects on first use, so the whole pool can be created up front.
        self._idle: list[Any] = [self._make_client() for _ in range(self.pool_size)]
        self._cond = threading.Condition(threading.Lock())
        self._waiters = 0

    def _make_client(self) -> Any:
        return Client(
            (self.host, self.port),
            serde=_SERDE,
            connect_timeout=self.connect_timeout,
            timeout=self.timeout,
            no_delay=True,
            default_noreply=False,
        )

    # ------------------------------------------------------------------ pool

    def _wait_for_client(self) -> Any:
        deadline = time.monotonic() + self.timeout
        with self._cond:
            # Counted before the pop attempt, so a release between our failed pop and our
            # wait() still sees a waiter and notifies.
            self._waiters += 1
            try:
                while True:
                    try:
                        return self._idle.pop()
                    except IndexError:
                        pass
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise CacheTimeout(
                            f"memcached node {self.address}: no free connection within "
                            f"{self.timeout:g}s (pool_size={self.pool_size})"
                        )
                    self._cond.wait(remaining)
            finally:
                self._waiters -= 1

    def _release(self, client: Any) -> None:
        self._idle.append(client)
        if self._waiters:
            with self._cond:
                self._cond.notify()

    def _translate(self, exc: BaseException, command: str) -> BaseException | None:
        """The stratacache error for a driver error (None: not ours, re-raise it as it is)."""
        where = f"memcached node {self.address}: {command}"
        if isinstance(exc, (TimeoutError, socket.timeout)):
            return CacheTimeout(f"{where}: no reply within {self.timeout:g}s")
        if isinstance(exc, MemcacheUnexpectedCloseError):
            return BackendUnavailable(f"{where}: the server closed the connection")
        if isinstance(exc, OSError):
            return BackendUnavailable(f"{where} failed: {exc}")
        if isinstance(exc, MemcacheUnknownCommandError):
            return MemcachedReplyError("ERROR", str(exc))
        if isinstance(exc, MemcacheClientError):
            return MemcachedReplyError("CLIENT_ERROR", _text(exc))
        if isinstance(exc, MemcacheServerError):
            return MemcachedReplyError("SERVER_ERROR", _text(exc))
        if isinstance(exc, (MemcacheError, ProtocolViolation)):
            return ProtocolError(f"{where}: {exc}")
        return None

    def _run(self, command: str, method: Callable[..., _T], *args: Any) -> _T:
        try:
            client = self._idle.pop()
        except IndexError:
            client = self._wait_for_client()
        try:
            result: _T = method(client, *args)
        except BaseException as exc:
            # Closed before it goes back: its socket may hold the rest of an unread reply.
            client.close()
            self._release(client)
            error = self._translate(exc, command)
            if error is None:
                raise
            raise error from exc
        self._release(client)
        return result

    # ------------------------------------------------------------------ commands

    def get(self, key: bytes) -> _Item | None:
        """``(data, flags)`` or None."""
        # The hot path, inlined (no _run frame): Cache.get must stay within 10% of raw pymemcache.
        try:
            client = self._idle.pop()
        except IndexError:
            client = self._wait_for_client()
        try:
            sock = client.sock
            if sock is None:  # not connected yet: pymemcache connects (once per client)
                item: _Item | None = client.get(key)
            else:
                # The key comes from the backend's wire-key mapping: one safe token.
                sock.sendall(b"get " + key + b"\r\n")
                data = sock.recv(_READ_SIZE)
                found = parse_values(data)
                if found is None:
                    found = self._read_values(sock, data, "get")
                item = found.get(key)
        except BaseException as exc:
            client.close()
            self._release(client)
            error = self._translate(exc, "get")
            if error is None:
                raise
            raise error from exc
        self._idle.append(client)
        if self._waiters:
            with self._cond:
                self._cond.notify()
        return item

    def get_many(self, keys: list[bytes]) -> dict[bytes, _Item]:
        """One ``get k1 k2 ...``: the hits."""
        try:
            client = self._idle.pop()
        except IndexError:
            client = self._wait_for_client()
        try:
            sock = client.sock
            if sock is None:  # not connected yet: pymemcache connects (once per client)
                hits: dict[bytes, _Item] = client.get_many(keys)
            else:
                sock.sendall(b"get " + b" ".join(keys) + b"\r\n")
                data = sock.recv(_READ_SIZE)
                found = parse_values(data)
                hits = self._read_values(sock, data, "get_many") if found is None else found
        except BaseException as exc:
            client.close()
            self._release(client)
            error = self._translate(exc, "get_many")
            if error is None:
                raise
            raise error from exc
        self._release(client)
        return hits

    def _read_values(self, sock: socket.socket, data: bytes, command: str) -> dict[bytes, _Item]:
        """The rest of a get reply that did not arrive whole and regular in one read.

        The strict incremental parser takes over from the first bytes: it reads until
        ``END`` and raises on an error line or any protocol violation.
        """
        parser = ResponseParser(self.max_value_size)
        parser.receive_data(data)
        found: dict[bytes, _Item] = {}
        while True:
            event = parser.next_event()
            if event is None:
                chunk = sock.recv(_READ_SIZE)
                if not chunk:
                    raise MemcacheUnexpectedCloseError()
                parser.receive_data(chunk)
            elif type(event) is Value:
                found[event.key] = event.data, event.flags
            elif type(event) is End:
                break
            elif type(event) is ErrorReply:
                raise event.exception()
            else:
                raise ProtocolViolation(f"unexpected reply to {command}: {event!r}")
        if parser.buffered:
            raise ProtocolViolation(f"{parser.buffered} stray byte(s) after the reply to {command}")
        return found

    def get_for_update(self, key: bytes) -> tuple[bytes, int, int, int] | None:
        """``(data, flags, cas, ttl)``: ``gets`` then ``mg <key> t``; ttl -1 = no expiry."""
        item, cas = self._run("gets", Client.gets, key)
        if item is None:
            return None
        remaining = self.meta_ttl(key)
        data, flags = item
        return data, flags, int(cas), -1 if remaining is None else remaining

    def set(self, key: bytes, data: bytes, exptime: int, flags: int = 0) -> None:
        """``set``; a refusal raises MemcachedReplyError."""
        if not self._run("set", Client.set, key, data, exptime, False, flags):
            raise MemcachedReplyError("SERVER_ERROR", "set not stored")

    def set_many(self, items: list[tuple[bytes, bytes]], exptime: int) -> None:
        """Pipelined ``set`` of every item, then every reply checked."""
        failed = self._run("set_many", Client.set_many, dict(items), exptime, False)
        if failed:
            raise MemcachedReplyError("SERVER_ERROR", f"set not stored for {len(failed)} key(s)")

    def add(self, key: bytes, data: bytes, exptime: int, flags: int = 0) -> bool:
        """``add``: True when stored."""
        return bool(self._run("add", Client.add, key, data, exptime, False, flags))

    def replace(self, key: bytes, data: bytes, exptime: int, flags: int = 0) -> bool:
        """``replace``: True when stored (False when the key is absent)."""
        return bool(self._run("replace", Client.replace, key, data, exptime, False, flags))

    def cas(self, key: bytes, data: bytes, exptime: int, flags: int, cas: int) -> bool:
        """``cas``: True when stored (False when changed or gone since it was read)."""
        return self._run("cas", Client.cas, key, data, cas, exptime, False, flags) is True

    def delete(self, key: bytes) -> bool:
        """``delete``: True when it existed."""
        return bool(self._run("delete", Client.delete, key, False))

    def delete_cas(self, key: bytes, cas: int) -> bool:
        """``md <key> C<cas>``: delete only if unchanged since read; True when deleted."""
        line = self._run("md", Client.raw_command, b"md %s C%d" % (check_key(key), cas))
        return bool(line == b"HD")

    def delete_many(self, keys: list[bytes]) -> int:
        """Pipelined ``delete`` of every key; how many existed."""
        commands = [b"delete " + check_key(key) + b"\r\n" for key in keys]
        lines: list[bytes] = self._run("delete_many", Client._misc_cmd, commands, b"delete", False)
        return sum(line == b"DELETED" for line in lines)

    def incr(self, key: bytes, delta: int) -> int | None:
        """``incr``: the new value, None when the key is absent."""
        result: int | None = self._run("incr", Client.incr, key, delta, False)
        return result

    def decr(self, key: bytes, delta: int) -> int | None:
        """``decr`` (memcached stops at 0): the new value, None when absent."""
        result: int | None = self._run("decr", Client.decr, key, delta, False)
        return result

    def touch(self, key: bytes, exptime: int) -> bool:
        """``touch``: True when the key exists."""
        return bool(self._run("touch", Client.touch, key, exptime, False))

    def meta_ttl(self, key: bytes) -> int | None:
        """``mg <key> t``: seconds left (-1: no expiry), None when absent."""
        line: bytes = self._run("mg", Client.raw_command, b"mg " + check_key(key) + b" t")
        if not line.startswith(b"HD"):
            return None
        for token in line.split()[1:]:
            if token.startswith(b"t"):
                return int(token[1:])
        return -1

    def exists(self, key: bytes) -> bool:
        """``mg <key>`` with no flags: presence without transferring the value."""
        line: bytes = self._run("mg", Client.raw_command, b"mg " + check_key(key))
        return line.startswith(b"HD")

    def flush_all(self) -> None:
        """``flush_all``."""
        self._run("flush_all", Client.flush_all, 0, False)

    def version(self) -> str:
        """``version``: the server's version string."""
        raw: bytes = self._run("version", Client.version)
        return raw.decode("ascii", "replace")

    def stats(self) -> dict[str, str]:
        """``stats``: the general statistics."""
        raw: dict[Any, Any] = self._run("stats", Client.stats)
        return {_str(name): _str(value) for name, value in raw.items()}

    def close(self) -> None:
        """Close every idle client's socket (they reconnect if used again). Idempotent."""
        for client in list(self._idle):
            client.close()

    def __repr__(self) -> str:
        return f"<MemcachedNode {self.address}>"


def _text(exc: BaseException) -> str:
    message = exc.args[0] if exc.args else ""
    return message.decode("ascii", "replace") if isinstance(message, bytes) else str(message)


def _str(value: Any) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
