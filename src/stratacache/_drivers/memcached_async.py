"""One memcached server, asyncio flavour: a small pooled client on the sans-IO protocol.

The pair of ``memcached_sync.py`` (pymemcache); both expose the same ``MemcachedNode`` API,
so the Memcached backend is written once (async) and its sync twin generated.

Why our own client rather than aiomcache or emcache (numbers in docs/memcached.md): neither
can send meta commands, and ``ttl()`` needs ``mg <key> t`` (memcached 1.6 reports a key's
remaining life only there); aiomcache also has no operation timeout and, when a caller is
cancelled mid-reply, puts the half-read connection back in its pool, so the next caller
reads the previous caller's reply; emcache routes keys with its own hashing and raises
on a miss for touch/delete. Ours is ~200 lines over :mod:`stratacache.core.memcached_protocol`,
which holds all the parsing and is tested on its own.

Each connection carries one request at a time (a pipeline of commands counts as one): the
reply is matched by counting terminal events, and a connection whose request did not
finish normally - timeout, cancellation, protocol error - is closed, never reused, because
its next bytes would belong to the abandoned reply.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from .._exceptions import BackendUnavailable, CacheTimeout, ProtocolError
from ..core.memcached_protocol import (
    End,
    ErrorReply,
    Event,
    Line,
    MemcachedReplyError,
    MetaValue,
    NodeSettings,
    ProtocolViolation,
    ResponseParser,
    Stat,
    Value,
    encode_arith,
    encode_delete,
    encode_meta,
    encode_retrieval,
    encode_storage,
    encode_touch,
)
from .loops import LoopBinding

__all__ = ["AsyncMemcachedNode", "gather"]

_T = TypeVar("_T")
_Item = tuple[bytes, int]


async def gather(calls: Sequence[Callable[[], Awaitable[_T]]]) -> list[_T]:
    """Run ``calls`` concurrently (one request per node at once); results in order."""
    if len(calls) == 1:
        return [await calls[0]()]
    return list(await asyncio.gather(*(call() for call in calls)))


class _Connection(asyncio.Protocol):
    """One TCP connection: feeds the parser, completes the waiting request."""

    def __init__(self, max_value_size: int) -> None:
        self.parser = ResponseParser(max_value_size + 1024)
        self.transport: asyncio.Transport | None = None
        self.broken = False
        self.waiter: asyncio.Future[list[Event]] | None = None
        self.events: list[Event] = []
        self.expected = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        parser.receive_data(data)
        try:
            while (event := parser.next_event()) is not None:
                waiter = self.waiter
                if waiter is None:
                    raise ProtocolViolation(f"reply with no request outstanding: {event!r}")
                self.events.append(event)
                if type(event) is not Value and type(event) is not Stat:
                    self.expected -= 1
                    if self.expected == 0:
                        self.waiter = None
                        if not waiter.done():
                            waiter.set_result(self.events)
                        self.events = []
        except ProtocolViolation as exc:
            self.fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(exc or ConnectionResetError("memcached closed the connection"))

    def fail(self, exc: BaseException) -> None:
        """Mark broken, fail the waiting request, close the socket."""
        self.broken = True
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def _timed_out(self) -> None:
        self.fail(TimeoutError("no reply within the timeout"))

    async def request(self, data: bytes, replies: int, timeout: float) -> list[Event]:
        """Send ``data`` and wait for ``replies`` terminal events."""
        if self.broken or self.transport is None:
            raise ConnectionResetError("connection already closed")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[list[Event]] = loop.create_future()
        self.waiter = waiter
        self.expected = replies
        self.events = []
        self.transport.write(data)
        # A bare call_later is lighter than asyncio.timeout() on every request.
        handle = loop.call_later(timeout, self._timed_out)
        try:
            return await waiter
        finally:
            handle.cancel()


class AsyncMemcachedNode(NodeSettings):
    """A pool of connections to one memcached server, with the commands the backend uses.

    Values come back as ``(data, flags)``; connection problems raise
    :class:`~stratacache.BackendUnavailable` and timeouts :class:`~stratacache.CacheTimeout`
    (both naming the node), server error lines raise
    :class:`~stratacache.core.memcached_protocol.MemcachedReplyError`.
    """

    def _setup(self) -> None:
        """Create the pool (its connections open on first use)."""
        self._idle: list[_Connection] = []
        self._waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self._size = 0
        self._binding = LoopBinding(f"memcached node {self.address}")
        self._closed = False

    # ------------------------------------------------------------------ pool

    async def _acquire(self) -> _Connection:
        # Connections belong to one event loop: another loop may take the pool over only
        # when it holds no connection (never used, or every one closed); else CacheError.
        loop = self._binding.check(idle=self._size == 0)
        self._closed = False  # a closed node reconnects if used again (the facade forbids it anyway)
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.broken:
                return conn
            self._size -= 1
        while True:
            if self._size < self.pool_size:
                self._size += 1
                try:
                    return await self._connect(loop)
                except BaseException:
                    self._size -= 1
                    self._wake_one(None)
                    raise
            waiter: asyncio.Future[_Connection | None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                conn_or_none = await asyncio.wait_for(waiter, self.timeout)
            except TimeoutError as exc:
                raise CacheTimeout(
                    f"memcached node {self.address}: no free connection within {self.timeout:g}s "
                    f"(pool_size={self.pool_size})"
                ) from exc
            except BaseException:
                # Handed a connection just as we gave up: give it to someone else.
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    self._release(waiter.result())  # type: ignore[arg-type]
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            if conn_or_none is not None and not conn_or_none.broken:
                return conn_or_none
            if conn_or_none is not None:
                self._size -= 1
            # None: a slot was freed (a connection was discarded); loop to connect.

    def _wake_one(self, conn: _Connection | None) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    def _release(self, conn: _Connection) -> None:
        if conn.broken or self._closed:
            self._discard(conn)
        elif not self._wake_one(conn):
            self._idle.append(conn)

    def _discard(self, conn: _Connection) -> None:
        if conn.transport is not None:
            conn.transport.close()
        conn.broken = True
        self._size -= 1
        self._wake_one(None)

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self.max_value_size), self.host, self.port),
                self.connect_timeout,
            )
        except TimeoutError as exc:
            raise BackendUnavailable(
                f"memcached node {self.address}: connect timed out after {self.connect_timeout:g}s"
            ) from exc
        except OSError as exc:
            raise BackendUnavailable(f"memcached node {self.address}: cannot connect: {exc}") from exc
        return conn

    async def _request(self, data: bytes, replies: int, command: str) -> list[Event]:
        conn = await self._acquire()
        done = False
        try:
            events = await conn.request(data, replies, self.timeout)
            done = True
        except TimeoutError as exc:
            raise CacheTimeout(
                f"memcached node {self.address}: no reply to {command} within {self.timeout:g}s"
            ) from exc
        except ProtocolViolation as exc:
            raise ProtocolError(f"memcached node {self.address}: {command}: {exc}") from exc
        except OSError as exc:
            raise BackendUnavailable(f"memcached node {self.address}: {command} failed: {exc}") from exc
        finally:
            if done:
                self._release(conn)
            else:  # timeout, error, or our caller was cancelled: the reply may still come
                self._discard(conn)
        return events

    async def _one(self, data: bytes, command: str) -> Event:
        """One command with a single-line reply; server errors raised."""
        events = await self._request(data, 1, command)
        event = events[-1]
        if type(event) is ErrorReply:
            raise event.exception()
        return event

    # ------------------------------------------------------------------ commands

    async def get(self, key: bytes) -> _Item | None:
        """``(data, flags)`` or None."""
        events = await self._request(b"get " + key + b"\r\n", 1, "get")
        first = events[0]
        if type(first) is Value:
            return first.data, first.flags
        if type(first) is ErrorReply:
            raise first.exception()
        return None

    async def get_many(self, keys: list[bytes]) -> dict[bytes, _Item]:
        """One ``get k1 k2 ...``: the hits."""
        events = await self._request(encode_retrieval(b"get", keys), 1, "get_many")
        found: dict[bytes, _Item] = {}
        for event in events:
            if type(event) is Value:
                found[event.key] = (event.data, event.flags)
            elif type(event) is ErrorReply:
                raise event.exception()
        return found

    async def get_for_update(self, key: bytes) -> tuple[bytes, int, int, int] | None:
        """``(data, flags, cas, ttl)`` in one ``mg <key> v f c t``; ttl -1 = no expiry."""
        event = await self._one(encode_meta(b"mg", key, (b"v", b"f", b"c", b"t")), "mg")
        if type(event) is not MetaValue or event.status == b"EN":
            return None
        if event.data is None:
            raise ProtocolError(f"memcached node {self.address}: mg v answered without a value")
        return event.data, int(event.flag(b"f") or 0), int(event.flag(b"c") or 0), int(event.flag(b"t") or -1)

    async def set(self, key: bytes, data: bytes, exptime: int, flags: int = 0) -> None:
        """``set``; a refusal raises MemcachedReplyError."""
        event = await self._one(encode_storage(b"set", key, data, flags, exptime), "set")
        if type(event) is not Line or event.text != b"STORED":
            raise MemcachedReplyError("SERVER_ERROR", f"set not stored: {event!r}")

    async def set_many(self, items: list[tuple[bytes, bytes]], exptime: int) -> None:
        """Pipelined ``set`` of every item, then every reply checked."""
        payload = b"".join(encode_storage(b"set", key, data, 0, exptime) for key, data in items)
        for event in await self._request(payload, len(items), "set_many"):
            if type(event) is ErrorReply:
                raise event.exception()
            if type(event) is not Line or event.text != b"STORED":
                raise MemcachedReplyError("SERVER_ERROR", f"set not stored: {event!r}")

    async def add(self, key: bytes, data: bytes, exptime: int, flags: int = 0) -> bool:
        """``add``: True when stored."""
        event = await self._one(encode_storage(b"add", key, data, flags, exptime), "add")
        return type(event) is Line and event.text == b"STORED"

    async def replace(self, key: bytes, data: bytes, exptime: int, flags: int = 0) -> bool:
        """``replace``: True when stored (False when the key is absent)."""
        event = await self._one(encode_storage(b"replace", key, data, flags, exptime), "replace")
        return type(event) is Line and event.text == b"STORED"

    async def cas(self, key: bytes, data: bytes, exptime: int, flags: int, cas: int) -> bool:
        """``cas``: True when stored (False when changed or gone since it was read)."""
        event = await self._one(encode_storage(b"cas", key, data, flags, exptime, cas=cas), "cas")
        return type(event) is Line and event.text == b"STORED"

    async def delete(self, key: bytes) -> bool:
        """``delete``: True when it existed."""
        event = await self._one(encode_delete(key), "delete")
        return type(event) is Line and event.text == b"DELETED"

    async def delete_cas(self, key: bytes, cas: int) -> bool:
        """``md <key> C<cas>``: delete only if unchanged since read; True when deleted."""
        event = await self._one(encode_meta(b"md", key, (b"C%d" % cas,)), "md")
        return type(event) is MetaValue and event.status == b"HD"

    async def delete_many(self, keys: list[bytes]) -> int:
        """Pipelined ``delete`` of every key; how many existed."""
        payload = b"".join(encode_delete(key) for key in keys)
        count = 0
        for event in await self._request(payload, len(keys), "delete_many"):
            if type(event) is ErrorReply:
                raise event.exception()
            count += type(event) is Line and event.text == b"DELETED"
        return count

    async def incr(self, key: bytes, delta: int) -> int | None:
        """``incr``: the new value, None when the key is absent."""
        return self._number(await self._one(encode_arith(b"incr", key, delta), "incr"))

    async def decr(self, key: bytes, delta: int) -> int | None:
        """``decr`` (memcached stops at 0): the new value, None when absent."""
        return self._number(await self._one(encode_arith(b"decr", key, delta), "decr"))

    def _number(self, event: Event) -> int | None:
        if type(event) is Line:
            if event.text == b"NOT_FOUND":
                return None
            if event.text.isdigit():
                return int(event.text)
        raise ProtocolError(f"memcached node {self.address}: unexpected reply to incr/decr: {event!r}")

    async def touch(self, key: bytes, exptime: int) -> bool:
        """``touch``: True when the key exists."""
        event = await self._one(encode_touch(key, exptime), "touch")
        return type(event) is Line and event.text == b"TOUCHED"

    async def meta_ttl(self, key: bytes) -> int | None:
        """``mg <key> t``: seconds left (-1: no expiry), None when absent."""
        event = await self._one(encode_meta(b"mg", key, (b"t",)), "mg")
        if type(event) is not MetaValue or event.status != b"HD":
            return None
        return int(event.flag(b"t") or -1)

    async def exists(self, key: bytes) -> bool:
        """``mg <key>`` with no flags: presence without transferring the value."""
        event = await self._one(encode_meta(b"mg", key), "mg")
        return type(event) is MetaValue and event.status == b"HD"

    async def flush_all(self) -> None:
        """``flush_all``."""
        await self._one(b"flush_all\r\n", "flush_all")

    async def version(self) -> str:
        """``version``: the server's version string."""
        event = await self._one(b"version\r\n", "version")
        text = event.text if type(event) is Line else b""
        return text.removeprefix(b"VERSION ").decode("ascii", "replace")

    async def stats(self) -> dict[str, str]:
        """``stats``: the general statistics."""
        events = await self._request(b"stats\r\n", 1, "stats")
        if type(events[-1]) is not End:
            raise ProtocolError(f"memcached node {self.address}: unexpected reply to stats")
        return {event.name: event.value for event in events if type(event) is Stat}

    async def close(self) -> None:
        """Close every idle connection (in-use ones close when returned). Idempotent."""
        if self._size and self._binding.loop is not asyncio.get_running_loop():
            if self._binding.loop is None or not self._binding.loop.is_closed():
                raise self._binding.error()
            # Its loop is gone, and its transports with it: nothing left to close cleanly.
            self._idle = []
            self._size = 0
            self._closed = True
            return
        self._closed = True
        for conn in self._idle:
            if conn.transport is not None:
                conn.transport.close()
        self._size -= len(self._idle)
        self._idle = []

    def __repr__(self) -> str:
        return f"<AsyncMemcachedNode {self.address}>"
