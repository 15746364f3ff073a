"""Sorted-set commands (Redis 7 semantics, replies and error texts; see docs/server.md).

ZADD ZINCRBY ZREM ZSCORE ZMSCORE ZCARD ZCOUNT ZLEXCOUNT ZRANK ZREVRANK ZRANGE ZRANGESTORE
ZRANGEBYSCORE ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZREVRANGE ZPOPMIN ZPOPMAX
ZRANDMEMBER ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREMRANGEBYLEX ZUNION ZINTER ZDIFF ZUNIONSTORE
ZINTERSTORE ZDIFFSTORE ZINTERCARD ZSCAN.

Numbers are parsed as Redis parses them, because the error replies depend on it: scores,
increments and weights with ``string2d`` (C ``strtod`` over the whole argument, no leading
space, no NaN, no overflow), range bounds with ``zslParseRange`` (``strtod`` up to the end of
the C string: leading spaces and overflow to infinity allowed, an empty bound is 0), integers
with ``string2ll``. Scores are written with ``%.17g`` (:func:`~stratacache.server.zset.format_score`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from math import isnan
from typing import TYPE_CHECKING, Any

from ..errors import NOT_FLOAT, NOT_INTEGER, SYNTAX, WRONGTYPE
from ..keyspace import skey
from ..resp import NULL_ARRAY, Double, ErrorReply
from ..scan import empty_scan, parse_cursor, parse_scan_options, scan_reply
from ..zset import MAX_LISTPACK_ENTRIES, ZSet, format_score
from . import command

if TYPE_CHECKING:
    from ..connection import Client

NAN_SCORE = "ERR resulting score is not a number (NaN)"
NOT_FLOAT_RANGE = "ERR min or max is not a float"
NOT_LEX_RANGE = "ERR min or max not valid string range item"
MUST_BE_POSITIVE = "ERR value is out of range, must be positive"

_LONG_MIN = -(2**63)
_LONG_MAX = 2**63 - 1

# ------------------------------------------------------------------------------- parsing

_INT = re.compile(rb"-?[1-9][0-9]*|0")
_DECIMAL = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX = re.compile(rb"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?")
_INFINITY = re.compile(rb"[+-]?(?:inf|infinity)", re.IGNORECASE)
_NONZERO = re.compile(rb"[1-9]")
_NONZERO_HEX = re.compile(rb"[1-9a-fA-F]")
_C_SPACE = b" \t\n\v\f\r"


def parse_long(data: bytes, error: str = NOT_INTEGER) -> int:
    """``data`` as Redis's ``string2ll`` reads it (strict decimal, 64-bit), else ``error``."""
    if _INT.fullmatch(data) is not None:
        value = int(data)
        if _LONG_MIN <= value <= _LONG_MAX:
            return value
    raise ErrorReply(error)


def _strtod(text: bytes) -> tuple[float, bool] | None:
    """C ``strtod`` of the whole of ``text`` (no leading space): (value, range error), or None
    when ``text`` is not entirely a number. NaN spellings are None: Redis refuses them all."""
    if _DECIMAL.fullmatch(text) is not None:
        value = float(text)
        if value in (_INF, _NINF):
            return value, True
        mantissa = text.split(b"e")[0].split(b"E")[0]
        return value, value == 0.0 and _NONZERO.search(mantissa) is not None
    if _INFINITY.fullmatch(text) is not None:
        return (_NINF if text[:1] == b"-" else _INF), False
    if _HEX.fullmatch(text) is not None:
        try:
            value = float.fromhex(text.decode())
        except OverflowError:
            return (_NINF if text[:1] == b"-" else _INF), True
        mantissa = text[text.index(b"x") + 1 if b"x" in text else text.index(b"X") + 1 :]
        mantissa = mantissa.split(b"p")[0].split(b"P")[0]
        return value, value == 0.0 and _NONZERO_HEX.search(mantissa) is not None
    return None


_INF = float("inf")
_NINF = float("-inf")


def parse_score(data: bytes, error: str = NOT_FLOAT) -> float:
    """A score, increment or weight as Redis's ``string2d`` reads it, else ``error``."""
    parsed = _strtod(data)
    if parsed is None or parsed[1]:
        raise ErrorReply(error)
    return parsed[0]


def _bound(data: bytes) -> tuple[float, bool]:
    """One end of a score range, (value, exclusive), as ``zslParseRange`` reads it."""
    end = data.find(b"\x00")
    if end >= 0:
        data = data[:end]  # strtod stops at the end of the C string
    exclusive = data[:1] == b"("
    if exclusive:
        data = data[1:]
    if not data:
        return 0.0, exclusive  # strtod converts nothing and stops at the terminator
    parsed = _strtod(data.lstrip(_C_SPACE))
    if parsed is None:
        raise ErrorReply(NOT_FLOAT_RANGE)
    return parsed[0], exclusive


