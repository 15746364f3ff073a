"""The server: databases over the memory engine, the listening sockets, the clients.

:class:`Server` holds the state every connection shares (databases, clients, counters,
watchers) and the policy checks that are not a command's own (maxmemory, users). It runs on
the current asyncio loop: ``await server.start()``, then ``await server.wait_closed()``;
:meth:`Server.shutdown` stops accepting, lets in-flight replies go out and closes clients.
:func:`run` is ``stratacache serve``: uvloop when installed, signals, logging.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .._exceptions import ConfigurationError
from .._types import MISSING
from ..core.engine import Engine
from ..core.pool import MemoryPool
from . import snapshot
from .aof import AppendOnlyLog, load_log
from .cluster import ClusterState, make_cluster
from .commands import Command, load
from .config import ServerConfig, UserConfig
from .connection import Client
from .errors import OOM
from .keyspace import Database, server_weigher
from .resp import ErrorReply

__all__ = ["Server", "run"]

logger = logging.getLogger("stratacache.server")

VERSION = "7.2.0"
"""The Redis version the server reports (INFO redis_version, HELLO): the command set and
semantics it follows. Clients read it to decide which commands they may send."""


class Server:
    """The server's shared state and lifecycle (see the module docstring)."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        load()
        # Cluster mode's slot table and this node (None when cluster-enabled is no).
        self.cluster: ClusterState | None = make_cluster(self.config)
        self.started = time.time()
        self.run_id = os.urandom(20).hex()
        self.pool = MemoryPool(_pool_budget(self.config.maxmemory), name="server")
        self.pool.relief_enabled = self.config.maxmemory_policy != "noeviction"
        self.engine = Engine(clock=time.time)
        self.databases: list[Database] = []
        for index in range(self.config.databases):
            self.databases.append(self._make_database(index))
        self.clients: dict[int, Client] = {}
        self.commands_processed = 0
        self.connections_received = 0
        self.rejected_connections = 0
        # Keyspace hits and misses are counted per database (Database.hits/misses, one
        # increment per read); these hold what was counted here directly (see keyspace_hits).
        self._hits_offset = 0
        self._misses_offset = 0
        self.protocol_errors = 0
        self.internal_errors = 0
        # (perf_counter, commands_processed) at each cron run: INFO's instantaneous_ops_per_sec.
        self.ops_samples: deque[tuple[float, int]] = deque(maxlen=16)
        # WATCH: (db index, key) -> the clients watching it.
        self.watchers: dict[tuple[int, str], set[Client]] = {}
        # Other features' hooks on every key change (tracking, ...): f(db, key).
        self.change_listeners: list[Callable[[Database, str], None]] = []
        # Other features' hooks on a client leaving (pub/sub, tracking, blocked lists): f(client).
        self.disconnect_hooks: list[Callable[[Client], None]] = []
        # Per-feature shared state (pub/sub hub, script cache, blocked clients, ...), each
        # owned by its feature's module, created on first use under the feature's own key.
        self.extra: dict[str, Any] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self.tls_servers: list[asyncio.AbstractServer] = []
        self._closed: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.shutting_down = False
        self._store_generation = 0
        # Persistence: True while a dataset is loaded at start (commands answer LOADING),
        # and the append-only log while appendonly is yes (see aof.py).
        self.loading = False
        self.aof: AppendOnlyLog | None = None
        # The admin HTTP listener (admin/http.py) when admin-port is set.
        self.admin: Any = None

    # -------------------------------------------------------------- databases

    def _make_database(self, index: int) -> Database:
        options = self._store_options(index)
        store = self.engine.create_store(f"db{index}", **options)
        return Database(index, store, self._key_changed, kind=self.config.store_for(index).type)

    def _store_options(self, index: int) -> dict[str, Any]:
        store_config = self.config.store_for(index)
        options: dict[str, Any] = {
            "type": store_config.type,
            "weigher": server_weigher,
            "pool": self.pool,
        }
        if store_config.type != "ttl-only":
            options["policy"] = self.config.policy_for(index)
        if store_config.type == "session" and options["policy"] != "lru":
            options["policy"] = "lru"
        for name in ("max_entries", "max_bytes", "expire_after_access"):
            value = getattr(store_config, name)
            if value is not None:
                options[name] = value
        return options

    def _switch_policies(self) -> None:
        """After CONFIG SET maxmemory-policy: rebuild each store whose eviction policy must
        change (a store's policy is fixed for its life), moving its entries with their
        expiry. O(keys), on the loop; pool eviction is off while both copies are charged."""
        relief = self.pool.relief_enabled
        self.pool.relief_enabled = False
        try:
            for db in self.databases:
                options = self._store_options(db.index)
                old = db.store
                if options.get("policy", old.policy_name) == old.policy_name:
                    continue
                self._store_generation += 1
                new = self.engine.create_store(f"db{db.index}.{self._store_generation}", **options)
                now = time.time()
                keys = old.keys()  # a snapshot (a store is no mapping)
                for key in keys:
                    info = old.entry_info(key)
                    value = old.get(key, False)
                    if info is None or value is MISSING:
                        continue
                    ttl = None if info.expires is None else info.expires - now
                    if ttl is None or ttl > 0:
                        new.set(key, value, ttl)
                new.evictions, new.expirations = old.evictions, old.expirations
                db.replace_store(new)
                old.close()
        finally:
            self.pool.relief_enabled = relief

    def _key_changed(self, db: Database, key: str) -> None:
        watchers = self.watchers
        if watchers:
            clients = watchers.get((db.index, key))
            if clients:
                for client in clients:
                    client.dirty_cas = True
        for listener in self.change_listeners:
            listener(db, key)

    @property
    def keyspace_hits(self) -> int:
        """INFO's keyspace_hits: the databases' hits (plus what was added here directly)."""
        return sum(db.hits for db in self.databases) + self._hits_offset

    @keyspace_hits.setter
    def keyspace_hits(self, value: int) -> None:
        self._hits_offset = value - sum(db.hits for db in self.databases)

    @property
    def keyspace_misses(self) -> int:
        """INFO's keyspace_misses: the databases' misses (plus what was added here directly)."""
        return sum(db.misses for db in self.databases) + self._misses_offset

    @keyspace_misses.setter
    def keyspace_misses(self, value: int) -> None:
        self._misses_offset = value - sum(db.misses for db in self.databases)

    @property
    def auth_required(self) -> bool:
        """Whether a new connection must AUTH before running commands."""
        if self.config.requirepass:
            return True
        default = self.config.users.get("default")
        return default is not None and (default.password is not None or not default.enabled)

    def apply_config(self, names: set[str]) -> None:
        """Apply options CONFIG SET just changed (Redis names): ``maxmemory`` resizes the
        pool (and evicts down to it at once), ``maxmemory-policy`` turns pool eviction off
        for ``noeviction`` and on for the others."""
        config = self.config
        if "maxmemory" in names:
            self.pool.resize(_pool_budget(config.maxmemory))
        if "maxmemory-policy" in names:
            self.pool.relief_enabled = config.maxmemory_policy != "noeviction"
            self._switch_policies()
        if names & {"maxmemory", "maxmemory-policy"}:
            self.pool.relieve()
        if "appendonly" in names:
            self._switch_aof()
        if "appendfsync" in names and self.aof is not None:
            self.aof.configure()

    def _switch_aof(self) -> None:
        """CONFIG SET appendonly: yes starts a log with a rewrite of the keyspace (as
        Redis does); no writes what is buffered, fsyncs and stops logging."""
        if self.config.appendonly and self.aof is None:
            self.aof = AppendOnlyLog(self, fresh=True)
            self.aof.start_rewrite()
        elif not self.config.appendonly and self.aof is not None:
            self.aof.close()
            self.aof = None

    async def _start_aof(self) -> None:
        """With appendonly yes: load the log if there is one (``loading`` meanwhile), then
        open it for appending."""
        config = self.config
        if not config.appendonly:
            return
        path = os.path.join(config.dir, config.appendfilename)
        if os.path.exists(path):
            self.loading = True
            started = time.perf_counter()
            try:
                count = await load_log(self, path, truncated_ok=config.aof_load_truncated)
            finally:
                self.loading = False
            logger.info(
                "loaded the append-only log %s: %d commands in %.3f s",
                path,
                count,
                time.perf_counter() - started,
            )
        self.aof = AppendOnlyLog(self)

    def used_memory(self) -> int:
        """Bytes the stores hold (the pool's ledger)."""
        return self.pool.used

    # ---------------------------------------------------------------- checks

    def check_command(self, client: Client, cmd: Command, args: list[bytes]) -> ErrorReply | None:
        """Checks that are not the command's own, after the connection's: users' rights and
        maxmemory. None when the command may run."""
        user = client.user
        users = self.config.users
        if users and user is not None:  # no users configured: no lookup on the hot path
            settings = users.get(user)
            if settings is not None and (settings.commands is not None or settings.readonly):
                denied = _denied(settings, cmd, args)
                if denied is not None:
                    return ErrorReply(f"NOPERM User {user} has no permissions to run the '{denied}' command")
        maxmemory = self.config.maxmemory
        if (
            cmd.denyoom
            and maxmemory
            and self.config.maxmemory_policy == "noeviction"
            and self.pool.used >= maxmemory
        ):
            return ErrorReply(OOM)
        return None

    def check_query_buffer(self, client: Client) -> None:
        """Close a client whose unparsed input exceeds client-query-buffer-limit."""
        if client.parser.buffered > self.config.client_query_buffer_limit:
            logger.warning(
                "closing client id=%d addr=%s: query buffer over the limit", client.id, client.address
            )
            client.close()

    def check_output_buffer(self, client: Client) -> None:
        """Close a client whose pending output exceeds its class's limit (0: no limit)."""
        limit = (
            self.config.client_output_buffer_limit_pubsub
            if client.channels or client.patterns or client.shard_channels
            else self.config.client_output_buffer_limit_normal
        )
        transport = client.transport
        if limit and transport is not None and transport.get_write_buffer_size() > limit:
            logger.warning(
                "closing client id=%d addr=%s: output buffer over the limit", client.id, client.address
            )
            client.closing = True
            transport.abort()

    def protocol_error(self, client: Client, text: str) -> None:
        """Log a protocol violation (then the client is answered and closed)."""
        self.protocol_errors += 1
        logger.info("protocol error from client id=%d addr=%s: %s", client.id, client.address, text)

    # --------------------------------------------------------------- clients

    def client_connected(self, client: Client) -> None:
        """Register a new connection, refusing it past maxclients."""
        self.connections_received += 1
        if len(self.clients) >= self.config.maxclients or self.shutting_down:
            self.rejected_connections += 1
            assert client.transport is not None
            client.transport.write(b"-ERR max number of clients reached\r\n")
            client.close()
            return
        self.clients[client.id] = client

    def client_disconnected(self, client: Client) -> None:
        """Forget a closed connection and everything it held (watches, subscriptions)."""
        self.clients.pop(client.id, None)
        self.unwatch(client)
        for hook in self.disconnect_hooks:
            hook(client)

    def unwatch(self, client: Client) -> None:
        """Drop every WATCH of ``client``."""
        for item in client.watched:
            clients = self.watchers.get(item)
            if clients is not None:
                clients.discard(client)
                if not clients:
                    del self.watchers[item]
        client.watched.clear()
        client.dirty_cas = False

    # ------------------------------------------------------------- lifecycle

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context from tls-cert-file/tls-key-file, or None."""
        config = self.config
        if not config.tls_port:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if not (config.tls_cert_file and config.tls_key_file):
            raise ConfigurationError("tls-port needs tls-cert-file and tls-key-file")
        context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
        if config.tls_ca_cert_file:
            context.load_verify_locations(config.tls_ca_cert_file)
        if config.tls_auth_clients == "yes":
            context.verify_mode = ssl.CERT_REQUIRED
        elif config.tls_auth_clients == "optional":
            context.verify_mode = ssl.CERT_OPTIONAL
        return context

    async def start(self, *, ephemeral: bool = False) -> None:
        """Listen on every bind address (and the TLS port), start the background tasks.

        ``port: 0`` means no plain TCP listener, as in Redis; ``ephemeral`` makes it mean
        "a port the OS picks" instead (tests, :class:`~.embedded.ServerThread`), and the
        configuration then reports the port taken.
        """
        try:
            await self._start(ephemeral)
        except BaseException:
            # A failed start (a port taken, a bad log) leaves no background task behind.
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()
            raise

    async def _start(self, ephemeral: bool) -> None:
        loop = asyncio.get_running_loop()
        self._closed = asyncio.Event()
        config = self.config
        snapshot.start(self)  # loads dir/dbfilename (a corrupt file stops the start)
        # Before any listener: a bad TLS setting must not leave a socket open behind it.
        context = self.ssl_context()
        memcache = None
        if config.memcached_port:
            from .memcache import MemcacheListener

            memcache = MemcacheListener(self)  # checks its options before any socket opens
        if config.port or ephemeral:
            for host in config.bind:
                self._servers.append(
                    await loop.create_server(
                        lambda: Client(self), host, config.port, backlog=511, reuse_address=True
                    )
                )
        if context is not None:
            for host in config.bind:
                self.tls_servers.append(
                    await loop.create_server(
                        lambda: Client(self),
                        host,
                        config.tls_port,
                        ssl=context,
                        backlog=511,
                        reuse_address=True,
                    )
                )
        if config.port == 0 and self._servers and ephemeral:
            # Port 0: the OS picked one; report it as the configured port.
            config.port = self.ports[0]
        await self._start_aof()
        if config.admin_port:
            from .admin.http import AdminServer

            self.admin = AdminServer(self)
            try:
                await self.admin.start(config.admin_bind, config.admin_port)
            except BaseException:
                for srv in self._servers + self.tls_servers:
                    srv.close()
                raise
            logger.info("admin HTTP on http://%s:%d/", config.admin_bind, self.admin.port)
        if memcache is not None:
            self.extra["memcache"] = memcache
            try:
                await memcache.start()
            except BaseException:  # its port taken: no socket left open behind it
                for srv in self._servers + self.tls_servers:
                    srv.close()
                raise
        self._tasks.append(loop.create_task(self._cron()))

    @property
    def ports(self) -> list[int]:
        """The ports actually listened on."""
        return [srv.sockets[0].getsockname()[1] for srv in self._servers if srv.sockets]  # type: ignore[attr-defined]

    async def _cron(self) -> None:
        """Background work, ``hz`` times a second: active expiry (a bounded slice per run, so
        the loop never stalls), idle-client timeouts, the pool's pressure events."""
        while True:
            await asyncio.sleep(1 / self.config.hz)
            self.cron_once()

    def cron_once(self) -> None:
        """One run of the background work (see :meth:`_cron`)."""
        now = time.perf_counter()
        self.ops_samples.append((now, self.commands_processed))
        deadline = now + 0.0025  # at most ~25% of a 10 Hz tick
        for db in self.databases:
            while db.store.purge_expired(200) == 200 and time.perf_counter() < deadline:
                pass
        self.pool.dispatch()
        if self.aof is not None:
            self.aof.cron()
        rewriter = self.extra.get("aof_rewriter")
        if rewriter is not None and rewriter.child_pid:
            rewriter.cron()
        timeout = self.config.timeout
        if timeout:
            now = time.monotonic()
            for client in list(self.clients.values()):
                if (
                    now - client.last_interaction > timeout
                    and client.blocked is None
                    and not (client.channels or client.patterns or client.shard_channels)
                ):
                    logger.info("closing idle client id=%d addr=%s", client.id, client.address)
                    client.close()

    async def shutdown(self) -> None:
        """Stop accepting, let pending replies go out, close every client."""
        if self.shutting_down:
            return
        self.shutting_down = True
        for srv in self._servers + self.tls_servers:
            srv.close()
        for task in self._tasks:
            task.cancel()
        await self._drain_input()
        if self.aof is not None:
            self.aof.close()
        rewriter = self.extra.get("aof_rewriter")
        if rewriter is not None:
            rewriter.close()  # a BGREWRITEAOF child with appendonly no must not outlive us
        if self.admin is not None:
            await self.admin.close()
        memcache = self.extra.get("memcache")
        if memcache is not None:
            await memcache.close()
        for client in list(self.clients.values()):
            transport = client.transport
            if transport is not None:
                transport.close()  # flushes what is buffered, then closes
        snapshot.stop(self)  # the last save, once no command can run
        for srv in self._servers + self.tls_servers:
            await srv.wait_closed()
        self.engine.close()
        if self._closed is not None:
            self._closed.set()

    async def _drain_input(self, quiet: float = 0.02, limit: float = 1.0) -> None:
        """Let requests already sent be read and answered before the clients are closed:
        a pipelined batch may still sit in the socket buffers when the signal comes, and
        closing a socket with unread input resets it, losing replies sent just before.
        Waits until no client sent anything for ``quiet`` seconds, at most ``limit``."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            await asyncio.sleep(quiet / 2)
            now = time.monotonic()
            if all(now - client.last_interaction > quiet for client in self.clients.values()):
                return

    async def wait_closed(self) -> None:
        """Return once :meth:`shutdown` has finished."""
        assert self._closed is not None
        await self._closed.wait()


def _pool_budget(maxmemory: int) -> int:
    """The pool's budget for ``maxmemory`` (0, Redis's "no limit": a budget never reached)."""
    return maxmemory if maxmemory > 0 else 1 << 62


def _denied(settings: UserConfig, cmd: Command, args: list[bytes]) -> str | None:
    """The name a user may not run (``client|kill`` for a subcommand), or None when allowed.

    An allow-list names commands (``get``: every form) or subcommands (``client|id``); a
    read-only user runs no command flagged ``write`` (nor a write subcommand).
    """
    name = cmd.name
    target = cmd
    if cmd.subcommands and len(args) > 1:
        sub = cmd.subcommands.get(args[1].decode("latin-1").lower())
        if sub is not None:
            target = sub
            name = sub.name
    allowed = settings.commands
    if allowed is not None and cmd.name not in allowed and name not in allowed:
        return name
    if settings.readonly and (cmd.write or target.write):
        return name
    return None


def run(config: ServerConfig, *, announce: Callable[[str], None] | None = None) -> int:
    """Run the server until SIGTERM/SIGINT or SHUTDOWN (``stratacache serve``); exit status."""
    runner: Callable[[Any], Any] = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is part of the server extra
        pass

    async def main() -> None:
        server = Server(config)
        await server.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _on_signal, server, sig)
        from .reload import reload_from_file

        loop.add_signal_handler(signal.SIGHUP, reload_from_file, server)
        if announce is not None:
            host = config.bind[0]
            announce(
                f"stratacache serve: Redis protocol on {host}:{config.port} "
                + _memcached_banner(config)
                + f"(maxmemory {config.maxmemory} bytes, policy {config.maxmemory_policy})\n"
                f"connect with: redis-cli -h {host} -p {config.port}    "
                f"or: stratacache.Cache('redis://{host}:{config.port}/0')"
            )
        await server.wait_closed()

    runner(main())
    return 0


def _memcached_banner(config: ServerConfig) -> str:
    """The banner's mention of the Memcached listener (empty when it is off)."""
    if not config.memcached_port:
        return ""
    host = (config.memcached_bind or config.bind)[0]
    return f"and Memcached protocol on {host}:{config.memcached_port} "


def _on_signal(server: Server, sig: signal.Signals) -> None:
    logger.warning("received %s, shutting down", sig.name)
    asyncio.get_running_loop().create_task(server.shutdown())


if sys.platform == "win32":  # pragma: no cover - the server is POSIX-only
    raise ImportError("stratacache serve runs on POSIX systems")
