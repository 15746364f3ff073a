"""The memcached commands: text protocol and meta commands, over :class:`~.items.ItemStore`.

Each handler takes the connection's :class:`Session` and a :class:`~.protocol.Request` and
returns the reply bytes (``b""`` for none: ``noreply``, quiet mode). Replies and error lines
are memcached 1.6's, byte for byte (tests/server/test_memcache_pair.py sends the same bytes
to a real memcached and compares).
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..._exceptions import ValueTooLarge
from .items import EXPIRED, ItemStore, Meta, ttl_of
from .protocol import (
    KEY_MAX_LENGTH,
    MAX_OPAQUE_LENGTH,
    MetaError,
    MetaFlags,
    Request,
    decode_key,
    encode_key,
    parse_meta_flags,
    strtol,
    strtoul,
    strtoull,
)

if TYPE_CHECKING:
    from .listener import MemcacheListener

__all__ = ["COMMANDS", "VERSION", "Session"]

VERSION = "1.6.18"
"""The memcached version reported (``version``, ``stats``): the protocol followed."""

_ERROR = b"ERROR\r\n"
_BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
_BAD_EXPTIME = b"CLIENT_ERROR invalid exptime argument\r\n"
_NON_NUMERIC = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
_OOM = b"SERVER_ERROR out of memory storing object\r\n"
_TOO_LARGE = b"SERVER_ERROR object too large for cache\r\n"
_META_INVALID = b"CLIENT_ERROR invalid or duplicate flag\r\n"
_OPAQUE_TOO_LONG = b"CLIENT_ERROR opaque token too long\r\n"
_U64 = (1 << 64) - 1


class Session:
    """A connection's view: the listener (items, counters) and whether to close after the
    replies of the current batch (``quit``)."""

    __slots__ = ("items", "listener", "quit")

    def __init__(self, listener: MemcacheListener) -> None:
        self.listener = listener
        self.items: ItemStore = listener.items
        self.quit = False

    def out_of_memory(self) -> bool:
        """Whether a write must be refused (maxmemory reached with noeviction)."""
        server = self.listener.server
        maxmemory = server.config.maxmemory
        return bool(
            maxmemory and server.config.maxmemory_policy == "noeviction" and server.pool.used >= maxmemory
        )


def _count(session: Session, name: str, amount: int = 1) -> None:
    session.listener.counters[name] += amount


# --------------------------------------------------------------------- text: storage


def _storage(session: Session, request: Request) -> bytes:
    """set add replace append prepend cas (the parser checked the line and read the data)."""
    tokens = request.tokens
    data = request.data
    assert data is not None
    name = tokens[0]
    noreply = tokens[-1] == b"noreply"
    flags = strtoul(tokens[2]) or 0
    exptime = strtol(tokens[3]) or 0
    _count(session, "cmd_set")
    reply = _store_classic(session, name, tokens, data, flags=flags, exptime=exptime)
    return b"" if noreply else reply


def _store_classic(
    session: Session, name: bytes, tokens: list[bytes], data: bytes, *, flags: int, exptime: int
) -> bytes:
    if session.out_of_memory():
        return _OOM
    items = session.items
    key = tokens[1].decode("latin-1")
    try:
        if name == b"set":
            items.store(key, data, flags, ttl_of(exptime))
            return b"STORED\r\n"
        if name == b"add":
            if items.db.get(key) is not None:
                return b"NOT_STORED\r\n"
            items.store(key, data, flags, ttl_of(exptime))
            return b"STORED\r\n"
        old = items.value(key)
        if name == b"replace":
            if old is None:
                return b"NOT_STORED\r\n"
            items.store(key, data, flags, ttl_of(exptime))
            return b"STORED\r\n"
        if name == b"cas":
            if old is None:
                _count(session, "cas_misses")
                return b"NOT_FOUND\r\n"
            if items.cas_of(key) != strtoull(tokens[5]):
                _count(session, "cas_badval")
                return b"EXISTS\r\n"
            _count(session, "cas_hits")
            items.store(key, data, flags, ttl_of(exptime))
            return b"STORED\r\n"
        # append / prepend: the item's flags and expiry stay; those given are ignored.
        if old is None:
            return b"NOT_STORED\r\n"
        joined = old + data if name == b"append" else data + old
        if len(joined) > session.listener.max_item_size:
            return b"NOT_STORED\r\n"  # as memcached, whose new item cannot be allocated
        items.store_keep_ttl(key, joined, items.flags_of(key))
        return b"STORED\r\n"
    except ValueTooLarge:
        return _TOO_LARGE


# ---------------------------------------------------------------------- text: reads


def _get(session: Session, request: Request) -> bytes:
    """get: one key inline (the hot path), several through :func:`_retrieve`."""
    tokens = request.tokens
    if len(tokens) != 2:
        return _retrieve(session, request)
    token = tokens[1]
    counters = session.listener.counters
    counters["cmd_get"] += 1
    if len(token) > KEY_MAX_LENGTH:
        return _BAD_FORMAT
    items = session.items
    key = token.decode("latin-1")
    value = items.db._get(key)
    if type(value) is not bytes:
        counters["get_misses"] += 1
        return b"END\r\n"
    counters["get_hits"] += 1
    metas = items.meta
    meta = metas.get(key)
    if meta is None:
        meta = metas[key] = Meta()
    meta.fetched = True
    meta.atime = time.time()
    return b"VALUE %b %d %d\r\n%b\r\nEND\r\n" % (token, meta.flags, len(value), value)


def _retrieve(session: Session, request: Request) -> bytes:
    """get gets gat gats."""
    tokens = request.tokens
    name = tokens[0]
    touching = name in (b"gat", b"gats")
    first = 2 if touching else 1
    if len(tokens) < 2:
        return _ERROR
    ttl: float | None = None
    if touching:
        exptime = strtol(tokens[1])
        if exptime is None:
            return _BAD_EXPTIME
        ttl = ttl_of(exptime)
    with_cas = name in (b"gets", b"gats")
    items = session.items
    metas = items.meta
    out: list[bytes] = []
    hits = 0
    now = time.time()
    for token in tokens[first:]:
        if len(token) > KEY_MAX_LENGTH:
            return _BAD_FORMAT
        key = token.decode("latin-1")
        value = items.value(key)
        if value is None:
            continue
        hits += 1
        if touching:
            # A past exptime still answers the value, then the item is gone (as memcached).
            items.touch(key, ttl)
        meta = metas.get(key)
        if meta is None:
            meta = metas[key] = Meta()
        meta.fetched = True
        meta.atime = now
        if with_cas:
            if not meta.cas:
                meta.cas = items.next_cas()
            out.append(b"VALUE %b %d %d %d\r\n%b\r\n" % (token, meta.flags, len(value), meta.cas, value))
        else:
            out.append(b"VALUE %b %d %d\r\n%b\r\n" % (token, meta.flags, len(value), value))
    keys = len(tokens) - first
    counters = session.listener.counters
    if touching:
        counters["cmd_touch"] += keys
        counters["touch_hits"] += hits
        counters["touch_misses"] += keys - hits
    counters["cmd_get"] += keys
    counters["get_hits"] += hits
    counters["get_misses"] += keys - hits
    out.append(b"END\r\n")
    return b"".join(out)


# ------------------------------------------------------------------- text: the rest


def _delete(session: Session, request: Request) -> bytes:
    tokens = request.tokens
    if not 2 <= len(tokens) <= 4:
        return _ERROR
    noreply = len(tokens) > 2 and tokens[-1] == b"noreply"  # "delete noreply": the key
    if len(tokens) > 2:
        hold_is_zero = tokens[2] == b"0"
        valid = (len(tokens) == 3 and (hold_is_zero or noreply)) or (
            len(tokens) == 4 and hold_is_zero and noreply
        )
        if not valid:
            return (
                b""
                if noreply
                else b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
            )
    if len(tokens[1]) > KEY_MAX_LENGTH:
        return b"" if noreply else _BAD_FORMAT
    items = session.items
    key = tokens[1].decode("latin-1")
    if items.value(key) is None:
        _count(session, "delete_misses")
        reply = b"NOT_FOUND\r\n"
    else:
        items.db.delete(key)
        _count(session, "delete_hits")
        reply = b"DELETED\r\n"
    return b"" if noreply else reply


def _apply_delta(old: bytes, delta: int, incr: bool) -> tuple[bytes, int] | None:
    """(new value, number) for incr/decr of ``old``, None when ``old`` is no number.

    As memcached: incr wraps at 2**64, decr stops at 0, and a result shorter than the old
    value is padded with spaces to its length (memcached rewrites the item in place)."""
    number = strtoull(old) if old else None
    if number is None:
        return None
    number = (number + delta) & _U64 if incr else max(0, number - delta)
    text = b"%d" % number
    if len(text) < len(old):
        text = text.ljust(len(old))
    return text, number


def _arith(session: Session, request: Request) -> bytes:
    tokens = request.tokens
    if len(tokens) not in (3, 4):
        return _ERROR
    noreply = tokens[-1] == b"noreply"
    incr = tokens[0] == b"incr"
    if len(tokens[1]) > KEY_MAX_LENGTH:
        return b"" if noreply else _BAD_FORMAT
    delta = strtoull(tokens[2])
    if delta is None:
        return b"" if noreply else b"CLIENT_ERROR invalid numeric delta argument\r\n"
    items = session.items
    key = tokens[1].decode("latin-1")
    old = items.value(key)
    name = "incr" if incr else "decr"
    if old is None:
        _count(session, f"{name}_misses")
        return b"" if noreply else b"NOT_FOUND\r\n"
    result = _apply_delta(old, delta, incr)
    if result is None:
        return b"" if noreply else _NON_NUMERIC
    _count(session, f"{name}_hits")
    items.store_number(key, result[0], len(old))
    return b"" if noreply else b"%d\r\n" % result[1]


def _touch(session: Session, request: Request) -> bytes:
    tokens = request.tokens
    if len(tokens) not in (3, 4):
        return _ERROR
    noreply = tokens[-1] == b"noreply"
    if len(tokens[1]) > KEY_MAX_LENGTH:
        return b"" if noreply else _BAD_FORMAT
    exptime = strtol(tokens[2])
    if exptime is None:
        return b"" if noreply else _BAD_EXPTIME
    items = session.items
    key = tokens[1].decode("latin-1")
    _count(session, "cmd_touch")
    if items.value(key) is None:
        _count(session, "touch_misses")
        return b"" if noreply else b"NOT_FOUND\r\n"
    _count(session, "touch_hits")
    ttl = ttl_of(exptime)
    items.touch(key, ttl)
    if ttl != EXPIRED:
        meta = items.meta_of(key)  # memcached's touch counts as a fetch (mg h, l)
        meta.fetched = True
        meta.atime = time.time()
    return b"" if noreply else b"TOUCHED\r\n"


def _flush_all(session: Session, request: Request) -> bytes:
    tokens = request.tokens
    if len(tokens) > 3:
        return _ERROR
    noreply = tokens[-1] == b"noreply"
    delay = 0
    if len(tokens) != (2 if noreply else 1):
        parsed = strtol(tokens[1])
        if parsed is None:
            return b"" if noreply else _BAD_EXPTIME
        delay = parsed
    _count(session, "cmd_flush")
    session.listener.flush_all(ttl_of(delay) if delay > 0 else None)
    return b"" if noreply else b"OK\r\n"


def _version(session: Session, request: Request) -> bytes:
    return b"VERSION %b\r\n" % VERSION.encode()


def _verbosity(session: Session, request: Request) -> bytes:
    tokens = request.tokens
    if len(tokens) not in (2, 3):
        return _ERROR
    noreply = tokens[-1] == b"noreply"
    if strtoul(tokens[1]) is None:
        return b"" if noreply else _BAD_FORMAT
    return b"" if noreply else b"OK\r\n"


def _quit(session: Session, request: Request) -> bytes:
    session.quit = True
    return b""


def _shutdown(session: Session, request: Request) -> bytes:
    return b"ERROR: shutdown not enabled\r\n"


def _stats(session: Session, request: Request) -> bytes:
    tokens = request.tokens
    listener = session.listener
    if len(tokens) == 1:
        return _stat_lines(listener.general_stats())
    sub = tokens[1]
    if sub == b"reset":
        listener.reset_stats()
        return b"RESET\r\n"
    if sub == b"settings":
        return _stat_lines(listener.settings_stats())
    if sub == b"items":
        return _stat_lines(listener.items_stats())
    if sub == b"slabs":
        return _stat_lines(listener.slabs_stats())
    if sub == b"sizes":
        return _stat_lines({"sizes_status": "disabled"})
    if sub == b"conns":
        return _stat_lines(listener.conns_stats())
    if sub == b"detail" and len(tokens) == 3:
        if tokens[2] in (b"on", b"off"):
            return b"OK\r\n"
        if tokens[2] == b"dump":
            return b"END\r\n"
    return _ERROR


def _stat_lines(values: dict[str, Any]) -> bytes:
    return b"".join(b"STAT %b %b\r\n" % (k.encode(), str(v).encode()) for k, v in values.items()) + b"END\r\n"


def process_stats(start: float, counters: dict[str, int]) -> dict[str, Any]:
    """The process part of ``stats``: pid, uptime, time, version, rusage."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    now = time.time()
    return {
        "pid": os.getpid(),
        "uptime": int(now - start),
        "time": int(now),
        "version": VERSION,
        "libevent": "asyncio",
        "pointer_size": 64,
        "rusage_user": f"{usage.ru_utime:.6f}",
        "rusage_system": f"{usage.ru_stime:.6f}",
    }


