"""Pub/sub commands: SUBSCRIBE PSUBSCRIBE SSUBSCRIBE, their UNSUBSCRIBEs, PUBLISH SPUBLISH, PUBSUB.

Replies have Redis's shapes: each (un)subscription is a ``[kind, channel, count]`` array in
RESP2 and a push in RESP3 (one per channel, so ``SUBSCRIBE a b`` answers twice), where the
count is the client's channels plus patterns (shard channels count apart). The hub (who
listens to what, delivery) is :mod:`stratacache.server.pubsub`; the rule that a RESP2 client
with subscriptions may only run (un)subscriptions, PING, QUIT and RESET is the connection's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import unknown_subcommand, wrong_arity
from ..pubsub import Hub, glob_matcher, hub
from ..resp import ErrorReply, Push
from . import COMMANDS, Command, command

if TYPE_CHECKING:
    from ..connection import Client


def _count(client: Client) -> int:
    return len(client.channels) + len(client.patterns)


def _answer(client: Client, replies: list[Push]) -> Push:
    """Push every reply but the last, which is returned: the connection writes it after the
    pushes, so a multi-channel (un)subscription answers in order."""
    for reply in replies[:-1]:
        client.push(reply)
    return replies[-1]


def _shard_count(client: Client) -> int:
    return len(client.shard_channels)


def _change(
    client: Client,
    kind: bytes,
    names: list[bytes],
    change: Callable[[Hub, Client, bytes], None],
    count: Callable[[Client], int],
) -> Push:
    """Apply ``change`` (a Hub method) to each name and answer ``[kind, name, count]`` for
    each, in order; with no names (an UNSUBSCRIBE of nothing) one reply with a null name."""
    h = hub(client.server)
    h.flush_client(client)  # messages published before this command come first
    if not names:
        return Push((kind, None, count(client)))
    replies = []
    for name in names:
        change(h, client, name)
        replies.append(Push((kind, name, count(client))))
    return _answer(client, replies)


@command("subscribe", arity=-2, flags="pubsub noscript loading stale", group="pubsub")
def subscribe(client: Client, args: list[bytes]) -> Any:
    """Listen for messages published to the given channels."""
    return _change(client, b"subscribe", args[1:], Hub.subscribe, _count)


@command("psubscribe", arity=-2, flags="pubsub noscript loading stale", group="pubsub")
def psubscribe(client: Client, args: list[bytes]) -> Any:
    """Listen for messages published to channels matching the given patterns."""
    return _change(client, b"psubscribe", args[1:], Hub.psubscribe, _count)


@command(
    "ssubscribe",
    arity=-2,
    flags="pubsub noscript loading stale",
    keys=(1, -1, 1),
    group="pubsub",
    since="7.0.0",
)
def ssubscribe(client: Client, args: list[bytes]) -> Any:
    """Listen for messages published to the given shard channels."""
    return _change(client, b"ssubscribe", args[1:], Hub.ssubscribe, _shard_count)


@command("unsubscribe", arity=-1, flags="pubsub noscript loading stale", group="pubsub")
def unsubscribe(client: Client, args: list[bytes]) -> Any:
    """Stop listening for messages posted to the given channels (all of them without one)."""
    return _change(client, b"unsubscribe", args[1:] or list(client.channels), Hub.unsubscribe, _count)


@command("punsubscribe", arity=-1, flags="pubsub noscript loading stale", group="pubsub")
def punsubscribe(client: Client, args: list[bytes]) -> Any:
    """Stop listening for messages posted to channels matching the given patterns."""
    return _change(client, b"punsubscribe", args[1:] or list(client.patterns), Hub.punsubscribe, _count)


@command(
    "sunsubscribe",
    arity=-1,
    flags="pubsub noscript loading stale",
    keys=(1, -1, 1),
    group="pubsub",
    since="7.0.0",
)
def sunsubscribe(client: Client, args: list[bytes]) -> Any:
    """Stop listening for messages posted to the given shard channels (all without one)."""
    names = args[1:] or list(client.shard_channels)
    return _change(client, b"sunsubscribe", names, Hub.sunsubscribe, _shard_count)


@command("publish", arity=3, flags="pubsub loading stale fast may_replicate", group="pubsub")
def publish(client: Client, args: list[bytes]) -> Any:
    """Post a message to a channel; the number of clients that received it."""
    found = client.server.extra.get("pubsub")
    return 0 if found is None else found.publish(args[1], args[2])


@command(
    "spublish",
    arity=3,
    flags="pubsub loading stale fast may_replicate",
    keys=(1, 1, 1),
    group="pubsub",
    since="7.0.0",
)
def spublish(client: Client, args: list[bytes]) -> Any:
    """Post a message to a shard channel; the number of clients that received it."""
    found = client.server.extra.get("pubsub")
    return 0 if found is None else found.spublish(args[1], args[2])


# --------------------------------------------------------------------------- PUBSUB

_HELP = [
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
]


def _active(index: dict[bytes, Any], args: list[bytes]) -> list[bytes]:
    if len(args) > 3:
        sub = args[1][:128].decode("utf-8", "replace")
        raise ErrorReply(f"ERR unknown subcommand or wrong number of arguments for '{sub}'. Try PUBSUB HELP.")
    if len(args) == 2:
        return list(index)
    match = glob_matcher(args[2])
    return [channel for channel in index if match(channel)]


def _numsub(index: dict[bytes, Any], args: list[bytes]) -> list[Any]:
    reply: list[Any] = []
    for channel in args[2:]:
        reply.append(channel)
        reply.append(len(index.get(channel, ())))
    return reply


def _pubsub_channels(client: Client, args: list[bytes]) -> Any:
    return _active(hub(client.server).channels, args)


def _pubsub_shardchannels(client: Client, args: list[bytes]) -> Any:
    return _active(hub(client.server).shard_channels, args)


def _pubsub_numsub(client: Client, args: list[bytes]) -> Any:
    return _numsub(hub(client.server).channels, args)


def _pubsub_shardnumsub(client: Client, args: list[bytes]) -> Any:
    return _numsub(hub(client.server).shard_channels, args)


def _pubsub_numpat(client: Client, args: list[bytes]) -> Any:
    if len(args) != 2:
        raise wrong_arity("pubsub|numpat")
    # Redis 7 counts distinct patterns (Redis 6 counted subscriptions).
    return len(hub(client.server).patterns)


def _pubsub_help(client: Client, args: list[bytes]) -> Any:
    if len(args) != 2:
        raise wrong_arity("pubsub|help")
    return list(_HELP)


_SUBCOMMANDS = {
    b"channels": _pubsub_channels,
    b"numsub": _pubsub_numsub,
    b"numpat": _pubsub_numpat,
    b"shardchannels": _pubsub_shardchannels,
    b"shardnumsub": _pubsub_shardnumsub,
    b"help": _pubsub_help,
}


@command("pubsub", arity=-2, flags="", group="pubsub", since="2.8.0")
def pubsub(client: Client, args: list[bytes]) -> Any:
    """Inspect the pub/sub state: active channels, subscriber counts, patterns."""
    handler = _SUBCOMMANDS.get(args[1].lower())
    if handler is None:
        raise unknown_subcommand("pubsub", args[1])
    return handler(client, args)


def _register_subcommands() -> None:
    """Name PUBSUB's subcommands in the table, so that errors and COMMAND can say
    ``pubsub|channels`` as Redis does."""
    parent = COMMANDS[b"pubsub"]
    for name, handler in _SUBCOMMANDS.items():
        text = name.decode()
        parent.subcommands[text] = Command(
            name=f"pubsub|{text}",
            handler=handler,
            arity=2 if text in ("numpat", "help") else -2,
            flags=frozenset({"pubsub", "loading", "stale"}),
            group="pubsub",
            summary=(handler.__doc__ or "").strip(),
        )


_register_subcommands()
