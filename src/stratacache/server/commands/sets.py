"""Set commands (SADD SINTER SPOP SRANDMEMBER SINTERCARD ...) and the set value type.

A set keeps its members in a list plus a member-to-position dict, so that adding, removing
and picking a random member (SPOP, SRANDMEMBER) are all O(1): removal moves the last member
into the hole.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import SYNTAX, WRONGTYPE
from ..keyspace import RedisValue, skey
from ..resp import ErrorReply
from ..scan import empty_scan, parse_cursor, parse_scan_options, scan_reply
from . import command
from .hashes import LLONG_MAX, LLONG_MIN, get_ll, parse_ll

if TYPE_CHECKING:
    from ..connection import Client
    from ..keyspace import Database

__all__ = [
    "SET_MAX_INTSET_ENTRIES",
    "SET_MAX_LISTPACK_ENTRIES",
    "SET_MAX_LISTPACK_VALUE",
    "SetValue",
]

SET_MAX_INTSET_ENTRIES = 512
"""Redis's default ``set-max-intset-entries``."""
SET_MAX_LISTPACK_ENTRIES = 128
"""Redis 7.2's default ``set-max-listpack-entries``."""
SET_MAX_LISTPACK_VALUE = 64
"""Redis 7.2's default ``set-max-listpack-value``."""

# A member's cost beyond its data: the bytes object, its list slot and its dict entry.
_MEMBER_OVERHEAD = 33 + 8 + 40

_INTSET, _LISTPACK, _HASHTABLE = 0, 1, 2
_ENCODINGS = ("intset", "listpack", "hashtable")
_POSITIVE = "ERR value is out of range, must be positive"


class SetValue(RedisValue):
    """A set of byte strings, with Redis 7.2's encodings (see :meth:`encoding`)."""

    __slots__ = ("enc", "index", "members")
    type_name = "set"

    def __init__(self, first: bytes | None = None, size_hint: int = 1) -> None:
        super().__init__()
        self.members: list[bytes] = []
        self.index: dict[bytes, int] = {}
        # Redis's setTypeCreate: the first member and how many are coming pick the encoding.
        if first is not None and parse_ll(first) is not None and size_hint <= SET_MAX_INTSET_ENTRIES:
            self.enc = _INTSET
        elif size_hint <= SET_MAX_LISTPACK_ENTRIES:
            self.enc = _LISTPACK if first is not None else _INTSET
        else:
            self.enc = _HASHTABLE

    def encoding(self) -> str:
        """``intset`` (integers only, up to 512), ``listpack`` (up to 128 members of at most
        64 bytes), else ``hashtable``; a set never goes back to a smaller encoding."""
        return _ENCODINGS[self.enc]

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, member: object) -> bool:
        return member in self.index

    def add(self, member: bytes) -> bool:
        """Add ``member``; True when it is new."""
        index = self.index
        if member in index:
            return False
        enc = self.enc
        size = len(self.members)
        if enc == _INTSET:
            if parse_ll(member) is not None:
                if size + 1 > SET_MAX_INTSET_ENTRIES:
                    self.enc = _HASHTABLE
            elif size < SET_MAX_LISTPACK_ENTRIES and len(member) <= SET_MAX_LISTPACK_VALUE:
                self.enc = _LISTPACK
            else:
                self.enc = _HASHTABLE
        elif enc == _LISTPACK and (size >= SET_MAX_LISTPACK_ENTRIES or len(member) > SET_MAX_LISTPACK_VALUE):
            self.enc = _HASHTABLE
        index[member] = size
        self.members.append(member)
        self.nbytes += len(member) + _MEMBER_OVERHEAD
        return True

    def remove(self, member: bytes) -> bool:
        """Remove ``member``; True when it was there."""
        position = self.index.pop(member, None)
        if position is None:
            return False
        members = self.members
        last = members.pop()
        if position < len(members):
            members[position] = last
            self.index[last] = position
        self.nbytes -= len(member) + _MEMBER_OVERHEAD
        return True

    def random_member(self) -> bytes:
        """One member, uniformly (the set must not be empty)."""
        return self.members[random.randrange(len(self.members))]

    def ordered(self) -> list[bytes]:
        """The members in Redis's order: an intset is sorted by value, others as stored."""
        if self.enc == _INTSET:
            return sorted(self.members, key=int)
        return list(self.members)


def _new_set(members: Iterable[bytes]) -> SetValue:
    """A set built as Redis builds a STORE command's result: from an empty intset up."""
    value = SetValue()
    for member in members:
        value.add(member)
    return value


def _set(db: Database, key: str) -> SetValue | None:
    value: SetValue | None = db.get_typed(key, SetValue)
    return value


def _members_reply(client: Client, members: list[bytes]) -> Any:
    """An unordered reply: a RESP3 set, or an array in the order given (RESP2)."""
    return set(members) if client.resp3 else members


# ----------------------------------------------------------------------------- commands