# ------------------------------------------------------------------------------ meta


def _meta_key(request: Request, flags: MetaFlags) -> tuple[bytes, str]:
    """(the key's bytes, the store's key) of a meta command (base64 with ``b``)."""
    raw = decode_key(request.tokens[1], flags.base64)
    return raw, raw.decode("latin-1")


def _return_flags(flags: MetaFlags, raw: bytes, extra: Callable[[int], bytes | None] | None = None) -> bytes:
    """The return flags in request order: ``k``, ``O`` and what ``extra`` spells."""
    parts: list[bytes] = []
    for char in flags.order:
        if char == 107:  # k
            parts.append(b" " + encode_key(raw, flags.base64))
        elif char == 79:  # O
            parts.append(b" O" + flags.opaque)
        elif extra is not None:
            part = extra(char)
            if part is not None:
                parts.append(part)
    return b"".join(parts)


def _meta_flags(request: Request, start: int, generic: bytes | None) -> MetaFlags | bytes:
    """Parsed flags, or the error line (``generic`` replaces the specific text, as md/ma do)."""
    try:
        flags = parse_meta_flags(request.tokens, start)
    except MetaError as exc:
        return generic if generic is not None else exc.line
    if len(flags.opaque) > MAX_OPAQUE_LENGTH:
        return _OPAQUE_TOO_LONG
    return flags


