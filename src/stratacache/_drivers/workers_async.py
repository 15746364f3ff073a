"""Background workers for the data-source strategies (async flavour): tasks and wakeups.

The hand-written pair of ``workers_sync.py``. The strategies in ``_async/strategies.py``
and ``_async/warming.py`` are written once and generated to sync; the few things that
cannot be generated live here: how a worker is started (a task here, a thread there), how
it is waited for with a deadline, how several workers run side by side, and how a worker
sleeps until it is notified or a timeout passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .._concurrency import wake_all

__all__ = ["Handle", "Wakeup", "alive", "at_exit", "current_loop", "detach", "finish", "run_all", "spawn"]

Handle = asyncio.Task[Any]


class Wakeup:
    """A notify-all signal with a generation counter, safe across threads and event loops.

    A waiter reads ``generation`` while it holds the lock that guards the state it checks,
    then ``await wait(generation, timeout)``: a ``notify()`` in between bumps the
    generation, so the wait returns at once and no wakeup is lost. Waiters in other event
    loops (an AsyncCache shared by threads) are woken through ``call_soon_threadsafe``.
    """

    __slots__ = ("_generation", "_lock", "_waiters")

    def __init__(self) -> None:
        self._generation = 0
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def generation(self) -> int:
        """The number of notifications so far."""
        return self._generation

    def notify(self) -> None:
        """Wake every waiter."""
        with self._lock:
            self._generation += 1
            waiters, self._waiters = self._waiters, []
        wake_all(waiters)

    async def wait(self, generation: int, timeout: float | None) -> None:
        """Return once notified after ``generation`` was read, or after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._generation != generation:
                return
            future: asyncio.Future[None] = loop.create_future()
            entry = (loop, future)
            self._waiters.append(entry)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, timeout)
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove(entry)


def spawn(fn: Callable[[], Coroutine[Any, Any, Any]], name: str) -> Handle:
    """Run ``fn()`` as a task of the running loop (call it from inside a coroutine)."""
    return asyncio.get_running_loop().create_task(fn(), name=name)


def alive(handle: Handle) -> bool:
    """True while the worker runs (a task whose event loop was closed never will again)."""
    return not handle.done() and not handle.get_loop().is_closed()


async def finish(handle: Handle, timeout: float | None) -> bool:
    """Wait at most ``timeout`` seconds for the worker to end; True when it did.

    A task still running at the deadline is cancelled (it may be stuck awaiting a stalled
    data source); the sync twin cannot stop its thread and leaves it to end on its own.
    """
    if handle.done():
        return True
    if handle.get_loop() is not asyncio.get_running_loop():
        handle.cancel()
        return False
    done, _ = await asyncio.wait({handle}, timeout=timeout)
    if done:
        return True
    handle.cancel()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError, Exception):
        await asyncio.wait_for(handle, 1.0)
    return False


async def run_all(workers: list[Callable[[], Awaitable[None]]]) -> None:
    """Run every worker concurrently and wait for all; the first exception is raised."""
    await asyncio.gather(*(worker() for worker in workers))


def detach(loop: asyncio.AbstractEventLoop | None, fn: Callable[[], Coroutine[Any, Any, Any]]) -> bool:
    """Start ``fn()`` soon on ``loop`` from any thread or a signal handler; False without a live loop.

    The task is kept referenced until it ends, so it is not collected half-way.
    """
    if loop is None or loop.is_closed():
        return False

    def start() -> None:
        task = loop.create_task(fn())
        _detached.add(task)
        task.add_done_callback(_detached.discard)

    loop.call_soon_threadsafe(start)
    return True


def at_exit(fn: Callable[[], object], register: bool = True) -> None:
    """Nothing in the async flavour: at interpreter exit there is no event loop to run on
    (``asyncio.run`` has already cancelled its tasks), so async users close explicitly."""


def current_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop (None outside one)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


_detached: set[asyncio.Task[Any]] = set()
