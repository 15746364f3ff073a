"""Testing helpers for users and backend authors.

* :class:`FakeClock`: a clock you advance by hand, so TTL tests need no sleeping.
* :class:`AsyncCacheConformance` / :class:`CacheConformance`: the conformance suite every
  stratacache backend passes; subclass it to check your own backend (needs pytest and
  pytest-asyncio: ``pip install 'stratacache[testing]'``).
* :class:`RealClock`: the clock for backends whose time cannot be faked.

The suite is imported on first use, so ``FakeClock`` works where pytest is not installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .clock import FakeClock

if TYPE_CHECKING:
    from ._async.conformance import AsyncCacheConformance, RealClock
    from ._sync.conformance import CacheConformance

__all__ = ["AsyncCacheConformance", "CacheConformance", "FakeClock", "RealClock"]


def __getattr__(name: str) -> Any:
    if name in ("AsyncCacheConformance", "RealClock"):
        from ._async import conformance as async_suite

        return getattr(async_suite, name)
    if name == "CacheConformance":
        from ._sync import conformance as sync_suite

        return sync_suite.CacheConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