@command("sadd", arity=-3, flags="write denyoom fast", keys=(1, 1, 1), group="set", since="1.0.0")
def sadd(client: Client, args: list[bytes]) -> Any:
    """Add members to a set; the number added."""
    key = skey(args[1])
    db = client.db
    value = _set(db, key)
    if value is None:
        value = SetValue(args[2], len(args) - 2)
        for member in args[2:]:
            value.add(member)
        db.set(key, value)
        return len(value)
    added = 0
    for member in args[2:]:
        added += value.add(member)
    if added:
        db.changed(key, value)
    return added


@command("srem", arity=-3, flags="write fast", keys=(1, 1, 1), group="set", since="1.0.0")
def srem(client: Client, args: list[bytes]) -> Any:
    """Remove members from a set; the number removed."""
    key = skey(args[1])
    value = _set(client.db, key)
    if value is None:
        return 0
    removed = 0
    for member in args[2:]:
        removed += value.remove(member)
    if removed:
        client.db.changed(key, value)
    return removed


@command("smembers", arity=2, flags="readonly", keys=(1, 1, 1), group="set", since="1.0.0")
def smembers(client: Client, args: list[bytes]) -> Any:
    """Every member of a set."""
    value = _set(client.db, skey(args[1]))
    return _members_reply(client, [] if value is None else value.ordered())


@command("sismember", arity=3, flags="readonly fast", keys=(1, 1, 1), group="set", since="1.0.0")
def sismember(client: Client, args: list[bytes]) -> Any:
    """1 if the member is in the set."""
    value = _set(client.db, skey(args[1]))
    return int(value is not None and args[2] in value.index)


@command("smismember", arity=-3, flags="readonly fast", keys=(1, 1, 1), group="set", since="6.2.0")
def smismember(client: Client, args: list[bytes]) -> Any:
    """For each member, 1 if it is in the set."""
    value = _set(client.db, skey(args[1]))
    if value is None:
        return [0] * (len(args) - 2)
    index = value.index
    return [int(member in index) for member in args[2:]]


@command("scard", arity=2, flags="readonly fast", keys=(1, 1, 1), group="set", since="1.0.0")
def scard(client: Client, args: list[bytes]) -> Any:
    """The number of members of a set."""
    value = _set(client.db, skey(args[1]))
    return 0 if value is None else len(value)


@command("spop", arity=-2, flags="write fast", keys=(1, 1, 1), group="set", since="1.0.0")
def spop(client: Client, args: list[bytes]) -> Any:
    """Remove and return random members of a set (one, or up to ``count``)."""
    key = skey(args[1])
    db = client.db
    if len(args) > 3:
        raise ErrorReply(SYNTAX)
    if len(args) == 2:
        value = _set(db, key)
        if value is None:
            return None
        member = value.random_member()
        value.remove(member)
        db.changed(key, value)
        return member
    count = get_ll(args[2], _POSITIVE)
    if count < 0:
        raise ErrorReply(_POSITIVE)
    value = _set(db, key)
    if value is None or count == 0:
        return _members_reply(client, [])
    if count >= len(value):
        popped = value.ordered()
        db.delete(key)
        return _members_reply(client, popped)
    popped = []
    for _ in range(count):
        member = value.random_member()
        value.remove(member)
        popped.append(member)
    db.changed(key, value)
    return _members_reply(client, popped)


@command("srandmember", arity=-2, flags="readonly", keys=(1, 1, 1), group="set", since="1.0.0")
def srandmember(client: Client, args: list[bytes]) -> Any:
    """Random members of a set: one, ``count`` distinct ones, or (negative count) ``-count``
    draws that may repeat."""
    key = skey(args[1])
    if len(args) > 3:
        raise ErrorReply(SYNTAX)
    if len(args) == 2:
        value = _set(client.db, key)
        return None if value is None else value.random_member()
    count = get_ll(args[2])
    if count == LLONG_MIN:
        raise ErrorReply(f"ERR value is out of range, value must between {-LLONG_MAX} and {LLONG_MAX}")
    value = _set(client.db, key)
    if value is None or count == 0:
        return []
    if count < 0:
        members = value.members
        size = len(members)
        return [members[random.randrange(size)] for _ in range(-count)]
    # An array even in RESP3 (SPOP's count form answers a set), as Redis 7 does.
    if count >= len(value):
        return value.ordered()
    return random.sample(value.members, count)


@command("smove", arity=4, flags="write fast", keys=(1, 2, 1), group="set", since="1.0.0")
def smove(client: Client, args: list[bytes]) -> Any:
    """Move a member from one set to another; 1 if moved."""
    db = client.db
    source_key, dest_key = skey(args[1]), skey(args[2])
    source = db.get(source_key)
    dest = db.get(dest_key)
    if source is None:
        return 0
    if type(source) is not SetValue or (dest is not None and type(dest) is not SetValue):
        raise ErrorReply(WRONGTYPE)
    member = args[3]
    if source is dest:
        return int(member in source)
    if not source.remove(member):
        return 0
    db.changed(source_key, source)
    if dest is None:
        dest = SetValue(member)
        dest.add(member)
        db.set(dest_key, dest)
    elif dest.add(member):
        db.changed(dest_key, dest)
    return 1


