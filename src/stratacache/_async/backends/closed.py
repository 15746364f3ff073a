"""The backend a cache switches to when closed: every operation raises CacheClosed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from ..._exceptions import CacheClosed
from .base import AsyncBackend, Capabilities

__all__ = ["AsyncClosedBackend"]


def _closed(operation: str) -> Any:
    async def method(self: AsyncClosedBackend, *args: Any, **kwargs: Any) -> Any:
        raise CacheClosed(f"cache over {self.closed_name} is closed: {operation}() after close()")

    method.__name__ = operation
    return method


class AsyncClosedBackend(AsyncBackend):
    """Stands in for a closed backend so that the facade needs no "closed?" check per call."""

    name: ClassVar[str] = "closed"
    capabilities: ClassVar[Capabilities] = Capabilities(
        stores_objects=True, delete_pattern=True, collections=True
    )

    def __init__(self, closed_name: str) -> None:
        self.closed_name = closed_name

    def iter_keys(self, pattern: str) -> AsyncIterator[str]:
        """Raises CacheClosed at the call (a plain method, like the contract's default)."""
        raise CacheClosed(f"cache over {self.closed_name} is closed: iter_keys() after close()")

    def describe(self) -> str:
        """The closed backend's description."""
        return f"closed {self.closed_name}"


# Every operation of the contract, required or optional, ping and counters included, raises;
# close (idempotent), describe and the attach_* notifications keep their defaults; iter_keys
# raises CacheClosed itself (an async-generator method is not a coroutine function).
_NOT_OPERATIONS = {"close", "describe", "attach_namespace", "attach_codec", "iter_keys"}
for _operation, _member in list(vars(AsyncBackend).items()):
    if callable(_member) and not _operation.startswith("_") and _operation not in _NOT_OPERATIONS:
        setattr(AsyncClosedBackend, _operation, _closed(_operation))
AsyncClosedBackend.__abstractmethods__ = frozenset()
