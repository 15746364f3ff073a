"""Connection commands: PING ECHO QUIT SELECT (the rest of the family: HELLO AUTH RESET CLIENT)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import wrong_arity
from ..resp import ErrorReply, Push
from . import command

if TYPE_CHECKING:
    from ..connection import Client


@command("ping", arity=-1, flags="fast", group="connection")
def ping(client: Client, args: list[bytes]) -> Any:
    """Ping the server."""
    if len(args) > 2:
        raise wrong_arity("ping")
    if (client.channels or client.patterns or client.shard_channels) and not client.resp3:
        # In subscribed RESP2 mode PING answers with a pub/sub-shaped array.
        return Push([b"pong", args[1] if len(args) == 2 else b""])
    return args[1] if len(args) == 2 else "PONG"


@command("echo", arity=2, flags="fast", group="connection")
def echo(client: Client, args: list[bytes]) -> Any:
    """Return the given string."""
    return args[1]


@command("quit", arity=-1, flags="no_auth fast allow_busy", group="connection")
def quit_(client: Client, args: list[bytes]) -> Any:
    """Close the connection (after this reply)."""
    client.close_after_reply = True
    return "OK"


@command("select", arity=2, flags="loading stale fast", group="connection")
def select(client: Client, args: list[bytes]) -> Any:
    """Change the selected database."""
    try:
        index = int(args[1])
    except ValueError:
        raise ErrorReply("ERR value is not an integer or out of range") from None
    if not 0 <= index < len(client.server.databases):
        raise ErrorReply("ERR DB index is out of range")
    client.db = client.server.databases[index]
    return "OK"
