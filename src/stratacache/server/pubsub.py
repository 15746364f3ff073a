"""The pub/sub hub of the server: who listens to which channel and pattern, and delivery.

One :class:`Hub` per server, in ``server.extra["pubsub"]`` (:func:`hub` creates it on first
use and registers the clean-up of a client that leaves). A client's own subscriptions are
the sets ``client.channels``, ``client.patterns`` and ``client.shard_channels`` (the
connection reads them for the subscribed-context rule); the hub keeps the reverse maps,
channel -> clients, in subscription order, which is the order Redis delivers in.

A message is a RESP3 push (``>3 message <channel> <payload>``) or, in RESP2, the same
array; RESP2 subscribers get theirs batched once per turn of the event loop
(:meth:`Hub.deliver`). The connection's output buffer limit for pub/sub clients
(``client-output-buffer-limit-pubsub``) closes a subscriber that does not read.

Patterns are Redis globs (:func:`glob_matcher`, a port of Redis's ``stringmatchlen``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from .resp import Push, encode
from .scan import compile_pattern

if TYPE_CHECKING:
    from .app import Server
    from .connection import Client

__all__ = ["Hub", "glob_matcher", "hub", "unsubscribe_all"]

_MESSAGE = b"message"
_PMESSAGE = b"pmessage"
_SMESSAGE = b"smessage"


class Hub:
    """The server's subscriptions (see the module docstring)."""

    __slots__ = ("channels", "flush_due", "patterns", "pending", "shard_channels")

    def __init__(self) -> None:
        self.channels: dict[bytes, dict[Client, None]] = {}
        # pattern -> (its matcher, its subscribers)
        self.patterns: dict[bytes, tuple[Callable[[bytes], bool], dict[Client, None]]] = {}
        self.shard_channels: dict[bytes, dict[Client, None]] = {}
        # RESP2 subscribers' messages not yet written (see deliver).
        self.pending: dict[Client, list[bytes]] = {}
        self.flush_due = False

    # ---------------------------------------------------------- subscriptions

    def subscribe(self, client: Client, channel: bytes) -> None:
        """Add ``client`` to ``channel`` (no-op when it is already there)."""
        if channel not in client.channels:
            client.channels.add(channel)
            self.channels.setdefault(channel, {})[client] = None

    def unsubscribe(self, client: Client, channel: bytes) -> None:
        """Remove ``client`` from ``channel``."""
        client.channels.discard(channel)
        _drop(self.channels, channel, client)

    def psubscribe(self, client: Client, pattern: bytes) -> None:
        """Add ``client`` to the glob ``pattern``."""
        if pattern not in client.patterns:
            client.patterns.add(pattern)
            entry = self.patterns.get(pattern)
            if entry is None:
                entry = self.patterns[pattern] = (glob_matcher(pattern), {})
            entry[1][client] = None

    def punsubscribe(self, client: Client, pattern: bytes) -> None:
        """Remove ``client`` from ``pattern``."""
        client.patterns.discard(pattern)
        entry = self.patterns.get(pattern)
        if entry is not None:
            entry[1].pop(client, None)
            if not entry[1]:
                del self.patterns[pattern]

    def ssubscribe(self, client: Client, channel: bytes) -> None:
        """Add ``client`` to the shard channel ``channel``."""
        if channel not in client.shard_channels:
            client.shard_channels.add(channel)
            self.shard_channels.setdefault(channel, {})[client] = None

    def sunsubscribe(self, client: Client, channel: bytes) -> None:
        """Remove ``client`` from the shard channel ``channel``."""
        client.shard_channels.discard(channel)
        _drop(self.shard_channels, channel, client)

    def forget(self, client: Client) -> None:
        """Drop every subscription of ``client`` (it left, or sent RESET)."""
        self.flush_client(client)
        for channel in list(client.channels):
            self.unsubscribe(client, channel)
        for pattern in list(client.patterns):
            self.punsubscribe(client, pattern)
        for channel in list(client.shard_channels):
            self.sunsubscribe(client, channel)

    # --------------------------------------------------------------- delivery

    def publish(self, channel: bytes, message: bytes) -> int:
        """Deliver ``message`` to ``channel``'s subscribers and the matching patterns'; the
        number of deliveries (PUBLISH's reply: a client subscribed twice counts twice)."""
        receivers = 0
        clients = self.channels.get(channel)
        if clients:
            push = Push((_MESSAGE, channel, message))
            data = None
            for client in list(clients):  # a delivery may close a slow subscriber
                # The client's own set is the truth (a RESET elsewhere may have cleared it).
                if channel in client.channels:
                    if data is None:
                        data = encode(push)
                    self.deliver(client, push, data)
                    receivers += 1
        if self.patterns:
            for pattern, (match, subscribers) in list(self.patterns.items()):
                if match(channel):
                    push = Push((_PMESSAGE, pattern, channel, message))
                    data = None
                    for client in list(subscribers):
                        if pattern in client.patterns:
                            if data is None:
                                data = encode(push)
                            self.deliver(client, push, data)
                            receivers += 1
        return receivers

    def spublish(self, channel: bytes, message: bytes) -> int:
        """Deliver ``message`` to the shard channel's subscribers (SPUBLISH)."""
        receivers = 0
        clients = self.shard_channels.get(channel)
        if clients:
            push = Push((_SMESSAGE, channel, message))
            data = encode(push)
            for client in list(clients):  # a delivery may close a slow subscriber
                if channel in client.shard_channels:
                    self.deliver(client, push, data)
                    receivers += 1
        return receivers

    def deliver(self, client: Client, message: Push, resp2: bytes) -> None:
        """Send ``message`` (``resp2``: its RESP2 encoding) to ``client``.

        A RESP2 client in pub/sub mode gets its messages batched: written once per turn of
        the event loop rather than one ``write`` (a syscall) each. Such a client can run
        nothing but (un)subscriptions, PING, QUIT and RESET; the (un)subscriptions and RESET
        write what is pending before their replies (:meth:`flush_client`), so a message is
        never read after the UNSUBSCRIBE that followed it. A RESP3 client, which may run any
        command, gets each message at once, in order with its replies.
        """
        if client.resp3 or client._out is not None:
            client.push(message)
            return
        pending = self.pending.get(client)
        if pending is None:
            self.pending[client] = [resp2]
            if not self.flush_due:
                self.flush_due = True
                asyncio.get_running_loop().call_soon(self._flush)
        else:
            pending.append(resp2)

    def flush_client(self, client: Client) -> None:
        """Write ``client``'s pending messages now (ahead of the reply being built)."""
        pending = self.pending.pop(client, None)
        if pending:
            out = client._out  # the batch of replies the client's command is adding to
            if out is not None:
                out.extend(pending)
            else:
                client.write(b"".join(pending))

    def _flush(self) -> None:
        self.flush_due = False
        pending, self.pending = self.pending, {}
        for client, chunks in pending.items():
            # One write per subscriber; a slow one may be closed here (the output limit).
            client.write(b"".join(chunks) if len(chunks) > 1 else chunks[0])


