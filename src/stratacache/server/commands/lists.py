"""List commands (LPUSH LRANGE LPOS LMOVE LMPOP ...), the list value type, and the blocking
commands (BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP).

Blocking: a blocking command that finds nothing returns a
:class:`~stratacache.server.connection.Deferred` and registers a waiter on each of its keys,
in arrival order. Any change of a key someone waits on (a push here, or RENAME, COPY, EXEC,
... anywhere: the hook is ``server.change_listeners``) marks the key ready; ready keys are
served at the end of the pushing command (or, inside EXEC or a script, right after it, from
the loop), longest-waiting client first, by re-running the waiter's command in its
non-blocking form, as Redis 7.2 does. A waiter leaves on its timeout (``call_later`` on the
running loop), when served, or when its client disconnects (``Deferred.on_cancel``).

A blocking command never blocks inside a transaction or a script: it answers nil at once.
EXEC and EVAL say they are running by setting ``client.extra["in_exec"]`` /
``client.extra["in_script"]`` to a true value while they run the queued commands (and may
call :func:`serve_blocked` after, to serve at once instead of from the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..connection import Deferred
from ..errors import NO_SUCH_KEY, OUT_OF_RANGE, SYNTAX, WRONGTYPE, wrong_arity
from ..keyspace import RedisValue, bkey, skey
from ..resp import NULL_ARRAY, ErrorReply
from . import command
from .hashes import LLONG_MAX, _Inf, get_ll, ld_round, parse_ld, parse_ll

if TYPE_CHECKING:
    from ..app import Server
    from ..connection import Client
    from ..keyspace import Database

__all__ = [
    "LIST_MAX_LISTPACK_SIZE",
    "ListValue",
    "blocked_clients",
    "serve_blocked",
    "unblock_client",
]

logger = logging.getLogger("stratacache.server")

LIST_MAX_LISTPACK_SIZE = 8192
"""Redis 7.2's ``list-max-listpack-size -2``: a list whose listpack would pass 8 KB is a
quicklist; it goes back to a listpack once it fits in half of that."""

_LP_HEADER = 7  # listpack total-bytes (4), count (2), end marker (1)
_ITEM_OVERHEAD = 33 + 8  # a bytes object and its deque slot
_POSITIVE = "ERR value is out of range, must be positive"


def _lp_entry_size(item: bytes) -> int:
    """Bytes ``item`` takes in a listpack (encoding byte(s), data, back-length)."""
    size = len(item)
    value = parse_ll(item) if size <= 20 else None
    if value is not None:
        if 0 <= value <= 127:
            size = 1
        elif -4096 <= value < 4096:
            size = 2
        elif -32768 <= value < 32768:
            size = 3
        elif -8388608 <= value < 8388608:
            size = 4
        elif -(1 << 31) <= value < 1 << 31:
            size = 5
        else:
            size = 9
    else:
        size += 1 if size < 64 else 2 if size < 4096 else 5
    return size + (1 if size < 128 else 2 if size < 16384 else 3 if size < 2097152 else 4)


class ListValue(RedisValue):
    """A list: a deque of byte strings, with Redis 7.2's encodings (``listpack`` while its
    listpack would take at most 8 KB, else ``quicklist``)."""

    __slots__ = ("items", "lpbytes", "quick")
    type_name = "list"

    def __init__(self) -> None:
        super().__init__()
        self.items: deque[bytes] = deque()
        self.lpbytes = _LP_HEADER
        self.quick = False

    def encoding(self) -> str:
        """``listpack`` or ``quicklist``."""
        return "quicklist" if self.quick else "listpack"

    def __len__(self) -> int:
        return len(self.items)

    def added(self, item: bytes) -> None:
        """Account for ``item``, just put in :attr:`items`."""
        self.nbytes += len(item) + _ITEM_OVERHEAD
        self.lpbytes += _lp_entry_size(item)
        if self.lpbytes > LIST_MAX_LISTPACK_SIZE:
            self.quick = True

    def removed(self, item: bytes) -> None:
        """Account for ``item``, just taken out of :attr:`items`."""
        self.nbytes -= len(item) + _ITEM_OVERHEAD
        self.lpbytes -= _lp_entry_size(item)
        if self.quick and self.lpbytes <= LIST_MAX_LISTPACK_SIZE // 2:
            self.quick = False

    def push(self, item: bytes, left: bool) -> None:
        """Add ``item`` at the head (``left``) or the tail."""
        if left:
            self.items.appendleft(item)
        else:
            self.items.append(item)
        self.added(item)

    def pop(self, left: bool) -> bytes:
        """Remove and return the head (``left``) or the tail item (the list is not empty)."""
        item = self.items.popleft() if left else self.items.pop()
        self.removed(item)
        return item


def _list(db: Database, key: str) -> ListValue | None:
    value: ListValue | None = db.get_typed(key, ListValue)
    return value


def _where(arg: bytes) -> bool:
    """LEFT (True) or RIGHT (False), else a syntax error."""
    upper = arg.upper()
    if upper == b"LEFT":
        return True
    if upper == b"RIGHT":
        return False
    raise ErrorReply(SYNTAX)


def _range(size: int, start: int, stop: int) -> tuple[int, int] | None:
    """LRANGE's (start, stop) normalized to indexes within ``size``, or None if empty."""
    if start < 0:
        start += size
    if stop < 0:
        stop += size
    start = max(start, 0)
    if start > stop or start >= size:
        return None
    if stop >= size:
        stop = size - 1
    return start, stop


