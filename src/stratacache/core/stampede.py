"""Stampede control, the pure half: the policy object and the arithmetic it needs.

No I/O here. The facade (``get_or_set``) and the distributed lease (``_async/lease.py``)
read a :class:`StampedePolicy` and ask this module three questions, each a small
function tested on its own:

* how fresh is a stored value (:func:`classify`): fresh, due for a probabilistic early
  refresh (XFetch), stale but servable while one caller revalidates, stale but servable
  only if the loader fails, or gone;
* how long to store a new value (:func:`jittered_ttl`, :func:`storage_ttl`);
* how long a waiter sleeps before looking again (:func:`backoff_delay`).

XFetch is from Vattani, Chierichetti and Lowenstein, "Optimal Probabilistic Cache Stampede
Prevention" (VLDB 2015): a reader refreshes early when ``now - delta * beta * ln(u) >=
expiry`` for ``u`` uniform in (0, 1], ``delta`` being how long the last load took. The
probability rises smoothly to 1 at expiry, and slow loads start earlier.
"""

from __future__ import annotations

import enum
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any

from .._exceptions import ConfigurationError, InvalidArgument
from .._types import MAX_TTL

__all__ = [
    "Freshness",
    "StampedePolicy",
    "backoff_delay",
    "classify",
    "jittered_ttl",
    "parse_policy",
    "storage_ttl",
    "xfetch_due",
]


