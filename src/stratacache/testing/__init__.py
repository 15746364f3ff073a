"""Testing helpers for users and backend authors.

* :class:`FakeClock`: a clock you advance by hand, so TTL tests need no sleeping.
* :class:`AsyncCacheConformance` / :class:`CacheConformance`: the conformance suite every
  stratacache backend passes; subclass it to check your own backend.
* :class:`RealClock`: the clock for backends whose time cannot be faked.
"""

from __future__ import annotations

from ._async.conformance import AsyncCacheConformance, RealClock
from ._sync.conformance import CacheConformance
from .clock import FakeClock

__all__ = ["AsyncCacheConformance", "CacheConformance", "FakeClock", "RealClock"]
