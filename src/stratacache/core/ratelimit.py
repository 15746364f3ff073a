"""Rate limiting arithmetic: fixed window, sliding window and token bucket (pure, no I/O).

Each algorithm is one function ``step(spec, state, now, cost) -> Outcome``: the stored
state (or None), the time and the hit's cost in, the decision and the state to store out.
The I/O layer (``_async/ratelimit.py``) makes the read-step-write atomic on each backend:
a Lua twin of these functions on Redis (``LUA_SCRIPTS``, kept line for line in step with
the Python), ``incr`` counters or compare-and-set elsewhere.

Why integers: time is whole milliseconds and every quantity an integer below 2**53, so
the Lua twin (whose numbers are doubles) computes exactly what Python computes, and the
decision is the same whichever process or backend takes it. The token bucket counts in
"token-milliseconds" (one token = ``period_ms`` units, refilled at ``limit`` units per
millisecond), which keeps fractional refill exact. :func:`make_spec` refuses limits whose
``limit * period_ms`` would leave that range.

Clocks that disagree: a state stored by a process whose clock runs ahead is never thrown
away by one that lags (its window is used as it is), so a lagging clock cannot reopen a
window; it only waits a little longer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from .._exceptions import InvalidArgument

__all__ = [
    "ALGORITHMS",
    "LUA_SCRIPTS",
    "Outcome",
    "RateLimitDecision",
    "STATE_SIZES",
    "RateSpec",
    "check_cost",
    "fixed_window",
    "make_spec",
    "parse_state",
    "sliding_window",
    "step",
    "token_bucket",
]

ALGORITHMS: Final = ("fixed_window", "sliding_window", "token_bucket")

# Every intermediate value stays below 2**53 (exact in a double) when limit * period_ms is
# at most this: the sliding window adds three such products.
_MAX_SCALE: Final = 2**50


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    """The answer to one hit.

    ``allowed``: the hit was counted and may proceed. ``remaining``: hits of cost 1 still
    allowed now. ``reset_after``: seconds until every counted hit is forgotten (the limiter
    is back to its full ``limit``). ``retry_after``: seconds until a hit of the same cost
    would be allowed (0 when this one was).
    """

    allowed: bool
    remaining: int
    reset_after: float
    retry_after: float


@dataclass(frozen=True, slots=True)
class RateSpec:
    """A validated limit: ``limit`` hits per ``period_ms`` milliseconds with ``algorithm``."""

    limit: int
    period_ms: int
    algorithm: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one step decided, and what to store: ``state`` (None: leave the stored state as
    it is) for ``ttl_ms`` milliseconds, after which the state means nothing any more."""

    decision: RateLimitDecision
    state: tuple[int, ...] | None
    ttl_ms: int


def make_spec(limit: object, period: object, algorithm: object) -> RateSpec:
    """Check a limiter's parameters; InvalidArgument names the one at fault."""
    if type(limit) is not int or limit < 1:
        raise InvalidArgument(f"parameter 'limit' must be a positive int, got {limit!r}")
    if isinstance(period, timedelta):
        seconds = period.total_seconds()
    elif isinstance(period, (int, float)) and not isinstance(period, bool):
        seconds = float(period)
    else:
        raise InvalidArgument(f"parameter 'period' must be seconds (a number) or a timedelta, got {period!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgument(
            f"parameter 'period' must be a positive finite number of seconds, got {period!r}"
        )
    period_ms = round(seconds * 1000)
    if period_ms < 1:
        raise InvalidArgument(f"parameter 'period' must be at least one millisecond, got {period!r}")
    if algorithm not in ALGORITHMS:
        raise InvalidArgument(
            f"parameter 'algorithm' must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}"
        )
    if limit * period_ms > _MAX_SCALE:
        raise InvalidArgument(
            f"parameter 'limit': {limit} hits per {period_ms} ms is out of range "
            f"(limit x period in milliseconds must be at most 2**50)"
        )
    return RateSpec(limit, period_ms, str(algorithm))


def check_cost(spec: RateSpec, cost: object) -> int:
    """A hit's cost: an int from 1 to the limit (a larger one could never be allowed)."""
    if type(cost) is not int or not 1 <= cost <= spec.limit:
        raise InvalidArgument(
            f"parameter 'cost' must be an int from 1 to the limit {spec.limit}, got {cost!r}"
        )
    return cost


