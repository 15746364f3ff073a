"""Redis's error replies, spelled as Redis spells them (clients and test suites match on them).

Handlers ``raise`` these (they are :class:`~stratacache.server.resp.ErrorReply`); the
connection turns them into ``-<message>`` replies. Keep the texts byte-for-byte Redis's.
"""

from __future__ import annotations

from .resp import ErrorReply

__all__ = [
    "NOT_FLOAT",
    "NOT_INTEGER",
    "OUT_OF_RANGE",
    "SYNTAX",
    "WRONGTYPE",
    "ErrorReply",
    "invalid_expire",
    "unknown_command",
    "unknown_subcommand",
    "wrong_arity",
]

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
SYNTAX = "ERR syntax error"
NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
OUT_OF_RANGE = "ERR index out of range"
NO_SUCH_KEY = "ERR no such key"
OOM = "OOM command not allowed when used memory > 'maxmemory'."
NOAUTH = "NOAUTH Authentication required."
NOT_ALLOWED_IN_SUBSCRIBE = (
    "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
    "are allowed in this context"
)


def wrong_arity(name: str) -> ErrorReply:
    """``ERR wrong number of arguments for 'get' command``."""
    return ErrorReply(f"ERR wrong number of arguments for '{name}' command")


def unknown_command(name: bytes, args: list[bytes]) -> ErrorReply:
    """Redis 7's text for an unknown command: the name, then the first arguments, each quoted
    and followed by a space, up to 128 characters (``'a' 'b' ``)."""
    shown = ""
    for arg in args[1:]:
        if len(shown) >= 128:
            break
        shown += f"'{_printable(arg, 128 - len(shown))}' "
    return ErrorReply(f"ERR unknown command '{_printable(name)}', with args beginning with: {shown}")


def unknown_subcommand(command: str, sub: bytes) -> ErrorReply:
    """``ERR unknown subcommand 'x'. Try CLIENT HELP.``"""
    return ErrorReply(f"ERR unknown subcommand '{_printable(sub)}'. Try {command.upper()} HELP.")


def invalid_expire(command: str) -> ErrorReply:
    """``ERR invalid expire time in 'set' command``."""
    return ErrorReply(f"ERR invalid expire time in '{command}' command")


def _printable(data: bytes, limit: int = 128) -> str:
    return data[:limit].decode("utf-8", "replace")