def _slice(items: deque[bytes], start: int, stop: int) -> list[bytes]:
    """items[start:stop+1], walking from the nearer end."""
    size = len(items)
    if start > size - 1 - stop:
        part = list(itertools.islice(reversed(items), size - 1 - stop, size - start))
        part.reverse()
        return part
    return list(itertools.islice(items, start, stop + 1))


# ----------------------------------------------------------------------------- pushes


def _push(client: Client, args: list[bytes], left: bool, existing_only: bool) -> int:
    key = skey(args[1])
    db = client.db
    value = _list(db, key)
    if value is None:
        if existing_only:
            return 0
        value = ListValue()
        for item in args[2:]:
            value.push(item, left)
        db.set(key, value)
    else:
        for item in args[2:]:
            value.push(item, left)
        db.changed(key, value)
    size = len(value)
    _wake(client)
    return size


@command("lpush", arity=-3, flags="write denyoom fast", keys=(1, 1, 1), group="list")
def lpush(client: Client, args: list[bytes]) -> Any:
    """Prepend elements to a list; its new length."""
    return _push(client, args, True, False)


@command("rpush", arity=-3, flags="write denyoom fast", keys=(1, 1, 1), group="list")
def rpush(client: Client, args: list[bytes]) -> Any:
    """Append elements to a list; its new length."""
    return _push(client, args, False, False)


@command("lpushx", arity=-3, flags="write denyoom fast", keys=(1, 1, 1), group="list", since="2.2.0")
def lpushx(client: Client, args: list[bytes]) -> Any:
    """Prepend elements to a list only if it exists; its length (0: no list)."""
    return _push(client, args, True, True)


@command("rpushx", arity=-3, flags="write denyoom fast", keys=(1, 1, 1), group="list", since="2.2.0")
def rpushx(client: Client, args: list[bytes]) -> Any:
    """Append elements to a list only if it exists; its length (0: no list)."""
    return _push(client, args, False, True)


@command("linsert", arity=5, flags="write denyoom", keys=(1, 1, 1), group="list", since="2.2.0")
def linsert(client: Client, args: list[bytes]) -> Any:
    """Insert an element before or after a pivot; the new length, -1 without the pivot, 0
    without the list."""
    where = args[2].upper()
    if where not in (b"BEFORE", b"AFTER"):
        raise ErrorReply(SYNTAX)
    key = skey(args[1])
    value = _list(client.db, key)
    if value is None:
        return 0
    try:
        position = value.items.index(args[3])
    except ValueError:
        return -1
    value.items.insert(position if where == b"BEFORE" else position + 1, args[4])
    value.added(args[4])
    client.db.changed(key, value)
    _wake(client)
    return len(value)


