"""String commands: GET SET (EX PX EXAT PXAT NX XX KEEPTTL GET) GETSET GETDEL GETEX MGET MSET
MSETNX SETNX SETEX PSETEX APPEND STRLEN GETRANGE SETRANGE INCR INCRBY INCRBYFLOAT DECR DECRBY,
with Redis 7's semantics and error texts.

INCRBYFLOAT computes as Redis does, in x87 80-bit ``long double`` (64-bit mantissa), and prints
with ``%.17Lf`` less trailing zeros: the arithmetic is emulated exactly on rationals (parse as
``strtold``, round to 64 bits, add, round, print), so results are Redis's digit for digit
(``10.5``, ``3``, ``5.0e3`` becomes ``5000``, ``0.1 + 0.2`` is ``0.3``).
"""

from __future__ import annotations

import re
import time
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..errors import NOT_FLOAT, SYNTAX, invalid_expire, wrong_arity
from ..keyspace import skey
from ..resp import ErrorReply
from . import command
from .keys import LLONG_MAX, LLONG_MIN, now_ms, parse_ll

if TYPE_CHECKING:
    from ..connection import Client
    from ..keyspace import Database

__all__ = ["TOO_BIG", "format_long_double", "parse_long_double"]

TOO_BIG = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"


# ------------------------------------------------------------------ GET / SET


@command("get", arity=2, flags="readonly fast", keys=(1, 1, 1), group="string")
def get(client: Client, args: list[bytes]) -> Any:
    """Get the value of a key."""
    db = client.db
    value = db.get_string(skey(args[1]))
    # Counted per database only: INFO's keyspace_hits/misses are their sums.
    if value is None:
        db.misses += 1
    else:
        db.hits += 1
    return value


def _read(client: Client, db: Database, key: str) -> bytes | None:
    """A string read that counts a keyspace hit or miss (WRONGTYPE for another type)."""
    value = db.get_string(key)
    if value is None:
        db.misses += 1
    else:
        db.hits += 1
    return value


# SET's option flags.
_NX, _XX, _GET, _KEEPTTL, _EX, _PX, _EXAT, _PXAT, _PERSIST = (1 << n for n in range(9))
_EXPIRES = _EX | _PX | _EXAT | _PXAT


def _parse_set_options(args: list[bytes], start: int, *, getex: bool) -> tuple[int, bytes | None]:
    """Redis's parseExtendedStringArgumentsOrReply: (flags, the expire argument or None)."""
    flags = 0
    expire: bytes | None = None
    n = len(args)
    j = start
    while j < n:
        # Option names compare as C strings (up to a NUL), case-insensitively.
        opt = args[j].split(b"\x00", 1)[0].upper()
        has_next = j < n - 1
        if opt == b"NX" and not flags & _XX and not getex:
            flags |= _NX
        elif opt == b"XX" and not flags & _NX and not getex:
            flags |= _XX
        elif opt == b"GET" and not getex:
            flags |= _GET
        elif opt == b"KEEPTTL" and not flags & (_PERSIST | _EXPIRES) and not getex:
            flags |= _KEEPTTL
        elif opt == b"PERSIST" and getex and not flags & (_EXPIRES | _KEEPTTL):
            flags |= _PERSIST
        elif opt in _EXPIRE_OPTIONS and has_next:
            bit = _EXPIRE_OPTIONS[opt]
            if flags & (_KEEPTTL | _PERSIST | (_EXPIRES & ~bit)):
                raise ErrorReply(SYNTAX)
            flags |= bit
            expire = args[j + 1]
            j += 1
        else:
            raise ErrorReply(SYNTAX)
        j += 1
    return flags, expire


_EXPIRE_OPTIONS = {b"EX": _EX, b"PX": _PX, b"EXAT": _EXAT, b"PXAT": _PXAT}


