"""RESP, sans-IO: the request parser and the reply encoder of ``stratacache serve``.

Nothing here does I/O. A connection feeds the bytes it received to a :class:`RequestParser`
and takes whole commands out of it (``feed(data)``, then ``next()`` until it returns None),
and turns each command's reply object into bytes with :func:`encode`.

Requests come in two forms, as Redis takes them: multibulk (``*<n>\\r\\n$<len>\\r\\n...``,
what every client library sends) and inline (a line of space-separated words, what a person
types into ``telnet``), with Redis's quoting rules (``sdssplitargs``). Redis's limits and
error texts are kept, because clients and their test suites match on them; a
:class:`ProtocolViolation` carries the text, and the connection answers it and closes.

Replies are Python objects (see :func:`encode`): ``bytes`` a bulk string, ``str`` a simple
string, ``int`` an integer, ``None`` the null, ``list``/``tuple`` an array, ``float`` a double
(RESP3; a bulk string in RESP2), ``dict`` a map (RESP3; a flat array in RESP2), ``set`` /
``frozenset`` a set (RESP3; an array in RESP2), :class:`ErrorReply` an error, and the
wrappers :class:`Push`, :class:`Verbatim`, :class:`NullArray`, :class:`Double` and
:class:`Boolean`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "INLINE_MAX_SIZE",
    "MBULK_BIG_ARG",
    "Boolean",
    "Double",
    "ErrorReply",
    "HiredisRequestParser",
    "IncompleteCommand",
    "NullArray",
    "ProtocolViolation",
    "Push",
    "RequestParser",
    "Verbatim",
    "encode",
    "encode_command",
    "error_line",
    "make_parser",
    "split_inline",
]

INLINE_MAX_SIZE = 64 * 1024
"""Redis's PROTO_INLINE_MAX_SIZE: the longest inline request, and the longest count line."""
MBULK_BIG_ARG = 32 * 1024
"""Redis's PROTO_MBULK_BIG_ARG (only used for buffer sizing hints)."""
DEFAULT_MAX_BULK_LEN = 512 * 1024 * 1024
"""Redis's default ``proto-max-bulk-len``."""
MAX_MULTIBULK_LEN = 2**31 - 1
"""The most arguments a multibulk request may announce (Redis 7: INT_MAX)."""


class ProtocolViolation(Exception):
    """The client broke the protocol: answer ``-ERR <text>`` and close the connection.

    ``offset`` is the byte at fault, counted from the first byte fed to the parser (-1 when
    not known), and ``expected`` says in words what should have been there (both for a
    reader that names the place, such as ``stratacache check-log``).
    """

    def __init__(self, text: str, offset: int = -1, expected: str = "") -> None:
        super().__init__(text)
        self.text = text
        self.offset = offset
        self.expected = expected


class IncompleteCommand(ProtocolViolation):
    """The input ended inside a command (:meth:`RequestParser.finish`): a torn tail, not
    corruption. ``offset`` is where the unfinished command starts."""


class ErrorReply(Exception):
    """An error reply (``-<message>``). ``message`` starts with its code (ERR, WRONGTYPE, ...).

    An exception, so that a command handler can ``raise`` it from any depth; it is also a
    plain reply object (handlers may return it, e.g. inside an EXEC array).
    """

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"ErrorReply({self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrorReply) and other.message == self.message

    def __hash__(self) -> int:
        return hash(self.message)


class Push(list[Any]):
    """An out-of-band push (RESP3 ``>``; a plain array in RESP2): pub/sub messages, invalidations."""

    __slots__ = ()


class Verbatim(bytes):
    """A verbatim string (RESP3 ``=``, format ``txt``; a bulk string in RESP2), e.g. INFO's reply."""

    __slots__ = ()


class Double(bytes):
    """A double already formatted by its command (sorted-set scores follow Redis 7.0's
    ``%.17g``, which :func:`format_double` does not): RESP3 ``,<text>``, a bulk string in RESP2."""

    __slots__ = ()


class Boolean:
    """A RESP3 boolean (``#t``/``#f``); an integer 1/0 in RESP2."""

    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value


class NullArray:
    """The null array (``*-1`` in RESP2, ``_`` in RESP3), e.g. a timed-out BLPOP or aborted EXEC."""

    __slots__ = ()


