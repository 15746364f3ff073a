"""``lru``: evict the least recently used key.

The order lives in one ``OrderedDict`` (key -> weight), least recently used first. A hit is
``OrderedDict.move_to_end``, bound once in ``__init__`` and installed as ``on_access``, so a
cache hit costs one C call and no Python frame.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import ClassVar

from .base import Policy, check_capacity, check_weight

__all__ = ["LRUPolicy"]


class LRUPolicy(Policy):
    """Least recently used: a hit or an overwrite makes a key the last to go."""

    name: ClassVar[str] = "lru"
    tracks_access: ClassVar[bool] = True

    def __init__(self, capacity: int) -> None:
        """Create an empty LRU order for at most ``capacity`` total weight."""
        self.capacity = check_capacity(capacity)
        self.weight = 0
        self._order: OrderedDict[Hashable, int] = OrderedDict()
        # Shadow the on_access method with the bound C method move_to_end of the order: a hit
        # then costs one C call and no Python frame, as cheap as CPython allows.
        self.on_access = self._order.move_to_end  # type: ignore[method-assign]

    def on_insert(self, key: Hashable, weight: int = 1) -> None:
        """Track ``key`` as the most recently used."""
        # Most callers pass the default: a cheap test skips the full check (True == 1, so it
        # is singled out).
        if weight != 1 or weight is True:
            check_weight(weight)
        self._order[key] = weight
        self.weight += weight

    def on_access(self, key: Hashable) -> None:
        """Make ``key`` the most recently used (replaced per instance by ``move_to_end``)."""
        self._order.move_to_end(key)

    def on_update(self, key: Hashable, weight: int) -> None:
        """Record the new weight and make ``key`` the most recently used."""
        if weight != 1 or weight is True:  # the common case skips the full check
            check_weight(weight)
        order = self._order
        self.weight += weight - order[key]
        order[key] = weight
        order.move_to_end(key)

    def on_remove(self, key: Hashable) -> None:
        """Forget ``key``; unknown keys are ignored."""
        weight = self._order.pop(key, None)
        if weight is not None:
            self.weight -= weight

    def evict(self) -> Hashable:
        """Remove and return the least recently used key."""
        try:
            key, weight = self._order.popitem(last=False)
        except KeyError:
            raise KeyError(f"evict() from an empty {self.name} policy") from None
        self.weight -= weight
        return key

    def clear(self) -> None:
        """Forget every key."""
        self._order.clear()
        self.weight = 0

    def __len__(self) -> int:
        """The number of tracked keys."""
        return len(self._order)

    def resize(self, capacity: int) -> None:
        """Set a new capacity; eviction order is unchanged."""
        self.capacity = check_capacity(capacity)
