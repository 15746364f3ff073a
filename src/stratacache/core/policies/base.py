"""The contract between an eviction policy and the store that uses it.

A store keeps the values; a policy keeps only keys (and their weights) and answers one
question: *which key should go next?* The store decides **when** to evict (while its total
weight is over ``capacity``, or it holds more entries than its own entry bound) and calls
:meth:`Policy.evict` once per victim; the policy decides **who**.

The calls a store makes, and the promises it keeps:

* :meth:`~Policy.on_insert` for a key the policy does not track yet (never twice);
* :meth:`~Policy.on_access` on a hit and :meth:`~Policy.on_update` on an overwrite, only for
  tracked keys (an overwrite counts as an access);
* :meth:`~Policy.on_remove` when the store drops a key itself (delete, expiry); a key the
  policy does not track is ignored, so the store need not check first;
* :meth:`~Policy.on_access_many` for hits the store buffered, in the order they happened, at
  the latest before the next call of any other method;
* :meth:`~Policy.record_miss` on a lookup miss, before the ``on_insert`` that usually
  follows; only frequency-based policies care;
* :meth:`~Policy.evict` chooses a victim, stops tracking it and returns it. With TinyLFU the
  victim may be the key that was just inserted (admission rejected it).

Policies are pure logic: no I/O, no threads and no locks; the store serialises calls under its
own lock. Every method is O(1) amortized, because they run on every cache hit.
"""

from __future__ import annotations

import abc
from collections.abc import Container, Hashable, Iterable
from typing import ClassVar

from ..._exceptions import ConfigurationError, InvalidArgument

__all__ = ["Policy", "check_capacity", "check_weight"]


def check_capacity(capacity: object) -> int:
    """Return ``capacity`` if it is a positive ``int``, else raise :class:`ConfigurationError`.

    ``bool`` is refused although it is an ``int`` subclass: ``capacity=True`` is a bug, not 1.
    """
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity <= 0:
        raise ConfigurationError(f"policy capacity must be a positive int, got {capacity!r}")
    return capacity


def check_weight(weight: object) -> int:
    """Return ``weight`` if it is an ``int`` >= 0, else raise :class:`InvalidArgument`.

    Zero is allowed: such an entry costs nothing against ``capacity`` but can still be evicted
    when the store bounds its number of entries.
    """
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
        raise InvalidArgument(f"entry weight must be an int >= 0, got {weight!r}")
    return weight


class Policy(abc.ABC):
    """Base class of eviction policies; subclass it and register it with ``register_policy``.

    ``capacity`` is the maximum total weight (the maximum number of entries when every weight
    is 1). ``weight`` is the total weight of the tracked keys and ``len(policy)`` their number.
    """

    #: The name the policy is registered under (``"lru"``, ``"tinylfu"``, ...).
    name: ClassVar[str]
    #: ``False`` when :meth:`on_access` does nothing, so a store may skip the call on a hit.
    tracks_access: ClassVar[bool] = True

    #: The current capacity (maximum total weight); change it with :meth:`resize`.
    capacity: int
    #: Total weight of the tracked keys. An attribute, not a property: it is read on every write.
    weight: int

    @abc.abstractmethod
    def __init__(self, capacity: int) -> None:
        """Create an empty policy for at most ``capacity`` total weight (``capacity > 0``)."""

    @abc.abstractmethod
    def on_insert(self, key: Hashable, weight: int = 1) -> None:
        """Start tracking ``key`` (never already tracked) with ``weight``."""

    @abc.abstractmethod
    def on_access(self, key: Hashable) -> None:
        """Record a hit on the tracked ``key``."""

    @abc.abstractmethod
    def on_update(self, key: Hashable, weight: int) -> None:
        """Record that the tracked ``key`` was overwritten, now with ``weight``; an access too."""

    @abc.abstractmethod
    def on_remove(self, key: Hashable) -> None:
        """Stop tracking ``key`` because the store removed it; an unknown key is ignored."""

    @abc.abstractmethod
    def evict(self) -> Hashable:
        """Choose a victim, stop tracking it and return it; :class:`KeyError` when empty."""

    @abc.abstractmethod
    def clear(self) -> None:
        """Stop tracking every key (``len`` and ``weight`` drop to 0; capacity is kept)."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of tracked keys."""

    @abc.abstractmethod
    def resize(self, capacity: int) -> None:
        """Set a new capacity; the store then calls :meth:`evict` while it is over its limits."""

    def on_access_many(self, keys: Iterable[Hashable], tracked: Container[Hashable]) -> None:
        """Record hits on ``keys``, oldest first, skipping any key not in ``tracked``.

        A store that buffers hits (see ``MemoryStore``) replays them through this method in
        batches; a key may have been removed since it was read, hence ``tracked`` (the store's
        map). The default calls :meth:`on_access` per key; a policy may do it more cheaply.
        """
        on_access = self.on_access
        for key in keys:
            if key in tracked:
                on_access(key)

    def record_miss(self, key: Hashable) -> None:  # noqa: B027 - an optional hook, not abstract
        """Record a lookup miss for ``key`` (tracked or not); a no-op unless frequency matters."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {len(self)} keys, weight {self.weight}/{self.capacity}>"
