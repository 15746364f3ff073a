"""Key commands: DEL UNLINK EXISTS TOUCH TYPE, the expiry family (EXPIRE PEXPIRE EXPIREAT
PEXPIREAT TTL PTTL EXPIRETIME PEXPIRETIME PERSIST), RENAME RENAMENX COPY MOVE, KEYS SCAN
RANDOMKEY and OBJECT, with Redis 7's semantics and error texts.

Expiry times are integers of milliseconds, checked for overflow as Redis checks them (the
unit conversion and the addition of the current time, ``ERR invalid expire time in 'expire'
command``), then kept by the store as a Unix time in seconds.
"""

from __future__ import annotations

import copy
import random
import time
from typing import TYPE_CHECKING, Any

from ..errors import NO_SUCH_KEY, NOT_INTEGER, SYNTAX, invalid_expire, unknown_subcommand, wrong_arity
from ..keyspace import Database, bkey, skey, type_name
from ..resp import ErrorReply
from ..scan import compile_pattern, parse_cursor, parse_scan_options, scan_reply
from . import command

if TYPE_CHECKING:
    from ..connection import Client

LLONG_MAX = (1 << 63) - 1
LLONG_MIN = -(1 << 63)
SAME_OBJECT = "ERR source and destination objects are the same"
DB_OUT_OF_RANGE = "ERR DB index is out of range"


def parse_ll(arg: bytes) -> int:
    """Redis's ``string2ll`` (no spaces, no '+', no leading zeros, 64-bit) or NOT_INTEGER."""
    if not arg or len(arg) > 20:
        raise ErrorReply(NOT_INTEGER)
    if arg == b"0":
        return 0
    body = arg[1:] if arg[:1] == b"-" else arg
    if not body.isdigit() or body[:1] == b"0":
        raise ErrorReply(NOT_INTEGER)
    value = int(arg)
    if not LLONG_MIN <= value <= LLONG_MAX:
        raise ErrorReply(NOT_INTEGER)
    return value


def parse_int32(arg: bytes) -> int:
    """Redis's ``getIntFromObjectOrReply``: a C int, else NOT_INTEGER."""
    value = parse_ll(arg)
    if not -(1 << 31) <= value < 1 << 31:
        raise ErrorReply("ERR value is out of range, value must between -2147483648 and 2147483647")
    return value


def now_ms() -> int:
    """The wall clock in milliseconds (Redis's ``mstime``)."""
    return time.time_ns() // 1_000_000


def deadline_ms(db: Database, key: str) -> int:
    """The key's expiry in Unix milliseconds; -1 without one (or when absent)."""
    deadline = db.deadline(key)
    return -1 if deadline is None else round(deadline * 1000)


def copy_value(value: Any) -> Any:
    """An independent copy of a stored value: strings are immutable; a collection is copied
    with its own ``copy()`` when it has one, else deeply."""
    if type(value) is bytes:
        return value
    own = getattr(value, "copy", None)
    return own() if callable(own) else copy.deepcopy(value)


# ------------------------------------------------------------------ existence


@command("del", arity=-2, flags="write", keys=(1, -1, 1), group="generic")
def del_(client: Client, args: list[bytes]) -> Any:
    """Delete keys."""
    delete = client.db.delete
    return sum(1 for arg in args[1:] if delete(skey(arg)))


@command("unlink", arity=-2, flags="write fast", keys=(1, -1, 1), group="generic", since="4.0.0")
def unlink(client: Client, args: list[bytes]) -> Any:
    """Delete keys (Redis frees them in the background; ours are freed at once)."""
    return del_(client, args)


@command("exists", arity=-2, flags="readonly fast", keys=(1, -1, 1), group="generic")
def exists(client: Client, args: list[bytes]) -> Any:
    """Count the existing keys (a key named twice counts twice)."""
    present = client.db.exists
    return sum(1 for arg in args[1:] if present(skey(arg)))


@command("touch", arity=-2, flags="readonly fast", keys=(1, -1, 1), group="generic", since="3.2.1")
def touch(client: Client, args: list[bytes]) -> Any:
    """Record an access to keys; the number that exist."""
    get = client.db.get
    return sum(1 for arg in args[1:] if get(skey(arg)) is not None)


@command("type", arity=2, flags="readonly fast", keys=(1, 1, 1), group="generic")
def type_(client: Client, args: list[bytes]) -> Any:
    """The type of a key's value (none when absent)."""
    value = client.db.get(skey(args[1]))
    return "none" if value is None else type_name(value)


