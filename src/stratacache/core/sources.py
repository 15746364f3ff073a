"""``MappingSource``: a data source over a dict, for tests, fixtures and warming from memory."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

from .._types import MISSING, Missing

__all__ = ["MappingSource"]


class MappingSource:
    """A :class:`~stratacache.DataSource` backed by a mutable mapping (a new dict by default).

    Its methods are plain functions, so it serves both flavours (the async strategies
    accept a source whose methods return values instead of awaitables). Thread-safe.
    """

    def __init__(self, data: MutableMapping[str, Any] | None = None) -> None:
        self.data: MutableMapping[str, Any] = {} if data is None else data
        self._lock = threading.Lock()

    def load(self, key: str) -> Any | Missing:
        """The value at ``key``, or MISSING."""
        with self._lock:
            return self.data.get(key, MISSING)

    def load_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The values of the keys present."""
        with self._lock:
            return {key: self.data[key] for key in keys if key in self.data}

    def store(self, key: str, value: Any) -> None:
        """Set ``key``."""
        with self._lock:
            self.data[key] = value

    def store_many(self, items: dict[str, Any]) -> None:
        """Set every item."""
        with self._lock:
            self.data.update(items)

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        with self._lock:
            self.data.pop(key, None)

    def keys(self) -> Iterator[str]:
        """A snapshot of the keys."""
        with self._lock:
            return iter(list(self.data))

    def __repr__(self) -> str:
        return f"<MappingSource {len(self.data)} keys>"
