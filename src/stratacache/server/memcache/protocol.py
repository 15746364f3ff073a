"""Memcached's text and meta protocol, server side, sans I/O: a request parser and the
helpers that read tokens and spell replies the way memcached 1.6 does.

:class:`RequestParser` is fed bytes (``feed``) and hands out requests (``next``); it never
touches a socket. A request is a :class:`Request` (its tokens, and the data block of a
storage command), or ``bytes``: a reply line the parser itself decided (``ERROR``, a
``CLIENT_ERROR`` for a malformed storage line, a bad data chunk, an object too large), or
:data:`CLOSE`: the connection must be closed (what memcached does with an over-long line
that is not a multi-get). The framing rules are memcached's (checked against a real
memcached in tests/server/test_memcache_pair.py):

* a command line ends with ``\\n`` (an ``\\r`` before it is dropped) and, as memcached reads
  it as a C string, at a NUL byte; tokens are separated by spaces only (a tab or another
  control character is part of a token), and empty tokens are skipped;
* a storage command (set add replace append prepend cas ms) is followed by a data block of
  the length its line gives, which must end with ``\\r\\n`` (else ``CLIENT_ERROR bad data
  chunk``, the block's bytes consumed); a malformed storage line is refused before any data is
  read (its data then arrives as a command line of its own, as with memcached);
* a data block over the item size limit is skipped (swallowed) as it arrives, never
  buffered whole, then answered ``SERVER_ERROR object too large for cache``.
"""

from __future__ import annotations

import binascii
from typing import Final

__all__ = [
    "CLOSE",
    "KEY_MAX_LENGTH",
    "MAX_OPAQUE_LENGTH",
    "RELATIVE_LIMIT",
    "MetaError",
    "MetaFlags",
    "Request",
    "RequestParser",
    "parse_meta_flags",
    "strtol",
    "strtoul",
    "strtoull",
]

KEY_MAX_LENGTH: Final = 250
"""Memcached's longest key, in bytes."""
MAX_OPAQUE_LENGTH: Final = 31
"""Longest opaque of a meta command (memcached caps the ``O`` token, flag included, at 32)."""
RELATIVE_LIMIT: Final = 60 * 60 * 24 * 30
"""An exptime up to 30 days is relative to now; above, a Unix time."""
_LINE_LIMIT = 2048
"""Bytes without a newline after which a line that is no multi-get closes the connection."""
_GET_LINE_LIMIT = 4 * 1024 * 1024
"""Longest multi-get line accepted (memcached's is unbounded; ours must not be)."""

CLOSE: Final = object()
"""What :meth:`RequestParser.next` returns when the connection must be closed."""

_ERROR = b"ERROR\r\n"
_BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
_BAD_CHUNK = b"CLIENT_ERROR bad data chunk\r\n"
_TOO_LARGE = b"SERVER_ERROR object too large for cache\r\n"
_STORAGE = frozenset({b"set", b"add", b"replace", b"append", b"prepend"})
_SPACES = b" \t\n\v\f\r"
_U64 = 1 << 64


class Request:
    """One command: its tokens (the name first) and, for a storage command, its data. An
    ``ms`` whose data block was refused has ``data`` None and ``error`` the framing error
    line, which its handler answers unless its flags are wrong (memcached checks them first)."""

    __slots__ = ("data", "error", "tokens")

    def __init__(self, tokens: list[bytes], data: bytes | None = None, error: bytes = b"") -> None:
        self.tokens = tokens
        self.data = data
        self.error = error

    def __repr__(self) -> str:
        return f"Request({self.tokens!r}, {self.data!r})"


def _c_integer(text: bytes) -> int | None:
    """The integer C's strtoll-based checks of memcached accept: leading spaces, a sign,
    digits, then the end of the text or a space. Unbounded; None when invalid."""
    index = 0
    size = len(text)
    while index < size and text[index] in _SPACES:
        index += 1
    start = index
    if index < size and text[index] in b"+-":
        index += 1
    digits = index
    while index < size and 48 <= text[index] <= 57:
        index += 1
    if index == digits or (index < size and text[index] not in _SPACES):
        return None
    return int(text[start:index])


def strtoull(text: bytes) -> int | None:
    """``safe_strtoull`` of memcached: a uint64 in decimal, leading spaces and a sign allowed,
    the end of the text or a space after the digits; a negative number is refused unless it
    wraps to a small one (``-0``). None when invalid."""
    if len(text) < 20 and text.isdigit():  # the common case, without the scan
        return int(text)
    value = _c_integer(text)
    if value is None or abs(value) >= _U64:
        return None
    if value < 0:
        value %= _U64
        if value >= 1 << 63:
            return None
    return value


def strtoul(text: bytes) -> int | None:
    """``safe_strtoul`` (a uint32 where memcached reads one, e.g. client flags in ``set``): the
    64-bit parse, truncated to 32 bits as memcached stores it. None when invalid."""
    value = strtoull(text)
    if value is None:
        return None
    return value & 0xFFFFFFFF


