"""Scripting: EVAL EVALSHA EVAL_RO EVALSHA_RO SCRIPT (LOAD EXISTS FLUSH KILL HELP).

Scripts run in the server's sandboxed Lua 5.1 state (:mod:`stratacache.server.lua`, which
needs lupa, part of the ``server`` extra); the script cache is ``server.extra["scripts"]``
(sha1 -> script). Checks come in Redis 7's order and with its texts: EVALSHA's NOSCRIPT for
a name that is not 40 characters, numkeys, then the script's compilation or lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import NOT_INTEGER, OOM, unknown_subcommand, wrong_arity
from ..resp import ErrorReply
from . import command

if TYPE_CHECKING:
    from ..connection import Client
    from ..lua import LuaEngine, Script

NOSCRIPT = "NOSCRIPT No matching script. Please use EVAL."

_HELP = [
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
]

# Subcommand arities, Redis's (container name|sub in the arity error); the Lua runtime reads
# them too, as Redis checks a subcommand's arity before its noscript flag.
SCRIPT_ARITY = {b"load": 3, b"exists": -3, b"flush": -2, b"kill": 2, b"help": 2, b"debug": 3}


def _engine(client: Client) -> LuaEngine:
    from ..lua import engine_for

    return engine_for(client.server)


def _eval(client: Client, args: list[bytes], *, by_sha: bool, read_only: bool) -> Any:
    if by_sha and len(args[1]) != 40:
        raise ErrorReply(NOSCRIPT)  # no script can have such a name: Redis answers at once
    try:
        numkeys = int(args[2])
    except ValueError:
        raise ErrorReply(NOT_INTEGER) from None
    if numkeys > len(args) - 3:
        raise ErrorReply("ERR Number of keys can't be greater than number of args")
    if numkeys < 0:
        raise ErrorReply("ERR Number of keys can't be negative")
    engine = _engine(client)
    script: Script | None
    if by_sha:
        script = engine.scripts.get(args[1].decode("latin-1").lower())
        if script is None:
            raise ErrorReply(NOSCRIPT)
    else:
        script = engine.load(args[1])
    flags = script.flags
    if flags is not None and not flags & {"no-writes", "allow-oom"} and _over_maxmemory(client):
        # A script with a shebang that may write is refused up front, as a denyoom command
        # (the _RO commands included: Redis takes the flags from the shebang alone).
        raise ErrorReply(OOM)
    keys = args[3 : 3 + numkeys]
    return engine.run(client, script, keys, args[3 + numkeys :], read_only)


def _over_maxmemory(client: Client) -> bool:
    config = client.server.config
    return config.maxmemory_policy == "noeviction" and client.server.pool.used >= config.maxmemory


_EVAL_FLAGS = "noscript stale skip_monitor no_mandatory_keys movablekeys"


@command("eval", arity=-3, flags=_EVAL_FLAGS, group="scripting", since="2.6.0")
def eval_(client: Client, args: list[bytes]) -> Any:
    """Execute a Lua script server side."""
    return _eval(client, args, by_sha=False, read_only=False)


@command("evalsha", arity=-3, flags=_EVAL_FLAGS, group="scripting", since="2.6.0")
def evalsha(client: Client, args: list[bytes]) -> Any:
    """Execute a Lua script server side, by its SHA1 digest."""
    return _eval(client, args, by_sha=True, read_only=False)


@command("eval_ro", arity=-3, flags="readonly " + _EVAL_FLAGS, group="scripting", since="7.0.0")
def eval_ro(client: Client, args: list[bytes]) -> Any:
    """Execute a read-only Lua script server side."""
    return _eval(client, args, by_sha=False, read_only=True)


@command("evalsha_ro", arity=-3, flags="readonly " + _EVAL_FLAGS, group="scripting", since="7.0.0")
def evalsha_ro(client: Client, args: list[bytes]) -> Any:
    """Execute a read-only Lua script server side, by its SHA1 digest."""
    return _eval(client, args, by_sha=True, read_only=True)


@command("script", arity=-2, group="scripting", since="2.6.0")
def script(client: Client, args: list[bytes]) -> Any:
    """A container for Lua scripts management commands."""
    sub = args[1].lower()
    arity = SCRIPT_ARITY.get(sub)
    if arity is None:
        raise unknown_subcommand("script", args[1])
    if (arity > 0 and len(args) != arity) or len(args) < -arity:
        raise wrong_arity(f"script|{sub.decode()}")
    if sub == b"help":
        return _HELP
    if sub == b"kill":
        # Scripts run on the server's only thread: none is ever running while a command
        # is read (a runaway script is stopped by lua-time-limit instead).
        raise ErrorReply("NOTBUSY No scripts in execution right now.")
    if sub == b"debug":
        raise ErrorReply("ERR SCRIPT DEBUG is not supported by this server")
    server = client.server
    if sub == b"flush":
        if len(args) > 3 or (len(args) == 3 and args[2].upper() not in (b"SYNC", b"ASYNC")):
            raise ErrorReply("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
        # A new Lua state with the new cache: what scripts left in the old one goes too.
        server.extra.pop("lua", None)
        server.extra.pop("scripts", None)
        return "OK"
    if sub == b"exists":
        cache = server.extra.get("scripts") or {}
        return [1 if sha.decode("latin-1").lower() in cache else 0 for sha in args[2:]]
    # load
    return _engine(client).load(args[2]).sha.encode()