def _ttl_flag(items: ItemStore, key: str, flags: MetaFlags, char: int, created: bool) -> None:
    """``T`` (and ``N`` for an item this command created) set the TTL where they stand among
    the flags: a ``t`` before them shows the TTL before (memcached's order of effects)."""
    if char == 84:  # T
        assert flags.ttl is not None
        items.touch(key, ttl_of(flags.ttl))
    elif char == 78 and created:  # N
        assert flags.vivify is not None
        items.touch(key, ttl_of(flags.vivify))


def _mg(session: Session, request: Request) -> bytes:
    parsed = _key_request(request, 2, None)
    if isinstance(parsed, bytes):
        return parsed
    flags, raw, key = parsed
    items = session.items
    counters = session.listener.counters
    counters["cmd_get"] += 1
    _count(session, "cmd_meta")
    value = items.value(key)
    created = False
    now = time.time()
    if value is None:
        counters["get_misses"] += 1
        if flags.vivify is None:
            return b"" if flags.quiet else b"EN" + _return_flags(flags, raw) + b"\r\n"
        if session.out_of_memory():
            return _OOM
        # A miss with N: an empty item is created and this client wins the right to fill it.
        # Its TTL is set where N stands among the flags (see extra), as memcached does.
        value = b""
        meta = items.store(key, value, 0, None, flags.new_cas) or items.meta_of(key)
        meta.atime = now
        created = True
    else:
        counters["get_hits"] += 1
        meta = items.meta_of(key)
    fetched = meta.fetched
    atime = meta.atime
    if not atime:
        info = items.db.store.entry_info(key)
        atime = info.updated if info is not None else now
    won = [created]  # the flags act in their order (memcached's loop): R, T and N below

    def extra(char: int) -> bytes | None:
        if char == 99:  # c
            if not meta.cas:
                meta.cas = items.next_cas()
            return b" c%d" % meta.cas
        if char == 102:  # f
            return b" f%d" % meta.flags
        if char == 104:  # h
            return b" h1" if fetched else b" h0"
        if char == 108:  # l
            return b" l%d" % max(0, int(now - atime))
        if char == 115:  # s
            return b" s%d" % len(value)
        if char == 116:  # t
            return b" t%d" % items.ttl_left(key)
        if char == 82:  # R: win the recache when the TTL left is below the token
            assert flags.recache is not None
            if not (meta.token_sent or created) and 0 <= items.ttl_left(key) < flags.recache:
                won[0] = True
            return None
        _ttl_flag(items, key, flags, char, created)
        return None

    returned = _return_flags(flags, raw, extra)
    win = won[0]
    if meta.token_sent:
        returned += b" Z"
    if meta.stale:
        returned += b" X"
        win = win or not meta.token_sent
    if win:
        returned += b" W"
        meta.token_sent = True
    meta.fetched = True
    meta.atime = now
    if flags.value:
        return b"VA %d%b\r\n%b\r\n" % (len(value), returned, value)
    return b"HD%b\r\n" % returned


