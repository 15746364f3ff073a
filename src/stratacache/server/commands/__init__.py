"""The command table: every command the server knows, registered by the modules of this package.

A command module defines handlers and registers them with :func:`command`::

    @command("get", arity=2, flags="readonly fast", keys=(1, 1, 1), group="string")
    def get(client: Client, args: list[bytes]) -> Any:
        ...

A handler takes the calling :class:`~stratacache.server.connection.Client` and the whole
command (``args[0]`` is the name as sent) and returns a reply object (see
:mod:`stratacache.server.resp`) or raises :class:`~stratacache.server.resp.ErrorReply`.
``arity`` is Redis's: positive for an exact count of arguments including the name, negative
for a minimum. ``keys`` is (first, last, step) as in COMMAND INFO (last -1: to the end).
``flags`` are Redis's command flags (``write``, ``readonly``, ``denyoom``, ``admin``,
``pubsub``, ``noscript``, ``fast``, ``blocking``, ``no_auth``, ``no_multi``, ...): the
connection reads ``denyoom`` (maxmemory), ``no_auth`` (before AUTH), ``write`` (read-only
users, tracking) and ``no_multi``; COMMAND reports them all.

Every module of this package is imported by :func:`load`, so a new command family is a new
module and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..connection import Client

__all__ = ["COMMANDS", "Command", "Handler", "command", "load", "run_subcommand", "subcommand"]

Handler = Callable[["Client", list[bytes]], Any]


@dataclass(slots=True)
class Command:
    """One entry of the command table (what COMMAND INFO reports, and the handler)."""

    name: str
    handler: Handler
    arity: int
    flags: frozenset[str]
    first_key: int = 0
    last_key: int = 0
    step: int = 0
    group: str = "generic"
    summary: str = ""
    since: str = "1.0.0"
    subcommands: dict[str, Command] = field(default_factory=dict)
    # Hot-path copies of the flags the connection tests on every call.
    write: bool = False
    denyoom: bool = False
    no_auth: bool = False
    calls: int = 0
    usec: int = 0
    failed: int = 0

    def key_positions(self, args: list[bytes]) -> list[int]:
        """The indexes of ``args`` that are keys, from (first, last, step)."""
        if self.first_key <= 0 or len(args) <= self.first_key:
            return []
        last = self.last_key if self.last_key >= 0 else len(args) + self.last_key
        last = min(last, len(args) - 1)
        return list(range(self.first_key, last + 1, max(self.step, 1)))


COMMANDS: dict[bytes, Command] = {}
"""The table, by lower-case name."""


def _entry(
    name: str,
    handler: Handler,
    *,
    arity: int,
    flags: str,
    keys: tuple[int, int, int],
    group: str,
    summary: str,
    since: str,
) -> Command:
    """A table entry, with the hot-path copies of its flags (for commands and subcommands)."""
    flag_set = frozenset(flags.split())
    return Command(
        name=name,
        handler=handler,
        arity=arity,
        flags=flag_set,
        first_key=keys[0],
        last_key=keys[1],
        step=keys[2],
        group=group,
        summary=summary or (handler.__doc__ or "").strip().split("\n")[0],
        since=since,
        write="write" in flag_set,
        denyoom="denyoom" in flag_set,
        no_auth="no_auth" in flag_set,
    )


def command(
    name: str,
    *,
    arity: int,
    flags: str = "",
    keys: tuple[int, int, int] = (0, 0, 0),
    group: str = "generic",
    summary: str = "",
    since: str = "1.0.0",
) -> Callable[[Handler], Handler]:
    """Register the decorated handler as command ``name`` (see the module docstring)."""

    def register(handler: Handler) -> Handler:
        key = name.lower().encode()
        if key in COMMANDS:
            raise RuntimeError(f"command {name!r} is registered twice")
        COMMANDS[key] = _entry(
            name.lower(),
            handler,
            arity=arity,
            flags=flags,
            keys=keys,
            group=group,
            summary=summary,
            since=since,
        )
        return handler

    return register


def subcommand(
    parent: str,
    name: str,
    *,
    arity: int,
    flags: str = "",
    keys: tuple[int, int, int] = (0, 0, 0),
    summary: str = "",
    since: str = "1.0.0",
) -> Callable[[Handler], Handler]:
    """Register the decorated handler as ``PARENT NAME`` (``CLIENT LIST``): an entry of the
    parent's :attr:`Command.subcommands`, named ``parent|name`` as Redis names it (arity
    errors, ACL rules, COMMAND INFO). The parent must be registered first (modules are
    imported in name order); its handler calls :func:`run_subcommand`. ``arity`` counts the
    parent's name too (``CLIENT ID`` is 2)."""

    def register(handler: Handler) -> Handler:
        owner = COMMANDS[parent.lower().encode()]
        key = name.lower()
        if key in owner.subcommands:
            raise RuntimeError(f"subcommand {parent} {name!r} is registered twice")
        owner.subcommands[key] = _entry(
            f"{owner.name}|{key}",
            handler,
            arity=arity,
            flags=flags,
            keys=keys,
            group=owner.group,
            summary=summary,
            since=since,
        )
        return handler

    return register


def run_subcommand(client: Client, args: list[bytes]) -> Any:
    """Run ``args`` (``[parent, sub, ...]``) through the parent's subcommand table, with
    Redis's errors for an unknown subcommand and a wrong number of arguments."""
    from ..errors import unknown_subcommand, wrong_arity

    owner = COMMANDS[args[0].lower()]
    sub = owner.subcommands.get(args[1].decode("latin-1").lower())
    if sub is None:
        raise unknown_subcommand(owner.name, args[1])
    arity = sub.arity
    if (arity > 0 and len(args) != arity) or len(args) < -arity:
        raise wrong_arity(sub.name)
    sub.calls += 1
    return sub.handler(client, args)


def load() -> dict[bytes, Command]:
    """Import every command module of this package and return the table (imports are cached,
    so later calls cost a lookup per module)."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{module.name}")
    return COMMANDS
