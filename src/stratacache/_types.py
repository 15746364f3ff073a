"""Sentinels, TTL normalisation and key checks shared by every layer."""

from __future__ import annotations

import enum
import math
from datetime import timedelta
from typing import Final, TypeAlias

from ._exceptions import InvalidKey, InvalidTTL

__all__ = ["MISSING", "UNSET", "Missing", "TTLArg", "Unset", "check_key", "normalize_ttl"]


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


def normalize_ttl(ttl: object, default: float | None = None, *, name: str = "ttl") -> float | None:
    """Turn a ``ttl`` argument into seconds (``float``) or ``None`` (never expire).

    ``UNSET`` gives ``default``. Zero, negative, NaN, infinite, bool and non-numeric values
    raise :class:`InvalidTTL` naming the parameter and the value: a ttl of 0 is ambiguous
    across backends (Memcached reads it as "never", Redis rejects it), so it is refused.
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
    return seconds


def check_key(key: object) -> str:
    """Return ``key`` as a plain ``str`` (a subclass gives its content); :class:`InvalidKey` otherwise."""
    if type(key) is str:
        return key
    if isinstance(key, str):
        # The plain str with the same content: str(key) would run the subclass's __str__
        # (a (str, Enum) member gives "Color.RED", not "red"), and a subclass may hash or
        # compare otherwise; every path and backend must see the content alone.
        return str.__str__(key)
    raise InvalidKey(f"cache keys must be str, not {type(key).__name__}: {key!r}")
