"""Background work for the async flavour: a coroutine run as an asyncio task.

The sync twin ``background_sync.py`` runs a plain function in a daemon thread instead;
these two files are the only place where the flavours differ for long-running listeners
(the layered backend's invalidation subscriber), so the listener itself is written once.
The function must watch a stop flag of its own; ``stop`` also cancels the task so a
listener blocked on a read ends at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["Handle", "start", "stop"]

Handle = asyncio.Task[None]


def start(fn: Callable[[], Coroutine[Any, Any, None]], name: str) -> Handle:
    """Run ``fn()`` as a task on the running event loop (call it from inside a coroutine)."""
    return asyncio.get_running_loop().create_task(fn(), name=name)


async def stop(handle: Handle, timeout: float) -> None:
    """Cancel the task and wait for it to finish (at most ``timeout`` seconds)."""
    if handle.done():
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # pragma: no cover - close() is always awaited inside a loop
        return
    if handle.get_loop() is not loop:
        # A task of another (possibly closed) loop cannot be awaited from here; cancelling
        # is all that can be done, and it is harmless if that loop is gone.
        handle.cancel()
        return
    handle.cancel()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(handle, timeout)