class ScoreRange:
    """A parsed ``min max`` score range."""

    __slots__ = ("max", "maxex", "min", "minex")

    def __init__(self, low: bytes, high: bytes) -> None:
        self.min, self.minex = _bound(low)
        self.max, self.maxex = _bound(high)

    def ranks(self, zset: ZSet) -> tuple[int, int]:
        """The ranks [start, stop) of the members in range."""
        start = zset.count_below(self.min, self.minex)
        stop = zset.count_below(self.max, not self.maxex)
        return start, max(start, stop)


_MINSTRING = -1
_MAXSTRING = 1


class LexRange:
    """A parsed ``min max`` lex range (``-``, ``+``, ``(member``, ``[member``)."""

    __slots__ = ("max", "maxex", "min", "minex")

    def __init__(self, low: bytes, high: bytes) -> None:
        self.min, self.minex = self._item(low)
        self.max, self.maxex = self._item(high)

    @staticmethod
    def _item(data: bytes) -> tuple[bytes | int, bool]:
        first = data[:1]
        if first in (b"+", b"-"):
            # Redis tests the next C character, so "+\0x" is "+" too.
            if len(data) > 1 and data[1] != 0:
                raise ErrorReply(NOT_LEX_RANGE)
            return (_MAXSTRING if first == b"+" else _MINSTRING), True
        if first == b"(":
            return data[1:], True
        if first == b"[":
            return data[1:], False
        raise ErrorReply(NOT_LEX_RANGE)

    def gte_min(self, member: bytes) -> bool:
        """Whether ``member`` is above the lower end."""
        low = self.min
        if type(low) is int:
            return low == _MINSTRING
        return member > low if self.minex else member >= low  # type: ignore[operator]

    def lte_max(self, member: bytes) -> bool:
        """Whether ``member`` is below the upper end."""
        high = self.max
        if type(high) is int:
            return high == _MAXSTRING
        return member < high if self.maxex else member <= high  # type: ignore[operator]

    def _empty(self) -> bool:
        low, high = self.min, self.max
        if low is high or (type(low) is int and type(high) is int and low == high):
            cmp = 0
        elif low == _MINSTRING or high == _MAXSTRING:
            cmp = -1
        elif low == _MAXSTRING or high == _MINSTRING:
            cmp = 1
        else:
            cmp = (low > high) - (low < high)  # type: ignore[operator]
        return cmp > 0 or (cmp == 0 and (self.minex or self.maxex))

    def _end_rank(self, zset: ZSet, value: bytes | int, exclusive: bool, low: bool) -> int:
        if type(value) is int:
            return 0 if value == _MINSTRING else len(zset)
        # Members above a lower end: skip those <= it (exclusive) or < it (inclusive).
        # Members below an upper end: those < it (exclusive) or <= it (inclusive).
        return zset.count_below_member(value, exclusive if low else not exclusive)  # type: ignore[arg-type]

    def ranks(self, zset: ZSet, reverse: bool = False) -> tuple[int, int]:
        """The ranks [start, stop) of the members in range.

        Lex ranges assume equal scores; on a set of mixed scores Redis's answer is
        unspecified, and we answer as its listpack walk does: from the first member (the last
        when ``reverse``) at or past the near end, while members stay within the far end.
        """
        if self._empty() or not zset:
            return 0, 0
        if zset.same_scores():
            start = self._end_rank(zset, self.min, self.minex, True)
            stop = self._end_rank(zset, self.max, self.maxex, False)
            return start, max(start, stop)
        first, last = zset.first(), zset.last()
        assert first is not None
        assert last is not None
        if not self.gte_min(last[1]) or not self.lte_max(first[1]):
            return 0, 0
        pairs = list(zset)
        if not reverse:
            start = next((i for i, (_, m) in enumerate(pairs) if self.gte_min(m)), len(pairs))
            stop = start
            while stop < len(pairs) and self.lte_max(pairs[stop][1]):
                stop += 1
            return start, stop
        stop = next(
            (i + 1 for i in range(len(pairs) - 1, -1, -1) if self.lte_max(pairs[i][1])),
            0,
        )
        start = stop
        while start > 0 and self.gte_min(pairs[start - 1][1]):
            start -= 1
        return start, stop


# ------------------------------------------------------------------------------- replies


