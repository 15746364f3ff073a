"""Caching patterns built on the facade: single-flight for get-or-set."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from .._concurrency import AsyncEvent
from .._exceptions import InvalidArgument

__all__ = ["AsyncFlightGroup"]


# The flights this thread (sync) or task (async) leads, as (group id, key): a call that waits
# for one of them would wait for itself. A context variable, so that each task and each
# thread has its own, and a task the leader starts inherits the leader's (waiting on it
# would deadlock just the same).
_leading: ContextVar[frozenset[tuple[int, str]]] = ContextVar("stratacache_leading", default=frozenset())


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

    A leader's function that runs the same key again (a ``get_or_set`` factory calling
    ``get_or_set`` for its own key) would wait for itself forever: it raises
    :class:`~stratacache.InvalidArgument` instead.
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
            if (id(self), key) in _leading.get():
                raise InvalidArgument(
                    f"get_or_set for key {key!r} was called again by its own factory (or a task it "
                    "started): it would wait for itself; compute the value without re-entering"
                )
            await call.done.wait()
            if call.error is None:
                return call.result
            if isinstance(call.error, Exception):
                raise call.error
            # The leader was cancelled or interrupted: try again, perhaps as leader.
        token = _leading.set(_leading.get() | {(id(self), key)})
        try:
            call.result = await fn()
            return call.result
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            _leading.reset(token)
            with self._lock:
                del self._calls[key]
            call.done.set()

    def __len__(self) -> int:
        return len(self._calls)
