"""Memcached's text protocol, sans I/O: request encoding and an incremental response parser.

The asyncio client in ``stratacache._drivers.memcached_async`` writes the bytes built here
and feeds what it reads to :class:`ResponseParser` (``receive_data(bytes)`` /
``next_event()``, as in h11); nothing in this module touches a socket, so it is tested fed
whole, one byte at a time and with trailing bytes.

Design notes:

* **Context-free parsing.** Every reply line is self-describing: ``VALUE <key> <flags>
  <bytes> [<cas>]`` and ``VA <bytes> <flags>*`` announce a data block of known length; every
  other line stands alone. So the parser needs no knowledge of what was asked, and a client
  counts *terminal* events (anything but :class:`Value` and :class:`Stat`) to know when a
  request - or a pipeline of them - is complete.
* **Strict.** Lines must end in ``\\r\\n`` (a bare ``\\n`` is an error); a data block must be
  followed by exactly ``\\r\\n``; lengths are decimal, non-negative and capped
  (``max_value_size``); a line longer than ``MAX_LINE`` without ``\\r\\n`` is an error rather
  than unbounded buffering. Any violation raises :class:`ProtocolViolation` and the
  connection must be dropped: after a framing error nothing that follows can be trusted.
* **Keys are checked again here**, whatever the caller did: a key with whitespace or a control
  character, or over 250 bytes, is refused by the encoder, so no key can inject a command.
* Error lines (``ERROR``, ``CLIENT_ERROR ...``, ``SERVER_ERROR ...``) are events
  (:class:`ErrorReply`), not exceptions: in a pipeline one failed command does not desync
  the others, and the caller decides what the error means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MAX_LINE",
    "RELATIVE_EXPTIME_LIMIT",
    "End",
    "ErrorReply",
    "Event",
    "Line",
    "MemcachedReplyError",
    "MetaValue",
    "NodeSettings",
    "ProtocolViolation",
    "ResponseParser",
    "Stat",
    "Value",
    "check_key",
    "encode_arith",
    "encode_delete",
    "encode_meta",
    "encode_retrieval",
    "encode_storage",
    "encode_touch",
    "exptime",
    "is_terminal",
    "parse_values",
]

#: Longest reply line accepted (a VALUE line is at most ~300 bytes; STAT lines are short).
MAX_LINE = 8192
#: Memcached reads an exptime above 30 days as an absolute unix time.
RELATIVE_EXPTIME_LIMIT = 30 * 24 * 3600
_DEFAULT_MAX_VALUE = 1 << 30

_BAD_KEY = re.compile(rb"[\x00-\x20\x7f]").search
_DIGITS = re.compile(rb"[0-9]+").fullmatch
# A VALUE line of a get reply (no cas): key, flags, length. Used by parse_values only.
_VALUE_LINE = re.compile(rb"VALUE ([!-~]{1,250}) ([0-9]{1,10}) ([0-9]{1,10})").fullmatch


class ProtocolViolation(Exception):
    """The bytes received are not valid memcached protocol; drop the connection."""


class MemcachedReplyError(Exception):
    """The server answered a command with ``ERROR``, ``CLIENT_ERROR`` or ``SERVER_ERROR``.

    ``kind`` is that first word and ``message`` the rest (``"object too large for cache"``).
    Raised by the driver adapters; the backend turns it into the stratacache exception
    that fits (ValueTooLarge, WrongType, ...).
    """

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message
        super().__init__(f"{kind} {message}".strip())


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Value:
    """One ``VALUE`` block of a get/gets reply (``cas`` is None for get)."""

    key: bytes
    flags: int
    data: bytes
    cas: int | None


@dataclass(frozen=True, slots=True)
class MetaValue:
    """A meta-command reply: ``status`` (HD, VA, EN, NF, NS, EX, MN), its flag tokens, data.

    ``data`` is the value block of a ``VA`` reply, else None. Terminal.
    """

    status: bytes
    flags: tuple[bytes, ...]
    data: bytes | None

    def flag(self, letter: bytes) -> bytes | None:
        """The token of return flag ``letter`` without its letter (``b"t"`` -> ``b"-1"``)."""
        for token in self.flags:
            if token[:1] == letter:
                return token[1:]
        return None


@dataclass(frozen=True, slots=True)
class Stat:
    """One ``STAT <name> <value>`` line of a stats reply (not terminal; ``END`` follows)."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class End:
    """``END``: the end of a get/gets/stats reply. Terminal."""


@dataclass(frozen=True, slots=True)
class Line:
    """Any other single-line reply: ``STORED``, ``NOT_FOUND``, ``DELETED``, ``42``, ``OK`` ... Terminal."""

    text: bytes


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """``ERROR``, ``CLIENT_ERROR <msg>`` or ``SERVER_ERROR <msg>``. Terminal."""

    kind: str
    message: str

    def exception(self) -> MemcachedReplyError:
        """The matching :class:`MemcachedReplyError`."""
        return MemcachedReplyError(self.kind, self.message)