_MS_MODES = {
    ord("S"): b"set",
    ord("E"): b"add",
    ord("R"): b"replace",
    ord("A"): b"append",
    ord("P"): b"prepend",
}


def _ms(session: Session, request: Request) -> bytes:
    parsed = _key_request(request, 3, None)  # its flags follow the data length
    if isinstance(parsed, bytes):
        return parsed
    flags, raw, key = parsed
    mode = _MS_MODES.get(flags.mode if flags.mode is not None else ord("S"))
    if mode is None:
        return b"CLIENT_ERROR invalid mode for ms M token\r\n"
    data = request.data
    if data is None:  # the parser refused the data block; the flags' errors come first
        return request.error
    _count(session, "cmd_set")
    _count(session, "cmd_meta")
    items = session.items
    status = _ms_store(session, flags, key, data, mode)
    if isinstance(status, tuple):
        return status[0]
    if status == b"HD" and flags.quiet:
        return b""

    def extra(char: int) -> bytes | None:
        if char == 99:  # c: the new CAS (0 when nothing was stored, as memcached)
            stored = status == b"HD" and items.value(key) is not None
            return b" c%d" % (items.cas_of(key) if stored else 0)
        return None

    return status + _return_flags(flags, raw, extra) + b"\r\n"


def _ms_store(session: Session, flags: MetaFlags, key: str, data: bytes, mode: bytes) -> bytes | tuple[bytes]:
    """Store for ms: the status (HD NS EX NF), or a 1-tuple holding an error line."""
    if session.out_of_memory():
        return (_OOM,)
    items = session.items
    old = items.value(key)
    ttl = ttl_of(flags.ttl or 0)
    stale = False
    appending = mode in (b"append", b"prepend")
    # As memcached: add ignores C; append/prepend miss with NS, compare without I, and
    # C0 compares nothing for them.
    if flags.cas is not None and mode != b"add" and not (appending and flags.cas == 0):
        if old is None:
            return b"NS" if appending else b"NF"
        current = items.cas_of(key)
        if current != flags.cas:
            if appending or not (flags.invalidate and 0 < flags.cas < current):
                return b"EX"
            # I with an older CAS: the write is kept, marked stale (its win token sent).
            stale = True
    try:
        if mode == b"add" and items.db.get(key) is not None:
            return b"NS"
        if mode in (b"replace", b"append", b"prepend") and old is None:
            return b"NS"
        if appending:
            assert old is not None
            joined = old + data if mode == b"append" else data + old
            if len(joined) > session.listener.max_item_size:
                return b"NS"  # as memcached, whose new item cannot be allocated
            items.store_keep_ttl(key, joined, items.flags_of(key))
        else:
            meta = items.store(key, data, flags.flags or 0, ttl, flags.new_cas)
            if stale and meta is None and ttl != EXPIRED:
                meta = items.meta_of(key)
            if stale and meta is not None:
                meta.stale = True
                meta.token_sent = True
    except ValueTooLarge:
        return (_TOO_LARGE,)
    return b"HD"


