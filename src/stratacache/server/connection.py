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
from time import monotonic
from typing import TYPE_CHECKING, Any

from .admin.latency import SAMPLE_MASK, timed
from .commands import COMMANDS, Command
from .errors import NOAUTH, NOT_ALLOWED_IN_SUBSCRIBE, OOM, unknown_command, wrong_arity
from .fastparse import make_batch_parser
from .resp import NULL_ARRAY, ErrorReply, ProtocolViolation, encode_into, error_line

if TYPE_CHECKING:
    from .app import Server
    from .cluster import ClusterState
    from .keyspace import Database

__all__ = ["Client", "Deferred"]

logger = logging.getLogger("stratacache.server")

_ids = itertools.count(1)

LOADING = "LOADING Redis is loading the dataset in memory"

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


# The command groups whose commands only read and write keys: they cannot start MULTI,
# subscribe, authenticate, switch the protocol or close the connection, so a run of them
# keeps a client on the fast path of Client._process.
_NEUTRAL_GROUPS = frozenset(
    {
        "string",
        "list",
        "hash",
        "set",
        "sorted-set",
        "sorted_set",
        "zset",
        "bitmap",
        "hyperloglog",
        "geo",
        "stream",
    }
)
# The fast path's table: a command's name as clients send it (b"GET", b"get", ...) -> its
# Command, for commands of _NEUTRAL_GROUPS; filled by _learn as names are seen.
_FAST: dict[bytes, Command] = {}
_FAST_MAX = 4096  # spellings remembered (a client sending random case must not grow it forever)
# Client._plain's answer when denyoom commands must take the full path (noeviction).
_CHECK_OOM = 1


def _learn(name: bytes, cluster: ClusterState | None = None) -> None:
    """Remember how a client spelled a neutral command, for the fast path (in cluster mode,
    in the cluster's own table, as a command that checks its slots first)."""
    cmd = COMMANDS.get(name.lower())
    table = _FAST if cluster is None else cluster.fast
    if cmd is not None and cmd.group in _NEUTRAL_GROUPS and len(table) < _FAST_MAX:
        if cluster is None:
            _FAST[name] = cmd
        else:
            cluster.learn_fast(name, cmd)


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


