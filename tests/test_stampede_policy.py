"""StampedePolicy and the pure stampede arithmetic (core/stampede.py): no I/O."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stratacache as sc
from stratacache._types import MAX_TTL
from stratacache.core.stampede import (
    Freshness,
    StampedePolicy,
    backoff_delay,
    classify,
    jittered_ttl,
    parse_policy,
    storage_ttl,
    xfetch_due,
)

unit_open = st.floats(min_value=0.0, max_value=1.0, exclude_min=True)  # (0, 1]
unit_half = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)  # [0, 1)


def test_exported_and_defaults() -> None:
    assert sc.StampedePolicy is StampedePolicy
    policy = StampedePolicy()
    assert policy.lease
    assert policy.wait_timeout > policy.lease_ttl  # waiters ride out a dead holder by default
    assert not policy.needs_envelope
    assert StampedePolicy(stale_if_error=5).keeps_stale


def test_timedeltas_become_seconds() -> None:
    policy = StampedePolicy(lease_ttl=timedelta(seconds=3), stale_while_revalidate=timedelta(minutes=1))
    assert policy.lease_ttl == 3.0
    assert policy.stale_while_revalidate == 60.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lease", 1),
        ("lease_ttl", 0),
        ("lease_ttl", -1),
        ("lease_ttl", float("nan")),
        ("lease_ttl", "5"),
        ("lease_ttl", True),
        ("lease_ttl", 10**9),
        ("wait_timeout", 0),
        ("backoff_initial", 0),
        ("backoff_max", float("inf")),
        ("stale_while_revalidate", -0.5),
        ("stale_if_error", None),
        ("early_refresh_beta", -1),
        ("early_refresh_beta", float("nan")),
        ("ttl_jitter", 1.0),
        ("ttl_jitter", -0.1),
        ("clock", 5),
        ("rng", 42),
    ],
)
def test_bad_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(sc.InvalidArgument, match=rf"StampedePolicy\.{field}\b"):
        StampedePolicy(**{field: value})


def test_backoff_max_below_initial() -> None:
    with pytest.raises(sc.InvalidArgument, match="backoff_max"):
        StampedePolicy(backoff_initial=1, backoff_max=0.5)


@given(
    now=st.floats(0, 1e6),
    gap=st.floats(0.001, 1e3),
    delta=st.floats(0, 100),
    beta=st.floats(0, 10),
    u=unit_open,
)
@settings(max_examples=60, deadline=None)
def test_xfetch_matches_the_formula(now: float, gap: float, delta: float, beta: float, u: float) -> None:
    expiry = now + gap
    expected = beta > 0 and delta > 0 and now - delta * beta * math.log(u) >= expiry
    assert xfetch_due(now, expiry, delta, beta, u) is expected


@given(now=st.floats(0, 1e6), past=st.floats(0, 1e3), u=unit_open)
@settings(max_examples=30, deadline=None)
def test_xfetch_always_due_at_expiry(now: float, past: float, u: float) -> None:
    assert xfetch_due(now + past, now, 0.0, 0.0, u)


def test_xfetch_rejects_u_outside_unit_interval() -> None:
    with pytest.raises(sc.InvalidArgument, match="u must be"):
        xfetch_due(0, 1, 1, 1, 0.0)


def test_xfetch_probability_rises_near_expiry() -> None:
    """With a seeded rng the early-refresh rate at a gap g is exp(-g / (delta * beta))."""
    rng = random.Random(1234)
    delta, beta, expiry, draws = 2.0, 1.0, 1000.0, 4000
    rates = []
    for gap in (8.0, 4.0, 2.0, 1.0, 0.25):
        hits = sum(xfetch_due(expiry - gap, expiry, delta, beta, 1.0 - rng.random()) for _ in range(draws))
        rate = hits / draws
        assert rate == pytest.approx(math.exp(-gap / (delta * beta)), abs=0.03)
        rates.append(rate)
    assert rates == sorted(rates)


def test_classify_windows() -> None:
    policy = StampedePolicy(stale_while_revalidate=10, stale_if_error=60, early_refresh_beta=1)
    assert classify(0, None, None, policy, 0.5) is Freshness.FRESH
    assert classify(50, 100, 1.0, policy, 1.0) is Freshness.FRESH  # u = 1: never early
    assert classify(99.9, 100, 1.0, policy, 1e-9) is Freshness.EARLY
    assert classify(100, 100, 1.0, policy, 1.0) is Freshness.REVALIDATE
    assert classify(109.9, 100, 1.0, policy, 1.0) is Freshness.REVALIDATE
    assert classify(110, 100, 1.0, policy, 1.0) is Freshness.STALE_IF_ERROR
    assert classify(160, 100, 1.0, policy, 1.0) is Freshness.EXPIRED
    # No delta recorded: no early refresh, whatever the draw.
    assert classify(99.9, 100, None, policy, 1e-9) is Freshness.FRESH


@given(ttl=st.floats(0.001, 1e6), fraction=unit_half, u=unit_half)
@settings(max_examples=60, deadline=None)
def test_jitter_stays_within_bounds(ttl: float, fraction: float, u: float) -> None:
    jittered = jittered_ttl(ttl, fraction, u)
    assert jittered is not None
    assert ttl * (1 - fraction) - 1e-9 <= jittered <= ttl
    assert jittered > 0


def test_jitter_spreads_and_keeps_none() -> None:
    rng = random.Random(7)
    ttls = [jittered_ttl(100.0, 0.2, rng.random()) for _ in range(200)]
    assert all(t is not None and 80.0 <= t <= 100.0 for t in ttls)
    assert len({round(t or 0, 3) for t in ttls}) > 150  # spread, not clustered
    assert jittered_ttl(None, 0.5, 0.3) is None
    assert jittered_ttl(60.0, 0.0, 0.9) == 60.0


def test_storage_ttl_keeps_the_stale_window() -> None:
    policy = StampedePolicy(stale_while_revalidate=30, stale_if_error=120)
    assert storage_ttl(60.0, policy) == 180.0
    assert storage_ttl(None, policy) is None
    assert storage_ttl(float(MAX_TTL), policy) == MAX_TTL  # capped: every backend can store it


@given(attempt=st.integers(0, 200), u=unit_half)
@settings(max_examples=60, deadline=None)
def test_backoff_is_bounded_and_jittered(attempt: int, u: float) -> None:
    delay = backoff_delay(attempt, 0.01, 0.5, u)
    cap = min(0.5, 0.01 * 2**attempt)
    assert cap / 2 <= delay <= cap


def test_backoff_grows_then_caps() -> None:
    caps = [backoff_delay(n, 0.01, 0.16, 0.999999) for n in range(8)]
    assert caps[:5] == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.16], rel=1e-4)
    assert caps[5:] == pytest.approx([0.16] * 3, rel=1e-4)
    with pytest.raises(sc.InvalidArgument, match="attempt"):
        backoff_delay(-1, 0.01, 0.1, 0.5)


def test_parse_policy_forms() -> None:
    assert parse_policy("stampede", None) is None
    assert parse_policy("stampede", "off") is None
    assert parse_policy("stampede", False) is None
    assert parse_policy("stampede", "on") == StampedePolicy()
    assert parse_policy("stampede", True) == StampedePolicy()
    given_policy = StampedePolicy(lease_ttl=3)
    assert parse_policy("stampede", given_policy) is given_policy
    parsed = parse_policy("stampede", "lease_ttl:5, stale_while_revalidate:30,lease:false")
    assert parsed == StampedePolicy(lease=False, lease_ttl=5, stale_while_revalidate=30)
    assert parse_policy("stampede", {"early_refresh_beta": 1, "ttl_jitter": 0.1}) == StampedePolicy(
        early_refresh_beta=1, ttl_jitter=0.1
    )


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("lease_ttl", "field:value"),
        ("lease_tt:5", "unknown StampedePolicy field"),
        ("ttl_jitter:2", r"StampedePolicy\.ttl_jitter"),
        ({"lease_ttl": "soon"}, r"StampedePolicy\.lease_ttl"),
        (3, "expected a StampedePolicy"),
    ],
)
def test_parse_policy_failures(value: object, match: str) -> None:
    with pytest.raises(sc.ConfigurationError, match=match):
        parse_policy("stampede", value)


def test_cache_option_from_url_dict_and_keyword() -> None:
    with sc.Cache("memory://?stampede=lease_ttl:4") as cache:
        assert cache.stampede == StampedePolicy(lease_ttl=4)
    with sc.Cache.from_config({"backend": "memory", "stampede": {"stale_if_error": 9}}) as cache:
        assert cache.stampede == StampedePolicy(stale_if_error=9)
    with sc.Cache("memory", stampede=StampedePolicy(ttl_jitter=0.5)) as cache:
        assert cache.stampede == StampedePolicy(ttl_jitter=0.5)
    with sc.Cache.from_env({"STRATACACHE_URL": "memory://", "STRATACACHE_STAMPEDE": "on"}) as cache:
        assert cache.stampede == StampedePolicy()
    with sc.Cache("memory://?stampede=lease_ttl:5,stale_while_revalidate:30") as cache:
        assert cache.stampede == StampedePolicy(lease_ttl=5, stale_while_revalidate=30)
    with sc.Cache("memory") as cache:
        assert cache.stampede is None
    with pytest.raises(sc.ConfigurationError, match="stampede"):
        sc.Cache("memory://?stampede=bogus")
