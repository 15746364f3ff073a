"""``fifo``: evict the key that was stored first, whatever happened to it since.

Hits do not move keys, so ``tracks_access`` is ``False`` and a store can skip ``on_access``.
An overwrite stores a new value, which restarts the key's age: it goes to the back of the queue,
as in ``cachetools.FIFOCache``. The queue is an ``OrderedDict``: a plain ``dict`` keeps
insertion order too, but removing from its front repeatedly leaves a growing run of dead slots
that ``next(iter(d))`` must skip, which is not O(1).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import ClassVar

from .base import Policy, check_capacity, check_weight

__all__ = ["FIFOPolicy"]


class FIFOPolicy(Policy):
    """First in, first out: keys leave in the order they were stored (or last overwritten)."""

    name: ClassVar[str] = "fifo"
    tracks_access: ClassVar[bool] = False

    def __init__(self, capacity: int) -> None:
        """Create an empty queue for at most ``capacity`` total weight."""
        self.capacity = check_capacity(capacity)
        self.weight = 0
        self._queue: OrderedDict[Hashable, int] = OrderedDict()

    def on_insert(self, key: Hashable, weight: int = 1) -> None:
        """Put ``key`` at the back of the queue."""
        # Most callers pass the default: a cheap test skips the full check (True == 1, so it
        # is singled out).
        if weight != 1 or weight is True:
            check_weight(weight)
        self._queue[key] = weight
        self.weight += weight

    def on_access(self, key: Hashable) -> None:
        """Nothing: a hit does not change the order (``tracks_access`` is ``False``)."""

    def on_update(self, key: Hashable, weight: int) -> None:
        """Record the new weight and move ``key`` to the back: a new value is a new arrival."""
        check_weight(weight)
        queue = self._queue
        self.weight += weight - queue[key]
        queue[key] = weight
        queue.move_to_end(key)

    def on_remove(self, key: Hashable) -> None:
        """Forget ``key``; unknown keys are ignored."""
        weight = self._queue.pop(key, None)
        if weight is not None:
            self.weight -= weight

    def evict(self) -> Hashable:
        """Remove and return the key at the front of the queue."""
        try:
            key, weight = self._queue.popitem(last=False)
        except KeyError:
            raise KeyError("evict() from an empty fifo policy") from None
        self.weight -= weight
        return key

    def clear(self) -> None:
        """Forget every key."""
        self._queue.clear()
        self.weight = 0

    def __len__(self) -> int:
        """The number of tracked keys."""
        return len(self._queue)

    def resize(self, capacity: int) -> None:
        """Set a new capacity; the queue is unchanged."""
        self.capacity = check_capacity(capacity)