# --------------------------------------------------------------------- expiry


def _expire_flags(args: list[bytes]) -> str:
    """NX/XX/GT/LT after the time, with Redis's errors; the one given (or "")."""
    nx = xx = gt = lt = False
    for arg in args[3:]:
        option = arg.split(b"\x00", 1)[0].lower()
        if option == b"nx":
            nx = True
        elif option == b"xx":
            xx = True
        elif option == b"gt":
            gt = True
        elif option == b"lt":
            lt = True
        else:
            raise ErrorReply(f"ERR Unsupported option {arg.decode('utf-8', 'replace')}")
    if nx and (xx or gt or lt):
        raise ErrorReply("ERR NX and XX, GT or LT options at the same time are not compatible")
    if gt and lt:
        raise ErrorReply("ERR GT and LT options at the same time are not compatible")
    return "".join(name for name, on in (("nx", nx), ("xx", xx), ("gt", gt), ("lt", lt)) if on)


def _expire(client: Client, args: list[bytes], *, seconds: bool, absolute: bool) -> int:
    name = args[0].decode("latin-1").lower()
    flags = _expire_flags(args)
    when = parse_ll(args[2])
    if seconds:
        if when > LLONG_MAX // 1000 or when < -(LLONG_MAX // 1000):
            raise invalid_expire(name)
        when *= 1000
    base = 0 if absolute else now_ms()
    if when > LLONG_MAX - base:
        raise invalid_expire(name)
    when += base
    db = client.db
    key = skey(args[1])
    if not db.exists(key):
        return 0
    if flags:
        current = deadline_ms(db, key)
        if "nx" in flags and current != -1:
            return 0
        if "xx" in flags and current == -1:
            return 0
        if "gt" in flags and (current == -1 or when <= current):
            return 0
        if "lt" in flags and current != -1 and when >= current:
            return 0
    if when <= now_ms():
        db.delete(key)
        return 1
    return 1 if db.expire_at(key, when / 1000) else 0


@command("expire", arity=-3, flags="write fast", keys=(1, 1, 1), group="generic")
def expire(client: Client, args: list[bytes]) -> Any:
    """Set a key's time to live in seconds."""
    return _expire(client, args, seconds=True, absolute=False)


@command("pexpire", arity=-3, flags="write fast", keys=(1, 1, 1), group="generic", since="2.6.0")
def pexpire(client: Client, args: list[bytes]) -> Any:
    """Set a key's time to live in milliseconds."""
    return _expire(client, args, seconds=False, absolute=False)


@command("expireat", arity=-3, flags="write fast", keys=(1, 1, 1), group="generic", since="1.2.0")
def expireat(client: Client, args: list[bytes]) -> Any:
    """Set a key's expiry as a Unix time in seconds."""
    return _expire(client, args, seconds=True, absolute=True)


@command("pexpireat", arity=-3, flags="write fast", keys=(1, 1, 1), group="generic", since="2.6.0")
def pexpireat(client: Client, args: list[bytes]) -> Any:
    """Set a key's expiry as a Unix time in milliseconds."""
    return _expire(client, args, seconds=False, absolute=True)


def _ttl(client: Client, key: bytes, *, ms: bool, absolute: bool) -> int:
    db = client.db
    name = skey(key)
    if not db.exists(name):
        return -2
    when = deadline_ms(db, name)
    if when == -1:
        return -1
    if absolute:
        return when if ms else when // 1000
    left = max(0, when - now_ms())
    return left if ms else (left + 500) // 1000


@command("ttl", arity=2, flags="readonly fast", keys=(1, 1, 1), group="generic")
def ttl(client: Client, args: list[bytes]) -> Any:
    """Seconds left to live (-1 without expiry, -2 when absent)."""
    return _ttl(client, args[1], ms=False, absolute=False)


@command("pttl", arity=2, flags="readonly fast", keys=(1, 1, 1), group="generic", since="2.6.0")
def pttl(client: Client, args: list[bytes]) -> Any:
    """Milliseconds left to live (-1 without expiry, -2 when absent)."""
    return _ttl(client, args[1], ms=True, absolute=False)