def _key_request(
    request: Request, flags_at: int = 2, generic: bytes | None = _META_INVALID
) -> bytes | tuple[MetaFlags, bytes, str]:
    """A meta command's common start: (flags, the key as sent, the key), or the error line.

    ``flags_at`` is the first flag's token (3 for ms). ``generic`` replaces the specific
    error text, as memcached's md and ma do; mg and ms pass None to keep the specific line.
    (For ms the parser has already refused a missing or too long key: those checks pass.)
    """
    tokens = request.tokens
    if len(tokens) < 2:
        return _ERROR
    if len(tokens[1]) > KEY_MAX_LENGTH:
        return _BAD_FORMAT
    flags = _meta_flags(request, flags_at, generic)
    if type(flags) is bytes:
        return flags
    assert isinstance(flags, MetaFlags)
    try:
        raw, key = _meta_key(request, flags)
    except MetaError as exc:
        return generic if generic is not None else exc.line
    return flags, raw, key


def _md(session: Session, request: Request) -> bytes:
    parsed = _key_request(request)
    if isinstance(parsed, bytes):
        return parsed
    flags, raw, key = parsed
    _count(session, "cmd_meta")
    items = session.items
    if items.value(key) is None:
        _count(session, "delete_misses")
        status = b"NF"
    elif flags.cas is not None and items.cas_of(key) != flags.cas:
        status = b"EX"
    else:
        _count(session, "delete_hits")
        status = b"HD"
        if flags.invalidate:
            # Marked stale instead of deleted: the next mg wins the right to refill it.
            if flags.ttl is not None:
                items.touch(key, ttl_of(flags.ttl))
            if items.value(key) is not None:
                meta = items.meta_of(key)
                meta.stale = True
                meta.token_sent = False
                meta.cas = items.next_cas()
        else:
            items.db.delete(key)
    if status == b"HD" and flags.quiet:
        return b""
    return status + _return_flags(flags, raw) + b"\r\n"


