"""CLIENT TRACKING: server-assisted client-side caching, as Redis 6+ does it.

A client turns it on with ``CLIENT TRACKING ON [REDIRECT id] [BCAST] [PREFIX p ...]
[OPTIN] [OPTOUT] [NOLOOP]`` and may then keep copies of what it reads; the server tells it
when to drop them:

* default mode: the keys a tracking client reads (the key arguments of every ``readonly``
  command it runs) are remembered in one table, key -> client ids, shared by all databases
  as in Redis; when such a key changes (the server's ``change_listeners`` hook), each of
  those clients gets one invalidation and the key is forgotten until read again. OPTIN
  remembers only the command after ``CLIENT CACHING YES``, OPTOUT all but the one after
  ``CLIENT CACHING NO``; NOLOOP skips the changes the client makes itself;
* BCAST: nothing is remembered; every change of a key under one of the client's prefixes
  ("" for all keys) is announced, batched per prefix once per turn of the event loop
  (Redis does it before sleeping), keys in Redis's (sorted) order;
* FLUSHDB/FLUSHALL: every tracking client gets one invalidation with a null instead of keys;
* a remembered key that expires is invalidated then (a timer at its deadline: the store drops
  expired keys silently). Keys evicted for memory, and expiries in BCAST mode, are not
  announced.

An invalidation is a RESP3 push ``>2 invalidate [keys]``; with ``REDIRECT id`` it goes to
that client instead: as the same push when it speaks RESP3, else as a pub/sub message
``message __redis__:invalidate [keys]`` when it is in pub/sub mode (RESP2 clients listen
there), else it is dropped. When the redirect client is gone, the tracking client gets
``>2 tracking-redir-broken id`` (RESP3) and TRACKINGINFO says ``broken_redirect``. An
invalidation for the client whose command caused it goes out after that command's reply.

Remembering reads costs nothing for clients that do not track: a client that turns
tracking on has its class switched to :class:`TrackingClient`, whose ``call`` does the
bookkeeping, and back when it turns it off.

The CLIENT command itself belongs to the connection family: its subcommands here are
:data:`TRACKING_SUBCOMMANDS`, which this module hooks into the CLIENT command if one is
registered when it is imported (modules load in name order, after ``connection``), and
otherwise registers a CLIENT of its own with those subcommands and ID; HELLO is provided
(protocol switch only) while the connection family has none. RESET and disconnection turn
tracking off through the server's ``disconnect_hooks`` (:func:`disable_tracking`).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from ..connection import Client
from ..errors import SYNTAX, wrong_arity
from ..keyspace import bkey, skey
from ..pubsub import hub
from ..resp import ErrorReply, Push, encode
from . import COMMANDS, Command, Handler
from . import connection as _connection_family  # noqa: F401 - CLIENT and HELLO, if any, first

if TYPE_CHECKING:
    from ..app import Server
    from ..keyspace import Database

__all__ = [
    "INVALIDATE_CHANNEL",
    "TRACKING_SUBCOMMANDS",
    "TRACKING_TABLE_MAX_KEYS",
    "ClientTracking",
    "TrackingClient",
    "TrackingState",
    "disable_tracking",
    "tracking_state",
]

INVALIDATE_CHANNEL = b"__redis__:invalidate"
"""The pub/sub channel RESP2 clients receive redirected invalidations on."""
TRACKING_TABLE_MAX_KEYS = 1_000_000
"""Redis's default ``tracking-table-max-keys``: past it, the oldest remembered key is
invalidated (its clients drop their copy) and forgotten, so the table stays bounded."""


class ClientTracking:
    """One client's tracking settings (``client.extra["tracking"]`` while tracking is on)."""

    __slots__ = ("bcast", "broken", "caching", "noloop", "optin", "optout", "prefixes", "redirect")

    def __init__(self) -> None:
        self.bcast = False
        self.optin = False
        self.optout = False
        self.noloop = False
        self.redirect = 0
        self.prefixes: list[bytes] = []
        # CLIENT CACHING YES (optin) / NO (optout) given for the next command.
        self.caching = False
        self.broken = False