def _expire_ms(name: str, flags: int, expire: bytes) -> int:
    """Redis's getExpireMillisecondsOrReply: the absolute expiry in Unix milliseconds."""
    when = parse_ll(expire)
    seconds = bool(flags & (_EX | _EXAT))
    if when <= 0 or (seconds and when > LLONG_MAX // 1000):
        raise invalid_expire(name)
    if seconds:
        when *= 1000
    if flags & (_EX | _PX):
        when += now_ms()
        if when > LLONG_MAX:  # Redis's signed addition wraps negative
            raise invalid_expire(name)
    return when


def _store(db: Database, key: str, value: bytes, when_ms: int | None) -> None:
    """Set ``key`` expiring at ``when_ms`` (None: never); a time already past deletes it."""
    if when_ms is None:
        db.set(key, value)
        return
    when = when_ms / 1000
    if when <= time.time():
        db.delete(key)
    else:
        db.set_at(key, value, when)


@command("set", arity=-3, flags="write denyoom", keys=(1, 1, 1), group="string")
def set_(client: Client, args: list[bytes]) -> Any:
    """Set the string value of a key (EX PX EXAT PXAT NX XX KEEPTTL GET)."""
    if len(args) == 3:
        client.db.set(skey(args[1]), args[2])
        return "OK"
    return _set_with_options(client, args)


def _set_with_options(client: Client, args: list[bytes]) -> Any:
    flags, expire = _parse_set_options(args, 3, getex=False)
    when = None if expire is None else _expire_ms("set", flags, expire)
    db = client.db
    key = skey(args[1])
    old: bytes | None = None
    if flags & _GET:
        old = db.get_string(key)  # WRONGTYPE before anything is written
        found = old is not None
    elif flags & (_NX | _XX):
        found = db.exists(key)
    else:
        found = False
    if (flags & _NX and found) or (flags & _XX and not found):
        return old if flags & _GET else None
    if flags & _KEEPTTL:
        db.set_keep_ttl(key, args[2])
    else:
        _store(db, key, args[2], when)
    return old if flags & _GET else "OK"


@command("setnx", arity=3, flags="write denyoom fast", keys=(1, 1, 1), group="string")
def setnx(client: Client, args: list[bytes]) -> Any:
    """Set a key's value only if the key does not exist; 1 when set."""
    db = client.db
    key = skey(args[1])
    if db.exists(key):
        return 0
    db.set(key, args[2])
    return 1


def _setex(client: Client, args: list[bytes], flag: int) -> Any:
    name = args[0].decode("latin-1").lower()
    when = _expire_ms(name, flag, args[2])
    _store(client.db, skey(args[1]), args[3], when)
    return "OK"


@command("setex", arity=4, flags="write denyoom", keys=(1, 1, 1), group="string", since="2.0.0")
def setex(client: Client, args: list[bytes]) -> Any:
    """Set a key's value and time to live in seconds."""
    return _setex(client, args, _EX)


@command("psetex", arity=4, flags="write denyoom", keys=(1, 1, 1), group="string", since="2.6.0")
def psetex(client: Client, args: list[bytes]) -> Any:
    """Set a key's value and time to live in milliseconds."""
    return _setex(client, args, _PX)


@command("getset", arity=3, flags="write denyoom fast", keys=(1, 1, 1), group="string")
def getset(client: Client, args: list[bytes]) -> Any:
    """Set a key's value and return the old one (the expiry is removed)."""
    db = client.db
    key = skey(args[1])
    old = db.get_string(key)
    db.set(key, args[2])
    return old


@command("getdel", arity=2, flags="write fast", keys=(1, 1, 1), group="string", since="6.2.0")
def getdel(client: Client, args: list[bytes]) -> Any:
    """Return a key's value and delete the key."""
    db = client.db
    key = skey(args[1])
    value = _read(client, db, key)
    if value is not None:
        db.delete(key)
    return value


@command("getex", arity=-2, flags="write fast", keys=(1, 1, 1), group="string", since="6.2.0")
def getex(client: Client, args: list[bytes]) -> Any:
    """Return a key's value and set or remove its expiry (EX PX EXAT PXAT PERSIST)."""
    flags, expire = _parse_set_options(args, 2, getex=True)
    db = client.db
    key = skey(args[1])
    value = _read(client, db, key)
    if value is None:
        return None
    if expire is not None:
        when = _expire_ms("getex", flags, expire)
        if when <= now_ms():
            db.delete(key)
        else:
            db.expire_at(key, when / 1000)
    elif flags & _PERSIST:
        db.persist(key)
    return value


@command("mget", arity=-2, flags="readonly fast", keys=(1, -1, 1), group="string")
def mget(client: Client, args: list[bytes]) -> Any:
    """The values of keys (nil for a missing key or one of another type)."""
    db = client.db
    db_get = db.get
    out: list[bytes | None] = []
    for arg in args[1:]:
        value = db_get(skey(arg))
        if type(value) is bytes:
            db.hits += 1
            out.append(value)
        else:
            db.misses += 1
            out.append(None)
    return out


def _pairs(args: list[bytes]) -> list[tuple[str, bytes]]:
    if len(args) % 2 == 0:
        raise wrong_arity(args[0].decode("latin-1").lower())
    return [(skey(args[i]), args[i + 1]) for i in range(1, len(args), 2)]


@command("mset", arity=-3, flags="write denyoom", keys=(1, -1, 2), group="string")
def mset(client: Client, args: list[bytes]) -> Any:
    """Set several keys (each loses its expiry)."""
    db_set = client.db.set
    for key, value in _pairs(args):
        db_set(key, value)
    return "OK"


@command("msetnx", arity=-3, flags="write denyoom", keys=(1, -1, 2), group="string")
def msetnx(client: Client, args: list[bytes]) -> Any:
    """Set several keys only if none of them exists; 1 when set."""
    pairs = _pairs(args)
    db = client.db
    if any(db.exists(key) for key, _ in pairs):
        return 0
    for key, value in pairs:
        db.set(key, value)
    return 1


# ------------------------------------------------------------------ substrings


@command("strlen", arity=2, flags="readonly fast", keys=(1, 1, 1), group="string", since="2.2.0")
def strlen(client: Client, args: list[bytes]) -> Any:
    """The length of a key's value (0 when absent)."""
    value = _read(client, client.db, skey(args[1]))
    return 0 if value is None else len(value)


@command("append", arity=3, flags="write denyoom", keys=(1, 1, 1), group="string", since="2.0.0")
def append(client: Client, args: list[bytes]) -> Any:
    """Append to a key's value (keeping its expiry); the new length."""
    db = client.db
    key = skey(args[1])
    value = db.get_string(key)
    if value is None:
        db.set(key, args[2])
        return len(args[2])
    _check_length(client, len(value), len(args[2]))
    value += args[2]
    db.set_keep_ttl(key, value)
    return len(value)


def _check_length(client: Client, size: int, extra: int) -> None:
    if size + extra > client.server.config.proto_max_bulk_len:
        raise ErrorReply(TOO_BIG)


@command("getrange", arity=4, flags="readonly", keys=(1, 1, 1), group="string", since="2.4.0")
def getrange(client: Client, args: list[bytes]) -> Any:
    """A substring of a key's value by inclusive byte offsets (negative: from the end)."""
    start = parse_ll(args[2])
    end = parse_ll(args[3])
    value = _read(client, client.db, skey(args[1]))
    if value is None:
        return b""
    size = len(value)
    if start < 0 and end < 0 and start > end:
        return b""
    if start < 0:
        start += size
    if end < 0:
        end += size
    start = max(start, 0)
    end = max(end, 0)
    end = min(end, size - 1)
    if start > end or size == 0:
        return b""
    return value[start : end + 1]


@command("setrange", arity=4, flags="write denyoom", keys=(1, 1, 1), group="string", since="2.2.0")
def setrange(client: Client, args: list[bytes]) -> Any:
    """Overwrite part of a key's value at an offset (zero-padded); the new length."""
    offset = parse_ll(args[2])
    if offset < 0:
        raise ErrorReply("ERR offset is out of range")
    patch = args[3]
    db = client.db
    key = skey(args[1])
    value = db.get_string(key)
    if value is None:
        if not patch:
            return 0
        _check_length(client, offset, len(patch))
        db.set(key, bytes(offset) + patch)
        return offset + len(patch)
    if not patch:
        return len(value)
    _check_length(client, offset, len(patch))
    if offset > len(value):
        new = value + bytes(offset - len(value)) + patch
    else:
        new = value[:offset] + patch + value[offset + len(patch) :]
    db.set_keep_ttl(key, new)
    return len(new)


# ------------------------------------------------------------------ counters


def _incr(client: Client, key_arg: bytes, delta: int) -> int:
    db = client.db
    key = skey(key_arg)
    value = db.get_string(key)
    current = 0 if value is None else parse_ll(value)
    if (delta < 0 and current < 0 and delta < LLONG_MIN - current) or (
        delta > 0 and current > 0 and delta > LLONG_MAX - current
    ):
        raise ErrorReply("ERR increment or decrement would overflow")
    current += delta
    if value is None:
        db.set(key, b"%d" % current)
    else:
        db.set_keep_ttl(key, b"%d" % current)
    return current


@command("incr", arity=2, flags="write denyoom fast", keys=(1, 1, 1), group="string")
def incr(client: Client, args: list[bytes]) -> Any:
    """Add 1 to a key's integer value."""
    return _incr(client, args[1], 1)


@command("decr", arity=2, flags="write denyoom fast", keys=(1, 1, 1), group="string")
def decr(client: Client, args: list[bytes]) -> Any:
    """Subtract 1 from a key's integer value."""
    return _incr(client, args[1], -1)


@command("incrby", arity=3, flags="write denyoom fast", keys=(1, 1, 1), group="string")
def incrby(client: Client, args: list[bytes]) -> Any:
    """Add an integer to a key's integer value."""
    return _incr(client, args[1], parse_ll(args[2]))


@command("decrby", arity=3, flags="write denyoom fast", keys=(1, 1, 1), group="string")
def decrby(client: Client, args: list[bytes]) -> Any:
    """Subtract an integer from a key's integer value."""
    delta = parse_ll(args[2])
    if delta == LLONG_MIN:
        raise ErrorReply("ERR decrement would overflow")
    return _incr(client, args[1], -delta)


@command("incrbyfloat", arity=3, flags="write denyoom fast", keys=(1, 1, 1), group="string", since="2.6.0")
def incrbyfloat(client: Client, args: list[bytes]) -> Any:
    """Add a decimal number to a key's numeric value (computed in long double, as Redis)."""
    db = client.db
    key = skey(args[1])
    value = db.get_string(key)
    current = Fraction(0) if value is None else parse_long_double(value)
    increment = parse_long_double(args[2])
    if current is _INF or increment is _INF:
        raise ErrorReply("ERR increment would produce NaN or Infinity")
    total = _round_ld(current + increment)
    if total is _INF:
        raise ErrorReply("ERR increment would produce NaN or Infinity")
    text = format_long_double(total)
    if value is None:
        db.set(key, text)
    else:
        db.set_keep_ttl(key, text)
    return text


# ------------------------------------------------ long double, exactly as x87

_INF = Fraction(2) ** 16384  # a marker for +-inf (the first value past long double's range)
_MANTISSA = 64
_MIN_EXP = -16445  # the smallest subnormal is 2**-16445
_DEC = re.compile(rb"([+-]?)(?:(\d+)\.?(\d*)|\.(\d+))(?:[eE]([+-]?\d+))?")
_HEX = re.compile(rb"([+-]?)0[xX](?:([0-9a-fA-F]+)\.?([0-9a-fA-F]*)|\.([0-9a-fA-F]+))(?:[pP]([+-]?\d+))?")
_INF_WORDS = re.compile(rb"[+-]?(?:inf|infinity)", re.IGNORECASE)
_MAX_CHARS = 5 * 1024  # Redis's MAX_LONG_DOUBLE_CHARS


def _round_ld(value: Fraction) -> Fraction:
    """``value`` rounded to the nearest long double (ties to even); ``_INF`` past the range."""
    if value == 0:
        return value
    sign = -1 if value < 0 else 1
    mag = abs(value)
    # floor(log2(mag)), from the bit lengths, corrected by one comparison.
    exp = mag.numerator.bit_length() - mag.denominator.bit_length()
    if Fraction(2) ** exp > mag:
        exp -= 1
    quantum = max(exp - (_MANTISSA - 1), _MIN_EXP)
    scaled = mag / Fraction(2) ** quantum
    units = round(scaled)  # Fraction.__round__: ties to even
    result = units * Fraction(2) ** quantum
    if result >= _INF:
        return _INF
    return sign * result


def parse_long_double(text: bytes) -> Fraction:
    """Redis's ``string2ld``: ``strtold`` over the whole string, no leading space, no NaN,
    no overflow, no underflow to zero; ``_INF`` for an infinity. NOT_FLOAT otherwise."""
    if not text or len(text) >= _MAX_CHARS or text[:1].isspace():
        raise ErrorReply(NOT_FLOAT)
    if _INF_WORDS.fullmatch(text):
        return _INF
    found = _DEC.fullmatch(text)
    if found is not None:
        sign, whole, frac, only_frac, exp = found.groups()
        digits = (whole or b"") + (frac if whole is not None else only_frac)
        scale = len(frac) if whole is not None else len(only_frac)
        base, power = 10, _exponent(exp) - scale
    else:
        found = _HEX.fullmatch(text)
        if found is None:
            raise ErrorReply(NOT_FLOAT)
        sign, whole, frac, only_frac, exp = found.groups()
        digits = (whole or b"") + (frac if whole is not None else only_frac)
        scale = len(frac) if whole is not None else len(only_frac)
        base, power = 2, _exponent(exp) - 4 * scale
    digits = digits.lstrip(b"0")
    if not digits:
        return Fraction(0)
    mantissa = _parse_digits(digits, 16 if base == 2 else 10)
    # Decide overflow/underflow from the magnitude before building a huge power.
    top = power + (mantissa.bit_length() if base == 2 else len(digits))  # value < base**top
    limit = 16400 if base == 2 else 4940
    low = -16500 if base == 2 else -4970
    if top > limit:
        raise ErrorReply(NOT_FLOAT)
    if top < low:
        raise ErrorReply(NOT_FLOAT)
    value = Fraction(mantissa) * Fraction(base) ** power
    rounded = _round_ld(value)
    if rounded is _INF or rounded == 0:
        raise ErrorReply(NOT_FLOAT)  # ERANGE: HUGE_VAL or a nonzero that rounds to zero
    return -rounded if sign == b"-" else rounded


def _exponent(text: bytes | None) -> int:
    """An exponent's value; a huge one (any number of digits) is clamped far past the range."""
    if not text:
        return 0
    if len(text.lstrip(b"+-").lstrip(b"0")) > 12:
        return -(10**13) if text[:1] == b"-" else 10**13
    return int(text)


def _parse_digits(digits: bytes, base: int) -> int:
    """int(digits, base) for up to 5k digits (above Python's 4300-digit guard)."""
    value = 0
    for i in range(0, len(digits), 1000):
        chunk = digits[i : i + 1000]
        value = value * base ** len(chunk) + int(chunk, base)
    return value


def _decimal(n: int) -> bytes:
    """The decimal digits of ``n >= 0``, also past Python's 4300-digit guard."""
    if n < 10**4000:
        return b"%d" % n
    high, low = divmod(n, 10**4000)
    return _decimal(high) + b"%04000d" % low


def format_long_double(value: Fraction) -> bytes:
    """``%.17Lf`` (exact, half to even), trailing zeros and a trailing point removed, -0 as 0."""
    units = round(abs(value) * 10**17)
    if units == 0:
        return b"0"
    whole, frac = divmod(units, 10**17)
    text = _decimal(whole) + b".%017d" % frac
    text = text.rstrip(b"0").rstrip(b".")
    return b"-" + text if value < 0 else text
