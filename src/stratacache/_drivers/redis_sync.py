"""The few places where redis-py's sync client differs from its asyncio one (sync flavour).

The pair of ``redis_async.py``; the generated sync Redis backend imports this module.
"""

from __future__ import annotations

from typing import Any

__all__ = ["close_client"]


def close_client(client: Any) -> None:
    """Close a client and its connection pool (``close`` in redis, ``aclose`` in redis.asyncio)."""
    client.close()
