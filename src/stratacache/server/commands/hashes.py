"""Hash commands (HSET HGET HINCRBYFLOAT HRANDFIELD ...), the hash value type, and the
numeric parsers the collection families share.

Numbers are read as Redis reads them, because clients see the difference:

* :func:`parse_ll` is Redis's ``string2ll``: an optional ``-``, no ``+``, no leading zeros,
  no spaces, within a signed 64-bit integer;
* :func:`parse_ld` is Redis's ``string2ld`` over glibc's ``strtold``: decimal and hex floats,
  ``inf``/``infinity``, correctly rounded to the x87 80-bit long double (64-bit significand),
  rejecting NaN, overflow and underflow to zero;
* :func:`format_ld_human` is ``ld2string(LD_STR_HUMAN)``: ``%.17Lf`` with the trailing zeros
  dropped, which is what HINCRBYFLOAT stores (so ``0.1 + 0.2`` is ``0.3``, as in Redis, not
  Python's ``0.30000000000000004``).

Values are exact :class:`~fractions.Fraction` objects rounded to the long double grid, so
results are digit for digit Redis's (the real server's 4,900-digit results included).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..errors import NOT_FLOAT, NOT_INTEGER, SYNTAX, wrong_arity
from ..keyspace import RedisValue, skey
from ..resp import ErrorReply
from ..scan import empty_scan, parse_cursor, parse_scan_options, scan_reply
from . import command

if TYPE_CHECKING:
    from ..connection import Client

__all__ = [
    "HASH_MAX_LISTPACK_ENTRIES",
    "HASH_MAX_LISTPACK_VALUE",
    "LD_INF",
    "HashValue",
    "format_ld_human",
    "parse_ld",
    "parse_ll",
]

HASH_MAX_LISTPACK_ENTRIES = 512
"""Redis's default ``hash-max-listpack-entries``: more fields make a hashtable."""
HASH_MAX_LISTPACK_VALUE = 64
"""Redis's default ``hash-max-listpack-value``: a longer field or value makes a hashtable."""

# Bytes a field/value pair costs beyond its data: two bytes objects (33 each) and a dict slot.
_PAIR_OVERHEAD = 100

LLONG_MAX = (1 << 63) - 1
LLONG_MIN = -(1 << 63)

# ----------------------------------------------------------------------------- numbers


def parse_ll(data: bytes) -> int | None:
    """``data`` as Redis's ``string2ll`` reads it, or None."""
    n = len(data)
    if n == 0 or n > 20:
        return None
    if n == 1:
        return data[0] - 48 if 48 <= data[0] <= 57 else None
    body = data[1:] if data[0] == 45 else data  # '-'
    if not body.isdigit() or body[0] == 48:  # digits only, no leading zero (nor "-0")
        return None
    value = int(data)
    if value > LLONG_MAX or value < LLONG_MIN:
        return None
    return value


def get_ll(data: bytes, message: str = NOT_INTEGER) -> int:
    """``data`` as a 64-bit integer, else ``ErrorReply(message)``."""
    value = parse_ll(data)
    if value is None:
        raise ErrorReply(message)
    return value


class _Inf:
    """An infinite long double (the sign is :attr:`negative`)."""

    __slots__ = ("negative",)

    def __init__(self, negative: bool) -> None:
        self.negative = negative


LD_INF = _Inf(False)
"""+inf, as :func:`parse_ld` returns it."""
_LD_NINF = _Inf(True)

_LD_MANT = 64  # significand bits of the x87 extended format
_LD_EMIN = -16382  # smallest normal exponent
_LD_LIMIT = Fraction(2) ** 16384  # values rounded to this or beyond overflow

_DEC = re.compile(rb"([+-]?)(?:(\d+)\.?(\d*)|\.(\d+))(?:[eE]([+-]?\d+))?")
_HEX = re.compile(rb"([+-]?)0[xX](?:([0-9a-fA-F]+)\.?([0-9a-fA-F]*)|\.([0-9a-fA-F]+))(?:[pP]([+-]?\d+))?")
_INF = re.compile(rb"([+-]?)(?:inf|infinity)", re.IGNORECASE)


