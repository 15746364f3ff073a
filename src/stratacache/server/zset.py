"""The sorted-set value of the server (Redis's ``zset``): members with double scores, in order.

A :class:`ZSet` keeps two views of the same members, as Redis does:

* ``scores``, a dict member -> score, for O(1) ZSCORE and membership;
* an order of ``(score, member)`` pairs, sorted by score and then by member bytes (Redis's
  tie order, ``memcmp`` then length, is exactly how Python compares ``bytes``), giving
  O(log n) rank, range and bisect by score or member.

The order is a two-level sorted list (the design of ``sortedcontainers``): sublists of at
most ``2 * _LOAD`` pairs with a list of their last pairs to bisect on, and prefix sums of
their lengths (rebuilt lazily after a change) to turn a sublist position into a rank.
Inserting moves at most ``2 * _LOAD`` pointers, where one flat sorted list moves half the
set; docs/server.md has the measurements that chose it.

The encoding OBJECT ENCODING reports follows Redis's thresholds (``zset-max-listpack-entries``
128, ``zset-max-listpack-value`` 64): a set starts as ``listpack`` and turns ``skiplist``
for good once it holds more members or a longer member. One visible difference follows the
encoding, as in Redis 7.0: a listpack stores ``-0`` as ``0``, a skiplist keeps the sign.

NaN is never stored (the commands refuse it before it gets here).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator
from itertools import accumulate, islice
from math import isinf
from operator import itemgetter
from typing import ClassVar

from .keyspace import RedisValue

__all__ = [
    "MAX_LISTPACK_ENTRIES",
    "MAX_LISTPACK_VALUE",
    "MEMBER_OVERHEAD",
    "ZSet",
    "format_score",
]

MAX_LISTPACK_ENTRIES = 128
"""Redis's default ``zset-max-listpack-entries``: more members make a skiplist."""
MAX_LISTPACK_VALUE = 64
"""Redis's default ``zset-max-listpack-value``: a longer member makes a skiplist."""
MEMBER_OVERHEAD = 160
"""Bytes a member costs beyond its own length (bytes header, pair tuple, float, dict slot,
list slot), measured with tracemalloc on 100k members (see docs/server.md)."""

_LOAD = 512
Pair = tuple[float, bytes]
_score = itemgetter(0)
_member = itemgetter(1)


def format_score(score: float) -> bytes:
    """A score as Redis 7.0 writes it in a reply: ``%.17g``, ``inf``/``-inf`` spelled out.

    (Redis 7.2 switched to the shortest round-tripping form; 7.0 is the server the test
    suite compares with, see docs/server.md.)
    """
    if isinf(score):
        return b"inf" if score > 0 else b"-inf"
    return b"%.17g" % score