def _drop(index: dict[bytes, dict[Client, None]], channel: bytes, client: Client) -> None:
    clients = index.get(channel)
    if clients is not None:
        clients.pop(client, None)
        if not clients:
            del index[channel]


def hub(server: Server) -> Hub:
    """The server's hub, created (with its disconnect hook) on first use."""
    found = server.extra.get("pubsub")
    if found is None:
        found = server.extra["pubsub"] = Hub()
        server.disconnect_hooks.append(found.forget)
    return found


def unsubscribe_all(client: Client) -> None:
    """Drop every subscription of ``client`` without replies (RESET calls this)."""
    found = client.server.extra.get("pubsub")
    if found is not None:
        found.forget(client)
    else:
        client.channels.clear()
        client.patterns.clear()
        client.shard_channels.clear()


# ----------------------------------------------------------------------------- globs


@lru_cache(maxsize=1024)
def glob_matcher(pattern: bytes) -> Callable[[bytes], bool]:
    """A function telling whether a channel name matches the Redis glob ``pattern``.

    As in Redis, the empty name matches only the empty pattern (not even ``*``).
    """
    # The keyspace's matcher (SCAN MATCH, KEYS): one port of Redis's stringmatchlen.
    if not any(c in pattern for c in b"*?[\\"):
        return pattern.__eq__
    return compile_pattern(pattern)