@command("expiretime", arity=2, flags="readonly fast", keys=(1, 1, 1), group="generic", since="7.0.0")
def expiretime(client: Client, args: list[bytes]) -> Any:
    """The expiry as a Unix time in seconds (-1 without expiry, -2 when absent)."""
    return _ttl(client, args[1], ms=False, absolute=True)


@command("pexpiretime", arity=2, flags="readonly fast", keys=(1, 1, 1), group="generic", since="7.0.0")
def pexpiretime(client: Client, args: list[bytes]) -> Any:
    """The expiry as a Unix time in milliseconds (-1 without expiry, -2 when absent)."""
    return _ttl(client, args[1], ms=True, absolute=True)


@command("persist", arity=2, flags="write fast", keys=(1, 1, 1), group="generic", since="2.2.0")
def persist(client: Client, args: list[bytes]) -> Any:
    """Remove a key's expiry; 1 when it had one."""
    return 1 if client.db.persist(skey(args[1])) else 0


def _ttl_left(db: Database, key: str) -> float | None:
    """What a copy of ``key`` must live: seconds left, or None without expiry."""
    deadline = db.deadline(key)
    return None if deadline is None else max(deadline - time.time(), 1e-6)


# ------------------------------------------------------------ renames, copies


def _rename(client: Client, args: list[bytes], *, nx: bool) -> Any:
    db = client.db
    source, target = skey(args[1]), skey(args[2])
    value = db.get(source)
    if value is None:
        raise ErrorReply(NO_SUCH_KEY)
    if source == target:
        return 0 if nx else "OK"
    if nx and db.exists(target):
        return 0
    left = _ttl_left(db, source)
    db.delete(source)
    db.set(target, value, left)
    return 1 if nx else "OK"


@command("rename", arity=3, flags="write", keys=(1, 2, 1), group="generic")
def rename(client: Client, args: list[bytes]) -> Any:
    """Rename a key (replacing the target), keeping its expiry."""
    return _rename(client, args, nx=False)


@command("renamenx", arity=3, flags="write fast", keys=(1, 2, 1), group="generic")
def renamenx(client: Client, args: list[bytes]) -> Any:
    """Rename a key if the new name is free; 1 when renamed."""
    return _rename(client, args, nx=True)


def _database(client: Client, arg: bytes) -> Database:
    index = parse_int32(arg)
    databases = client.server.databases
    if not 0 <= index < len(databases):
        raise ErrorReply(DB_OUT_OF_RANGE)
    return databases[index]


@command("copy", arity=-3, flags="write denyoom", keys=(1, 2, 1), group="generic", since="6.2.0")
def copy_(client: Client, args: list[bytes]) -> Any:
    """Copy a key's value (and expiry) to another key, in this or another database."""
    source_db = target_db = client.db
    replace = False
    i = 3
    while i < len(args):
        option = args[i].split(b"\x00", 1)[0].lower()
        if option == b"replace":
            replace = True
        elif option == b"db" and i < len(args) - 1:
            target_db = _database(client, args[i + 1])
            i += 1
        else:
            raise ErrorReply(SYNTAX)
        i += 1
    source, target = skey(args[1]), skey(args[2])
    if source_db is target_db and source == target:
        raise ErrorReply(SAME_OBJECT)
    value = source_db.get(source)
    if value is None:
        return 0
    left = _ttl_left(source_db, source)
    if target_db.exists(target):
        if not replace:
            return 0
        target_db.delete(target)
    target_db.set(target, copy_value(value), left)
    return 1


@command("move", arity=3, flags="write fast", keys=(1, 1, 1), group="generic")
def move(client: Client, args: list[bytes]) -> Any:
    """Move a key to another database; 1 when moved."""
    db = client.db
    target_db = _database(client, args[2])
    if target_db is db:
        raise ErrorReply(SAME_OBJECT)
    key = skey(args[1])
    value = db.get(key)
    if value is None or target_db.exists(key):
        return 0
    left = _ttl_left(db, key)
    db.delete(key)
    target_db.set(key, value, left)
    return 1


# ------------------------------------------------------------------ iteration


@command("keys", arity=2, flags="readonly", keys=(0, 0, 0), group="generic")
def keys(client: Client, args: list[bytes]) -> Any:
    """Every key matching a glob pattern."""
    names = client.db.keys()
    if args[1] == b"*":
        return [bkey(name) for name in names]
    match = compile_pattern(args[1])
    return [bkey(name) for name in names if match(name)]