def _load_sets(db: Database, keys: list[bytes]) -> list[SetValue | None]:
    """The sets at ``keys`` (None when absent); WRONGTYPE if any key holds another type."""
    found: list[SetValue | None] = []
    for key in keys:
        value = db.get(skey(key))
        if value is not None and type(value) is not SetValue:
            raise ErrorReply(WRONGTYPE)
        found.append(value)
    return found


def _inter(sets: list[SetValue | None], limit: int = 0) -> list[bytes]:
    if not sets or any(s is None or not s for s in sets):
        return []
    present = sorted((s for s in sets if s is not None), key=len)
    smallest, others = present[0], present[1:]
    result = []
    for member in smallest.ordered():
        for other in others:
            if member not in other.index:
                break
        else:
            result.append(member)
            if limit and len(result) >= limit:
                break
    return result


def _union(sets: list[SetValue | None]) -> list[bytes]:
    seen: dict[bytes, None] = {}
    for value in sets:
        if value is not None:
            for member in value.ordered():
                seen[member] = None
    return list(seen)


def _diff(sets: list[SetValue | None]) -> list[bytes]:
    first = sets[0]
    if first is None:
        return []
    others = [s for s in sets[1:] if s is not None]
    return [m for m in first.ordered() if not any(m in other.index for other in others)]


def _store(client: Client, dest: bytes, members: list[bytes]) -> int:
    db = client.db
    key = skey(dest)
    if not members:
        db.delete(key)
        return 0
    db.set(key, _new_set(members))
    return len(members)


@command("sinter", arity=-2, flags="readonly", keys=(1, -1, 1), group="set", since="1.0.0")
def sinter(client: Client, args: list[bytes]) -> Any:
    """The intersection of sets."""
    sets = _load_sets(client.db, args[1:])
    return _members_reply(client, _inter(sets))


@command("sunion", arity=-2, flags="readonly", keys=(1, -1, 1), group="set", since="1.0.0")
def sunion(client: Client, args: list[bytes]) -> Any:
    """The union of sets."""
    return _members_reply(client, _union(_load_sets(client.db, args[1:])))


@command("sdiff", arity=-2, flags="readonly", keys=(1, -1, 1), group="set", since="1.0.0")
def sdiff(client: Client, args: list[bytes]) -> Any:
    """The members of the first set that are in none of the others."""
    return _members_reply(client, _diff(_load_sets(client.db, args[1:])))


@command("sinterstore", arity=-3, flags="write denyoom", keys=(1, -1, 1), group="set", since="1.0.0")
def sinterstore(client: Client, args: list[bytes]) -> Any:
    """Store the intersection of sets; its size."""
    return _store(client, args[1], _inter(_load_sets(client.db, args[2:])))


@command("sunionstore", arity=-3, flags="write denyoom", keys=(1, -1, 1), group="set", since="1.0.0")
def sunionstore(client: Client, args: list[bytes]) -> Any:
    """Store the union of sets; its size."""
    return _store(client, args[1], _union(_load_sets(client.db, args[2:])))


@command("sdiffstore", arity=-3, flags="write denyoom", keys=(1, -1, 1), group="set", since="1.0.0")
def sdiffstore(client: Client, args: list[bytes]) -> Any:
    """Store the difference of sets; its size."""
    return _store(client, args[1], _diff(_load_sets(client.db, args[2:])))


@command("sintercard", arity=-3, flags="readonly movablekeys", keys=(0, 0, 0), group="set", since="7.0.0")
def sintercard(client: Client, args: list[bytes]) -> Any:
    """The size of the intersection of sets, counting up to LIMIT (0: no limit)."""
    numkeys = parse_ll(args[1])
    if numkeys is None or numkeys <= 0:
        raise ErrorReply("ERR numkeys should be greater than 0")
    if numkeys > len(args) - 2:
        raise ErrorReply("ERR Number of keys can't be greater than number of args")
    limit = 0
    i = 2 + numkeys
    while i < len(args):
        if args[i].upper() == b"LIMIT" and i + 1 < len(args):
            parsed = parse_ll(args[i + 1])
            if parsed is None or parsed < 0:
                raise ErrorReply("ERR LIMIT can't be negative")
            limit = parsed
            i += 2
        else:
            raise ErrorReply(SYNTAX)
    return len(_inter(_load_sets(client.db, args[2 : 2 + numkeys]), limit))


@command("sscan", arity=-3, flags="readonly", keys=(1, 1, 1), group="set", since="2.8.0")
def sscan(client: Client, args: list[bytes]) -> Any:
    """Iterate the members of a set with a cursor (MATCH, COUNT); small sets in one reply."""
    cursor = parse_cursor(args[2])
    key = skey(args[1])
    db = client.db
    value = _set(db, key)
    if value is None:
        return empty_scan()
    options = parse_scan_options(args, 3)
    return scan_reply(
        client.server,
        ("set", db.index, key),
        cursor,
        options,
        snapshot=value.ordered,
        emit=lambda batch: [member for member in batch if member in value.index],
        whole=value.enc != _HASHTABLE,
    )
