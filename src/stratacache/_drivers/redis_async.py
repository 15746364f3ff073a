"""The few places where redis-py's asyncio client differs from its sync one (async flavour).

``redis.asyncio`` mirrors ``redis`` module for module, so the Redis backend is written once
(async) and its sync twin is generated; only what cannot be spelled the same way in both
lives here, beside its sync pair ``redis_sync.py``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["close_client"]


async def close_client(client: Any) -> None:
    """Close a client and its connection pool (``aclose`` in redis.asyncio, ``close`` in redis)."""
    await client.aclose()