# ----------------------------------------------------------------------------- reads


@command("llen", arity=2, flags="readonly fast", keys=(1, 1, 1), group="list")
def llen(client: Client, args: list[bytes]) -> Any:
    """The length of a list."""
    value = _list(client.db, skey(args[1]))
    return 0 if value is None else len(value)


@command("lrange", arity=4, flags="readonly", keys=(1, 1, 1), group="list")
def lrange(client: Client, args: list[bytes]) -> Any:
    """The elements of a list from start to stop (inclusive; negative: from the end)."""
    start, stop = get_ll(args[2]), get_ll(args[3])
    value = _list(client.db, skey(args[1]))
    if value is None:
        return []
    bounds = _range(len(value), start, stop)
    if bounds is None:
        return []
    return _slice(value.items, *bounds)


@command("lindex", arity=3, flags="readonly", keys=(1, 1, 1), group="list")
def lindex(client: Client, args: list[bytes]) -> Any:
    """The element at an index of a list (nil when out of range)."""
    value = _list(client.db, skey(args[1]))
    if value is None:
        return None
    index = get_ll(args[2])
    size = len(value)
    if index < 0:
        index += size
    if index < 0 or index >= size:
        return None
    return value.items[index]


@command("lpos", arity=-3, flags="readonly", keys=(1, 1, 1), group="list", since="6.0.6")
def lpos(client: Client, args: list[bytes]) -> Any:
    """The index of matching elements (RANK: which match, negative from the end; COUNT: how
    many, 0 all; MAXLEN: how many elements to compare)."""
    rank, count, maxlen = 1, -1, 0
    i = 3
    while i < len(args):
        option = args[i].upper()
        if i + 1 >= len(args):
            raise ErrorReply(SYNTAX)
        if option == b"RANK":
            rank = get_ll(args[i + 1])
            if rank == 0:
                raise ErrorReply(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the "
                    "second ... or use negative to start from the end of the list"
                )
        elif option == b"COUNT":
            parsed = parse_ll(args[i + 1])
            if parsed is None or parsed < 0:
                raise ErrorReply("ERR COUNT can't be negative")
            count = parsed
        elif option == b"MAXLEN":
            parsed = parse_ll(args[i + 1])
            if parsed is None or parsed < 0:
                raise ErrorReply("ERR MAXLEN can't be negative")
            maxlen = parsed
        else:
            raise ErrorReply(SYNTAX)
        i += 2
    value = _list(client.db, skey(args[1]))
    if value is None:
        return [] if count != -1 else None
    items = value.items
    size = len(items)
    backwards = rank < 0
    rank = -rank if backwards else rank
    walk = reversed(items) if backwards else iter(items)
    if maxlen:
        walk = itertools.islice(walk, maxlen)
    element = args[2]
    found: list[int] = []
    matches = 0
    for index, item in enumerate(walk):
        if item == element:
            matches += 1
            if matches >= rank:
                found.append(size - index - 1 if backwards else index)
                if count == -1 or (count and len(found) >= count):
                    break
    if count == -1:
        return found[0] if found else None
    return found


# ----------------------------------------------------------------------------- changes


@command("lset", arity=4, flags="write denyoom", keys=(1, 1, 1), group="list")
def lset(client: Client, args: list[bytes]) -> Any:
    """Set the element at an index of a list."""
    key = skey(args[1])
    value = _list(client.db, key)
    if value is None:
        raise ErrorReply(NO_SUCH_KEY)
    index = get_ll(args[2])
    size = len(value)
    if index < 0:
        index += size
    if index < 0 or index >= size:
        raise ErrorReply(OUT_OF_RANGE)
    items = value.items
    old = items[index]
    items[index] = args[3]
    value.removed(old)
    value.added(args[3])
    client.db.changed(key, value)
    return "OK"