def _seconds(name: str, value: object, *, allow_zero: bool) -> float:
    """A duration field as float seconds; InvalidArgument naming the field otherwise."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidArgument(
            f"StampedePolicy.{name} must be a number of seconds or a timedelta, not {type(value).__name__}"
        )
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise InvalidArgument(f"StampedePolicy.{name} must be finite and {bound} seconds, got {value!r}")
    if seconds > MAX_TTL:
        raise InvalidArgument(f"StampedePolicy.{name} {value!r} is over MAX_TTL ({MAX_TTL} seconds)")
    return seconds


def _number(name: str, value: object, low: float, high: float, *, high_open: bool) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InvalidArgument(f"StampedePolicy.{name} must be a number, not {type(value).__name__}")
    number = float(value)
    inside = low <= number < high if high_open else low <= number <= high
    if not math.isfinite(number) or not inside:
        closing = ")" if high_open else "]"
        raise InvalidArgument(f"StampedePolicy.{name} must be in [{low:g}, {high:g}{closing}, got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class StampedePolicy:
    """How ``get_or_set`` keeps many callers from loading one missing key at once.

    Give one to a cache (``Cache(url, stampede=StampedePolicy(...))``) or to one call
    (``cache.get_or_set(key, loader, ttl=60, policy=StampedePolicy(...))``). Durations are
    seconds (int/float) or timedeltas. Every field is checked when the policy is built; a
    bad value raises :class:`~stratacache.InvalidArgument` naming the field.

    * ``lease``: take a distributed lease (``add`` of a lease key holding a random token:
      ``SET NX PX`` on Redis, ``add`` on Memcached, an insert-if-absent row on the file
      backend) so that one caller among every process loads a missing key; the others
      wait and read its result. In-process single-flight always comes first.
    * ``lease_ttl``: how long a lease lives. If its owner dies mid-load, another caller
      takes over once it expires. Choose it above the slowest load.
    * ``wait_timeout``: how long a waiter waits for the owner's result before giving up
      with :class:`~stratacache.CacheTimeout` (or serving a stale value, see below).
    * ``backoff_initial`` / ``backoff_max``: a waiter's first and longest pause between
      looks; pauses double, each drawn from its upper half (jitter), so waiters spread out.
    * ``stale_while_revalidate``: for this long after a value's ttl ends, callers get the
      stale value at once while one caller (across processes, through the lease) reloads it.
    * ``stale_if_error``: for this long after a value's ttl ends, a failed load (the loader
      raising, or a waiter's wait timing out) serves the stale value instead of the error.
    * ``early_refresh_beta``: XFetch; 0 turns it off, 1 is the paper's default, larger
      refreshes earlier. A reader of a fresh value reloads it ahead of expiry with a
      probability that rises to 1 at expiry, scaled by how long the last load took.
    * ``ttl_jitter``: a fraction in [0, 1): each stored ttl is cut by a random share of up
      to this much (``ttl * (1 - jitter * u)``), so keys written together expire apart.
    * ``clock``: the unix-time clock for freshness (default ``time.time``; a
      :class:`~stratacache.testing.FakeClock` in tests). ``rng``: the random source (a
      seeded ``random.Random`` makes XFetch and jitter reproducible).
    """

    lease: bool = True
    lease_ttl: float = 10.0
    wait_timeout: float = 15.0
    backoff_initial: float = 0.01
    backoff_max: float = 0.25
    stale_while_revalidate: float = 0.0
    stale_if_error: float = 0.0
    early_refresh_beta: float = 0.0
    ttl_jitter: float = 0.0
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)
    rng: random.Random | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.lease, bool):
            raise InvalidArgument(f"StampedePolicy.lease must be a bool, not {type(self.lease).__name__}")
        checked = {
            "lease_ttl": _seconds("lease_ttl", self.lease_ttl, allow_zero=False),
            "wait_timeout": _seconds("wait_timeout", self.wait_timeout, allow_zero=False),
            "backoff_initial": _seconds("backoff_initial", self.backoff_initial, allow_zero=False),
            "backoff_max": _seconds("backoff_max", self.backoff_max, allow_zero=False),
            "stale_while_revalidate": _seconds(
                "stale_while_revalidate", self.stale_while_revalidate, allow_zero=True
            ),
            "stale_if_error": _seconds("stale_if_error", self.stale_if_error, allow_zero=True),
            "early_refresh_beta": _number(
                "early_refresh_beta", self.early_refresh_beta, 0.0, 1000.0, high_open=False
            ),
            "ttl_jitter": _number("ttl_jitter", self.ttl_jitter, 0.0, 1.0, high_open=True),
        }
        if checked["backoff_max"] < checked["backoff_initial"]:
            raise InvalidArgument(
                f"StampedePolicy.backoff_max ({self.backoff_max!r}) must not be below "
                f"backoff_initial ({self.backoff_initial!r})"
            )
        if not callable(self.clock):
            raise InvalidArgument(f"StampedePolicy.clock must be callable, not {type(self.clock).__name__}")
        if self.rng is not None and not isinstance(self.rng, random.Random):
            raise InvalidArgument(
                f"StampedePolicy.rng must be a random.Random or None, not {type(self.rng).__name__}"
            )
        # Frozen: normalized values (timedelta -> float) go in through object.__setattr__.
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def keeps_stale(self) -> bool:
        """True when values outlive their ttl in storage (for SWR or stale-if-error)."""
        return self.stale_while_revalidate > 0 or self.stale_if_error > 0

    @property
    def needs_envelope(self) -> bool:
        """True when stored values must carry ``fresh_until`` and ``delta`` (SWR, SIE, XFetch)."""
        return self.keeps_stale or self.early_refresh_beta > 0

    def random(self) -> random.Random:
        """The random source: the policy's ``rng``, else the module's shared one."""
        return self.rng if self.rng is not None else _RANDOM


# One shared source for policies without an rng: reseeding per call would cost more than
# it is worth, and nothing here needs cryptographic randomness (lease tokens use secrets).
_RANDOM = random.Random()


class Freshness(enum.Enum):
    """What a reader should do with a stored value (see :func:`classify`)."""

    FRESH = "fresh"
    """Serve it."""
    EARLY = "early"
    """Serve it, but this reader was drawn (XFetch) to refresh it ahead of expiry."""
    REVALIDATE = "revalidate"
    """Past its ttl, inside stale-while-revalidate: serve it while one caller reloads."""
    STALE_IF_ERROR = "stale_if_error"
    """Past its ttl and the SWR window, inside stale-if-error: load, serve it on failure."""
    EXPIRED = "expired"
    """Past every window: a miss."""


def xfetch_due(now: float, expiry: float, delta: float, beta: float, u: float) -> bool:
    """XFetch's test: refresh early when ``now - delta * beta * ln(u) >= expiry``.

    ``u`` is uniform in (0, 1] (``ln(u) <= 0``, so the left side is ``now`` pushed later by
    an exponentially distributed amount with mean ``delta * beta``). ``beta = 0`` or
    ``delta <= 0`` never refreshes early; at or past ``expiry`` it always does.
    """
    if not 0.0 < u <= 1.0:
        raise InvalidArgument(f"xfetch_due: u must be in (0, 1], got {u!r}")
    if now >= expiry:
        return True
    if beta <= 0 or delta <= 0:
        return False
    return now - delta * beta * math.log(u) >= expiry


def classify(
    now: float,
    fresh_until: float | None,
    delta: float | None,
    policy: StampedePolicy,
    u: float,
) -> Freshness:
    """Where a stored value stands at ``now``; ``u`` in (0, 1] is the XFetch draw.

    ``fresh_until`` None (a plain value, or one stored without a ttl) is always fresh:
    only its physical expiry removes it.
    """
    if fresh_until is None:
        return Freshness.FRESH
    if now < fresh_until:
        beta = policy.early_refresh_beta
        if beta > 0 and delta and xfetch_due(now, fresh_until, delta, beta, u):
            return Freshness.EARLY
        return Freshness.FRESH
    late = now - fresh_until
    if late < policy.stale_while_revalidate:
        return Freshness.REVALIDATE
    if late < policy.stale_if_error:
        return Freshness.STALE_IF_ERROR
    return Freshness.EXPIRED


def jittered_ttl(ttl: float | None, fraction: float, u: float) -> float | None:
    """``ttl`` cut by up to ``fraction`` of itself: ``ttl * (1 - fraction * u)``, ``u`` in [0, 1).

    Only ever shorter, never longer than asked (a ttl is often a staleness bound). None
    (never expire) stays None.
    """
    if ttl is None or fraction <= 0:
        return ttl
    return ttl * (1.0 - fraction * u)


def storage_ttl(ttl: float | None, policy: StampedePolicy) -> float | None:
    """How long to keep a value in storage: its ttl plus the longest stale window.

    The value stays readable (as stale) through stale-while-revalidate and stale-if-error;
    capped at MAX_TTL, the longest expiry every backend can store.
    """
    if ttl is None:
        return None
    return min(ttl + max(policy.stale_while_revalidate, policy.stale_if_error), float(MAX_TTL))


def backoff_delay(attempt: int, initial: float, maximum: float, u: float) -> float:
    """A waiter's pause before look number ``attempt`` (0-based), ``u`` in [0, 1).

    The cap doubles from ``initial`` up to ``maximum``; the pause is drawn from the cap's
    upper half ("equal jitter"): waiters that started together drift apart, and none polls
    faster than half the cap.
    """
    if attempt < 0:
        raise InvalidArgument(f"backoff_delay: attempt must be >= 0, got {attempt!r}")
    # 2**60 is far past any maximum; the bound keeps the float from overflowing.
    cap = min(maximum, initial * 2.0 ** min(attempt, 60))
    return cap / 2.0 + cap / 2.0 * u


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", "none", ""})
_TEXT_FIELDS = {f.name for f in fields(StampedePolicy)} - {"clock", "rng"}


def parse_policy(name: str, value: Any) -> StampedePolicy | None:
    """The ``stampede`` parameter of a URL, dict or file configuration.

    Accepts a :class:`StampedePolicy`; a mapping of its fields (dicts, YAML, TOML); a bool;
    or a string: ``on``/``off`` (the default policy, or none) or comma-separated
    ``field:value`` pairs (``stampede=lease_ttl:5,stale_while_revalidate:30`` in a URL).
    """
    if value is None or isinstance(value, StampedePolicy):
        return value
    if isinstance(value, bool):
        return StampedePolicy() if value else None
    if isinstance(value, Mapping):
        return _from_fields(name, dict(value))
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return StampedePolicy()
        if text in _FALSE:
            return None
        pairs: dict[str, Any] = {}
        for part in text.split(","):
            field_name, sep, raw = part.partition(":")
            if not sep:
                raise ConfigurationError(
                    f"parameter {name!r}: expected on, off or field:value pairs, got {part.strip()!r}"
                )
            pairs[field_name.strip()] = _scalar(raw.strip())
        return _from_fields(name, pairs)
    raise ConfigurationError(
        f"parameter {name!r}: expected a StampedePolicy, a mapping, a bool or a string, "
        f"not {type(value).__name__}"
    )


def _scalar(raw: str) -> Any:
    if raw in _TRUE - {"1"}:
        return True
    if raw in _FALSE - {"0", ""}:
        return False
    try:
        return float(raw)
    except ValueError:
        return raw  # left for the policy's own check, which names the field


def _from_fields(name: str, given: dict[str, Any]) -> StampedePolicy:
    unknown = sorted(set(given) - _TEXT_FIELDS)
    if unknown:
        raise ConfigurationError(
            f"parameter {name!r}: unknown StampedePolicy field(s) {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(sorted(_TEXT_FIELDS))}"
        )
    if given.get("lease") in (0.0, 1.0) and isinstance(given["lease"], float):
        given["lease"] = bool(given["lease"])  # "lease:1" was read as a number
    try:
        return StampedePolicy(**given)
    except InvalidArgument as exc:
        raise ConfigurationError(f"parameter {name!r}: {exc}") from exc
