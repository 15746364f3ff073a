"""Background work for the sync flavour: a function run in a daemon thread.

Twin of ``background_async.py`` (which runs a coroutine as an asyncio task). The function
must return soon after its owner raises its stop flag (it polls with a short timeout);
``stop`` then joins the thread. Daemon, so a cache nobody closed never holds up exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Handle", "start", "stop"]

Handle = threading.Thread


def start(fn: Callable[[], None], name: str) -> Handle:
    """Run ``fn()`` in a new daemon thread called ``name``."""
    thread = threading.Thread(target=fn, name=name, daemon=True)
    thread.start()
    return thread


def stop(handle: Handle, timeout: float) -> None:
    """Wait (at most ``timeout`` seconds) for the thread to notice its stop flag and end."""
    if handle is not threading.current_thread():
        handle.join(timeout)