def answer_now(reply: Any) -> Any:
    """``reply``, or for a :class:`Deferred` its reply now: where a command may not block
    (EXEC, scripts), a blocking command is told so and answers at once; if one still defers,
    it is unregistered and gets what a timed-out block answers (the null array)."""
    if type(reply) is not Deferred:
        return reply
    if reply.done:
        return reply.reply
    reply.cancel()
    return NULL_ARRAY


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
        self.parser: Any = make_batch_parser(server.config.proto_max_bulk_len, lambda: self.user is None)
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
        self.last_interaction = monotonic()
        self.parser.feed(data)
        if not self.paused:
            self._process()

    def _process(self) -> None:
        """Run every whole command in the buffer, then write the batch of replies.

        The fast path: for a plain client (see :meth:`_plain`) a command of a data family
        (see :data:`_NEUTRAL_GROUPS`) with the right arity runs here directly, which is what
        :meth:`execute` then :meth:`call` would do for it (their checks all pass for such a
        client, and such a command cannot change that), with the counters batched and the
        common replies encoded inline. Anything else goes through :meth:`execute`.
        """
        out: list[bytes] = []
        self._out = out
        append = out.append
        parser_next = self.parser.next
        # The parser's checked commands (see fastparse.BatchParser.ready): popped here
        # without a call; the same list for this whole run (it is replaced only on a read).
        ready: list[list[bytes]] = getattr(self.parser, "ready", None) or []
        server = self.server
        fast = _FAST if server.cluster is None else server.cluster.fast
        resp3 = self.resp3
        plain = self._plain()
        processed = 0  # commands of the fast path not yet added to the server's counter
        last = None
        aof = server.aof  # the append-only log (None: appendonly no, nothing to pay)
        try:
            while True:
                try:
                    args = ready.pop() if ready else parser_next()
                except ProtocolViolation as exc:
                    self.server.protocol_error(self, exc.text)
                    append(b"-ERR %b\r\n" % error_line(exc.text))
                    self.close_after_reply = True
                    break
                if args is None:
                    break
                if not args:
                    continue
                cmd = fast.get(args[0]) if plain else None
                if cmd is not None:
                    arity = cmd.arity
                    if (len(args) == arity or (arity < 0 and len(args) >= -arity)) and not (
                        cmd.denyoom and plain is _CHECK_OOM
                    ):
                        last = args[0]
                        cmd.calls += 1
                        processed += 1
                        try:
                            # 1 call in SAMPLE_EVERY is timed (admin/latency.py): no clock read per command.
                            if cmd.calls & SAMPLE_MASK != 1:
                                reply = cmd.handler(self, args) if aof is None else aof.run(cmd, self, args)
                            else:
                                reply = timed(cmd, self, args, aof)
                        except ErrorReply as exc:
                            cmd.failed += 1
                            reply = exc
                        except Exception as exc:
                            reply = self._internal_error(cmd, exc)
                        kind = type(reply)
                        if kind is bytes:
                            append(b"$%d\r\n%b\r\n" % (len(reply), reply))
                        elif kind is str and reply == "OK":
                            append(b"+OK\r\n")
                        elif reply is None:
                            append(b"_\r\n" if resp3 else b"$-1\r\n")
                        elif kind is int:
                            append(b":%d\r\n" % reply)
                        elif kind is Deferred:
                            if reply.done:
                                encode_into(reply.reply, out, resp3)
                            else:
                                self._wait(reply)
                                break
                        else:
                            encode_into(reply, out, resp3)
                        continue
                if processed:
                    server.commands_processed += processed
                    processed = 0
                reply = self.execute(args)
                if type(reply) is Deferred:
                    if reply.done:
                        reply = reply.reply
                    else:
                        self._wait(reply)
                        break
                # Read after the command: HELLO's own reply is in the protocol it selects.
                resp3 = self.resp3
                encode_into(reply, out, resp3)
                if self.close_after_reply or self.closing:
                    break
                plain = self._plain()
                if plain is None and self.user is None and ready:
                    # RESET: what this read still holds was parsed as for a logged-in client.
                    self.parser.lost_authentication()
                if args[0] not in fast:
                    _learn(args[0], server.cluster)
        finally:
            self._out = None
            if processed:
                server.commands_processed += processed
            if last is not None:
                self.last_command = last
            if out:
                data = b"".join(out) if len(out) > 1 else out[0]
                # appendfsync always: replies wait for the group fsync of their writes.
                aof = server.aof
                if aof is None or not aof.hold(self, data):
                    self.write(data)
            if self.close_after_reply and self.transport is not None:
                self.transport.close()
                self.closing = True
            elif not self.paused:
                self.server.check_query_buffer(self)

    def _plain(self) -> Any:
        """Whether the fast path of :meth:`_process` may run this client's commands: a
        truthy value when :meth:`execute`'s checks cannot refuse a known command of the
        right arity (no MULTI, authenticated as the default user, no subscriptions, not
        closing), :data:`_CHECK_OOM` when denyoom commands must still take the full path
        (maxmemory-policy noeviction), None otherwise."""
        if (
            self.multi is not None
            or self.user != "default"
            or self.channels
            or self.patterns
            or self.shard_channels
            or self.closing
            or self.server.loading
        ):
            return None
        return _CHECK_OOM if self.server.config.maxmemory_policy == "noeviction" else True

    def _internal_error(self, cmd: Command, exc: Exception) -> ErrorReply:
        # A bug of ours must cost one reply, not the connection or the server: answer, log
        # it with its traceback, count it (the tests fail on any).
        cmd.failed += 1
        self.server.internal_errors += 1
        logger.exception("internal error running %r for client id=%d", cmd.name, self.id, exc_info=exc)
        return ErrorReply(f"ERR internal error running '{cmd.name}': {type(exc).__name__}")

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
            data = b"".join(out)
            aof = self.server.aof
            if aof is not None and aof.hold(self, data):
                return  # written, and what was sent meanwhile run, once durable
            self.write(data)
            self._process()  # what the client sent meanwhile

        deferred._callback = deliver

    def write(self, data: bytes) -> None:
        """Send bytes now (replies of a batch, pushes), enforcing the output buffer limit."""
        transport = self.transport
        if transport is None or self.closing:
            return
        transport.write(data)
        if transport.get_write_buffer_size():
            # Only output the kernel did not take can exceed a limit.
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
            if self.multi is not None or name == b"exec":
                return self.multi_refused(name, wrong_arity(cmd.name))
            return wrong_arity(cmd.name)
        if self.user is None and not cmd.no_auth:
            return ErrorReply(NOAUTH)
        if self.server.loading and "loading" not in cmd.flags:
            return ErrorReply(LOADING)
        cluster = self.server.cluster
        if cluster is not None:
            redirect = cluster.redirect(self, cmd, args)
            if redirect is not None:
                if name == b"exec":
                    # Redis discards the transaction and answers the redirect itself.
                    self.multi = None
                    self.multi_error = False
                    self.server.unwatch(self)
                elif self.multi is not None:
                    self.multi_error = True  # EXEC aborts, as for any refused command
                return redirect
        if self.multi is not None and name not in _MULTI_NOW:
            return self.queue(cmd, args)
        if (
            (self.channels or self.patterns or self.shard_channels)
            and not self.resp3
            and (name not in _SUBSCRIBED_OK)
        ):
            error = ErrorReply(NOT_ALLOWED_IN_SUBSCRIBE.format(_full_name(cmd, args)))
            return error if self.multi is None and name != b"exec" else self.multi_refused(name, error)
        return self.call(cmd, args)

    def multi_refused(self, name: bytes, error: ErrorReply) -> ErrorReply:
        """A command refused in MULTI flags the transaction; a refused EXEC discards it and
        answers why (Redis's ``execCommandAbort``, which answers so even outside MULTI)."""
        self.multi_error = True
        if name != b"exec":
            return error
        self.multi = None
        self.multi_error = False
        self.server.unwatch(self)
        reason = error.message.removeprefix("ERR ")
        return ErrorReply(f"EXECABORT Transaction discarded because of: {reason}")

    def queue(self, cmd: Command, args: list[bytes]) -> Any:
        """MULTI: queue ``args`` after the checks Redis applies at queue time (users' rights,
        maxmemory, the subscribe context, ``no_multi``); a refusal flags the transaction."""
        server = self.server
        denied = server.check_command(self, cmd, args)
        if denied is None:
            config = server.config
            if config.maxmemory_policy == "noeviction" and server.pool.used >= config.maxmemory:
                # Queueing takes memory: over maxmemory Redis refuses every command in MULTI.
                denied = ErrorReply(OOM)
            elif (
                (self.channels or self.patterns or self.shard_channels)
                and not self.resp3
                and args[0].lower() not in _SUBSCRIBED_OK
            ):
                denied = ErrorReply(NOT_ALLOWED_IN_SUBSCRIBE.format(_full_name(cmd, args)))
            elif "no_multi" in cmd.flags:
                denied = ErrorReply("ERR Command not allowed inside a transaction")
        if denied is not None:
            return self.multi_refused(b"", denied)
        assert self.multi is not None
        self.multi.append(args)
        return "QUEUED"

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
        aof = server.aof
        try:
            if cmd.calls & SAMPLE_MASK != 1:
                return cmd.handler(self, args) if aof is None else aof.run(cmd, self, args)
            return timed(cmd, self, args, aof)
        except ErrorReply as exc:
            cmd.failed += 1
            return exc
        except Exception as exc:
            return self._internal_error(cmd, exc)


def _full_name(cmd: Command, args: list[bytes]) -> str:
    """Redis's name of the command run: ``pubsub|channels`` for a known subcommand."""
    if cmd.subcommands and len(args) > 1:
        sub = args[1].lower().decode("latin-1")
        if sub in cmd.subcommands:
            return f"{cmd.name}|{sub}"
    return cmd.name


def _format_address(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address or "")