def score_reply(score: float) -> Double:
    """A score as a reply: a RESP3 double, a bulk string in RESP2."""
    return Double(format_score(score))


def _pairs_reply(client: Client, pairs: Any, withscores: bool) -> list[Any]:
    """Members, or members and scores: flat in RESP2, [member, score] pairs in RESP3."""
    if not withscores:
        return [member for _, member in pairs]
    out: list[Any] = []
    if client.resp3:
        for score, member in pairs:
            out.append([member, Double(format_score(score))])
    else:
        for score, member in pairs:
            out.append(member)
            out.append(Double(format_score(score)))
    return out


def _read(client: Client, key: bytes) -> ZSet | None:
    return client.db.get_typed(skey(key), ZSet)  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------- ZADD


_ZADD_FLAGS = {b"nx", b"xx", b"ch", b"incr", b"gt", b"lt"}


def _zadd(client: Client, args: list[bytes], incr: bool) -> Any:
    flags: set[bytes] = {b"incr"} if incr else set()
    index = 2
    while index < len(args):
        option = args[index].lower()
        if option not in _ZADD_FLAGS:
            break
        flags.add(option)
        index += 1
    elements = len(args) - index
    if elements % 2 or not elements:
        raise ErrorReply(SYNTAX)
    nx, xx, gt, lt = b"nx" in flags, b"xx" in flags, b"gt" in flags, b"lt" in flags
    incr = b"incr" in flags
    if nx and xx:
        raise ErrorReply("ERR XX and NX options at the same time are not compatible")
    if (gt and nx) or (lt and nx) or (gt and lt):
        raise ErrorReply("ERR GT, LT, and/or NX options at the same time are not compatible")
    if incr and elements > 2:
        raise ErrorReply("ERR INCR option supports a single increment-element pair")
    scores = [parse_score(args[i]) for i in range(index, len(args), 2)]
    key = skey(args[1])
    db = client.db
    zset: ZSet | None = db.get_typed(key, ZSet)
    if zset is None:
        if xx:
            return None if incr else 0
        zset = ZSet()
        new = True
    else:
        new = False
    added = updated = processed = 0
    score = 0.0
    current = zset.scores
    failed = False
    for j, given in enumerate(scores):
        score = given
        member = args[index + 1 + 2 * j]
        old = current.get(member)
        if old is not None:
            if nx:
                continue
            if incr:
                score += old
                if isnan(score):
                    failed = True
                    break
            if (lt and score >= old) or (gt and score <= old):
                continue
            processed += 1
            if score != old:
                zset.add(member, score)
                updated += 1
        elif not xx:
            zset.add(member, score)
            added += 1
            processed += 1
    if added or updated:
        if new:
            db.set(key, zset)
        else:
            db.changed(key, zset)
    if failed:
        raise ErrorReply(NAN_SCORE)
    if incr:
        return score_reply(score) if processed else None
    return added + updated if b"ch" in flags else added


@command("zadd", arity=-4, flags="write denyoom fast", keys=(1, 1, 1), group="sorted-set", since="1.2.0")
def zadd(client: Client, args: list[bytes]) -> Any:
    """Add members to a sorted set, or update their scores."""
    return _zadd(client, args, False)


@command("zincrby", arity=4, flags="write denyoom fast", keys=(1, 1, 1), group="sorted-set", since="1.2.0")
def zincrby(client: Client, args: list[bytes]) -> Any:
    """Increment the score of a member of a sorted set."""
    return _zadd(client, args, True)


# ------------------------------------------------------------------------------- simple reads


@command("zrem", arity=-3, flags="write fast", keys=(1, 1, 1), group="sorted-set", since="1.2.0")
def zrem(client: Client, args: list[bytes]) -> Any:
    """Remove members from a sorted set."""
    key = skey(args[1])
    zset: ZSet | None = client.db.get_typed(key, ZSet)
    if zset is None:
        return 0
    removed = 0
    for member in args[2:]:
        removed += zset.remove(member)
    if removed:
        client.db.changed(key, zset)
    return removed


@command("zscore", arity=3, flags="readonly fast", keys=(1, 1, 1), group="sorted-set", since="1.2.0")
def zscore(client: Client, args: list[bytes]) -> Any:
    """The score of a member of a sorted set."""
    zset = _read(client, args[1])
    score = None if zset is None else zset.scores.get(args[2])
    return None if score is None else score_reply(score)


