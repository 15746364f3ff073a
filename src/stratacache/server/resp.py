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
from collections.abc import Callable
from typing import Any

__all__ = [
    "INLINE_MAX_SIZE",
    "MBULK_BIG_ARG",
    "Boolean",
    "Double",
    "ErrorReply",
    "NullArray",
    "ProtocolViolation",
    "Push",
    "RequestParser",
    "Verbatim",
    "encode",
    "encode_command",
    "split_inline",
]

INLINE_MAX_SIZE = 64 * 1024
"""Redis's PROTO_INLINE_MAX_SIZE: the longest inline request, and the longest count line."""
MBULK_BIG_ARG = 32 * 1024
"""Redis's PROTO_MBULK_BIG_ARG (only used for buffer sizing hints)."""
DEFAULT_MAX_BULK_LEN = 512 * 1024 * 1024
"""Redis's default ``proto-max-bulk-len``."""
MAX_MULTIBULK_LEN = 1024 * 1024 * 1024
"""Redis refuses more than INT_MAX elements; we refuse above 1024*1024*1024, as Redis 7 does."""


class ProtocolViolation(Exception):
    """The client broke the protocol: answer ``-ERR <text>`` and close the connection."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


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


def _digits(line: bytes) -> int | None:
    """``line`` as a decimal integer with an optional '-' (Redis's string2ll), else None."""
    body = line[1:] if line[:1] == b"-" else line
    if not body or not body.isdigit() or len(body) > 19 or (len(body) > 1 and body[:1] == b"0"):
        return None
    return int(line)


class RequestParser:
    """Commands out of a byte stream: ``feed(data)``, then ``next()`` until None.

    ``next()`` returns a command as a list of ``bytes`` arguments (an empty list for a blank
    inline line, which the caller skips), None when the buffer holds no whole command, and
    raises :class:`ProtocolViolation` when the stream breaks the protocol (the buffer is then
    in an undefined state: the connection must close). ``max_bulk_len`` is
    ``proto-max-bulk-len``.
    """

    __slots__ = ("_args", "_buf", "_bulk", "_pos", "_remaining", "max_bulk_len")

    def __init__(self, max_bulk_len: int = DEFAULT_MAX_BULK_LEN) -> None:
        self._buf = bytearray()
        self._pos = 0
        self.max_bulk_len = max_bulk_len
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

    def _compact(self) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0

    def next(self) -> list[bytes] | None:
        """The next whole command, or None; see the class docstring."""
        buf = self._buf
        pos = self._pos
        if self._args is None:
            if pos >= len(buf):
                if pos:
                    buf.clear()
                    self._pos = 0
                return None
            if buf[pos] != 0x2A:  # '*'
                return self._inline()
            end = buf.find(b"\r\n", pos)
            if end < 0:
                if len(buf) - pos > INLINE_MAX_SIZE:
                    raise ProtocolViolation("Protocol error: too big mbulk count string")
                self._compact()
                return None
            if end - pos > INLINE_MAX_SIZE:
                raise ProtocolViolation("Protocol error: too big mbulk count string")
            count = _digits(bytes(buf[pos + 1 : end]))
            if count is None or count > MAX_MULTIBULK_LEN:
                raise ProtocolViolation("Protocol error: invalid multibulk length")
            pos = end + 2
            self._pos = pos
            if count <= 0:
                return []  # '*0' / '*-1': an empty command, which the caller skips
            self._args = []
            self._remaining = count
        args = self._args
        while self._remaining:
            if self._bulk < 0:
                if pos >= len(buf):
                    self._compact()
                    return None
                if buf[pos] != 0x24:  # '$'
                    raise ProtocolViolation(f"Protocol error: expected '$', got '{chr(buf[pos])}'")
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    if len(buf) - pos > INLINE_MAX_SIZE:
                        raise ProtocolViolation("Protocol error: too big bulk count string")
                    self._compact()
                    return None
                if end - pos > INLINE_MAX_SIZE:
                    raise ProtocolViolation("Protocol error: too big bulk count string")
                size = _digits(bytes(buf[pos + 1 : end]))
                if size is None or size < 0 or size > self.max_bulk_len:
                    raise ProtocolViolation("Protocol error: invalid bulk length")
                self._bulk = size
                pos = end + 2
                self._pos = pos
            size = self._bulk
            if len(buf) - pos < size + 2:
                self._compact()
                return None
            if buf[pos + size : pos + size + 2] != b"\r\n":
                # Redis does not check the CRLF after a bulk; we do (DESIGN: strict parsers).
                raise ProtocolViolation("Protocol error: expected CRLF after bulk argument")
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
        end = buf.find(b"\n", pos)
        if end < 0:
            if len(buf) - pos > INLINE_MAX_SIZE:
                raise ProtocolViolation("Protocol error: too big inline request")
            self._compact()
            return None
        if end - pos > INLINE_MAX_SIZE:
            raise ProtocolViolation("Protocol error: too big inline request")
        line = bytes(buf[pos:end])
        self._pos = end + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        args = split_inline(line)
        if args is None:
            raise ProtocolViolation("Protocol error: unbalanced quotes in request")
        return args


_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX = b"0123456789abcdefABCDEF"
_SPACE = b" \n\r\t\x0b\x0c\x00"


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
                if c in _SPACE:
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
        out.append(b"-%b\r\n" % reply.message.encode())
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