def ld_round(value: Fraction) -> Fraction | _Inf:
    """``value`` rounded to the nearest long double (ties to even); an infinity on overflow."""
    if value == 0:
        return value
    negative = value < 0
    a = -value if negative else value
    num, den = a.numerator, a.denominator
    exp = num.bit_length() - den.bit_length()
    if exp >= 0:
        if num < den << exp:
            exp -= 1
    elif num << -exp < den:
        exp -= 1
    exp = max(exp, _LD_EMIN)  # below: subnormal, a fixed quantum
    q = exp - (_LD_MANT - 1)
    if q >= 0:
        m, r = divmod(num, den << q)
        half = den << q
    else:
        m, r = divmod(num << -q, den)
        half = den
    if 2 * r > half or (2 * r == half and m & 1):
        m += 1
    result = Fraction(m << q) if q >= 0 else Fraction(m, 1 << -q)
    if result >= _LD_LIMIT:
        return _LD_NINF if negative else LD_INF
    return -result if negative else result


def parse_ld(data: bytes) -> Fraction | _Inf | None:
    """``data`` as Redis's ``string2ld`` reads it (exact value of the long double), or None."""
    if not data or len(data) >= 5 * 1024:
        return None
    match = _DEC.fullmatch(data)
    if match is not None:
        sign, whole, frac, only_frac, exp_text = match.groups()
        digits = whole + frac if only_frac is None else only_frac
        point = len(frac) if only_frac is None else len(only_frac)
        exp = int(exp_text) if exp_text else 0
        base = 10
    else:
        match = _HEX.fullmatch(data)
        if match is None:
            inf = _INF.fullmatch(data)
            if inf is None:
                return None
            return _LD_NINF if inf.group(1) == b"-" else LD_INF
        sign, whole, frac, only_frac, exp_text = match.groups()
        digits = whole + frac if only_frac is None else only_frac
        point = 4 * (len(frac) if only_frac is None else len(only_frac))
        exp = int(exp_text) if exp_text else 0
        base = 16
    stripped = digits.lstrip(b"0")
    if not stripped:
        return Fraction(0)
    mantissa = _decimal_int(stripped) if base == 10 else int(stripped, 16)
    if base == 10:
        # Order of magnitude first, so that "1e999999999" costs nothing.
        magnitude = len(stripped) - point + exp
        if magnitude > 4940:
            return None  # overflow (ERANGE, HUGE_VAL)
        if magnitude < -4960:
            return None  # underflow to zero (ERANGE)
        shift = exp - point
        value = Fraction(mantissa * 10**shift) if shift >= 0 else Fraction(mantissa, 10**-shift)
    else:
        shift = exp - point
        magnitude2 = mantissa.bit_length() + shift
        if magnitude2 > 16400:
            return None
        if magnitude2 < -16500:
            return None
        value = Fraction(mantissa << shift) if shift >= 0 else Fraction(mantissa, 1 << -shift)
    rounded = ld_round(value)
    if isinstance(rounded, _Inf) or rounded == 0:
        return None  # ERANGE: overflow or underflow to zero
    return -rounded if sign == b"-" else rounded


# Python refuses int/str conversions past 4,300 digits (a guard against quadratic work);
# long doubles reach 4,933 digits, so the conversions go by chunks.
_CHUNK = 4000
_CHUNK_POWER = 10**_CHUNK


def _decimal_int(digits: bytes) -> int:
    value = 0
    for start in range(0, len(digits), _CHUNK):
        chunk = digits[start : start + _CHUNK]
        value = value * 10 ** len(chunk) + int(chunk)
    return value


def _int_text(value: int) -> str:
    if value < _CHUNK_POWER:
        return str(value)
    high, low = divmod(value, _CHUNK_POWER)
    return _int_text(high) + str(low).zfill(_CHUNK)


