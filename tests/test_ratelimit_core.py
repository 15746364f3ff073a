"""The rate limiting arithmetic (core/ratelimit.py) against simple models, and its Lua twins.

The models use exact fractions and the plain definitions of each algorithm; the core works
in integer milliseconds. The Lua scripts are run on a real Redis and on ``stratacache
serve`` and must decide exactly what the Python decides, step by step.
"""

from __future__ import annotations

import math
import random
from datetime import timedelta
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stratacache as sc
from stratacache import Cache
from stratacache.core.ratelimit import (
    ALGORITHMS,
    LUA_SCRIPTS,
    RateSpec,
    check_cost,
    make_spec,
    parse_state,
    step,
)

# (ms since the previous hit, cost) sequences; costs up to the limit.
_hits = st.lists(st.tuples(st.integers(0, 2500), st.integers(1, 4)), min_size=1, max_size=40)
_limits = st.integers(1, 6)
_periods = st.sampled_from([1, 7, 1000, 1500])
_START = 1_700_000_000_000  # ms


def _run(spec: RateSpec, hits: list[tuple[int, int]]) -> list[tuple[int, int, Any]]:
    """(time, cost, decision) for each hit, through the core's step with its stored state."""
    state = None
    now = _START
    out = []
    for delta, wanted in hits:
        now += delta
        cost = min(wanted, spec.limit)
        outcome = step(spec, state, now, cost)
        if outcome.state is not None:
            state = outcome.state
        out.append((now, cost, outcome.decision))
    return out


@settings(max_examples=60, deadline=None)
@given(limit=_limits, period=_periods, hits=_hits)
def test_fixed_window_matches_model(limit: int, period: int, hits: list[tuple[int, int]]) -> None:
    spec = RateSpec(limit, period, "fixed_window")
    used: dict[int, int] = {}
    for now, cost, decision in _run(spec, hits):
        window = now // period
        allowed = used.get(window, 0) + cost <= limit
        if allowed:
            used[window] = used.get(window, 0) + cost
        assert decision.allowed is allowed
        assert decision.remaining == limit - used.get(window, 0)


@settings(max_examples=60, deadline=None)
@given(limit=_limits, period=_periods, hits=_hits)
def test_sliding_window_matches_model(limit: int, period: int, hits: list[tuple[int, int]]) -> None:
    spec = RateSpec(limit, period, "sliding_window")
    used: dict[int, int] = {}
    for now, cost, decision in _run(spec, hits):
        window = now // period
        overlap = Fraction(period - (now - window * period), period)
        estimate = used.get(window - 1, 0) * overlap + used.get(window, 0)
        allowed = estimate + cost <= limit
        if allowed:
            used[window] = used.get(window, 0) + cost
            estimate += cost
        assert decision.allowed is allowed
        assert decision.remaining == max(0, math.floor(limit - estimate))


@settings(max_examples=60, deadline=None)
@given(limit=_limits, period=_periods, hits=_hits)
def test_token_bucket_matches_model(limit: int, period: int, hits: list[tuple[int, int]]) -> None:
    spec = RateSpec(limit, period, "token_bucket")
    tokens = Fraction(limit)
    last: int | None = None
    for now, cost, decision in _run(spec, hits):
        if last is not None:
            tokens = min(Fraction(limit), tokens + Fraction((now - last) * limit, period))
        last = now
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        assert decision.allowed is allowed
        assert decision.remaining == math.floor(tokens)
        expected_retry = 0 if allowed else math.ceil((cost - tokens) * period / limit)
        assert decision.retry_after == expected_retry / 1000


@settings(max_examples=60, deadline=None)
@given(algorithm=st.sampled_from(ALGORITHMS), limit=_limits, period=_periods, hits=_hits)
def test_retry_after_and_reset_after_are_exact(
    algorithm: str, limit: int, period: int, hits: list[tuple[int, int]]
) -> None:
    """A refused hit is allowed exactly retry_after later (not a millisecond sooner), and
    after reset_after the full limit is back."""
    spec = RateSpec(limit, period, algorithm)
    state = None
    now = _START
    for delta, raw_cost in hits:
        now += delta
        cost = min(raw_cost, limit)
        outcome = step(spec, state, now, cost)
        decision = outcome.decision
        if not decision.allowed:
            retry = round(decision.retry_after * 1000)
            assert retry >= 1
            assert step(spec, state, now + retry, cost).decision.allowed
            assert not step(spec, state, now + retry - 1, cost).decision.allowed
        else:
            state = outcome.state
        reset = round(decision.reset_after * 1000)
        assert step(spec, state, now + reset, 1).decision.remaining == limit - 1


