"""BGREWRITEAOF: rewrite the append-only log in the background (see :mod:`..aof`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..aof import AppendOnlyLog
from ..resp import ErrorReply
from . import command

if TYPE_CHECKING:
    from ..connection import Client

IN_PROGRESS = "ERR Background append only file rewriting already in progress"


@command("bgrewriteaof", arity=1, flags="admin noscript no_async_loading", group="server", since="1.0.0")
def bgrewriteaof(client: Client, args: list[bytes]) -> Any:
    """Asynchronously rewrite the append-only file to disk."""
    server = client.server
    log = server.aof
    if log is None:
        # appendonly no: Redis still writes the file (a rewrite only, nothing logged after).
        log = server.extra.get("aof_rewriter")
        if log is None or log.closed:
            log = AppendOnlyLog(server, detached=True)
            server.extra["aof_rewriter"] = log
    elif server.extra.get("aof_rewriter") is not None and server.extra["aof_rewriter"].child_pid:
        raise ErrorReply(IN_PROGRESS)
    return log.start_rewrite()
