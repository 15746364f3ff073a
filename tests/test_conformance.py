"""The public conformance suite, run over every backend in both flavours."""

from __future__ import annotations

from stratacache.testing import AsyncCacheConformance, CacheConformance


class TestAsyncConformance(AsyncCacheConformance):
    """AsyncCache over each backend of the ``backend_name`` fixture."""


class TestSyncConformance(CacheConformance):
    """Cache over each backend of the ``backend_name`` fixture."""