def _ma(session: Session, request: Request) -> bytes:
    parsed = _key_request(request)
    if isinstance(parsed, bytes):
        return parsed
    flags, raw, key = parsed
    mode = flags.mode
    if mode is None or mode in b"I+":
        incr = True
    elif mode in b"D-":
        incr = False
    else:
        return b"CLIENT_ERROR invalid mode for ma M token\r\n"
    _count(session, "cmd_meta")
    items = session.items
    name = "incr" if incr else "decr"
    old = items.value(key)
    vivified = old is None
    if old is None:
        _count(session, f"{name}_misses")
        if flags.vivify is None:
            return b"NF" + _return_flags(flags, raw) + b"\r\n"
        if session.out_of_memory():
            return _OOM
        number = flags.initial
        items.store(key, b"%d" % number, 0, None, flags.new_cas)  # TTL: where N stands
    else:
        # memcached's order: an empty value, then the CAS (C0 compares nothing), then digits.
        if not old:
            return _NON_NUMERIC
        if flags.cas and items.cas_of(key) != flags.cas:
            return b"EX" + _return_flags(flags, raw) + b"\r\n"
        result = _apply_delta(old, flags.delta, incr)
        if result is None:
            return _NON_NUMERIC
        _count(session, f"{name}_hits")
        meta = items.store_number(key, result[0], len(old))
        if flags.new_cas is not None:
            meta = meta or items.meta_of(key)
            meta.cas = flags.new_cas
            items.bump_cas_past(flags.new_cas)
        number = result[1]

    def extra(char: int) -> bytes | None:
        if char == 99:  # c
            return b" c%d" % items.cas_of(key)
        if char == 116:  # t
            return b" t%d" % items.ttl_left(key)
        _ttl_flag(items, key, flags, char, vivified)
        return None

    returned = _return_flags(flags, raw, extra)  # before quiet: T and N take effect there
    if flags.quiet and not vivified:  # memcached answers a vivifying ma even when quiet
        return b""
    if flags.value:
        text = b"%d" % number
        return b"VA %d%b\r\n%b\r\n" % (len(text), returned, text)
    return b"HD%b\r\n" % returned


def _mn(session: Session, request: Request) -> bytes:
    return b"MN\r\n"


Handler = Callable[[Session, Request], bytes]

COMMANDS: dict[bytes, Handler] = {
    b"get": _get,
    b"gets": _retrieve,
    b"gat": _retrieve,
    b"gats": _retrieve,
    b"set": _storage,
    b"add": _storage,
    b"replace": _storage,
    b"append": _storage,
    b"prepend": _storage,
    b"cas": _storage,
    b"delete": _delete,
    b"incr": _arith,
    b"decr": _arith,
    b"touch": _touch,
    b"flush_all": _flush_all,
    b"stats": _stats,
    b"version": _version,
    b"verbosity": _verbosity,
    b"quit": _quit,
    b"shutdown": _shutdown,
    b"mg": _mg,
    b"ms": _ms,
    b"md": _md,
    b"ma": _ma,
    b"mn": _mn,
}
"""Command name (as sent: memcached's names are case-sensitive) -> handler."""
