"""The admin HTTP listener: a small HTTP/1.1 GET server on the server's own asyncio loop.

Why not aiohttp or ``http.server``: the endpoints are five GETs of small bodies, and
``http.server`` would need a thread (the metrics must read the loop's state between two
commands, not in the middle of one). asyncio streams do it on the loop with no dependency;
prometheus_client is only used to render the exposition.

Routes: ``/metrics``, ``/health``, ``/ready``, ``/stats``, ``/`` and ``/dashboard`` (GET and
HEAD). Other paths answer 404, other methods 405; a request that is not HTTP/1.x, has a
malformed line or headers, or exceeds the size limits is answered 400 and closed. Keep-alive is
HTTP/1.1's default (the dashboard polls), with an idle timeout. A failure while building an
answer is a 500 for that request, logged and counted in ``internal_errors``; it never reaches
the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ..app import Server

__all__ = ["AdminServer"]

logger = logging.getLogger("stratacache.server")

MAX_LINE = 8192
"""Longest request or header line accepted (bytes)."""
MAX_HEADERS = 100
"""Most header lines accepted in one request."""
READ_TIMEOUT = 10.0
"""Seconds a client may take to send a whole request head."""
IDLE_TIMEOUT = 30.0
"""Seconds a kept-alive connection may stay idle before it is closed."""
MAX_CONNECTIONS = 64
"""Admin connections open at once; past it a new one is answered 503 and closed (a scraper,
a few dashboards and probes need a handful; idle sockets must not pile up tasks)."""

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class _BadRequest(Exception):
    """The request cannot be parsed: answer 400 and close."""


class AdminServer:
    """The admin listener of one :class:`~stratacache.server.app.Server`."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._listener: asyncio.AbstractServer | None = None
        self._registry: CollectorRegistry | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.requests = 0

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` (port 0: one the OS picks, see :attr:`port`)."""
        self._listener = await asyncio.start_server(
            self._serve, host, port, limit=MAX_LINE, reuse_address=True
        )

    @property
    def port(self) -> int:
        """The port listened on."""
        assert self._listener is not None
        return int(self._listener.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def close(self) -> None:
        """Stop listening and close the open connections."""
        if self._listener is not None:
            self._listener.close()
        for writer in list(self._writers):
            writer.close()
        if self._listener is not None:
            await self._listener.wait_closed()

    # ------------------------------------------------------------------- serving

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._writers) >= MAX_CONNECTIONS:
            try:
                await self._send(writer, 503, "too many admin connections\n", "text/plain", head=False)
                await _linger(reader, writer)
            except OSError:
                pass  # gone already
            finally:
                writer.close()
            return
        self._writers.add(writer)
        try:
            keep_alive = True
            first = True
            while keep_alive:
                try:
                    request = await self._read_request(reader, IDLE_TIMEOUT if not first else READ_TIMEOUT)
                except _BadRequest as exc:
                    await self._send(writer, 400, f"bad request: {exc}\n", "text/plain", head=False)
                    await _linger(reader, writer)
                    break
                if request is None:  # the client closed (or stayed idle too long)
                    break
                first = False
                method, path, version, headers = request
                keep_alive = _keep_alive(version, headers)
                if "content-length" in headers or "transfer-encoding" in headers:
                    keep_alive = False  # a body we do not read: the connection cannot go on
                status, body, content_type, extra = self._answer(method, path)
                head = method == "HEAD"
                await self._send(
                    writer, status, body, content_type, head=head, keep_alive=keep_alive, extra=extra
                )
                if not keep_alive:
                    await _linger(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away mid-request: nothing to answer
        except Exception:
            # A bug of ours costs this connection only.
            self.server.internal_errors += 1
            logger.exception("admin HTTP: internal error")
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _read_request(
        self, reader: asyncio.StreamReader, timeout: float
    ) -> tuple[str, str, str, dict[str, str]] | None:
        """(method, path, version, headers) or None when the client closed before a request."""
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout)
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise _BadRequest("incomplete request line") from None
            return None
        except asyncio.LimitOverrunError:
            raise _BadRequest("request line too long") from None
        except TimeoutError:
            return None
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/1."):
            raise _BadRequest("malformed request line")
        method, target, version = parts
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            try:
                raw = await asyncio.wait_for(reader.readuntil(b"\r\n"), READ_TIMEOUT)
            except asyncio.LimitOverrunError:
                raise _BadRequest("header line too long") from None
            except (asyncio.IncompleteReadError, TimeoutError):
                raise _BadRequest("incomplete headers") from None
            if raw == b"\r\n":
                break
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest("malformed header line")
            headers[name.lower()] = value.strip()
        else:
            raise _BadRequest("too many headers")
        path = urlsplit(target).path or "/"
        if not target.startswith("/"):
            raise _BadRequest("the target must be a path")
        return method, path, version, headers

    def _answer(self, method: str, path: str) -> tuple[int, str | bytes, str, dict[str, str]]:
        """(status, body, content type, extra headers) for a request."""
        if path not in _ROUTES:
            return 404, f"not found: {path}\n", "text/plain; charset=utf-8", {}
        if method not in ("GET", "HEAD"):
            return 405, f"method {method} not allowed\n", "text/plain; charset=utf-8", {"Allow": "GET, HEAD"}
        self.requests += 1
        try:
            return getattr(self, _ROUTES[path])()  # type: ignore[no-any-return]
        except Exception:
            self.server.internal_errors += 1
            logger.exception("admin HTTP: internal error answering %s", path)
            return 500, "internal error (see the server's log)\n", "text/plain; charset=utf-8", {}

    def _metrics(self) -> tuple[int, str | bytes, str, dict[str, str]]:
        try:
            from prometheus_client.exposition import CONTENT_TYPE_LATEST
        except ImportError:  # pragma: no cover - prometheus_client is part of the server extra
            text = "/metrics needs prometheus_client: pip install 'stratacache[server]'\n"
            return 500, text, "text/plain; charset=utf-8", {}

        from .metrics import exposition, make_registry

        if self._registry is None:
            self._registry = make_registry(self.server)
        return 200, exposition(self._registry), CONTENT_TYPE_LATEST, {}

    def _health(self) -> tuple[int, str, str, dict[str, str]]:
        # Answering at all proves the loop runs: the answer is built on it.
        return 200, "ok\n", "text/plain; charset=utf-8", {}

    def _ready(self) -> tuple[int, str, str, dict[str, str]]:
        server = self.server
        if getattr(server, "loading", False):
            return 503, "loading\n", "text/plain; charset=utf-8", {}
        if server.shutting_down:
            return 503, "shutting down\n", "text/plain; charset=utf-8", {}
        return 200, "ready\n", "text/plain; charset=utf-8", {}

    def _stats(self) -> tuple[int, str, str, dict[str, str]]:
        from .stats import snapshot

        return 200, json.dumps(snapshot(self.server)), "application/json", {}

    def _dashboard(self) -> tuple[int, str, str, dict[str, str]]:
        from .dashboard import PAGE

        return 200, PAGE, "text/html; charset=utf-8", {}

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: str | bytes,
        content_type: str,
        *,
        head: bool,
        keep_alive: bool = False,
        extra: dict[str, str] | None = None,
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        lines = [
            f"HTTP/1.1 {status} {_REASONS[status]}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(data)}",
            "Cache-Control: no-store",
            "X-Content-Type-Options: nosniff",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
        ]
        lines += [f"{name}: {value}" for name, value in (extra or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if not head:
            writer.write(data)
        await writer.drain()


_ROUTES = {
    "/metrics": "_metrics",
    "/health": "_health",
    "/ready": "_ready",
    "/stats": "_stats",
    "/": "_dashboard",
    "/dashboard": "_dashboard",
}


LINGER = 2.0
"""Seconds a closing connection waits for the client's end (see :func:`_linger`)."""
_LINGER_BYTES = 1 << 20


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close our side politely: end our output, then read and drop what the client still
    sends (a long header we refused, a body we did not read) until it closes, for at most
    :data:`LINGER` seconds. Closing a socket with unread input resets the connection, and
    the reset can destroy the answer before the client has read it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LINGER
    try:
        if writer.can_write_eof():
            writer.write_eof()
        drained = 0
        while drained < _LINGER_BYTES:
            chunk = await asyncio.wait_for(reader.read(65536), max(0.0, deadline - loop.time()))
            if not chunk:
                return
            drained += len(chunk)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return


def _keep_alive(version: str, headers: dict[str, Any]) -> bool:
    connection = str(headers.get("connection", "")).lower()
    if version == "HTTP/1.0":
        return connection == "keep-alive"
    return connection != "close"
