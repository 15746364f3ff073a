"""Sentinels, TTL normalisation and key checks shared by every layer."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, TypeAlias

from ._exceptions import InvalidKey, InvalidTTL

__all__ = [
    "MAX_TTL",
    "Item",
    "MISSING",
    "UNSET",
    "Missing",
    "TTLArg",
    "Unset",
    "check_key",
    "check_text",
    "normalize_ttl",
]


class Missing(enum.Enum):
    """The type of :data:`MISSING`: "no such key". Falsy, so ``if value:`` treats it as absent.

    A one-member Enum (not ``None``) so that a stored ``None`` stays distinguishable
    from a miss, and so that type checkers can narrow ``Any | Missing``.
    """

    MISSING = "MISSING"

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = Missing.MISSING
"""Returned (or used as a default) where a key does not exist."""


class Unset(enum.Enum):
    """The type of :data:`UNSET`: an argument that was not given.

    Tells an omitted ``ttl`` (use the cache's default) apart from ``ttl=None`` (never expire).
    """

    UNSET = "UNSET"

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET

TTLArg: TypeAlias = "float | int | timedelta | None | Unset"
"""What a ``ttl=`` parameter accepts."""


MAX_TTL: Final = 365 * 24 * 3600
"""The longest ttl, in seconds (365 days), on every backend alike.

One bound for all, so that code moved from one backend to another never meets a ttl that
one accepted and the other cannot store. It is what Memcached can hold safely: it reads an
expiry over 30 days as an absolute unix time in 32 bits, so nothing can expire there after
2038-01-19 (a year from now fits until 2037). Redis, the file store and the memory engine
could go further; longer ttls raise :class:`InvalidTTL` rather than being cut short or
silently dropped. ``ttl=None`` (never expire) is the way to keep an entry indefinitely.
"""


def normalize_ttl(ttl: object, default: float | None = None, *, name: str = "ttl") -> float | None:
    """Turn a ``ttl`` argument into seconds (``float``) or ``None`` (never expire).

    ``UNSET`` gives ``default``. Zero, negative, NaN, infinite, bool and non-numeric values
    raise :class:`InvalidTTL` naming the parameter and the value: a ttl of 0 is ambiguous
    across backends (Memcached reads it as "never", Redis rejects it), so it is refused.
    So is a ttl over :data:`MAX_TTL`, the longest expiry every backend can store.
    """
    if ttl is UNSET:
        return default
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, (int, float)) and not isinstance(ttl, bool):
        seconds = float(ttl)
    else:
        raise InvalidTTL(
            f"{name} must be None, a number of seconds or a timedelta, not {type(ttl).__name__} {ttl!r}"
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidTTL(f"{name} must be a positive finite number of seconds, got {ttl!r}")
    if seconds > MAX_TTL:
        raise InvalidTTL(
            f"{name} {ttl!r} is over MAX_TTL, {MAX_TTL} seconds (365 days), the longest expiry every "
            "backend can store (Memcached keeps no expiry past 2038-01-19); use ttl=None for no expiry"
        )
    return seconds


def check_text(text: str, what: str) -> str:
    """Return ``text`` if it encodes to UTF-8; raise :class:`InvalidKey` naming it otherwise.

    A ``str`` may hold lone surrogates (``"\\ud800"``, from ``surrogateescape`` decoding or
    a broken JSON escape), which no backend that leaves the process can store: the Redis
    driver raises ``UnicodeEncodeError``. Refusing them up front makes every backend,
    memory included, answer the same. ``what`` names the text ("cache keys", "hash fields").
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidKey(
            f"{what} must be valid Unicode (encodable as UTF-8), got {text!r}: "
            f"lone surrogate at index {exc.start}"
        ) from exc
    return text


def check_key(key: object) -> str:
    """Return ``key`` as a plain ``str`` (a subclass gives its content); raise :class:`InvalidKey` otherwise.

    Non-``str`` keys are refused, and so are keys holding lone surrogates (see
    :func:`check_text`).
    """
    if type(key) is str:
        return check_text(key, "cache keys")
    if isinstance(key, str):
        # The plain str with the same content: str(key) would run the subclass's __str__
        # (a (str, Enum) member gives "Color.RED", not "red"), and a subclass may hash or
        # compare otherwise; every path and backend must see the content alone.
        return check_text(str.__str__(key), "cache keys")
    raise InvalidKey(f"cache keys must be str, not {type(key).__name__}: {key!r}")


@dataclass(frozen=True, slots=True)
class Item:
    """One entry with its metadata, as ``get_item`` returns it.

    ``key`` is the caller's key (without namespace); ``value`` the decoded value;
    ``version`` an opaque token that compares equal only while the entry is unchanged:
    pass it back as ``set(..., if_version=...)`` or ``delete(..., if_version=...)`` for a
    compare-and-set. Its kind depends on the backend (an ``int`` counter in memory, a CAS
    unique on Memcached, a SHA-1 of the stored bytes on Redis). ``created`` is the unix time
    of the write that made the entry (None where the backend cannot know); ``expires_at``
    the unix time it expires (None: never); ``tags`` the tags it was stored with (empty
    without tags); ``size`` its stored bytes (None where unknown, e.g. objects in memory).
    """

    key: str
    value: Any
    version: int | str
    created: float | None = None
    expires_at: float | None = None
    tags: tuple[str, ...] = ()
    size: int | None = None