class _Prefix:
    """A BCAST prefix: its clients, and the keys changed under it since the last batch
    (key -> the tracking client that changed it, for NOLOOP)."""

    __slots__ = ("clients", "pending")

    def __init__(self) -> None:
        self.clients: dict[Client, None] = {}
        self.pending: dict[bytes, Client | None] = {}


class TrackingState:
    """The server's tracking state (``server.extra["tracking"]``)."""

    __slots__ = ("bcast_due", "clients", "current", "expiries", "null_due", "prefixes", "server", "table")

    def __init__(self, server: Server) -> None:
        self.server = server
        self.table: dict[str, set[int]] = {}
        self.prefixes: dict[bytes, _Prefix] = {}
        self.clients: dict[Client, None] = {}
        # The tracking client whose command is running (NOLOOP, replies before invalidations).
        self.current: Client | None = None
        self.bcast_due = False
        self.null_due = False
        # (db index, key) -> the timer that invalidates a remembered key when it expires.
        self.expiries: dict[tuple[int, str], asyncio.TimerHandle] = {}

    # ---------------------------------------------------------------- hooks

    def key_changed(self, db: Database, key: str) -> None:
        """The server's change hook: invalidate ``key`` for whoever read it or watches its prefix."""
        if not self.clients or db.flushing:
            return
        if self.table:
            ids = self.table.pop(key, None)
            if ids:
                self._invalidate(ids, bkey(key), noloop=True)
            if self.expiries:
                # The key's deadline may have changed: the next read sets a new timer.
                handle = self.expiries.pop((db.index, key), None)
                if handle is not None:
                    handle.cancel()
        if self.prefixes:
            raw = bkey(key)
            for prefix, entry in self.prefixes.items():
                if raw.startswith(prefix):
                    entry.pending[raw] = self.current
                    if not self.bcast_due:
                        self.bcast_due = True
                        asyncio.get_running_loop().call_soon(self._broadcast)

    def flushed(self, db: Database) -> None:
        """A database was flushed: every tracking client drops everything (once per turn of
        the loop, so that FLUSHALL over all databases sends one null, as Redis does)."""
        self.forget_all()
        if self.clients and not self.null_due:
            self.null_due = True
            asyncio.get_running_loop().call_soon(self._send_nulls)

    # ------------------------------------------------------------ bookkeeping

    def remember(self, client: Client, info: ClientTracking, cmd: Command, args: list[bytes]) -> None:
        """After a read-only command of ``client``: remember its keys (per OPTIN/OPTOUT)."""
        if (info.optin and not info.caching) or (info.optout and info.caching):
            return
        table = self.table
        cid = client.id
        db = client.db
        for index in cmd.key_positions(args):
            key = skey(args[index])
            ids = table.get(key)
            if ids is None:
                if len(table) >= TRACKING_TABLE_MAX_KEYS:
                    oldest = next(iter(table))
                    self._invalidate(table.pop(oldest), bkey(oldest), noloop=False)
                table[key] = {cid}
            else:
                ids.add(cid)
            if (db.index, key) not in self.expiries:
                self._watch_expiry(db, key)

    def _watch_expiry(self, db: Database, key: str) -> None:
        """Invalidate ``key`` when it expires: the store drops expired keys without telling
        anyone, and a client would otherwise keep its copy for ever (Redis sends these)."""
        deadline = db.deadline(key)
        if deadline is not None:
            delay = max(deadline - time.time(), 0.0) + 0.001
            self.expiries[(db.index, key)] = asyncio.get_running_loop().call_later(
                delay, self._expired, db, key
            )

    def _expired(self, db: Database, key: str) -> None:
        del self.expiries[(db.index, key)]
        if key not in self.table:
            return  # changed (and invalidated) meanwhile, not read since
        if db.exists(key):
            self._watch_expiry(db, key)  # alive: its expiry moved, or the clocks disagree
            return
        self._invalidate(self.table.pop(key), bkey(key), noloop=False)

    def forget_all(self) -> None:
        """Forget every remembered key (a flush, or nobody tracks any more)."""
        self.table.clear()
        for handle in self.expiries.values():
            handle.cancel()
        self.expiries.clear()

    def _invalidate(self, ids: set[int], key: bytes, *, noloop: bool) -> None:
        clients = self.server.clients
        for cid in ids:
            target = clients.get(cid)
            if target is None:
                continue
            info = target.extra.get("tracking")
            if info is None or info.bcast or (noloop and info.noloop and target is self.current):
                continue
            self.send(target, info, [key])

    def send(self, target: Client, info: ClientTracking, keys: list[bytes] | None) -> None:
        """Send one invalidation of ``keys`` (None: everything) for ``target``: to it, or to
        its redirect client (see the module docstring)."""
        dest = target
        redirected = False
        if info.redirect:
            found = self.server.clients.get(info.redirect)
            if found is None or found.closing:
                info.broken = True
                if target.resp3:
                    self._deliver(target, target, Push((b"tracking-redir-broken", info.redirect)))
                return
            dest = found
            redirected = True
        if dest.resp3:
            self._deliver(target, dest, Push((b"invalidate", keys)))
        elif redirected and (dest.channels or dest.patterns or dest.shard_channels):
            # Redis sends it to a RESP2 redirect client in pub/sub mode, whatever it is
            # subscribed to; it goes out in order with that client's other messages (a
            # RESP2 subscriber runs no command that could change a key: never before a reply).
            message = Push((b"message", INVALIDATE_CHANNEL, keys))
            hub(self.server).deliver(dest, message, encode(message))
        # else: a RESP2 connection cannot receive a push

    def _deliver(self, target: Client, dest: Client, message: Push) -> None:
        current = self.current
        if current is not None and (target is current or dest is current):
            # Caused by the running command of this client: after its reply, as in Redis 7.2.
            asyncio.get_running_loop().call_soon(dest.push, message)
        else:
            dest.push(message)

    def _broadcast(self) -> None:
        self.bcast_due = False
        for entry in list(self.prefixes.values()):
            if not entry.pending:
                continue
            pending = entry.pending
            entry.pending = {}
            keys = sorted(pending)
            for client in list(entry.clients):
                info = client.extra.get("tracking")
                if info is None:
                    continue
                if info.noloop:
                    theirs = [key for key in keys if pending[key] is not client]
                    if theirs:
                        self.send(client, info, theirs)
                else:
                    self.send(client, info, keys)

    def _send_nulls(self) -> None:
        self.null_due = False
        for client in list(self.clients):
            info = client.extra.get("tracking")
            if info is not None:
                self.send(client, info, None)


