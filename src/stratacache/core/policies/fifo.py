"""``fifo``: evict the key that was stored first, whatever happened to it since.

The same ordered structure as ``lru`` (so the code is LRU's), except that a hit does not move
a key: ``tracks_access`` is ``False`` and a store can skip ``on_access``. An overwrite stores a
new value, which restarts the key's age: it goes to the back of the queue, as in
``cachetools.FIFOCache``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar

from .lru import LRUPolicy

__all__ = ["FIFOPolicy"]


class FIFOPolicy(LRUPolicy):
    """First in, first out: keys leave in the order they were stored (or last overwritten)."""

    name: ClassVar[str] = "fifo"
    tracks_access: ClassVar[bool] = False

    def __init__(self, capacity: int) -> None:
        """Create an empty queue for at most ``capacity`` total weight."""
        super().__init__(capacity)
        # LRU installs move_to_end as on_access; a FIFO hit must leave the order alone.
        del self.on_access

    def on_access(self, key: Hashable) -> None:
        """Nothing: a hit does not change the order (``tracks_access`` is ``False``)."""