def format_ld_human(value: Fraction) -> bytes:
    """``value`` as ``ld2string(LD_STR_HUMAN)`` writes it: ``%.17Lf``, trailing zeros cut."""
    negative = value < 0
    a = -value if negative else value
    scaled = a * 10**17
    n, r = divmod(scaled.numerator, scaled.denominator)
    twice = 2 * r
    if twice > scaled.denominator or (twice == scaled.denominator and n & 1):
        n += 1
    whole, frac = divmod(n, 10**17)
    text = _int_text(whole)
    frac_text = f"{frac:017d}".rstrip("0")
    if frac_text:
        text += "." + frac_text
    if negative and text != "0":
        text = "-" + text
    return text.encode()


# ----------------------------------------------------------------------------- the type


class HashValue(RedisValue):
    """A hash: a dict of field to value, insertion-ordered as Redis's listpack is.

    ``encoding()`` follows Redis's defaults: ``listpack`` while it has at most 512 fields and
    every field and value is at most 64 bytes, then ``hashtable`` for good.
    """

    __slots__ = ("big", "fields")
    type_name = "hash"

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[bytes, bytes] = {}
        self.big = False

    def encoding(self) -> str:
        """``listpack`` or ``hashtable``."""
        return "hashtable" if self.big else "listpack"

    def __len__(self) -> int:
        return len(self.fields)

    def put(self, field: bytes, value: bytes) -> bool:
        """Set ``field``; True when it is new."""
        fields = self.fields
        old = fields.get(field)
        fields[field] = value
        if not self.big and (
            len(field) > HASH_MAX_LISTPACK_VALUE
            or len(value) > HASH_MAX_LISTPACK_VALUE
            or len(fields) > HASH_MAX_LISTPACK_ENTRIES
        ):
            self.big = True
        if old is None:
            self.nbytes += len(field) + len(value) + _PAIR_OVERHEAD
            return True
        self.nbytes += len(value) - len(old)
        return False

    def remove(self, field: bytes) -> bool:
        """Delete ``field``; True when it was there."""
        old = self.fields.pop(field, None)
        if old is None:
            return False
        self.nbytes -= len(field) + len(old) + _PAIR_OVERHEAD
        return True


def _hash(client: Client, key: str) -> HashValue | None:
    value: HashValue | None = client.db.get_typed(key, HashValue)
    return value


def _hash_for_write(client: Client, key: str) -> tuple[HashValue, bool]:
    """The hash at ``key``, or a new one (not stored yet: the bool says so)."""
    value = _hash(client, key)
    if value is None:
        return HashValue(), True
    return value, False


def _store(client: Client, key: str, value: HashValue, new: bool) -> None:
    if new:
        if value.fields:
            client.db.set(key, value)
    else:
        client.db.changed(key, value)


# ----------------------------------------------------------------------------- commands


@command("hset", arity=-4, flags="write denyoom fast", keys=(1, 1, 1), group="hash", since="2.0.0")
def hset(client: Client, args: list[bytes]) -> Any:
    """Set the values of fields of a hash; the number of fields created."""
    if len(args) % 2:
        raise wrong_arity("hset")
    key = skey(args[1])
    value, new = _hash_for_write(client, key)
    created = 0
    for i in range(2, len(args), 2):
        created += value.put(args[i], args[i + 1])
    _store(client, key, value, new)
    return created


@command("hmset", arity=-4, flags="write denyoom fast", keys=(1, 1, 1), group="hash", since="2.0.0")
def hmset(client: Client, args: list[bytes]) -> Any:
    """Set the values of fields of a hash (deprecated form of HSET); OK."""
    if len(args) % 2:
        raise wrong_arity("hmset")
    hset(client, args)
    return "OK"


