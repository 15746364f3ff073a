"""The memcached listener: sockets on the server's loop, one :class:`McConnection` each.

:class:`MemcacheListener` is created by :meth:`~..app.Server.start` when ``memcached-port``
is set, and kept in ``server.extra["memcache"]``. It serves database ``memcached-db`` through
an :class:`~.items.ItemStore`, keeps memcached's counters for ``stats``, runs ``flush_all``
with a delay, and sweeps the item side table on the loop.

Pipelining: everything one read brought is parsed and run, then the replies go out in one
``transport.write``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..._exceptions import ConfigurationError
from .commands import COMMANDS, VERSION, Session, process_stats
from .items import EXPIRED, ItemStore
from .protocol import CLOSE, Request, RequestParser

if TYPE_CHECKING:
    from ..app import Server

__all__ = ["McConnection", "MemcacheListener"]

logger = logging.getLogger("stratacache.server")

_SWEEP_INTERVAL = 1.0


def _loading(session: Session, request: Request) -> bytes:
    return b"SERVER_ERROR loading the dataset in memory\r\n"


_LOADING: dict[bytes, Callable[[Session, Request], bytes]] = {b"quit": COMMANDS[b"quit"]}


class McConnection(asyncio.Protocol):
    """One memcached client connection."""

    def __init__(self, listener: MemcacheListener) -> None:
        self.listener = listener
        self.parser = RequestParser(listener.max_item_size)
        self.session = Session(listener)
        self.transport: asyncio.Transport | None = None
        self.address = ""
        self.opened = time.time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass
        peer = transport.get_extra_info("peername")
        self.address = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        listener = self.listener
        listener.connections.add(self)
        listener.counters["total_connections"] += 1
        if len(listener.connections) > listener.server.config.maxclients:
            listener.counters["rejected_connections"] += 1
            transport.write(b"ERROR Too many open connections\r\n")  # type: ignore[attr-defined]  # memcached's
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        listener = self.listener
        listener.counters["bytes_read"] += len(data)
        parser = self.parser
        parser.feed(data)
        session = self.session
        # While the server loads its data (persistence), every command is refused.
        commands = _LOADING if getattr(listener.server, "loading", False) else COMMANDS
        out: list[bytes] = []
        close = False
        while True:
            request = parser.next()
            if request is None:
                break
            if request is CLOSE:
                close = True
                break
            if type(request) is bytes:
                if request:
                    out.append(request)
                continue
            assert isinstance(request, Request)
            handler = commands.get(request.tokens[0], _loading if commands is _LOADING else None)
            if handler is None:
                out.append(b"ERROR\r\n")
                continue
            try:
                reply = handler(session, request)
            except Exception as exc:
                reply = self._internal_error(request, exc)
            if reply:
                out.append(reply)
            if session.quit:
                close = True
                break
        transport = self.transport
        if transport is None:
            return
        if out:
            payload = b"".join(out) if len(out) > 1 else out[0]
            listener.counters["bytes_written"] += len(payload)
            transport.write(payload)
            limit = listener.server.config.client_output_buffer_limit_normal
            if limit and transport.get_write_buffer_size() > limit:
                # A client that sends without reading must not grow our memory: as RESP's.
                logger.warning("closing memcached client %s: output buffer over the limit", self.address)
                transport.abort()
                return
        if close:
            transport.close()

    def _internal_error(self, request: Request, exc: Exception) -> bytes:
        # A bug of ours costs one reply, not the connection: answer, log with the
        # traceback, count it (the tests fail on any).
        self.listener.server.internal_errors += 1
        logger.exception(
            "internal error running memcached %r for %s", request.tokens[0], self.address, exc_info=exc
        )
        return b"SERVER_ERROR internal error\r\n"


class MemcacheListener:
    """The memcached side of a :class:`~..app.Server` (see the module docstring)."""

    def __init__(self, server: Server) -> None:
        config = server.config
        if not 0 <= config.memcached_db < config.databases:
            raise ConfigurationError(
                f"memcached-db: {config.memcached_db} is no database (databases: {config.databases})"
            )
        self.server = server
        self.items = ItemStore(server, config.memcached_db)
        self.max_item_size = config.memcached_max_item_size
        self.counters: Counter[str] = Counter()
        self.connections: set[McConnection] = set()
        self.started = time.time()
        self._servers: list[asyncio.AbstractServer] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def ports(self) -> list[int]:
        """The ports listened on."""
        return [srv.sockets[0].getsockname()[1] for srv in self._servers if srv.sockets]  # type: ignore[attr-defined]

    async def start(self) -> None:
        """Listen on ``memcached-bind`` (default: the server's ``bind``) at ``memcached-port``."""
        config = self.server.config
        loop = asyncio.get_running_loop()
        hosts = config.memcached_bind or config.bind
        try:
            for host in hosts:
                self._servers.append(
                    await loop.create_server(
                        lambda: McConnection(self),
                        host,
                        config.memcached_port,
                        backlog=1024,
                        reuse_address=True,
                    )
                )
        except BaseException:
            for srv in self._servers:
                srv.close()
            self.items.detach()
            raise
        self._sweeper = loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_INTERVAL)
            self.items.sweep()
            self.items.account()

    async def close(self) -> None:
        """Stop listening, close every connection (their pending replies go out first)."""
        for srv in self._servers:
            srv.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        for srv in self._servers:
            await srv.wait_closed()
        self.items.detach()

    # ------------------------------------------------------------------ flush

    def flush_all(self, delay: float | None) -> None:
        """Empty ``memcached-db`` now (``delay`` None) or in ``delay`` seconds; a new flush_all
        replaces a pending one, as memcached keeps one flush time."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if delay is None or delay == EXPIRED:
            self.items.db.flush()
            return
        self._flush_timer = asyncio.get_running_loop().call_later(delay, self._flush_now)

    def _flush_now(self) -> None:
        self._flush_timer = None
        self.items.db.flush()

    # ------------------------------------------------------------------ stats

    def reset_stats(self) -> None:
        """``stats reset``: the counters back to zero (connections totals kept, as memcached)."""
        kept = {name: self.counters[name] for name in ("total_connections",)}
        self.counters.clear()
        self.counters.update(kept)

    def general_stats(self) -> dict[str, Any]:
        """``stats``: memcached's general statistics (the ones that apply here)."""
        counters = self.counters
        values = process_stats(self.started, counters)
        values.update(
            {
                "max_connections": self.server.config.maxclients,
                "curr_connections": len(self.connections),
                "total_connections": counters["total_connections"],
                "rejected_connections": counters["rejected_connections"],
                "connection_structures": len(self.connections),
            }
        )
        for name in (
            "cmd_get",
            "cmd_set",
            "cmd_flush",
            "cmd_touch",
            "cmd_meta",
            "get_hits",
            "get_misses",
            "get_expired",
            "get_flushed",
            "delete_misses",
            "delete_hits",
            "incr_misses",
            "incr_hits",
            "decr_misses",
            "decr_hits",
            "cas_misses",
            "cas_hits",
            "cas_badval",
            "touch_hits",
            "touch_misses",
            "auth_cmds",
            "auth_errors",
            "bytes_read",
            "bytes_written",
        ):
            values[name] = counters[name]
        values["limit_maxbytes"] = self.server.config.maxmemory
        values["threads"] = 1
        items = self.items.stats()
        values.update(
            {
                "bytes": items["bytes"],
                "curr_items": items["curr_items"],
                "total_items": counters["cmd_set"],
                "evictions": items["evictions"],
                "reclaimed": items["reclaimed"],
            }
        )
        return values

    def settings_stats(self) -> dict[str, Any]:
        """``stats settings``: the settings that mean something here."""
        config = self.server.config
        hosts = config.memcached_bind or config.bind
        return {
            "maxbytes": config.maxmemory,
            "maxconns": config.maxclients,
            "tcpport": config.memcached_port,
            "udpport": 0,
            "inter": ",".join(hosts),
            "verbosity": 0,
            "evictions": "off" if config.maxmemory_policy == "noeviction" else "on",
            "cas_enabled": "yes",
            "binding_protocol": "ascii",
            "item_size_max": self.max_item_size,
            "flush_enabled": "yes",
            "num_threads": 1,
            "stratacache_version": VERSION,
            "memcached_db": config.memcached_db,
        }

    def items_stats(self) -> dict[str, Any]:
        """``stats items``: one pseudo slab class holding every item."""
        items = self.items.stats()
        if not items["curr_items"]:
            return {}
        return {
            "items:1:number": items["curr_items"],
            "items:1:age": int(time.time() - self.started),
            "items:1:evicted": items["evictions"],
            "items:1:reclaimed": items["reclaimed"],
            "items:1:outofmemory": 0,
        }

    def slabs_stats(self) -> dict[str, Any]:
        """``stats slabs``: one pseudo slab class (the engine has no slabs)."""
        items = self.items.stats()
        values: dict[str, Any] = {}
        if items["curr_items"]:
            values = {
                "1:chunk_size": self.max_item_size,
                "1:used_chunks": items["curr_items"],
                "1:get_hits": self.counters["get_hits"],
                "1:cmd_set": self.counters["cmd_set"],
            }
        values["active_slabs"] = 1 if items["curr_items"] else 0
        values["total_malloced"] = self.server.pool.used
        return values

    def conns_stats(self) -> dict[str, Any]:
        """``stats conns``: each connection's address and age."""
        values: dict[str, Any] = {}
        now = time.time()
        for index, conn in enumerate(sorted(self.connections, key=lambda c: c.opened)):
            values[f"{index}:addr"] = f"tcp:{conn.address}"
            values[f"{index}:state"] = "conn_parse_cmd"
            values[f"{index}:secs_since_open"] = int(now - conn.opened)
        return values