def parse_state(raw: object, size: int) -> tuple[int, ...] | None:
    """A stored state: ``size`` integers (a list, or the Lua scripts' space-separated text).

    Anything else (a foreign value under the limiter's key) reads as no state, as in Lua.
    """
    if isinstance(raw, (bytes, str)):
        text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
        raw = text.split(" ")
        try:
            raw = [int(part) for part in raw]
        except ValueError:
            return None
    if isinstance(raw, (list, tuple)) and len(raw) == size and all(type(n) is int for n in raw):
        return tuple(raw)
    return None


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _decision(allowed: bool, remaining: int, reset_ms: int, retry_ms: int) -> RateLimitDecision:
    return RateLimitDecision(allowed, max(0, remaining), reset_ms / 1000, retry_ms / 1000)


def fixed_window(spec: RateSpec, state: tuple[int, ...] | None, now: int, cost: int) -> Outcome:
    """At most ``limit`` per window; windows are ``[k * period, (k + 1) * period)``.

    State: ``(window, count)``.
    """
    limit, period = spec.limit, spec.period_ms
    window = now // period
    count = 0
    if state is not None and state[0] >= window:
        if state[0] > window:  # stored by a clock that runs ahead: keep its window
            window = state[0]
            now = window * period
        count = state[1]
    reset = (window + 1) * period - now
    if count + cost <= limit:
        count += cost
        return Outcome(_decision(True, limit - count, reset, 0), (window, count), reset)
    return Outcome(_decision(False, limit - count, reset, reset), None, 0)