@command("hsetnx", arity=4, flags="write denyoom fast", keys=(1, 1, 1), group="hash", since="2.0.0")
def hsetnx(client: Client, args: list[bytes]) -> Any:
    """Set a field of a hash only if it does not exist; 1 if set."""
    key = skey(args[1])
    value, new = _hash_for_write(client, key)
    if args[2] in value.fields:
        return 0
    value.put(args[2], args[3])
    _store(client, key, value, new)
    return 1


@command("hget", arity=3, flags="readonly fast", keys=(1, 1, 1), group="hash", since="2.0.0")
def hget(client: Client, args: list[bytes]) -> Any:
    """The value of a field of a hash."""
    value = _hash(client, skey(args[1]))
    return None if value is None else value.fields.get(args[2])


@command("hmget", arity=-3, flags="readonly fast", keys=(1, 1, 1), group="hash", since="2.0.0")
def hmget(client: Client, args: list[bytes]) -> Any:
    """The values of fields of a hash (nil for the missing ones)."""
    value = _hash(client, skey(args[1]))
    if value is None:
        return [None] * (len(args) - 2)
    get = value.fields.get
    return [get(field) for field in args[2:]]


@command("hdel", arity=-3, flags="write fast", keys=(1, 1, 1), group="hash", since="2.0.0")
def hdel(client: Client, args: list[bytes]) -> Any:
    """Delete fields of a hash; the number deleted."""
    key = skey(args[1])
    value = _hash(client, key)
    if value is None:
        return 0
    removed = 0
    for field in args[2:]:
        removed += value.remove(field)
    if removed:
        client.db.changed(key, value)
    return removed


@command("hlen", arity=2, flags="readonly fast", keys=(1, 1, 1), group="hash", since="2.0.0")
def hlen(client: Client, args: list[bytes]) -> Any:
    """The number of fields of a hash."""
    value = _hash(client, skey(args[1]))
    return 0 if value is None else len(value.fields)


@command("hexists", arity=3, flags="readonly fast", keys=(1, 1, 1), group="hash", since="2.0.0")
def hexists(client: Client, args: list[bytes]) -> Any:
    """1 if the field exists in the hash."""
    value = _hash(client, skey(args[1]))
    return int(value is not None and args[2] in value.fields)


@command("hgetall", arity=2, flags="readonly", keys=(1, 1, 1), group="hash", since="2.0.0")
def hgetall(client: Client, args: list[bytes]) -> Any:
    """Every field and value of a hash (a map in RESP3)."""
    value = _hash(client, skey(args[1]))
    return {} if value is None else dict(value.fields)


@command("hkeys", arity=2, flags="readonly", keys=(1, 1, 1), group="hash", since="2.0.0")
def hkeys(client: Client, args: list[bytes]) -> Any:
    """The fields of a hash."""
    value = _hash(client, skey(args[1]))
    return [] if value is None else list(value.fields)


@command("hvals", arity=2, flags="readonly", keys=(1, 1, 1), group="hash", since="2.0.0")
def hvals(client: Client, args: list[bytes]) -> Any:
    """The values of a hash."""
    value = _hash(client, skey(args[1]))
    return [] if value is None else list(value.fields.values())


@command("hstrlen", arity=3, flags="readonly fast", keys=(1, 1, 1), group="hash", since="3.2.0")
def hstrlen(client: Client, args: list[bytes]) -> Any:
    """The length of the value of a field of a hash (0 when absent)."""
    value = _hash(client, skey(args[1]))
    if value is None:
        return 0
    found = value.fields.get(args[2])
    return 0 if found is None else len(found)


@command("hincrby", arity=4, flags="write denyoom fast", keys=(1, 1, 1), group="hash", since="2.0.0")
def hincrby(client: Client, args: list[bytes]) -> Any:
    """Add an integer to the value of a field of a hash; the new value."""
    increment = get_ll(args[3])
    key = skey(args[1])
    value, new = _hash_for_write(client, key)
    old = value.fields.get(args[2])
    current = 0
    if old is not None:
        parsed = parse_ll(old)
        if parsed is None:
            raise ErrorReply("ERR hash value is not an integer")
        current = parsed
    result = current + increment
    if result > LLONG_MAX or result < LLONG_MIN:
        raise ErrorReply("ERR increment or decrement would overflow")
    value.put(args[2], b"%d" % result)
    _store(client, key, value, new)
    return result