@command("zmscore", arity=-3, flags="readonly fast", keys=(1, 1, 1), group="sorted-set", since="6.2.0")
def zmscore(client: Client, args: list[bytes]) -> Any:
    """The scores of members of a sorted set."""
    zset = _read(client, args[1])
    if zset is None:
        return [None] * (len(args) - 2)
    get = zset.scores.get
    out: list[Any] = []
    for member in args[2:]:
        score = get(member)
        out.append(None if score is None else score_reply(score))
    return out


@command("zcard", arity=2, flags="readonly fast", keys=(1, 1, 1), group="sorted-set", since="1.2.0")
def zcard(client: Client, args: list[bytes]) -> Any:
    """The number of members of a sorted set."""
    zset = _read(client, args[1])
    return 0 if zset is None else len(zset)


@command("zcount", arity=4, flags="readonly fast", keys=(1, 1, 1), group="sorted-set", since="2.0.0")
def zcount(client: Client, args: list[bytes]) -> Any:
    """Count the members of a sorted set within a score range."""
    spec = ScoreRange(args[2], args[3])
    zset = _read(client, args[1])
    if zset is None:
        return 0
    start, stop = spec.ranks(zset)
    return stop - start


@command("zlexcount", arity=4, flags="readonly fast", keys=(1, 1, 1), group="sorted-set", since="2.8.9")
def zlexcount(client: Client, args: list[bytes]) -> Any:
    """Count the members of a sorted set within a lexicographical range."""
    spec = LexRange(args[2], args[3])
    zset = _read(client, args[1])
    if zset is None:
        return 0
    start, stop = spec.ranks(zset)
    return stop - start


def _zrank(client: Client, args: list[bytes], reverse: bool) -> Any:
    # WITHSCORE is Redis 7.2's (7.0 has arity 3); 7.2's checks, in its order.
    name = "zrevrank" if reverse else "zrank"
    if len(args) > 4:
        raise ErrorReply(f"ERR wrong number of arguments for '{name}' command")
    withscore = len(args) == 4
    if withscore and args[3].lower() != b"withscore":
        raise ErrorReply(SYNTAX)
    zset = _read(client, args[1])
    rank = None if zset is None else zset.rank(args[2])
    if rank is None:
        return NULL_ARRAY if withscore else None
    assert zset is not None
    if reverse:
        rank = len(zset) - 1 - rank
    if withscore:
        return [rank, score_reply(zset.scores[args[2]])]
    return rank


@command("zrank", arity=-3, flags="readonly fast", keys=(1, 1, 1), group="sorted-set", since="2.0.0")
def zrank(client: Client, args: list[bytes]) -> Any:
    """The rank of a member of a sorted set, lowest score first."""
    return _zrank(client, args, False)


@command("zrevrank", arity=-3, flags="readonly fast", keys=(1, 1, 1), group="sorted-set", since="2.0.0")
def zrevrank(client: Client, args: list[bytes]) -> Any:
    """The rank of a member of a sorted set, highest score first."""
    return _zrank(client, args, True)


# ------------------------------------------------------------------------------- ZRANGE family

_RANK, _SCORE, _LEX = 0, 1, 2