def tracking_state(server: Server) -> TrackingState:
    """The server's tracking state, created (with its hooks) on first use."""
    state = server.extra.get("tracking")
    if state is None:
        state = server.extra["tracking"] = TrackingState(server)
        server.change_listeners.append(state.key_changed)
        server.disconnect_hooks.append(disable_tracking)
        for db in server.databases:
            db.on_flush = state.flushed
    return state


class TrackingClient(Client):
    """A client with tracking on: remembers the keys of its read-only commands."""

    __slots__ = ()

    def call(self, cmd: Command, args: list[bytes]) -> Any:
        """Run ``cmd`` (see :meth:`Client.call`), then do the tracking bookkeeping."""
        state: TrackingState = self.server.extra["tracking"]
        previous = state.current
        state.current = self
        try:
            reply = Client.call(self, cmd, args)
        finally:
            state.current = previous
        info: ClientTracking | None = self.extra.get("tracking")
        if info is not None:
            flags = cmd.flags
            if "readonly" in flags and not info.bcast and "pubsub" not in flags:
                state.remember(self, info, cmd, args)
            # CLIENT CACHING applies to the next command only (CLIENT itself does not count,
            # nor do the commands of a transaction being queued).
            if info.caching and cmd.name != "client" and self.multi is None:
                info.caching = False
        return reply

    def _plain(self) -> Any:
        """Never plain: the connection's fast path runs commands without :meth:`call`,
        which would skip remembering what this client reads."""
        return None


