"""Which event loop an async client's connections belong to.

An asyncio connection (a transport, redis-py's stream reader and writer) belongs to the loop
that opened it: used from another loop it hangs (nobody wakes the other loop) or raises a
bare ``RuntimeError`` ("attached to a different loop", "Event loop is closed"). So an async
backend with connections is bound to the first loop that uses it, and a call from another
loop raises a :class:`~stratacache.CacheError` that says why and what to do, instead of
hanging or leaking ``RuntimeError``. A backend that holds no connection may move to a new
loop (the Memcached pool after every connection was closed, for instance).

Async flavour only: the sync backends have no loop.
"""

from __future__ import annotations

import asyncio
import threading

from .._exceptions import CacheError

__all__ = ["LoopBinding"]


class LoopBinding:
    """The loop an async client is bound to; :meth:`check` on every call that does I/O."""

    __slots__ = ("_lock", "loop", "what")

    def __init__(self, what: str) -> None:
        #: The client, for messages ("redis 127.0.0.1:6379/0").
        self.what = what
        self.loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def check(self, *, idle: bool = False) -> asyncio.AbstractEventLoop:
        """The running loop, once it is the bound one (bound now on first use).

        ``idle``: the client holds no connection, so it may move to the running loop.
        """
        loop = asyncio.get_running_loop()
        if loop is self.loop:
            return loop
        with self._lock:  # two threads, each with its own loop, may arrive at once
            if self.loop is None or self.loop is loop or idle:
                self.loop = loop
                return loop
        raise self.error()

    def error(self) -> CacheError:
        """The error for a call from a loop other than the bound one."""
        bound = self.loop
        state = "now closed" if bound is not None and bound.is_closed() else "still open"
        return CacheError(
            f"{self.what}: this AsyncCache's connections belong to the event loop that first used "
            f"it ({state}), and asyncio connections cannot move between loops; an AsyncCache "
            "cannot be shared by several event loops (several asyncio.run() calls, or threads "
            "with their own loops): create one AsyncCache per event loop, or use the sync Cache "
            "from threads"
        )