def _zrange(
    client: Client,
    args: list[bytes],
    first: int,
    *,
    store: bytes | None = None,
    kind: int | None = None,
    reverse: bool | None = None,
) -> Any:
    """Every ZRANGE-like command (``zrangeGenericCommand``): ``args[first]`` is the source key,
    then min and max; ``kind``/``reverse`` are fixed by the older commands, or None when
    the options choose them."""
    withscores = False
    offset, limit = 0, -1
    j = first + 3
    while j < len(args):
        option = args[j].lower()
        left = len(args) - j - 1
        if store is None and option == b"withscores":
            withscores = True
        elif option == b"limit" and left >= 2:
            offset = parse_long(args[j + 1])
            limit = parse_long(args[j + 2])
            j += 2
        elif reverse is None and option == b"rev":
            reverse = True
        elif kind is None and option == b"bylex":
            kind = _LEX
        elif kind is None and option == b"byscore":
            kind = _SCORE
        else:
            raise ErrorReply(SYNTAX)
        j += 1
    reverse = bool(reverse)
    if kind is None:
        kind = _RANK
    if limit != -1 and kind == _RANK:
        raise ErrorReply(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        )
    if withscores and kind == _LEX:
        raise ErrorReply("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    low, high = args[first + 1], args[first + 2]
    if reverse and kind != _RANK:
        low, high = high, low  # given as max, min
    spec: ScoreRange | LexRange | None = None
    if kind == _RANK:
        start_arg, end_arg = parse_long(low), parse_long(high)
    elif kind == _SCORE:
        spec = ScoreRange(low, high)
    else:
        spec = LexRange(low, high)
    zset = _read(client, args[first])
    pairs: list[tuple[float, bytes]]
    if zset is None:
        pairs = []
    elif spec is None:
        pairs = _by_rank(zset, start_arg, end_arg, reverse)
    else:
        if isinstance(spec, LexRange):
            start, stop = spec.ranks(zset, reverse)
        else:
            start, stop = spec.ranks(zset)
        pairs = _window(zset, start, stop, offset, limit, reverse=reverse)
    if store is not None:
        # Redis adds the members one by one, in reply order, to a new set that is a listpack
        # unless a rank range says it is too long: a set that turns skiplist on the way keeps
        # -0 for the members added after the conversion only.
        result = ZSet()
        result.listpack = not (kind == _RANK and len(pairs) > MAX_LISTPACK_ENTRIES)
        for score, member in pairs:
            result.add(member, score)
        if not result:
            client.db.delete(skey(store))
            return 0
        client.db.set(skey(store), result)
        return len(result)
    return _pairs_reply(client, pairs, withscores)


def _by_rank(zset: ZSet, start: int, end: int, reverse: bool) -> list[tuple[float, bytes]]:
    size = len(zset)
    if start < 0:
        start += size
    if end < 0:
        end += size
    start = max(start, 0)
    if start > end or start >= size:
        return []
    end = min(end, size - 1)
    if not reverse:
        return zset.slice(start, end + 1)
    pairs = zset.slice(size - 1 - end, size - start)
    pairs.reverse()
    return pairs


def _window(
    zset: ZSet, start: int, stop: int, offset: int, limit: int, *, reverse: bool
) -> list[tuple[float, bytes]]:
    """Ranks [start, stop), in order or reversed, after LIMIT offset count (a negative
    offset selects nothing and a negative count everything, as in Redis)."""
    if offset < 0 or (offset > 0 and offset >= len(zset)):
        return []
    if reverse:
        stop -= offset
        if limit >= 0:
            start = max(start, stop - limit)
        if start >= stop:
            return []
        pairs = zset.slice(start, stop)
        pairs.reverse()
        return pairs
    start += offset
    if limit >= 0:
        stop = min(stop, start + limit)
    return zset.slice(start, stop) if start < stop else []


def _store(client: Client, dst: bytes, scores: dict[bytes, float]) -> int:
    key = skey(dst)
    if not scores:
        client.db.delete(key)
        return 0
    client.db.set(key, ZSet.from_scores(scores))
    return len(scores)


@command("zrange", arity=-4, flags="readonly", keys=(1, 1, 1), group="sorted-set", since="1.2.0")
def zrange(client: Client, args: list[bytes]) -> Any:
    """Members of a sorted set in a range of ranks, scores or members."""
    return _zrange(client, args, 1)


@command("zrangestore", arity=-5, flags="write denyoom", keys=(1, 2, 1), group="sorted-set", since="6.2.0")
def zrangestore(client: Client, args: list[bytes]) -> Any:
    """Store a range of a sorted set in another key."""
    return _zrange(client, args, 2, store=args[1])


@command("zrevrange", arity=-4, flags="readonly", keys=(1, 1, 1), group="sorted-set", since="1.2.0")
def zrevrange(client: Client, args: list[bytes]) -> Any:
    """Members of a sorted set in a range of ranks, highest score first."""
    return _zrange(client, args, 1, kind=_RANK, reverse=True)


@command("zrangebyscore", arity=-4, flags="readonly", keys=(1, 1, 1), group="sorted-set", since="1.0.5")
def zrangebyscore(client: Client, args: list[bytes]) -> Any:
    """Members of a sorted set in a range of scores."""
    return _zrange(client, args, 1, kind=_SCORE, reverse=False)


@command("zrevrangebyscore", arity=-4, flags="readonly", keys=(1, 1, 1), group="sorted-set", since="2.2.0")
def zrevrangebyscore(client: Client, args: list[bytes]) -> Any:
    """Members of a sorted set in a range of scores, highest first."""
    return _zrange(client, args, 1, kind=_SCORE, reverse=True)


@command("zrangebylex", arity=-4, flags="readonly", keys=(1, 1, 1), group="sorted-set", since="2.8.9")
def zrangebylex(client: Client, args: list[bytes]) -> Any:
    """Members of a sorted set in a lexicographical range."""
    return _zrange(client, args, 1, kind=_LEX, reverse=False)


@command("zrevrangebylex", arity=-4, flags="readonly", keys=(1, 1, 1), group="sorted-set", since="2.8.9")
def zrevrangebylex(client: Client, args: list[bytes]) -> Any:
    """Members of a sorted set in a lexicographical range, in reverse."""
    return _zrange(client, args, 1, kind=_LEX, reverse=True)


# ------------------------------------------------------------------------------- removals


@command("zremrangebyrank", arity=4, flags="write", keys=(1, 1, 1), group="sorted-set", since="2.0.0")
def zremrangebyrank(client: Client, args: list[bytes]) -> Any:
    """Remove the members of a sorted set in a range of ranks."""
    start, end = parse_long(args[2]), parse_long(args[3])
    key = skey(args[1])
    zset: ZSet | None = client.db.get_typed(key, ZSet)
    if zset is None:
        return 0
    size = len(zset)
    if start < 0:
        start += size
    if end < 0:
        end += size
    start = max(start, 0)
    if start > end or start >= size:
        return 0
    return _remove(client, key, zset, start, min(end, size - 1) + 1)


@command("zremrangebyscore", arity=4, flags="write", keys=(1, 1, 1), group="sorted-set", since="1.2.0")
def zremrangebyscore(client: Client, args: list[bytes]) -> Any:
    """Remove the members of a sorted set in a range of scores."""
    spec = ScoreRange(args[2], args[3])
    key = skey(args[1])
    zset: ZSet | None = client.db.get_typed(key, ZSet)
    if zset is None:
        return 0
    return _remove(client, key, zset, *spec.ranks(zset))


@command("zremrangebylex", arity=4, flags="write", keys=(1, 1, 1), group="sorted-set", since="2.8.9")
def zremrangebylex(client: Client, args: list[bytes]) -> Any:
    """Remove the members of a sorted set in a lexicographical range."""
    spec = LexRange(args[2], args[3])
    key = skey(args[1])
    zset: ZSet | None = client.db.get_typed(key, ZSet)
    if zset is None:
        return 0
    return _remove(client, key, zset, *spec.ranks(zset))


def _remove(client: Client, key: str, zset: ZSet, start: int, stop: int) -> int:
    removed = zset.remove_range(start, stop)
    if removed:
        client.db.changed(key, zset)
    return removed


# ------------------------------------------------------------------------------- pops, random


def _zpop(client: Client, args: list[bytes], highest: bool) -> Any:
    if len(args) > 3:
        raise ErrorReply(SYNTAX)
    count = -1
    if len(args) == 3:
        count = parse_long(args[2], MUST_BE_POSITIVE)
        if count < 0:
            raise ErrorReply(MUST_BE_POSITIVE)
    key = skey(args[1])
    zset: ZSet | None = client.db.get_typed(key, ZSet)
    if zset is None or count == 0:
        return []
    nested = client.resp3 and count != -1
    size = len(zset)
    take = min(max(count, 1), size)
    if highest:
        pairs = zset.slice(size - take, size)
        pairs.reverse()
    else:
        pairs = zset.slice(0, take)
    if highest:
        zset.remove_range(size - take, size)
    else:
        zset.remove_range(0, take)
    client.db.changed(key, zset)
    out: list[Any] = []
    for score, member in pairs:
        if nested:
            out.append([member, score_reply(score)])
        else:
            out.append(member)
            out.append(score_reply(score))
    return out


@command("zpopmin", arity=-2, flags="write fast", keys=(1, 1, 1), group="sorted-set", since="5.0.0")
def zpopmin(client: Client, args: list[bytes]) -> Any:
    """Remove and return the members with the lowest scores."""
    return _zpop(client, args, False)


@command("zpopmax", arity=-2, flags="write fast", keys=(1, 1, 1), group="sorted-set", since="5.0.0")
def zpopmax(client: Client, args: list[bytes]) -> Any:
    """Remove and return the members with the highest scores."""
    return _zpop(client, args, True)


@command("zrandmember", arity=-2, flags="readonly", keys=(1, 1, 1), group="sorted-set", since="6.2.0")
def zrandmember(client: Client, args: list[bytes]) -> Any:
    """Random members of a sorted set."""
    if len(args) == 2:
        zset = _read(client, args[1])
        if zset is None:
            return None
        rank = random.randrange(len(zset))
        return zset.slice(rank, rank + 1)[0][1]
    count = parse_long(args[2])
    if count < -_LONG_MAX:
        raise ErrorReply(f"ERR value is out of range, value must between {-_LONG_MAX} and {_LONG_MAX}")
    withscores = False
    if len(args) > 4 or (len(args) == 4 and args[3].lower() != b"withscores"):
        raise ErrorReply(SYNTAX)
    if len(args) == 4:
        withscores = True
        if count < -(_LONG_MAX // 2) or count > _LONG_MAX // 2:
            raise ErrorReply("ERR value is out of range")
    zset = _read(client, args[1])
    if zset is None or count == 0:
        return []
    size = len(zset)
    pairs: list[tuple[float, bytes]]
    if count < 0 or count == 1:
        # With repetitions, in random order.
        picks = [random.randrange(size) for _ in range(abs(count))]
        pairs = [zset.slice(i, i + 1)[0] for i in picks] if size > 64 else _pick(zset, picks)
    elif count >= size:
        pairs = list(zset)
    else:
        ranks = sorted(random.sample(range(size), count))
        pairs = _pick(zset, ranks) if count * 4 > size else [zset.slice(i, i + 1)[0] for i in ranks]
        random.shuffle(pairs)
    return _pairs_reply(client, pairs, withscores)


def _pick(zset: ZSet, ranks: list[int]) -> list[tuple[float, bytes]]:
    every = list(zset)
    return [every[i] for i in ranks]


# ------------------------------------------------------------------------------- set algebra

_UNION, _INTER, _DIFF = 0, 1, 2
_SUM, _MIN, _MAX = 0, 1, 2


def _source(value: Any) -> dict[bytes, float]:
    """Member -> score of an input of ZUNION and friends: a sorted set, or a set (score 1)."""
    if type(value) is ZSet:
        return value.scores
    return dict.fromkeys(_set_members(value), 1.0)


def _set_members(value: Any) -> Iterator[bytes]:
    # A set value (lists, sets and hashes belong to another command module) iterates over
    # its members, as Python's set does.
    members = getattr(value, "members", None)
    yield from (members() if callable(members) else members) if members is not None else value


def _aggregate(current: float, value: float, how: int) -> float:
    if how == _SUM:
        total = current + value
        return 0.0 if isnan(total) else total  # inf + -inf is 0 in Redis
    if how == _MIN:
        return value if value < current else current
    return value if value > current else current


def _setop(
    client: Client, args: list[bytes], numkeys_index: int, op: int, *, store: bytes | None, card: bool
) -> Any:
    """``zunionInterDiffGenericCommand``: its checks in its order, its arithmetic."""
    numkeys = parse_long(args[numkeys_index])
    name = args[0].decode("latin-1").lower()
    if numkeys < 1:
        raise ErrorReply(f"ERR at least 1 input key is needed for '{name}' command")
    if numkeys > len(args) - numkeys_index - 1:
        raise ErrorReply(SYNTAX)
    db = client.db
    sources: list[dict[bytes, float]] = []
    for j in range(numkeys_index + 1, numkeys_index + 1 + numkeys):
        value = db.get(skey(args[j]))
        if value is None:
            sources.append({})
        elif type(value) is ZSet or getattr(value, "type_name", None) == "set":
            sources.append(_source(value))
        else:
            raise ErrorReply(WRONGTYPE)
    weights = [1.0] * numkeys
    how = _SUM
    withscores = False
    limit = 0
    j = numkeys_index + 1 + numkeys
    while j < len(args):
        option = args[j].lower()
        left = len(args) - j
        if op != _DIFF and not card and left >= numkeys + 1 and option == b"weights":
            weights = [
                parse_score(args[j + 1 + i], "ERR weight value is not a float") for i in range(numkeys)
            ]
            j += numkeys + 1
        elif op != _DIFF and not card and left >= 2 and option == b"aggregate":
            word = args[j + 1].lower()
            if word == b"sum":
                how = _SUM
            elif word == b"min":
                how = _MIN
            elif word == b"max":
                how = _MAX
            else:
                raise ErrorReply(SYNTAX)
            j += 2
        elif store is None and not card and option == b"withscores":
            withscores = True
            j += 1
        elif card and left >= 2 and option == b"limit":
            limit = parse_long(args[j + 1], "ERR LIMIT can't be negative")
            if limit < 0:
                raise ErrorReply("ERR LIMIT can't be negative")
            j += 2
        else:
            raise ErrorReply(SYNTAX)
    inputs = list(zip(sources, weights, strict=True))
    if op != _DIFF:
        # Smallest first, as Redis sorts them (the order of a float sum follows it).
        inputs.sort(key=lambda item: len(item[0]))
    result: dict[bytes, float] = {}
    if op == _INTER:
        first, weight = inputs[0]
        count = 0
        for member, score in first.items():
            total = weight * score
            if isnan(total):
                total = 0.0
            for other, other_weight in inputs[1:]:
                if other is first:
                    total = _aggregate(total, score * other_weight, how)
                    continue
                found = other.get(member)
                if found is None:
                    break
                total = _aggregate(total, found * other_weight, how)
            else:
                if card:
                    count += 1
                    if limit and count >= limit:
                        break
                else:
                    result[member] = total
        if card:
            return count
    elif op == _UNION:
        for source, weight in inputs:
            for member, score in source.items():
                value = weight * score
                if isnan(value):
                    value = 0.0
                current = result.get(member)
                result[member] = value if current is None else _aggregate(current, value, how)
    else:
        first = inputs[0][0]
        others = [source for source, _ in inputs[1:]]
        for member, score in first.items():
            if not any(member in other for other in others):
                result[member] = score
    if store is not None:
        return _store(client, store, result)
    pairs = sorted(zip(result.values(), result.keys(), strict=True))
    return _pairs_reply(client, pairs, withscores)


@command("zunion", arity=-3, flags="readonly movablekeys", group="sorted-set", since="6.2.0")
def zunion(client: Client, args: list[bytes]) -> Any:
    """The union of sorted sets."""
    return _setop(client, args, 1, _UNION, store=None, card=False)


@command("zinter", arity=-3, flags="readonly movablekeys", group="sorted-set", since="6.2.0")
def zinter(client: Client, args: list[bytes]) -> Any:
    """The intersection of sorted sets."""
    return _setop(client, args, 1, _INTER, store=None, card=False)


@command("zdiff", arity=-3, flags="readonly movablekeys", group="sorted-set", since="6.2.0")
def zdiff(client: Client, args: list[bytes]) -> Any:
    """The members of the first sorted set that are in none of the others."""
    return _setop(client, args, 1, _DIFF, store=None, card=False)


@command(
    "zunionstore",
    arity=-4,
    flags="write denyoom movablekeys",
    keys=(1, 1, 1),
    group="sorted-set",
    since="2.0.0",
)
def zunionstore(client: Client, args: list[bytes]) -> Any:
    """Store the union of sorted sets."""
    return _setop(client, args, 2, _UNION, store=args[1], card=False)


@command(
    "zinterstore",
    arity=-4,
    flags="write denyoom movablekeys",
    keys=(1, 1, 1),
    group="sorted-set",
    since="2.0.0",
)
def zinterstore(client: Client, args: list[bytes]) -> Any:
    """Store the intersection of sorted sets."""
    return _setop(client, args, 2, _INTER, store=args[1], card=False)


@command(
    "zdiffstore",
    arity=-4,
    flags="write denyoom movablekeys",
    keys=(1, 1, 1),
    group="sorted-set",
    since="6.2.0",
)
def zdiffstore(client: Client, args: list[bytes]) -> Any:
    """Store the difference of sorted sets."""
    return _setop(client, args, 2, _DIFF, store=args[1], card=False)


@command("zintercard", arity=-3, flags="readonly movablekeys", group="sorted-set", since="7.0.0")
def zintercard(client: Client, args: list[bytes]) -> Any:
    """The number of members in the intersection of sorted sets."""
    return _setop(client, args, 1, _INTER, store=None, card=True)


# ------------------------------------------------------------------------------- ZSCAN


@command("zscan", arity=-3, flags="readonly", keys=(1, 1, 1), group="sorted-set", since="2.8.0")
def zscan(client: Client, args: list[bytes]) -> Any:
    """Iterate the members and scores of a sorted set."""
    cursor = parse_cursor(args[2])
    key = skey(args[1])
    db = client.db
    zset: ZSet | None = db.get_typed(key, ZSet)
    if zset is None:
        return empty_scan()
    options = parse_scan_options(args, 3)

    def emit(batch: Any) -> list[Any]:
        # The key may have been rewritten since the snapshot: look members up now. Scores
        # are strings here (Redis writes them with d2string, %.17g for non-integers).
        current = db.get(key)
        scores = current.scores if type(current) is ZSet else {}
        out: list[Any] = []
        for member in batch:
            score = scores.get(member)
            if score is not None:
                out.append(member)
                out.append(format_score(score))
        return out

    if zset.listpack:
        # A listpack is answered whole, in its (score) order, as Redis does.
        return scan_reply(
            client.server,
            ("zset", db.index, key),
            cursor,
            options,
            snapshot=lambda: [member for _, member in zset],
            emit=emit,
            whole=True,
        )
    return scan_reply(
        client.server,
        ("zset", db.index, key),
        cursor,
        options,
        snapshot=lambda: list(zset.scores),
        emit=emit,
    )
