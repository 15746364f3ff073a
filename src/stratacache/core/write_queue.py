"""The write-behind queue as pure logic: per-key coalescing, bounded, oldest first.

No I/O and no locking: ``AsyncWriteBehind`` / ``WriteBehind`` hold their own lock around
every call and decide when to wait. One entry per key: a second write to a key still
waiting replaces the first (only the latest value reaches the source), keeps the key's
place in line (so a hot key is not starved by later keys) and takes no extra room.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["DeadLetter", "PendingWrite", "WriteQueue"]

Operation = Literal["store", "delete"]


@dataclass(slots=True)
class PendingWrite:
    """One write waiting for the source: ``store`` (with ``value``) or ``delete``."""

    key: str
    operation: Operation
    value: Any
    enqueued_at: float


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A write the source never accepted, handed to the ``dead_letter`` callback.

    ``operation`` is ``"store"`` or ``"delete"``; ``value`` is the value a store would
    have written (None for a delete); ``attempts`` how often the source was tried (0 when
    the write was abandoned at close without being tried); ``error`` the last failure.
    """

    key: str
    operation: str
    value: Any
    attempts: int
    error: BaseException


class WriteQueue:
    """Pending writes, at most one per key, in the order their keys first arrived."""

    __slots__ = ("_items", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: dict[str, PendingWrite] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> PendingWrite | None:
        """The write waiting for ``key``, if any."""
        return self._items.get(key)

    def has_room_for(self, key: str) -> bool:
        """True when a write to ``key`` fits: it coalesces, or the queue is not full."""
        return key in self._items or len(self._items) < self.maxsize

    def put(self, key: str, operation: Operation, value: Any, now: float) -> None:
        """Queue a write; a write already waiting for ``key`` is replaced in place."""
        waiting = self._items.get(key)
        if waiting is None:
            self._items[key] = PendingWrite(key, operation, value, now)
        else:
            waiting.operation = operation
            waiting.value = value

    def oldest(self) -> float | None:
        """When the oldest waiting write was queued (None when empty)."""
        for item in self._items.values():
            return item.enqueued_at
        return None

    def take(self, count: int) -> list[PendingWrite]:
        """Remove and return up to ``count`` writes, oldest first."""
        batch: list[PendingWrite] = []
        for key in list(self._items)[:count]:
            batch.append(self._items.pop(key))
        return batch

    def take_all(self) -> list[PendingWrite]:
        """Remove and return every waiting write."""
        batch = list(self._items.values())
        self._items.clear()
        return batch