NULL_ARRAY = NullArray()


# ----------------------------------------------------------------------------- parsing

_LLONG_MAX = 2**63 - 1


def _string2ll(data: bytes | bytearray) -> int | None:
    """``data`` as Redis's ``string2ll`` reads it, else None: an optional '-', then digits
    with no leading zero (just "0" is fine), at most 20 characters, within a signed 64-bit
    integer. So "+1", "01", "-0", " 1" and "" are all refused, as Redis refuses them."""
    size = len(data)
    if size == 0 or size >= 21:
        return None
    if size == 1 and data[0] == 0x30:
        return 0
    start = 1 if data[0] == 0x2D else 0
    if start == size or not 0x31 <= data[start] <= 0x39 or not data[start:].isdigit():
        return None
    value = int(data)
    if value > _LLONG_MAX or value < -_LLONG_MAX - 1:
        return None
    return value


def _line_end(buf: bytearray, pos: int, char: bytes) -> int:
    """Where ``char`` is in ``buf`` from ``pos``, as Redis's ``strchr`` finds it: the search
    stops at a NUL byte (the query buffer is a C string to it), so -1 also when a NUL comes
    first. A client whose request line holds a NUL waits, as on Redis, until the limits close it."""
    end = buf.find(char, pos)
    if buf.find(b"\x00", pos, len(buf) if end < 0 else end) >= 0:
        return -1
    return end


class _WireText(str):
    """An error text holding a byte of the client's (``expected '$', got '<byte>'``): it
    encodes as latin-1, so that byte goes back to the client as itself, as Redis sends it."""

    __slots__ = ()

    def encode(self, encoding: str = "latin-1", errors: str = "strict") -> bytes:
        return super().encode(encoding, errors)


# What a header or argument should have held, for ProtocolViolation.expected.
_EXPECT_COMMAND = "'*' (a command)"
_EXPECT_COUNT = "an argument count (digits and CRLF)"
_EXPECT_BULK = "'$' (an argument)"
_EXPECT_LENGTH = "an argument length (digits and CRLF)"
_EXPECT_CRLF = "CRLF after an argument"


