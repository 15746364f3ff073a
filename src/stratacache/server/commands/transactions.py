"""Transactions: MULTI EXEC DISCARD WATCH UNWATCH, with Redis 7's semantics and error texts.

The connection does the queueing: while ``client.multi`` is a list, every command but
EXEC/DISCARD/MULTI/WATCH/QUIT/RESET is checked as Redis checks it at queue time (existence,
arity, users' rights, maxmemory, the subscribe context, ``no_multi``) and queued (``QUEUED``)
or refused, which flags the transaction (``client.multi_error``: EXEC answers EXECABORT).

WATCH is optimistic locking: every change of a watched key (a write by anyone, this client
included, a deletion, FLUSHDB/FLUSHALL, an expiry) sets ``client.dirty_cas`` through the
server's change hook, and EXEC then answers the null array and runs nothing. An expiry is
seen even when nobody touched the expired key (the store expires lazily and tells nobody):
WATCH records the deadline of each key it watches, and EXEC aborts when one has passed, as
Redis's ``isWatchedKeyExpired`` does. EXEC drops the watches *before* running the queued
commands, so what the transaction itself writes never dirties a later transaction.

While EXEC runs the queue, ``client.extra["in_exec"]`` is True: a blocking command (BLPOP
and friends) must then answer at once, as Redis runs them non-blocking inside EXEC.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..connection import answer_now
from ..errors import OOM
from ..keyspace import skey
from ..resp import NULL_ARRAY, ErrorReply
from . import COMMANDS, command

if TYPE_CHECKING:
    from ..connection import Client

EXECABORT = "EXECABORT Transaction discarded because of previous errors."

# client.extra key: (db index, key) -> the key's deadline when it was watched (absent: none).
_DEADLINES = "watch_deadlines"


def _discard(client: Client) -> None:
    """Leave MULTI: forget the queue, the error flag and every watch."""
    client.multi = None
    client.multi_error = False
    client.server.unwatch(client)
    client.extra.pop(_DEADLINES, None)


def _watched_key_expired(client: Client) -> bool:
    """Whether a key that was live with an expiry when watched has expired since (Redis's
    ``isWatchedKeyExpired``): the store expires lazily, so no change hook told us."""
    deadlines: dict[tuple[int, str], float] | None = client.extra.get(_DEADLINES)
    if not deadlines:
        return False
    now = time.time()
    # Only keys still watched count (RESET or a disconnect may have dropped the watches).
    watched = client.watched
    return any(deadline <= now and item in watched for item, deadline in deadlines.items())


def _over_maxmemory(client: Client) -> bool:
    config = client.server.config
    return config.maxmemory_policy == "noeviction" and client.server.pool.used >= config.maxmemory


@command(
    "multi", arity=1, flags="noscript loading stale fast allow_busy", group="transactions", since="1.2.0"
)
def multi(client: Client, args: list[bytes]) -> Any:
    """Mark the start of a transaction block."""
    if client.multi is not None:
        # Redis answers the error and keeps the transaction as it was (not flagged).
        raise ErrorReply("ERR MULTI calls can not be nested")
    client.multi = []
    client.multi_error = False
    return "OK"


@command(
    "discard", arity=1, flags="noscript loading stale fast allow_busy", group="transactions", since="2.0.0"
)
def discard(client: Client, args: list[bytes]) -> Any:
    """Discard all commands issued after MULTI."""
    if client.multi is None:
        raise ErrorReply("ERR DISCARD without MULTI")
    _discard(client)
    return "OK"


@command("exec", arity=1, flags="noscript loading stale skip_slowlog", group="transactions", since="1.2.0")
def exec_(client: Client, args: list[bytes]) -> Any:
    """Execute all commands issued after MULTI."""
    queue = client.multi
    if queue is None:
        raise ErrorReply("ERR EXEC without MULTI")
    if client.multi_error:
        _discard(client)
        raise ErrorReply(EXECABORT)
    if client.dirty_cas or _watched_key_expired(client):
        _discard(client)
        return NULL_ARRAY
    commands = [COMMANDS[args_[0].lower()] for args_ in queue]
    if any(cmd.denyoom for cmd in commands) and _over_maxmemory(client):
        # Redis refuses the EXEC itself (it carries the queue's denyoom) and discards.
        _discard(client)
        raise ErrorReply(f"EXECABORT Transaction discarded because of: {OOM}")
    # Unwatch before running: the transaction's own writes must not dirty this client.
    _discard(client)
    replies: list[Any] = []
    extra = client.extra
    extra["in_exec"] = True
    try:
        for cmd, queued in zip(commands, queue, strict=True):
            # Blocking commands answer at once (in_exec).
            replies.append(answer_now(client.call(cmd, queued)))
    finally:
        extra["in_exec"] = False
    return replies


@command(
    "watch",
    arity=-2,
    flags="noscript loading stale fast allow_busy",
    keys=(1, -1, 1),
    group="transactions",
    since="2.2.0",
)
def watch(client: Client, args: list[bytes]) -> Any:
    """Watch the given keys to determine execution of the MULTI/EXEC block."""
    if client.multi is not None:
        raise ErrorReply("ERR WATCH inside MULTI is not allowed")
    server = client.server
    db = client.db
    index = db.index
    watched = client.watched
    for raw in args[1:]:
        key = skey(raw)
        item = (index, key)
        if item in watched:
            continue
        watched.add(item)
        server.watchers.setdefault(item, set()).add(client)
        deadline = db.deadline(key)
        if deadline is not None:
            client.extra.setdefault(_DEADLINES, {})[item] = deadline
    return "OK"


@command(
    "unwatch", arity=1, flags="noscript loading stale fast allow_busy", group="transactions", since="2.2.0"
)
def unwatch(client: Client, args: list[bytes]) -> Any:
    """Forget about all watched keys."""
    client.server.unwatch(client)
    client.extra.pop(_DEADLINES, None)
    return "OK"