@command("scan", arity=-2, flags="readonly", keys=(0, 0, 0), group="generic", since="2.8.0")
def scan(client: Client, args: list[bytes]) -> Any:
    """Iterate the keyspace with a cursor (MATCH, COUNT, TYPE); see :mod:`..scan`."""
    cursor = parse_cursor(args[1])
    options = parse_scan_options(args, 2, allow_type=True)
    db = client.db
    wanted = options.type_name

    def emit(batch: Any) -> list[Any]:
        if wanted is None:
            present = db.exists
            return [bkey(name) for name in batch if present(name)]
        get = db.get
        out = []
        for name in batch:
            value = get(name)
            if value is not None and type_name(value) == wanted:
                out.append(bkey(name))
        return out

    return scan_reply(
        client.server, ("keys", db.index), cursor, options, snapshot=lambda: _key_snapshot(db), emit=emit
    )


def _key_snapshot(db: Database) -> list[str]:
    """Every key of the store's map, expired ones not yet purged included, in one C-level
    copy: SCAN checks each key's liveness when it returns it, so the live-key filter of
    :meth:`Database.keys` (a Python loop, about ten times the cost) is not needed here."""
    return list(db.store._data)


@command("randomkey", arity=1, flags="readonly", keys=(0, 0, 0), group="generic")
def randomkey(client: Client, args: list[bytes]) -> Any:
    """A random key (nil when the database is empty)."""
    names = client.db.keys()
    return bkey(random.choice(names)) if names else None


# --------------------------------------------------------------------- object

_OBJECT_HELP = [
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
]
_NOT_LFU = (
    "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note "
    "that when switching between policies at runtime LRU and LFU data will take some time to "
    "adjust."
)
_IS_LFU = (
    "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when "
    "switching between policies at runtime LRU and LFU data will take some time to adjust."
)
_SHARED_REFCOUNT = (1 << 31) - 1  # Redis's OBJ_SHARED_REFCOUNT (INT_MAX)


def string_encoding(value: bytes) -> str:
    """OBJECT ENCODING of a string: ``int`` when it reads as a 64-bit integer in at most 20
    bytes, ``embstr`` up to 44 bytes, else ``raw`` (Redis's tryObjectEncoding)."""
    if len(value) <= 20:
        try:
            parse_ll(value)
        except ErrorReply:
            pass
        else:
            return "int"
    return "embstr" if len(value) <= 44 else "raw"


@command("object", arity=-2, flags="readonly", keys=(2, 2, 1), group="generic", since="2.2.3")
def object_(client: Client, args: list[bytes]) -> Any:
    """Inspect a key's value: ENCODING, FREQ, IDLETIME, REFCOUNT, HELP."""
    sub = args[1].lower()
    arity = {b"encoding": 3, b"freq": 3, b"idletime": 3, b"refcount": 3, b"help": 2}.get(sub)
    if arity is None:
        raise unknown_subcommand("object", args[1])
    if len(args) != arity:
        raise wrong_arity(f"object|{sub.decode()}")
    if sub == b"help":
        return _OBJECT_HELP
    db = client.db
    key = skey(args[2])
    value = db.get(key)
    if value is None:
        return None
    if sub == b"encoding":
        return (string_encoding(value) if type(value) is bytes else value.encoding()).encode()
    if sub == b"refcount":
        return _SHARED_REFCOUNT if _shared_integer(client, value) else 1
    lfu = "lfu" in client.server.config.maxmemory_policy
    if sub == b"freq":
        if not lfu:
            raise ErrorReply(_NOT_LFU)
        # The store's LFU-family policy estimates frequencies; Redis's counter saturates at 255.
        frequency = getattr(getattr(db.store, "_policy", None), "frequency", None)
        return min(255, int(frequency(key))) if callable(frequency) else 0
    if lfu:
        raise ErrorReply(_IS_LFU)
    info = db.store.entry_info(key)
    return 0 if info is None else max(0, int(time.time() - info.updated))


def _shared_integer(client: Client, value: Any) -> bool:
    """Whether Redis would share this value's object: an integer 0..9999 when maxmemory is
    off or its policy is not LRU/LFU (Redis keeps per-key access data in the object)."""
    if type(value) is not bytes or len(value) > 4 or string_encoding(value) != "int":
        return False
    config = client.server.config
    policy = config.maxmemory_policy
    if config.maxmemory and ("lru" in policy or "lfu" in policy):
        return False
    return 0 <= int(value) < 10000
