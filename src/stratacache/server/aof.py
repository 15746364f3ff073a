"""The append-only log (AOF): every write's effect in RESP, fsynced by policy, replayed at start.

What is logged (Redis's propagation rules, one table: :data:`REWRITES`):

* a write command is logged only when it changed something (the keyspace's change hook
  counts changes: a DEL of a missing key changes nothing and is not logged);
* relative times become absolute: SET EX/PX/EXAT, SETEX, PSETEX become ``SET key value PXAT
  ms``; EXPIRE, PEXPIRE, EXPIREAT, GETEX with a time become ``PEXPIREAT key ms`` (GETEX
  PERSIST becomes PERSIST; a time in the past, which deletes, becomes DEL);
* non-deterministic commands log their effect: SPOP becomes SREM of the members popped,
  INCRBYFLOAT ``SET key result KEEPTTL``, HINCRBYFLOAT ``HSET key field result``, a served
  blocking pop its non-blocking form (BLPOP: LPOP of the key served, BLMOVE: LMOVE, ...);
* EXEC and scripts (EVAL, EVALSHA, FCALL) log the writes they made, between MULTI and EXEC;
* SELECT is written when the database of the next command differs; FLUSHALL and FLUSHDB are
  always written; keys evicted for memory are written as DEL.

Durability (``appendfsync``):

* ``always``: group commit. The commands of one event-loop pass, from every client, are one
  buffer; at the end of the pass a writer thread writes and fsyncs it while the loop goes
  on; a client whose batch wrote something is held (its replies kept, its further input not
  read) until that fsync returns. So no reply to a write, nor anything after it on that
  connection, leaves before the write is on disk, and reads of other clients keep flowing.
* ``everysec``: written at the end of every pass, fsynced in the background once a second.
* ``no``: written at the end of every pass; the OS flushes when it likes.

Loading, the rewrite (BGREWRITEAOF) and INFO's ``aof_*`` fields live here too; see
docs/persistence.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import os
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .._exceptions import CacheError
from .aof_check import scan
from .commands import COMMANDS, Command
from .connection import Deferred
from .keyspace import bkey, skey
from .resp import ErrorReply, NullArray
from .snapshot import fsync_directory

if TYPE_CHECKING:
    from .app import Server
    from .connection import Client
    from .keyspace import Database

__all__ = [
    "REWRITES",
    "AofLoadError",
    "AppendOnlyLog",
    "aof_info",
    "encode_command",
    "load_log",
    "rewrite_base",
]

logger = logging.getLogger("stratacache.server")


class AofLoadError(CacheError):
    """The log cannot be loaded (corrupt, or torn with ``aof-load-truncated no``): the server
    must not start. The message names the file and the byte offset."""


# ------------------------------------------------------------------------- encoding


def encode_command(argv: list[bytes]) -> bytes:
    """One command in RESP, as Redis writes it to its log: an array of bulk strings."""
    if len(argv) == 3:  # SET key value, HGET-likes: one format
        a, b, c = argv
        return b"*3\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(a), a, len(b), b, len(c), c)
    return b"*%d\r\n" % len(argv) + b"".join([b"$%d\r\n%b\r\n" % (len(arg), arg) for arg in argv])


_SELECT = [b"*2\r\n$6\r\nSELECT\r\n" + b"$%d\r\n%d\r\n" % (len(str(i)), i) for i in range(1024)]
_MULTI = encode_command([b"MULTI"])
_EXEC = encode_command([b"EXEC"])


def _ms(deadline: float) -> bytes:
    return b"%d" % round(deadline * 1000)


# ---------------------------------------------------------------- the rewrite table
#
# name -> f(client, args, reply) -> the commands to log instead of ``args`` (None: log
# ``args`` as they came). Called after the command ran and changed something, so the
# database holds the command's effect (deadlines are read back from it: exact, absolute).

Rewrite = Callable[["Client", list[bytes], Any], list[list[bytes]] | None]


def _expiry_effect(client: Client, key: bytes) -> list[list[bytes]]:
    """The key's expiry as it now is: PEXPIREAT, PERSIST, or DEL when the key is gone."""
    db = client.db
    name = skey(key)
    if not db.exists(name):
        return [[b"DEL", key]]
    deadline = db.deadline(name)
    if deadline is None:
        return [[b"PERSIST", key]]
    return [[b"PEXPIREAT", key, _ms(deadline)]]