def test_make_spec_and_cost_failures_name_the_parameter() -> None:
    bad: list[tuple[Any, Any, Any, str]] = [
        (0, 1, "fixed_window", "limit"),
        (-1, 1, "fixed_window", "limit"),
        (1.5, 1, "fixed_window", "limit"),
        (True, 1, "fixed_window", "limit"),
        ("5", 1, "fixed_window", "limit"),
        (5, 0, "fixed_window", "period"),
        (5, -1, "fixed_window", "period"),
        (5, float("nan"), "fixed_window", "period"),
        (5, float("inf"), "fixed_window", "period"),
        (5, "1", "fixed_window", "period"),
        (5, True, "fixed_window", "period"),
        (5, timedelta(0), "fixed_window", "period"),
        (5, 0.0001, "fixed_window", "period"),
        (5, 1, "leaky_bucket", "algorithm"),
        (5, 1, None, "algorithm"),
        (2**40, 3600, "token_bucket", "limit"),
    ]
    for limit, period, algorithm, name in bad:
        with pytest.raises(sc.InvalidArgument, match=f"parameter '{name}'"):
            make_spec(limit, period, algorithm)
    spec = make_spec(5, timedelta(seconds=1.5), "sliding_window")
    assert spec == RateSpec(5, 1500, "sliding_window")
    for cost in (0, -1, 6, 1.0, True, "1"):
        with pytest.raises(sc.InvalidArgument, match="parameter 'cost'"):
            check_cost(spec, cost)
    assert check_cost(spec, 5) == 5


def test_parse_state() -> None:
    assert parse_state(b"12 3", 2) == (12, 3)
    assert parse_state("12 3 -1", 3) == (12, 3, -1)
    assert parse_state([4, 5], 2) == (4, 5)
    for junk in (b"12", b"a b", "1 2 3", [1, "2"], [1.0, 2], {"a": 1}, None, 7):
        assert parse_state(junk, 2) is None


_STORE = "local function store(text, ttl) redis.call('set', KEYS[1], text, 'PX', ttl) end"


def _no_expiry(algorithm: str) -> str:
    """The script with its state stored without expiry and the ttl it asked for kept aside.

    The test's time is fake while the server's expiry runs in real time: a state whose
    window ends a millisecond later (in fake time) would vanish between two steps.
    """
    script = LUA_SCRIPTS[algorithm]
    assert _STORE in script
    return script.replace(
        _STORE,
        "local function store(text, ttl) "
        "redis.call('set', KEYS[1], text); redis.call('set', KEYS[2], ttl) end",
    )


@pytest.mark.parametrize("server", ["redis_server", "stratacache_server"])
def test_lua_twins_decide_as_python(server: str, request: pytest.FixtureRequest) -> None:
    """Random hit sequences through EVALSHA and through step(): the same decisions."""
    running = request.getfixturevalue(server)
    url = running.url if server == "redis_server" else f"redis://127.0.0.1:{running.port}/0"
    rng = random.Random(16)
    with Cache(url) as cache:
        backend: Any = cache.backend
        for algorithm in ALGORITHMS:
            for limit, period in ((3, 1000), (5, 7), (1, 250)):
                spec = RateSpec(limit, period, algorithm)
                key = f"lua:{algorithm}:{limit}:{period}"
                state = None
                now = _START
                for _ in range(60):
                    now += rng.choice((0, 0, 1, 3, period // 3 + 1, period, 2 * period + 5))
                    cost = rng.randint(1, limit)
                    # A past "now" too: a lagging clock must not reopen a window.
                    at = now - rng.choice((0, 0, 0, period))
                    args = [at, limit, period, cost]
                    reply = backend.run_script(_no_expiry(algorithm), [key, f"{key}:ttl"], args)
                    outcome = step(spec, state, at, cost)
                    decision = outcome.decision
                    expected = [int(decision.allowed), decision.remaining]
                    expected += [round(decision.reset_after * 1000), round(decision.retry_after * 1000)]
                    assert [int(x) for x in reply] == expected, (algorithm, limit, period, at, cost, state)
                    if outcome.state is not None:
                        state = outcome.state
                        stored = parse_state(backend.client.get(key), len(state))
                        assert stored == state
                        assert int(backend.client.get(f"{key}:ttl")) == outcome.ttl_ms
            # The real script stores with an expiry: the state's life, in milliseconds.
            key = f"px:{algorithm}"
            backend.run_script(LUA_SCRIPTS[algorithm], [key], [_START, 4, 60_000, 1])
            life = step(RateSpec(4, 60_000, algorithm), None, _START, 1).ttl_ms
            assert life - 5_000 < backend.client.pttl(key) <= life
