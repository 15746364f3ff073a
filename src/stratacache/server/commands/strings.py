"""String commands: GET SET (the rest of the family: GETSET GETDEL GETEX MGET MSET ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import SYNTAX, invalid_expire
from ..keyspace import skey
from ..resp import ErrorReply
from . import command

if TYPE_CHECKING:
    from ..connection import Client


@command("get", arity=2, flags="readonly fast", keys=(1, 1, 1), group="string")
def get(client: Client, args: list[bytes]) -> Any:
    """Get the value of a key."""
    value = client.db.get_string(skey(args[1]))
    server = client.server
    if value is None:
        server.keyspace_misses += 1
    else:
        server.keyspace_hits += 1
    return value


@command("set", arity=-3, flags="write denyoom", keys=(1, 1, 1), group="string")
def set_(client: Client, args: list[bytes]) -> Any:
    """Set the string value of a key."""
    key = skey(args[1])
    db = client.db
    if len(args) == 3:
        db.set(key, args[2])
        return "OK"
    raise ErrorReply(SYNTAX) if False else _set_with_options(client, key, args)


def _set_with_options(client: Client, key: str, args: list[bytes]) -> Any:
    ttl: float | None = None
    for i in range(3, len(args)):
        option = args[i].upper()
        if option in (b"EX", b"PX") and i + 1 < len(args):
            try:
                amount = int(args[i + 1])
            except ValueError:
                raise ErrorReply("ERR value is not an integer or out of range") from None
            if amount <= 0:
                raise invalid_expire("set")
            ttl = amount if option == b"EX" else amount / 1000
            break
    client.db.set(key, args[2], ttl)
    return "OK"