def disable_tracking(client: Client) -> None:
    """Turn tracking off for ``client`` (CLIENT TRACKING OFF, RESET, disconnection)."""
    info: ClientTracking | None = client.extra.pop("tracking", None)
    if info is None:
        return
    client.extra.pop("tracking-redirect", None)
    state: TrackingState = client.server.extra["tracking"]
    for prefix in info.prefixes:
        entry = state.prefixes.get(prefix)
        if entry is not None:
            entry.clients.pop(client, None)
            if not entry.clients:
                del state.prefixes[prefix]
    state.clients.pop(client, None)
    if not state.clients:
        state.forget_all()  # every id in the table belongs to a client no longer tracking
    if type(client) is TrackingClient:
        client.__class__ = Client  # type: ignore[assignment]  # back to the plain class


# ------------------------------------------------------------------------- CLIENT ...


def _strict_int(data: bytes) -> int:
    """An integer as Redis's string2ll reads it (no sign '+', spaces or leading zeros)."""
    body = data[1:] if data[:1] == b"-" else data
    if not body.isdigit() or len(body) > 19 or (len(body) > 1 and body[:1] == b"0"):
        raise ErrorReply("ERR value is not an integer or out of range")
    value = int(data)
    if not -(2**63) <= value < 2**63:
        raise ErrorReply("ERR value is not an integer or out of range")
    return value


def _overlap(a: bytes, b: bytes) -> bool:
    return a.startswith(b) or b.startswith(a)


def client_tracking(client: Client, args: list[bytes]) -> Any:
    """CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]."""
    if len(args) < 3:
        raise wrong_arity("client|tracking")
    redirect = 0
    bcast = optin = optout = noloop = False
    prefixes: list[bytes] = []
    j = 3
    while j < len(args):
        option = args[j].lower()
        more = j < len(args) - 1
        if option == b"redirect" and more:
            j += 1
            if redirect != 0:
                raise ErrorReply("ERR A client can only redirect to a single other client")
            redirect = _strict_int(args[j])
            if redirect not in client.server.clients:
                raise ErrorReply("ERR The client ID you want redirect to does not exist")
        elif option == b"bcast":
            bcast = True
        elif option == b"optin":
            optin = True
        elif option == b"optout":
            optout = True
        elif option == b"noloop":
            noloop = True
        elif option == b"prefix" and more:
            j += 1
            prefixes.append(args[j])
        else:
            raise ErrorReply(SYNTAX)
        j += 1
    mode = args[2].lower()
    if mode == b"off":
        disable_tracking(client)
        return "OK"
    if mode != b"on":
        raise ErrorReply(SYNTAX)
    info: ClientTracking | None = client.extra.get("tracking")
    if not bcast and prefixes:
        raise ErrorReply("ERR PREFIX option requires BCAST mode to be enabled")
    if info is not None and info.bcast != bcast:
        raise ErrorReply(
            "ERR You can't switch BCAST mode on/off before disabling tracking for this client, "
            "and then re-enabling it with a different mode."
        )
    if bcast and (optin or optout):
        raise ErrorReply("ERR OPTIN and OPTOUT are not compatible with BCAST")
    if optin and optout:
        raise ErrorReply("ERR You can't specify both OPTIN mode and OPTOUT mode")
    if info is not None and ((optin and info.optout) or (optout and info.optin)):
        raise ErrorReply(
            "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, "
            "and then re-enabling it with a different mode."
        )
    if bcast:
        for i, prefix in enumerate(prefixes):
            for existing in info.prefixes if info is not None else ():
                if _overlap(existing, prefix):
                    raise ErrorReply(
                        f"ERR Prefix '{_text(prefix)}' overlaps with an existing prefix "
                        f"'{_text(existing)}'. Prefixes for a single client must not overlap."
                    )
            for other in prefixes[i + 1 :]:
                if _overlap(prefix, other):
                    raise ErrorReply(
                        f"ERR Prefix '{_text(prefix)}' overlaps with another provided prefix "
                        f"'{_text(other)}'. Prefixes for a single client must not overlap."
                    )
    state = tracking_state(client.server)
    if info is None:
        info = client.extra["tracking"] = ClientTracking()
        state.clients[client] = None
        if type(client) is Client:
            client.__class__ = TrackingClient
    info.bcast, info.optin, info.optout, info.noloop = bcast, optin, optout, noloop
    info.redirect = redirect
    info.broken = False
    client.extra["tracking-redirect"] = redirect  # CLIENT LIST's redir=
    if bcast:
        for prefix in prefixes or [b""]:
            if prefix not in info.prefixes:
                info.prefixes.append(prefix)
                state.prefixes.setdefault(prefix, _Prefix()).clients[client] = None
    return "OK"


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def client_caching(client: Client, args: list[bytes]) -> Any:
    """CLIENT CACHING YES|NO: track (OPTIN) or skip (OPTOUT) the next command's keys."""
    if len(args) != 3:
        raise wrong_arity("client|caching")
    info: ClientTracking | None = client.extra.get("tracking")
    if info is None:
        raise ErrorReply(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with "
            "OPTIN or OPTOUT mode enabled"
        )
    answer = args[2].lower()
    if answer == b"yes":
        if not info.optin:
            raise ErrorReply("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")
    elif answer == b"no":
        if not info.optout:
            raise ErrorReply("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")
    else:
        raise ErrorReply(SYNTAX)
    info.caching = True
    return "OK"


