"""Snapshot commands: SAVE BGSAVE LASTSAVE (the work is in :mod:`stratacache.server.snapshot`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..._exceptions import SnapshotError
from .. import snapshot
from ..errors import SYNTAX
from ..resp import ErrorReply
from . import command

if TYPE_CHECKING:
    from ..connection import Client


@command("save", arity=1, flags="admin noscript no_async_loading no_multi", group="server")
def save(client: Client, args: list[bytes]) -> Any:
    """Synchronously save the dataset to disk."""
    server = client.server
    if snapshot.active_child(server) == "rdb":
        raise ErrorReply("ERR Background save already in progress")
    try:
        snapshot.save(server)
    except SnapshotError as exc:
        raise ErrorReply(f"ERR {exc}") from None
    return "OK"


@command("bgsave", arity=-1, flags="admin noscript no_async_loading", group="server", since="1.0.0")
def bgsave(client: Client, args: list[bytes]) -> Any:
    """Asynchronously save the dataset to disk (SCHEDULE: once another child is done)."""
    schedule = False
    if len(args) > 1:
        if len(args) == 2 and args[1].lower() == b"schedule":
            schedule = True
        else:
            raise ErrorReply(SYNTAX)
    server = client.server
    running = snapshot.active_child(server)
    if running == "rdb":
        raise ErrorReply("ERR Background save already in progress")
    if running is not None:
        if schedule:
            snapshot.state(server).scheduled = True
            return "Background saving scheduled"
        raise ErrorReply(
            "ERR Another child process is active (AOF?): can't BGSAVE right now. "
            "Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible."
        )
    try:
        snapshot.bgsave(server)
    except OSError as exc:
        raise ErrorReply(f"ERR cannot fork a background save: {exc.strerror or exc}") from None
    return "Background saving started"


@command("lastsave", arity=1, flags="loading stale fast", group="server")
def lastsave(client: Client, args: list[bytes]) -> Any:
    """Get the Unix time of the last successful save to disk."""
    return int(snapshot.state(client.server).last_save)
