"""One client connection: bytes in, commands run, replies out (an asyncio protocol).

The connection owns the per-client state Redis keeps (id, name, selected database, RESP
version, user, MULTI queue, subscriptions, tracking) and the one place where a command is
run: :meth:`Client.execute`, which checks, in Redis's order, that the command exists, its
arity, authentication, the MULTI queue, the subscribe context and maxmemory, then calls the
handler and encodes its reply.

Pipelining: everything a read brought is parsed and run before the replies of the batch are
written with one ``transport.write`` (a pipeline of 16 GETs is one write, not 16).

A handler may answer later (BLPOP and friends): it returns a :class:`Deferred`; the
connection stops reading commands from its buffer until the deferred reply is written, so
replies stay in order, then goes on with what was buffered.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .commands import COMMANDS, Command
from .errors import NOAUTH, NOT_ALLOWED_IN_SUBSCRIBE, unknown_command, wrong_arity
from .resp import ErrorReply, ProtocolViolation, encode_into, make_parser

if TYPE_CHECKING:
    from .app import Server
    from .keyspace import Database

__all__ = ["Client", "Deferred"]

logger = logging.getLogger("stratacache.server")

_ids = itertools.count(1)

# Commands a client in MULTI runs at once instead of queueing.
_MULTI_NOW = frozenset({b"exec", b"discard", b"multi", b"watch", b"quit", b"reset"})
# Commands allowed in a RESP2 connection that has subscriptions.
_SUBSCRIBED_OK = frozenset(
    {
        b"subscribe",
        b"psubscribe",
        b"ssubscribe",
        b"unsubscribe",
        b"punsubscribe",
        b"sunsubscribe",
        b"ping",
        b"quit",
        b"reset",
    }
)


class Deferred:
    """A reply that comes later: a handler returns one, and whoever produces the reply calls
    :meth:`resolve` (once; later calls are ignored). ``on_cancel`` runs if the client goes
    away first (to unregister a blocked client)."""

    __slots__ = ("_callback", "done", "on_cancel", "reply")

    def __init__(self, on_cancel: Callable[[], None] | None = None) -> None:
        self._callback: Callable[[Any], None] | None = None
        self.done = False
        self.reply: Any = None
        self.on_cancel = on_cancel

    def resolve(self, reply: Any) -> None:
        """Deliver ``reply`` (a reply object) to the waiting client."""
        if self.done:
            return
        self.done = True
        self.reply = reply
        if self._callback is not None:
            self._callback(reply)

    def cancel(self) -> None:
        """The client is gone: nobody waits any more."""
        if not self.done:
            self.done = True
            if self.on_cancel is not None:
                self.on_cancel()


class Client(asyncio.Protocol):
    """A connection and its client state (see the module docstring)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.id = next(_ids)
        self.name = b""
        self.lib_name = b""
        self.lib_ver = b""
        self.db: Database = server.databases[0]
        self.resp3 = False
        self.user: str | None = None if server.auth_required else "default"
        self.transport: asyncio.Transport | None = None
        self.parser = make_parser(server.config.proto_max_bulk_len, lambda: self.user is None)
        self.address = ""
        self.laddress = ""
        self.created = time.time()
        self.last_interaction = time.monotonic()
        self.last_command = b"NULL"
        self.closing = False
        self.close_after_reply = False
        # MULTI: the queued commands (None outside MULTI), and whether EXEC must abort.
        self.multi: list[list[bytes]] | None = None
        self.multi_error = False
        # WATCH: (db index, key) pairs, and whether one of them changed.
        self.watched: set[tuple[int, str]] = set()
        self.dirty_cas = False
        # Pub/sub: channels and patterns this client is subscribed to.
        self.channels: set[bytes] = set()
        self.patterns: set[bytes] = set()
        self.shard_channels: set[bytes] = set()
        # A blocked command's deferred reply, while one is pending.
        self.blocked: Deferred | None = None
        self.paused = False
        self._out: list[bytes] | None = None
        # Free-form per-feature state (tracking, ...), owned by the feature's module.
        self.extra: dict[str, Any] = {}

    # ------------------------------------------------------------- protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.address = _format_address(peer)
        self.laddress = _format_address(sock)
        self.server.client_connected(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.blocked is not None:
            self.blocked.cancel()
            self.blocked = None
        self.server.client_disconnected(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.last_interaction = time.monotonic()
        self.parser.feed(data)
        if not self.paused:
            self._process()

    def _process(self) -> None:
        """Run every whole command in the buffer, then write the batch of replies."""
        out: list[bytes] = []
        self._out = out
        parser = self.parser
        resp3 = self.resp3
        try:
            while not self.closing:
                try:
                    args = parser.next()
                except ProtocolViolation as exc:
                    self.server.protocol_error(self, exc.text)
                    out.append(b"-ERR %b\r\n" % exc.text.encode())
                    self.close_after_reply = True
                    break
                if args is None:
                    break
                if not args:
                    continue
                reply = self.execute(args)
                if type(reply) is Deferred:
                    if reply.done:
                        reply = reply.reply
                    else:
                        self._wait(reply)
                        break
                encode_into(reply, out, resp3)
                if self.close_after_reply:
                    break
                resp3 = self.resp3  # HELLO may switch it mid-batch
        finally:
            self._out = None
            if out:
                self.write(b"".join(out) if len(out) > 1 else out[0])
            if self.close_after_reply and self.transport is not None:
                self.transport.close()
                self.closing = True
            elif not self.paused:
                self.server.check_query_buffer(self)

    def _wait(self, deferred: Deferred) -> None:
        """Stop reading commands until ``deferred`` has its reply."""
        self.paused = True
        self.blocked = deferred

        def deliver(reply: Any) -> None:
            self.blocked = None
            self.paused = False
            if self.transport is None:
                return
            out: list[bytes] = []
            encode_into(reply, out, self.resp3)
            self.write(b"".join(out))
            self._process()  # what the client sent meanwhile

        deferred._callback = deliver

    def write(self, data: bytes) -> None:
        """Send bytes now (replies of a batch, pushes), enforcing the output buffer limit."""
        transport = self.transport
        if transport is None or self.closing:
            return
        transport.write(data)
        self.server.check_output_buffer(self)

    def push(self, reply: Any) -> None:
        """An out-of-band message (pub/sub, invalidation): appended to the current batch of
        replies when a command of this client is running, else written at once."""
        out = self._out
        if out is not None:
            encode_into(reply, out, self.resp3)
        else:
            data: list[bytes] = []
            encode_into(reply, data, self.resp3)
            self.write(b"".join(data))

    def close(self) -> None:
        """Close the connection (CLIENT KILL, limits, SHUTDOWN)."""
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    # -------------------------------------------------------------- commands

    def execute(self, args: list[bytes]) -> Any:
        """Run one command and return its reply object (errors as ErrorReply)."""
        name = args[0].lower()
        cmd = COMMANDS.get(name)
        if cmd is None:
            if self.multi is not None:
                self.multi_error = True
            return unknown_command(args[0], args)
        arity = cmd.arity
        if (arity > 0 and len(args) != arity) or len(args) < -arity:
            if self.multi is not None:
                self.multi_error = True
            return wrong_arity(cmd.name)
        if self.user is None and not cmd.no_auth:
            return ErrorReply(NOAUTH)
        if self.multi is not None and name not in _MULTI_NOW:
            self.multi.append(args)
            return "QUEUED"
        if (
            (self.channels or self.patterns or self.shard_channels)
            and not self.resp3
            and (name not in _SUBSCRIBED_OK)
        ):
            return ErrorReply(NOT_ALLOWED_IN_SUBSCRIBE.format(cmd.name))
        return self.call(cmd, args)

    def call(self, cmd: Command, args: list[bytes]) -> Any:
        """Run ``cmd`` after the connection's checks (EXEC and scripts come here too)."""
        server = self.server
        denied = server.check_command(self, cmd, args)
        if denied is not None:
            cmd.failed += 1
            return denied
        self.last_command = args[0]
        cmd.calls += 1
        server.commands_processed += 1
        try:
            return cmd.handler(self, args)
        except ErrorReply as exc:
            cmd.failed += 1
            return exc
        except Exception as exc:
            # A bug of ours must cost one reply, not the connection or the server: answer,
            # log it with its traceback, count it (the tests fail on any).
            cmd.failed += 1
            server.internal_errors += 1
            logger.exception("internal error running %r for client id=%d", cmd.name, self.id)
            return ErrorReply(f"ERR internal error running '{cmd.name}': {type(exc).__name__}")


def _format_address(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address or "")