class ZSet(RedisValue):
    """A sorted set (see the module docstring). Mutate only through :meth:`add`,
    :meth:`remove` and the ``remove_*`` methods, which keep ``nbytes`` and the encoding."""

    __slots__ = ("_lists", "_maxes", "_offsets", "listpack", "scores")
    type_name: ClassVar[str] = "zset"

    def __init__(self) -> None:
        super().__init__()
        self.scores: dict[bytes, float] = {}
        self._lists: list[list[Pair]] = []
        self._maxes: list[Pair] = []
        self._offsets: list[int] | None = None
        self.listpack = True

    @classmethod
    def from_scores(cls, scores: dict[bytes, float]) -> ZSet:
        """A new set holding ``scores`` (member -> score), encoded as Redis encodes a set it
        builds whole (ZUNIONSTORE, ZRANGESTORE): listpack when small enough."""
        zset = cls()
        zset.listpack = len(scores) <= MAX_LISTPACK_ENTRIES and all(
            len(member) <= MAX_LISTPACK_VALUE for member in scores
        )
        if zset.listpack:
            # x + 0.0 turns -0.0 into 0.0, as a listpack does.
            scores = {member: score + 0.0 for member, score in scores.items()}
        zset.scores = scores
        pairs = sorted(zip(scores.values(), scores.keys(), strict=True))
        zset._lists = [pairs[i : i + _LOAD] for i in range(0, len(pairs), _LOAD)]
        zset._maxes = [sub[-1] for sub in zset._lists]
        zset.nbytes = sum(len(member) for member in scores) + MEMBER_OVERHEAD * len(scores)
        return zset

    def copy(self) -> ZSet:
        """An independent copy (COPY): the pairs are immutable, so the containers are copied."""
        other = ZSet()
        other.scores = dict(self.scores)
        other._lists = [sub[:] for sub in self._lists]
        other._maxes = self._maxes[:]
        other.listpack = self.listpack
        other.nbytes = self.nbytes
        return other

    # ------------------------------------------------------------------ basics

    def __len__(self) -> int:
        return len(self.scores)

    def encoding(self) -> str:
        """``listpack`` while small, else ``skiplist`` (Redis's thresholds)."""
        return "listpack" if self.listpack else "skiplist"

    def get(self, member: bytes) -> float | None:
        """The score of ``member``, None when absent."""
        return self.scores.get(member)

    def __iter__(self) -> Iterator[Pair]:
        """(score, member) pairs in order."""
        for sub in self._lists:
            yield from sub

    # ------------------------------------------------------------------ writes

    def add(self, member: bytes, score: float) -> None:
        """Insert ``member`` (absent) or move it to ``score`` (present)."""
        old = self.scores.get(member)
        if old is not None:
            self._remove_pair((old, member))
        else:
            self.nbytes += len(member) + MEMBER_OVERHEAD
            if self.listpack and (
                len(self.scores) >= MAX_LISTPACK_ENTRIES or len(member) > MAX_LISTPACK_VALUE
            ):
                self.listpack = False
        if self.listpack:
            score += 0.0  # a listpack writes -0 as 0
        self.scores[member] = score
        self._insert_pair((score, member))

    def remove(self, member: bytes) -> bool:
        """Remove ``member``; True when it was there."""
        score = self.scores.pop(member, None)
        if score is None:
            return False
        self.nbytes -= len(member) + MEMBER_OVERHEAD
        self._remove_pair((score, member))
        return True

    def remove_range(self, start: int, stop: int) -> int:
        """Remove the members of ranks ``start`` to ``stop - 1``; how many were removed."""
        if start >= stop:
            return 0
        pairs = self.slice(start, stop)
        for _, member in pairs:
            self.remove(member)
        return len(pairs)

    def _insert_pair(self, pair: Pair) -> None:
        self._offsets = None
        maxes = self._maxes
        if not maxes:
            self._lists.append([pair])
            maxes.append(pair)
            return
        pos = bisect_left(maxes, pair)
        if pos == len(maxes):
            pos -= 1
            sub = self._lists[pos]
            sub.append(pair)
            maxes[pos] = pair
        else:
            sub = self._lists[pos]
            insort(sub, pair)
        if len(sub) > 2 * _LOAD:
            # Split in halves so both stay between _LOAD/2 and 2*_LOAD.
            half = sub[_LOAD:]
            del sub[_LOAD:]
            self._lists.insert(pos + 1, half)
            maxes[pos] = sub[-1]
            maxes.insert(pos + 1, half[-1])

    def _remove_pair(self, pair: Pair) -> None:
        self._offsets = None
        maxes = self._maxes
        pos = bisect_left(maxes, pair)
        sub = self._lists[pos]
        del sub[bisect_left(sub, pair)]
        if not sub:
            del self._lists[pos]
            del maxes[pos]
            return
        maxes[pos] = sub[-1]
        if len(sub) < _LOAD // 2 and len(self._lists) > 1:
            # Merge a small sublist into a neighbour, so that the number of sublists stays
            # proportional to the size (bisecting the maxes stays cheap).
            if pos == 0:
                pos = 1
            prev = self._lists[pos - 1]
            prev.extend(self._lists[pos])
            del self._lists[pos]
            del maxes[pos - 1]
            if len(prev) > 2 * _LOAD:
                half = prev[len(prev) // 2 :]
                del prev[len(prev) // 2 :]
                self._lists.insert(pos, half)
                maxes.insert(pos - 1, prev[-1])
            else:
                maxes[pos - 1] = prev[-1]

    # ------------------------------------------------------------------ reads by rank

    def _prefix(self) -> list[int]:
        offsets = self._offsets
        if offsets is None:
            offsets = self._offsets = list(accumulate(map(len, self._lists), initial=0))
        return offsets

    def rank(self, member: bytes) -> int | None:
        """The 0-based rank of ``member`` in ascending order, None when absent."""
        score = self.scores.get(member)
        if score is None:
            return None
        pair = (score, member)
        pos = bisect_left(self._maxes, pair)
        return self._prefix()[pos] + bisect_left(self._lists[pos], pair)

    def slice(self, start: int, stop: int) -> list[Pair]:
        """The pairs of ranks ``start`` to ``stop - 1`` (``start >= 0``), ascending."""
        offsets = self._prefix()
        stop = min(stop, offsets[-1])
        if start >= stop:
            return []
        pos = bisect_right(offsets, start) - 1
        lists = self._lists
        out = lists[pos][start - offsets[pos] : stop - offsets[pos]]
        needed = stop - start - len(out)
        while needed > 0:
            pos += 1
            chunk = lists[pos][:needed]
            out.extend(chunk)
            needed -= len(chunk)
        return out

    def iter_from(self, rank: int) -> Iterator[Pair]:
        """The pairs from ``rank`` on, ascending (lazily: LIMIT stops early)."""
        offsets = self._prefix()
        if rank >= offsets[-1]:
            return
        pos = bisect_right(offsets, rank) - 1
        lists = self._lists
        yield from islice(lists[pos], rank - offsets[pos], None)
        for sub in islice(lists, pos + 1, None):
            yield from sub

    def iter_back_from(self, rank: int) -> Iterator[Pair]:
        """The pairs from ``rank`` down to rank 0, descending."""
        if rank < 0 or not self._lists:
            return
        offsets = self._prefix()
        rank = min(rank, offsets[-1] - 1)
        pos = bisect_right(offsets, rank) - 1
        lists = self._lists
        sub = lists[pos]
        for i in range(rank - offsets[pos], -1, -1):
            yield sub[i]
        for j in range(pos - 1, -1, -1):
            yield from reversed(lists[j])

    # ------------------------------------------------------------------ bisect by value

    def count_below(self, score: float, inclusive: bool) -> int:
        """How many members score below ``score`` (``<=`` when ``inclusive``): a rank."""
        return self._bisect(score, _score, inclusive)

    def count_below_member(self, member: bytes, inclusive: bool) -> int:
        """As :meth:`count_below` by member, for a set whose scores are all equal (lex ranges)."""
        return self._bisect(member, _member, inclusive)

    def _bisect(self, value: float | bytes, key: itemgetter[object], right: bool) -> int:
        maxes = self._maxes
        find = bisect_right if right else bisect_left
        pos = find(maxes, value, key=key)
        if pos == len(maxes):
            return len(self.scores)
        return self._prefix()[pos] + find(self._lists[pos], value, key=key)

    def same_scores(self) -> bool:
        """Whether every member has the same score (lex ranges are only ordered then)."""
        lists = self._lists
        return not lists or lists[0][0][0] == lists[-1][-1][0]

    def first(self) -> Pair | None:
        """The lowest pair, None when empty."""
        return self._lists[0][0] if self._lists else None

    def last(self) -> Pair | None:
        """The highest pair, None when empty."""
        return self._lists[-1][-1] if self._lists else None

    def members(self) -> Iterable[bytes]:
        """Every member, in no particular order."""
        return self.scores.keys()