@command("lrem", arity=4, flags="write", keys=(1, 1, 1), group="list")
def lrem(client: Client, args: list[bytes]) -> Any:
    """Remove elements equal to one (count > 0: the first count, < 0: the last, 0: all);
    the number removed."""
    count = get_ll(args[2])
    key = skey(args[1])
    value = _list(client.db, key)
    if value is None:
        return 0
    element = args[3]
    items = value.items
    limit = abs(count) or len(items)
    removed = 0
    kept: deque[bytes] = deque()
    source = reversed(items) if count < 0 else iter(items)
    for item in source:
        if removed < limit and item == element:
            removed += 1
            value.removed(item)
        elif count < 0:
            kept.appendleft(item)
        else:
            kept.append(item)
    if removed:
        value.items = kept
        client.db.changed(key, value)
    return removed


@command("ltrim", arity=4, flags="write", keys=(1, 1, 1), group="list")
def ltrim(client: Client, args: list[bytes]) -> Any:
    """Keep only the elements from start to stop."""
    start, stop = get_ll(args[2]), get_ll(args[3])
    key = skey(args[1])
    value = _list(client.db, key)
    if value is None:
        return "OK"
    size = len(value)
    bounds = _range(size, start, stop)
    if bounds is None:
        for _ in range(size):
            value.pop(True)
    else:
        for _ in range(bounds[0]):
            value.pop(True)
        for _ in range(size - 1 - bounds[1]):
            value.pop(False)
    if len(value) != size:
        client.db.changed(key, value)
    return "OK"


def _pop_command(client: Client, args: list[bytes], left: bool) -> Any:
    if len(args) > 3:
        raise wrong_arity("lpop" if left else "rpop")
    key = skey(args[1])
    db = client.db
    if len(args) == 2:
        value = _list(db, key)
        if value is None:
            return None
        item = value.pop(left)
        db.changed(key, value)
        return item
    count = get_ll(args[2], _POSITIVE)
    if count < 0:
        raise ErrorReply(_POSITIVE)
    value = _list(db, key)
    if value is None:
        return NULL_ARRAY
    if count == 0:
        return []
    popped = [value.pop(left) for _ in range(min(count, len(value)))]
    db.changed(key, value)
    return popped


@command("lpop", arity=-2, flags="write fast", keys=(1, 1, 1), group="list")
def lpop(client: Client, args: list[bytes]) -> Any:
    """Remove and return the first element(s) of a list."""
    return _pop_command(client, args, True)


@command("rpop", arity=-2, flags="write fast", keys=(1, 1, 1), group="list")
def rpop(client: Client, args: list[bytes]) -> Any:
    """Remove and return the last element(s) of a list."""
    return _pop_command(client, args, False)


def _move(db: Database, source_key: str, dest_key: str, left_from: bool, left_to: bool) -> Any:
    """LMOVE: pop from the source, push on the destination; the element, or None."""
    source = _list(db, source_key)
    if source is None:
        return None
    dest = db.get(dest_key)
    if dest is not None and type(dest) is not ListValue:
        raise ErrorReply(WRONGTYPE)
    item = source.pop(left_from)
    if dest is None:
        dest = ListValue()
        dest.push(item, left_to)
        db.changed(source_key, source)
        db.set(dest_key, dest)
    else:
        dest.push(item, left_to)
        if dest is not source:
            db.changed(source_key, source)
        db.changed(dest_key, dest)
    return item


@command("lmove", arity=5, flags="write denyoom", keys=(1, 2, 1), group="list", since="6.2.0")
def lmove(client: Client, args: list[bytes]) -> Any:
    """Pop an element from one list and push it on another; the element."""
    left_from, left_to = _where(args[3]), _where(args[4])
    item = _move(client.db, skey(args[1]), skey(args[2]), left_from, left_to)
    if item is not None:
        _wake(client)
    return item


@command("rpoplpush", arity=3, flags="write denyoom", keys=(1, 2, 1), group="list", since="1.2.0")
def rpoplpush(client: Client, args: list[bytes]) -> Any:
    """LMOVE source destination RIGHT LEFT."""
    item = _move(client.db, skey(args[1]), skey(args[2]), False, True)
    if item is not None:
        _wake(client)
    return item