def _set(client: Client, args: list[bytes], reply: Any) -> list[list[bytes]] | None:
    options = [arg.upper() for arg in args[3:]]
    if not any(opt in (b"EX", b"PX", b"EXAT", b"PXAT") for opt in options):
        return None
    db = client.db
    name = skey(args[1])
    if not db.exists(name):
        return [[b"DEL", args[1]]]
    deadline = db.deadline(name)
    if deadline is None:
        return [[b"SET", args[1], args[2]]]
    return [[b"SET", args[1], args[2], b"PXAT", _ms(deadline)]]


def _setex(client: Client, args: list[bytes], reply: Any) -> list[list[bytes]] | None:
    db = client.db
    deadline = db.deadline(skey(args[1]))
    if deadline is None:
        return [[b"DEL", args[1]]]
    return [[b"SET", args[1], args[3], b"PXAT", _ms(deadline)]]


def _expire(client: Client, args: list[bytes], reply: Any) -> list[list[bytes]] | None:
    return _expiry_effect(client, args[1])


def _getex(client: Client, args: list[bytes], reply: Any) -> list[list[bytes]] | None:
    return _expiry_effect(client, args[1])


def _incrbyfloat(client: Client, args: list[bytes], reply: Any) -> list[list[bytes]] | None:
    return [[b"SET", args[1], reply, b"KEEPTTL"]]


def _hincrbyfloat(client: Client, args: list[bytes], reply: Any) -> list[list[bytes]] | None:
    return [[b"HSET", args[1], args[2], reply]]


def _spop(client: Client, args: list[bytes], reply: Any) -> list[list[bytes]] | None:
    members = [reply] if type(reply) is bytes else list(reply or ())
    if not members:
        return []
    return [[b"SREM", args[1], *members]]


def _bpop(name: bytes) -> Rewrite:
    def rewrite(client: Client, args: list[bytes], reply: Any) -> list[list[bytes]] | None:
        if not isinstance(reply, list) or len(reply) != 2:
            return []
        return [[name, reply[0]]]

    return rewrite


def _blmove(client: Client, args: list[bytes], reply: Any) -> list[list[bytes]] | None:
    if type(reply) is not bytes:
        return []
    return [[b"LMOVE", args[1], args[2], args[3], args[4]]]


def _brpoplpush(client: Client, args: list[bytes], reply: Any) -> list[list[bytes]] | None:
    if type(reply) is not bytes:
        return []
    return [[b"RPOPLPUSH", args[1], args[2]]]


def _blmpop(client: Client, args: list[bytes], reply: Any) -> list[list[bytes]] | None:
    if not isinstance(reply, list) or len(reply) != 2:
        return []
    numkeys = int(args[2])
    where = args[3 + numkeys].upper()
    return [[b"LMPOP", b"1", reply[0], where, b"COUNT", b"%d" % len(reply[1])]]


REWRITES: dict[str, Rewrite] = {
    "set": _set,
    "setex": _setex,
    "psetex": _setex,
    "expire": _expire,
    "pexpire": _expire,
    "expireat": _expire,
    "pexpireat": _expire,
    "getex": _getex,
    "incrbyfloat": _incrbyfloat,
    "hincrbyfloat": _hincrbyfloat,
    "spop": _spop,
    "blpop": _bpop(b"LPOP"),
    "brpop": _bpop(b"RPOP"),
    "blmove": _blmove,
    "brpoplpush": _brpoplpush,
    "blmpop": _blmpop,
}
"""Commands logged as their effect rather than as sent (see the module docstring)."""

WRAPPERS = frozenset({"exec", "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"})
"""Commands whose own writes (the commands they ran) are logged between MULTI and EXEC."""
ALWAYS = frozenset({"flushall", "flushdb"})
"""Write commands logged even when they changed nothing (as Redis does)."""
# Commands the inline path of AppendOnlyLog.run leaves to _record (SET only with options).
_SPECIAL = (REWRITES.keys() - {"set"}) | WRAPPERS | ALWAYS

_REWRITE_CHUNK = 64
"""Members per command in a rewritten collection (Redis's AOF_REWRITE_ITEMS_PER_CMD)."""


# ------------------------------------------------------------------------ the log