def strtol(text: bytes) -> int | None:
    """``safe_strtol``: a signed 32-bit integer (exptimes, lengths, TTL tokens). As memcached:
    any 64-bit number is read, then truncated to 32 bits (4294967295 is -1). None when
    invalid."""
    if len(text) < 10 and text.isdigit():  # the common case, without the scan
        return int(text)
    value = _c_integer(text)
    if value is None or not -(1 << 63) <= value < 1 << 63:
        return None
    return ((value + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


class RequestParser:
    """Memcached requests out of a byte stream (see the module docstring)."""

    __slots__ = ("_after_swallow", "_buf", "_pos", "_swallow", "max_item_size")

    def __init__(self, max_item_size: int) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._swallow = 0
        # What a refused data block answers once it has been skipped (memcached's timing).
        self._after_swallow: Request | bytes = b""
        self.max_item_size = max_item_size

    @property
    def buffered(self) -> int:
        """Bytes received and not parsed yet."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        """Add received bytes."""
        if self._pos > 65536 and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next(self) -> Request | bytes | object | None:
        """The next request, a reply line decided here, :data:`CLOSE`, or None (need more)."""
        buf = self._buf
        pos = self._pos
        if self._swallow:
            take = min(self._swallow, len(buf) - pos)
            self._swallow -= take
            pos += take
            self._pos = pos
            if self._swallow:
                return None
            after, self._after_swallow = self._after_swallow, b""
            return after
        newline = buf.find(b"\n", pos)
        if newline < 0:
            pending = len(buf) - pos
            if pending > _LINE_LIMIT:
                head = bytes(buf[pos : pos + 110])
                stripped = head.lstrip(b" ")
                if (
                    len(head) - len(stripped) > 100
                    or not (stripped.startswith((b"get ", b"gets ")))
                    or pending > _GET_LINE_LIMIT
                ):
                    return CLOSE
            return None
        end = newline - 1 if newline > pos and buf[newline - 1] == 13 else newline
        line = bytes(buf[pos:end])
        if b"\0" in line:  # memcached reads the line as a C string: a NUL ends it
            line = line[: line.index(b"\0")]
        tokens = [token for token in line.split(b" ") if token]
        start = newline + 1
        if not tokens:
            self._pos = start
            return _ERROR
        name = tokens[0]
        if name in _STORAGE:
            if len(tokens) not in (5, 6):
                self._pos = start
                return _ERROR
            length = self._storage_length(tokens, 4)
        elif name == b"cas":
            if len(tokens) not in (6, 7):
                self._pos = start
                return _ERROR
            length = self._storage_length(tokens, 4)
            if isinstance(length, int) and strtoull(tokens[5]) is None:
                length = _BAD_FORMAT
        elif name == b"ms":
            if len(tokens) < 2:
                self._pos = start
                return _ERROR
            length = _BAD_FORMAT
            if len(tokens) >= 3 and len(tokens[1]) <= KEY_MAX_LENGTH:
                size = strtol(tokens[2])
                if size is not None and size >= 0:
                    length = size
        else:
            self._pos = start
            return Request(tokens)
        # A classic storage command's errors obey its noreply (an unknown command's do not).
        quiet = name != b"ms" and tokens[-1] == b"noreply"
        if not isinstance(length, int):
            self._pos = start
            return b"" if quiet else length
        if length > self.max_item_size:
            # Refused, its data skipped as it comes (never buffered whole); the answer goes
            # out once it is skipped, as memcached's.
            self._pos = start
            self._swallow = length + 2
            if name == b"ms":
                self._after_swallow = Request(tokens, None, _TOO_LARGE)
            else:
                self._after_swallow = b"" if quiet else _TOO_LARGE
            return self.next()
        stop = start + length + 2
        if len(buf) < stop:
            return None
        self._pos = stop
        if buf[stop - 2 : stop] != b"\r\n":
            if name == b"ms":  # its flags are checked first: the handler says which error
                return Request(tokens, None, _BAD_CHUNK)
            return b"" if quiet else _BAD_CHUNK
        return Request(tokens, bytes(buf[start : stop - 2]))

    @staticmethod
    def _storage_length(tokens: list[bytes], at: int) -> int | bytes:
        """The data length of a classic storage line, or the error line that refuses it."""
        if len(tokens[1]) > KEY_MAX_LENGTH:
            return _BAD_FORMAT
        if strtoul(tokens[2]) is None or strtol(tokens[3]) is None:
            return _BAD_FORMAT
        length = strtol(tokens[at])
        if length is None or length < 0:
            return _BAD_FORMAT
        return length


# ----------------------------------------------------------------------- meta flags


class MetaError(Exception):
    """A meta command's flags are invalid; ``line`` is memcached's error reply."""

    def __init__(self, line: bytes) -> None:
        super().__init__(line)
        self.line = line


# The flags the meta commands know (memcached 1.6's preparse, plus E); any other is invalid.
_KNOWN = frozenset(b"bNTRlOPLkstcfvhuqFCMJDIE")
_BAD_TOKEN = b"CLIENT_ERROR bad token in command line format\r\n"


class MetaFlags:
    """The flags of one meta command, parsed: ``order`` lists the flag characters as given
    (return flags are echoed in that order); the numeric tokens are parsed."""

    __slots__ = (
        "base64",
        "cas",
        "delta",
        "flags",
        "initial",
        "invalidate",
        "mode",
        "new_cas",
        "opaque",
        "order",
        "quiet",
        "recache",
        "ttl",
        "value",
        "vivify",
    )

    def __init__(self) -> None:
        self.order: list[int] = []
        self.base64 = False
        self.quiet = False
        self.value = False
        self.invalidate = False
        self.opaque = b""
        self.ttl: int | None = None
        self.vivify: int | None = None
        self.recache: int | None = None
        self.cas: int | None = None
        self.new_cas: int | None = None
        self.flags: int | None = None
        self.mode: int | None = None
        self.initial = 0
        self.delta = 1


def parse_meta_flags(tokens: list[bytes], start: int) -> MetaFlags:
    """Parse ``tokens[start:]`` as meta flags (memcached's ``_meta_flag_preparse``).

    Raises :class:`MetaError` with memcached's line: ``duplicate flag`` and ``invalid flag``
    at once; a bad token's error after the whole scan (the last one wins, as in memcached).
    """
    parsed = MetaFlags()
    seen: set[int] = set()
    error: bytes | None = None
    for token in tokens[start:]:
        char = token[0]
        if char >= 127 or char in seen:
            raise MetaError(b"CLIENT_ERROR duplicate flag\r\n")
        if char not in _KNOWN:
            raise MetaError(b"CLIENT_ERROR invalid flag\r\n")
        seen.add(char)
        parsed.order.append(char)
        rest = token[1:]
        if char == 98:  # b
            parsed.base64 = True
        elif char == 113:  # q
            parsed.quiet = True
        elif char == 118:  # v
            parsed.value = True
        elif char == 73:  # I
            parsed.invalidate = True
        elif char == 79:  # O
            parsed.opaque = rest
        elif char in b"NTR":
            number = strtol(rest)
            if number is None:
                error = _BAD_TOKEN
            elif char == 78:
                parsed.vivify = number
            elif char == 84:
                parsed.ttl = number
            else:
                parsed.recache = number
        elif char == 70:  # F
            flags = strtoul(rest)
            if flags is None:
                error = _BAD_FORMAT
            else:
                parsed.flags = flags
        elif char in b"CE":
            number = strtoull(rest)
            if number is None:
                error = _BAD_TOKEN
            elif char == 67:
                parsed.cas = number
            else:
                parsed.new_cas = number
        elif char == 77:  # M
            if len(token) != 2:
                error = b"CLIENT_ERROR incorrect length for M token\r\n"
            else:
                parsed.mode = token[1]
        elif char == 74:  # J
            number = strtoull(rest)
            if number is None:
                error = b"CLIENT_ERROR invalid numeric initial value\r\n"
            else:
                parsed.initial = number
        elif char == 68:  # D
            number = strtoull(rest)
            if number is None:
                error = b"CLIENT_ERROR invalid numeric delta value\r\n"
            else:
                parsed.delta = number
    if error is not None:
        raise MetaError(error)
    return parsed


_BASE64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_DECODE_ERROR = b"CLIENT_ERROR error decoding key\r\n"


def decode_key(token: bytes, base64: bool) -> bytes:
    """A meta command's key: the token, or its base64 decoding with ``b``, as memcached's
    decoder does it: other characters are skipped, the rest must be whole groups of four,
    decoding stops after a padded group, and an empty result is an error."""
    if not base64:
        return token
    chars = bytes(char for char in token if char in _BASE64_CHARS)
    if not chars or len(chars) % 4:
        raise MetaError(_DECODE_ERROR)
    out = bytearray()
    try:
        for index in range(0, len(chars), 4):
            group = chars[index : index + 4]
            out += binascii.a2b_base64(group, strict_mode=True)
            if 61 in group:  # "=": the end
                break
    except (binascii.Error, ValueError):
        raise MetaError(_DECODE_ERROR) from None
    if not out:
        raise MetaError(_DECODE_ERROR)
    return bytes(out)


def encode_key(key: bytes, base64: bool) -> bytes:
    """A key as a meta reply's ``k`` flag shows it (base64 followed by `` b`` with ``b``)."""
    if base64:
        return b"k" + binascii.b2a_base64(key, newline=False) + b" b"
    return b"k" + key