def _mpop_args(args: list[bytes], first: int) -> tuple[list[str], bool, int]:
    """(keys, left, count) of LMPOP's arguments from ``numkeys`` at ``first``."""
    numkeys = parse_ll(args[first])
    if numkeys is None or numkeys <= 0:
        raise ErrorReply("ERR numkeys should be greater than 0")
    where_at = first + 1 + numkeys
    if where_at >= len(args):
        raise ErrorReply(SYNTAX)
    left = _where(args[where_at])
    count = -1
    i = where_at + 1
    while i < len(args):
        if count == -1 and args[i].upper() == b"COUNT" and i + 1 < len(args):
            parsed = parse_ll(args[i + 1])
            if parsed is None or parsed <= 0:
                raise ErrorReply("ERR count should be greater than 0")
            count = parsed
            i += 2
        else:
            raise ErrorReply(SYNTAX)
    return [skey(key) for key in args[first + 1 : where_at]], left, max(count, 1)


def _mpop(db: Database, keys: list[str], left: bool, count: int) -> list[Any] | None:
    """[key, [elements]] from the first non-empty list, or None."""
    for key in keys:
        value = _list(db, key)
        if value is not None:
            popped = [value.pop(left) for _ in range(min(count, len(value)))]
            db.changed(key, value)
            return [bkey(key), popped]
    return None


def _pop_first(db: Database, keys: list[str], left: bool) -> list[bytes] | None:
    """[key, element] from the first non-empty list, or None."""
    for key in keys:
        value = _list(db, key)
        if value is not None:
            item = value.pop(left)
            db.changed(key, value)
            return [bkey(key), item]
    return None


@command("lmpop", arity=-4, flags="write movablekeys", keys=(0, 0, 0), group="list", since="7.0.0")
def lmpop(client: Client, args: list[bytes]) -> Any:
    """Pop up to COUNT elements from the first non-empty list of several; [key, elements]."""
    keys, left, count = _mpop_args(args, 1)
    reply = _mpop(client.db, keys, left, count)
    return NULL_ARRAY if reply is None else reply


# ----------------------------------------------------------------------------- blocking


class _Waiter:
    """A client blocked on keys: what to try when one is ready, and how to answer a timeout."""

    __slots__ = ("attempt", "client", "db", "deferred", "keys", "timeout_reply", "timer")

    def __init__(
        self,
        *,
        client: Client,
        db: Database,
        keys: list[str],
        attempt: Callable[[], Any],
        timeout_reply: Any,
        deferred: Deferred,
    ) -> None:
        self.client = client
        self.db = db
        self.keys = keys
        self.attempt = attempt
        self.timeout_reply = timeout_reply
        self.deferred = deferred
        self.timer: asyncio.TimerHandle | None = None