class AppendOnlyLog:
    """The server's log (``server.aof`` while ``appendonly yes``); see the module docstring."""

    def __init__(self, server: Server, *, fresh: bool = False, detached: bool = False) -> None:
        self.server = server
        config = server.config
        self.path = os.path.join(config.dir, config.appendfilename)
        self.dirty = 0  # the change hook's count: did the command change something?
        self.depth = 0  # commands running (EXEC and scripts run others)
        self.buf: list[bytes] = []  # this pass's commands, encoded
        self.after: list[tuple[int, list[bytes], Client | None]] = []
        self.db = -1  # the database the log is in (-1: write a SELECT first)
        self.scheduled = False
        # Group commit (always): clients with a write in the buffer, the flushed groups
        # waiting for the writer, and what each waiting client's replies are.
        self.waiting: dict[Client, None] = {}
        self.queue: list[tuple[bytes, dict[Client, None], bool]] = []
        self.pending: dict[Client, int] = {}  # client -> the last group it waits for
        self.held: dict[Client, list[bytes]] = {}
        self.group = 0
        self.inflight = False
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aof-writer")
        self.fsync_inflight = False
        self.last_fsync = time.monotonic()
        self.last_write_ok = True
        self.delayed_fsync = 0
        # The rewrite: the child's pid, the writes since it started, its outcome.
        self.child_pid = 0
        self.rewrite_buf: list[bytes] | None = None
        self.rewrite_started = 0.0
        self.rewrite_temp = ""
        self.last_rewrite_status = "ok"
        self.last_rewrite_seconds = -1
        self.rewrites = 0
        self.rewrite_scheduled = False
        self.swap_ready = False
        self.enabling = fresh  # CONFIG SET appendonly yes: no file until the first rewrite
        # BGREWRITEAOF with appendonly no: a rewrite only, logging nothing.
        self.detached = detached
        self.fd = -1
        if not (fresh or detached):
            self.fd = _open_append(self.path)
        self.current_size = os.fstat(self.fd).st_size if self.fd >= 0 else 0
        self.base_size = self.current_size
        self.loop = asyncio.get_running_loop()
        # Keys the stores evict for memory: written as DEL (see _drain_evictions).
        self.evicted: list[tuple[Any, str]] = []
        if not detached:
            server.change_listeners.append(self.changed)
            self._attach_sinks()
        self.closed = False
        self.sync = False
        self.configure()

    @property
    def always(self) -> bool:
        """Whether replies wait for the fsync (``appendfsync always``)."""
        return self.sync

    def configure(self) -> None:
        """Read ``appendfsync`` again (CONFIG SET)."""
        self.sync = self.server.config.appendfsync == "always"

    def changed(self, db: Database, key: str) -> None:
        """``server.change_listeners`` hook: count every change of a key."""
        self.dirty += 1

    # ------------------------------------------------------------ recording

    def run(self, cmd: Command, client: Client, args: list[bytes]) -> Any:
        """Run ``cmd`` (its handler, exceptions propagating) and log its effect."""
        if not cmd.write and cmd.name not in WRAPPERS:
            return cmd.handler(client, args)
        start = len(self.buf)
        dirty = self.dirty
        self.depth += 1
        try:
            reply = cmd.handler(client, args)
        except BaseException:
            self.depth -= 1
            if self.dirty != dirty:
                self._record(client, cmd.name, args, None, start, verbatim=True)
            raise
        depth = self.depth = self.depth - 1
        if type(reply) is Deferred:
            if not reply.done:
                return self._watch(client, cmd.name, args, reply)
            if self.dirty != dirty:
                self._record(client, cmd.name, args, reply.reply, start)
        elif self.dirty != dirty:
            name = cmd.name
            if depth or name in _SPECIAL or self.evicted or self.after or (name == "set" and len(args) > 3):
                self._record(client, name, args, reply, start)
                return reply
            # The common case (a plain write, logged as sent), inline: it is every SET.
            index = client.db.index
            if index != self.db:
                self.buf.append(
                    _SELECT[index] if index < 1024 else encode_command([b"SELECT", b"%d" % index])
                )
                self.db = index
            self.buf.append(encode_command(args))
            if self.sync:
                self.waiting[client] = None
            if not self.scheduled:
                self.scheduled = True
                self.loop.call_soon(self.flush)
        elif cmd.name in ALWAYS or (cmd.name in WRAPPERS and len(self.buf) > start):
            # FLUSHALL of nothing; or EXEC of an unchanged FLUSHALL: still MULTI ... EXEC.
            self._record(client, cmd.name, args, reply, start)
        return reply

    def _record(
        self, client: Client, name: str, args: list[bytes], reply: Any, start: int, *, verbatim: bool = False
    ) -> None:
        if name in WRAPPERS:
            if len(self.buf) > start:
                self.buf.insert(start, _MULTI)
                self.buf.append(_EXEC)
        else:
            rewrite = None if verbatim else REWRITES.get(name)
            argvs = None if rewrite is None else rewrite(client, args, reply)
            index = client.db.index
            if argvs is None:
                self._emit(index, args)
            else:
                for argv in argvs:
                    self._emit(index, argv)
        if self.sync:
            self.waiting[client] = None
        if self.depth == 0:
            if self.evicted:
                self._drain_evictions()
            self._after()
        self._schedule()

    def _attach_sinks(self) -> None:
        """Have every database's store report its evictions (a store replaced by CONFIG SET
        maxmemory-policy is attached at the next flush)."""
        for db in self.server.databases:
            if db.store.eviction_sink is not self.evicted:
                db.store.eviction_sink = self.evicted

    def _drain_evictions(self) -> None:
        """The evicted keys, as DEL after the command that made room (Redis logs them so)."""
        index_of = {id(db.store): db.index for db in self.server.databases}
        evicted = self.evicted[:]
        self.evicted.clear()
        for store, key in evicted:
            index = index_of.get(id(store))
            if index is not None:
                self.after.append((index, [b"DEL", bkey(key)], None))

    def _emit(self, index: int, argv: list[bytes]) -> None:
        if index != self.db:
            self.buf.append(_SELECT[index] if index < 1024 else encode_command([b"SELECT", b"%d" % index]))
            self.db = index
        self.buf.append(encode_command(argv))

    def _after(self) -> None:
        after = self.after
        if after:
            self.after = []
            for index, argv, client in after:
                self._emit(index, argv)
                if client is not None and self.always:
                    self.waiting[client] = None

    def side(self, index: int, argv: list[bytes], client: Client | None = None) -> None:
        """Log a change that is no command's own (a served blocked client, an eviction):
        after the running command if one runs, else now. ``client`` waits for it (always)."""
        self.after.append((index, argv, client))
        if client is not None and self.always:
            self.waiting[client] = None  # now: its reply may be delivered before the emit
        if self.depth == 0:
            self._after()
            self._schedule()

    def _watch(self, client: Client, name: str, args: list[bytes], inner: Deferred) -> Deferred:
        """A blocked command: log its non-blocking form when it is served (not on timeout)."""
        rewrite = REWRITES.get(name)
        outer = Deferred(inner.cancel)

        def served(reply: Any) -> None:
            if rewrite is not None and not isinstance(reply, (ErrorReply, NullArray)) and reply is not None:
                index = client.db.index
                argvs = rewrite(client, args, reply) or []
                for argv in argvs:
                    self.side(index, argv, client)
            outer.resolve(reply)

        inner._callback = served
        return outer

    def _schedule(self) -> None:
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)

    # ---------------------------------------------------------------- writing

    def hold(self, client: Client, data: bytes) -> bool:
        """Keep ``data`` (replies) until the client's writes are durable; False when it
        has none pending (send now)."""
        if client not in self.waiting and client not in self.pending:
            return False
        self.held.setdefault(client, []).append(data)
        client.paused = True
        return True

    def flush(self) -> None:
        """The end of an event-loop pass: hand this pass's commands to the file."""
        self.scheduled = False
        self._attach_sinks()
        if self.evicted:  # by the pool's relief or the cron, outside any command
            self._drain_evictions()
            self._after()
        if not self.buf:
            return
        data = b"".join(self.buf)
        self.buf = []
        waiting = self.waiting
        self.waiting = {}
        if self.rewrite_buf is not None:
            self.rewrite_buf.append(data)
        self.current_size += len(data)
        if self.fd < 0:
            # Enabling (no file until the rewrite is done) or closed: nothing to wait for.
            self._release(waiting, -1)
            return
        sync = self.always
        if sync or self.inflight or self.queue:
            self.group += 1
            for client in waiting:
                self.pending[client] = self.group
            self.queue.append((data, waiting, sync))
            self._kick()
            return
        try:
            _write_all(self.fd, data)
        except OSError as exc:
            self._write_failed(exc)
        if waiting:  # appendfsync changed from always since they wrote
            self._release(waiting, -1)

    def _kick(self) -> None:
        """Start the writer on everything queued, unless it is busy (then it comes back)."""
        if self.inflight or not self.queue:
            return
        queue = self.queue
        self.queue = []
        data = b"".join(item[0] for item in queue) if len(queue) > 1 else queue[0][0]
        sync = any(item[2] for item in queue)
        waiters: dict[Client, None] = {}
        for item in queue:
            waiters.update(item[1])
        group = self.group
        self.inflight = True
        future = self.executor.submit(_write_and_sync, self.fd, data, sync)

        def done(fut: Future[None]) -> None:
            self.loop.call_soon_threadsafe(self._written, fut, waiters, group, sync)

        future.add_done_callback(done)

    def _written(self, fut: Future[None], waiters: dict[Client, None], group: int, sync: bool) -> None:
        self.inflight = False
        exc = fut.exception()
        if exc is not None:
            self._write_failed(exc)
        elif sync:
            self.last_fsync = time.monotonic()
        self._release(waiters, group)
        if self.swap_ready:
            self._swap()  # the writer is idle: the rewrite's file takes over now
        self._kick()

    def _release(self, waiters: dict[Client, None], group: int) -> None:
        pending = self.pending
        for client in waiters:
            if group >= 0 and pending.get(client, -1) > group:
                continue  # it wrote again since: it waits for a later group
            pending.pop(client, None)
            if client in self.waiting:
                continue
            held = self.held.pop(client, None)
            if held is None:
                continue
            self._let_go(client, held)

    @staticmethod
    def _let_go(client: Client, held: list[bytes]) -> None:
        """Send a client's held replies and read on (unless a blocked command waits)."""
        if client.transport is not None:
            client.write(b"".join(held))
        if client.blocked is None:
            client.paused = False
            if client.transport is not None:
                client._process()

    def _write_failed(self, exc: BaseException) -> None:
        self.last_write_ok = False
        if self.always:
            # Redis's rule: with always, a write that failed cannot be answered as done.
            logger.critical("cannot write the append-only log %s: %s; exiting", self.path, exc)
            os._exit(1)
        logger.error("cannot write the append-only log %s: %s", self.path, exc)

    def cron(self) -> None:
        """Once per cron run: everysec's fsync, the rewrite child, the automatic rewrite."""
        if self.evicted and not self.scheduled:
            self._schedule()  # evictions of the pool's relief, outside any command
        if self.child_pid:
            self._poll_child()
        elif self.rewrite_scheduled or self._auto_rewrite_due():
            self.rewrite_scheduled = False
            self.start_rewrite()
        if (
            self.server.config.appendfsync == "everysec"
            and self.fd >= 0
            and not self.fsync_inflight
            and time.monotonic() - self.last_fsync >= 1.0
        ):
            self.fsync_inflight = True
            self.last_fsync = time.monotonic()
            fd = self.fd
            future = self.executor.submit(os.fsync, fd)
            future.add_done_callback(lambda fut: self.loop.call_soon_threadsafe(self._fsynced, fut))

    def _fsynced(self, fut: Future[None]) -> None:
        self.fsync_inflight = False
        exc = fut.exception()
        if exc is not None:
            logger.error("cannot fsync the append-only log %s: %s", self.path, exc)

    def _auto_rewrite_due(self) -> bool:
        config = self.server.config
        percentage = config.auto_aof_rewrite_percentage
        if not percentage or self.fd < 0 or self.current_size < config.auto_aof_rewrite_min_size:
            return False
        base = max(self.base_size, 1)
        return (self.current_size - base) * 100 // base >= percentage

    def close(self) -> None:
        """Write what is buffered, fsync, close (shutdown, CONFIG SET appendonly no)."""
        if self.closed:
            return
        self.closed = True
        self.flush()
        self.executor.shutdown(wait=True)
        while self.queue:
            data, _waiters, _sync = self.queue.pop(0)
            with contextlib.suppress(OSError):
                _write_all(self.fd, data)
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
        # Everything is on disk: the held replies may go.
        self.pending.clear()
        self.waiting.clear()
        held_clients = list(self.held.items())
        self.held.clear()
        for client, held in held_clients:
            self._let_go(client, held)
        self._kill_child()
        with contextlib.suppress(ValueError):
            self.server.change_listeners.remove(self.changed)
        for db in self.server.databases:
            if db.store.eviction_sink is self.evicted:
                db.store.eviction_sink = None

    # ---------------------------------------------------------------- rewrite

    def start_rewrite(self) -> str:
        """BGREWRITEAOF: fork a child writing the keyspace's base; the parent keeps the
        writes made meanwhile and appends them when the child is done."""
        if self.child_pid or self.swap_ready:
            raise ErrorReply("ERR Background append only file rewriting already in progress")
        from .snapshot import active_child

        if active_child(self.server) is not None:
            # One background child at a time (Redis's rule): the cron starts it later.
            self.rewrite_scheduled = True
            return "Background append only file rewriting scheduled"
        temp = os.path.join(self.server.config.dir, f"temp-rewriteaof-bg-{os.getpid()}.aof")
        self.flush()
        self.rewrite_buf = []
        self.db = -1  # what follows the base starts with its SELECT
        self.rewrite_started = time.monotonic()
        self.rewrite_temp = temp
        if not hasattr(os, "fork"):  # pragma: no cover - POSIX has fork
            status = _write_base(self.server, temp)
            self.child_pid = -1
            self._child_done(status == 0)
            return "Background append only file rewriting started"
        with warnings.catch_warnings():
            # Python 3.12+ warns on fork() with threads (the log's writer): the child only
            # writes the file from its copy of the keyspace and leaves with os._exit.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: its copy of the keyspace, no event loop, no logging
            code = 1
            try:
                code = _write_base(self.server, temp)
            finally:
                os._exit(code)
        self.child_pid = pid
        self.server.extra["child"] = ("aof", pid)  # BGSAVE waits for it (snapshot.active_child)
        logger.info("background append-only log rewrite started by pid %d", pid)
        return "Background append only file rewriting started"

    def _poll_child(self) -> None:
        try:
            pid, status = os.waitpid(self.child_pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.child_pid, 1 << 8
        if pid == 0:
            return
        self._child_done(os.waitstatus_to_exitcode(status) == 0)

    def _child_done(self, ok: bool) -> None:
        self.child_pid = 0
        self.server.extra.pop("child", None)
        self.last_rewrite_seconds = round(time.monotonic() - self.rewrite_started)
        if not ok:
            self.last_rewrite_status = "err"
            self.rewrite_buf = None
            if self.enabling:
                self.rewrite_scheduled = True  # CONFIG SET appendonly yes: try again
            logger.error("background append-only log rewrite failed (see %s)", self.path)
            with contextlib.suppress(OSError):
                os.unlink(self.rewrite_temp)
            return
        # The writer may hold old-file data: the swap waits until it is idle (_written).
        self.swap_ready = True
        if not self.inflight:
            self._swap()

    def _swap(self) -> None:
        """The rewrite's file becomes the log: the writes since the fork (every flushed
        pass, including those still queued for the old file) appended and fsynced, then
        renamed over the log, the directory fsynced. The queued groups are then durable
        in the new file: their clients are released, nothing goes to the old file."""
        self.swap_ready = False
        temp = self.rewrite_temp
        queue = self.queue
        self.queue = []
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_APPEND)
            try:
                _write_all(fd, b"".join(self.rewrite_buf or []))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.path)
            fsync_directory(os.path.dirname(self.path) or ".")
            new_fd = -1 if self.detached else _open_append(self.path)
        except (OSError, AofLoadError) as exc:
            self.queue = queue + self.queue  # the old file still gets them
            self.last_rewrite_status = "err"
            self.rewrite_buf = None
            logger.error("cannot finish the append-only log rewrite %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            return
        self.rewrite_buf = None
        old = self.fd
        self.fd = new_fd
        if old >= 0:
            os.close(old)
        self.current_size = self.base_size = os.path.getsize(self.path)
        self.enabling = False
        self.last_rewrite_status = "ok"
        self.rewrites += 1
        logger.info("background append-only log rewrite finished: %s, %d bytes", self.path, self.current_size)
        for _data, waiters, _sync in queue:
            self._release(waiters, -1)

    def _kill_child(self) -> None:
        if self.child_pid > 0:
            with contextlib.suppress(OSError):
                os.kill(self.child_pid, 9)
                os.waitpid(self.child_pid, 0)
            with contextlib.suppress(OSError):
                os.unlink(self.rewrite_temp)
            self.server.extra.pop("child", None)
        self.child_pid = 0
        self.rewrite_buf = None


def _open_append(path: str) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise AofLoadError(f"cannot open the append-only log {path}: {exc.strerror}") from exc


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _write_and_sync(fd: int, data: bytes, sync: bool) -> None:
    _write_all(fd, data)
    if sync:
        os.fsync(fd)


# ------------------------------------------------------------------- the rewrite base


def rewrite_base(server: Server) -> Iterator[bytes]:
    """The keyspace as RESP commands (the rewrite's base): per database a SELECT, then per
    key the commands building it (collections in chunks of 64) and PEXPIREAT for a deadline."""
    now = time.time()
    for db in server.databases:
        if not len(db):
            continue
        yield _SELECT[db.index] if db.index < 1024 else encode_command([b"SELECT", b"%d" % db.index])
        out: list[bytes] = []
        for key, value in db.iter_items():
            raw = bkey(key)
            if type(value) is bytes:
                out.append(encode_command([b"SET", raw, value]))
            else:
                out.extend(_collection(raw, value))
            deadline = db.deadline(key)
            if deadline is not None:
                if deadline <= now:
                    out.append(encode_command([b"DEL", raw]))
                else:
                    out.append(encode_command([b"PEXPIREAT", raw, _ms(deadline)]))
            if len(out) >= 256:
                yield b"".join(out)
                out = []
        if out:
            yield b"".join(out)


def _chunks(name: bytes, key: bytes, items: list[bytes], step: int) -> Iterator[bytes]:
    size = _REWRITE_CHUNK * step
    for i in range(0, len(items), size):
        yield encode_command([name, key, *items[i : i + size]])


def _collection(key: bytes, value: Any) -> Iterator[bytes]:
    kind = value.type_name
    if kind == "list":
        yield from _chunks(b"RPUSH", key, list(value.items), 1)
    elif kind == "set":
        yield from _chunks(b"SADD", key, list(value.members), 1)
    elif kind == "hash":
        flat: list[bytes] = []
        for field, item in value.fields.items():
            flat.append(field)
            flat.append(item)
        yield from _chunks(b"HSET", key, flat, 2)
    elif kind == "zset":
        flat = []
        for score, member in value:
            flat.append(_score(score))
            flat.append(member)
        yield from _chunks(b"ZADD", key, flat, 2)
    else:  # pragma: no cover - every type the server stores is above
        raise TypeError(f"cannot rewrite a {kind} value")


def _score(score: float) -> bytes:
    if score == float("inf"):
        return b"inf"
    if score == float("-inf"):
        return b"-inf"
    if score == int(score) and abs(score) < 1e17:
        return b"%d" % int(score)
    return repr(score).encode()


def _write_base(server: Server, path: str) -> int:
    """Write the base to ``path`` and fsync it; 0 on success (the child's exit code)."""
    try:
        with open(path, "wb", buffering=1 << 20) as handle:
            for chunk in rewrite_base(server):
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        return 1
    return 0


# ----------------------------------------------------------------------- loading

_LOAD_CHUNK = 1 << 20  # bytes read (and run) between two passes of the event loop


async def load_log(server: Server, path: str, *, truncated_ok: bool) -> int:
    """Replay the log at ``path`` through the command handlers; returns the commands run.

    A torn tail is truncated (with ``truncated_ok``, logged) or refused; anything else that
    is not a command refuses with :class:`AofLoadError` naming the file and byte offset.
    """
    from . import fastparse
    from .connection import Client

    speedups = getattr(fastparse, "_speedups", None)

    client = Client(server)
    client.user = "default"
    parse = speedups.parse_requests if speedups is not None else None
    max_bulk = server.config.proto_max_bulk_len
    offset = 0  # bytes run (a command boundary)
    count = 0
    pending = b""
    multi_chunk = -1  # offset of the chunk where the open MULTI began
    commands = COMMANDS
    plain_set = COMMANDS[b"set"]
    read_size = _LOAD_CHUNK
    with open(path, "rb") as handle:
        while True:
            data = handle.read(read_size)
            if not data:
                break
            chunk = pending + data if pending else data
            if parse is not None:
                parsed, end, stopped = parse(chunk, max_bulk)
            else:  # pragma: no cover - a build without the compiled parser
                parsed, end, stopped = _pure_parse(chunk)
            for index, args in enumerate(parsed):
                cmd = commands.get(args[0].lower())
                if cmd is None:
                    at = offset + scan(chunk, 0, stop_after=index).good
                    raise AofLoadError(
                        f"Bad file format reading the append-only log {path} at byte offset {at}: "
                        f"unknown command {args[0][:64]!r}"
                    )
                if cmd is plain_set and client.multi is None:
                    # SET key value [PXAT ms], most of a log (and of a rewrite's base):
                    # straight into the store (nobody watches or tracks keys yet, so the
                    # change hooks have nothing to do); an expired one is dropped.
                    if len(args) == 3:
                        client.db._set(args[1].decode("latin-1"), args[2], None)
                        continue
                    if len(args) == 5 and args[3].upper() == b"PXAT" and args[4].isdigit():
                        ttl = int(args[4]) / 1000 - time.time()
                        if ttl > 0:
                            client.db._set(args[1].decode("latin-1"), args[2], ttl)
                        else:
                            client.db.delete(args[1].decode("latin-1"))
                        continue
                if client.multi is None and cmd.name not in ("multi", "exec"):
                    arity = cmd.arity
                    if (arity > 0 and len(args) != arity) or len(args) < -arity:
                        continue
                    try:  # noqa: SIM105 - a try costs less than suppress() per command
                        cmd.handler(client, args)
                    except ErrorReply:
                        pass  # Redis too goes on after a command that fails at load
                    continue
                if cmd.name == "multi":
                    multi_chunk = offset
                # The connection's checks answer LOADING to clients meanwhile, not to us.
                loading, server.loading = server.loading, False
                try:
                    client.execute(args)
                finally:
                    server.loading = loading
            count += len(parsed)
            offset += end
            if stopped:
                break
            pending = chunk[end:]
            # A command bigger than a read (a large value): read as much again as is
            # pending, so it is parsed O(1) times, not once per megabyte.
            read_size = max(_LOAD_CHUNK, len(pending))
            await asyncio.sleep(0)  # LOADING answers flow meanwhile
    size = os.path.getsize(path)
    if offset == size and client.multi is None:
        return count
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        start = multi_chunk if client.multi is not None and multi_chunk >= 0 else offset
        result = scan(buf, start)
    if result.kind == "corrupt":
        raise AofLoadError(
            f"Bad file format reading the append-only log {path} at byte offset {result.at}: "
            f"{result.problem} (stratacache check-log {path} explains; the server will not start)"
        )
    if not truncated_ok:
        raise AofLoadError(
            f"the append-only log {path} ends with an incomplete command at byte offset {result.at} "
            f"and aof-load-truncated is no: run stratacache check-log --fix {path}"
        )
    client.multi = None
    lost = size - result.good
    os.truncate(path, result.good)
    logger.warning(
        "!!! the append-only log %s was truncated at byte offset %d: %d bytes of an incomplete "
        "command dropped (%s; aof-load-truncated yes)",
        path,
        result.good,
        lost,
        result.problem,
    )
    return count


def _pure_parse(chunk: bytes) -> tuple[list[list[bytes]], int, bool]:  # pragma: no cover
    """The compiled parser's contract, in Python (builds without a C compiler)."""
    result = scan(chunk)
    commands: list[list[bytes]] = []
    from .resp import RequestParser

    parser = RequestParser()
    parser.feed(chunk[: result.good] if result.kind != "ok" else chunk)
    while (args := parser.next()) is not None:
        commands.append(args)
    end = result.good if result.kind != "ok" else len(chunk)
    return commands, end, result.kind == "corrupt"


# ------------------------------------------------------------------------- INFO


def aof_info(server: Server) -> list[str]:
    """INFO persistence's ``aof_*`` fields."""
    log: AppendOnlyLog | None = getattr(server, "aof", None)
    rewriter: AppendOnlyLog | None = log or server.extra.get("aof_rewriter")
    in_progress = int(rewriter is not None and (rewriter.child_pid != 0 or rewriter.swap_ready))
    lines = [
        f"aof_enabled:{int(log is not None)}",
        f"aof_rewrite_in_progress:{in_progress}",
        f"aof_rewrite_scheduled:{int(log is not None and log.rewrite_scheduled)}",
        f"aof_last_rewrite_time_sec:{rewriter.last_rewrite_seconds if rewriter else -1}",
        f"aof_current_rewrite_time_sec:"
        f"{round(time.monotonic() - rewriter.rewrite_started) if rewriter and in_progress else -1}",
        f"aof_last_bgrewrite_status:{rewriter.last_rewrite_status if rewriter else 'ok'}",
        f"aof_rewrites:{rewriter.rewrites if rewriter else 0}",
        f"aof_last_write_status:{'ok' if log is None or log.last_write_ok else 'err'}",
    ]
    if log is not None:
        lines += [
            f"aof_current_size:{log.current_size}",
            f"aof_base_size:{log.base_size}",
            f"aof_pending_rewrite:{int(log.rewrite_scheduled)}",
            f"aof_buffer_length:{sum(len(chunk) for chunk in log.buf)}",
            f"aof_pending_bio_fsync:{int(log.fsync_inflight or log.inflight)}",
            f"aof_delayed_fsync:{log.delayed_fsync}",
        ]
    return lines