def sliding_window(spec: RateSpec, state: tuple[int, ...] | None, now: int, cost: int) -> Outcome:
    """The two-window estimate: the previous window's count, weighted by how much of it
    still overlaps the last ``period``, plus the current window's count, at most ``limit``.

    State: ``(window, current, previous)``. Comparisons are multiplied through by the
    period, so they are exact.
    """
    limit, period = spec.limit, spec.period_ms
    window = now // period
    current = previous = 0
    if state is not None:
        if state[0] >= window:
            if state[0] > window:
                window = state[0]
                now = window * period
            current, previous = state[1], state[2]
        elif state[0] == window - 1:
            previous = state[1]
    elapsed = now - window * period
    budget = limit * period - previous * (period - elapsed)
    allowed = (current + cost) * period <= budget
    if allowed:
        current += cost
    remaining = (budget - current * period) // period
    if allowed:
        retry = 0
    elif current + cost <= limit:
        # Later in this window, as the previous window's weight falls (previous > 0 here).
        retry = period - ((limit - current - cost) * period) // previous - elapsed
    else:
        # In the next window, where this window's count becomes the weighted one.
        retry = period - elapsed + max(0, period - ((limit - cost) * period) // current)
    if current > 0:
        reset = 2 * period - elapsed
    elif previous > 0:
        reset = period - elapsed
    else:
        reset = 0
    decision = _decision(allowed, remaining, reset, retry)
    if not allowed:
        return Outcome(decision, None, 0)
    return Outcome(decision, (window, current, previous), reset)


def token_bucket(spec: RateSpec, state: tuple[int, ...] | None, now: int, cost: int) -> Outcome:
    """A bucket of ``limit`` tokens refilled at ``limit`` per ``period``; a hit takes ``cost``.

    State: ``(units, at)``: the bucket's content in token-milliseconds at time ``at``.
    """
    limit, period = spec.limit, spec.period_ms
    capacity = limit * period
    units = capacity
    if state is not None:
        # A clock behind the stored one refills nothing; a long pause refills at most a
        # full bucket (capping elapsed first keeps the product small).
        elapsed = min(period, max(0, now - state[1]))
        units = min(capacity, state[0] + elapsed * limit)
    need = cost * period
    allowed = units >= need
    if allowed:
        units -= need
    retry = 0 if allowed else _ceil_div(need - units, limit)
    reset = _ceil_div(capacity - units, limit)
    decision = _decision(allowed, units // period, reset, retry)
    if not allowed:
        return Outcome(decision, None, 0)
    return Outcome(decision, (units, now), reset)


_STEPS = {"fixed_window": fixed_window, "sliding_window": sliding_window, "token_bucket": token_bucket}

STATE_SIZES: Final = {"fixed_window": 2, "sliding_window": 3, "token_bucket": 2}
"""Algorithm name -> how many integers its state holds."""


def step(spec: RateSpec, state: tuple[int, ...] | None, now: int, cost: int) -> Outcome:
    """Run ``spec``'s algorithm once."""
    return _STEPS[spec.algorithm](spec, state, now, cost)


# The Lua twins, for Redis and `stratacache serve`: KEYS[1] the state key; ARGV now_ms,
# limit, period_ms, cost. Each reads the state (space-separated integers, written with
# %d so no number turns into exponent notation), runs the step above, stores the new state
# with a PX expiry and returns {allowed, remaining, reset_ms, retry_ms} as integers.
_LUA_PRELUDE = """
local now, limit, period, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local raw = redis.call('get', KEYS[1])
local s = nil
if raw then
  s = {}
  for part in string.gmatch(raw, '[^ ]+') do s[#s + 1] = tonumber(part) end
  if #s ~= SIZE then s = nil else
    for i = 1, SIZE do if s[i] == nil or s[i] ~= math.floor(s[i]) then s = nil; break end end
  end
end
local function store(text, ttl) redis.call('set', KEYS[1], text, 'PX', ttl) end
local function clamp(n) if n < 0 then return 0 end return n end
"""

_LUA_FIXED = """
local window = math.floor(now / period)
local count = 0
if s and s[1] >= window then
  if s[1] > window then window = s[1]; now = window * period end
  count = s[2]
end
local reset = (window + 1) * period - now
if count + cost <= limit then
  count = count + cost
  store(string.format('%d %d', window, count), reset)
  return {1, clamp(limit - count), reset, 0}
end
return {0, clamp(limit - count), reset, reset}
"""

_LUA_SLIDING = """
local window = math.floor(now / period)
local current, previous = 0, 0
if s then
  if s[1] >= window then
    if s[1] > window then window = s[1]; now = window * period end
    current, previous = s[2], s[3]
  elseif s[1] == window - 1 then
    previous = s[2]
  end
end
local elapsed = now - window * period
local budget = limit * period - previous * (period - elapsed)
local allowed = (current + cost) * period <= budget
if allowed then current = current + cost end
local remaining = math.floor((budget - current * period) / period)
local retry = 0
if not allowed then
  if current + cost <= limit then
    retry = period - math.floor(((limit - current - cost) * period) / previous) - elapsed
  else
    local later = period - math.floor(((limit - cost) * period) / current)
    if later < 0 then later = 0 end
    retry = period - elapsed + later
  end
end
local reset = 0
if current > 0 then reset = 2 * period - elapsed elseif previous > 0 then reset = period - elapsed end
if allowed then
  store(string.format('%d %d %d', window, current, previous), reset)
  return {1, clamp(remaining), reset, 0}
end
return {0, clamp(remaining), reset, retry}
"""

_LUA_BUCKET = """
local capacity = limit * period
local units = capacity
if s then
  local elapsed = now - s[2]
  if elapsed < 0 then elapsed = 0 end
  if elapsed > period then elapsed = period end
  units = s[1] + elapsed * limit
  if units > capacity then units = capacity end
end
local need = cost * period
local allowed = units >= need
if allowed then units = units - need end
local retry = 0
if not allowed then retry = math.ceil((need - units) / limit) end
local reset = math.ceil((capacity - units) / limit)
local remaining = math.floor(units / period)
if allowed then
  store(string.format('%d %d', units, now), reset)
  return {1, remaining, reset, 0}
end
return {0, remaining, reset, retry}
"""

LUA_SCRIPTS: Final = {
    name: _LUA_PRELUDE.replace("SIZE", str(STATE_SIZES[name])) + body
    for name, body in (
        ("fixed_window", _LUA_FIXED),
        ("sliding_window", _LUA_SLIDING),
        ("token_bucket", _LUA_BUCKET),
    )
}
"""Algorithm name -> the Lua script that does its step atomically on a Redis server."""