class _Blocking:
    """The server's blocked clients (``server.extra["blocking"]``)."""

    __slots__ = ("by_client", "loop", "ready", "scheduled", "serving", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.waiters: dict[tuple[int, str], deque[_Waiter]] = {}
        self.by_client: dict[int, _Waiter] = {}
        self.ready: dict[tuple[int, str], Database] = {}
        self.loop = loop
        self.scheduled = False
        self.serving = False

    def key_changed(self, db: Database, key: str) -> None:
        """``server.change_listeners`` hook: a waited-on key may now be served."""
        if not self.waiters:
            return
        item = (db.index, key)
        if item in self.waiters:
            self.ready[item] = db
            if not self.scheduled and not self.serving:
                self.scheduled = True
                self.loop.call_soon(self._serve_soon)

    def _serve_soon(self) -> None:
        self.scheduled = False
        self.serve()

    def add(self, waiter: _Waiter) -> None:
        self.by_client[waiter.client.id] = waiter
        index = waiter.db.index
        for key in dict.fromkeys(waiter.keys):
            self.waiters.setdefault((index, key), deque()).append(waiter)

    def remove(self, waiter: _Waiter) -> None:
        if self.by_client.get(waiter.client.id) is waiter:
            del self.by_client[waiter.client.id]
        index = waiter.db.index
        for key in dict.fromkeys(waiter.keys):
            queue = self.waiters.get((index, key))
            if queue is not None:
                with contextlib.suppress(ValueError):
                    queue.remove(waiter)
                if not queue:
                    del self.waiters[(index, key)]
        if waiter.timer is not None:
            waiter.timer.cancel()
            waiter.timer = None

    def serve(self) -> None:
        """Serve every ready key, longest-waiting client first (re-entrant calls return:
        the outer loop picks up what they marked ready)."""
        if self.serving:
            return
        self.serving = True
        try:
            while self.ready:
                ready, self.ready = self.ready, {}
                for item, db in ready.items():
                    self._serve_key(item, db)
        finally:
            self.serving = False

    def _serve_key(self, item: tuple[int, str], db: Database) -> None:
        while True:
            queue = self.waiters.get(item)
            if not queue:
                return
            value = db.get(item[1])
            if type(value) is not ListValue or not value:
                return
            waiter = queue[0]
            try:
                reply = waiter.attempt()
            except ErrorReply as exc:
                reply = exc
            except Exception as exc:  # a bug of ours: answer the waiter, keep serving
                waiter.client.server.internal_errors += 1
                logger.exception("internal error serving blocked client id=%d", waiter.client.id)
                reply = ErrorReply(f"ERR internal error serving a blocked client: {type(exc).__name__}")
            if reply is None:
                return
            self.remove(waiter)
            waiter.deferred.resolve(reply)


def _state(server: Server) -> _Blocking:
    state: _Blocking | None = server.extra.get("blocking")
    if state is None:
        state = _Blocking(asyncio.get_running_loop())
        server.extra["blocking"] = state
        server.change_listeners.append(state.key_changed)
    return state


def _no_block(client: Client) -> bool:
    """Whether blocking is not allowed now (MULTI/EXEC, scripts): answer nil at once."""
    extra = client.extra
    return client.multi is not None or bool(extra.get("in_exec")) or bool(extra.get("in_script"))


def _wake(client: Client) -> None:
    """After a push: serve clients waiting on what became ready (later, inside EXEC/scripts)."""
    state: _Blocking | None = client.server.extra.get("blocking")
    if state is not None and state.ready and not _no_block(client):
        state.serve()


def serve_blocked(server: Server) -> None:
    """Serve the clients blocked on keys that became ready (EXEC may call it when done)."""
    state: _Blocking | None = server.extra.get("blocking")
    if state is not None and state.ready:
        state.serve()


def blocked_clients(server: Server) -> int:
    """How many clients are blocked on lists (INFO's ``blocked_clients``)."""
    state: _Blocking | None = server.extra.get("blocking")
    return 0 if state is None else len(state.by_client)


def unblock_client(client: Client, error: bool = False) -> bool:
    """CLIENT UNBLOCK: answer a blocked client as on timeout, or with Redis's UNBLOCKED error;
    False when it is not blocked on a list."""
    state: _Blocking | None = client.server.extra.get("blocking")
    waiter = None if state is None else state.by_client.get(client.id)
    if state is None or waiter is None:
        return False
    state.remove(waiter)
    reply = ErrorReply("UNBLOCKED client unblocked via CLIENT UNBLOCK") if error else waiter.timeout_reply
    waiter.deferred.resolve(reply)
    return True


def _timeout(arg: bytes) -> float:
    """A blocking command's timeout in seconds (0: forever), read as Redis reads it: a long
    double times 1000, rounded up to whole milliseconds (``ceill``)."""
    value = parse_ld(arg)
    if value is None:
        raise ErrorReply("ERR timeout is not a float or out of range")
    ms = value if isinstance(value, _Inf) else ld_round(value * 1000)
    # (long long) of an infinite or too large long double is LLONG_MIN on x86: "negative".
    if isinstance(ms, _Inf) or abs(ms) >= 1 << 63:
        raise ErrorReply("ERR timeout is negative")
    whole = math.ceil(ms)  # ceill(): 0.0001 s is 1 ms, not 0 (which would mean forever)
    if whole < 0:
        raise ErrorReply("ERR timeout is negative")
    if whole > LLONG_MAX - int(time.time() * 1000):
        raise ErrorReply("ERR timeout is out of range")
    return whole / 1000


def _block(
    client: Client, keys: list[str], attempt: Callable[[], Any], timeout: float, timeout_reply: Any
) -> Deferred:
    state = _state(client.server)
    deferred = Deferred()
    waiter = _Waiter(
        client=client,
        db=client.db,
        keys=keys,
        attempt=attempt,
        timeout_reply=timeout_reply,
        deferred=deferred,
    )

    def cancel() -> None:
        state.remove(waiter)

    def expire() -> None:
        waiter.timer = None
        state.remove(waiter)
        deferred.resolve(timeout_reply)

    deferred.on_cancel = cancel
    if timeout > 0:
        waiter.timer = state.loop.call_later(timeout, expire)
    state.add(waiter)
    return deferred


def _blocking_pop(client: Client, args: list[bytes], left: bool) -> Any:
    timeout = _timeout(args[-1])
    keys = [skey(key) for key in args[1:-1]]
    db = client.db
    reply = _pop_first(db, keys, left)
    if reply is not None:
        return reply
    if _no_block(client):
        return NULL_ARRAY
    return _block(client, keys, lambda: _pop_first(db, keys, left), timeout, NULL_ARRAY)


@command("blpop", arity=-3, flags="write blocking", keys=(1, -2, 1), group="list", since="2.0.0")
def blpop(client: Client, args: list[bytes]) -> Any:
    """LPOP from the first non-empty list, or block until one has an element; [key, element]."""
    return _blocking_pop(client, args, True)


@command("brpop", arity=-3, flags="write blocking", keys=(1, -2, 1), group="list", since="2.0.0")
def brpop(client: Client, args: list[bytes]) -> Any:
    """RPOP from the first non-empty list, or block until one has an element; [key, element]."""
    return _blocking_pop(client, args, False)


def _blocking_move(
    client: Client, source: bytes, dest: bytes, *, left_from: bool, left_to: bool, timeout: float
) -> Any:
    db = client.db
    source_key, dest_key = skey(source), skey(dest)

    def attempt() -> Any:
        return _move(db, source_key, dest_key, left_from, left_to)

    item = attempt()
    if item is not None:
        _wake(client)
        return item
    if _no_block(client):
        return None
    # A timeout answers the null array for every list block (Redis's replyToBlockedClientTimedOut).
    return _block(client, [source_key], attempt, timeout, NULL_ARRAY)


@command("blmove", arity=6, flags="write denyoom blocking", keys=(1, 2, 1), group="list", since="6.2.0")
def blmove(client: Client, args: list[bytes]) -> Any:
    """LMOVE, or block until the source has an element."""
    left_from, left_to = _where(args[3]), _where(args[4])
    timeout = _timeout(args[5])
    return _blocking_move(client, args[1], args[2], left_from=left_from, left_to=left_to, timeout=timeout)


@command("brpoplpush", arity=4, flags="write denyoom blocking", keys=(1, 2, 1), group="list", since="2.2.0")
def brpoplpush(client: Client, args: list[bytes]) -> Any:
    """RPOPLPUSH, or block until the source has an element."""
    timeout = _timeout(args[3])
    return _blocking_move(client, args[1], args[2], left_from=False, left_to=True, timeout=timeout)


@command("blmpop", arity=-5, flags="write blocking movablekeys", keys=(0, 0, 0), group="list", since="7.0.0")
def blmpop(client: Client, args: list[bytes]) -> Any:
    """LMPOP, or block until one of the lists has an element."""
    timeout = _timeout(args[1])
    keys, left, count = _mpop_args(args, 2)
    db = client.db
    reply = _mpop(db, keys, left, count)
    if reply is not None:
        return reply
    if _no_block(client):
        return NULL_ARRAY
    return _block(client, keys, lambda: _mpop(db, keys, left, count), timeout, NULL_ARRAY)