@command("hincrbyfloat", arity=4, flags="write denyoom fast", keys=(1, 1, 1), group="hash", since="2.6.0")
def hincrbyfloat(client: Client, args: list[bytes]) -> Any:
    """Add a float to the value of a field of a hash; the new value (long double arithmetic)."""
    increment = parse_ld(args[3])
    if increment is None:
        raise ErrorReply(NOT_FLOAT)
    if isinstance(increment, _Inf):
        raise ErrorReply("ERR value is NaN or Infinity")
    key = skey(args[1])
    value, new = _hash_for_write(client, key)
    old = value.fields.get(args[2])
    current: Fraction | _Inf = Fraction(0)
    if old is not None:
        parsed = parse_ld(old)
        if parsed is None:
            raise ErrorReply("ERR hash value is not a float")
        current = parsed
    if isinstance(current, _Inf):
        raise ErrorReply("ERR increment would produce NaN or Infinity")
    result = ld_round(current + increment)
    if isinstance(result, _Inf):
        raise ErrorReply("ERR increment would produce NaN or Infinity")
    text = format_ld_human(result)
    value.put(args[2], text)
    _store(client, key, value, new)
    return text


@command("hrandfield", arity=-2, flags="readonly", keys=(1, 1, 1), group="hash", since="6.2.0")
def hrandfield(client: Client, args: list[bytes]) -> Any:
    """Random fields of a hash: one, or ``count`` (distinct; negative: may repeat), optionally
    WITHVALUES."""
    if len(args) == 2:
        value = _hash(client, skey(args[1]))
        if value is None:
            return None
        return random.choice(list(value.fields))
    count = get_ll(args[2])
    if count == LLONG_MIN:
        raise ErrorReply(f"ERR value is out of range, value must between {-LLONG_MAX} and {LLONG_MAX}")
    withvalues = False
    if len(args) > 4 or (len(args) == 4 and args[3].upper() != b"WITHVALUES"):
        raise ErrorReply(SYNTAX)
    if len(args) == 4:
        withvalues = True
        if abs(count) > LLONG_MAX // 2:
            raise ErrorReply("ERR value is out of range")
    value = _hash(client, skey(args[1]))
    if value is None or count == 0:
        return []
    items = list(value.fields.items())
    if count > 0:
        picked = items if count >= len(items) else random.sample(items, count)
    else:
        picked = random.choices(items, k=-count)
    if not withvalues:
        return [field for field, _ in picked]
    if client.resp3:
        return [[field, val] for field, val in picked]
    flat: list[bytes] = []
    for field, val in picked:
        flat.append(field)
        flat.append(val)
    return flat


@command("hscan", arity=-3, flags="readonly", keys=(1, 1, 1), group="hash", since="2.8.0")
def hscan(client: Client, args: list[bytes]) -> Any:
    """Iterate the fields and values of a hash with a cursor (MATCH, COUNT); small hashes in
    one reply."""
    cursor = parse_cursor(args[2])
    key = skey(args[1])
    value = _hash(client, key)
    if value is None:
        return empty_scan()
    options = parse_scan_options(args, 3)
    fields = value.fields

    def emit(batch: Sequence[bytes]) -> list[Any]:
        out: list[bytes] = []
        for field in batch:
            found = fields.get(field)
            if found is not None:
                out.append(field)
                out.append(found)
        return out

    return scan_reply(
        client.server,
        ("hash", client.db.index, key),
        cursor,
        options,
        snapshot=lambda: list(fields),
        emit=emit,
        whole=not value.big,
    )
