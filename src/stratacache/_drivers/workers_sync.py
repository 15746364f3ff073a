"""Background workers for the data-source strategies (sync flavour): threads and wakeups.

The hand-written pair of ``workers_async.py``; the generated sync strategies import this
module. Workers are daemon threads (a stalled data source never holds up exit); the one
started from a signal handler to flush is not, so the interpreter waits for the flush.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Handle", "Wakeup", "alive", "at_exit", "current_loop", "detach", "finish", "run_all", "spawn"]

Handle = threading.Thread


class Wakeup:
    """A notify-all signal with a generation counter (see the async twin for the protocol)."""

    __slots__ = ("_cond", "_generation")

    def __init__(self) -> None:
        self._generation = 0
        self._cond = threading.Condition(threading.Lock())

    @property
    def generation(self) -> int:
        """The number of notifications so far."""
        return self._generation

    def notify(self) -> None:
        """Wake every waiter."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def wait(self, generation: int, timeout: float | None) -> None:
        """Return once notified after ``generation`` was read, or after ``timeout`` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self._generation != generation, timeout)


def spawn(fn: Callable[[], Any], name: str) -> Handle:
    """Run ``fn()`` in a new daemon thread called ``name``."""
    thread = threading.Thread(target=fn, name=name, daemon=True)
    thread.start()
    return thread


def alive(handle: Handle) -> bool:
    """True while the worker runs."""
    return handle.is_alive()


def finish(handle: Handle, timeout: float | None) -> bool:
    """Wait at most ``timeout`` seconds for the thread to end; True when it did."""
    if handle is threading.current_thread():
        return False
    handle.join(timeout)
    return not handle.is_alive()


def run_all(workers: list[Callable[[], None]]) -> None:
    """Run every worker in a thread of its own and wait for all; the first exception is raised."""
    errors: list[BaseException] = []

    def run(worker: Callable[[], None]) -> None:
        try:
            worker()
        except BaseException as exc:  # re-raised in the caller's thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in workers[1:]]
    for thread in threads:
        thread.start()
    if workers:
        run(workers[0])  # the caller's thread is one of the workers
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def detach(loop: object, fn: Callable[[], Any]) -> bool:
    """Start ``fn()`` in a new non-daemon thread (the interpreter waits for it at exit)."""
    threading.Thread(target=fn, name="stratacache-flush", daemon=False).start()
    return True


def at_exit(fn: Callable[[], object], register: bool = True) -> None:
    """Run ``fn`` at interpreter exit (``register=False``: not any more).

    atexit runs after non-daemon threads were joined but before daemon threads stop, so a
    daemon worker is still there to finish what ``fn`` waits for.
    """
    if register:
        atexit.register(fn)
    else:
        atexit.unregister(fn)


def current_loop() -> Any:
    """There is no event loop in the sync flavour: always None."""
    return None
