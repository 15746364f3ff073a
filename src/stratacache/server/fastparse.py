"""A request parser for the connection's hot path: compiled, exact, with the pure one behind.

:class:`BatchParser` gives exactly what :class:`~stratacache.server.resp.RequestParser` gives
(the same commands, the same errors, however the stream is cut into reads), faster for the
common stream: whole multibulk requests in canonical form. On each read, the compiled
``parse_requests`` (``server/_speedups.c``) reads every whole canonical command
(``*<n>\\r\\n``, then ``$<len>\\r\\n<arg>\\r\\n`` per argument, numbers as Redis writes them,
within ``proto-max-bulk-len``) into :attr:`BatchParser.ready`, in one call, and stops at the
first byte that is anything else. From that byte the pure parser reads (an inline request, a
protocol error with its exact text, a non-canonical form, Redis's tighter limits before AUTH,
a partial command grown past :data:`PENDING_MAX`), until it is back at a command boundary
with an empty buffer. A partial canonical command is kept and read again with the next read.

Without the compiled module (no C compiler at install), :func:`make_batch_parser` returns
the pure parser itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .resp import DEFAULT_MAX_BULK_LEN, ProtocolViolation, RequestParser

__all__ = ["PENDING_MAX", "BatchParser", "make_batch_parser"]

PENDING_MAX = 16 * 1024
"""A partial command longer than this goes to the pure parser (which reads it incrementally)
instead of being copied and parsed again on every read."""

# Redis 7's limits on a request before AUTH (the pure parser's, see resp.RequestParser).
_UNAUTH_MAX_ARGS = 10
_UNAUTH_MAX_BULK = 16384

Parse = Callable[[bytes, int], tuple[list[Any], int, int]]


class BatchParser:
    """:class:`RequestParser`'s interface and results (see the module docstring)."""

    __slots__ = ("_error", "_parse", "_pending", "_pure", "_pure_mode", "auth_required", "ready")

    def __init__(
        self,
        parse: Parse,
        max_bulk_len: int = DEFAULT_MAX_BULK_LEN,
        auth_required: Callable[[], bool] | None = None,
    ) -> None:
        self._parse = parse
        self._pure = RequestParser(max_bulk_len, auth_required)
        self.auth_required = auth_required
        self.ready: list[list[bytes]] = []
        """Parsed commands not yet taken, last first: ``ready.pop()`` is :meth:`next`
        without its call (the connection's loop takes them so). A new list on each read."""
        # The bytes of a partial canonical command, read again with the next read.
        self._pending = b""
        # The pure parser has the stream (see the module docstring).
        self._pure_mode = False
        # The protocol error due once :attr:`ready` is taken (see lost_authentication).
        self._error: str | None = None

    @property
    def max_bulk_len(self) -> int:
        """``proto-max-bulk-len``."""
        return self._pure.max_bulk_len

    @max_bulk_len.setter
    def max_bulk_len(self, value: int) -> None:
        self._pure.max_bulk_len = value

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed (the client's query buffer)."""
        if self._pure_mode:
            return self._pure.buffered
        return len(self._pending)

    def pending_bulk(self) -> int:
        """The length of the bulk argument being read, or -1 (for query-buffer accounting)."""
        return self._pure.pending_bulk() if self._pure_mode else -1

    def feed(self, data: bytes) -> None:
        """Append received bytes (parsed now, taken by :meth:`next` or from :attr:`ready`)."""
        if self._pure_mode or self.ready:
            # Commands are still waiting when the connection paused (a blocked command):
            # the pure parser reads what comes after them.
            self._to_pure(data)
            return
        pending = self._pending
        if not data or (
            not pending and (data[0] != 0x2A or (self.auth_required is not None and self.auth_required()))
        ):
            self._to_pure(data)  # an inline request, or Redis's tighter limits before AUTH
            return
        chunk = pending + data if pending else data
        parsed, end, stopped = self._parse(chunk, self._pure.max_bulk_len)
        if parsed:
            parsed.reverse()
            self.ready = parsed
        rest = chunk[end:] if end else chunk
        if stopped or len(rest) > PENDING_MAX:
            self._pending = b""
            self._to_pure(rest)  # the pure parser reads what the compiled one does not
        else:
            self._pending = rest

    def _to_pure(self, data: bytes) -> None:
        """The pure parser takes the stream from here (after :attr:`ready`), partial command first."""
        if not self._pure_mode:
            self._pure_mode = True
            if self._pending:
                self._pure.feed(self._pending)
                self._pending = b""
        self._pure.feed(data)

    def lost_authentication(self) -> None:
        """The client must AUTH again (RESET) while commands of its last read wait in
        :attr:`ready`, parsed without Redis's limits for unauthenticated clients: hold them
        to those limits now, as the pure parser, reading them after the RESET, would have:
        the first one over a limit, and everything after it, become its protocol error."""
        ready = self.ready
        for i in range(len(ready) - 1, -1, -1):  # in the order they came
            args = ready[i]
            if len(args) > _UNAUTH_MAX_ARGS:
                text = "Protocol error: unauthenticated multibulk length"
            elif any(len(arg) > _UNAUTH_MAX_BULK for arg in args):
                text = "Protocol error: unauthenticated bulk length"
            else:
                continue
            del ready[: i + 1]
            self._error = text
            self._pending = b""
            return

    def next(self) -> list[bytes] | None:
        """The next whole command, or None; see :class:`RequestParser`."""
        ready = self.ready
        if ready:
            return ready.pop()
        if self._error is not None:
            raise ProtocolViolation(self._error)
        if not self._pure_mode:
            return None
        pure = self._pure
        args = pure.next()
        if args is None and not pure.buffered and pure._args is None:
            self._pure_mode = False  # back at a boundary with nothing buffered
        return args


def make_batch_parser(
    max_bulk_len: int = DEFAULT_MAX_BULK_LEN, auth_required: Callable[[], bool] | None = None
) -> BatchParser | RequestParser:
    """A :class:`BatchParser` when the compiled module is built, else the pure
    :class:`RequestParser`; same results."""
    if _speedups is None:  # pragma: no cover - a build without a C compiler
        return RequestParser(max_bulk_len, auth_required)
    return BatchParser(_speedups.parse_requests, max_bulk_len, auth_required)


try:
    if os.environ.get("STRATACACHE_NO_SPEEDUPS", "") not in ("", "0"):
        raise ImportError("disabled by STRATACACHE_NO_SPEEDUPS")
    from . import _speedups  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - a build without a C compiler
    _speedups = None
