"""``random``: evict a key chosen uniformly at random.

Keys sit in a list, and a dict maps each key to its slot, so both picking a victim and
removing an arbitrary key are O(1): the last key is moved into the freed slot (swap-remove).
Hits change nothing (``tracks_access`` is ``False``). Pass ``seed=`` for a reproducible
sequence of victims, in tests for instance.
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from typing import ClassVar

from .base import Policy, check_capacity, check_weight

__all__ = ["RandomPolicy"]


class RandomPolicy(Policy):
    """Random replacement: every tracked key is equally likely to be the next victim."""

    name: ClassVar[str] = "random"
    tracks_access: ClassVar[bool] = False

    def __init__(self, capacity: int, *, seed: int | None = None) -> None:
        """Create an empty policy; ``seed`` makes the victims reproducible."""
        self.capacity = check_capacity(capacity)
        self.weight = 0
        self._keys: list[Hashable] = []
        # key -> [slot in _keys, weight]; one dict lookup finds both.
        self._slots: dict[Hashable, list[int]] = {}
        self._rng = random.Random(seed)
        # The key inserted last is never the victim (unless it is the only key): the write
        # that made room for it must be readable right after it returns.
        self._newest: Hashable | None = None

    def on_insert(self, key: Hashable, weight: int = 1) -> None:
        """Track ``key``."""
        # Most callers pass the default: a cheap test skips the full check (True == 1, so it
        # is singled out).
        if weight != 1 or weight is True:
            check_weight(weight)
        self._slots[key] = [len(self._keys), weight]
        self._keys.append(key)
        self.weight += weight
        self._newest = key

    def on_access(self, key: Hashable) -> None:
        """Nothing: a hit does not change the odds (``tracks_access`` is ``False``)."""

    def on_update(self, key: Hashable, weight: int) -> None:
        """Record the new weight."""
        check_weight(weight)
        slot = self._slots[key]
        self.weight += weight - slot[1]
        slot[1] = weight

    def on_remove(self, key: Hashable) -> None:
        """Forget ``key``; unknown keys are ignored."""
        slot = self._slots.pop(key, None)
        if slot is not None:
            self._drop(slot)

    def evict(self) -> Hashable:
        """Remove and return a tracked key chosen at random."""
        keys = self._keys
        if not keys:
            raise KeyError("evict() from an empty random policy")
        count = len(keys)
        index = self._rng.randrange(count)
        if count > 1 and keys[index] == self._newest:
            # Uniform among the other keys: skip the newest one's slot.
            index = (index + 1 + self._rng.randrange(count - 1)) % count
        key = keys[index]
        self._drop(self._slots.pop(key))
        return key

    def _drop(self, slot: list[int]) -> None:
        # Swap-remove: the last key takes the freed slot, so nothing else has to shift.
        index, weight = slot
        keys = self._keys
        last = keys.pop()
        if index < len(keys):
            keys[index] = last
            self._slots[last][0] = index
        self.weight -= weight

    def clear(self) -> None:
        """Forget every key."""
        self._keys.clear()
        self._slots.clear()
        self.weight = 0

    def __len__(self) -> int:
        """The number of tracked keys."""
        return len(self._keys)

    def resize(self, capacity: int) -> None:
        """Set a new capacity."""
        self.capacity = check_capacity(capacity)