Event = Value | MetaValue | Stat | End | Line | ErrorReply

_END = End()
_META_STATUS = frozenset((b"HD", b"VA", b"EN", b"NF", b"NS", b"EX", b"MN"))


# ----------------------------------------------------------------------------- settings


class NodeSettings:
    """Where one memcached server is and how a driver talks to it: the settings both
    drivers (sync on pymemcache, async on asyncio) share, kept in one place."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        pool_size: int = 8,
        connect_timeout: float = 1.0,
        timeout: float = 1.0,
        max_value_size: int = 1 << 20,
    ) -> None:
        """Record the settings (``address`` is ``host:port``, the name errors use), then let
        the driver set up its pool (:meth:`_setup`)."""
        self.host = host
        self.port = port
        self.address = f"{host}:{port}"
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.max_value_size = max_value_size
        self._setup()

    def _setup(self) -> None:
        """A driver's own initialisation (its pool), run once the settings are in place."""


# ----------------------------------------------------------------------------- encoding


def check_key(key: bytes) -> bytes:
    """Return ``key`` if memcached can take it as one token; ValueError otherwise."""
    if not key or len(key) > 250 or _BAD_KEY(key) is not None:
        raise ValueError(f"not a valid memcached key: {key[:60]!r}")
    return key


def exptime(ttl: float | None, now: float) -> int:
    """The exptime field for a ttl in seconds (None: 0, never expire).

    Rounded *up* to whole seconds (memcached's resolution), so an entry never expires early;
    beyond 30 days it must be an absolute unix time (memcached's rule), from ``now``
    (``time.time()``, passed in so this stays pure).
    """
    if ttl is None:
        return 0
    seconds = max(1, -int(-ttl // 1))  # ceil without float edge cases on exact integers
    if seconds > RELATIVE_EXPTIME_LIMIT:
        return int(now) + seconds
    return seconds


def encode_retrieval(command: bytes, keys: list[bytes]) -> bytes:
    """``get``/``gets`` of one or more keys."""
    for key in keys:
        check_key(key)
    return command + b" " + b" ".join(keys) + b"\r\n"


def encode_storage(
    command: bytes,
    key: bytes,
    data: bytes,
    flags: int = 0,
    exptime: int = 0,
    *,
    cas: int | None = None,
    noreply: bool = False,
) -> bytes:
    """``set``/``add``/``replace``/``append``/``prepend``/``cas`` with its data block."""
    check_key(key)
    if not 0 <= flags < 1 << 32:
        raise ValueError(f"flags must fit in 32 bits, got {flags}")
    head = b"%s %s %d %d %d" % (command, key, flags, exptime, len(data))
    if cas is not None:
        head += b" %d" % cas
    if noreply:
        head += b" noreply"
    return head + b"\r\n" + data + b"\r\n"


def encode_delete(key: bytes) -> bytes:
    """``delete <key>``."""
    return b"delete " + check_key(key) + b"\r\n"


def encode_arith(command: bytes, key: bytes, delta: int) -> bytes:
    """``incr``/``decr`` by a delta in 0 .. 2**64-1."""
    if not 0 <= delta < 1 << 64:
        raise ValueError(f"incr/decr delta must be in 0..2**64-1, got {delta}")
    return b"%s %s %d\r\n" % (command, check_key(key), delta)


def encode_touch(key: bytes, exptime: int) -> bytes:
    """``touch <key> <exptime>``."""
    return b"touch %s %d\r\n" % (check_key(key), exptime)


def encode_meta(command: bytes, key: bytes, flags: list[bytes] | tuple[bytes, ...] = ()) -> bytes:
    """A meta command without a data block (``mg``, ``md``, ``mn``), flags as tokens (``b"t"``)."""
    for flag in flags:
        if not flag or _BAD_KEY(flag) is not None:
            raise ValueError(f"not a valid meta flag token: {flag!r}")
    parts = [command, check_key(key), *flags]
    return b" ".join(parts) + b"\r\n"


# ----------------------------------------------------------------------------- parsing


def _number(token: bytes, what: str) -> int:
    if _DIGITS(token) is None:
        raise ProtocolViolation(f"{what} is not a decimal number: {token[:40]!r}")
    return int(token)


class ResponseParser:
    """Incremental parser of memcached text replies.

    Feed it bytes with :meth:`receive_data` in whatever pieces they arrive; take complete
    events with :meth:`next_event` until it returns None (more data needed). Raises
    :class:`ProtocolViolation` on malformed input, after which the parser is unusable.
    """

    __slots__ = ("_buffer", "_max_value", "_pending", "_pos")

    def __init__(self, max_value_size: int = _DEFAULT_MAX_VALUE) -> None:
        self._buffer = bytearray()
        self._pos = 0
        self._max_value = max_value_size
        # A header line whose data block has not fully arrived: (kind, fields, size).
        self._pending: tuple[bytes, tuple[bytes, ...], int] | None = None

    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the connection."""
        if self._pos > 65536 and self._pos * 2 > len(self._buffer):
            # Compact now and then instead of on every event: slicing the front off a
            # bytearray is O(n), and replies often arrive many to a read.
            del self._buffer[: self._pos]
            self._pos = 0
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed by an event."""
        return len(self._buffer) - self._pos

    def next_event(self) -> Event | None:
        """The next complete event, or None when more bytes are needed."""
        if self._pending is not None:
            return self._finish_block()
        buffer = self._buffer
        end = buffer.find(b"\r\n", self._pos)
        if end < 0:
            newline = buffer.find(b"\n", self._pos)
            if newline >= 0:
                raise ProtocolViolation("reply line ends in a bare LF instead of CRLF")
            if len(buffer) - self._pos > MAX_LINE:
                raise ProtocolViolation(f"reply line longer than {MAX_LINE} bytes")
            return None
        line = bytes(buffer[self._pos : end])
        if b"\n" in line or b"\r" in line:
            raise ProtocolViolation(f"stray CR or LF inside a reply line: {line[:60]!r}")
        if len(line) > MAX_LINE:
            raise ProtocolViolation(f"reply line longer than {MAX_LINE} bytes")
        self._pos = end + 2
        return self._line_event(line)

    def _line_event(self, line: bytes) -> Event | None:
        head, _, rest = line.partition(b" ")
        if head == b"VALUE":
            fields = tuple(rest.split(b" "))
            if len(fields) not in (3, 4):
                raise ProtocolViolation(f"malformed VALUE line: {line[:80]!r}")
            size = _number(fields[2], "VALUE length")
            self._start_block(b"VALUE", fields, size)
            return self._finish_block()
        if head == b"END" and not rest:
            return _END
        if head == b"STAT":
            name, _, value = rest.partition(b" ")
            return Stat(name.decode("ascii", "replace"), value.decode("ascii", "replace"))
        if head in _META_STATUS:
            tokens = tuple(rest.split()) if rest else ()
            if head == b"VA":
                if not tokens:
                    raise ProtocolViolation(f"malformed VA line: {line[:80]!r}")
                self._start_block(b"VA", tokens, _number(tokens[0], "VA length"))
                return self._finish_block()
            return MetaValue(head, tokens, None)
        if head in (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR"):
            return ErrorReply(head.decode("ascii"), rest.decode("ascii", "replace"))
        if not line:
            raise ProtocolViolation("empty reply line")
        return Line(line)

    def _start_block(self, kind: bytes, fields: tuple[bytes, ...], size: int) -> None:
        if size > self._max_value:
            raise ProtocolViolation(f"value of {size} bytes is over the {self._max_value}-byte cap")
        self._pending = (kind, fields, size)

    def _finish_block(self) -> Event | None:
        assert self._pending is not None
        kind, fields, size = self._pending
        start = self._pos
        if len(self._buffer) - start < size + 2:
            return None
        if self._buffer[start + size : start + size + 2] != b"\r\n":
            raise ProtocolViolation("data block is not followed by CRLF (length mismatch)")
        data = bytes(self._buffer[start : start + size])
        self._pos = start + size + 2
        self._pending = None
        if kind == b"VA":
            return MetaValue(b"VA", fields[1:], data)
        cas = _number(fields[3], "cas unique") if len(fields) == 4 else None
        return Value(fields[0], _number(fields[1], "flags"), data, cas)


def is_terminal(event: Event) -> bool:
    """True for events that end one command's reply (all but Value and Stat)."""
    return not isinstance(event, (Value, Stat))


def parse_values(data: bytes) -> dict[bytes, tuple[bytes, int]] | None:
    """The hits ``{key: (data, flags)}`` of a ``get`` reply that ``data`` holds whole, or None.

    The sync driver's fast path: a reply to ``get`` usually arrives in one read, and
    cutting it at every CRLF in one C call leaves a regex match and a length check per
    value. A data block that contains a CRLF itself is cut short, so its length check
    fails: any such block, a partial read, an error line, a ``VALUE`` line with a cas or a
    malformed field, or bytes after ``END`` give None; the caller then feeds the same bytes
    to :class:`ResponseParser`, which reads on and reports any violation precisely. So this
    accepts a subset of what the parser accepts.
    """
    if data == b"END\r\n":  # a miss
        return {}
    parts = data.split(b"\r\n")
    # [header, block, header, block, ..., b"END", b""]
    if len(parts) & 1 or parts[-2] != b"END" or parts[-1]:
        return None
    found: dict[bytes, tuple[bytes, int]] = {}
    for i in range(0, len(parts) - 2, 2):
        match = _VALUE_LINE(parts[i])
        block = parts[i + 1]
        if match is None or int(match[3]) != len(block):
            return None
        found[match[1]] = block, int(match[2])
    return found
