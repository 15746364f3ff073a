"""``lfu``: evict the least frequently used key, with frequency aging.

Structure (the O(1) LFU of Shah, Mitra and Matani, 2010): a doubly linked list of
*frequency buckets* in increasing count order, each holding its keys as a circular doubly
linked list of nodes (least recently used first), and a dict from key to its node. A hit moves
the node from the bucket for count ``c`` to the end of the bucket for ``c + 1``, which is
either the next bucket or a new one linked right after; an emptied bucket is unlinked. The
victim is the least recently used key of the first bucket. Every operation is O(1). Ties
between keys with the same count are broken by recency (least recent goes first).

Why nodes and not an ``OrderedDict`` per bucket: a hit would then be a delete from one dict
and an insert into another, and CPython rebuilds an ``OrderedDict``'s node index whenever its
dict resizes, which keys moving between buckets make frequent. With a node per key, a hit is
one dict lookup and six pointer writes.

Aging. Pure LFU never forgets: a key that was hot yesterday keeps its count forever and a new
hot set can never displace it. So counts are halved periodically, as TinyLFU ages its sketch.
The period is an *epoch* of ``sample = 10 x capacity`` operations (inserts, hits and
overwrites). At the end of each epoch one pass walks the *buckets* (not the keys) and relabels
each count ``c`` to ``ceil(c / 2)``. Halving keeps the order of counts, so the list stays
sorted; only the two buckets ``2k - 1`` and ``2k``, which both become ``k``, are merged, by
splicing their lists and relabelling the nodes of the smaller one (the former ``2k - 1`` keys stay in front:
within a merged bucket ties are broken by the old count, then by recency). The pass costs
O(buckets + keys moved) <= O(entries), and it runs once per ``10 x capacity`` operations, so
aging adds at most a tenth of a key move per operation: O(1) amortized. Counts round up so
they never reach 0: a new key (count 1) ties with a faded one and the faded one, being less
recent, goes first.

With weighted entries ``capacity`` counts weight (bytes, say), not entries, and ``10 x capacity``
operations could mean aging never happens. Once a weight other than 1 is seen, the epoch
becomes ``10 x`` the number of tracked entries (at least 16), re-measured at every epoch,
which is Caffeine's rule for weighted caches. ``sample_size=`` fixes the epoch length instead.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar

from ..._exceptions import ConfigurationError
from .base import Policy, check_capacity, check_weight

__all__ = ["LFUPolicy"]

# Operations per aging epoch, per expected entry (TinyLFU's W/C ratio).
_SAMPLE_FACTOR = 10
# The smallest number of entries a weighted epoch is measured for, so a nearly empty weighted
# cache does not halve its counts every few operations.
_MIN_WEIGHTED_ENTRIES = 16


class _Node:
    """One tracked key: a node of its bucket's circular list, least recently used first.

    A bucket's list has a sentinel node (``key`` is ``None`` and never read; ``bucket`` is the
    bucket), so linking and unlinking a node needs no end-of-list tests.
    """

    __slots__ = ("bucket", "key", "next", "prev", "weight")

    def __init__(self, key: Hashable, weight: int, bucket: _Bucket) -> None:
        self.key = key
        self.weight = weight
        self.bucket = bucket
        self.prev: _Node = self
        self.next: _Node = self


class _Bucket:
    """All tracked keys with one count (a circular list behind ``ring``, its sentinel); a node
    of the circular list of buckets."""

    __slots__ = ("count", "next", "prev", "ring")

    def __init__(self, count: int) -> None:
        self.count = count
        self.ring = _Node(None, 0, self)
        self.prev: _Bucket = self
        self.next: _Bucket = self


class LFUPolicy(Policy):
    """Least frequently used with periodic halving of counts; ties go to the least recent."""

    name: ClassVar[str] = "lfu"
    tracks_access: ClassVar[bool] = True

    def __init__(self, capacity: int, *, sample_size: int | None = None) -> None:
        """Create an empty policy; ``sample_size`` overrides the aging epoch (in operations)."""
        self.capacity = check_capacity(capacity)
        if sample_size is not None and (
            isinstance(sample_size, bool) or not isinstance(sample_size, int) or sample_size <= 0
        ):
            raise ConfigurationError(f"lfu sample_size must be a positive int, got {sample_size!r}")
        self.weight = 0
        self._fixed_sample = sample_size
        self._weighted = False
        # The sentinel of the circular bucket list. Its count 0 never equals a real count
        # (those are >= 1), so "is the next bucket count c + 1?" needs no end-of-list test.
        self._head = _Bucket(0)
        self._where: dict[Hashable, _Node] = {}
        self._ops = 0
        self._sample = self._epoch_length()

    # -- the lists ------------------------------------------------------------------------

    @staticmethod
    def _link_after(bucket: _Bucket, count: int) -> _Bucket:
        new = _Bucket(count)
        nxt = bucket.next
        new.prev = bucket
        new.next = nxt
        bucket.next = new
        nxt.prev = new
        return new

    @staticmethod
    def _unlink(bucket: _Bucket) -> None:
        prev, nxt = bucket.prev, bucket.next
        prev.next = nxt
        nxt.prev = prev

    @staticmethod
    def _append(bucket: _Bucket, node: _Node) -> None:
        """Make ``node`` the most recent key of ``bucket``."""
        ring = bucket.ring
        last = ring.prev
        node.prev = last
        node.next = ring
        last.next = node
        ring.prev = node
        node.bucket = bucket

    def _detach(self, node: _Node) -> None:
        """Take ``node`` out of its bucket, unlinking the bucket if that emptied it."""
        prev, nxt = node.prev, node.next
        prev.next = nxt
        nxt.prev = prev
        if prev is nxt:  # only the sentinel is left
            self._unlink(node.bucket)

    # -- the policy -----------------------------------------------------------------------

    def on_insert(self, key: Hashable, weight: int = 1) -> None:
        """Track ``key`` with a count of 1, as the most recent of the count-1 keys."""
        if weight != 1 or weight is True:
            check_weight(weight)
            if not self._weighted:
                # From now on capacity is not a number of entries: re-derive the epoch.
                self._weighted = True
                self._sample = self._epoch_length()
        head = self._head
        first = head.next
        if first.count != 1:
            first = self._link_after(head, 1)
        node = _Node(key, weight, first)
        self._append(first, node)
        self._where[key] = node
        self.weight += weight
        self._ops += 1
        if self._ops >= self._sample:
            self._age()

    def on_access(self, key: Hashable) -> None:
        """Add 1 to the count of ``key`` and make it the most recent key of its new count."""
        node = self._where[key]
        bucket = node.bucket
        count = bucket.count + 1
        target = bucket.next
        if target.count != count:
            target = self._link_after(bucket, count)
        self._detach(node)
        self._append(target, node)
        self._ops += 1
        if self._ops >= self._sample:
            self._age()

    def on_update(self, key: Hashable, weight: int) -> None:
        """Record the new weight; an overwrite counts as an access."""
        check_weight(weight)
        if weight != 1 and not self._weighted:
            self._weighted = True
            self._sample = self._epoch_length()
        node = self._where[key]
        self.weight += weight - node.weight
        node.weight = weight
        self.on_access(key)

    def on_remove(self, key: Hashable) -> None:
        """Forget ``key``; unknown keys are ignored."""
        node = self._where.pop(key, None)
        if node is None:
            return
        self.weight -= node.weight
        self._detach(node)

    def evict(self) -> Hashable:
        """Remove and return the least recent of the keys with the lowest count."""
        bucket = self._head.next
        if bucket is self._head:
            raise KeyError("evict() from an empty lfu policy")
        node = bucket.ring.next
        self._detach(node)
        key = node.key
        del self._where[key]
        self.weight -= node.weight
        return key

    def clear(self) -> None:
        """Forget every key and every count."""
        self._head = _Bucket(0)
        self._where.clear()
        self.weight = 0
        self._ops = 0

    def __len__(self) -> int:
        """The number of tracked keys."""
        return len(self._where)

    def resize(self, capacity: int) -> None:
        """Set a new capacity; counts are kept, the epoch follows the new capacity."""
        self.capacity = check_capacity(capacity)
        self._sample = self._epoch_length()

    def frequency(self, key: Hashable) -> int:
        """The current (aged) count of a tracked ``key``; 0 when it is not tracked."""
        node = self._where.get(key)
        return 0 if node is None else node.bucket.count

    # -- aging ----------------------------------------------------------------------------

    def _epoch_length(self) -> int:
        if self._fixed_sample is not None:
            return self._fixed_sample
        if self._weighted:
            return _SAMPLE_FACTOR * max(len(self._where), _MIN_WEIGHTED_ENTRIES)
        return _SAMPLE_FACTOR * self.capacity

    def _age(self) -> None:
        """Halve every count (rounding up), merging the buckets that collide."""
        self._ops = 0
        head = self._head
        prev = head
        bucket = head.next
        while bucket is not head:
            nxt = bucket.next
            bucket.count = (bucket.count + 1) >> 1
            # Halving is monotonic, so only a bucket and its predecessor can collide.
            collides = prev is not head and prev.count == bucket.count
            prev = self._merge(prev, bucket) if collides else bucket
            bucket = nxt
        self._sample = self._epoch_length()

    @staticmethod
    def _merge(low: _Bucket, high: _Bucket) -> _Bucket:
        """Merge two adjacent buckets with equal counts; ``low``'s keys stay first.

        The lists are spliced in O(1); the nodes of the smaller side are relabelled, so a pass
        costs at most half the keys. Which side is smaller is found by walking both lists in
        step, which stops at the end of the shorter one.
        """
        low_ring, high_ring = low.ring, high.ring
        a, b = low_ring.next, high_ring.next
        while a is not low_ring and b is not high_ring:
            a, b = a.next, b.next
        # Both lists are non-empty (an emptied bucket is unlinked at once).
        if a is not low_ring:
            # high is the smaller: its nodes go after low's (between low's last and the sentinel).
            keep, gone = low, high
            first, last = high_ring.next, high_ring.prev
            before, after = low_ring.prev, low_ring
        else:
            # low is the smaller (or as large): its nodes go in front of high's.
            keep, gone = high, low
            first, last = low_ring.next, low_ring.prev
            before, after = high_ring, high_ring.next
        before.next = first
        first.prev = before
        last.next = after
        after.prev = last
        node = first
        while True:
            node.bucket = keep
            if node is last:
                break
            node = node.next
        ring = gone.ring
        ring.next = ring.prev = ring
        LFUPolicy._unlink(gone)
        return keep
