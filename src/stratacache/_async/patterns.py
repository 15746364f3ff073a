"""Caching patterns built on the facade: single-flight for get-or-set."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .._concurrency import AsyncEvent

__all__ = ["AsyncFlightGroup"]


class _Call:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = AsyncEvent()
        self.result: Any = None
        self.error: BaseException | None = None


class AsyncFlightGroup:
    """Runs at most one call per key at a time; concurrent callers share its outcome.

    The first caller for a key (the leader) runs the function; callers arriving while it
    runs wait and receive the same result, or the same exception. If the leader is
    cancelled (or interrupted) the waiters do not inherit that: they retry, and one of them
    becomes the new leader.
    """

    def __init__(self) -> None:
        self._calls: dict[str, _Call] = {}
        # A thread lock, not an asyncio one: the critical sections never await, and the
        # same group may be reached from several threads in the sync flavour.
        self._lock = threading.Lock()

    async def run(self, key: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` once for all concurrent callers with the same ``key``."""
        while True:
            with self._lock:
                call = self._calls.get(key)
                leader = call is None
                if call is None:
                    call = self._calls[key] = _Call()
            if leader:
                break
            await call.done.wait()
            if call.error is None:
                return call.result
            if isinstance(call.error, Exception):
                raise call.error
            # The leader was cancelled or interrupted: try again, perhaps as leader.
        try:
            call.result = await fn()
            return call.result
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()

    def __len__(self) -> int:
        return len(self._calls)