class RequestParser:
    """Commands out of a byte stream: ``feed(data)``, then ``next()`` until None.

    ``next()`` returns a command as a list of ``bytes`` arguments (an empty list for a blank
    inline line or ``*0``, which the caller skips), None when the buffer holds no whole
    command, and raises :class:`ProtocolViolation` when the stream breaks the protocol (the
    parser is then unusable: the connection answers and closes). ``max_bulk_len`` is
    ``proto-max-bulk-len``; ``auth_required`` (a no-argument callable, checked as each
    header is read) says whether the client still has to AUTH, which tightens the limits as
    in Redis 7 (at most 10 arguments of at most 16384 bytes).

    The rules are Redis 7's ``processMultibulkBuffer`` / ``processInlineBuffer``, error texts
    included, with one deliberate difference: Redis takes any byte after a ``\\r`` as the
    ``\\n`` and skips the two bytes after a bulk argument unread; we check them and answer
    ``Protocol error: expected CRLF after ...`` (a desynchronised client is stopped at once
    instead of running whatever its next bytes happen to spell).

    For a reader of a whole input (``stratacache check-log``, the log loader's diagnosis):
    ``inline=False`` refuses what is not a multibulk command, a violation's ``offset`` and
    ``expected`` say where and what, :attr:`offset` is where the next command starts, and
    :meth:`finish` tells an input cut inside a command from one that cannot go on.
    """

    __slots__ = (
        "_args",
        "_base",
        "_buf",
        "_bulk",
        "_inline_ok",
        "_pos",
        "_remaining",
        "_start",
        "auth_required",
        "max_bulk_len",
    )

    def __init__(
        self,
        max_bulk_len: int = DEFAULT_MAX_BULK_LEN,
        auth_required: Callable[[], bool] | None = None,
        *,
        inline: bool = True,
    ) -> None:
        self._buf = bytearray()
        self._pos = 0
        # Bytes dropped from the front of _buf, so that offsets count from the first byte fed.
        self._base = 0
        self._start = 0  # where the command being read starts (the same count)
        self._inline_ok = inline
        self.max_bulk_len = max_bulk_len
        self.auth_required = auth_required
        # Partial multibulk state, so that a huge command fed in pieces is not rescanned.
        self._args: list[bytes] | None = None
        self._remaining = 0
        self._bulk = -1

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed (the client's query buffer)."""
        return len(self._buf) - self._pos

    def pending_bulk(self) -> int:
        """The length of the bulk argument being read, or -1 (for query-buffer accounting)."""
        return self._bulk

    @property
    def offset(self) -> int:
        """Bytes consumed since the first byte fed: after a whole command, where the next starts."""
        return self._base + self._pos

    def _compact(self) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._base += self._pos
            self._pos = 0

    def _violation(self, text: str, at: int, expected: str) -> ProtocolViolation:
        return ProtocolViolation(text, self._base + at, expected)

    def _unauthenticated(self) -> bool:
        return self.auth_required is not None and self.auth_required()

    def next(self) -> list[bytes] | None:
        """The next whole command, or None; see the class docstring."""
        buf = self._buf
        pos = self._pos
        if self._args is None:
            if pos >= len(buf):
                if pos:
                    buf.clear()
                    self._base += pos
                    self._pos = 0
                return None
            if buf[pos] != 0x2A:  # '*'
                if not self._inline_ok:
                    first = bytes(buf[pos : pos + 1])
                    raise self._violation(
                        f"Protocol error: expected '*', got {first!r}", pos, _EXPECT_COMMAND
                    )
                return self._inline()
            end = _line_end(buf, pos, b"\r")
            if end < 0:
                if len(buf) - pos > INLINE_MAX_SIZE:
                    raise self._violation(
                        "Protocol error: too big mbulk count string", pos + 1, _EXPECT_COUNT
                    )
                self._compact()
                return None
            if end + 1 >= len(buf):  # the '\n' has not arrived yet
                self._compact()
                return None
            count = _string2ll(buf[pos + 1 : end])
            if count is None or count > MAX_MULTIBULK_LEN:
                raise self._violation("Protocol error: invalid multibulk length", pos + 1, _EXPECT_COUNT)
            if count > 10 and self._unauthenticated():
                raise self._violation(
                    "Protocol error: unauthenticated multibulk length",
                    pos + 1,
                    "at most 10 arguments before AUTH",
                )
            if buf[end + 1] != 0x0A:
                raise self._violation(
                    "Protocol error: expected CRLF after multibulk length", end + 1, "'\\n'"
                )
            self._start = self._base + pos
            pos = end + 2
            self._pos = pos
            if count <= 0:
                return []  # '*0' / '*-1': an empty command, which the caller skips
            self._args = []
            self._remaining = count
        args = self._args
        while self._remaining:
            if self._bulk < 0:
                end = _line_end(buf, pos, b"\r")
                if end < 0:
                    if len(buf) - pos > INLINE_MAX_SIZE:
                        raise self._violation(
                            "Protocol error: too big bulk count string", pos + 1, _EXPECT_LENGTH
                        )
                    self._compact()
                    return None
                if end + 1 >= len(buf):
                    self._compact()
                    return None
                if buf[pos] != 0x24:  # '$'
                    # Redis prints the byte as is, but never a line break inside an error.
                    got = " " if buf[pos] in (0x0A, 0x0D) else chr(buf[pos])
                    raise self._violation(
                        _WireText(f"Protocol error: expected '$', got '{got}'"), pos, _EXPECT_BULK
                    )
                size = _string2ll(buf[pos + 1 : end])
                if size is None or size < 0 or size > self.max_bulk_len:
                    raise self._violation("Protocol error: invalid bulk length", pos + 1, _EXPECT_LENGTH)
                if size > 16384 and self._unauthenticated():
                    raise self._violation(
                        "Protocol error: unauthenticated bulk length",
                        pos + 1,
                        "at most 16384 bytes before AUTH",
                    )
                if buf[end + 1] != 0x0A:
                    raise self._violation("Protocol error: expected CRLF after bulk length", end + 1, "'\\n'")
                self._bulk = size
                pos = end + 2
                self._pos = pos
            size = self._bulk
            if len(buf) - pos < size + 2:
                self._compact()
                return None
            if buf[pos + size] != 0x0D or buf[pos + size + 1] != 0x0A:
                # Redis skips these two bytes unread; we check them (DESIGN: strict parsers).
                raise self._violation(
                    "Protocol error: expected CRLF after bulk argument", pos + size, _EXPECT_CRLF
                )
            args.append(bytes(buf[pos : pos + size]))
            pos += size + 2
            self._pos = pos
            self._bulk = -1
            self._remaining -= 1
        self._args = None
        return args

    def _inline(self) -> list[bytes] | None:
        buf = self._buf
        pos = self._pos
        end = _line_end(buf, pos, b"\n")
        if end < 0:
            # As Redis: the limit is on what is buffered without a line end, so a longer
            # line whose end came in the same read is still taken.
            if len(buf) - pos > INLINE_MAX_SIZE:
                raise ProtocolViolation("Protocol error: too big inline request")
            self._compact()
            return None
        self._pos = end + 1
        if end > pos and buf[end - 1] == 0x0D:
            end -= 1
        args = split_inline(bytes(buf[pos:end]))
        if args is None:
            raise self._violation("Protocol error: unbalanced quotes in request", pos, "balanced quotes")
        return args

    def finish(self) -> None:
        """Say the input has ended (call it after ``next()`` returned None).

        Returns when nothing is left over. Raises :class:`IncompleteCommand` when the bytes
        left are the beginning of a command (the input was cut inside it), and
        :class:`ProtocolViolation` when they cannot be: the checks ``next()`` leaves until
        more bytes come (the header's first byte, its digits, the CRLF after an argument)
        are made on what is there.
        """
        buf = self._buf
        pos = self._pos
        if self._args is None:
            if pos >= len(buf):
                return
            start = self._base + pos
            if buf[pos] != 0x2A:  # what next() left of an inline request is a line not ended
                raise IncompleteCommand("Protocol error: the input ends inside a request", start, "'\\n'")
            self._check_partial_line(pos, _EXPECT_COUNT)
            raise IncompleteCommand("Protocol error: the input ends inside a command", start, _EXPECT_COUNT)
        if self._bulk < 0:
            if pos < len(buf) and buf[pos] != 0x24:  # '$'
                got = bytes(buf[pos : pos + 1])
                raise self._violation(f"Protocol error: expected '$', got {got!r}", pos, _EXPECT_BULK)
            self._check_partial_line(pos, _EXPECT_LENGTH)
            expected = _EXPECT_BULK if pos >= len(buf) else _EXPECT_LENGTH
        else:
            end = pos + self._bulk
            if end < len(buf) and buf[end] != 0x0D:
                raise self._violation("Protocol error: expected CRLF after bulk argument", end, _EXPECT_CRLF)
            expected = f"{self._bulk} bytes of an argument and CRLF"
        raise IncompleteCommand("Protocol error: the input ends inside a command", self._start, expected)

    def _check_partial_line(self, pos: int, expected: str) -> None:
        """Refuse a header line cut short (``*`` or ``$`` at ``pos``) that no digits could end."""
        text = bytes(self._buf[pos + 1 :]).removesuffix(b"\r")
        if text and not (text.isdigit() or (text[0] == 0x2D and text[1:].isdigit())):
            raise self._violation("Protocol error: invalid length", pos + 1, expected)


_FRESH, _FED, _PURE, _PURE_ONLY = 0, 1, 2, 3
_WHOLE_CHECK_MAX = 16 * 1024
_BIG_AGGREGATE = re.compile(rb"[*~>%|][0-9]{5}")


class HiredisRequestParser:
    """:class:`RequestParser`'s results, faster: hiredis's C reader parses multibulk requests.

    hiredis parses RESP *replies*, which is more than requests (``+``, ``:``, nested arrays,
    RESP3 types) and less strict (it skips the two bytes after a bulk unread), so it is only
    trusted with what it is right about: a command it returns is accepted when the bytes it
    came from are exactly the canonical encoding of it (``*<n>\\r\\n`` then
    ``$<len>\\r\\n<data>\\r\\n`` per argument: compared whole for a small command, header by
    header for a big one) and within the limits hiredis does not know (``proto-max-bulk-len``,
    the unauthenticated ones). Everything else — a command not wholly received yet, anything
    hiredis refuses or that fails the check — goes to the pure parser, from the same byte,
    which gives the result or the exact error text; hiredis is then restarted at the next
    command boundary. A client that sends an inline request, or bytes that look like an
    aggregate header of 10000 elements or more (hiredis would allocate it at once), is read by
    the pure parser from then on. So both parsers give the same commands and errors for any
    stream, however it is cut into reads (tests/server/test_parser.py checks it with
    hypothesis).
    """

    __slots__ = ("_mode", "_pure", "_reader", "_reader_class")

    def __init__(
        self,
        max_bulk_len: int = DEFAULT_MAX_BULK_LEN,
        auth_required: Callable[[], bool] | None = None,
        *,
        reader_class: Any,
    ) -> None:
        self._pure = RequestParser(max_bulk_len, auth_required)
        self._reader_class = reader_class
        self._reader = reader_class()
        # _FRESH: the reader is empty and the pure parser at a command boundary (the reader
        # gets the buffered bytes when a multibulk request comes, so that a run of inline
        # requests never copies the buffer into it); _FED: the reader holds exactly the
        # unconsumed bytes, at a command boundary; _PURE: the pure parser is in charge until
        # the command in hand is done (the reader then holds stale bytes); _PURE_ONLY: the
        # pure parser for good (inline requests, huge aggregate headers: see feed()).
        self._mode = _FRESH

    @property
    def max_bulk_len(self) -> int:
        """``proto-max-bulk-len``."""
        return self._pure.max_bulk_len

    @max_bulk_len.setter
    def max_bulk_len(self, value: int) -> None:
        self._pure.max_bulk_len = value

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        buf = self._pure._buf
        start = len(buf)
        buf += data
        mode = self._mode
        if mode == _PURE_ONLY:
            return
        # hiredis allocates an aggregate's list when it reads the header, whatever the
        # count: "*2000000000" nested in a request costs it seconds and gigabytes before
        # the check below can refuse it. A client whose bytes hold such a header (or a
        # value that looks like one) is read by the pure parser from then on.
        if _BIG_AGGREGATE.search(buf, max(start - 6, self._pure._pos)) is not None:
            self._mode = _PURE_ONLY
        elif mode == _FED:
            self._reader.feed(data)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed (the client's query buffer)."""
        return self._pure.buffered

    def pending_bulk(self) -> int:
        """The length of the bulk argument being read, or -1 (for query-buffer accounting)."""
        return self._pure._bulk

    def next(self) -> list[bytes] | None:
        """The next whole command, or None; see :class:`RequestParser`."""
        pure = self._pure
        mode = self._mode
        if mode == _PURE:
            return self._pure_next()
        if mode == _PURE_ONLY:
            return pure.next()
        buf = pure._buf
        pos = pure._pos
        if pos >= len(buf):
            if pos:
                buf.clear()
                pure._pos = 0
            return None
        if buf[pos] != 0x2A:  # '*'
            # An inline request: people typing, not a load to speed up. Going back to
            # hiredis after each would copy the rest of the buffer into it each time.
            self._mode = _PURE_ONLY
            return pure.next()
        if mode == _FRESH:
            self._reader.feed(bytes(buf[pos:]))
            self._mode = _FED
        try:
            args = self._reader.gets()
        except Exception:  # hiredis.ProtocolError: the pure parser says what is wrong
            args = None
        if type(args) is list:
            end = self._canonical_end(buf, pos, args)
            if end >= 0:
                pure._pos = end
                return args
        # Incomplete (False: the pure parser reads the headers received so far, as Redis
        # answers a bad length before the data comes, and keeps the rest), refused, or not
        # canonical: the pure parser takes over from the same byte.
        self._mode = _PURE
        return self._pure_next()

    def _pure_next(self) -> list[bytes] | None:
        pure = self._pure
        args = pure.next()
        if args is not None and pure._args is None:
            self._reader = self._reader_class()
            self._mode = _FRESH
        return args

    def _canonical_end(self, buf: bytearray, pos: int, args: list[Any]) -> int:
        """Where the canonical encoding of ``args`` that starts at ``pos`` ends, or -1 if
        the bytes there are not that encoding or break a limit hiredis does not check."""
        pure = self._pure
        limit = pure.max_bulk_len
        auth = pure.auth_required
        if auth is not None and auth():
            if len(args) > 10:
                return -1
            limit = min(limit, 16384)
        try:
            size = sum(map(len, args))  # TypeError for what no request holds (int, None, list)
            if size <= _WHOLE_CHECK_MAX:
                # Small commands (the common case): one encoding, one comparison in C.
                encoded = b"*%d\r\n%b" % (
                    len(args),
                    b"".join([b"$%d\r\n%b\r\n" % (len(arg), arg) for arg in args]),
                )
                if not buf.startswith(encoded, pos):
                    return -1
                end = pos + len(encoded)
            else:
                end = self._check_headers(buf, pos, args)
        except TypeError:
            return -1
        if size > limit and any(len(arg) > limit for arg in args):
            return -1
        return end

    @staticmethod
    def _check_headers(buf: bytearray, pos: int, args: list[Any]) -> int:
        """:meth:`_canonical_end` for big commands: the headers and line ends, header by
        header, without copying the data (hiredis parsed it from between them)."""
        header = b"*%d\r\n" % len(args)
        if not buf.startswith(header, pos):
            return -1
        off = pos + len(header)
        for arg in args:
            if type(arg) is not bytes:
                return -1
            header = b"$%d\r\n" % len(arg)
            if not buf.startswith(header, off):
                return -1
            off += len(header) + len(arg)
            if buf[off : off + 2] != b"\r\n":
                return -1
            off += 2
        return off


def make_parser(
    max_bulk_len: int = DEFAULT_MAX_BULK_LEN,
    auth_required: Callable[[], bool] | None = None,
) -> RequestParser | HiredisRequestParser:
    """The fastest request parser available: :class:`HiredisRequestParser` when hiredis is
    installed (the ``server`` extra), else the pure :class:`RequestParser`; same results."""
    try:
        from hiredis import Reader
    except ImportError:
        return RequestParser(max_bulk_len, auth_required)
    return HiredisRequestParser(max_bulk_len, auth_required, reader_class=Reader)


_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX = b"0123456789abcdefABCDEF"
# C's isspace(): what sdssplitargs skips between arguments and wants after a closing quote.
_SPACE = b" \n\r\t\x0b\x0c"
# What ends an unquoted argument in sdssplitargs: not \v nor \f (they stay in the argument).
_TOKEN_END = b" \n\r\t\x00"


def split_inline(line: bytes) -> list[bytes] | None:
    """Split an inline request as Redis's ``sdssplitargs`` does; None for unbalanced quotes."""
    args: list[bytes] = []
    i = 0
    n = len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        in_double = in_single = False
        while True:
            if in_double:
                if i >= n:
                    return None
                c = line[i]
                if (
                    c == 0x5C
                    and i + 3 < n
                    and line[i + 1] == ord("x")
                    and line[i + 2] in _HEX
                    and line[i + 3] in _HEX
                ):
                    current.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif c == 0x5C and i + 1 < n:
                    i += 1
                    current.append(_ESCAPES.get(line[i], line[i]))
                elif c == 0x22:
                    # The closing quote must be followed by a space or the end.
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None
                    i += 1
                    break
                else:
                    current.append(c)
            elif in_single:
                if i >= n:
                    return None
                c = line[i]
                if c == 0x5C and i + 1 < n and line[i + 1] == 0x27:
                    i += 1
                    current.append(0x27)
                elif c == 0x27:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None
                    i += 1
                    break
                else:
                    current.append(c)
            else:
                if i >= n:
                    break
                c = line[i]
                if c in _TOKEN_END:
                    i += 1
                    break
                if c == 0x22:
                    in_double = True
                elif c == 0x27:
                    in_single = True
                else:
                    current.append(c)
            i += 1
        args.append(bytes(current))


# ----------------------------------------------------------------------------- encoding


def error_line(message: str) -> bytes:
    """An error message as the body of a ``-`` line: CR and LF become spaces, as Redis's
    addReplyError does, since a message may quote what a client sent and a raw line break
    would end the reply early and corrupt the stream."""
    # A _WireText (a client's byte quoted) encodes itself, as latin-1; other text as UTF-8.
    data = message.encode() if type(message) is not str else message.encode("utf-8", "replace")
    if b"\r" in data or b"\n" in data:
        data = data.replace(b"\r", b" ").replace(b"\n", b" ")
    return data


def _format_double(value: float) -> bytes:
    if math.isnan(value):
        return b"nan"
    if value in (float("inf"), float("-inf")):
        return b"inf" if value > 0 else b"-inf"
    # Redis prints doubles with %.17g; repr() gives the shortest round-tripping form, which
    # is what clients parse back to the same float.
    text = repr(value)
    if text.endswith(".0"):
        text = text[:-2]
    return text.encode()


def format_double(value: float) -> bytes:
    """A float as Redis writes it in a bulk reply (INCRBYFLOAT, ZSCORE): shortest form, no '.0'."""
    return _format_double(value)


def _encode_into(reply: Any, out: list[bytes], resp3: bool) -> None:
    kind = type(reply)
    if kind is bytes:
        out.append(b"$%d\r\n%b\r\n" % (len(reply), reply))
    elif kind is str:
        out.append(b"+%b\r\n" % reply.encode())
    elif kind is int:
        out.append(b":%d\r\n" % reply)
    elif reply is None:
        out.append(b"_\r\n" if resp3 else b"$-1\r\n")
    elif kind is list or kind is tuple:
        out.append(b"*%d\r\n" % len(reply))
        for item in reply:
            _encode_into(item, out, resp3)
    elif kind is ErrorReply or isinstance(reply, ErrorReply):
        out.append(b"-%b\r\n" % error_line(reply.message))
    elif kind is float:
        if resp3:
            out.append(b",%b\r\n" % _format_double(reply))
        else:
            text = _format_double(reply)
            out.append(b"$%d\r\n%b\r\n" % (len(text), text))
    elif kind is dict:
        if resp3:
            out.append(b"%%%d\r\n" % len(reply))
        else:
            out.append(b"*%d\r\n" % (2 * len(reply)))
        for key, value in reply.items():
            _encode_into(key, out, resp3)
            _encode_into(value, out, resp3)
    elif kind is set or kind is frozenset:
        out.append((b"~%d\r\n" if resp3 else b"*%d\r\n") % len(reply))
        for item in reply:
            _encode_into(item, out, resp3)
    elif kind is Push:
        out.append((b">%d\r\n" if resp3 else b"*%d\r\n") % len(reply))
        for item in reply:
            _encode_into(item, out, resp3)
    elif kind is Verbatim:
        if resp3:
            out.append(b"=%d\r\ntxt:%b\r\n" % (len(reply) + 4, bytes(reply)))
        else:
            out.append(b"$%d\r\n%b\r\n" % (len(reply), bytes(reply)))
    elif kind is NullArray:
        out.append(b"_\r\n" if resp3 else b"*-1\r\n")
    elif kind is Double:
        if resp3:
            out.append(b",%b\r\n" % bytes(reply))
        else:
            out.append(b"$%d\r\n%b\r\n" % (len(reply), bytes(reply)))
    elif kind is Boolean:
        if resp3:
            out.append(b"#t\r\n" if reply.value else b"#f\r\n")
        else:
            out.append(b":1\r\n" if reply.value else b":0\r\n")
    elif kind is bool:
        out.append(b":1\r\n" if reply else b":0\r\n")
    elif kind is bytearray or kind is memoryview:
        data = bytes(reply)
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    else:
        raise TypeError(f"cannot encode a {kind.__name__} as a RESP reply: {reply!r}")


def encode(reply: Any, resp3: bool = False) -> bytes:
    """``reply`` (see the module docstring) as RESP2, or RESP3 when ``resp3``."""
    out: list[bytes] = []
    _encode_into(reply, out, resp3)
    return b"".join(out)


encode_into: Callable[[Any, list[bytes], bool], None] = _encode_into
"""Append ``reply``'s encoding to ``out`` (the connection's batch of replies)."""


def encode_command(*args: bytes | str | int) -> bytes:
    """A command as a multibulk request (for tests and for the server's own log)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)