def client_getredir(client: Client, args: list[bytes]) -> Any:
    """CLIENT GETREDIR: the redirect client id (0 without one, -1 when tracking is off)."""
    if len(args) != 2:
        raise wrong_arity("client|getredir")
    info: ClientTracking | None = client.extra.get("tracking")
    return -1 if info is None else info.redirect


def client_trackinginfo(client: Client, args: list[bytes]) -> Any:
    """CLIENT TRACKINGINFO: flags, redirect and prefixes of the client's tracking."""
    if len(args) != 2:
        raise wrong_arity("client|trackinginfo")
    info: ClientTracking | None = client.extra.get("tracking")
    flags: list[bytes]
    if info is None:
        flags = [b"off"]
    else:
        flags = [b"on"]
        if info.bcast:
            flags.append(b"bcast")
        if info.optin:
            flags.append(b"optin")
            if info.caching:
                flags.append(b"caching-yes")
        if info.optout:
            flags.append(b"optout")
            if info.caching:
                flags.append(b"caching-no")
        if info.noloop:
            flags.append(b"noloop")
        if info.broken:
            flags.append(b"broken_redirect")
    return {
        b"flags": set(flags) if client.resp3 else flags,
        b"redirect": -1 if info is None else info.redirect,
        b"prefixes": [] if info is None else sorted(info.prefixes),
    }


TRACKING_SUBCOMMANDS: dict[bytes, Handler] = {
    b"tracking": client_tracking,
    b"caching": client_caching,
    b"getredir": client_getredir,
    b"trackinginfo": client_trackinginfo,
}
"""CLIENT's tracking subcommands, by lower-case name: handlers taking the whole command."""

_ARITY = {b"tracking": -3, b"caching": 3, b"getredir": 2, b"trackinginfo": 2, b"id": 2}


def _client_id(client: Client, args: list[bytes]) -> Any:
    if len(args) != 2:
        raise wrong_arity("client|id")
    return client.id


def _name_subcommands(parent: Command, handlers: dict[bytes, Handler]) -> None:
    for name, handler in handlers.items():
        text = name.decode()
        parent.subcommands.setdefault(
            text,
            Command(
                name=f"client|{text}",
                handler=handler,
                arity=_ARITY[name],
                flags=frozenset({"noscript", "loading", "stale"}),
                group="connection",
                summary=(handler.__doc__ or "").strip().split("\n")[0],
            ),
        )


def _hook_client() -> None:
    """Route CLIENT TRACKING/CACHING/GETREDIR/TRACKINGINFO (this module's) through the
    connection family's CLIENT command, which is imported first (modules load by name)."""
    existing = COMMANDS.get(b"client")
    if existing is None:  # pragma: no cover - commands/connection.py defines CLIENT
        raise RuntimeError("CLIENT must be registered before its tracking subcommands")
    original = existing.handler

    def client_with_tracking(client: Client, args: list[bytes]) -> Any:
        handler = TRACKING_SUBCOMMANDS.get(args[1].lower())
        if handler is not None:
            return handler(client, args)
        return original(client, args)

    existing.handler = client_with_tracking
    _name_subcommands(existing, TRACKING_SUBCOMMANDS)


_hook_client()
