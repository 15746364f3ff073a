"""A server on a thread of the calling process: for tests and for embedding.

    with ServerThread(ServerConfig(port=0)) as running:
        client = redis.Redis(port=running.port)

The server gets its own event loop on a daemon thread; :meth:`ServerThread.stop` shuts it
down gracefully and joins the thread.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Self

from .app import Server
from .config import ServerConfig

__all__ = ["ServerThread"]


class ServerThread:
    """Run a :class:`Server` on its own loop and thread (see the module docstring)."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig(port=0)
        self.server: Server | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The port the server listens on."""
        assert self.server is not None
        return self.server.ports[0]

    def start(self, timeout: float = 10.0) -> Self:
        """Start the thread and wait until the server listens (its errors are re-raised here)."""
        self._thread = threading.Thread(target=self._run, name="stratacache-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the server thread did not start in time")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop

        async def main() -> None:
            try:
                self.server = Server(self.config)
                await self.server.start(ephemeral=True)
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            await self.server.wait_closed()

        try:
            loop.run_until_complete(main())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def call(self, func: object) -> None:
        """Run a no-argument callable on the server's loop and wait for it (for tests)."""
        assert self.loop is not None
        assert callable(func)
        done = threading.Event()

        def run() -> None:
            try:
                func()
            finally:
                done.set()

        self.loop.call_soon_threadsafe(run)
        done.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down gracefully and join the thread."""
        server = self.server
        if (
            server is not None
            and not server.shutting_down
            and self.loop is not None
            and not self.loop.is_closed()
        ):
            # A SHUTDOWN command may have started the shutdown already; then the loop is
            # finishing and a coroutine scheduled on it might never run: only join.
            future = asyncio.run_coroutine_threadsafe(server.shutdown(), self.loop)
            try:
                future.result(timeout)
            except TimeoutError:
                future.cancel()
                if self._thread is not None and self._thread.is_alive():
                    raise
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        self.stop()
