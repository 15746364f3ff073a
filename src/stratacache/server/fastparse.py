"""A request parser for the connection's hot path: hiredis parses, the bytes are checked.

:class:`BatchParser` gives exactly what :class:`~stratacache.server.resp.RequestParser` gives
(the same commands, the same errors, however the stream is cut into reads), faster for the
common stream: whole multibulk requests. On each read, hiredis's C reader parses every whole
command in it; then the canonical encoding of those commands (``*<n>\\r\\n`` and
``$<len>\\r\\n<arg>\\r\\n`` per argument, rebuilt from header tables and joined once) is
compared with the bytes received, in one C comparison. Equal: the commands are exactly what
the pure parser would have read, and they are queued. Otherwise (an inline request, a
non-``$`` element, junk where a CRLF belongs, a non-canonical number, a limit of Redis's that
hiredis does not know, an unauthenticated client, a partial command grown past
:data:`PENDING_MAX`) nothing has run yet, and the pure parser takes the same bytes from the
start of the read, and keeps the stream until it is back at a command boundary with an
empty buffer. The check costs a few list operations per argument; the pure parser costs
microseconds per command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .resp import DEFAULT_MAX_BULK_LEN, RequestParser

__all__ = ["PENDING_MAX", "BatchParser", "make_batch_parser"]

PENDING_MAX = 16 * 1024
"""A partial command longer than this goes to the pure parser (which reads it incrementally)
instead of being copied and re-parsed on every read."""

_CRLF = b"\r\n"
_ARRAY_HEADERS = [b"*%d\r\n" % n for n in range(64)]
_BULK_HEADERS = [b"$%d\r\n" % n for n in range(1024)]


class BatchParser:
    """:class:`RequestParser`'s interface and results (see the module docstring)."""

    __slots__ = (
        "_gets",
        "_pending",
        "_pure",
        "_pure_mode",
        "_reader",
        "_reader_class",
        "auth_required",
        "ready",
    )

    def __init__(
        self,
        reader_class: Any,
        max_bulk_len: int = DEFAULT_MAX_BULK_LEN,
        auth_required: Callable[[], bool] | None = None,
    ) -> None:
        self._pure = RequestParser(max_bulk_len)
        self.auth_required = auth_required
        self._reader_class = reader_class
        self._reader = reader_class()
        self._gets = self._reader.gets
        self.ready: list[list[bytes]] = []
        """Checked commands not yet taken, last first: ``ready.pop()`` is :meth:`next`
        without its call (the connection's loop takes them so). A new list on each read."""
        # The bytes of the partial command the reader holds (a checked prefix ended there).
        self._pending = b""
        self._pure_mode = False

    @property
    def max_bulk_len(self) -> int:
        """``proto-max-bulk-len``."""
        return self._pure.max_bulk_len

    @max_bulk_len.setter
    def max_bulk_len(self, value: int) -> None:
        self._pure.max_bulk_len = value

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed (the client's query buffer), about."""
        if self._pure_mode:
            return self._pure.buffered
        return len(self._pending)

    def pending_bulk(self) -> int:
        """The length of the bulk argument being read, or -1 (for query-buffer accounting)."""
        return self._pure.pending_bulk() if self._pure_mode else -1

    def feed(self, data: bytes) -> None:
        """Append received bytes (parsed and checked now, taken by :meth:`next`)."""
        if self._pure_mode or self.ready:
            # The queue is not empty when the connection paused (a blocked command): keep
            # the order simple, the pure parser reads the rest after the queue.
            self._to_pure(data)
            return
        pending = self._pending
        if not data or (
            not pending and (data[0] != 0x2A or (self.auth_required is not None and self.auth_required()))
        ):
            self._to_pure(data)  # an inline request, or Redis's tighter limits before AUTH
            return
        chunk = pending + data if pending else data
        self._reader.feed(data)
        commands: list[Any] = []
        gets = self._gets
        try:
            while (args := gets()) is not False:
                commands.append(args)
        except Exception:  # hiredis.ProtocolError: the pure parser says what is wrong
            self._restart(chunk)
            return
        if not commands:
            if len(chunk) > PENDING_MAX:
                self._restart(chunk)
            else:
                self._pending = chunk
            return
        pieces: list[bytes] = []
        add = pieces.append
        bulk = _BULK_HEADERS
        limit = self._pure.max_bulk_len
        try:
            for args in commands:
                add(_ARRAY_HEADERS[len(args)])  # a non-list or a long command: refused below
                for arg in args:
                    size = len(arg)
                    if type(arg) is not bytes or size > limit:
                        raise ValueError
                    pieces += (bulk[size] if size < 1024 else b"$%d\r\n" % size, arg, _CRLF)
        except (TypeError, IndexError, ValueError):
            self._restart(chunk)
            return
        checked = b"".join(pieces)
        if not chunk.startswith(checked):
            self._restart(chunk)
            return
        commands.reverse()
        self.ready = commands
        if len(chunk) > len(checked):
            rest = chunk[len(checked) :]
            if rest[0] != 0x2A:  # hiredis would take any reply type here: not a request's
                self._restart(rest)
            else:
                self._pending = rest
        else:
            self._pending = b""

    def _to_pure(self, data: bytes) -> None:
        """The pure parser takes the stream from here (after the queue), partial command first."""
        if not self._pure_mode:
            if self._pending:
                self._restart(self._pending)
            self._pure_mode = True
        self._pure.feed(data)

    def _restart(self, chunk: bytes) -> None:
        """The pure parser takes ``chunk`` (nothing of it has run); the reader starts over."""
        self._reader = self._reader_class()
        self._gets = self._reader.gets
        self._pending = b""
        self._pure_mode = True
        self._pure.feed(chunk)

    def next(self) -> list[bytes] | None:
        """The next whole command, or None; see :class:`RequestParser`."""
        queue = self.ready
        if queue:
            return queue.pop()
        if not self._pure_mode:
            return None
        pure = self._pure
        args = pure.next()
        if args is None and not pure.buffered and pure.pending_bulk() < 0 and pure._args is None:
            self._pure_mode = False  # back at a boundary with nothing buffered
        return args


def make_batch_parser(
    max_bulk_len: int = DEFAULT_MAX_BULK_LEN, auth_required: Callable[[], bool] | None = None
) -> BatchParser | RequestParser:
    """A :class:`BatchParser` when hiredis is installed (the ``server`` extra), else the pure
    :class:`RequestParser`; same results."""
    try:
        from hiredis import Reader
    except ImportError:  # pragma: no cover - hiredis is part of the server extra
        return RequestParser(max_bulk_len)
    return BatchParser(Reader, max_bulk_len, auth_required)
