"""One background janitor for every in-memory store of the process.

Expired entries are reclaimed lazily when touched; the janitor reclaims the rest in
bounded batches, so memory held by entries nobody reads again is returned. It is one
daemon thread for all stores (never a thread per cache), started on first need — the first
time a store schedules an expiry — and stopped when no store is left to watch, or at exit.
Stores are held by weak reference, so a forgotten cache does not stay alive for it.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from typing import Protocol

__all__ = ["Janitor", "janitor"]


class Watched(Protocol):
    """What the janitor needs from a store."""

    def purge_expired(self, limit: int = 1000) -> int: ...


class Janitor:
    """Sweeps watched stores every ``interval`` seconds, ``batch`` expired entries at a time."""

    def __init__(self, interval: float = 1.0, batch: int = 1000) -> None:
        self.interval = interval
        self.batch = batch
        self._stores: weakref.WeakSet[Watched] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.sweeps = 0

    def watch(self, store: Watched) -> None:
        """Start sweeping ``store`` (and start the thread if it is not running)."""
        with self._lock:
            self._stores.add(store)
            if self._thread is None or not self._thread.is_alive():
                self._wake.clear()
                self._thread = threading.Thread(target=self._run, name="stratacache-janitor", daemon=True)
                self._thread.start()

    def unwatch(self, store: Watched) -> None:
        """Stop sweeping ``store``."""
        with self._lock:
            self._stores.discard(store)

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def run_once(self) -> int:
        """One sweep over every watched store; returns how many entries were reclaimed."""
        with self._lock:
            stores = list(self._stores)
        reclaimed = 0
        for store in stores:
            # A batch per store per sweep bounds how long any store's lock is held.
            reclaimed += store.purge_expired(self.batch)
        self.sweeps += 1
        return reclaimed

    def _run(self) -> None:
        while not self._wake.wait(self.interval):
            self.run_once()
            with self._lock:
                if not self._stores:
                    # Nothing left to watch: stop; the next watch() starts a new thread.
                    self._thread = None
                    return

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (used at exit and by tests)."""
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._lock:
            self._thread = None


janitor = Janitor()
"""The process-wide janitor."""

atexit.register(janitor.stop)
